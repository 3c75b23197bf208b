"""``mmfree run``: load a model onto a device and stream generated text from it.

The device samples (bit-exact with the golden model); the text goes to stdout as tokens arrive, the session's
statistics to stderr at the end. A board on a serial port must report the gateware hash of a known bitstream (one the
package ships, or one built in this directory: :func:`~mmfree.host.build.known_gateware`) unless ``--any-gateware``.
"""

import sys

__all__ = ["add_arguments", "expected_gateware", "run"]


def expected_gateware(url, any_gateware=False):
    """The gateware hashes a device at ``url`` must report: the known bitstreams' for a serial port, else None
    (virtual boards and the golden device report no gateware)."""
    from .build import known_gateware
    from .transport import parse_url

    if any_gateware or parse_url(url)[0] != "serial":
        return None
    return list(known_gateware())


def add_arguments(parser):
    parser.add_argument("prompt", help="text to start from")
    parser.add_argument("--device", required=True,
                        help="device URL: golden:// (the golden model in this process), sim://<board> (the virtual "
                             "board), socket://host:port, or a serial port (/dev/ttyUSB1, serial://PATH?baud=N)")
    parser.add_argument("--model", required=True,
                        help="a shipped model's name (e.g. demo), a container file, or an HF MMfreeLM folder")
    parser.add_argument("-n", "--tokens", type=int, default=200, help="number of tokens to generate (default 200)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="0 for greedy, else Gumbel-max sampling on the device (default: the model's own "
                             "default, else greedy)")
    parser.add_argument("--seed", type=int, default=1, help="the device sampler's seed, 0 … 2^32 − 1 (default 1)")
    parser.add_argument("--any-gateware", action="store_true",
                        help="talk to a board whatever gateware it reports (by default a serial device must run a "
                             "bitstream the package ships or one built here: its manifest's hash)")


def run(args):
    from .link import LinkError
    from .models import resolve_model
    from .runtime import Accelerator, DigestMismatch, GatewareMismatch
    from .tokenizer import make_tokenizer

    model = resolve_model(args.model)
    tokenizer = make_tokenizer(model.tokenizer)
    prompt = tokenizer.encode(args.prompt)
    temperature = args.temperature if args.temperature is not None else model.generation.get("temperature", 0.0)
    if model.generation.get("top_k") is not None:
        print(f"mmfree run: note: the device samples from all tokens; the model's default top_k = "
              f"{model.generation['top_k']} does not apply", file=sys.stderr)
    try:
        with Accelerator.open(args.device, expected_hash=expected_gateware(args.device, args.any_gateware)) as acc:
            acc.load(model)
            tokens = acc.generate(prompt, args.tokens, temperature, args.seed)
            decoder = tokenizer.stream_decoder()
            for token in prompt:
                decoder.push(token)
            sys.stdout.write(args.prompt)
            sys.stdout.flush()
            for token in tokens:
                sys.stdout.write(decoder.push(token))
                sys.stdout.flush()
            sys.stdout.write(decoder.finish() + "\n")
            sys.stdout.flush()
            print(acc.stats.summary(), file=sys.stderr)
    except (LinkError, DigestMismatch, GatewareMismatch) as error:
        print(f"mmfree run: error: {error}", file=sys.stderr)
        return 1
    return 0

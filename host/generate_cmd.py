"""``mmfree generate``: stream text from a model on the golden model or the float reference."""

import sys
import time

__all__ = ["add_arguments", "run"]

RUNNERS = ("golden", "reference")


def add_arguments(parser):
    parser.add_argument("prompt", help="text to start from")
    parser.add_argument("--model", required=True,
                        help="a shipped model's name (e.g. demo), a container file, or an HF MMfreeLM folder")
    parser.add_argument("--device", default="golden", choices=RUNNERS,
                        help="golden: the bit-exact integer model of the accelerator; reference: the float model")
    parser.add_argument("-n", "--tokens", type=int, default=200, help="number of tokens to generate (default 200)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="0 for greedy, else sampling (default: the model's own default, else greedy)")
    parser.add_argument("--top-k", type=int, default=None,
                        help="sample among the k most likely tokens (default: the model's own default, else all)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--stats", action="store_true", help="print tokens/s to stderr at the end")


def run(args):
    from .golden import GoldenModel
    from .models import resolve_model
    from .reference import FloatReference
    from .sampling import generate
    from .tokenizer import make_tokenizer

    model = resolve_model(args.model)
    tokenizer = make_tokenizer(model.tokenizer)
    runner = GoldenModel(model) if args.device == "golden" else FloatReference(model)
    prompt = tokenizer.encode(args.prompt)
    decoder = tokenizer.stream_decoder()
    for token in prompt:
        decoder.push(token)
    sys.stdout.write(args.prompt)
    sys.stdout.flush()
    start, count = time.perf_counter(), 0
    temperature = args.temperature if args.temperature is not None else model.generation.get("temperature", 0.0)
    top_k = args.top_k if args.top_k is not None else model.generation.get("top_k")
    for token in generate(runner, prompt, args.tokens, temperature, top_k, args.seed):
        sys.stdout.write(decoder.push(token))
        sys.stdout.flush()
        count += 1
    sys.stdout.write("\n")
    if args.stats:
        elapsed = time.perf_counter() - start
        print(f"{count} tokens in {elapsed:.2f} s ({count / elapsed:.1f} tokens/s, {args.device})", file=sys.stderr)
    return 0

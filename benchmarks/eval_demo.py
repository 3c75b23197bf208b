"""Held-out cross-entropy and greedy next-character accuracy of a char-level model, as JSON.

The held-out text is the tail of the training file that the trainer held out (the container's ``meta.data``
records where it starts and the file's SHA-256; without it, the last ``--heldout-fraction``). It is scored
teacher-forced in windows of ``--window`` characters, every character after the first predicted once. With
``--state reset`` (the default) every window starts from a zero state, as in training; with ``--state carry`` the
state runs on from window to window, as in streaming generation.

A runner is anything with ``forward(tokens, state) -> (logits, state)``: ``reference`` is the NumPy float
reference, ``golden`` the bit-exact integer model of the accelerator. A runner other than the reference is also
compared with the reference, window by window: greedy (argmax) agreement and logit cosine.

    python benchmarks/eval_demo.py --data tinyshakespeare.txt [--model PATH] [--runner golden] [--out FILE]
"""

import argparse
import contextlib
import hashlib
import json
import sys
import time
from importlib import resources

import numpy as np

from mmfree.host.container import load_model, read_metadata
from mmfree.host.reference import FloatReference
from mmfree.host.tokenizer import make_tokenizer


def make_runner(name, model, dtype, formats=()):
    """The runner called ``name`` for ``model`` (``formats``: golden-model ``NAME=BITS`` overrides)."""
    if name == "reference":
        return FloatReference(model, dtype=dtype)
    if name == "golden":
        from mmfree.host.golden import Formats, GoldenModel

        return GoldenModel(model, Formats.from_overrides(formats))
    raise ValueError(f"unknown runner {name!r}")


RUNNERS = ("reference", "golden")


def heldout_text(text, meta, fraction):
    """The held-out tail of ``text``: where ``meta["data"]`` says it starts, else the last ``fraction``."""
    data = meta.get("data")
    if not data:
        return text[len(text) - int(round(len(text) * fraction)):]
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if digest != data.get("sha256"):
        raise ValueError(f"the data file is not the one the model was trained on ({data.get('file')}, "
                         f"sha256 {data.get('sha256')})")
    return text[data["heldout_start"]:]


def _log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def evaluate(runner, ids, window, carry, reference=None):
    """Score ``ids`` teacher-forced with ``runner``.

    Parameters
    ----------
    runner : object with ``forward(tokens, state) -> (logits, state)``
    ids : ndarray of int, 1-D
    window : int
        Characters per forward call.
    carry : bool
        Carry the state from window to window (else reset it).
    reference : runner, optional
        Also run this one and compare (argmax agreement, logit cosine).

    Returns
    -------
    dict
        ``cross_entropy`` (nats/char), ``bits_per_char``, ``accuracy`` (argmax = next character), ``predictions``,
        and with a reference ``agreement``, ``cosine_mean``, ``cosine_min``.
    """
    nll, hits, count, agree, cosines = 0.0, 0, 0, 0, []
    state = ref_state = None
    for start in range(0, len(ids) - 1, window):
        inputs, targets = ids[start:start + window], ids[start + 1:start + window + 1]
        inputs = inputs[:len(targets)]
        logits, state = runner.forward(inputs, state if carry else None)
        logits = np.asarray(logits, dtype=np.float64)
        nll -= _log_softmax(logits)[np.arange(len(targets)), targets].sum()
        hits += int((logits.argmax(axis=-1) == targets).sum())
        count += len(targets)
        if reference is not None:
            ref_logits, ref_state = reference.forward(inputs, ref_state if carry else None)
            agree += int((logits.argmax(axis=-1) == ref_logits.argmax(axis=-1)).sum())
            cosines.append((logits * ref_logits).sum(-1)
                           / (np.linalg.norm(logits, axis=-1) * np.linalg.norm(ref_logits, axis=-1)))
    result = {"cross_entropy": nll / count, "bits_per_char": nll / count / np.log(2), "accuracy": hits / count,
              "predictions": count}
    if reference is not None:
        cosines = np.concatenate(cosines)
        result.update(agreement=agree / count, cosine_mean=float(cosines.mean()), cosine_min=float(cosines.min()))
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the text file the model was trained on")
    parser.add_argument("--model", help="container file (default: the shipped demo model)")
    parser.add_argument("--runner", choices=RUNNERS, default="reference")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                        help="precision of the float reference (default float64)")
    parser.add_argument("--window", type=int, default=256, help="characters per forward call (default 256)")
    parser.add_argument("--state", choices=("reset", "carry"), default="reset",
                        help="zero state per window (as in training; default) or carried across windows")
    parser.add_argument("--limit", type=int, help="score only the first LIMIT held-out characters")
    parser.add_argument("--heldout-fraction", type=float, default=0.1,
                        help="held-out tail when the container does not record it (default 0.1)")
    parser.add_argument("--format", action="append", default=[], metavar="NAME=BITS",
                        help="override a golden-model format field, e.g. sigmoid_segment_bits=6 (repeatable)")
    parser.add_argument("--out", help="write the JSON here (default: stdout)")
    args = parser.parse_args(argv)
    if args.window < 1:
        parser.error("--window must be positive")

    with contextlib.ExitStack() as stack:
        path = args.model or str(stack.enter_context(resources.as_file(
            resources.files("mmfree.host") / "models" / "demo" / "model.safetensors")))
        model, meta = load_model(path), read_metadata(path)["meta"]
    with open(args.data, encoding="utf-8") as f:
        text = heldout_text(f.read(), meta, args.heldout_fraction)
    ids = np.asarray(make_tokenizer(model.tokenizer).encode(text[:args.limit]), dtype=np.int64)
    if len(ids) < 2:
        parser.error("fewer than two held-out characters to score")
    runner = make_runner(args.runner, model, np.dtype(args.dtype), args.format)
    reference = None if args.runner == "reference" else make_runner("reference", model, np.dtype(args.dtype))
    begin = time.perf_counter()
    result = evaluate(runner, ids, args.window, args.state == "carry", reference)
    seconds = time.perf_counter() - begin
    report = {"model": path, "runner": args.runner, "dtype": args.dtype, "data": args.data, "window": args.window,
              "state": args.state, "heldout_chars": len(ids), **result, "seconds": round(seconds, 2)}
    text = json.dumps(report, indent=1)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

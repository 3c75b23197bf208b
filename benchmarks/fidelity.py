"""Golden model vs float reference on an imported random HGRNBit checkpoint (JSON out).

Writes a random checkpoint in the HF MMfreeLM format (bf16 by default), imports it, runs both models
teacher-forced over random tokens and reports per-position logit cosine, argmax agreement and state error.
Also counts the trits an fp32 import flips against an fp16 ternarization of the same latent weights, and
measures what dropping ε costs (the float reference with ε = 0 against ε = 1e-6).

    python benchmarks/fidelity.py [--hidden 256 --layers 2 --intermediate 768 --vocab 1000 --tokens 64]
"""

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from mmfree.host.golden import Formats, GoldenModel
from mmfree.host.hf_import import import_hf
from mmfree.host.model import ModelConfig
from mmfree.host.quant import ternarize
from mmfree.host.reference import FloatReference
from mmfree.host.safetensors_io import SafetensorsFile
from mmfree.host.synthetic import write_hf_checkpoint


def cosine(a, b):
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def compare(reference, other, tokens):
    ref_logits, ref_state = reference.forward(tokens)
    logits, state = other.forward(tokens)
    if hasattr(other, "state_values"):
        state = other.state_values(state)
    cos = cosine(ref_logits, logits)
    return {
        "cosine_min": float(cos.min()), "cosine_mean": float(cos.mean()),
        "argmax_agreement": float(np.mean(ref_logits.argmax(1) == logits.argmax(1))),
        "state_max_abs_error": float(np.max(np.abs(state - ref_state))),
        "state_max_abs": float(np.max(np.abs(ref_state))),
    }


def trit_flips(folder):
    """Trits that differ between fp32 and fp16 absmean ternarization of every projection in the checkpoint."""
    flips = total = 0
    for path in sorted(Path(folder).glob("*.safetensors")):
        with SafetensorsFile(path) as f:
            for key in f.keys():
                if key.endswith("_proj.weight") or key == "lm_head.weight":
                    w = f.get(key)
                    flips += int(np.sum(ternarize(w, np.float32)[0] != ternarize(w, np.float16)[0]))
                    total += w.size
    return {"flipped": flips, "total": total, "fraction": flips / total}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--intermediate", type=int, default=768)
    parser.add_argument("--vocab", type=int, default=1000)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--format", action="append", default=[], metavar="NAME=BITS",
                        help="override a golden-model format field, e.g. sigmoid_segment_bits=6 (repeatable)")
    parser.add_argument("--out", help="write the JSON here (default: stdout)")
    args = parser.parse_args(argv)
    formats = Formats.from_overrides(args.format)

    config = ModelConfig(args.vocab, args.hidden, args.layers, args.intermediate)
    with tempfile.TemporaryDirectory() as folder:
        write_hf_checkpoint(folder, config, dtype=args.dtype, seed=args.seed)
        model = import_hf(folder)
        flips = trit_flips(folder)
    tokens = np.random.default_rng(args.seed).integers(0, config.vocab_size, args.tokens)
    reference = FloatReference(model)
    golden = GoldenModel(model, formats)
    no_eps = dataclasses.replace(model, config=dataclasses.replace(config, norm_eps=1e-300))
    result = {
        "config": config.to_dict(), "dtype": args.dtype, "tokens": args.tokens, "seed": args.seed,
        "golden_vs_reference": compare(reference, golden, tokens),
        "reference_float32_vs_float64": compare(reference, FloatReference(model, np.float32), tokens),
        "reference_eps0_vs_eps": compare(reference, FloatReference(no_eps), tokens),
        "fp32_vs_fp16_ternarization": flips,
        "formats": dataclasses.asdict(golden.formats),
    }
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    g = result["golden_vs_reference"]
    print(f"golden vs reference: cosine min {g['cosine_min']:.6f} mean {g['cosine_mean']:.6f}, "
          f"argmax agreement {g['argmax_agreement']:.3f}; fp32 vs fp16 ternarization flips "
          f"{flips['flipped']} of {flips['total']} trits", file=sys.stderr)


if __name__ == "__main__":
    main()

"""``mmfree train``: quantization-aware training of a small char-level model on a text file.

The run writes into ``--out``: ``model.safetensors`` (the exported container: trits and β, never dequantized
floats), ``log.json`` (configs, data digest, loss history, wall time), ``loss.png`` (the loss curves) and
``checkpoint.pt`` (for ``--resume``). Training configs are JSON files with a ``"model"`` section (``hidden_size``,
``num_layers``, optional ``intermediate_size`` and ``norm_eps``; the vocabulary is the data's alphabet) and a
``"train"`` section (:class:`mmfree.host.train.TrainConfig`); ``--config small`` names a shipped one.

``--budget`` prints what the model takes in the iCE40UP5K's SPRAM (:func:`budget`) and needs no PyTorch.
"""

import json
import os
from importlib import resources

import numpy as np

from .golden import Formats
from .model import ModelConfig, default_intermediate_size
from .packing import packed_size
from .plot import write_chart

__all__ = ["add_arguments", "run", "load_config", "budget", "format_budget", "write_loss_png"]

#: on-chip weight memory of the iCE40UP5K: 4 SPRAM blocks of 256 Kbit
SPRAM_BYTES = 4 * 32 * 1024
#: output rows the ternary array reads per cycle (4 SPRAMs × 2 bytes): matrices are padded to whole row groups
ROW_LANES = 8
_MODEL_KEYS = {"hidden_size", "num_layers", "intermediate_size", "norm_eps"}


def add_arguments(parser):
    parser.add_argument("--data", required=True, help="UTF-8 text file to train on (the last 10%% is held out)")
    parser.add_argument("--config", default="small",
                        help="training config: a JSON file, or a shipped one by name (small, tiny; default small)")
    parser.add_argument("--out", help="output folder (model.safetensors, log.json, loss.png, checkpoint.pt)")
    parser.add_argument("--steps", type=int, help="total optimizer steps (overrides the config)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available, else cpu")
    parser.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt")
    parser.add_argument("--budget", action="store_true",
                        help="print the model's iCE40UP5K SPRAM budget and exit (no training, no PyTorch)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args):
    config = load_config(args.config)
    with open(args.data, encoding="utf-8") as f:
        text = f.read()
    model_config = _model_config(config["model"], len(set(text)))
    rows = budget(model_config)
    if args.budget:
        print(format_budget(model_config, rows))
        return 0
    if args.out is None:
        raise ValueError("--out is required unless --budget is given")
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be positive, not {args.steps}")
    try:
        import torch

        from . import train
    except ImportError as e:
        raise ValueError(f"mmfree train needs PyTorch ({e}); install it with pip install 'mmfree-fpga[train]'") \
            from None
    from .container import save_model

    train_config = train.TrainConfig.from_dict(config.get("train", {}))
    if args.steps is not None:
        train_config = train.TrainConfig.from_dict({**train_config.to_dict(), "steps": args.steps})
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("--device cuda: PyTorch sees no CUDA device")
        # the matmul inputs are integers (int8 activations, trits), which TF32 represents exactly
        torch.backends.cuda.matmul.allow_tf32 = True
    os.makedirs(args.out, exist_ok=True)
    checkpoint = os.path.join(args.out, "checkpoint.pt")
    corpus = train.CharCorpus(text)
    trainer = train.Trainer(model_config, train_config, corpus, device=device)
    if args.resume:
        if not os.path.isfile(checkpoint):
            raise ValueError(f"--resume: no checkpoint at {checkpoint}")
        trainer.load_checkpoint(checkpoint)
    elif os.path.exists(checkpoint):
        raise ValueError(f"{checkpoint} exists: pass --resume to continue that run, or choose another --out")
    total = sum(row[3] for row in rows)
    print(f"model: V={model_config.vocab_size} H={model_config.hidden_size} L={model_config.num_layers} "
          f"I={model_config.intermediate_size}, {model_config.ternary_weights:,} ternary weights; iCE40UP5K SPRAM "
          f"{total:,} of {SPRAM_BYTES:,} bytes ({'fits' if total <= SPRAM_BYTES else 'does NOT fit'})")
    print(f"training on {device} from step {trainer.step} to {train_config.steps}")
    heldout = trainer.run(checkpoint, progress=not args.quiet)

    device_name = torch.cuda.get_device_name(trainer.device) if trainer.device.type == "cuda" else "cpu"
    data = {"file": os.path.basename(args.data), "sha256": corpus.sha256, "chars": len(text),
            "heldout_start": corpus.heldout_start}
    summary = {"steps": trainer.step, "wall_time_s": round(trainer.elapsed, 2),
               "steps_per_s": round(trainer.step / trainer.elapsed, 3) if trainer.elapsed else None,
               "device": device_name, "heldout_cross_entropy": heldout}
    meta = {"trainer": {"train_config": train_config.to_dict(), **summary}, "data": data}
    save_model(trainer.model.export(corpus.tokenizer), os.path.join(args.out, "model.safetensors"), meta=meta)
    log = {"model_config": model_config.to_dict(), "train_config": train_config.to_dict(), "data": data,
           **summary, "history": trainer.history}
    with open(os.path.join(args.out, "log.json"), "w", encoding="utf-8") as f:
        json.dump(log, f, indent=1)
    write_loss_png(os.path.join(args.out, "loss.png"), trainer.history)
    print(f"held-out cross-entropy {heldout:.4f} nats/char after {trainer.step} steps "
          f"({trainer.elapsed:.0f} s on {device_name}); wrote model.safetensors, log.json, loss.png to {args.out}")
    return 0


# -- configs ----------------------------------------------------------------------------------------------------


def _shipped_configs():
    return resources.files("mmfree.host") / "train_configs"


def load_config(spec):
    """Read a training config: a JSON file path, or the name of a shipped config (``small``, ``tiny``).

    Returns
    -------
    dict
        ``{"model": {...}, "train": {...}}`` as in the file.
    """
    if os.path.isfile(spec):
        with open(spec, encoding="utf-8") as f:
            text = f.read()
    else:
        entry = _shipped_configs() / f"{spec}.json"
        if not entry.is_file():
            names = sorted(e.name[:-5] for e in _shipped_configs().iterdir() if e.name.endswith(".json"))
            raise ValueError(f"no training config {spec!r}: not a file and not a shipped config "
                             f"({', '.join(names)})")
        text = entry.read_text(encoding="utf-8")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"training config {spec}: malformed JSON ({e})") from None
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict) \
            or not isinstance(config.get("train", {}), dict) or set(config) - {"model", "train"}:
        raise ValueError(f"training config {spec}: expected an object with a 'model' object and an optional "
                         f"'train' object")
    unknown = set(config["model"]) - _MODEL_KEYS
    if unknown:
        raise ValueError(f"training config {spec}: unknown model keys {sorted(unknown)} (the vocabulary size comes "
                         f"from the data)")
    return config


def _model_config(model, vocab_size):
    hidden = model.get("hidden_size")
    if not isinstance(hidden, int) or hidden % 8:
        raise ValueError(f"hidden_size must be a multiple of 8 (the ternary array's row lanes), not {hidden!r}")
    intermediate = model.get("intermediate_size", default_intermediate_size(hidden))
    return ModelConfig(vocab_size=vocab_size, hidden_size=hidden, num_layers=model.get("num_layers"),
                       intermediate_size=intermediate, norm_eps=model.get("norm_eps", 1e-6))


# -- the SPRAM budget -------------------------------------------------------------------------------------------


def budget(config):
    """What the weight-resident design keeps in the iCE40UP5K SPRAM for a model, item by item.

    Trits are packed base-3 (5 per byte) row by row, each matrix padded to whole groups of :data:`ROW_LANES`
    rows; the embedding has ``embed_bits`` mantissas and one int16 exponent per row, norm weights
    ``const_bits`` mantissas and ``1 − lb`` ``gate_frac`` bits, bit-packed, all as the golden model's
    :class:`~mmfree.host.golden.Formats` defaults; β is 32-bit. The program lives in the sequencer's EBR, not here.

    Returns
    -------
    list of (item, format, count, bytes)
    """
    h, n, v, layers = config.hidden_size, config.intermediate_size, config.vocab_size, config.num_layers

    def trits(rows, cols):
        return -(-rows // ROW_LANES) * ROW_LANES * packed_size(cols, "base3")

    def packed(count, bits):
        return -(-count * bits // 8)

    formats = Formats()
    norms = layers * (8 * h + n) + 2 * h
    base3 = "base-3, 5 trits/byte"
    return [
        ("i/f/g/o_proj trits, 4·L × H×H", base3, 4 * layers * h * h, 4 * layers * trits(h, h)),
        ("gate_proj trits, L × 2I×H", base3, layers * 2 * n * h, layers * trits(2 * n, h)),
        ("down_proj trits, L × H×I", base3, layers * h * n, layers * trits(h, n)),
        ("lm_head trits, V×H", base3, v * h, trits(v, h)),
        ("embedding, V×H + V row exponents", f"int{formats.embed_bits} + int16", v * (h + 1),
         packed(v * h, formats.embed_bits) + 2 * v),
        ("norm weights, L·(8H + I) + 2H", f"int{formats.const_bits}", norms, packed(norms, formats.const_bits)),
        ("1 − lower bounds, L×H", f"Q0.{formats.gate_frac}", layers * h, packed(layers * h, formats.gate_frac)),
        ("β per matrix, 6L + 1", "int32", 6 * layers + 1, 4 * (6 * layers + 1)),
    ]


def format_budget(config, rows):
    """The budget as a Markdown table with the total and the headroom."""
    total = sum(row[3] for row in rows)
    lines = [f"V={config.vocab_size} H={config.hidden_size} L={config.num_layers} I={config.intermediate_size}: "
             f"{config.ternary_weights:,} ternary weights", "",
             "| item | format | count | bytes |", "|---|---|---:|---:|"]
    lines += [f"| {item} | {fmt} | {count:,} | {size:,} |" for item, fmt, count, size in rows]
    lines += [f"| **total** | | | **{total:,}** |",
              f"| SPRAM (4 × 256 Kbit) | | | {SPRAM_BYTES:,} |",
              f"| headroom | | | {SPRAM_BYTES - total:,} ({100 * (SPRAM_BYTES - total) / SPRAM_BYTES:.1f} %) |"]
    return "\n".join(lines)


# -- the loss plot ----------------------------------------------------------------------------------------------

_TRAIN, _HELDOUT = (31, 119, 180), (230, 110, 0)


def write_loss_png(path, history, width=720, height=440):
    """Plot the training and held-out loss against the step as an RGB PNG (:func:`mmfree.host.plot.write_chart`).

    Parameters
    ----------
    history : dict
        ``{"train": [[step, loss], ...], "heldout": [[step, loss], ...]}``.
    """
    series = [(name, np.asarray(history.get(key) or np.zeros((0, 2)), dtype=np.float64).reshape(-1, 2), color, markers)
              for name, key, color, markers in (("TRAIN", "train", _TRAIN, False),
                                                ("HELD-OUT", "heldout", _HELDOUT, True))]
    if not any(len(points) for _, points, _, _ in series):
        raise ValueError("no loss values to plot")
    write_chart(path, series, x_title="STEP", y_title="NATS/CHAR", x_from_zero=True, width=width, height=height)

"""Record the fixture that the ``hardware`` tests replay when no board is attached (``docs/bringup.md``).

::

    python benchmarks/record_hardware_fixture.py [--device sim://icebreaker] [--tokens 8]

writes ``tests/data/hardware/selftest-model.safetensors``, a small random model (:data:`CONFIG`, seed :data:`SEED`,
the demo model's character tokenizer; deterministic, so rewriting it changes nothing), then runs ``mmfree selftest``
on the device with that model and ``--record tests/data/hardware/<device>.jsonl`` (``sim-icebreaker.jsonl`` for
the default). The model is small so that the recording is tens of KB, not the megabytes of the demo model's loads.

The default device is the virtual board, a cycle-accurate Verilator simulation of the iCEBreaker's gateware top
(the first run builds it, about 100 s); its recording says so in its metadata. It is not a recording of hardware.
"""

import argparse
import os
import sys
from pathlib import Path

from mmfree.host.cli import main as mmfree
from mmfree.host.container import save_model
from mmfree.host.model import ModelConfig, random_model
from mmfree.host.models import resolve_model
from mmfree.host.transport import parse_url

ROOT = Path(__file__).resolve().parents[1]
#: where the fixtures live, relative to the repository root
DATA = Path("tests/data/hardware")
#: the recorded model's shape and seed
CONFIG = ModelConfig(vocab_size=65, hidden_size=16, num_layers=2, intermediate_size=32)
SEED = 2024


def write_model(path):
    """Write the fixture's model to ``path`` (a container)."""
    model = random_model(CONFIG, seed=SEED, tokenizer=resolve_model("demo").tokenizer)
    save_model(model, path, meta={"note": f"random weights (mmfree.host.model.random_model, seed {SEED}) for the "
                                          "hardware tests' recorded self-test; not a trained model"})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="sim://icebreaker", help="the device URL (default sim://icebreaker)")
    parser.add_argument("--tokens", type=int, default=8, help="tokens of each demo run (default 8)")
    args = parser.parse_args(argv)
    kind, target, _ = parse_url(args.device)
    name = {"sim": f"sim-{target}", "golden": f"golden-{target}", "serial": f"board-{Path(str(target)).name}"}.get(
        kind, kind)
    model, out = DATA / "selftest-model.safetensors", DATA / f"{name}.jsonl"
    (ROOT / DATA).mkdir(parents=True, exist_ok=True)
    write_model(ROOT / model)
    return mmfree(["selftest", "--device", args.device, "--model", str(model), "--tokens", str(args.tokens),
                 "--record", str(out)])


if __name__ == "__main__":
    os.chdir(ROOT)  # the recording names the model by its path from the repository root
    sys.exit(main())

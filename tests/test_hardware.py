"""The bring-up self-test on a board (``docs/bringup.md``).

With ``MMFREE_BOARD`` set to a device URL (``serial:///dev/ttyUSB1``, …) the self-test runs live on it, with the
model ``MMFREE_MODEL`` (default ``demo``). Without it, the recordings in ``tests/data/hardware/`` are replayed through
the same self-test code: every byte the host sends must equal the recorded session's, and the recorded answers must
pass. The committed recordings are of the virtual board ``sim://icebreaker`` (a cycle-accurate Verilator simulation
of the board's gateware top), not of hardware: no physical board has run this test yet.
"""

import hashlib
import os
from pathlib import Path

import pytest

from mmfree.host.recording import ReplayTransport, read_recording
from mmfree.host.selftest import selftest

pytestmark = pytest.mark.hardware

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "hardware"
BOARD = os.environ.get("MMFREE_BOARD")
RECORDINGS = sorted(DATA.glob("*.jsonl"))


@pytest.mark.skipif(not BOARD, reason="no board: set MMFREE_BOARD to a device URL (e.g. serial:///dev/ttyUSB1)")
def test_selftest_on_the_board():
    report = selftest(BOARD, model=os.environ.get("MMFREE_MODEL", "demo"), progress=False)
    print(report.table())
    assert report.passed, report.table()


@pytest.mark.skipif(bool(BOARD), reason="MMFREE_BOARD is set: the self-test runs live instead of the recordings")
@pytest.mark.parametrize("path", RECORDINGS, ids=[path.stem for path in RECORDINGS])
def test_selftest_replays_a_recording(path):
    replay = ReplayTransport(path)
    spec = replay.metadata["selftest"]
    model = spec["model"]
    if "model_sha256" in spec:  # a file, named from the repository root
        model = ROOT / model
        assert hashlib.sha256(model.read_bytes()).hexdigest() == spec["model_sha256"], \
            f"{model} is not the model recorded in {path.name}: re-record (benchmarks/record_hardware_fixture.py)"
    report = selftest(replay, model=model, tokens=spec["tokens"], progress=False)
    assert report.passed, report.table()
    assert replay.remaining == 0, f"the self-test stopped {replay.remaining} recorded calls short of the recording"
    assert report.info["gateware_hash"] == replay.metadata["gateware_hash"]


def test_the_recordings_say_what_they_recorded():
    assert RECORDINGS, f"no recordings in {DATA}"
    for path in RECORDINGS:
        metadata, events = read_recording(path)
        if not metadata["url"].startswith("serial"):
            assert "NOT real hardware" in metadata["device"], path.name
        assert metadata["passed"] and metadata["date"] and events
        assert path.stat().st_size < 100_000, f"{path.name}: keep recordings to tens of KB"

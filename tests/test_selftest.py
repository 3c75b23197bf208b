"""The self-test's logic on the golden device: it passes a sound device and fails, step by step and saying what it
expected and got, a device that lies (a logit, a DIGEST, a memory word or address line); recording and replay; and
``mmfree selftest``."""

import dataclasses
import json

import pytest

from mmfree.host.cli import main
from mmfree.host.commands import (Checksum, Command, Digest, Read, Readback, Region, Reply, Target, Write,
                                  decode_request)
from mmfree.host.compiler import CORES
from mmfree.host.container import save_model
from mmfree.host.golden_device import GoldenDevice
from mmfree.host.link import DeviceModel
from mmfree.host.model import ModelConfig, random_model
from mmfree.host.models import resolve_model
from mmfree.host.recording import RecordingTransport, ReplayMismatch, ReplayTransport, read_recording
from mmfree.host.selftest import MEMORY_WORDS, STEPS, selftest
from mmfree.host.transport import InProcessTransport, open_transport


@pytest.fixture(scope="module")
def model():
    """A small model with the demo's character tokenizer (the demo model's loads are 25 times larger)."""
    return random_model(ModelConfig(vocab_size=65, hidden_size=16, num_layers=2, intermediate_size=32), seed=5,
                        tokenizer=resolve_model("demo").tokenizer)


class LyingDevice:
    """The golden device with a hook between it and the link: ``requests(type, payload)`` may rewrite a request
    before the device sees it, ``replies(type, payload, reply_type, reply)`` the reply before the host does."""

    def __init__(self, requests=None, replies=None):
        self.device = GoldenDevice(CORES["icebreaker"])
        self.requests = requests or (lambda type, payload: payload)
        self.replies = replies or (lambda type, payload, reply_type, reply: reply)

    def handle(self, type, payload):
        payload = self.requests(type, payload)
        reply_type, reply = self.device.handle(type, payload)
        return reply_type, self.replies(type, payload, reply_type, reply)

    def transport(self):
        return InProcessTransport(DeviceModel(handler=self.handle))


def steps(report):
    return {step.name: step for step in report.steps}


def test_a_sound_device_passes(model):
    report = selftest("golden://", model=model, tokens=4, progress=False)
    assert report.passed, report.table()
    assert [step.name for step in report.steps] == list(STEPS)
    assert report.info["core"] == dataclasses.asdict(CORES["icebreaker"])
    assert report.info["gateware_hash"] == "00" * 32
    text = json.loads(report.to_json())
    assert text["passed"] and [step["result"] for step in text["steps"]] == ["pass"] * len(STEPS)
    assert "PASSED (5 of 5 steps passed, 5 ran)" in report.table()


def test_a_wrong_logit_fails_the_known_answer_and_the_tokens(model):
    def corrupt_logit(type, payload, reply_type, reply):
        if type == Command.READ and Read.decode(payload).target is Target.LOGITS and reply_type == Reply.READ:
            answer = Readback.decode(reply)
            values = list(answer.values)
            values[3] += 1
            return Readback(answer.length, answer.scale, values).encode()
        return reply

    report = selftest(LyingDevice(replies=corrupt_logit).transport(), model=model, tokens=4, progress=False)
    result = steps(report)
    assert [result[name].passed for name in STEPS] == [True, True, True, False, False]
    assert result["known-answer matvec"].detail.startswith("logits: element 3 is ")
    assert "1 of 16 elements differ" in result["known-answer matvec"].detail
    assert "greedy: the logits after the last token: element 3" in result["demo tokens"].detail
    assert not report.passed


def test_a_wrong_digest_fails_the_load_and_skips_the_tokens(model):
    def corrupt_digest(type, payload, reply_type, reply):
        if type == Command.DIGEST and Digest.decode(payload).region is Region.IMAGE:
            return Checksum(Checksum.decode(reply).crc ^ 0x100).encode()
        return reply

    report = selftest(LyingDevice(replies=corrupt_digest).transport(), model=model, tokens=4, progress=False)
    result = steps(report)
    assert result["link"].passed
    assert result["weight digest"].detail.startswith("DigestMismatch: image: the device's CRC-32 of its 630 words is ")
    assert "pattern 'all zeros' in words 0…127: DIGEST 0x" in result["memory test"].detail
    assert not result["known-answer matvec"].passed
    assert result["demo tokens"].seconds is None
    assert result["demo tokens"].detail == "not run: the model did not load (weight digest)"


def _rewrite_writes(change):
    """A request hook that passes each image WRITE's ``(offset, words)`` through ``change``."""
    def requests(type, payload):
        if type != Command.WRITE:
            return payload
        write = decode_request(type, payload)
        if write.region is not Region.IMAGE:
            return payload
        return Write(write.region, *change(write.offset, list(write.words))).encode()
    return requests


def test_a_stuck_data_bit_is_found_in_its_word(model):
    def stuck(offset, words):  # bit 5 of word 37 reads 0
        if offset <= 37 < offset + len(words):
            words[37 - offset] &= ~(1 << 5)
        return offset, words

    result = steps(selftest(LyingDevice(requests=_rewrite_writes(stuck)).transport(), model=model, tokens=4,
                            progress=False))
    assert result["memory test"].detail.startswith("pattern 'all ones' in words 0…127: DIGEST 0x")
    assert "the first word that differs is word 37 (written 0xffffffffffffffff)" in result["memory test"].detail


def test_an_address_line_stuck_at_zero_is_found(model):
    def alias(offset, words):  # address bit 12 stuck at 0: word 4096 is word 0
        return offset & ~(1 << 12), words

    result = steps(selftest(LyingDevice(requests=_rewrite_writes(alias)).transport(), model=model, tokens=4,
                            progress=False))
    assert result["weight digest"].passed and result["known-answer matvec"].passed
    assert result["memory test"].detail.startswith("address line probe at word 4096: the DIGESTs of words 0…4096 ")
    assert result["demo tokens"].passed  # the model was reloaded over the probes' damage


class Silent:
    """A line with no device on it."""
    reply_timeout = 0.01

    def __init__(self):
        self.closed = False

    def write(self, data):
        pass

    def read(self, count, timeout):
        return b""

    def close(self):
        self.closed = True


def test_no_reply_fails_the_link_and_runs_nothing_else(model):
    line = Silent()
    report = selftest(line, model=model, progress=False)
    assert report.steps[0].detail.startswith("LinkTimeout: no HELLO reply after 5 retries")
    assert [step.detail for step in report.steps[1:]] == ["not run: no session with the device (the link step "
                                                          "failed)"] * 4
    assert all(step.seconds is None for step in report.steps[1:]) and line.closed and report.info == {}


def record(path, model, tokens):
    transport = RecordingTransport(open_transport("golden://"), "golden://")
    report = selftest(transport, model=model, tokens=tokens, progress=False)
    transport.save(path, gateware_hash=report.info["gateware_hash"])
    return report


def test_a_replay_reproduces_the_session(tmp_path, model):
    record(tmp_path / "session.jsonl", model, tokens=3)
    metadata, events = read_recording(tmp_path / "session.jsonl")
    assert metadata["url"] == "golden://" and "NOT real hardware" in metadata["device"]
    assert {kind for kind, _ in events} == {"w", "r"}
    replay = ReplayTransport(tmp_path / "session.jsonl")
    report = selftest(replay, model=model, tokens=3, progress=False)
    assert report.passed, report.table()
    assert replay.remaining == 0
    assert report.device.startswith("a replay of ")


def test_a_replay_names_the_first_byte_a_diverging_host_sends(tmp_path, model):
    record(tmp_path / "session.jsonl", model, tokens=3)
    with pytest.raises(ReplayMismatch, match=r"the host's byte \d+ differs from the recording .*: recorded 0x03, "
                                             r"sent 0x04") as error:
        selftest(ReplayTransport(tmp_path / "session.jsonl"), model=model, tokens=4, progress=False)
    assert error.value.offset > MEMORY_WORDS * 8  # GENERATE's max_new_tokens, late in the session


def test_replay_checks_every_byte_and_the_order(tmp_path):
    class Device:
        def write(self, data):
            pass

        def read(self, count, timeout):
            return b"\x09\x08"

        def close(self):
            pass

    recording = RecordingTransport(Device(), "socket://localhost:1")
    recording.write(b"\x01\x02")
    recording.write(b"\x03")
    assert recording.read(16, 0.1) == b"\x09\x08"
    recording.save(tmp_path / "r.jsonl")

    replay = ReplayTransport(tmp_path / "r.jsonl")
    replay.write(b"\x01")
    replay.write(b"\x02\x03")  # split otherwise than recorded: the same stream
    assert replay.read(1, 0.1) == b"\x09" and replay.read(16, 0.1) == b"\x08" and replay.remaining == 0
    with pytest.raises(ReplayMismatch, match="after the recording's end"):
        replay.read(1, 0.1)

    replay = ReplayTransport(tmp_path / "r.jsonl")
    with pytest.raises(ReplayMismatch, match="byte 1 differs .*: recorded 0x02, sent 0x07") as error:
        replay.write(b"\x01\x07\x03")
    assert error.value.offset == 1

    replay = ReplayTransport(tmp_path / "r.jsonl")
    replay.write(b"\x01\x02")
    with pytest.raises(ReplayMismatch, match="reads at byte 2 .* wrote 1 more bytes"):
        replay.read(16, 0.1)


def test_cli(tmp_path, model, capsys):
    save_model(model, tmp_path / "model.safetensors")
    assert main(["selftest", "--device", "golden://", "--model", str(tmp_path / "model.safetensors"), "--tokens",
                 "2", "--json", str(tmp_path / "report.json"), "--record", str(tmp_path / "r.jsonl")]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("selftest of golden:// (recorded): PASSED")
    assert "[5/5] demo tokens …" in err
    report = json.loads((tmp_path / "report.json").read_text())
    assert [step["name"] for step in report["steps"]] == list(STEPS) and report["passed"]
    metadata, _ = read_recording(tmp_path / "r.jsonl")
    assert metadata["selftest"]["tokens"] == 2 and len(metadata["selftest"]["model_sha256"]) == 64

    assert main(["selftest", "--device", "socket://127.0.0.1:9", "--model", str(tmp_path / "model.safetensors")]) == 1
    out, _ = capsys.readouterr()
    assert "FAILED (0 of 5 steps passed, 1 ran)" in out and "ConnectionRefusedError" in out


@pytest.mark.parametrize("known", [True, False])
def test_the_link_step_names_the_bitstream_a_board_runs(model, known):
    from mmfree.host.build import BITSTREAMS
    from mmfree.host.commands import Info

    manifest = BITSTREAMS / "ulx3s-85f" / "manifest.json"
    gateware = bytes.fromhex(json.loads(manifest.read_text())["rtlil_sha256"]) if known else b"\x5a" * 32

    def report_gateware(type, payload, reply_type, reply):
        if type == Command.INFO and reply_type == Reply.INFO:
            return dataclasses.replace(Info.decode(reply), gateware_hash=gateware).encode()
        return reply

    report = selftest(LyingDevice(replies=report_gateware).transport(), model=model, tokens=2, progress=False)
    detail = steps(report)["link"].detail
    assert report.passed and gateware.hex() in detail
    assert (f"the bitstream of {manifest}" if known else "not a bitstream the package ships") in detail

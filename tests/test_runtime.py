"""The runtime layer above the link: the command layer's payloads, the golden device through real frames (clean and
lossy lines), generation bit-exact with the golden model and the device's sampler, errors, and ``mmfree run``."""

import dataclasses
import json
import random
import zlib
from pathlib import Path

import numpy as np
import pytest

from mmfree.host import commands
from mmfree.host.cli import main
from mmfree.host.commands import (MAX_READ, MAX_STREAM_WORDS, MAX_WRITE_WORDS, VERSION, Checksum, Command,
                                  CommandError, DeviceStats, Digest, Done, ErrorCode, ErrorReport, Generate, GetInfo,
                                  GetStats, Info, Next, Read, Readback, Region, Reply, Reset, Stream, Target, Token,
                                  Write, decode_reply, decode_request)
from mmfree.host.compiler import CORES, FitError, compile_model
from mmfree.host.fixed import Scalar
from mmfree.host.golden import GoldenModel
from mmfree.host.golden_device import GoldenDevice
from mmfree.host.gumbel import GumbelSampler
from mmfree.host.hf_import import import_hf
from mmfree.host.isa import Slot
from mmfree.host.link import DeviceModel, VersionMismatch
from mmfree.host.model import ModelConfig, random_model
from mmfree.host.models import resolve_model
from mmfree.host.protocol import MAX_PAYLOAD
from mmfree.host.runtime import Accelerator, DigestMismatch, GatewareMismatch, Stats
from mmfree.host.synthetic import write_hf_checkpoint
from mmfree.host.tokenizer import make_tokenizer
from mmfree.host.transport import InProcessTransport, parse_url
from test_host_link import FakeLine

UP5K = CORES["icebreaker"]


@pytest.fixture(scope="module")
def demo():
    return resolve_model("demo")


@pytest.fixture(scope="module")
def hf_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf")
    write_hf_checkpoint(folder, ModelConfig(vocab_size=250, hidden_size=32, num_layers=2, intermediate_size=64),
                        dtype="bf16", seed=4)
    with pytest.warns(UserWarning, match="no tokenizer.json"):
        return import_hf(folder)


class Reference:
    """The golden model and the device's sampler, run directly: what the device must produce."""

    def __init__(self, model, prompt):
        self.golden = GoldenModel(model)
        self.acc, self.scales, self.state = self.golden.forward_int(prompt)

    def generate(self, n, temperature, seed):
        sampler, inv_t = GumbelSampler(seed), GumbelSampler.inverse_temperature(temperature)
        tokens = []
        for _ in range(n):
            tokens.append(sampler.sample(self.acc[-1], self.scales[-1], inv_t))
            self.acc, self.scales, self.state = self.golden.forward_int([tokens[-1]], self.state)
        return tokens


def golden_accelerator(handler=None, core=UP5K, **kwargs):
    """An accelerator on a golden device with ``core`` through real frames; ``handler`` wraps the device's when
    given."""
    device = GoldenDevice(core)
    model = DeviceModel(handler=handler(device) if handler else device.handle)
    return Accelerator(InProcessTransport(model), progress=False, **kwargs)


# -- the command layer's payloads ----------------------------------------------------------------------------------

MESSAGES = [
    GetInfo(), Reset(), GetStats(), Next(),
    Write(Region.PROGRAM, 7, [1, 2 ** 64 - 1]), Write(Region.IMAGE, 2 ** 32 - 1, range(MAX_WRITE_WORDS)),
    Digest(Region.IMAGE, 16384), Read(Target.STATE, 2, MAX_READ, 100),
    Generate([1, 2, 3], 10, None, 5, True), Generate(range(Generate.capacity(False)), 2 ** 32 - 1),
    Generate([70000] * Generate.capacity(True), 0, Scalar.from_float(1.25, 16), 2 ** 32 - 1, False),
    Generate([], 3, None, 1, False),
    Info(VERSION, UP5K, 30_000_000, bytes(range(32))), Checksum(0xDEADBEEF),
    Readback(100, Scalar(0x8000, -35, 16), [-(2 ** 63), 2 ** 63 - 1, 0] * 10), Readback(3, None, [1]),
    DeviceStats(1, 2, 2 ** 64 - 1), Token(64, 12345), Done(5, 2 ** 40), ErrorReport(0x12, 4, 16399, 16384),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_messages_round_trip(message):
    payload = message.encode()
    assert len(payload) <= MAX_PAYLOAD
    assert type(message).decode(payload) == message
    if message.TYPE in Command._value2member_map_:
        assert decode_request(message.TYPE, payload) == message


def test_payload_layouts_are_big_endian_and_fixed():
    assert Write(Region.PROGRAM, 0x01020304, [0x1122334455667788]).encode() == \
        bytes([1, 1, 1, 2, 3, 4, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88])
    assert Generate([0x1234], 5, Scalar(0x8001, -3, 16), 9, True).encode() == \
        bytes([1, 1, 0, 0, 0, 5, 0x80, 0x01, 0xFF, 0xFD, 0, 0, 0, 9, 0x12, 0x34])
    assert Generate([0x12345], 0, None, 1, False).encode()[:2] == bytes([commands.WIDE_IDS, 1])
    assert len(Info(VERSION, UP5K, 0).encode()) == 54
    assert Info.decode(Info(VERSION, CORES["large"], 0).encode()).core == CORES["large"]
    assert Stream([1, 2]).encode() == bytes([2]) + (1).to_bytes(8, "big") + (2).to_bytes(8, "big")
    assert len(Stream(range(MAX_STREAM_WORDS)).encode()) == 249
    assert Generate([7], 0, stream=True).encode()[:2] == bytes([commands.RESET_STATE | commands.STREAM, 1])
    assert ErrorReport(0x20, 6, 70, 65).encode() == bytes([0x20, 6, 0, 0, 0, 70, 0, 0, 0, 65])
    assert len(Write(Region.IMAGE, 0, range(MAX_WRITE_WORDS)).encode()) == 254
    assert len(Generate(range(121), 1).encode()) == 256 and len(Readback(1, None, range(MAX_READ)).encode()) == 249
    assert (Reply.TOKEN, Reply.DONE, Reply.ERROR) == (0xA1, 0xA2, 0xFF)
    assert all(reply == command | 0x80 for command, answers in commands.ANSWERS.items() for reply in answers
               if command is not Command.NEXT)


@pytest.mark.parametrize("type_, payload, code, message", [
    (Command.WRITE, bytes([0, 2, 0, 0, 0, 0]) + bytes(8), ErrorCode.MALFORMED, "14 bytes where its layout needs 22"),
    (Command.WRITE, bytes([5, 1, 0, 0, 0, 0]) + bytes(8), ErrorCode.BAD_REGION, "no region or read target 5"),
    (Command.WRITE, bytes(6), ErrorCode.BAD_VALUE, "1 … 31 words per request, not 0"),
    (Command.WRITE, bytes(3), ErrorCode.MALFORMED, "3 bytes where its layout needs 6"),
    (Command.DIGEST, b"\x00", ErrorCode.MALFORMED, "DIGEST: malformed payload"),
    (Command.READ, bytes([7, 0, 1, 0, 0, 0, 0]), ErrorCode.BAD_REGION, "READ: no region or read target 7"),
    (Command.READ, bytes(7), ErrorCode.BAD_VALUE, "1 … 30 values per request, not 0"),
    (Command.GENERATE, bytes([8]) + bytes(13), ErrorCode.BAD_VALUE, "payload byte 0 holds 8"),
    (Command.STREAM, bytes([2]) + bytes(8), ErrorCode.MALFORMED, "9 bytes where its layout needs 17"),
    (Command.STREAM, bytes([0]), ErrorCode.BAD_VALUE, "1 … 31 words per request, not 0"),
    (Command.GENERATE, bytes([0, 0, 0, 0, 0, 1, 0, 1]) + bytes(6), ErrorCode.BAD_VALUE, "normalized 16-bit"),
    (Command.GENERATE, bytes([0, 2]) + bytes(12) + bytes(2), ErrorCode.MALFORMED, "16 bytes where its layout needs 18"),
    (Command.RESET, b"x", ErrorCode.MALFORMED, "RESET: malformed payload: 1 bytes where its layout needs 0"),
    (0x30, b"", ErrorCode.UNKNOWN_COMMAND, "request type 0x30 is not a command"),
])
def test_malformed_requests(type_, payload, code, message):
    with pytest.raises(CommandError, match=message) as error:
        decode_request(type_, payload)
    assert error.value.code == code and isinstance(error.value, ValueError)


def test_malformed_replies_and_reported_errors():
    with pytest.raises(CommandError, match="malformed payload: 1 bytes where its layout needs 54"):
        decode_reply(Command.INFO, Reply.INFO, b"\x01")
    with pytest.raises(CommandError, match=r"NEXT answered with response type 0x91 \(expected 0xa1, 0xa2\)"):
        decode_reply(Command.NEXT, Reply.INFO, b"")
    with pytest.raises(CommandError, match="WRITE: malformed"):
        decode_reply(Command.WRITE, Reply.WRITE, b"x")
    assert decode_reply(Command.WRITE, Reply.WRITE, b"") is None
    report = ErrorReport(Command.WRITE, ErrorCode.OUT_OF_RANGE, 16399, 16384)
    with pytest.raises(CommandError, match="WRITE: 16399 is out of range: there are 16384") as error:
        decode_reply(Command.WRITE, Reply.ERROR, report.encode())
    assert (error.value.code, error.value.value, error.value.limit) == (ErrorCode.OUT_OF_RANGE, 16399, 16384)
    with pytest.raises(CommandError, match="error code 99"):
        decode_reply(Command.RESET, Reply.ERROR, ErrorReport(Command.RESET, 99).encode())


@pytest.mark.parametrize("make, message", [
    (lambda: Write(Region.IMAGE, 0, []), "1 … 31 words"),
    (lambda: Write(Region.IMAGE, -1, [0]).encode(), "does not fit its width"),
    (lambda: Write(Region.IMAGE, 0, [2 ** 64]).encode(), "does not fit its width"),
    (lambda: Digest(2, 1), "no region or read target 2"),
    (lambda: Generate(range(122), 1), "at most 121 prompt ids"),
    (lambda: Generate([70000] * 61, 1), "at most 60 prompt ids"),
    (lambda: Generate([1], 1, Scalar(1, 0, 16)), "normalized 16-bit Scalar"),
    (lambda: Generate([1], 2 ** 32).encode(), "does not fit its width"),
    (lambda: Info(VERSION, UP5K, 0, b"short"), "32 bytes"),
])
def test_encoders_reject_bad_fields(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_program_words_and_digest(demo):
    program = compile_model(demo, UP5K)
    words = commands.instruction_words(program.instructions)
    assert len(words) == commands.WORDS_PER_INSTRUCTION * len(program.instructions)
    assert commands.words_instructions(words) == program.instructions
    assert int(words[0]) == program.instructions[0] & (2 ** 64 - 1)
    assert commands.digest(program.image) == zlib.crc32(program.image.astype("<u8").tobytes())
    assert commands.region_words(UP5K, Region.PROGRAM) == 4 * UP5K.program_instructions


# -- generation on the golden device, bit-exact ----------------------------------------------------------------------

@pytest.mark.parametrize("which", ["demo", "hf"])
def test_golden_url_generates_bit_exact(which, demo, hf_model):
    model = demo if which == "demo" else hf_model
    prompt = [5, 6, 7, 1] if which == "demo" else [1, 249, 0, 42]
    with Accelerator.open("golden://", progress=False) as acc:
        assert acc.info.core == UP5K and acc.info.clock_hz == 0 and acc.info.gateware_hash == bytes(32)
        acc.load(model)
        assert list(acc.generate(prompt, 12)) == Reference(model, prompt).generate(12, 0.0, 1)
        reference = Reference(model, prompt)
        assert list(acc.generate(prompt, 12, temperature=0.8, seed=7)) == reference.generate(12, 0.8, 7)
        for layer in range(model.config.num_layers):  # the state after DONE has every generated token in it
            np.testing.assert_array_equal(acc.read("state", layer)[0], reference.state[layer])
        logits, scale = acc.read(Target.LOGITS)
        np.testing.assert_array_equal(logits, reference.acc[-1])
        assert scale == reference.scales[-1] and len(logits) == model.config.vocab_size
        # continuing: no prompt, a new seed, from the logits the device holds
        assert list(acc.generate([], 5, 1.0, 99, reset=False)) == reference.generate(5, 1.0, 99)
        x, unit = acc.read("slot", Slot.X)
        assert len(x) == model.config.hidden_size and unit is not None
        assert acc.device_stats() == DeviceStats(2 * len(prompt) + 29, 29, 0)
        stats = acc.stats
        assert stats.tokens == 29 and stats.cycles is None and stats.tokens_per_s is None
        assert stats.bytes_sent > 8 * len(acc.program.image) and stats.bytes_received > 0
        assert stats.wall_s_per_token > 0 and "29 tokens" in stats.summary()


def test_streamed_generation_equals_resident(demo, hf_model):
    """golden://large streams every token's matrices and embedding row over the link: the same tokens, state and
    logits as the resident program; a run that owes words blocks the commands that need its result."""
    for model, prompt in ((demo, [5, 6, 7]), (hf_model, [1, 249, 0])):
        with Accelerator.open("golden://large", progress=False) as acc:
            program = acc.load(model, stream=True)
            assert program.pass_length > 0 and len(program.image) < len(program.segment)
            assert list(acc.generate(prompt, 6)) == Reference(model, prompt).generate(6, 0.0, 1)
            reference = Reference(model, prompt)
            assert list(acc.generate(prompt, 6, temperature=0.8, seed=7)) == reference.generate(6, 0.8, 7)
            np.testing.assert_array_equal(acc.read("state", 0)[0], reference.state[0])
            np.testing.assert_array_equal(acc.read("logits")[0], reference.acc[-1])
            assert acc.device_stats().tokens_run == 2 * (len(prompt) + 6)
            assert acc.stats.bytes_sent > 8 * 2 * (len(prompt) + 6) * program.pass_length

    acc = golden_accelerator(core=CORES["large"])
    program = acc.load(demo, stream=True)
    acc.call(Generate([3], 2, stream=True))
    acc.call(Stream(program.pass_words(3)[:MAX_STREAM_WORDS]))
    owed = program.pass_length - MAX_STREAM_WORDS
    with pytest.raises(CommandError, match=f"NEXT: the run in progress still needs {owed} words") as e:
        acc.call(Next())
    assert e.value.code == ErrorCode.STREAM_SHORT
    words = program.pass_words(3)
    for first in range(MAX_STREAM_WORDS, len(words) - 1, MAX_STREAM_WORDS):
        acc.call(Stream(words[first:min(first + MAX_STREAM_WORDS, len(words) - 1)]))
    with pytest.raises(CommandError, match=f"STREAM: {MAX_STREAM_WORDS} is out of range: there are 1"):
        acc.call(Stream(words[:MAX_STREAM_WORDS]))
    acc.reset()  # abandons the run
    with pytest.raises(CommandError, match="STREAM: 1 is out of range: there are 0"):
        acc.call(Stream([0]))
    assert list(acc.generate([3, 4], 3)) == Reference(demo, [3, 4]).generate(3, 0.0, 1)
    with Accelerator.open("golden://", progress=False) as resident:
        with pytest.raises(CommandError, match="STREAM: request type 0x17 is not a command"):
            resident.call(Stream([0]))


def test_long_prompt_goes_in_several_requests(hf_model):
    prompt = np.random.default_rng(3).integers(0, 250, Generate.capacity(False) + 9).tolist()
    with Accelerator.open("golden://", progress=False) as acc:
        acc.load(compile_model(hf_model, UP5K))  # a program compiled beforehand loads as well
        assert list(acc.generate(prompt, 3, 0.5, 3)) == Reference(hf_model, prompt).generate(3, 0.5, 3)
        assert acc.device_stats().tokens_run == len(prompt) + 3


def test_lossy_corrupting_line(hf_model):
    """A line that flips bits, drops bytes and cuts frames both ways: the load and the tokens still come out right
    (lost WRITE responses behind later ones cost a new session and the batch again)."""
    device = GoldenDevice()
    line = FakeLine(DeviceModel(handler=device.handle), random.Random(6), p_up=0.08, p_down=0.08)
    acc = Accelerator(line, progress=False, retries=40)
    acc.load(hf_model)
    prompt = [3, 4, 5]
    assert list(acc.generate(prompt, 8, 0.7, 2)) == Reference(hf_model, prompt).generate(8, 0.7, 2)
    assert acc.link.retransmissions > 0 and line.writes > acc.link.retransmissions


# -- errors -------------------------------------------------------------------------------------------------------

def test_command_errors_leave_the_session_usable(demo):
    acc = golden_accelerator()
    with pytest.raises(CommandError, match=r"READ: nothing loaded \(weight image and program never written\)") as e:
        acc.read("state", 0)
    assert e.value.code == ErrorCode.NOT_LOADED
    with pytest.raises(CommandError, match="GENERATE: nothing loaded"):
        acc.generate([1], 3)
    next_ = acc.link.request(Next().encode(), type=Command.NEXT)
    with pytest.raises(CommandError, match="NEXT: no generation in progress"):
        decode_reply(Command.NEXT, next_.type, next_.payload)
    unknown = acc.link.request(b"", type=0x30)
    assert unknown.type == Reply.ERROR and ErrorReport.decode(unknown.payload).code == ErrorCode.UNKNOWN_COMMAND
    acc.load(demo)
    with pytest.raises(CommandError, match=r"GENERATE: token id 65 is outside the vocabulary \(0 … 64\)") as e:
        acc.generate([3, 65], 5)
    assert (e.value.code, e.value.value, e.value.limit) == (ErrorCode.BAD_TOKEN, 65, 65)
    with pytest.raises(CommandError, match="READ: no token has run since the last RESET"):
        acc.read("logits")
    with pytest.raises(CommandError, match="GENERATE: no token has run"):
        acc.generate([], 2, reset=False)
    assert len(list(acc.generate([3], 2))) == 2
    with pytest.raises(CommandError, match="READ: 4 is out of range: there are 4"):
        acc.read("slot", 4)
    with pytest.raises(CommandError, match="READ: 3 is out of range: there are 3"):
        acc.read("state", 3)
    with pytest.raises(ValueError, match="read what must be one of slot, state, logits"):
        acc.read("registers")
    acc.reset()
    with pytest.raises(CommandError, match="no token has run"):
        acc.read("state", 0)
    assert list(acc.generate([3, 4], 4)) == Reference(demo, [3, 4]).generate(4, 0.0, 1)


@pytest.mark.parametrize("args, error, message", [
    (([], 3), ValueError, "at least one token"), (([1], -1), ValueError, "max_new_tokens must lie in"),
    (([1], 3, 0.0, 2 ** 32), ValueError, "seed must lie in"), (([1], 3, -1.0), ValueError, "temperature must be"),
    (("ab", 3), TypeError, "prompt token id must be an int, not str"), (([1], 2.5), TypeError, "max_new_tokens"),
])
def test_generate_checks_arguments(args, error, message):
    with pytest.raises(error, match=message):
        golden_accelerator().generate(*args)


def test_a_later_generation_ends_an_earlier_one(demo):
    acc = golden_accelerator()
    acc.load(demo)
    first = acc.generate([1, 2], 5)
    next(first)
    second = acc.generate([1, 2], 5)
    with pytest.raises(RuntimeError, match="ended by a later generate"):
        next(first)
    assert len(list(second)) == 5


def test_digest_mismatch(demo):
    def flips_a_bit(device):
        def handle(type, payload):
            if type == Command.WRITE and payload[0] == Region.IMAGE and payload[2:6] == bytes(4):
                payload = payload[:-1] + bytes([payload[-1] ^ 1])  # the device's memory takes a wrong word
            return device.handle(type, payload)
        return handle

    acc = golden_accelerator(flips_a_bit)
    with pytest.raises(DigestMismatch, match=r"image: the device's CRC-32 of its 16,193 words is 0x"):
        acc.load(demo)
    assert acc.program is None


def test_model_that_does_not_fit_fails_before_sending():
    acc = golden_accelerator()
    sent = acc.stats.bytes_sent
    big = random_model(ModelConfig(vocab_size=40, hidden_size=512, num_layers=1, intermediate_size=512))
    with pytest.raises(FitError, match="vector length H: needs 512, the icebreaker core has 256"):
        acc.load(big)
    assert acc.stats.bytes_sent == sent


def test_load_checks_programs_and_hashes(demo):
    acc = golden_accelerator()
    other = compile_model(demo, dataclasses.replace(UP5K, name="big", weight_words=1 << 15))
    with pytest.raises(ValueError, match="compiled for CoreParams"):
        acc.load(other)
    with pytest.raises(TypeError, match="load takes a Model or a Program, not str"):
        acc.load("demo")
    assert golden_accelerator(expected_hash="00" * 32).info.gateware_hash == bytes(32)
    with pytest.raises(GatewareMismatch, match="the device runs gateware 0000.*, expected 0101"):
        golden_accelerator(expected_hash=b"\x01" * 32)
    with pytest.raises(ValueError, match="expected_hash must be 32 bytes or 64 hex digits"):
        golden_accelerator(expected_hash="abc")

    def version_2(device):
        def handle(type, payload):
            if type == Command.INFO:
                return Reply.INFO, bytes([VERSION + 1]) + device.handle(type, payload)[1][1:]
            return device.handle(type, payload)
        return handle

    with pytest.raises(VersionMismatch, match=f"command layer is version {VERSION + 1}, this host speaks {VERSION}"):
        golden_accelerator(version_2)
    assert parse_url("golden://") == ("golden", "icebreaker", {})
    with pytest.raises(ValueError, match="no core 'nope' for golden://; known: icebreaker"):
        Accelerator.open("golden://nope")


def test_stats_at_a_known_clock():
    stats = Stats(10, 1000, 1500, 30_000_000, 5, 6, 0.02)
    assert stats.tokens_per_s == 300_000 and stats.wall_s_per_token == 0.002
    assert "100 cycles/token = 300,000.0 tokens/s at 30 MHz" in stats.summary()


# -- the command line ---------------------------------------------------------------------------------------------

def test_cli_run_on_golden(demo, capsys):
    tokenizer = make_tokenizer(demo.tokenizer)
    prompt = tokenizer.encode("ROMEO:")
    expected = tokenizer.decode(Reference(demo, prompt).generate(20, demo.generation["temperature"], 1))
    assert main(["run", "--device", "golden://", "--model", "demo", "-n", "20", "ROMEO:"]) == 0
    out, err = capsys.readouterr()
    assert out == "ROMEO:" + expected + "\n"
    assert "20 tokens" in err and "no clock" in err
    greedy = tokenizer.decode(Reference(demo, prompt).generate(10, 0.0, 1))
    assert main(["run", "--device", "golden://", "--model", "demo", "-n", "10", "--temperature", "0", "ROMEO:"]) == 0
    assert capsys.readouterr().out == "ROMEO:" + greedy + "\n"
    assert main(["run", "--device", "nope://x", "--model", "demo", "hi"]) == 1
    assert "unknown device URL scheme 'nope'" in capsys.readouterr().err


def test_a_board_must_run_known_gateware(tmp_path, monkeypatch):
    """Any of several hashes may be expected; a serial device must report a known bitstream's hash (the shipped
    ones, or a build here), a virtual board or the golden device none, and --any-gateware lifts the check."""
    from mmfree.host.build import BITSTREAMS, known_gateware
    from mmfree.host.run_cmd import expected_gateware

    assert golden_accelerator(expected_hash=[b"\x01" * 32, bytes(32)]).info.gateware_hash == bytes(32)
    with pytest.raises(GatewareMismatch, match="expected 0101.* or 0202"):
        golden_accelerator(expected_hash=[b"\x01" * 32, b"\x02" * 32])
    monkeypatch.chdir(tmp_path)
    shipped = json.loads((BITSTREAMS / "ulx3s-85f" / "manifest.json").read_text())["rtlil_sha256"]
    assert expected_gateware("serial:///dev/ttyUSB1") == [bytes.fromhex(shipped)]
    (tmp_path / "build" / "icebreaker").mkdir(parents=True)
    (tmp_path / "build" / "icebreaker" / "manifest.json").write_text(json.dumps({"rtlil_sha256": "ab" * 32}))
    assert set(known_gateware().values()) == {BITSTREAMS / "ulx3s-85f" / "manifest.json",
                                              Path("build") / "icebreaker" / "manifest.json"}
    assert bytes.fromhex("ab" * 32) in expected_gateware("/dev/ttyUSB1")
    for url in ("sim://icebreaker", "golden://", "socket://localhost:5000"):
        assert expected_gateware(url) is None
    assert expected_gateware("serial:///dev/ttyUSB1", any_gateware=True) is None

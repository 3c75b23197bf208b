# amaranth: UnusedElaboratable=no

"""The accelerator top on the virtual board (``sim://icebreaker``, ``sim://large``) answers like the golden device:
the same tokens, state and logits, the same errors, through the fast link and through the UART pins, with resident
and with streamed weights."""

import struct
import time
from dataclasses import replace

import numpy as np
import pytest

from mmfree.host.commands import RESET_STATE, STREAM, Command, CommandError, ErrorCode, Reply
from mmfree.host.compiler import CORES, compile_model
from mmfree.host.hf_import import import_hf
from mmfree.host.isa import Slot
from mmfree.host.model import ModelConfig, random_model
from mmfree.host.models import resolve_model
from mmfree.host.runtime import Accelerator
from mmfree.host.selftest import selftest
from mmfree.host.synthetic import write_hf_checkpoint
from mmfree.host.transport import SIM_REPLY_TIMEOUT, SocketTransport
from mmfree.sim.boards import BOARDS
from mmfree.sim.virtual_board import read_trace

PROMPT = [ord(c) - 32 for c in "ROMEO:"]  # the demo model's vocabulary is printable ASCII from the space


def session(board, program, prompt, tokens, temperature=0.0, seed=1):
    """Load ``program``, generate ``tokens`` tokens after ``prompt`` (greedy, or sampled at ``temperature`` from
    ``seed``), read back the state of every layer, the logits and every slot:
    ``(tokens, states, logits, slots, stats)``."""
    board.load(program)
    generated = list(board.generate(prompt, tokens, temperature=temperature, seed=seed))
    states = []
    while True:
        try:
            states.append(board.read("state", len(states)))
        except CommandError as error:
            assert error.code == ErrorCode.OUT_OF_RANGE and error.value == error.limit == len(states) > 0
            break
    slots = [board.read("slot", slot) for slot in Slot]
    return generated, states, board.read("logits"), slots, board.stats


def expect_same(golden, device):
    tokens, states, logits, slots, _ = device
    assert tokens == golden[0]
    assert len(states) == len(golden[1])
    for layer, ((values, scale), (want, want_scale)) in enumerate(zip(states, golden[1])):
        assert np.array_equal(values, want), f"layer {layer}: state differs"
        assert scale is None and want_scale is None
    assert np.array_equal(logits[0], golden[2][0]) and logits[1] == golden[2][1]
    for (values, scale), (want, want_scale) in zip(slots, golden[3]):
        assert np.array_equal(values, want) and scale == want_scale


def golden_session(program, prompt, tokens, url="golden://", **sampling):
    with Accelerator.open(url, progress=False) as golden:
        return session(golden, program, prompt, tokens, **sampling)


def test_demo_model_matches_the_golden_device(capsys, tmp_path):
    program = compile_model(resolve_model("demo"))
    golden = golden_session(program, PROMPT, 3)
    sampled = golden_session(program, PROMPT, 4, temperature=0.8, seed=7)
    board = BOARDS["icebreaker"].virtual_board()
    with board.serve(progress=print, trace_path=tmp_path / "trace") as running:
        transport = SocketTransport(running.connect(), reply_timeout=SIM_REPLY_TIMEOUT)
        with Accelerator(transport, progress=False) as acc:
            assert acc.info.core == CORES["icebreaker"] and acc.info.clock_hz == 30_000_000
            start = time.perf_counter()
            result = session(acc, program, PROMPT, 3)
            wall = time.perf_counter() - start
            # seeded sampling on the device, token for token with the golden device's sampler
            expect_same(sampled, session(acc, program, PROMPT, 4, temperature=0.8, seed=7))
            # a command error, then the next request succeeds
            with pytest.raises(CommandError, match="token id 65 is outside the vocabulary") as error:
                acc.generate([65], 1)
            assert (error.value.code, error.value.value, error.value.limit) == (ErrorCode.BAD_TOKEN, 65, 65)
            assert list(acc.generate([PROMPT[0]], 1)) == [golden_next(program, PROMPT[0])]
            checks = [(frame.type, bytes(frame.payload))
                      for frame in (acc.link.request(payload, type=type) for type, payload in RANGE_REQUESTS)]
            runs = acc.device_stats().tokens_run
    expect_same(golden, result)
    with Accelerator.open("golden://", progress=False) as acc:
        acc.load(program)
        list(acc.generate([PROMPT[0]], 1))
        want = [(frame.type, bytes(frame.payload))
                for frame in (acc.link.request(payload, type=type) for type, payload in RANGE_REQUESTS)]
    assert checks == want
    # the per-instruction trace: every run goes through the whole program, in order
    trace = read_trace(tmp_path / "trace", program)
    length = len(program.instructions)
    assert [pc for _, pc, _, _ in trace] == list(range(length)) * runs
    assert trace[2][2] == "layer 0 f_proj (FORGET)" and all(cycles > 0 for *_, cycles in trace[:-1])
    stats = result[4]
    with capsys.disabled():
        print(f"\nsim://icebreaker, demo model: {running.stats['cycles']:,} cycles simulated in "
              f"{running.stats['seconds']:.1f} s = {running.stats['cycles_per_second'] / 1e6:.2f} M cycles/s; "
              f"load + 3 tokens + read-back {wall:.1f} s wall; {stats.summary()}")


#: raw requests whose offsets and counts reach the ends of what they address, after a token has run: READ offsets
#: beyond the logits (in the low 16 bits and above them), READs cut short at the end, WRITE and DIGEST beyond their
#: regions
RANGE_REQUESTS = [
    (Command.READ, struct.pack(">BBBI", 2, 0, 4, 1 << 16)), (Command.READ, struct.pack(">BBBI", 2, 0, 4, 0xFFFF)),
    (Command.READ, struct.pack(">BBBI", 2, 0, 30, 60)), (Command.READ, struct.pack(">BBBI", 2, 0, 30, 95)),
    (Command.WRITE, struct.pack(">BBI", 0, 1, 0xFFFFFFF0) + bytes(8)),
    (Command.DIGEST, struct.pack(">BI", 0, 16385)), (Command.DIGEST, struct.pack(">BI", 1, 129)),
    (Command.DIGEST, struct.pack(">BI", 1, 0)),
]


def golden_next(program, token):
    with Accelerator.open("golden://", progress=False) as golden:
        golden.load(program)
        return next(golden.generate([token], 1))


#: raw (type, payload) requests whose answers must equal the golden device's byte for byte, errors included (DIGESTs
#: cover written words only: the simulated memories start random, the golden device's at zero)
RAW_REQUESTS = [
    (0x30, b""), (Command.INFO, b"\x00"), (Command.STATS, b""), (Command.NEXT, b""), (Command.RESET, b""),
    (Command.WRITE, struct.pack(">BBI", 2, 1, 0) + bytes(8)), (Command.WRITE, struct.pack(">BBI", 0, 0, 0)),
    (Command.WRITE, struct.pack(">BBI", 0, 5, 16380) + bytes(40)), (Command.WRITE, b"\x00\x01"),
    (Command.WRITE, struct.pack(">BBI", 1, 2, 0) + bytes(9)),
    (Command.DIGEST, struct.pack(">BI", 1, 200)), (Command.DIGEST, struct.pack(">BI", 0, 0)),
    (Command.READ, struct.pack(">BBBI", 3, 0, 1, 0)), (Command.READ, struct.pack(">BBBI", 0, 0, 0, 0)),
    (Command.READ, struct.pack(">BBBI", 1, 0, 4, 0)),
    (Command.GENERATE, struct.pack(">BBIHhI", 4, 0, 1, 0, 0, 1)), (Command.GENERATE, b"\x01\x00"),
    (Command.GENERATE, struct.pack(">BBIHhIH", 1, 1, 1, 0, 0, 1, 3)),
    # a program of CONFIG instructions (zero words) has no END
    (Command.WRITE, struct.pack(">BBI", 1, 3, 0) + struct.pack(">3Q", 1 << 40, 3, 1 << 63)),
    (Command.WRITE, struct.pack(">BBI", 0, 9, 0) + struct.pack(">9Q", *(0x0123456789ABCDEF * k for k in range(9)))),
    (Command.DIGEST, struct.pack(">BI", 1, 3)), (Command.DIGEST, struct.pack(">BI", 0, 9)),
    (Command.GENERATE, struct.pack(">BBIHhIH", 1, 1, 1, 0, 0, 1, 3)), (Command.STATS, b""),
]


def test_sim_url_answers_like_the_golden_device():
    answers = {}
    for url in ("golden://", "sim://icebreaker"):
        with Accelerator.open(url, progress=False) as acc:
            answers[url] = [(frame.type, bytes(frame.payload))
                            for frame in (acc.link.request(payload, type=type) for type, payload in RAW_REQUESTS)]
            assert acc.device_stats().tokens_run == 0
    for (type, payload), golden, device in zip(RAW_REQUESTS, *answers.values()):
        assert device == golden, f"request 0x{type:02x} {payload.hex()}: device {device}, golden {golden}"


def test_the_ulx3s_virtual_board_passes_the_selftest():
    """The pipelined core behind the command layer: DIGEST and the memory test wait out its debug port's longer
    latencies (6 cycles for the weight image), the known answer and the tokens match."""
    model = random_model(ModelConfig(vocab_size=65, hidden_size=16, num_layers=2, intermediate_size=32), seed=5,
                         tokenizer=resolve_model("demo").tokenizer)
    report = selftest("sim://ulx3s-85f", model=model, tokens=4, progress=False)
    assert report.passed, report.table()


@pytest.mark.filterwarnings("ignore:.*no tokenizer.json")
def test_small_model_through_the_uart_pins(tmp_path, capsys):
    config = ModelConfig(vocab_size=50, hidden_size=40, num_layers=2, intermediate_size=72)
    write_hf_checkpoint(tmp_path / "hf", config, dtype="bf16", seed=3)
    program = compile_model(import_hf(tmp_path / "hf"), replace(CORES["icebreaker"], name="icebreaker"))
    golden = golden_session(program, [1, 49, 0], 2, temperature=1.0, seed=3)
    greedy = golden_session(program, [7, 3], 2)
    board = BOARDS["icebreaker"].virtual_board(link="uart")
    with board.serve(progress=print) as running:
        transport = SocketTransport(running.connect(), reply_timeout=SIM_REPLY_TIMEOUT)
        with Accelerator(transport, progress=False) as acc:
            result = session(acc, program, [1, 49, 0], 2, temperature=1.0, seed=3)
            expect_same(greedy, session(acc, program, [7, 3], 2))
    expect_same(golden, result)
    with capsys.disabled():
        print(f"\nsim://icebreaker through the UART pins ({len(program.image):,} image words): "
              f"{running.stats['cycles']:,} cycles in {running.stats['seconds']:.1f} s = "
              f"{running.stats['cycles_per_second'] / 1e6:.2f} M cycles/s")


def stream_requests(program):
    """Raw requests around a streamed run: errors, a run left short, RESET abandoning it, then a whole run."""
    words = program.pass_words(3)
    stream = [(Command.STREAM, struct.pack(">B", len(chunk)) + chunk.astype(">u8").tobytes())
              for chunk in (words[k:k + 31] for k in range(0, len(words), 31))]
    generate = struct.pack(">BBIHhIH", RESET_STATE | STREAM, 1, 1, 0, 0, 1, 3)
    return [
        (Command.STREAM, b"\x00"), (Command.STREAM, struct.pack(">BQ", 1, 7)),
        (Command.GENERATE, struct.pack(">BBIHhIHH", STREAM, 2, 1, 0, 0, 1, 3, 4)),
        (Command.GENERATE, generate), stream[0], (Command.NEXT, b""), (Command.READ, struct.pack(">BBBI", 2, 0, 1, 0)),
        stream[1], (Command.RESET, b""), (Command.STATS, b""), (Command.NEXT, b""),
        (Command.GENERATE, generate), *stream, (Command.STATS, b""), (Command.NEXT, b""), (Command.STREAM, stream[0][1]),
        (Command.READ, struct.pack(">BBBI", 2, 0, 4, 0)), (Command.STATS, b""),
    ]


def test_streamed_generation_on_the_large_board(capsys):
    """sim://large takes each token's matrices and embedding row from STREAM requests: tokens, state, logits and
    slots equal golden://large's, greedy and sampled; errors around a streamed run are answered byte for byte alike."""
    program = compile_model(resolve_model("demo"), CORES["large"], stream=True)
    golden = golden_session(program, PROMPT[:3], 2, url="golden://large")
    sampled = golden_session(program, PROMPT[:2], 2, url="golden://large", temperature=0.8, seed=7)
    raw = stream_requests(program)
    answers = {}
    with Accelerator.open("golden://large", progress=False) as acc:
        session(acc, program, PROMPT[:3], 2)
        session(acc, program, PROMPT[:2], 2, temperature=0.8, seed=7)
        answers["golden"] = [(f.type, bytes(f.payload)) for f in (acc.link.request(p, type=t) for t, p in raw)]
    board = BOARDS["large"].virtual_board()
    with board.serve(progress=print) as running:
        transport = SocketTransport(running.connect(), reply_timeout=SIM_REPLY_TIMEOUT)
        with Accelerator(transport, progress=False) as acc:
            assert acc.info.core == CORES["large"]
            start = time.perf_counter()
            result = session(acc, program, PROMPT[:3], 2)
            wall = time.perf_counter() - start
            expect_same(sampled, session(acc, program, PROMPT[:2], 2, temperature=0.8, seed=7))
            answers["device"] = [(f.type, bytes(f.payload)) for f in (acc.link.request(p, type=t) for t, p in raw)]
    expect_same(golden, result)
    for (type, payload), want, got in zip(raw, *answers.values()):
        kept = {Reply.TOKEN: 4, Reply.STATS: 16}.get(want[0])  # the golden device has no clock to count cycles with
        if kept:
            want, got = (want[0], want[1][:kept]), (got[0], got[1][:kept])
        assert got == want, f"request 0x{type:02x} {payload[:16].hex()}…: device {got}, golden {want}"
    with capsys.disabled():
        print(f"\nsim://large, demo model streamed ({program.pass_length:,} words per token): "
              f"{running.stats['cycles']:,} cycles in {running.stats['seconds']:.1f} s = "
              f"{running.stats['cycles_per_second'] / 1e6:.2f} M cycles/s; load + 5 tokens + read-back {wall:.1f} s")

"""Bench of :class:`mmfree.hw.link.LinkDevice` with an echo layer above it, against
:class:`mmfree.host.link.DeviceModel` (the device's rules in Python).

The bench top (built by ``tests/test_link.py``) joins the link to an echo that answers every request with its type
plus ``REPLY_BIT`` and the same payload; its ``stall`` input holds the echo (no request byte read, no response byte
written). In ``mode="bytes"`` the bench drives the link's byte streams directly (random gaps on ``rx``, each byte
held until taken, random back-pressure on ``tx``, the stream rules checked); in ``mode="uart"`` the top has the UART
PHY in front and the bench drives and decodes the pins.

The bench runs *steps*: it feeds a step's bytes to the model and to the device, lets the device's inter-byte timeout
expire when the step ends inside a frame, waits until every frame the model says is required has come out, then a
little longer, and compares. Required: every response to an accepted request (exactly, in order) and the first
link-generated frame of the step (ERROR, HELLO reply or resent response). The device may drop later link-generated
frames of a step (one waits while another is sent, see :mod:`mmfree.hw.link`), so those must only appear in the
model's order. An ERROR's ``expected`` byte is taken as its frame starts, so it may be that of a request accepted
after the error (at most the model's value at the end of the step). Every byte the device sends must decode as an intact frame.

Steps: good requests (payloads of 0 to 256 bytes, every request type), bursts of requests within the credit,
duplicates of the last request, wrong sequence numbers, bit flips in the header, the payload and the CRC,
truncated frames, garbage full of sync bytes before a good frame, unknown types, over-long lengths, HELLO, and
credit overruns (the echo stalled while more than the credit arrives). A good request follows every bad step.

Parameters (:func:`mmfree.sim.benches.params`): ``mode``, ``depth``, ``timeout`` (as built), ``steps``; for
``"uart"`` also ``divisor`` (cycles per bit).
"""

import collections
import random

import cocotb
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge, Timer

from mmfree.host import protocol
from mmfree.host.link import DeviceModel
from mmfree.host.protocol import ERROR, HELLO, HELLO_REPLY, MAX_PAYLOAD, SYNC, Frame, FrameDecoder, encode_frame

from . import params
from .streams import reset

PARAMS = params()
MODE = PARAMS.get("mode", "bytes")
DEPTH, TIMEOUT = PARAMS["depth"], PARAMS["timeout"]
STEPS = PARAMS.get("steps", 1000)
DIVISOR = PARAMS.get("divisor", 10)
CLOCK_NS = 10
MAX_GAP = TIMEOUT // 3   # longest gap between bytes of a step, in cycles (well inside the timeout)
RX_BYTE_CYCLES = 8       # the device takes an offered byte within this many cycles (one bit per cycle)
TX_BYTE_CYCLES = 9       # the device offers a byte this many cycles after the previous one was taken, at most
TIMEOUT_LIMIT = {"timeout_time": 1000, "timeout_unit": "sec"}


class ByteLine:
    """Drives ``rx`` and takes ``tx``: random gaps between bytes (junk payload while not valid), each byte held
    until the device takes it (within ``RX_BYTE_CYCLES``), random back-pressure, random stalls of the echo; checks
    the stream rules on ``tx``."""

    def __init__(self, dut, rng, *, p_gap=0.2, p_back=0.3, p_stall=0.2):
        self.dut, self.rng = dut, rng
        self.p_gap, self.p_back, self.p_stall = p_gap, p_back, p_stall
        self.pending = collections.deque()
        self.received = bytearray()
        self.hold_stall = False
        self.cycle = 0
        cocotb.start_soon(self._run())

    def send(self, data):
        self.pending.extend(data)

    @property
    def busy(self):
        return bool(self.pending)

    async def _run(self):
        dut, rng = self.dut, self.rng
        gap, held, offered = 0, None, 0
        while True:
            if not offered:  # a byte once offered stays offered, unchanged, until it is taken
                sending = bool(self.pending) and gap == 0
                gap = max(gap - 1, 0)
            dut.rx__valid.value = sending
            dut.rx__payload.value = self.pending[0] if sending else rng.getrandbits(8)
            ready = rng.random() >= self.p_back
            dut.tx__ready.value = ready
            dut.stall.value = self.hold_stall or rng.random() < self.p_stall
            await ReadOnly()
            if sending:
                offered += 1
                assert offered <= RX_BYTE_CYCLES, f"cycle {self.cycle}: a byte offered for {offered} cycles"
                if dut.rx__ready.value == 1:
                    self.pending.popleft()
                    offered = 0
                    if rng.random() < self.p_gap:  # one gap at most between two bytes
                        gap = rng.randrange(1, MAX_GAP)
            valid = bool(dut.tx__valid.value)
            payload = int(dut.tx__payload.value) if valid else None
            if held is not None:
                assert valid and payload == held, f"cycle {self.cycle}: tx changed while valid and not ready"
            if valid and ready:
                self.received.append(payload)
            held = payload if valid and not ready else None
            await RisingEdge(dut.clk)
            self.cycle += 1


class UartLine:
    """Drives ``rxd`` with 8N1 bytes (random idle time between them) and decodes ``txd``; stalls the echo at
    random."""

    def __init__(self, dut, rng, *, p_gap=0.2, p_stall=0.2):
        self.dut, self.rng, self.p_gap, self.p_stall = dut, rng, p_gap, p_stall
        self.pending = collections.deque()
        self.received = bytearray()
        self.hold_stall = False
        self.bit_ns = DIVISOR * CLOCK_NS
        dut.rxd.value = 1
        cocotb.start_soon(self._drive())
        cocotb.start_soon(self._decode())
        cocotb.start_soon(self._stall())

    def send(self, data):
        self.pending.extend(data)

    @property
    def busy(self):
        return bool(self.pending)

    async def _stall(self):
        while True:
            self.dut.stall.value = self.hold_stall or self.rng.random() < self.p_stall
            await RisingEdge(self.dut.clk)

    async def _drive(self):
        while True:
            if not self.pending:
                await Timer(self.bit_ns, unit="ns")
                continue
            if self.rng.random() < self.p_gap:
                await Timer(self.rng.randrange(1, 3 * self.bit_ns), unit="ns")
            byte = self.pending[0]
            for bit in [0] + [(byte >> k) & 1 for k in range(8)] + [1]:
                self.dut.rxd.value = bit
                await Timer(self.bit_ns, unit="ns")
            self.pending.popleft()

    async def _decode(self):
        while True:
            await FallingEdge(self.dut.txd)
            await Timer(self.bit_ns // 2, unit="ns")
            assert self.dut.txd.value == 0, "txd: start bit too short"
            byte = 0
            for k in range(8):
                await Timer(self.bit_ns, unit="ns")
                byte |= int(self.dut.txd.value) << k
            await Timer(self.bit_ns, unit="ns")
            assert self.dut.txd.value == 1, "txd: stop bit low"
            self.received.append(byte)


class Bench:
    """The steps, the model and the comparison."""

    def __init__(self, dut, line, rng):
        self.dut, self.line, self.rng = dut, line, rng
        self.model = DeviceModel(depth=DEPTH)
        self.decoder = FrameDecoder()
        self.seen = 0            # bytes of line.received decoded so far
        self.last_request = None
        self.counts = collections.Counter()

    # -- running a step ------------------------------------------------------------------------------------

    def _decode(self):
        frames = self.decoder.feed(self.line.received[self.seen:])
        self.seen = len(self.line.received)
        return frames

    async def step(self, data, kind):
        """Send ``data``; wait for and compare the answers."""
        self.counts[kind] += 1
        predicted = self.model.feed(data)
        self.line.send(data)
        while self.line.busy:
            await ClockCycles(self.dut.clk, 16)
        if self.model.in_frame:
            predicted += self.model.timeout()
            await ClockCycles(self.dut.clk, TIMEOUT + 8)
        if self.line.hold_stall:
            return predicted
        await self.collect(predicted, kind)
        return predicted

    async def collect(self, predicted, kind):
        responses = [frame for frame, generated in predicted if not generated]
        events = [frame for frame, generated in predicted if generated]
        frames, waited = [], 0
        per_byte = 2 * TX_BYTE_CYCLES if MODE == "bytes" else 11 * DIVISOR  # the UART hides the composing
        per_frame = (MAX_PAYLOAD + 20) * per_byte
        limit = 200 + per_frame * (len(predicted) + 1)

        def complete():
            got_responses = [frame for frame in frames if frame in responses]
            return got_responses == responses and (not events or any(self._same(f, events[0]) for f in frames))

        while not complete():
            await ClockCycles(self.dut.clk, 20)
            waited += 20
            frames += self._decode()
            assert waited < limit, (f"step {kind}: the device hangs: after {waited} cycles it sent {frames}, "
                                    f"expected {predicted}")
        quiet = 60 if MODE == "bytes" else 25 * DIVISOR  # longer than any pause inside or between frames
        while True:
            before = len(self.line.received)
            await ClockCycles(self.dut.clk, quiet)
            frames += self._decode()
            if len(self.line.received) == before and self.decoder.pending == 0:
                break
        assert self.decoder.pending == 0 and self.decoder.skipped == 0, \
            f"step {kind}: the device sent bytes that are not a frame ({self.decoder.skipped} skipped)"
        self._compare(frames, responses, events, kind)

    def _same(self, got, want):
        if got.type != want.type or got.seq != want.seq:
            return False
        if got.type == ERROR:
            later = (self.model.expected - want.payload[1]) & 0xFF  # requests accepted after the error
            return (got.payload[0], got.payload[2]) == (want.payload[0], want.payload[2]) and \
                (got.payload[1] - want.payload[1]) & 0xFF <= later
        return got.payload == want.payload

    def _compare(self, frames, responses, events, kind):
        got_responses, got_events = [], []
        for frame in frames:
            if len(got_responses) < len(responses) and frame == responses[len(got_responses)] \
                    and frame.type not in (ERROR, HELLO_REPLY):
                got_responses.append(frame)
            else:
                got_events.append(frame)
        assert got_responses == responses, f"step {kind}: responses {got_responses}, expected {responses}"
        at = 0
        for index, frame in enumerate(got_events):
            while at < len(events) and not self._same(frame, events[at]):
                assert at != 0 or index != 0, \
                    f"step {kind}: first link frame {frame}, expected {events[0]} (all: {events})"
                at += 1
            assert at < len(events), f"step {kind}: unexpected frame {frame}; expected {events} and {responses}"
            at += 1
        if events:
            assert got_events and self._same(got_events[0], events[0]), \
                f"step {kind}: missing {events[0]}, got {got_events}"

    # -- the kinds of step -----------------------------------------------------------------------------------

    def payload(self):
        rng = self.rng
        choice = rng.random()
        if choice < 0.1:
            return b""
        if choice < 0.2:
            return rng.randbytes(MAX_PAYLOAD)
        if choice < 0.3:
            return bytes([SYNC]) * rng.randrange(1, 40)
        return rng.randbytes(rng.randrange(1, 40 if choice < 0.9 else MAX_PAYLOAD))

    def request(self, seq=None, payload=None):
        rng = self.rng
        frame = Frame(rng.choice([protocol.REQUEST, rng.randrange(0x10, 0x80)]),
                      self.model.expected if seq is None else seq,
                      self.payload() if payload is None else payload)
        return frame.encode()

    async def good(self):
        data = self.request()
        await self.step(data, "good")
        self.last_request = data

    async def burst(self):
        total, frames = 0, []
        while True:
            data = self.request(seq=(self.model.expected + len(frames)) & 0xFF)
            if total + len(data) > self.model.credit or len(frames) == 8:
                break
            frames.append(data)
            total += len(data)
        await self.step(b"".join(frames), "burst")

    async def duplicate(self):
        if self.model.last_valid and self.last_request:
            await self.step(self.last_request, "duplicate")

    async def bad_sequence(self):
        seq = self.rng.choice([s for s in range(256) if s not in (self.model.expected, self.model.expected - 1 & 0xFF)])
        await self.step(self.request(seq=seq), "bad sequence")

    async def flip(self, where):
        data = bytearray(self.request(payload=self.rng.randbytes(self.rng.randrange(1, 60))))
        span = {"header": (1, protocol.HEADER_SIZE), "payload": (protocol.HEADER_SIZE, len(data) - 2),
                "crc": (len(data) - 2, len(data))}[where]
        for _ in range(self.rng.choice([1, 1, 2, 3])):
            data[self.rng.randrange(*span)] ^= 1 << self.rng.randrange(8)
        await self.step(bytes(data), f"flip {where}")

    async def truncated(self):
        data = self.request()
        await self.step(data[:self.rng.randrange(1, len(data))], "truncated")

    async def garbage(self):
        rng = self.rng
        junk = bytes(rng.choice([SYNC, 0, rng.randrange(256)]) for _ in range(rng.randrange(1, 30)))
        await self.step(junk + self.request(), "garbage")

    async def unknown_type(self):
        rng = self.rng
        frame = Frame(rng.choice([0x00, *range(0x02, 0x10), *range(0x80, 0x100)]), self.model.expected,
                      rng.randbytes(rng.randrange(0, 10)))
        await self.step(frame.encode(), "unknown type")

    async def too_long(self):
        length = self.rng.choice([MAX_PAYLOAD + 1, 0x1FF, 0x100 + self.rng.randrange(1, 256), 0xFFFF])
        header = bytes([length >> 8, length & 0xFF, self.model.expected, protocol.REQUEST])
        data = bytes([SYNC]) + header + protocol.crc16(header).to_bytes(2, "big")
        await self.step(data + self.rng.randbytes(self.rng.randrange(0, 20)), "too long")

    async def hello(self):
        await self.step(encode_frame(HELLO, self.rng.randrange(256)), "hello")
        self.last_request = None

    async def overrun(self):
        """The echo stalls; requests arrive until one does not fit; then the echo runs and answers the others."""
        self.line.hold_stall = True
        self.model.stalled = True
        await ClockCycles(self.dut.clk, 300)  # the request being read, if any, is answered (the echo had begun)
        predicted = []
        while not any(generated for _, generated in predicted):
            # keep clear of the boundary: the device's reader may already hold a request's first words
            length = self.rng.randrange(1, MAX_PAYLOAD)
            left = DEPTH - self.model.used - 4
            if abs(left - length) < 8:
                continue
            predicted += await self.step(self.request(payload=self.rng.randbytes(length)), "overrun")
        self.line.hold_stall = False
        predicted += self.model.resume()
        await self.collect(predicted, "overrun")

    async def run(self, count):
        kinds = [(self.good, 30), (self.burst, 5), (self.duplicate, 5), (self.bad_sequence, 5),
                 (lambda: self.flip("header"), 5), (lambda: self.flip("payload"), 5), (lambda: self.flip("crc"), 3),
                 (self.truncated, 5), (self.garbage, 8), (self.unknown_type, 3), (self.too_long, 3),
                 (self.hello, 2), (self.overrun, 1 if MODE == "bytes" else 0)]
        functions, weights = zip(*kinds)
        await self.hello()
        for _ in range(count):
            kind = self.rng.choices(functions, weights)[0]
            await kind()
            if kind is not self.good:
                await self.good()  # the next valid request always succeeds
        return self.counts


@cocotb.test(timeout_time=TIMEOUT_LIMIT["timeout_time"], timeout_unit=TIMEOUT_LIMIT["timeout_unit"])
async def random_and_corrupted_frames(dut):
    """Thousands of steps of every kind (see the module notes), each compared with the model."""
    if MODE == "bytes":
        await reset(dut, sources=("rx",), sinks=("tx",))
    else:
        dut.rxd.value = 1
        await reset(dut, sources=(), sinks=())
    dut.stall.value = 0
    rng = random.Random(random.getrandbits(64))
    line = ByteLine(dut, rng) if MODE == "bytes" else UartLine(dut, rng)
    counts = await Bench(dut, line, rng).run(STEPS)
    dut._log.info(f"steps: {dict(counts)}")

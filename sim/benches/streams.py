"""Stream drivers for cocotb benches: a source with random gaps and a sink with random back-pressure.

Both follow ``amaranth.lib.stream`` rules and check them on the DUT: a sink fails the bench if the DUT's ``valid``
drops or its payload changes while it was stalled. Ports are found by Amaranth's flattened names,
``<prefix>__valid``, ``<prefix>__ready``, ``<prefix>__payload``.
"""

import random

from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

__all__ = ["reset", "Source", "Sink"]


async def reset(dut, sources=("i",), sinks=("o",)):
    """Start a 100 MHz ``clk``, hold ``rst`` for two cycles with every stream idle (no valid, no ready)."""
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    for prefix in sources:
        getattr(dut, f"{prefix}__valid").value = 0
    for prefix in sinks:
        getattr(dut, f"{prefix}__ready").value = 0
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0


class Source:
    """Offers ``items`` (ints, the raw payload bits) on the stream ``prefix`` of ``dut``.

    Parameters
    ----------
    p_gap : float
        Probability that no item is offered in a cycle (while not valid, the payload is random junk).
    junk_bits : int
        Width of the random junk payload; 0 leaves the payload unchanged.
    """

    def __init__(self, dut, prefix, clk, *, p_gap=0.0, junk_bits=0):
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.clk = clk
        self.p_gap = p_gap
        self.junk_bits = junk_bits
        self.valid.value = 0

    async def send(self, items):
        """Offer every item once, in order; returns when the last one has been taken."""
        for item in items:
            while random.random() < self.p_gap:
                self.valid.value = 0
                if self.junk_bits:
                    self.payload.value = random.getrandbits(self.junk_bits)
                await RisingEdge(self.clk)
            self.valid.value = 1
            self.payload.value = item
            while True:
                await ReadOnly()
                taken = bool(self.ready.value)
                await RisingEdge(self.clk)
                if taken:
                    break
        self.valid.value = 0


class Sink:
    """Takes items from the stream ``prefix`` of ``dut`` with random back-pressure, checking the stream rules.

    Parameters
    ----------
    p_stall : float
        Probability that ``ready`` is low in a cycle.
    """

    def __init__(self, dut, prefix, clk, *, p_stall=0.0):
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.clk = clk
        self.p_stall = p_stall
        self.cycles = 0
        self.ready.value = 0

    async def receive(self, count, *, max_cycles=None):
        """Collect ``count`` payloads (as ints); fails on a stream-rule violation or after ``max_cycles``.

        Cycle 0 is the cycle of the call; afterwards ``cycles`` holds the number of cycles up to and including the
        one in which the last payload was taken (sources started in the same cycle make it a throughput measure).
        """
        received, held, cycles = [], None, 0
        while len(received) < count:
            ready = random.random() >= self.p_stall
            self.ready.value = ready
            await ReadOnly()
            valid = bool(self.valid.value)
            raw = self.payload.value.to_unsigned() if valid else None
            if held is not None:
                assert valid, f"cycle {cycles}: valid dropped while the sink stalled"
                assert raw == held, f"cycle {cycles}: payload changed while valid and not ready"
            if valid and ready:
                received.append(raw)
            held = raw if valid and not ready else None
            await RisingEdge(self.clk)
            cycles += 1
            if max_cycles is not None and cycles > max_cycles:
                raise AssertionError(f"received {len(received)} of {count} items in {max_cycles} cycles")
        self.ready.value = 0
        self.cycles = cycles
        return received

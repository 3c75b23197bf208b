"""Bench of :class:`mmfree.hw.core.Core`: a compiled program run token by token against the instruction-level model.

The bench loads a saved :class:`~mmfree.host.compiler.Program` (the weight image through the load port, the
program words through theirs), clears the recurrent state, then runs each token of ``tokens`` with a RUN command
and, after each, reads every vector memory back through the debug port and compares it with
:class:`~mmfree.host.machine.Machine` run on the same program: slots X, V, G and F, the recurrent state of every
layer, the head's accumulators and output scale, and the argmax the core answers. Memories start random.

Parameters (:func:`mmfree.sim.benches.params`): ``program`` (path of a saved program), ``tokens`` (token ids),
``cycles_path`` (where the cycles per token are written as JSON), optionally ``temperature`` and ``seed`` (the core
samples, and the bench compares each token with :class:`~mmfree.host.gumbel.GumbelSampler` seeded alike) and
optionally ``stop``: run only the first ``stop`` instructions (then END) and compare with the model's trace after
them, to find the first divergence (:mod:`mmfree.sim.diverge`), and ``corrupt``: ``[word, mask]``, a fault planted
in the core's copy of the weight image (the model keeps the original).
"""

import json

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from mmfree.host.compiler import Program
from mmfree.host.gumbel import GumbelSampler
from mmfree.host.isa import INSTRUCTION_BITS, Opcode, Slot, encode
from mmfree.host.machine import Machine
from mmfree.hw.core import CoreCommand, CoreError, Memory, debug_latency

from . import params
from .streams import Sink, Source, reset

P = params()
WORD_MASK = (1 << 64) - 1
#: the program under test (and the parameters of the core it was compiled for)
PROGRAM = Program.load(P["program"])


async def write_port(dut, prefix, words):
    """Write ``words`` through the load port ``prefix`` (``w_`` or ``p_``), one per cycle from address 0."""
    for address, word in enumerate(words):
        getattr(dut, f"{prefix}addr").value = address
        getattr(dut, f"{prefix}data").value = int(word) & WORD_MASK
        getattr(dut, f"{prefix}we").value = 1
        await RisingEdge(dut.clk)
    getattr(dut, f"{prefix}we").value = 0


async def read_memory(dut, memory, count, signed=True):
    """``count`` elements (signed) or words (unsigned) of a memory through the debug port, an address per cycle,
    each element :func:`~mmfree.hw.core.debug_latency` cycles after its address."""
    latency = debug_latency(PROGRAM.core, memory)
    values = []
    dut.d_sel.value = memory.value
    dut.d_addr.value = 0
    for cycle in range(count + latency - 1):
        await RisingEdge(dut.clk)               # the element of `cycle` is read at this edge
        dut.d_addr.value = min(cycle + 1, count - 1)
        if cycle >= latency - 1:
            await ReadOnly()
            value = dut.d_data.value
            values.append(value.to_signed() if signed else value.to_unsigned())
    await RisingEdge(dut.clk)
    return values


async def idle(dut):
    """Wait until the core is idle; returns just after a clock edge."""
    while True:
        await ReadOnly()
        busy = bool(dut.busy.value)
        await RisingEdge(dut.clk)
        if not busy:
            return


def expect(name, got, want):
    """Python ints ``got`` equal ``want`` element by element."""
    got = np.array(got, dtype=object)
    want = np.array([int(w) for w in (want.reshape(-1) if isinstance(want, np.ndarray) else want)], dtype=object)
    assert len(got) == len(want), f"{name}: {len(got)} elements read, {len(want)} expected"
    wrong = np.flatnonzero(got != want)
    assert not len(wrong), (f"{name}: {len(wrong)} of {len(want)} elements differ, first at {wrong[0]}: "
                            f"core {got[wrong[0]]}, machine {want[wrong[0]]}; core {got[:8].tolist()}, "
                            f"machine {want[:8].tolist()}")


@cocotb.test()
async def program_runs_bit_exact(dut):
    program = PROGRAM
    stop = P.get("stop")
    machine = Machine(program, trace=stop is not None)
    if stop is not None:
        program.instructions = program.instructions[:stop] + [encode(Opcode.END)]
    cmd, res = Source(dut, "cmd", dut.clk), Sink(dut, "res", dut.clk)
    await reset(dut, sources=("cmd",), sinks=("res",))
    dut.w_we.value = dut.p_we.value = 0

    image = program.image.copy()
    if P.get("corrupt"):
        word, mask = P["corrupt"]
        image[word] ^= np.uint64(mask)
    await write_port(dut, "w_", image)
    code = [(word >> (64 * k)) & WORD_MASK for word in program.instructions for k in range(INSTRUCTION_BITS // 64)]
    await write_port(dut, "p_", code)
    sampler = GumbelSampler(P.get("seed", 1))
    inv = GumbelSampler.inverse_temperature(P.get("temperature", 0.0))
    inv_fields = 0 if inv is None else (inv.mant << 18) | ((inv.exp & 0xFFFF) << 34)
    await cmd.send([CoreCommand.SEED.value | (P.get("seed", 1) << 50)])
    await idle(dut)
    expect("image read back", await read_memory(dut, Memory.IMAGE, len(image), signed=False), image)
    expect("program read back", await read_memory(dut, Memory.PROGRAM, len(code), signed=False), code)
    await cmd.send([CoreCommand.CLEAR.value])
    await idle(dut)

    cycles = []
    for token in P["tokens"] if stop is None else P["tokens"][:1]:
        acc, scales = machine.run(token)
        slots, states = (machine.slots, machine.state) if stop is None else machine.trace[stop - 1][2:]
        await cmd.send([CoreCommand.RUN.value | (token << 2) | inv_fields])
        (raw,) = await res.receive(1, max_cycles=2_000_000)
        answer, error = raw & 0xFFFF, CoreError(raw >> 16)
        assert error is CoreError.NONE or (stop is not None and error is CoreError.NO_LOGITS), \
            f"token {token}: the core reports {error}"
        cycles.append(int(dut.cycles.value))
        await idle(dut)

        for slot, memory in ((Slot.X, Memory.X), (Slot.V, Memory.V), (Slot.G, Memory.G), (Slot.F, Memory.F)):
            if slot in slots:
                want = slots[slot][0]
                expect(f"token {token}: slot {slot.name}", await read_memory(dut, memory, want.shape[1]), want)
        state = np.concatenate([states[layer] for layer in sorted(states)] or [np.zeros(0)])
        expect(f"token {token}: state", await read_memory(dut, Memory.STATE, len(state)), state)
        if stop is None:
            logits = await read_memory(dut, Memory.LOGITS, acc.shape[1])
            expect(f"token {token}: logits", logits, acc)
            assert (int(dut.logit_mant.value), dut.logit_exp.value.to_signed()) == (scales[0].mant, scales[0].exp), \
                f"token {token}: logit scale differs"
            want = sampler.sample(acc[0], scales[0], inv)
            assert answer == want, f"token {token}: the core answers {answer}, the sampler {want}"

    with open(P["cycles_path"], "w") as f:
        json.dump({"tokens": P["tokens"], "cycles": cycles}, f)

"""Bench of :class:`mmfree.hw.scalar_unit.ScalarUnit` against :mod:`mmfree.host.fixed`.

Every result (mantissa, exponent, error flag) is compared with the golden function of its op: ``Scalar.normalize``
(``from_int``), ``Scalar.__mul__``, ``Scalar.__add__``, ``Scalar.scaled``, ``rsqrt_scalar`` and ``rsqrt``; ``QUANT``'s
``(k, R)`` with the formula of ``Arithmetic.quantize`` *and* by quantizing a vector with them and comparing the int8
output with ``Arithmetic.quantize``.
Operands are random and adversarial: zeros (also with a nonzero exponent), unnormalized mantissas, rounding ties
and carries, exponent differences around the addition's cut-off, exponents at the edge of their field, rsqrt of 1,
of ``2^(2·bits) − 1`` and of the widest integers, ``QUANT`` of integers whose rounding to ``bits`` bits ties or
carries. Commands arrive with random gaps (junk on the payload while not
valid), results are taken with random back-pressure, and the stream rules are checked on every cycle; the latency
of each op is checked against the documented one, of the unit's mode (``fast`` or not).

Parameters (:func:`mmfree.sim.benches.params`): the unit's constructor arguments (``bits``, ``exp_bits``,
``int_width``, ``recip_bits``, ``fast``) and ``ops`` (random commands, default 3000).
"""

import math
import random

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from mmfree.host.fixed import Scalar, bit_length, round_shift, rsqrt, rsqrt_scalar
from mmfree.host.golden import Arithmetic, Formats
from mmfree.hw.scalar_unit import ScalarOp, ScalarUnit

from . import params
from .streams import Sink, Source, reset

PARAMS = params()
OPS = PARAMS.pop("ops", 3000)
UNIT = ScalarUnit(**PARAMS)
BITS, EB, IW = UNIT.bits, UNIT.exp_bits, UNIT.int_width
R = UNIT.recip_shift
# the golden quantizer needs only its formats
GOLDEN = Arithmetic(Formats(quant_bits=BITS, recip_bits=UNIT.recip_bits), eps=None, residual_frac=0)
CMD = UNIT.i.payload.shape()
RESULT = UNIT.o.payload.shape()
EXP_LO, EXP_HI = -(1 << (EB - 1)), (1 << (EB - 1)) - 1
TIMEOUT = {"timeout_time": 500, "timeout_unit": "ms"}


def quant(peak):
    """``QUANT``'s (k, R) by the formula of ``Arithmetic.quantize``; R is documented as 0 for ``M = 0``."""
    k = int(bit_length(peak)) - BITS
    top = max(int(round_shift(peak, k)), 1)
    return k, ((127 << R) + top // 2) // top if peak else 0


def quantizes_as_golden(peak, k, recip):
    """The unit's (k, R) drive the golden quantizer's per-element step to its q, over ``peak`` and values below."""
    rng = np.random.default_rng(peak)
    x = np.concatenate([[peak, -peak, peak - 1, peak // 2], rng.integers(-peak, peak + 1, 60)]).astype(np.int64)
    want, _ = GOLDEN.quantize_products(x[None])
    q = np.sign(x) * np.minimum(127, np.right_shift(round_shift(np.abs(x), k) * recip + (1 << (R - 1)), R))
    return np.array_equal(q, want[0])


def golden(op, a, b, integer, power):
    """(mant, exp, error, recip) that the unit must give (recip None but for QUANT); ``a``, ``b`` are (mant, exp)
    pairs."""
    if op == ScalarOp.QUANT:
        k, recip = quant(integer)
        return 0, k, 0, recip
    sa, sb = Scalar(*a, BITS), Scalar(*b, BITS)
    if op == ScalarOp.FROM_INT:
        s = Scalar.normalize(integer, power, BITS)
        if power == 0:
            assert s == Scalar.from_int(integer, BITS)
    elif op == ScalarOp.MUL:
        s = sa * sb
    elif op == ScalarOp.ADD:
        s = sa + sb
    elif op == ScalarOp.SCALE:
        s = sa.scaled(power)
    elif op == ScalarOp.RSQRT:
        s = rsqrt_scalar(sa)
    elif op == ScalarOp.RSQRT_INT:
        s = rsqrt_scalar(Scalar(integer, power, BITS))
        if power == 0:
            assert s == rsqrt(integer, BITS)
    else:
        return 0, 0, 1, None
    error = not EXP_LO <= s.exp <= EXP_HI
    exp = (s.exp - EXP_LO) % (1 << EB) + EXP_LO  # the field keeps the low bits
    return s.mant, exp, int(error), None


def encode(op, a=(0, 0), b=(0, 0), integer=0, power=0):
    raw = CMD.const({"op": ScalarOp.FROM_INT, "a": {"mant": a[0], "exp": a[1]}, "b": {"mant": b[0], "exp": b[1]},
                     "integer": integer, "power": power}).as_bits()
    return raw | (op.value if isinstance(op, ScalarOp) else op) << CMD["op"].offset  # undefined codes too


def decode(raw):
    view = RESULT.from_bits(raw)
    return int(view.value.mant), int(view.value.exp), int(view.error), int(view.recip)


def describe(command):
    op, a, b, integer, power = command
    return f"{ScalarOp(op).name if op in ScalarOp._value2member_map_ else op} a={a} b={b} integer={integer} " \
           f"power={power}"


async def run(dut, commands, *, p_gap, p_stall):
    """Run ``commands`` (op, a, b, integer, power) and compare every result with the golden model."""
    source = Source(dut, "i", dut.clk, p_gap=p_gap, junk_bits=CMD.size)
    sink = Sink(dut, "o", dut.clk, p_stall=p_stall)
    sender = cocotb.start_soon(source.send([encode(*c) for c in commands]))
    # the slowest op (RSQRT_INT) takes 2·int_width + 8·bits + 20 cycles at most, before back-pressure
    raws = await sink.receive(len(commands), max_cycles=len(commands) * (2 * IW + 8 * BITS + 20) * 4 + 1000)
    await sender
    for index, (command, raw) in enumerate(zip(commands, raws)):
        got, want = decode(raw), golden(*command)
        if want[3] is None:  # recip is QUANT's only
            got = got[:3] + (None,)
        assert got == want, f"command {index} {describe(command)}: (mant, exp, error, recip) {got}, expected {want}"
        if command[0] == ScalarOp.QUANT and command[3]:
            assert quantizes_as_golden(command[3], got[1], got[3]), f"command {index}: q differs from golden"
    dut._log.info(f"{len(commands)} commands match the golden model")


# -- operands ---------------------------------------------------------------------------------------------------

def rexp(span=40):
    """A random exponent: mostly small, sometimes anywhere in the field, sometimes at its edges."""
    pick = random.random()
    if pick < 0.8:
        return random.randint(-span, span)
    if pick < 0.9:
        return random.randint(EXP_LO, EXP_HI)
    return random.choice([EXP_LO, EXP_LO + 1, EXP_HI - 1, EXP_HI])


def rmant():
    pick = random.random()
    if pick < 0.8:
        return random.randint(1 << (BITS - 1), (1 << BITS) - 1)
    if pick < 0.9:
        return random.choice([1 << (BITS - 1), (1 << BITS) - 1, (1 << (BITS - 1)) + 1, (1 << BITS) - 2])
    return random.randint(0, (1 << BITS) - 1)  # unnormalized or zero


def rscalar(span=40):
    if random.random() < 0.04:
        return 0, random.choice([0, 0, rexp(span)])  # zero, sometimes with a nonzero exponent
    return rmant(), rexp(span)


def rinteger(width=IW):
    bits = random.randint(0, width)
    if bits == 0:
        return 0
    pick = random.random()
    if pick < 0.7:
        return random.randint(1 << (bits - 1), (1 << bits) - 1)
    return random.choice([1 << (bits - 1), (1 << bits) - 1, (1 << (bits - 1)) + 1])


def rpower(span=20):
    return rexp(span) if random.random() < 0.9 else random.randint(EXP_LO, EXP_HI)


def tie(value, bits=BITS):
    """Whether normalizing ``value`` to ``bits`` bits rounds a tie (or carries out)."""
    excess = value.bit_length() - bits
    return excess > 0 and (value & ((1 << excess) - 1)) == 1 << (excess - 1)


def random_command():
    op = random.choices(list(ScalarOp), weights=[3, 3, 4, 1, 2, 2, 2])[0]
    a, b = rscalar(), rscalar()
    integer, power = 0, 0
    if op == ScalarOp.FROM_INT:
        integer, power = rinteger(), rpower()
    elif op == ScalarOp.QUANT:
        integer = rinteger()
    elif op == ScalarOp.ADD:
        if random.random() < 0.7 and a[0]:  # exponents close: the exact sum is rounded
            b = (b[0], a[1] + random.randint(-(BITS + 3), BITS + 3))
    elif op == ScalarOp.SCALE:
        power = rpower()
    elif op == ScalarOp.RSQRT_INT:
        integer, power = rinteger(), rpower(6)
    if op != ScalarOp.ADD:
        b = (b[0], rexp())
    b = (b[0], min(max(b[1], EXP_LO), EXP_HI))
    return op, a, b, integer, power


def adversarial_commands():
    one = (1 << (BITS - 1), -(BITS - 1))
    top = (1 << BITS) - 1
    half = 1 << (BITS - 1)
    commands = []
    # normalization: 0, powers of two and their neighbours, all ones (rounds up to 2^bits), ties
    for k in range(IW + 1):
        for value in {1 << k, (1 << k) - 1, (1 << k) + 1, (1 << k) - 2}:
            if 0 <= value < 1 << IW:
                commands.append((ScalarOp.FROM_INT, (0, 0), (0, 0), value, 0))
                commands.append((ScalarOp.RSQRT_INT, (0, 0), (0, 0), value, random.choice([0, 1, -1, 2])))
        if k > BITS:
            for value in {(top << (k - BITS)) + (1 << (k - BITS - 1)), (half << (k - BITS)) + (1 << (k - BITS - 1)),
                          (half << (k - BITS)) + (1 << (k - BITS - 1)) - 1}:
                if value < 1 << IW:
                    commands.append((ScalarOp.FROM_INT, (0, 0), (0, 0), value, random.randint(-5, 5)))
    # exponent range: FROM_INT and SCALE right at the edges
    for power in (EXP_LO, EXP_LO + 1, EXP_HI - IW, EXP_HI - BITS, EXP_HI):
        commands.append((ScalarOp.FROM_INT, (0, 0), (0, 0), (1 << IW) - 1, power))
        commands.append((ScalarOp.FROM_INT, (0, 0), (0, 0), 1, power))
    for a in ((half, EXP_HI), (top, EXP_LO), (half, 0), (0, 5), (0, 0)):
        for power in (EXP_LO, -1, 0, 1, EXP_HI, -a[1] + EXP_HI, -a[1] + EXP_HI + 1, -a[1] + EXP_LO - 1):
            if EXP_LO <= power <= EXP_HI:
                commands.append((ScalarOp.SCALE, a, (0, 0), 0, power))
    # products: the largest, the smallest, ties, carries, exponent overflow
    for a, b in (((top, 0), (top, 0)), ((half, 0), (half, 0)), ((top, 3), (half + 1, -7)), ((0, 9), (top, 2)),
                 ((top, EXP_HI), (top, EXP_HI)), ((half, EXP_LO), (half, EXP_LO)), ((half, EXP_HI), one),
                 ((half, EXP_LO), (top, BITS)), ((1, 0), (1, 0)), ((3, -2), (top, 0))):
        commands.append((ScalarOp.MUL, a, b, 0, 0))
    while sum(c[0] == ScalarOp.MUL for c in commands) < 60:
        a, b = rmant() | 1 << (BITS - 1), rmant() >> random.randint(0, BITS - 1) << random.randint(0, BITS - 1)
        b = b % (1 << BITS)
        if tie(a * b):
            commands.append((ScalarOp.MUL, (a, rexp()), (b, rexp()), 0, 0))
    # sums: zeros, equal operands, the cut-off of the smaller addend, ties, carries
    for delta in range(-(BITS + 3), BITS + 4):
        for a, b in (((top, 0), (top, -delta)), ((half, 0), (half, -delta)), ((half, 0), (top, -delta)),
                     ((top, 0), (1, -delta))):
            commands.append((ScalarOp.ADD, a, b, 0, 0))
            commands.append((ScalarOp.ADD, b, a, 0, 0))
    for a, b in (((0, 0), (top, 4)), ((top, 4), (0, 0)), ((0, 7), (0, -3)), ((0, 7), (half, 30)),
                 ((top, EXP_HI), (top, EXP_HI)), ((half, EXP_LO), (half, EXP_LO + 3))):
        commands.append((ScalarOp.ADD, a, b, 0, 0))
    while sum(c[0] == ScalarOp.ADD for c in commands) < 4 * (2 * BITS + 7) + 80:
        a, b = rmant() | 1 << (BITS - 1), rmant()
        delta = random.randint(0, BITS + 1)
        if tie((a << delta) + b):
            e = rexp()
            commands.append((ScalarOp.ADD, (a, e), (b, e - delta), 0, 0))
    # rsqrt: of 1, of zero, of all ones, odd and even exponents, the edges of the exponent field
    for a in (one, (half, 0), (half, 1), (half, -1), (top, 0), (top, 1), (0, 0), (0, 3), (1, 0), (1, 1),
              (half, EXP_LO), (half, EXP_LO + 1), (half, EXP_HI), (top, EXP_HI - 1), (3, 0)):
        commands.append((ScalarOp.RSQRT, a, (0, 0), 0, 0))
    for value in (1, 2, 3, 4, (1 << (2 * BITS)) - 1, 1 << (2 * BITS), (1 << (2 * BITS)) + 1, (1 << (2 * BITS + 1)) - 1,
                  (1 << IW) - 1, 1 << (IW - 1), 0):
        if value < 1 << IW:
            for power in (0, 1, -1, EXP_HI, EXP_LO):
                commands.append((ScalarOp.RSQRT_INT, (0, 0), (0, 0), value, power))
    # QUANT: 0, powers of two and their neighbours, M with its rounding bit exactly set (ties), all ones (M' rounds
    # up to 2^bits)
    for k in range(IW + 1):
        for value in {1 << k, (1 << k) - 1, (1 << k) + 1}:
            if 0 <= value < 1 << IW:
                commands.append((ScalarOp.QUANT, (0, 0), (0, 0), value, 0))
    for extra in range(1, IW - BITS + 1):
        for mant in (top, half, top - 1, (3 << (BITS - 2)) + 1):
            for low in (1 << (extra - 1), (1 << (extra - 1)) - 1, (1 << extra) - 1):
                if (mant << extra) + low < 1 << IW:
                    commands.append((ScalarOp.QUANT, (0, 0), (0, 0), (mant << extra) + low, 0))
    # undefined op code
    commands += [(7, (top, 1), (top, 2), 5, 1), (7, (0, 0), (0, 0), 0, 0)]
    return commands


@cocotb.test(**TIMEOUT)
async def adversarial(dut):
    """Hand-picked operands of every op, under gaps and back-pressure."""
    await reset(dut)
    commands = adversarial_commands()
    random.shuffle(commands)
    await run(dut, commands, p_gap=0.3, p_stall=0.3)


@cocotb.test(**TIMEOUT)
async def random_commands(dut):
    """Random commands of every op, in segments of light to heavy gaps and back-pressure."""
    await reset(dut)
    commands = [random_command() for _ in range(OPS)]
    segments = [(0.0, 0.0), (0.3, 0.3), (0.8, 0.1), (0.1, 0.8)]
    size = -(-len(commands) // len(segments))
    for start, (p_gap, p_stall) in zip(range(0, len(commands), size), segments):
        await run(dut, commands[start:start + size], p_gap=p_gap, p_stall=p_stall)


def documented_latency(op, a, b, integer, power, *, bits=BITS, int_width=IW, recip_bits=UNIT.recip_bits,
                       fast=UNIT.fast):
    """Cycles from a command's offer (unit idle, o empty) to o.valid, as the module documents them."""
    width = 2 * bits + 3
    n, c = (4, 1) if fast else (1, 2)  # the most places X shifts a cycle, the cycles of a division step

    def z(value):  # places the normalizer shifts
        return width - value.bit_length()

    def i(integer):  # places the normalizer shifts the integer operand
        return (int_width if fast else int_width + width) - integer.bit_length()

    if op not in list(ScalarOp) or op == ScalarOp.SCALE:
        return 2
    if op == ScalarOp.FROM_INT:
        return i(integer) // n + 4 if integer else 2
    if op == ScalarOp.QUANT:
        return i(integer) // n + 4 + c * (recip_bits + 1) if integer else 2
    if op == ScalarOp.MUL:
        product = a[0] * b[0]
        return z(product) // n + 5 if product else 2
    if op == ScalarOp.ADD:
        delta = abs(a[1] - b[1])
        if not a[0] or not b[0] or delta > bits + 1:
            return 2
        high, low = (a, b) if a[1] >= b[1] else (b, a)
        return delta // n + z(2 * ((high[0] << delta) + low[0])) // n + 5
    value, power = (a[0], a[1]) if op == ScalarOp.RSQRT else (integer, power)
    if value == 0:
        return 2
    odd = power & 1
    shift = max(0, (value << odd).bit_length() - 2 * bits)
    shift += shift & 1
    r = math.isqrt((1 << (4 * bits)) // ((value << odd) >> shift))
    scanned = 0 if op == ScalarOp.RSQRT else int_width - (shift - odd if shift else 0)
    return c * (4 * bits + 2) + z(r) // n + 5 + scanned


@cocotb.test(**TIMEOUT)
async def latency(dut):
    """Each op's cycles from offer to result, against the documented count."""
    await reset(dut)
    commands = [c for c in adversarial_commands() if c[0] in list(ScalarOp)][::3]
    commands += [random_command() for _ in range(100)]
    dut.o__ready.value = 1
    for command in commands:
        dut.i__payload.value = encode(*command)
        dut.i__valid.value = 1
        cycles = 0
        while True:
            await RisingEdge(dut.clk)
            cycles += 1
            await ReadOnly()
            if dut.o__valid.value:
                break
            assert cycles < 1000
        want = documented_latency(*command)
        assert cycles == want, f"{describe(command)}: o.valid after {cycles} cycles, documented {want}"
        await RisingEdge(dut.clk)
        dut.i__valid.value = 0
        await RisingEdge(dut.clk)

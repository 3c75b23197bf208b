"""σ and SiLU in gateware, bit-exact to :class:`mmfree.host.fixed.SigmoidTable`.

The contract (``docs/numerics.md``, "σ"): a table ``E[k] = round(σ(−k·2^-s)·2^g)`` for ``k = 0 … R·2^s``
(``g`` = ``gate_frac``, ``s`` = ``segment_bits``, ``R`` = ``z_range``); for ``z`` in Q.f (``f ≥ s``),

- ``σ(−|z|) = e = E[k] − round((E[k] − E[k+1])·r / 2^(f−s))`` with ``k = |z| >> (f−s)``, ``r = |z| mod 2^(f−s)``,
  and ``e = E[R·2^s]`` (the last entry) once ``k ≥ R·2^s``;
- ``σ(z) = 2^g − e`` for ``z ≥ 0``, else ``e``; ``1 − σ(z) = σ(−z)`` is the other one (computed directly, never as
  ``2^g − σ(z)`` of a rounded value);
- ``SiLU(z) = round(z·σ(z) / 2^g)`` in the format of ``z``.

Rounding is to nearest, ties towards +∞, everywhere.

The table is :attr:`SigmoidTable.entries` itself (computed by the host's function, so the ROM cannot drift from
the golden model). The ROM holds one word per segment: ``E[k]`` and the segment's drop ``D[k] = E[k] − E[k+1]``
side by side, so one read gives both ends of the segment and the interpolation is one multiply, ``D·r``. At
``g = 24``, ``s = 4``, ``R = 16`` a word is 24 + 18 bits, 256 words: three ``SB_RAM40_4K`` on iCE40; at ``s = 5``,
24 + 17 bits, 512 words: six. The interpolation's rounding and ``2^g − e`` are folded into one carry chain each
(see :meth:`SigmoidCore.build`).

:class:`SigmoidUnit` at golden.Formats of this writing (``g = 24``, ``s = 5``, ``R = 16``) on the iCE40UP5K
(``synth_ice40 -dsp``, nextpnr ``--up5k --freq 30``, three seeds): for activations (28 bits, Q.20) 5 SB_MAC16,
6 SB_RAM40_4K, 326 LUT4, 350 flip-flops, 39–43 MHz; for the state (32 bits, Q.24) 6 SB_MAC16, 6 SB_RAM40_4K,
41–44 MHz.

:class:`Pipeline` is the stage bookkeeping both this unit and :class:`~mmfree.hw.vector_unit.VectorUnit` use: a
pipeline that stalls as a whole (every register has the same enable), with registers made only for the values a
later stage reads.
"""

from amaranth import *
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..host.fixed import SigmoidTable
from ..host.golden import Formats
from .checks import check_int

__all__ = ["Pipeline", "SigmoidCore", "sigmoid_output_layout", "SigmoidUnit"]

_F = Formats()


class Pipeline:
    """Stage bookkeeping for a pipeline that advances as a whole.

    Code builds the pipeline stage by stage: values made at the current stage are *tracked* (:meth:`comb`,
    :meth:`track`); :meth:`next` moves to the next stage; ``pipe(value)`` is a tracked value as seen at the current
    stage, through as many registers as stages passed since it was made (made once, shared by every reader). Every
    register loads when ``en`` is high; :meth:`finish` emits them.

    With a ``period`` ``c > 1`` the pipeline carries at most one element every ``c`` stages, aligned to a phase
    counter: :attr:`phase` (``0 … c − 1``) advances with ``en``, and an element is at stage ``s`` only in cycles
    with ``phase == s mod c`` (it entered stage 0 at phase 0). A value then needs a register only every ``c``
    stages: the registers of a value made at stage ``b`` load only when ``phase == b mod c``, and each holds it for
    ``c`` stages, so ``pipe(value)`` at stage ``s`` is register ``⌈(s − b)/c⌉`` of its chain. Values are only
    meaningful in the cycles their stage holds an element (:meth:`present`).

    Parameters
    ----------
    m : Module
    en : Value
        The advance signal: all registers load when it is high.
    period : int
        ``c``: stages between two elements (default 1: an element may follow in the next stage).
    """

    def __init__(self, m, en, period=1):
        if not isinstance(period, int) or isinstance(period, bool) or period < 1:
            raise ValueError(f"period must be a positive int, got {period!r}")
        self.m = m
        self.en = en
        self.period = period
        self.stage = 0
        self._chains = {}
        self._loads = {}
        #: the phase counter (a constant 0 when the period is 1)
        self.phase = C(0, 1)
        if period > 1:
            self.phase = Signal(range(period), name="phase")
            with m.If(en):
                m.d.sync += self.phase.eq(Mux(self.phase == period - 1, 0, self.phase + 1))

    def track(self, signal, *, name=None, stage=None, reset=False):
        """Declare ``signal`` as made at ``stage`` (default: the current one); its registers are named after
        ``name`` (default: the signal's name).

        ``reset`` gives its registers a reset (valid bits); data registers have none.
        """
        stage = self.stage if stage is None else stage
        self._chains[id(signal)] = ([signal], stage, reset, signal.name if name is None else name)
        return signal

    def comb(self, value, *, name, shape=None, reset=False, stage=None):
        """A new signal at ``stage`` (default: the current one), driven combinationally by ``value``."""
        value = Value.cast(value)
        stage = self.stage if stage is None else stage
        signal = Signal(value.shape() if shape is None else shape, name=f"{name}_s{stage}")
        self.m.d.comb += signal.eq(value)
        return self.track(signal, name=name, reset=reset, stage=stage)

    def next(self):
        self.stage += 1

    def tracks(self, value):
        """Whether ``value`` is a tracked signal."""
        return isinstance(value, Signal) and id(value) in self._chains

    def stage_of(self, signal):
        """The stage at which a tracked signal is made."""
        return self._chains[id(signal)][1]

    def reach(self, signal):
        """Move on to the stage at which ``signal`` (tracked) is made, unless the pipeline is already past it."""
        self.stage = max(self.stage, self.stage_of(signal))

    def present(self, stage=None):
        """High in the cycles in which ``stage`` (default: the current one) may hold an element."""
        stage = self.stage if stage is None else stage
        return C(1, 1) if self.period == 1 else self.phase == stage % self.period

    def __call__(self, signal):
        """``signal`` (a tracked signal) as seen at the current stage."""
        return self.at(signal, self.stage)

    def at(self, signal, stage):
        """``signal`` (a tracked signal) as seen at ``stage``."""
        chain, born, reset, name = self._chains[id(signal)]
        depth = stage - born
        if depth < 0:
            raise ValueError(f"{name} is made at stage {born}, after stage {stage}")
        index = -(-depth // self.period)
        while len(chain) <= index:
            reg = Signal.like(chain[0], name=f"{name}_s{born + (len(chain) - 1) * self.period + 1}",
                              reset_less=not reset)
            self._loads.setdefault(born % self.period, []).append(reg.eq(chain[-1]))
            chain.append(reg)
        return chain[index]

    def finish(self):
        """Emit the registers (call once, after the last stage)."""
        for residue, loads in self._loads.items():
            with self.m.If(self.en & self.present(residue)):
                self.m.d.sync += loads
        self._loads = {}


def round_shift(value, shift):
    """``value · 2^-shift`` rounded to nearest, ties up, for a constant ``shift`` (left and exact when ≤ 0)."""
    if shift <= 0:
        return value << -shift
    return (value + (1 << (shift - 1))) >> shift


def saturate(value, bits):
    """Clamp a signed value to the signed ``bits``-bit range (signed(bits))."""
    value = Value.cast(value)
    if len(value) <= bits:
        return value.as_signed() if value.shape().signed else value
    top = value[bits - 1:]
    fits = ~top.any() | top.all()
    limit = Mux(value[-1], -(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    return Mux(fits, value[:bits].as_signed(), limit)


class SigmoidCore:
    """The σ(−|z|) table and its interpolation stages, for a given table format.

    Parameters
    ----------
    gate_frac : int
        σ outputs are Q0.gate_frac.
    segment_bits : int
        Segments of ``2^-segment_bits``.
    z_range : int
        The table covers ``[0, z_range)``.

    Attributes
    ----------
    entries : list of int
        ``SigmoidTable(gate_frac, segment_bits, z_range).entries``.
    words : list of int
        The ROM: word ``k`` is ``E[k] | D[k] << e_bits``, ``k = 0 … len(entries) − 2``.
    e_bits, d_bits : int
        Widths of ``E`` and ``D`` in a word.
    """

    def __init__(self, gate_frac=_F.gate_frac, segment_bits=_F.sigmoid_segment_bits, z_range=_F.sigmoid_range):
        check_int("gate_frac", gate_frac, 1)
        if check_int("segment_bits", segment_bits) < 0:
            raise ValueError(f"segment_bits must be non-negative, got {segment_bits}")
        check_int("z_range", z_range, 1)
        self.gate_frac = gate_frac
        self.segment_bits = segment_bits
        self.z_range = z_range
        self.entries = [int(e) for e in SigmoidTable(gate_frac, segment_bits, z_range).entries]
        drops = [lo - hi for lo, hi in zip(self.entries, self.entries[1:])]
        assert min(drops) >= 0, "σ(−z) table is not monotonic"
        self.e_bits = max(self.entries).bit_length()
        self.d_bits = max(max(drops).bit_length(), 1)
        self.words = [e | d << self.e_bits for e, d in zip(self.entries, drops)]

    def build(self, m, pipe, z, frac, *, name="sigmoid", multiply=None, table="block"):
        """Add the σ stages to ``pipe``.

        ``z`` (signed, Q.frac, tracked at the current stage) selects the ROM word at the current stage; the next
        stage multiplies ``D·r``; the stage after subtracts. Returns ``(sigma, complement)`` (unsigned(gate_frac +
        1), tracked) at the pipe's stage on return, two stages after the call's (or, with ``multiply``, the stage
        at which its product is made, if that is later).

        ``multiply(a, b, name=...)``, if given, makes ``D·r`` and returns it tracked at the stage at which it is
        ready; ``a`` (``D``) is valid at the ROM word's stage, ``b`` (``r``) is tracked. By default it is a ``*`` at
        the ROM word's stage.

        ``table`` is where the ROM lives (Yosys's ``rom_style``): ``"block"``, a block RAM; ``"logic"``, LUTs and
        the read port's register, so that no logic follows a block RAM's output (its clock-to-output is most of an
        ECP5 cycle at 65 MHz). The stages are the same.
        """
        if table not in ("block", "logic"):
            raise ValueError(f"table must be 'block' or 'logic', not {table!r}")
        g, sub = self.gate_frac, frac - self.segment_bits
        if sub < 0:
            raise ValueError(f"the input's frac ({frac}) must be at least segment_bits ({self.segment_bits})")
        depth = len(self.words)
        neg = pipe.comb(pipe(z) < 0, name=f"{name}_neg")
        mag = abs(pipe(z))
        index = mag[sub:]
        if depth & (depth - 1) == 0:
            inside = ~index[(depth - 1).bit_length():].any() if len(index) > (depth - 1).bit_length() else C(1)
        else:
            inside = index < depth
        inside = pipe.comb(inside, name=f"{name}_inside")
        rem = pipe.comb(mag[:sub], name=f"{name}_rem") if sub else None

        m.submodules[f"{name}_rom"] = rom = memory.Memory(
            shape=unsigned(self.e_bits + self.d_bits), depth=depth, init=self.words, attrs={"rom_style": table})
        port = rom.read_port()
        m.d.comb += [port.addr.eq(index), port.en.eq(pipe.en)]

        pipe.next()  # the ROM word; the multiply; 2^g − E
        pipe.track(port.data, name=f"{name}_word")
        lo = pipe.comb(port.data[:self.e_bits], name=f"{name}_lo")
        lo_flip = pipe.comb((1 << g) - lo, name=f"{name}_lo_flip", shape=unsigned(g + 1))
        if sub:
            if multiply is None:
                drop = pipe.comb(port.data[self.e_bits:] * pipe(rem), name=f"{name}_drop")
            else:
                drop = multiply(port.data[self.e_bits:], rem, name=f"{name}_drop")

        pipe.next()  # e = E − rs(D·r, sub) and 2^g − e, each one carry chain:
        if sub:
            pipe.reach(drop)
        # E − ⌊(q + 2^(sub−1)) / 2^sub⌋ = ⌊(E·2^sub + 2^(sub−1) − 1 − q) / 2^sub⌋ and
        # 2^g − that = ⌊((2^g − E)·2^sub + 2^(sub−1) + q) / 2^sub⌋; the constants are low bits, not adders
        if sub:
            e = (Cat(C((1 << (sub - 1)) - 1, sub), pipe(lo)) - pipe(drop)) >> sub
            flip = (Cat(C(1 << (sub - 1), sub), pipe(lo_flip)) + pipe(drop)) >> sub
        else:
            e, flip = pipe(lo), pipe(lo_flip)
        e = Mux(pipe(inside), e, self.entries[-1])
        flip = Mux(pipe(inside), flip, (1 << g) - self.entries[-1])
        sigma = pipe.comb(Mux(pipe(neg), e, flip), name=f"{name}_sigma", shape=unsigned(g + 1))
        complement = pipe.comb(Mux(pipe(neg), flip, e), name=f"{name}_complement", shape=unsigned(g + 1))
        return sigma, complement


def sigmoid_output_layout(width, gate_frac):
    """Payload of :class:`SigmoidUnit`'s output.

    ``sigmoid``: σ(z), unsigned Q0.gate_frac in ``gate_frac + 1`` bits; ``complement``: 1 − σ(z) = σ(−z), same
    format; ``silu``: SiLU(z), signed(width) in the input's format.
    """
    return data.StructLayout({
        "sigmoid": unsigned(gate_frac + 1),
        "complement": unsigned(gate_frac + 1),
        "silu": signed(width),
    })


class SigmoidUnit(wiring.Component):
    """σ(z), 1 − σ(z) and SiLU(z) of a stream of fixed-point values, one per cycle, bit-exact to the golden model.

    Five stages: ``|z|`` and the ROM address; ROM word and ``D·r``; subtraction and the sign; ``z·σ(z)``;
    rounding. The pipeline stalls as a whole: ``i.ready = ~o.valid | o.ready`` (a combinational path from
    ``o.ready``); ``o.valid`` and ``o.payload`` come from registers and hold while stalled. With no stalls the
    latency is 5 cycles.

    Parameters
    ----------
    width : int
        Bits of the input ``z`` (signed): ``act_bits`` for activations, ``state_bits`` for the state.
    frac : int
        Fractional bits of ``z``: ``act_frac`` or ``state_frac``. At least ``segment_bits``.
    gate_frac, segment_bits, z_range : int
        The σ table (``golden.Formats``: ``gate_frac``, ``sigmoid_segment_bits``, ``sigmoid_range``).
        Defaults: ``golden.Formats``'s, for activations.

    Attributes
    ----------
    i : In(stream.Signature(signed(width)))
    o : Out(stream.Signature(sigmoid_output_layout(width, gate_frac)))
    """

    def __init__(self, width=_F.act_bits, frac=_F.act_frac, *, gate_frac=_F.gate_frac,
                 segment_bits=_F.sigmoid_segment_bits, z_range=_F.sigmoid_range):
        check_int("width", width, 2)
        check_int("frac", frac)
        self.core = SigmoidCore(gate_frac, segment_bits, z_range)
        if not segment_bits <= frac:
            raise ValueError(f"frac ({frac}) must be at least segment_bits ({segment_bits})")
        self.width, self.frac = width, frac
        super().__init__({
            "i": In(stream.Signature(signed(width))),
            "o": Out(stream.Signature(sigmoid_output_layout(width, gate_frac))),
        })

    #: cycles from taking an input to offering its output, without stalls
    latency = 5

    def elaborate(self, platform):
        m = Module()
        g = self.core.gate_frac
        en = Signal()
        pipe = Pipeline(m, en)

        valid = pipe.comb(self.i.valid, name="valid", reset=True)
        z = pipe.comb(self.i.payload, name="z")
        sigma, complement = self.core.build(m, pipe, z, self.frac)
        pipe.next()
        product = pipe.comb(pipe(z) * pipe(sigma), name="product")
        pipe.next()
        silu = pipe.comb(round_shift(pipe(product), g), name="silu", shape=signed(self.width))
        pipe.next()
        assert pipe.stage == self.latency

        m.d.comb += [
            self.o.valid.eq(pipe(valid)),
            self.o.payload.sigmoid.eq(pipe(sigma)),
            self.o.payload.complement.eq(pipe(complement)),
            self.o.payload.silu.eq(pipe(silu)),
            en.eq(~self.o.valid | self.o.ready),
            self.i.ready.eq(en),
        ]
        pipe.finish()
        return m

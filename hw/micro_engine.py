"""The micro-engine: the narrow microcoded element engine of the UP5K core, bit- and cycle-exact to
:class:`mmfree.host.micro.MicroMachine`.

One instruction runs at a time; the program ROM is read ahead so that its latency is hidden. The pipeline, in the
cycles of an instruction ``i`` that starts in cycle ``t``:

- ``t − 2``: the ROM's address is ``i`` (the ROM's output register is loaded at the end of the cycle);
- ``t − 1`` (the last cycle of ``i − 1``): the ROM's output shows word ``i``; its ``ra``, ``rb`` and ``rs`` fields
  address the register file, whose block RAMs register the operands;
- ``t …``: ``i`` executes from its instruction register for :data:`~mmfree.host.micro.CYCLES` cycles (the last of
  which writes ``rd``), while the ROM already shows word ``i + 1``. A taken branch, ``JAL`` and ``JR`` redirect the
  ROM in their cycle; the next cycle (the ``TAKEN_EXTRA``) reads the target's registers.

The register file is three copies in block RAM, written together: ``ra``'s and ``rb``'s (48 bits) and ``rs``'s (its
low 8 bits, the shift of ``MSR``/``MSF``). A register written at the edge at which it is read comes from a bypass
register of the last written value; ``r0`` reads 0 (1 as the multiplier's second operand). In the cycles of a
multi-cycle operation the ports read ``rd`` (``MAC``'s addend) instead.

``MSR``/``MSF``/``MAC`` (3 cycles): ``t`` the three partial products ``a[0:16]·b[0:16]``, ``a[16:32]·b[0:16]``,
``a[32:48]·b[0:16]`` (:class:`~mmfree.hw.primitives.Mac16` without input registers: the block RAM's output
register serves as theirs), and in logic the correction ``a·b[16:18]`` and the shift ``s`` with its rounding
constant ``2^(s−1)``; ``t + 1`` one sum of the partials, the correction and the rounding constant (``MSR``) or
``rd`` (``MAC``); ``t + 2`` the one shifter and the saturation (a mask of the sum's bits above the result), and the
write. ``SIG`` (5 cycles) uses the same parts: ``|z|`` by the adder, ``|z| >> sub`` and ``|z| mod 2^sub`` by the
shifter and the mask, the table's word, ``D·r`` by the multiplier, the rounding sum, the shifter again, ``E − x``
and ``2^g − E + x``. ``LIS`` uses the shifter in its one cycle.

Timing: ``done`` pulses :data:`MicroEngine.DONE_OFFSET` (2) cycles later than ``MicroMachine.run`` counts, from
the cycle in which ``start`` is accepted (cycle 0: the ROM's address; cycle 1: the entry's operands; the program's
cycles; ``done`` in the cycle after ``HALT``). With ``stall`` high everything holds.

The registers start undefined (the block RAMs), as the contract says (the simulator faults on reading a register
before it is written). Deviations the contract leaves open: a fault that ``MicroMachine`` raises (an address outside
a space, a shift outside ``SHIFT_RANGE``, ``SIG`` with ``frac`` below the table's segment bits or mode 3, a pc
outside the firmware) gives an undefined result here; shifts above 66 act as 66 (the same result for every product).
"""

from amaranth import *
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..host.golden import Formats
from ..host.micro import REG_BITS, VECTOR_LATENCY, MicroError, Op, Space, decode, field_bits
from .checks import check_int
from .primitives import BlockRam, Mac16, check_impl, resolve_impl
from .sigmoid import SigmoidCore

__all__ = ["MicroBus", "MicroEngine"]

#: the memory port: ``space``, ``addr``, ``re``, ``we``, ``wdata`` out; ``rdata`` in, the cycle after ``re``
MicroBus = wiring.Signature({
    "space": Out(4),
    "addr": Out(16),
    "re": Out(1),
    "we": Out(1),
    "wdata": Out(REG_BITS),
    "rdata": In(REG_BITS),
})

_SUM_BITS = 68    # the sum of the partial products, the rounding constant or rd: |value| < 2^66
_SHIFT_MAX = 66   # shifts above act as this one (every product then rounds to 0 and floors to its sign)


def _field(word, op, name):
    """Field ``name`` of ``op``'s format in ``word``, as a signed or unsigned Value."""
    offset, bits, signed_ = field_bits(op, name)
    value = word[offset:offset + bits]
    return value.as_signed() if signed_ else value


def _product(m, name, a, b, en, impl):
    """A 16×16 product registered once (latency 1): :class:`~mmfree.hw.primitives.Mac16` without input registers."""
    m.submodules[name] = mac = Mac16(a_signed=a.shape().signed, b_signed=b.shape().signed, input_registers=False,
                                     impl=impl)
    m.d.comb += [mac.a.eq(a), mac.b.eq(b), mac.en.eq(en)]
    return mac.o


def _below(value, width):
    """Thermometer: bit ``j`` (``j < width``) is ``j < value`` (``value`` signed or unsigned)."""
    return Cat(value > j for j in range(width))


class MicroEngine(wiring.Component):
    """Runs micro-engine firmware (:mod:`mmfree.host.micro`) bit- and cycle-exact to ``MicroMachine``.

    Parameters
    ----------
    firmware : list of int
        32-bit words (:func:`~mmfree.host.micro.encode`), 1 … 1024 of them; the program ROM holds them, its depth
        the next power of two of at least 256.
    spaces : dict of int → Space
        The data spaces (numbers 0–15) that ``bus`` reaches: a loaded word is sign- or zero-extended from the space's
        width as the space says.
    formats : golden.Formats
        The σ table (``gate_frac``, ``sigmoid_segment_bits``, ``sigmoid_range``).
    writable : bool
        Add the ``prog`` port that writes the program ROM (firmware loaded at run time; a bench loads many programs
        into one build).
    impl : {"model", "ice40", "ecp5"} or None
        Implementation of the block RAMs and multipliers; ``None`` chooses by the platform.

    Attributes
    ----------
    start : In(stream.Signature(unsigned(pc_bits)))
        The entry pc; accepted (``ready``) only while idle and not stalled.
    done : Out(1)
        One-cycle pulse in the cycle after ``HALT`` ran (the engine is idle then).
    stall : In(1)
        Freezes the engine for the cycle (``bus.re``/``bus.we`` low); ``bus.rdata`` must hold meanwhile.
    bus : Out(MicroBus)
        ``space`` (4 bits), ``addr`` (16 bits, ``ra + imm``), ``re``, ``we``, ``wdata`` (48 bits, the register: the
        memory keeps its low ``width`` bits); ``rdata`` (48 bits, in) the cycle after ``re``.
    prog : In(Signature(addr, data, we))
        Only with ``writable``: writes word ``data`` (32 bits) at ``addr`` of the program ROM.
    """

    #: cycles from the one in which ``start`` is accepted to ``done``, beyond what ``MicroMachine.run`` returns
    DONE_OFFSET = 2

    def __init__(self, firmware, spaces, formats=Formats(), *, writable=False, impl=None):
        if not isinstance(firmware, (list, tuple)):
            raise TypeError(f"firmware must be a list of words, got {type(firmware).__name__}")
        if not 1 <= len(firmware) <= 1024:
            raise ValueError(f"firmware must have 1 … 1024 words, got {len(firmware)}")
        for index, word in enumerate(firmware):
            check_int(f"firmware[{index}]", word, 0, 2**32 - 1)
            try:
                op = decode(word)[0]
            except MicroError as error:
                raise ValueError(f"firmware[{index}]: {error}") from None
            if op in VECTOR_LATENCY or op is Op.VSTREAM:
                raise ValueError(f"firmware[{index}]: {op.name}: the vector operations are not in the gateware yet")
        if not isinstance(spaces, dict):
            raise TypeError(f"spaces must be a dict of space number → Space, got {type(spaces).__name__}")
        for number, space in spaces.items():
            check_int("space number", number, 0, 15)
            if not isinstance(space, Space):
                raise TypeError(f"spaces[{number}] must be a Space, got {type(space).__name__}")
        if not isinstance(formats, Formats):
            raise TypeError(f"formats must be a golden.Formats, got {type(formats).__name__}")
        self.sigmoid = SigmoidCore(formats.gate_frac, formats.sigmoid_segment_bits, formats.sigmoid_range)
        if self.sigmoid.d_bits > 17 or self.sigmoid.e_bits > 17:
            raise ValueError("the σ table's entries and drops must fit 17 bits (gate_frac ≤ 16)")
        if len(self.sigmoid.words) & (len(self.sigmoid.words) - 1):
            raise ValueError("the σ table must have a power of two of segments")
        self.firmware = [int(word) for word in firmware]
        self.spaces = dict(spaces)
        self.depth = max(256, 1 << (len(firmware) - 1).bit_length())
        self.pc_bits = self.depth.bit_length() - 1
        self._writable = bool(writable)
        self._impl = check_impl(impl)
        members = {
            "start": In(stream.Signature(unsigned(self.pc_bits))),
            "done": Out(1),
            "stall": In(1),
            "bus": Out(MicroBus),
        }
        if writable:
            members["prog"] = In(wiring.Signature({
                "addr": Out(self.pc_bits), "data": Out(32), "we": Out(1)}))
        super().__init__(members)

    def elaborate(self, platform):
        impl = resolve_impl(self._impl, platform, "MicroEngine")
        m = Module()
        en = Signal()
        m.d.comb += en.eq(~self.stall)

        # --- fetch and control ----------------------------------------------------------------------------------
        m.submodules.rom = rom = BlockRam(width=32, depth=self.depth, init=self.firmware, impl=impl)
        if self._writable:
            m.d.comb += [rom.w_addr.eq(self.prog.addr), rom.w_data.eq(self.prog.data), rom.w_en.eq(self.prog.we)]
        word = rom.r_data
        busy, fill, done = Signal(), Signal(), Signal()
        cyc = Signal(3)
        pc_out = Signal(self.pc_bits)          # the address of the word the ROM shows
        ir = Signal(32, reset_less=True)       # the executing instruction
        op, rd, f = ir[0:6], ir[6:9], ir[15:32]
        is_ = {o: Signal(name=f"is_{o.name.lower()}") for o in Op}
        m.d.comb += [is_[o].eq(op == o) for o in Op]
        mul_op = is_[Op.MSR] | is_[Op.MSF] | is_[Op.MAC]
        branch = is_[Op.BEQ] | is_[Op.BNE] | is_[Op.BLT] | is_[Op.BGE]
        last_cyc = Mux(is_[Op.SIG], 4, Mux(mul_op, 2, Mux(is_[Op.LD], 1, 0)))
        run = Signal()      # an instruction executes this cycle
        last = Signal()     # the ROM's word is taken this cycle (the instruction's nominal last cycle, or a fill)
        m.d.comb += [run.eq(busy & ~fill), last.eq(busy & (fill | (cyc == last_cyc)))]
        accept = Signal()
        m.d.comb += [self.start.ready.eq(~busy & en), accept.eq(self.start.valid & self.start.ready)]

        # --- register file --------------------------------------------------------------------------------------
        we, wdata = Signal(), Signal(REG_BITS)
        bypass = Signal(REG_BITS, reset_less=True)
        ports = {}
        for port, width, next_addr, own_addr in (("a", REG_BITS, word[9:12], rd), ("b", REG_BITS, word[12:15], rd),
                                                  ("s", 8, word[15:18], rd)):
            m.submodules[f"regs_{port}"] = mem = BlockRam(width=width, depth=8, impl=impl)
            addr = Signal(3, name=f"raddr_{port}")
            hit, zero = Signal(name=f"hit_{port}"), Signal(name=f"zero_{port}")
            m.d.comb += [
                addr.eq(Mux(last, next_addr, own_addr)),
                mem.r_addr.eq(addr), mem.r_en.eq(en),
                mem.w_addr.eq(rd), mem.w_data.eq(wdata[:width]), mem.w_en.eq(we),
            ]
            with m.If(en):
                m.d.sync += [hit.eq(we & (addr == rd)), zero.eq(addr == 0)]
            value = Signal(width, name=f"reg_{port}")
            m.d.comb += value.eq(Mux(hit, bypass[:width], Mux(zero, 0, mem.r_data)))
            ports[port] = (value, zero)
        a, b, rs = ports["a"][0], ports["b"][0], ports["s"][0]
        b_is_r0 = ports["b"][1]
        with m.If(we):
            m.d.sync += bypass.eq(wdata)

        # --- the adder, the logic unit, BITLEN ------------------------------------------------------------------
        negate = Signal()
        m.d.comb += negate.eq(is_[Op.ABS] & a[47] | is_[Op.NEGIF] & b[47] | is_[Op.SIG] & a[47])
        compare = is_[Op.SUB] | is_[Op.MAX] | is_[Op.MIN] | is_[Op.BLT] | is_[Op.BGE]
        y = Signal(REG_BITS)
        with m.If(is_[Op.ADD]):
            m.d.comb += y.eq(b)
        with m.Elif(compare):
            m.d.comb += y.eq(~b)
        with m.Elif(is_[Op.ADDI]):
            m.d.comb += y.eq(_field(ir, Op.ADDI, "imm"))
        with m.Else():
            m.d.comb += y.eq(negate.replicate(REG_BITS))
        total = Signal(REG_BITS + 1)
        m.d.comb += total.eq(a.as_signed() + y.as_signed() + compare)
        lt = total[REG_BITS]
        arith = total[:REG_BITS] ^ negate.replicate(REG_BITS)
        eq = a == b
        logic = Signal(REG_BITS)
        with m.If(is_[Op.AND]):
            m.d.comb += logic.eq(a & b)
        with m.Elif(is_[Op.XOR]):
            m.d.comb += logic.eq(a ^ b)
        with m.Elif(is_[Op.MAX] ^ lt):
            m.d.comb += logic.eq(a)
        with m.Else():
            m.d.comb += logic.eq(b)
        folded = a ^ a[47].replicate(REG_BITS)  # |a| − 1 for a negative a, a otherwise
        length = Signal(6)
        for j in range(REG_BITS):
            with m.If(folded[j]):
                m.d.comb += length.eq(j + 1)
        all_ones = ~(folded[1:] & ~folded[:-1]).any()  # folded = 2^k − 1: |a| = folded + 1 is 2^k
        bitlen = length + (a[47] & all_ones)

        # --- control flow ---------------------------------------------------------------------------------------
        taken = Mux(is_[Op.BEQ], eq, Mux(is_[Op.BNE], ~eq, Mux(is_[Op.BLT], lt, ~lt)))
        redirect = Signal()
        m.d.comb += redirect.eq(run & (cyc == 0) & (is_[Op.JAL] | is_[Op.JR] | branch & taken))
        target = Mux(is_[Op.JR], a[:self.pc_bits], ir[15:25])
        m.d.comb += [
            rom.r_en.eq(en & (accept | last)),
            rom.r_addr.eq(Mux(accept, self.start.payload, Mux(redirect, target, pc_out + 1))),
        ]
        halt = run & is_[Op.HALT]
        with m.If(en):
            m.d.sync += done.eq(halt)
            with m.If(rom.r_en):
                m.d.sync += pc_out.eq(rom.r_addr)
            with m.If(accept):
                m.d.sync += [busy.eq(1), fill.eq(1), cyc.eq(0)]
            with m.Elif(halt):
                m.d.sync += busy.eq(0)
            with m.Elif(last):
                m.d.sync += [ir.eq(word), cyc.eq(0), fill.eq(redirect)]
            with m.Elif(busy):
                m.d.sync += cyc.eq(cyc + 1)
        m.d.comb += self.done.eq(done)

        # --- memory port ----------------------------------------------------------------------------------------
        space = f[0:4]
        address = a[:16] + _field(ir, Op.LD, "imm")
        m.d.comb += [
            self.bus.space.eq(space), self.bus.addr.eq(address[:16]), self.bus.wdata.eq(b),
            self.bus.re.eq(en & run & is_[Op.LD] & (cyc == 0)),
            self.bus.we.eq(en & run & is_[Op.ST]),
        ]
        loaded = Signal(REG_BITS)
        with m.Switch(space):
            for number, sp in self.spaces.items():
                with m.Case(number):
                    data = self.bus.rdata[:sp.width]
                    m.d.comb += loaded.eq(data.as_signed() if sp.signed else data)

        # --- multiplier -----------------------------------------------------------------------------------------
        core = self.sigmoid
        rem = Signal(32, reset_less=True)               # SIG: |z| mod 2^sub
        table_word = Signal(core.e_bits + core.d_bits)
        drop = table_word[core.e_bits:]
        mul_a = Mux(is_[Op.SIG], rem, a).as_signed()[:REG_BITS]
        mul_b = Mux(is_[Op.SIG], drop, Cat(b[0] | b_is_r0, b[1:18]))
        a0, a1, a2 = mul_a[0:16], mul_a[16:32], mul_a[32:48].as_signed()
        b_lo, b_hi = mul_b[0:16], mul_b[16:18].as_signed()
        p0 = _product(m, "p0", a0, b_lo, en, impl)
        p1 = _product(m, "p1", a1, b_lo, en, impl)
        p2 = _product(m, "p2", a2, b_lo, en, impl)
        correction = Signal(signed(REG_BITS + 3), reset_less=True)  # a · b[16:18]
        with m.If(en):
            m.d.sync += correction.eq(Mux(b_hi[0], mul_a.as_signed(), 0) - Mux(b_hi[1], mul_a.as_signed() << 1, 0))

        # --- shift, its rounding constant and saturation bounds (decided in an instruction's first cycle) ----------
        shift = Signal(signed(8), reset_less=True)       # s, clamped to −48 … 66
        bound = Signal(signed(8), reset_less=True)       # s + bits − 1: the sum's bits from here up must agree
        sat_bits = Signal(6, reset_less=True)
        round_k = Signal(_SUM_BITS, reset_less=True)     # 2^(s−1) for MSR and SIG with s ≥ 1
        s_new = Signal(signed(9))
        m.d.comb += s_new.eq(Mux(is_[Op.SIG], _field(ir, Op.SIG, "frac") - core.segment_bits,
                                 rs.as_signed() + _field(ir, Op.MSR, "s")))
        s_clamped = Mux(s_new > _SHIFT_MAX, _SHIFT_MAX, s_new)
        bits_new = Mux(is_[Op.SIG], 1, Mux(mul_op, _field(ir, Op.MSR, "bits"), 0))
        rounds = is_[Op.MSR] | is_[Op.SIG]
        with m.If(en & (cyc == 0)):
            m.d.sync += [
                shift.eq(s_clamped), bound.eq(s_clamped + bits_new - 1), sat_bits.eq(bits_new),
                round_k.eq(Cat((rounds & (s_clamped == j + 1)) for j in range(_SUM_BITS))),
            ]

        # --- the sum (MSR/MSF/MAC second cycle, SIG fourth) and the shifter's input -----------------------------
        value = Signal(signed(_SUM_BITS), reset_less=True)
        partial = Cat(p0[:32], p2[:32]).as_signed() + (p1 << 16) + (correction << 16)
        addend = Mux(is_[Op.MAC], a.as_signed(), round_k.as_signed())
        magnitude = arith[:REG_BITS]
        with m.If(en):
            with m.If(is_[Op.SIG] & (cyc == 0)):
                m.d.sync += value.eq(magnitude)
            with m.Elif((mul_op & (cyc == 1)) | (is_[Op.SIG] & (cyc == 3))):
                m.d.sync += value.eq(partial + addend)

        lis_sh = _field(ir, Op.LIS, "sh")
        sh_in = Mux(is_[Op.LIS], _field(ir, Op.LIS, "imm"), value)
        sh_amount = Mux(is_[Op.LIS], -Mux(lis_sh > 48, 48, lis_sh), shift)
        wide = Cat(C(0, 48), sh_in.as_signed()[:_SUM_BITS]).as_signed()
        shifted = Signal(REG_BITS)
        m.d.comb += shifted.eq((wide >> (sh_amount + 48).as_unsigned()[:7])[:REG_BITS])

        sign = value[-1]
        upper = ~_below(bound, _SUM_BITS)                    # bit j of the sum ≥ bound
        fits = ~(((value ^ sign.replicate(_SUM_BITS)) & upper).any() | ((bound < 0) & sign))
        saturate = mul_op & (sat_bits != 0) & ~fits
        limit = sign.replicate(REG_BITS) ^ _below(sat_bits - 1, REG_BITS)
        scaled = Mux(saturate, limit, shifted)

        # --- SIG: table word, interpolation ---------------------------------------------------------------------
        m.submodules.sigmoid_rom = sig_rom = BlockRam(width=len(table_word), depth=len(core.words),
                                                      init=core.words, impl=impl)
        index_bits = (len(core.words) - 1).bit_length()
        inside, z_pos = Signal(), Signal()
        m.d.comb += [
            sig_rom.r_addr.eq(shifted[:index_bits]),
            sig_rom.r_en.eq(en & is_[Op.SIG] & (cyc == 1)),
            sig_rom.w_en.eq(0),
            table_word.eq(sig_rom.r_data),
        ]
        with m.If(en & is_[Op.SIG]):
            with m.If(cyc == 0):
                m.d.sync += z_pos.eq(~a[47])
            with m.If(cyc == 1):
                m.d.sync += [inside.eq(~shifted[index_bits:].any()),
                             rem.eq(value[:32] & ~upper[:32])]
        g = core.gate_frac
        entry = table_word[:core.e_bits]
        x = shifted[:core.d_bits + 1]
        e = Mux(inside, entry - x, core.entries[-1])
        flip = Mux(inside, (1 << g) - entry + x, (1 << g) - core.entries[-1])
        mode = f[0:2]
        sig_value = Mux((mode == 0) | ((mode == 1) ^ z_pos), e, flip)[:g + 1]

        # --- write-back -----------------------------------------------------------------------------------------
        writes = ~(is_[Op.HALT] | is_[Op.ST] | branch | is_[Op.JR])
        m.d.comb += we.eq(en & run & writes & (cyc == last_cyc) & (rd != 0))
        with m.If(is_[Op.LD]):
            m.d.comb += wdata.eq(loaded)
        with m.Elif(mul_op | is_[Op.LIS]):
            m.d.comb += wdata.eq(scaled)
        with m.Elif(is_[Op.SIG]):
            m.d.comb += wdata.eq(sig_value)
        with m.Elif(is_[Op.BITLEN]):
            m.d.comb += wdata.eq(bitlen)
        with m.Elif(is_[Op.JAL]):
            m.d.comb += wdata.eq(pc_out)
        with m.Elif(is_[Op.AND] | is_[Op.XOR] | is_[Op.MAX] | is_[Op.MIN]):
            m.d.comb += wdata.eq(logic)
        with m.Else():
            m.d.comb += wdata.eq(arith)
        return m

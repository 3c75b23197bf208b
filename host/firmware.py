"""The micro-engine's firmware: a compiled program (docs/isa.md) run instruction by instruction, bit-exact to Machine.

The firmware is built with :class:`~mmfree.host.micro.Assembler` from the routines below. Element work runs as vector
operations over the data spaces (:class:`Sp`), scalar work (the scale chain in the golden model's scalar float, the
quantizer's reciprocal, argmax) as scalar operations; the firmware's variables live in space ``P`` (:data:`Pa`).
:class:`~mmfree.host.micro_core.MicroCore` runs it against a compiled program (docs/micro.md).

Conventions: ``r1`` is the link register (``JAL r1``); a leaf routine keeps it in ``r7`` while ``r1`` holds the
vector length. The scalar routines (``smul``, ``sadd``, ``snorm``, ``sscale``, ``srsqrt``) take ``x = (r2 mantissa,
r3 exponent)`` and ``y = (r4, r5)`` and leave the result in ``(r2, r3)``.
"""

import enum

from .golden import Formats
from .isa import FIELDS, Epilogue, Opcode, Slot
from .micro import SHIFT_RANGE, Assembler, CMode, SigMode, Space, Stream


class Sp(enum.IntEnum):
    """The data spaces of the UP5K micro core."""
    X = 0
    V = 1
    ACC = 2    # the matvec's accumulators, row r at r
    ACCE = 3   # even rows (GLU's g at j: row 2j)
    ACCO = 4   # odd rows (GLU's u)
    F = 5
    H = 6      # the recurrent state, layer l at l·rows
    WS = 7     # 16-bit fields of the weight memory (field 4w + b: bits 16b… of word w), signed
    WU = 8     # the same, unsigned
    T1 = 9
    T2 = 10
    P = 11     # the firmware's variables
    Q = 12     # the q buffer the matvec reads
    E = 13     # embed_bits fields from the word set in IO[E_BASE]
    FT = 14    # the program, decoded: field j of instruction i at 32·i + j (j = 0: the opcode)
    IO = 15    # the matvec and the embedding reader


class Io(enum.IntEnum):
    WEIGHTS = 0
    ROWS = 1
    COL_GROUPS = 2
    START = 3      # write: start the matvec; read: 1 while it runs
    E_BASE = 4


#: the firmware's variables in space P
Pa = enum.IntEnum("Pa", [
    "N", "MANT", "SHIFT", "BASE", "BASE2", "PRESHIFT", "MAXSRC", "K", "DO_SUM_A", "DO_SUM_U",
    "SUM_A", "SUM_U", "MAXP", "MAXOUT",
    # the scale chain's operands (scalars as mantissa, exponent), its result and scratch
    "SUM_A_C", "KA2", "UNIT_FIRST", "UNIT_FIRST_E", "INV_N", "INV_N_E", "EPS", "EPS_E", "TWO_NORMS", "SUM_U_C",
    "KU2", "UNIT_SRC", "UNIT_SRC_E", "MAXP_C", "KV", "CONSTANT", "CONSTANT_E", "SCALE", "SCALE_E", "TMP_T",
    "TMP_T_E", "TMP_A", "TMP_A_E", "RS_LINK", "RS_EXP", "CHAIN_LINK", "CHAIN_REUSE", "RSQRT", "RSQRT_E",
    # the program's state
    "TOKEN", "IP", "RESIDUAL_FRAC", "UNIT_X", "UNIT_X_E", "UNIT_V", "UNIT_V_E", "UNIT_G", "UNIT_G_E",
    "MAX_X", "MAX_V", "SUM_G", "K_G", "REUSE", "OUT_TOKEN", "LOGIT_SCALE", "LOGIT_SCALE_E",
    # the current instruction's fields (FIELDS order), copied from FT
    *[f"F_{field.name.upper()}" for field in FIELDS[Opcode.BITLINEAR]],
], start=0)

#: the instruction fields the firmware reads, by opcode: name → index in FT (0 is the opcode)
FIELD_INDEX = {op: {field.name: j + 1 for j, field in enumerate(FIELDS[op])} for op in Opcode}
FT_STRIDE = 32


def spaces(core, formats=Formats()):
    """The data spaces of a micro core with ``core``'s parameters (:class:`~mmfree.host.compiler.CoreParams`):
    number → :class:`~mmfree.host.micro.Space`. ``IO`` and ``E`` are plain memories here; the core model
    (:class:`~mmfree.host.micro_core.MicroCore`) replaces them with its devices."""
    f, acc_bits, max_vector = formats, core.acc_bits, core.max_vector
    weight_words, instructions, state_words = core.weight_words, core.program_instructions, core.state_words
    return {
        Sp.X: Space("X", f.residual_bits, max_vector), Sp.V: Space("V", 40, max_vector),
        Sp.ACC: Space("ACC", acc_bits, 2 * max_vector), Sp.ACCE: Space("ACCE", acc_bits, max_vector),
        Sp.ACCO: Space("ACCO", acc_bits, max_vector), Sp.F: Space("F", f.gate_frac + 1, max_vector, signed=False),
        Sp.H: Space("H", f.state_bits, state_words), Sp.WS: Space("WS", 16, 4 * weight_words),
        Sp.WU: Space("WU", 16, 4 * weight_words, signed=False), Sp.T1: Space("T1", 32, max_vector),
        Sp.T2: Space("T2", 32, max_vector), Sp.P: Space("P", 48, 128), Sp.Q: Space("Q", 8, 2 * max_vector),
        Sp.E: Space("E", f.embed_bits, max_vector), Sp.FT: Space("FT", 32, FT_STRIDE * instructions),
        Sp.IO: Space("IO", 48, 8),
    }


class Firmware:
    """The firmware for ``formats``.

    Parameters
    ----------
    formats : golden.Formats
        ``scalar_bits`` must be even (``srsqrt`` takes the root's digits in pairs of quotient bits).
    tests : bool
        Also an entry ``<routine>_test`` per routine (``JAL`` to it, then ``HALT``), so that benches can run one
        routine with its operands in space P.

    Attributes
    ----------
    words : list of int
        The program memory from address 0.
    entries : dict
        Entry name → address: ``run`` (one token: ``P[TOKEN]`` in, ``P[OUT_TOKEN]`` out) and the test entries.
    """

    #: the routines that call no other (the link rides r7)
    LEAVES = ("forget", "state", "gate", "residual", "glu", "embed", "stats_x", "stats_v", "quantize", "chain",
              "sumsq_acc", "argmax")
    #: the scalar routines
    SCALARS = ("smul", "sadd", "snorm", "sscale", "srsqrt")

    def __init__(self, formats=Formats(), *, tests=False):
        if formats.scalar_bits % 2:
            raise ValueError(f"the firmware needs an even scalar_bits, not {formats.scalar_bits}")
        self.f = formats
        self.a = Assembler()
        self.entries = {}
        self._routine("run", self._run)
        if tests:
            for name in self.LEAVES:
                self._routine(f"{name}_test", lambda name=name: self.call(name))
            for name in ("smul", "sadd", "srsqrt"):
                self._routine(f"{name}_test", lambda name=name: self._scalar_test(name))
        for name in self.LEAVES:
            self.a.label(name)
            getattr(self, "_" + name)()
            self.a.jr(1)
        for name in self.SCALARS:
            self.a.label(name)
            getattr(self, "_" + name)()
        self.words = self.a.assemble()

    def _routine(self, name, body):
        self.a.label(name)
        self.entries[name] = self.a.labels[name]
        body()
        self.a.halt()

    # -- helpers ----------------------------------------------------------------------------------------------

    def ld(self, rd, param):
        self.a.ld(rd, 0, space=Sp.P, imm=param)

    def st(self, param, rb):
        self.a.st(0, rb, space=Sp.P, imm=param)

    def ld2(self, rm, param):
        self.ld(rm, param)
        self.ld(rm + 1, param + 1)

    def st2(self, param, rm):
        self.st(param, rm)
        self.st(param + 1, rm + 1)

    def const(self, rd, value):
        """rd = value (an 11-bit mantissa shifted left)."""
        sh = 0
        while not -1024 <= value >> sh < 1024 or (value >> sh) << sh != value:
            sh += 1
            if sh > 47:
                raise ValueError(f"{value} is not an 11-bit number shifted")
        self.a.lis(rd, imm=value >> sh, sh=sh)

    def call(self, name):
        self.a.jal(1, target=name)

    def mem(self, which, space, reg=0, imm=0):
        self.a.vstream(reg, which=which, space=space, imm=imm, reg=0)

    def val(self, which, reg):
        self.a.vstream(reg, which=which, space=0, imm=0, reg=1)

    def vmsr(self, n, rs=0, s=0, bits=0, cmode=CMode.NONE, absa=0, maxr=0, rd=0, floor=False):
        (self.a.vmsf if floor else self.a.vmsr)(rd, n, rs, s=s, bits=bits, cmode=cmode, absa=absa, maxr=maxr)

    def clamp_shift(self, rd, tmp):
        """rd clamped to SHIFT_RANGE (clamping changes no result of MSR/MSF)."""
        self.const(tmp, SHIFT_RANGE[0])
        self.a.max(rd, rd, tmp)
        self.const(tmp, SHIFT_RANGE[1])
        self.a.min(rd, rd, tmp)

    def scale_params(self, frac):
        """P[MANT], P[SHIFT] = the output scale's mantissa and −(exp + frac), clamped (frac: an int or a P slot)."""
        self.ld2(2, Pa.SCALE)
        self.st(Pa.MANT, 2)
        if isinstance(frac, Pa):
            self.ld(4, frac)
            self.a.add(3, 3, 4)
        else:
            self.a.addi(3, 3, imm=frac)
        self.a.sub(3, 0, 3)
        self.clamp_shift(3, 4)
        self.st(Pa.SHIFT, 3)

    def prologue(self):
        """A leaf's start: the link into r7, then r1 … r3 = P[N], P[MANT], P[SHIFT]."""
        self.a.add(7, 1, 0)
        self.ld(1, Pa.N)
        self.ld(2, Pa.MANT)
        self.ld(3, Pa.SHIFT)

    def epilogue_return(self):
        """A leaf's end: the link back into r1 (the leaf's ``JR r1`` follows)."""
        self.a.add(1, 7, 0)

    def max_pass(self, a, b, d, c=None, **fields):
        """D = ``VMSR`` of A·B (C by ``cmode``) over r1 elements, and max|D| into P[MAXOUT]; a source is a space or
        ``("r", n)``, the value of register n."""
        self.const(5, 0)
        for which, source in ((Stream.A, a), (Stream.B, b), (Stream.C, c), (Stream.D, d)):
            if isinstance(source, tuple):
                self.val(which, source[1])
            elif source is not None:
                self.mem(which, source)
        self.vmsr(1, maxr=1, rd=5, **fields)
        self.st(Pa.MAXOUT, 5)

    def sum_of_products(self, param):
        """P[param] = Σ A[i]·B[i] over r1 elements (the streams set before: T1 twice for squares)."""
        self.const(5, 0)
        self.a.vmac(5, 1)
        self.st(param, 5)

    def scale(self, dst, src=Sp.ACC):
        """D = sat_act(round(src · mant · 2^−shift)): r1 = n, r2 = mant, r3 = shift."""
        self.mem(Stream.A, src)
        self.val(Stream.B, 2)
        self.mem(Stream.D, dst)
        self.vmsr(1, rs=3, bits=self.f.act_bits)

    def silu(self, z_space, frac, out, base=0):
        """out = SiLU(z) = round(z · σ(z) · 2^−gate_frac); T2 holds σ(z) after."""
        self.mem(Stream.A, z_space, base)
        self.mem(Stream.D, Sp.T2)
        self.a.vsig(1, mode=SigMode.SIGMOID, frac=frac)
        self.mem(Stream.B, Sp.T2)
        self.mem(Stream.D, out)
        self.vmsr(1, s=self.f.gate_frac)

    # -- epilogues (leaves: r1 is n inside, the link rides r7) ----------------------------------------------------

    def _forget(self):
        f = self.f
        self.prologue()
        self.ld(4, Pa.BASE)
        self.scale(Sp.T1)
        self.mem(Stream.A, Sp.T1)
        self.mem(Stream.D, Sp.T2)
        self.a.vsig(1, mode=SigMode.COMPLEMENT, frac=f.act_frac)
        self.mem(Stream.A, Sp.T2)
        self.mem(Stream.B, Sp.WU, 4)
        self.mem(Stream.D, Sp.F)
        self.vmsr(1, s=f.gate_frac)
        self.epilogue_return()

    def _state(self):
        f = self.f
        self.prologue()
        self.ld(4, Pa.BASE)
        self.scale(Sp.T1)
        self.silu(Sp.T1, f.act_frac, Sp.T1)
        self.mem(Stream.A, Sp.T1)
        self.mem(Stream.B, Sp.F)
        self.mem(Stream.D, Sp.T1)
        self.vmsr(1, s=f.gate_frac + f.act_frac - f.state_frac)          # inject
        self.const(5, -1)
        self.const(6, 1 << f.gate_frac)
        self.mem(Stream.A, Sp.F)
        self.val(Stream.B, 5)
        self.val(Stream.C, 6)
        self.mem(Stream.D, Sp.T2)
        self.vmsr(1, cmode=CMode.ADD)                                      # forget = 2^g − (1 − f)
        self.mem(Stream.A, Sp.H, 4)
        self.mem(Stream.B, Sp.T2)
        self.mem(Stream.C, Sp.T1)
        self.mem(Stream.D, Sp.H, 4)
        self.vmsr(1, s=f.gate_frac, bits=f.state_bits, cmode=CMode.ADD)
        self.epilogue_return()

    def _gate(self):
        f = self.f
        self.prologue()
        self.ld(4, Pa.BASE)
        self.silu(Sp.H, f.state_frac, Sp.T1, base=4)
        self.max_pass(Sp.T1, Sp.ACC, Sp.V, s=f.gated_shift)
        self.epilogue_return()

    def _residual(self):
        self.prologue()
        self.max_pass(Sp.ACC, ("r", 2), Sp.X, c=Sp.X, rs=3, bits=self.f.residual_bits, cmode=CMode.ADD)
        self.epilogue_return()

    def _glu(self):
        f = self.f
        self.prologue()
        self.scale(Sp.T1, src=Sp.ACCE)
        self.silu(Sp.T1, f.act_frac, Sp.T1)
        self.max_pass(Sp.T1, Sp.ACCO, Sp.V, s=f.glu_shift)
        self.epilogue_return()

    def _embed(self):
        self.prologue()
        self.const(2, 1)
        self.max_pass(Sp.E, ("r", 2), Sp.X, rs=3, bits=self.f.residual_bits)
        self.epilogue_return()

    def _sumsq_acc(self):
        """o_proj's first norm over g_proj's accumulators: k_G and Σ (acc ≫ k_G)² into P[K_G], P[SUM_G]."""
        self.prologue()
        self.const(2, 1)
        self.const(5, 0)
        self.mem(Stream.A, Sp.ACC)
        self.val(Stream.B, 2)
        self.mem(Stream.D, Sp.T1)
        self.vmsr(1, maxr=1, rd=5)
        self.reduce_shift(3, 5)
        self.st(Pa.K_G, 3)
        self.vmsr(1, rs=3, floor=True)
        self.mem(Stream.A, Sp.T1)
        self.mem(Stream.B, Sp.T1)
        self.sum_of_products(Pa.SUM_G)
        self.epilogue_return()

    def _argmax(self):
        """P[OUT_TOKEN] = the first index of the largest of ACC[0 … n)."""
        self.prologue()
        self.a.ld(2, 0, space=Sp.ACC, imm=0)                  # best value
        self.const(3, 0)                                    # its index
        self.const(4, 1)                                    # i
        self.a.label("argmax_loop")
        self.a.bge(4, 1, target="argmax_done")
        self.a.ld(5, 4, space=Sp.ACC, imm=0)
        self.a.bge(2, 5, target="argmax_next")
        self.a.add(2, 5, 0)
        self.a.add(3, 4, 0)
        self.a.label("argmax_next")
        self.a.addi(4, 4, imm=1)
        self.a.jal(0, target="argmax_loop")
        self.a.label("argmax_done")
        self.st(Pa.OUT_TOKEN, 3)
        self.epilogue_return()

    # -- the BitLinear's passes -----------------------------------------------------------------------------------

    def reduce_shift(self, rd, rmax):
        """rd = max(bitlen(rmax) − (reduce_bits − 1), 0)."""
        self.a.bitlen(rd, rmax)
        self.a.addi(rd, rd, imm=-(self.f.reduce_bits - 1))
        self.a.max(rd, rd, 0)

    def _stats_x(self):
        self.stats(Sp.X)

    def _stats_v(self):
        self.stats(Sp.V)

    def stats(self, src):
        """k from P[MAXSRC]; p = sat(round(v·2^−k))·c into T2 and max|p|; Σ (v ≫ k)² where P[DO_SUM_A]; with
        P[DO_SUM_U], Σ u², u = ((v ≫ k)·pre) ≫ pre_shift."""
        f = self.f
        tag = Sp(src).name.lower()
        self.a.add(7, 1, 0)
        self.ld(1, Pa.N)
        self.ld(3, Pa.MAXSRC)
        self.reduce_shift(3, 3)
        self.st(Pa.K, 3)
        self.const(2, 1)
        self.ld(4, Pa.BASE)
        self.mem(Stream.A, src)
        self.val(Stream.B, 2)
        self.mem(Stream.D, Sp.T1)
        self.vmsr(1, rs=3, bits=f.reduce_bits)                 # w
        self.mem(Stream.A, Sp.T1)
        self.mem(Stream.B, Sp.WS, 4)
        self.mem(Stream.D, Sp.T2)
        self.const(5, 0)
        self.vmsr(1, maxr=1, rd=5)                              # p, max|p|
        self.st(Pa.MAXP, 5)
        self.ld(5, Pa.DO_SUM_A)
        self.ld(6, Pa.DO_SUM_U)
        self.a.add(5, 5, 6)
        self.a.beq(5, 0, target=f"stats_{tag}_done")
        self.mem(Stream.A, src)
        self.val(Stream.B, 2)
        self.mem(Stream.D, Sp.T1)
        self.vmsr(1, rs=3, floor=True)                          # v >> k
        self.mem(Stream.A, Sp.T1)
        self.mem(Stream.B, Sp.T1)
        self.ld(5, Pa.DO_SUM_A)
        self.a.beq(5, 0, target=f"stats_{tag}_u")
        self.sum_of_products(Pa.SUM_A)
        self.a.label(f"stats_{tag}_u")
        self.a.beq(6, 0, target=f"stats_{tag}_done")
        self.ld(4, Pa.BASE2)
        self.ld(3, Pa.PRESHIFT)
        self.mem(Stream.B, Sp.WS, 4)
        self.mem(Stream.D, Sp.T1)
        self.vmsr(1, rs=3, floor=True)                          # u
        self.mem(Stream.B, Sp.T1)
        self.sum_of_products(Pa.SUM_U)
        self.a.label(f"stats_{tag}_done")
        self.epilogue_return()

    def _quantize(self):
        """From max|p| and p in T2: the shift, R = ⌊(127·2^r + ⌊M'/2⌋)/M'⌋, q into Q (from P[BASE])."""
        f = self.f
        a = self.a
        a.add(7, 1, 0)
        self.st(Pa.TMP_T, 7)
        self.ld(1, Pa.N)
        self.ld(2, Pa.MAXP)
        a.bitlen(5, 2)
        a.addi(5, 5, imm=-f.quant_bits)                        # shift
        a.msr(6, 2, 0, rs=5, s=0, bits=0)                      # M'
        self.const(7, 1)
        a.max(6, 6, 7)                                         # top
        # R = (127·2^r + ⌊top/2⌋) // top: 18 quotient bits, restoring, the remainder doubled
        a.msf(3, 6, 0, rs=0, s=1, bits=0)
        self.const(4, 127 << f.recip_shift)
        a.add(3, 3, 4)                                         # remainder
        a.msr(4, 6, 0, rs=0, s=-17, bits=0)                    # divisor · 2^17
        self.const(2, 0)                                       # quotient
        self.const(7, 18)
        a.label("quantize_div")
        a.add(2, 2, 2)
        a.blt(3, 4, target="quantize_div_skip")
        a.sub(3, 3, 4)
        a.addi(2, 2, imm=1)
        a.label("quantize_div_skip")
        a.add(3, 3, 3)
        a.addi(7, 7, imm=-1)
        a.bne(7, 0, target="quantize_div")
        self.const(6, 1)
        self.mem(Stream.A, Sp.T2)
        self.val(Stream.B, 6)
        self.mem(Stream.D, Sp.T1)
        self.vmsr(1, rs=5, absa=1)                              # round(|p| · 2^−shift)
        self.ld(4, Pa.BASE)
        self.mem(Stream.A, Sp.T1)
        self.val(Stream.B, 2)
        self.mem(Stream.C, Sp.T2)
        self.mem(Stream.D, Sp.Q, 4)
        self.vmsr(1, s=f.recip_shift, bits=8, cmode=CMode.SIGN)
        self.ld(1, Pa.TMP_T)

    # -- scalars: x = (r2 mant, r3 exp), y = (r4, r5), result in (r2, r3); r1 links; r6, r7 scratch ------------

    def _snorm(self):
        """Scalar.normalize(r2, r3) (r2 ≥ 0), then return."""
        bits = self.f.scalar_bits
        self.a.bne(2, 0, target="snorm_nz")
        self.const(3, 0)
        self.a.jr(1)
        self.a.label("snorm_nz")
        self.a.bitlen(6, 2)
        self.a.addi(6, 6, imm=-bits)                       # excess
        self.a.msr(2, 2, 0, rs=6, s=0, bits=0)             # round right by excess, or left
        self.a.add(3, 3, 6)
        self.a.bitlen(7, 2)
        self.a.addi(7, 7, imm=-(bits + 1))
        self.a.blt(7, 0, target="snorm_done")
        self.a.msf(2, 2, 0, rs=0, s=1, bits=0)             # the rounding carried out: 2^bits → 2^(bits−1)
        self.a.addi(3, 3, imm=1)
        self.a.label("snorm_done")
        self.a.jr(1)

    def _smul(self):
        self.a.msr(2, 2, 4, rs=0, s=0, bits=0)
        self.a.add(3, 3, 5)
        self.a.jal(0, target="snorm")

    def _sscale(self):
        """r3 += r4 where r2 ≠ 0."""
        self.a.beq(2, 0, target="sscale_zero")
        self.a.add(3, 3, 4)
        self.a.jr(1)
        self.a.label("sscale_zero")
        self.const(3, 0)
        self.a.jr(1)

    def _sadd(self):
        far = self.f.scalar_bits + 1
        self.a.beq(4, 0, target="sadd_x")                  # y = 0: x (also when both are)
        self.a.beq(2, 0, target="sadd_y")
        self.a.sub(6, 3, 5)                                # d = ex − ey
        self.a.blt(6, 0, target="sadd_ylarger")
        self.a.addi(7, 6, imm=-(far + 1))
        self.a.bge(7, 0, target="sadd_x")                  # d > bits + 1: x
        self.a.sub(7, 0, 6)
        self.a.msr(2, 2, 0, rs=7, s=0, bits=0)             # x.mant << d
        self.a.add(2, 2, 4)
        self.a.add(3, 5, 0)
        self.a.jal(0, target="snorm")
        self.a.label("sadd_ylarger")
        self.a.addi(7, 6, imm=far)
        self.a.blt(7, 0, target="sadd_y")                  # d < −(bits + 1): y
        self.a.msr(4, 4, 0, rs=6, s=0, bits=0)             # y.mant << −d
        self.a.add(2, 2, 4)
        self.a.jal(0, target="snorm")
        self.a.label("sadd_y")
        self.a.add(2, 4, 0)
        self.a.add(3, 5, 0)
        self.a.label("sadd_x")
        self.a.jr(1)

    def _srsqrt(self):
        """rsqrt_scalar(r2, r3) of a normalized Scalar (or zero). Clobbers r4–r7 and P[RS_*]."""
        a = self.a
        bits = self.f.scalar_bits
        self.st(Pa.RS_LINK, 1)                             # r1 is the loop counter here
        a.beq(2, 0, target="srsqrt_zero")
        self.const(6, 1)
        a.and_(7, 3, 6)                                    # odd exponent: the mantissa doubled
        a.beq(7, 0, target="srsqrt_even")
        a.add(2, 2, 2)
        a.addi(3, 3, imm=-1)
        a.label("srsqrt_even")
        a.msf(3, 3, 0, rs=0, s=1, bits=0)                  # exp / 2
        self.st(Pa.RS_EXP, 3)
        # rsqrt(v, bits) with v = r2 in [2^(bits−1), 2^(bits+1)) (a normalized mantissa, doubled where the exponent
        # is odd): r = isqrt(⌊2^(4·bits) / v⌋), whose quotient is below 2^(3·bits + 2), so its bits from 3·bits + 2
        # up are zero and the long division starts there with the remainder 2^(bits − 2); then bits·3/2 + 1 pairs
        # of quotient bits, each pair a digit of the root (remainder r3, root remainder r4, root r5)
        self.const(3, 1 << (bits - 2))
        self.const(4, 0)
        self.const(5, 0)
        self.const(1, 3 * bits // 2 + 1)
        a.label("srsqrt_pair")
        for half in range(2):
            a.add(3, 3, 3)
            a.add(4, 4, 4)
            a.blt(3, 2, target=f"srsqrt_q{half}")
            a.sub(3, 3, 2)
            a.addi(4, 4, imm=1)
            a.label(f"srsqrt_q{half}")
        a.add(6, 5, 5)
        a.add(6, 6, 6)
        a.addi(6, 6, imm=1)                                # 4·root + 1
        a.add(5, 5, 5)
        a.blt(4, 6, target="srsqrt_r")
        a.sub(4, 4, 6)
        a.addi(5, 5, imm=1)
        a.label("srsqrt_r")
        a.addi(1, 1, imm=-1)
        a.bne(1, 0, target="srsqrt_pair")
        # normalize(root, −2·bits), scaled by −exp/2
        a.add(2, 5, 0)
        self.ld(3, Pa.RS_EXP)
        a.sub(3, 0, 3)
        a.addi(3, 3, imm=-2 * bits)
        self.ld(1, Pa.RS_LINK)
        a.jal(0, target="snorm")
        a.label("srsqrt_zero")
        self.const(3, 0)
        self.ld(1, Pa.RS_LINK)
        a.jr(1)

    def _scalar_test(self, name):
        """P[SCALE] = P[SCALE] op P[TMP_A] (srsqrt: of P[SCALE])."""
        self.ld2(2, Pa.SCALE)
        self.ld2(4, Pa.TMP_A)
        self.call(name)
        self.st2(Pa.SCALE, 2)

    def _chain(self):
        """P[SCALE] = the output scale, in Arithmetic.bitlinear's order of rounding."""
        a = self.a
        self.st(Pa.CHAIN_LINK, 1)
        self.ld(2, Pa.CHAIN_REUSE)
        a.bne(2, 0, target="chain_peak")                    # i_proj, g_proj: f_proj's rsqrt stands
        self.ld(2, Pa.SUM_A_C)
        self.const(3, 0)
        self.call("snorm")                                  # from_int(sum_a)
        self.ld2(4, Pa.INV_N)
        self.call("smul")                                   # · (1/n)
        self.st2(Pa.TMP_T, 2)
        self.ld2(2, Pa.UNIT_FIRST)
        self.ld2(4, Pa.UNIT_FIRST)
        self.call("smul")                                   # unit²
        self.ld(4, Pa.KA2)
        self.call("sscale")
        self.ld2(4, Pa.TMP_T)
        self.call("smul")                                   # A
        self.ld2(4, Pa.EPS)
        self.call("sadd")                                   # A + ε
        self.ld(6, Pa.TWO_NORMS)
        a.beq(6, 0, target="chain_rsqrt")
        self.ld2(4, Pa.EPS)
        self.call("smul")                                   # ε·(A + ε)
        self.st2(Pa.TMP_A, 2)
        self.ld(2, Pa.SUM_U_C)
        self.const(3, 0)
        self.call("snorm")
        self.ld2(4, Pa.INV_N)
        self.call("smul")
        self.st2(Pa.TMP_T, 2)
        self.ld2(2, Pa.UNIT_SRC)
        self.ld2(4, Pa.UNIT_SRC)
        self.call("smul")
        self.ld(4, Pa.KU2)
        self.call("sscale")
        self.ld2(4, Pa.TMP_T)
        self.call("smul")                                   # B
        self.ld2(4, Pa.TMP_A)
        self.call("sadd")                                   # B + ε·(A + ε)
        a.label("chain_rsqrt")
        self.call("srsqrt")
        self.st2(Pa.RSQRT, 2)
        a.label("chain_peak")
        self.ld(2, Pa.MAXP_C)
        self.ld(3, Pa.KV)
        self.call("snorm")                                  # Scalar.normalize(max|p|, k)
        self.ld2(4, Pa.CONSTANT)
        self.call("smul")
        self.ld2(4, Pa.UNIT_SRC)
        self.call("smul")
        self.ld2(4, Pa.RSQRT)
        self.call("smul")
        self.st2(Pa.SCALE, 2)
        self.ld(1, Pa.CHAIN_LINK)

    # -- the program ------------------------------------------------------------------------------------------------

    def field(self, rd, opcode, name, base=2):
        """rd = field ``name`` of the current instruction (FT base in r``base``)."""
        self.a.ld(rd, base, space=Sp.FT, imm=FIELD_INDEX[opcode][name])

    def _run(self):
        """One token: P[TOKEN] in, P[OUT_TOKEN] out."""
        a = self.a
        self.const(2, 0)
        self.st(Pa.IP, 2)
        a.label("run_next")
        self.ld(2, Pa.IP)
        a.msr(2, 2, 0, rs=0, s=-5, bits=0)                 # · FT_STRIDE
        a.ld(3, 2, space=Sp.FT, imm=0)
        self.ld(4, Pa.IP)
        a.addi(4, 4, imm=1)
        self.st(Pa.IP, 4)
        for opcode, target in ((Opcode.CONFIG, "config"), (Opcode.EMBED, "embedding"), (Opcode.BITLINEAR, "bitlinear")):
            self.const(4, int(opcode))
            a.beq(3, 4, target=target)
        a.jal(0, target="run_end")                         # END
        a.label("config")
        self.field(3, Opcode.CONFIG, "residual_frac")
        self.st(Pa.RESIDUAL_FRAC, 3)
        for name, slot in (("eps", Pa.EPS), ("unit", Pa.UNIT_X)):
            self.field(3, Opcode.CONFIG, f"{name}_mant")
            self.field(4, Opcode.CONFIG, f"{name}_exp")
            self.st2(slot, 3)
        a.jal(0, target="run_next")
        a.label("embedding")
        self._run_embed()
        a.jal(0, target="run_next")
        a.label("bitlinear")
        self._run_bitlinear()
        a.jal(0, target="run_next")
        a.label("run_end")

    def _run_embed(self):
        """X ← the token's embedding row, in the residual format."""
        a = self.a
        self.ld(5, Pa.TOKEN)
        self.field(3, Opcode.EMBED, "exps")
        a.msr(3, 3, 0, rs=0, s=-2, bits=0)                 # field address of the exponents
        a.add(3, 3, 5)
        a.ld(4, 3, space=Sp.WS, imm=0)                     # the row's exponent
        self.ld(6, Pa.RESIDUAL_FRAC)
        a.add(4, 4, 6)
        a.sub(4, 0, 4)
        self.clamp_shift(4, 6)
        self.st(Pa.SHIFT, 4)
        self.field(3, Opcode.EMBED, "row_words")
        a.msr(3, 3, 5, rs=0, s=0, bits=0)
        self.field(4, Opcode.EMBED, "table")
        a.add(3, 3, 4)
        a.st(0, 3, space=Sp.IO, imm=Io.E_BASE)
        self.field(3, Opcode.EMBED, "length")
        self.st(Pa.N, 3)
        self.call("embed")
        self.ld(3, Pa.MAXOUT)
        self.st(Pa.MAX_X, 3)
        self.const(3, 0)
        self.st(Pa.REUSE, 3)

    def copy_fields(self):
        """The BITLINEAR's fields into P[F_*] (FT base in r2)."""
        for j, f in enumerate(FIELDS[Opcode.BITLINEAR]):
            self.a.ld(3, 2, space=Sp.FT, imm=j + 1)
            self.st(Pa[f"F_{f.name.upper()}"], 3)

    def _run_bitlinear(self):
        a, f = self.a, self.f
        self.copy_fields()
        # the source: its max|v| and unit
        self.ld(3, Pa.F_COLS)
        self.st(Pa.N, 3)
        self.ld(3, Pa.F_CONSTS)
        a.msr(3, 3, 0, rs=0, s=-2, bits=0)
        self.st(Pa.BASE, 3)
        self.ld(3, Pa.F_PRE)
        a.msr(3, 3, 0, rs=0, s=-2, bits=0)
        self.st(Pa.BASE2, 3)
        self.ld(3, Pa.F_PRE_SHIFT)
        self.st(Pa.PRESHIFT, 3)
        self.ld(3, Pa.F_SRC)
        self.ld(4, Pa.F_FIRST)
        # the sums: Σ (v ≫ k)² where the first norm is over v, Σ u² with pre; reused while X is unchanged and pre
        # is the same (i_proj and g_proj after f_proj)
        a.sub(5, 4, 3)
        a.beq(5, 0, target="bitlinear_first_is_src")
        self.const(5, 0)
        a.jal(0, target="bitlinear_sum_a_set")
        a.label("bitlinear_first_is_src")
        self.const(5, 1)
        a.label("bitlinear_sum_a_set")
        self.st(Pa.DO_SUM_A, 5)
        self.ld(6, Pa.F_HAS_PRE)
        self.st(Pa.DO_SUM_U, 6)
        self.ld(5, Pa.REUSE)
        self.ld(6, Pa.BASE2)
        a.addi(6, 6, imm=1)                                # the key: pre's address + 1 (0: nothing to reuse)
        self.const(7, int(Slot.X))
        a.bne(3, 7, target="bitlinear_no_reuse")
        self.const(7, 0)
        a.bne(5, 6, target="bitlinear_no_reuse")
        self.st(Pa.DO_SUM_A, 7)
        self.st(Pa.DO_SUM_U, 7)
        self.const(7, 1)
        a.label("bitlinear_no_reuse")
        self.st(Pa.CHAIN_REUSE, 7)
        self.const(7, int(Slot.X))
        # stats over the source slot
        a.bne(3, 7, target="bitlinear_src_v")
        self.ld(5, Pa.MAX_X)
        self.st(Pa.MAXSRC, 5)
        self.call("stats_x")
        self.ld2(5, Pa.UNIT_X)
        a.jal(0, target="bitlinear_stats_done")
        a.label("bitlinear_src_v")
        self.ld(5, Pa.MAX_V)
        self.st(Pa.MAXSRC, 5)
        self.call("stats_v")
        self.ld2(5, Pa.UNIT_V)
        a.label("bitlinear_stats_done")
        self.st2(Pa.UNIT_SRC, 5)
        # the chain's operands
        self.ld(3, Pa.DO_SUM_A)
        a.beq(3, 0, target="bitlinear_keep_sum_a")
        self.first_norm(Pa.SUM_A, Pa.K)
        self.st2(Pa.UNIT_FIRST, 5)
        a.label("bitlinear_keep_sum_a")
        self.ld(3, Pa.F_FIRST)
        self.const(4, int(Slot.G))
        a.bne(3, 4, target="bitlinear_first_done")
        self.first_norm(Pa.SUM_G, Pa.K_G)
        self.ld2(3, Pa.UNIT_G)
        self.st2(Pa.UNIT_FIRST, 3)
        a.label("bitlinear_first_done")
        self.ld(3, Pa.DO_SUM_U)
        a.beq(3, 0, target="bitlinear_keep_sum_u")
        self.ld(3, Pa.SUM_U)
        self.st(Pa.SUM_U_C, 3)
        self.ld(3, Pa.K)
        self.ld(4, Pa.F_PRE_SHIFT)
        a.add(3, 3, 4)
        self.ld(4, Pa.F_PRE_EXP)
        a.add(3, 3, 4)
        a.add(3, 3, 3)
        self.st(Pa.KU2, 3)
        a.label("bitlinear_keep_sum_u")
        self.ld(3, Pa.F_HAS_PRE)
        self.st(Pa.TWO_NORMS, 3)
        self.ld(3, Pa.F_SRC)
        self.const(4, int(Slot.X))
        a.bne(3, 4, target="bitlinear_reuse_off")
        self.ld(3, Pa.BASE2)
        a.addi(3, 3, imm=1)
        self.st(Pa.REUSE, 3)
        a.label("bitlinear_reuse_off")
        self.ld(3, Pa.MAXP)
        self.st(Pa.MAXP_C, 3)
        self.ld(3, Pa.K)
        self.st(Pa.KV, 3)
        for name in ("inv_n", "constant"):
            self.ld(3, Pa[f"F_{name.upper()}_MANT"])
            self.ld(4, Pa[f"F_{name.upper()}_EXP"])
            self.st2(Pa[name.upper()], 3)
        # quantize into the q buffer, run the matvec beside the scale chain
        self.const(3, 0)
        self.st(Pa.BASE, 3)
        self.call("quantize")
        for field_name, io in (("weights", Io.WEIGHTS), ("rows", Io.ROWS), ("col_groups", Io.COL_GROUPS)):
            self.ld(3, Pa[f"F_{field_name.upper()}"])
            a.st(0, 3, space=Sp.IO, imm=io)
        a.st(0, 0, space=Sp.IO, imm=Io.START)
        self.call("chain")
        a.label("matvec_wait")
        a.ld(3, 0, space=Sp.IO, imm=Io.START)
        a.bne(3, 0, target="matvec_wait")
        # the epilogue
        self.ld(3, Pa.F_ROWS)
        self.st(Pa.N, 3)
        self.ld(3, Pa.F_EPILOGUE)
        for epi in Epilogue:
            self.const(4, int(epi))
            a.beq(3, 4, target=f"bitlinear_{epi.name.lower()}")
        a.label("bitlinear_forget")
        self.scale_params(f.act_frac)
        self.ld(3, Pa.F_AUX)
        a.msr(3, 3, 0, rs=0, s=-2, bits=0)
        self.st(Pa.BASE, 3)
        self.call("forget")
        a.jal(0, target="bitlinear_done")
        a.label("bitlinear_state")
        self.scale_params(f.act_frac)
        self.state_base()
        self.call("state")
        a.jal(0, target="bitlinear_done")
        a.label("bitlinear_gate")
        self.state_base()
        self.call("gate")
        self.ld(3, Pa.MAXOUT)
        self.st(Pa.MAX_V, 3)
        self.ld2(2, Pa.SCALE)
        self.st2(Pa.UNIT_G, 2)
        self.const(4, f.gated_shift - f.state_frac)
        self.call("sscale")
        self.st2(Pa.UNIT_V, 2)
        self.call("sumsq_acc")
        a.jal(0, target="bitlinear_done")
        a.label("bitlinear_residual")
        self.scale_params(Pa.RESIDUAL_FRAC)
        self.call("residual")
        self.ld(3, Pa.MAXOUT)
        self.st(Pa.MAX_X, 3)
        self.const(3, 0)
        self.st(Pa.REUSE, 3)
        a.jal(0, target="bitlinear_done")
        a.label("bitlinear_glu")
        self.scale_params(f.act_frac)
        self.ld(3, Pa.N)
        a.msf(3, 3, 0, rs=0, s=1, bits=0)
        self.st(Pa.N, 3)
        self.call("glu")
        self.ld(3, Pa.MAXOUT)
        self.st(Pa.MAX_V, 3)
        self.ld2(2, Pa.SCALE)
        self.const(4, f.glu_shift - f.act_frac)
        self.call("sscale")
        self.st2(Pa.UNIT_V, 2)
        a.jal(0, target="bitlinear_done")
        a.label("bitlinear_logits")
        self.call("argmax")
        self.ld2(2, Pa.SCALE)
        self.st2(Pa.LOGIT_SCALE, 2)
        a.label("bitlinear_done")

    def first_norm(self, sum_slot, k_slot):
        """The chain's first-norm operands: P[SUM_A_C] = P[sum_slot], P[KA2] = 2·P[k_slot]."""
        self.ld(3, sum_slot)
        self.st(Pa.SUM_A_C, 3)
        self.ld(3, k_slot)
        self.a.add(3, 3, 3)
        self.st(Pa.KA2, 3)

    def state_base(self):
        """P[BASE] = the layer's first state word (layer · rows)."""
        self.ld(3, Pa.F_LAYER)
        self.ld(4, Pa.F_ROWS)
        self.a.msr(3, 3, 4, rs=0, s=0, bits=0)
        self.st(Pa.BASE, 3)

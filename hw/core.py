"""The accelerator core: a sequencer that runs a compiled program (docs/isa.md) over the compute units.

One ``RUN`` command runs the program once for a token id and answers with the argmax of the head's accumulators;
the recurrent state stays in vector memory between commands until ``CLEAR``. The host loads the weight image and
the program through the load ports while the core is idle and reads every vector memory back through the debug
port. :class:`~mmfree.host.machine.Machine` is the instruction-level model the core equals bit for bit.

This is the sequential form of the core: a BITLINEAR runs as passes over its input, one after another; the scale
chain then runs on the scalar unit beside the matvec, whose drain holds the accumulators until the scale is known.
The matvec, the chain and the drain form the *back end*, which runs on a copy of the instruction and of the sums its
chain takes, so the sequencer goes on beside it with the next BITLINEAR where that touches nothing the drain uses:
i_proj's passes beside f_proj's matvec (FORGET's drain uses slot F and the state only), g_proj's beside i_proj's,
and FORGET's copy into slot F beside the other drains. The q buffer has two banks for that; the passes' field reads
take the weight memory from the matvec a cycle at a time.

- *passes* stream a vector (a slot of vector memory, or a vector of the weight image) through a shared datapath, one
  element per beat, or over slots ``CoreParams.pass_lanes`` (lanes of the datapath, reduction units summed at the end,
  quantizer lanes, vector memories of that many elements to a word): an optional floor shift (or, for the quantizer's
  products, the rounded cut ``w`` of ``Arithmetic.quantize``), a product with a second operand (1, ``2^e`` or a vector
  of the image) made on one ``Mac16`` over 15-bit limbs, an optional rounding or floor shift, into the reduction unit,
  the quantizer (whose int8 outputs are packed into the q buffer) or a slot. Per BITLINEAR, in this order: when the
  first norm is over another slot, that slot's sum of squares; ``max|w ⊙ c|`` with ``Σ (v ≫ k)²`` (the reduction unit
  squares the element while it takes the maximum of the product); for a projection with two norms ``Σ u²`` of ``u =
  ((v ≫ k) · pre) ≫ pre_shift`` (while ``QUANT`` makes the quantizer's constants on the scalar unit); the quantization
  of ``w ⊙ c``. A FORGET epilogue's BITLINEAR first copies the layer's ``1 − lb`` into slot F. Every pass over slots X
  and V takes one cycle per beat. The shifts ``k`` need no pass: every write of slots X, V and G keeps the vector's
  ``max|x|``.
- the *scale chain*: a fixed sequence of scalar-unit operations (``SCALE_CHAIN``) from those sums to the output scale,
  in the golden model's order of rounding (``Arithmetic.bitlinear``), started when ``QUANT`` has ended (every sum
  is known by then) and the back end is idle, and run beside the quantization and the matvec; where the first norm
  is over another slot (whose sum is known before the passes) the chain starts on that norm beside pass B.
- the *drain*: each row group's accumulators leave the matvec engine ``2 · vector_lanes`` per cycle into a FIFO
  (:data:`DRAIN_DEPTH`); once the scale chain has ended, they go on into the ``CoreParams.vector_lanes`` vector units
  (in lockstep) with their operands read from vector memory, an element per unit and cycle, an element being a row
  or for the GLU a gate row and its up row (or, for the head, one row a cycle into the reduction unit's argmax and
  the logits memory); the units' results are written back in order. The recurrent state is a
  :class:`~mmfree.hw.pair_memory.PairMemory` with two vector units.

EMBED streams the token's embedding row through the pass datapath (times ``2^e`` or rounded right by ``−e``,
``e = exp + residual_frac``, saturated) into slot X.

With a weight stream (``CoreParams.weight_stream``), words pushed on ``ws`` queue in the matvec engine's FIFO, and
an instruction with ``stream`` set takes its words from there in program order instead of the weight memory: the
embedding row's exponent word, then its row (EMBED), or the matrix (BITLINEAR). ``starved`` tells that the core
waits for a word the FIFO does not have.

Vector memory: slots X (residual, ``residual_bits``), V (the vector unit's result width), G (accumulators), F
(``1 − lb`` / ``1 − f``), each a :class:`~mmfree.hw.vector_memory.VectorMemory` of ``pass_lanes`` elements to a
word, the recurrent state (``state_bits`` × ``state_words``, layer ``l`` at ``l · H``) and the logits
(accumulators), each a :class:`~mmfree.hw.primitives.BlockRam` (the state a ``PairMemory`` with two vector units).
"""

from types import SimpleNamespace

from amaranth import *
from amaranth.lib import data, enum, fifo, stream, wiring
from amaranth.lib.memory import Memory as Rom
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from ..host.gumbel import FRAC, TABLE_BITS, TAPS, Y_BITS, gumbel_table
from ..host.isa import INSTRUCTION_BITS, OPCODE_BITS, Epilogue, Opcode, Slot
from .field_reader import FieldReader
from .instruction import instruction_layout
from .matvec_engine import MatvecEngine, read_port_latency
from .pass_datapath import PassDatapath, limbs_for
from .pair_memory import PairMemory
from .primitives import BlockRam, check_impl
from .quantizer import Quantizer
from .reduction import ReductionUnit
from .scalar_unit import ScalarOp, ScalarUnit
from .sigmoid import saturate
from .stream_fifo import fed_in_lockstep, fed_through_fifo, stream_fifo
from .ternary_matvec import acc_width
from .vector_memory import VectorMemory
from .vector_unit import VectorOp, VectorUnit

__all__ = ["CoreCommand", "CoreError", "DRAIN_DEPTH", "Memory", "SCALE_CHAIN", "STREAM_DEPTH", "command_layout",
           "Core", "debug_latency"]

WORD_BITS = 64
#: words of the weight stream's FIFO (a core with a weight stream)
STREAM_DEPTH = 64
#: accumulators the drain holds while the scale chain finishes (16 row groups)
DRAIN_DEPTH = 128


def debug_latency(params, memory):
    """Cycles from an address on the debug port to its element on ``d_data``: the memory's read latency (the weight
    image's: the matvec engine's read port's, after a register for the request in a pipelined core), in a pipelined
    core a register for each memory's word, and the port's output register."""
    image = memory == Memory.IMAGE
    parts = 8 * params.rows // WORD_BITS   # of an engine word, read on the engine's read port
    return (read_port_latency(params.pipelined, parts) + params.pipelined if image else 1) + params.pipelined + 1


class CoreCommand(enum.Enum, shape=2):
    RUN = 0    #: run the program for ``token``; answer the argmax, or a sample when ``inv_mant`` is nonzero
    CLEAR = 1  #: zero the recurrent state
    SEED = 2   #: set the sampler's LFSR to ``seed`` (0 is taken as 1)
    SAMPLE = 3  #: answer again from the last token's logits: a sample when ``inv_mant`` is nonzero, else the argmax


class CoreError(enum.Enum, shape=2):
    NONE = 0
    TOKEN = 1      #: the token id is not below the EMBED instruction's ``tokens``
    NO_LOGITS = 2  #: the program ended without a LOGITS epilogue
    OPCODE = 3     #: an undefined opcode


class Memory(enum.Enum, shape=3):
    """What the debug port reads: vector memories (elements, sign-extended), the weight image and the program
    (64-bit words, raw)."""
    X = 0
    V = 1
    G = 2
    F = 3
    STATE = 4
    LOGITS = 5
    IMAGE = 6
    PROGRAM = 7


#: the scale chain: (op, a, b, integer, power, destination) per scalar-unit command, in ``Arithmetic.bitlinear``'s
#: order of rounding. ``sum_a``, ``two_ka`` and ``unit_first`` belong to the first norm's input (the ``first`` slot
#: of a projection with two norms whose first norm is over another slot, else ``v``), ``sum_u`` and ``two_ku`` to
#: the second norm's ``u``; a projection with one norm skips from ``"two norms"`` to ``"rsqrt"``.
SCALE_CHAIN = [
    (ScalarOp.FROM_INT, None, None, "sum_a", None, "t"),
    (ScalarOp.MUL, "t", "inv_n", None, None, "t"),
    (ScalarOp.MUL, "unit_first", "unit_first", None, None, "u"),
    (ScalarOp.SCALE, "u", None, None, "two_ka", "u"),
    (ScalarOp.MUL, "t", "u", None, None, "a"),
    (ScalarOp.ADD, "a", "eps", None, None, "a"),           # A + ε: the denominator of one norm
    (ScalarOp.MUL, "eps", "a", None, None, "a"),           # "two norms": ε·(A + ε)
    (ScalarOp.FROM_INT, None, None, "sum_u", None, "t"),
    (ScalarOp.MUL, "t", "inv_n", None, None, "t"),
    (ScalarOp.MUL, "unit_src", "unit_src", None, None, "u"),
    (ScalarOp.SCALE, "u", None, None, "two_ku", "u"),
    (ScalarOp.MUL, "t", "u", None, None, "t"),
    (ScalarOp.ADD, "t", "a", None, None, "a"),             # B + ε·(A + ε)
    (ScalarOp.RSQRT, "a", None, None, None, "a"),          # "rsqrt"
    (ScalarOp.FROM_INT, None, None, "max_p", "k_v", "t"),
    (ScalarOp.MUL, "constant", "t", None, None, "t"),
    (ScalarOp.MUL, "t", "unit_src", None, None, "t"),
    (ScalarOp.MUL, "t", "a", None, None, "s"),
]
_TWO_NORMS, _RSQRT, _PEAK = 6, 13, 14


class _Src(enum.Enum, shape=3):
    X = 0
    V = 1
    G = 2
    F = 3
    FIELD = 4
    REG = 5      # the sampler's constant


#: the vector memory behind each slot source of a pass
_SLOT_MEMORY = {_Src.X: Memory.X, _Src.V: Memory.V, _Src.G: Memory.G, _Src.F: Memory.F}


class _Factor(enum.Enum, shape=2):
    ONE = 0
    FIELD = 1
    POW2 = 2
    LOGITS = 3   # the logits memory


def lfsr_step(m, state):
    """The sampler's LFSR after :data:`~mmfree.host.gumbel.TABLE_BITS` Galois steps (``host.gumbel``), as logic
    added to ``m``: each step a signal of its own, so that no step's expression is repeated in the next."""
    for step in range(TABLE_BITS):
        following = Signal.like(state, name=f"lfsr_step{step}")
        m.d.comb += following.eq(Mux(state[0], (state >> 1) ^ TAPS, state >> 1))
        state = following
    return state


def command_layout(scalar_bits):
    """Layout of the core's ``cmd`` stream: ``op`` (:class:`CoreCommand`), ``token`` (16 bits), the sampler's
    ``1/T`` as ``inv_mant`` (``scalar_bits``, 0 for greedy) and ``inv_exp`` (signed 16), ``seed`` (32 bits, SEED)."""
    return data.StructLayout({"op": CoreCommand, "token": 16, "inv_mant": scalar_bits, "inv_exp": signed(16),
                              "seed": 32})


class Core(wiring.Component):
    """The core for a :class:`~mmfree.host.compiler.CoreParams` and the golden model's ``Formats``.

    Parameters
    ----------
    params : CoreParams
        ``rows``, ``trit_format``, ``max_vector``, ``state_words``, ``acc_bits``, ``program_instructions``,
        ``cycles_per_element`` (the vector unit's), ``pass_lanes``, ``fast_scalar``, ``pipelined``, ``decoder_table``,
        ``weight_words`` (the weight memory's 64-bit image words: 16 K, the SPRAM's, on the UP5K). ``rows`` is 8
        times a power of two: the matvec engine reads ``rows / 8`` image words at once, a matrix's weight words
        starting on a multiple of that (the compiler's layout); a weight stream takes ``rows`` = 8.
    formats : Formats
        The numeric formats (``mmfree.host.golden.Formats``).
    impl : {"model", "ice40", "ecp5"} or None

    Attributes
    ----------
    cmd : In(stream)
        ``{op: CoreCommand, token: 16 bits}``, taken while idle.
    res : Out(stream)
        ``{token: the argmax or the sample, error: CoreError}``, one per RUN or SAMPLE (CLEAR and SEED answer
        nothing).
    busy : Out(1)
    cycles : Out(32)
        Cycles of the last RUN, from taking it to offering its result.
    w_addr, w_data, w_we : In
        Weight-image load port (64-bit words), while idle.
    p_addr, p_data, p_we : In
        Program load port: 64-bit word ``4·n + k`` is bits ``64k …`` of instruction ``n``; while idle.
    d_sel, d_addr : In; d_data : Out
        Debug read port (:class:`Memory`, element or word index), while idle: ``d_data`` holds the element
        :func:`debug_latency` cycles after the address (2, the weight image's 2; in a pipelined core 3, the
        weight image's 7) while the address holds.
    logit_mant, logit_exp : Out
        The head's output scale after the last RUN.
    v_mant, v_exp, g_mant, g_exp : Out
        The units of slots V and G.
    trace_valid : Out(1); trace_pc : Out
        The core starts the instruction at ``trace_pc`` (the virtual board's per-instruction trace).
    ws : In(stream.Signature(64))
        The weight stream (``params.weight_stream``): words for the instructions with ``stream`` set.
    starved : Out(1)
        The core waits for a word of the weight stream.
    """

    def __init__(self, params, formats, *, impl=None):
        check_impl(impl)
        lanes = params.rows // 8
        if lanes & (lanes - 1) or params.rows % 8:
            raise ValueError(f"the core's matvec engine reads rows / 8 image words at once, a power of two: rows "
                             f"must be 8, 16, 32, …, not {params.rows}")
        if params.weight_words % lanes:
            raise ValueError(f"weight_words must be a multiple of rows / 8 = {lanes}, not {params.weight_words}")
        if params.weight_stream and lanes != 1:
            raise ValueError(f"the weight stream carries one image word per cycle: rows must be 8 with "
                             f"weight_stream, not {params.rows}")
        self.params, self.formats, self._impl = params, formats, impl
        f = formats
        # a pipelined core has the σ table in LUTs and the read port's register: no logic after a block RAM's output
        self.vus = [VectorUnit.from_formats(f, acc_bits=params.acc_bits, shift_bits=7,
                                            cycles_per_element=params.cycles_per_element, impl=impl,
                                            sigmoid_table="logic" if params.pipelined else "block")
                    for _ in range(params.vector_lanes)]
        self.acc_bits = acc_width(params.max_vector)
        self.widths = {_Src.X: f.residual_bits, _Src.V: self.vus[0].out_bits, _Src.G: self.acc_bits,
                       _Src.F: f.gate_frac + 2}
        #: the pass datapath's element and product widths
        self.elem_bits = max(*self.widths.values(), f.embed_bits, f.const_bits + 1)
        self.product_bits = self.elem_bits + 16
        #: what the reduction unit, the quantizer and the scalar unit's integers take: the quantizer's products
        #: (a reduce_bits cut times an int const_bits constant), accumulators, the sampler's noisy logits
        self.reduce_width = max(f.reduce_bits + f.const_bits, self.acc_bits + 1, Y_BITS + 1)
        self.program_words = 4 * params.program_instructions
        index = range(max(params.max_vector, params.state_words, self.program_words, params.weight_words))
        stream_ports = {"ws": In(stream.Signature(WORD_BITS)), "starved": Out(1)} if params.weight_stream else {}
        super().__init__({
            **stream_ports,
            "cmd": In(stream.Signature(command_layout(f.scalar_bits))),
            "res": Out(stream.Signature(data.StructLayout({"token": 16, "error": CoreError}))),
            "busy": Out(1),
            "cycles": Out(32),
            "w_addr": In(range(params.weight_words)), "w_data": In(WORD_BITS), "w_we": In(1),
            "p_addr": In(range(self.program_words)), "p_data": In(WORD_BITS), "p_we": In(1),
            "d_sel": In(Memory), "d_addr": In(index), "d_data": Out(signed(WORD_BITS)),
            "logit_mant": Out(f.scalar_bits), "logit_exp": Out(signed(16)),
            "v_mant": Out(f.scalar_bits), "v_exp": Out(signed(16)), "g_mant": Out(f.scalar_bits), "g_exp": Out(signed(16)),
            "trace_valid": Out(1), "trace_pc": Out(range(params.program_instructions + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        p, f = self.params, self.formats
        impl = self._impl
        H = p.max_vector
        lanes = p.pass_lanes

        # -- units and memories ------------------------------------------------------------------------------
        m.submodules.engine = engine = MatvecEngine(p.rows, p.trit_format, max_len=H, q_depth=-(-H // 5) + 1,
                                                    q_banks=2, weight_depth=p.weight_words // (p.rows // 8),
                                                    registered_weights=p.pipelined, decoder_table=p.decoder_table,
                                                    port_bits=WORD_BITS,
                                                    stream_depth=STREAM_DEPTH if p.weight_stream else 0, impl=impl)
        cols = engine.cols
        vus = self.vus
        for lane, unit in enumerate(vus):
            m.submodules[f"vu{lane or ''}"] = unit
        # a reduction unit per pass lane (lane j's elements of the passes over slots); each vector's shift is known
        # beforehand (from the peaks), so the units find none and offer their results 3 cycles after the last element
        reductions = [ReductionUnit(self.reduce_width, max_len=max(H, 2), reduce_bits=f.reduce_bits, square_input=True,
                                    find_shift=False, impl=impl) for _ in range(lanes)]
        red = reductions[0]
        for lane, unit in enumerate(reductions):
            m.submodules[f"reduce{lane or ''}"] = unit
        m.submodules.quant = quant = Quantizer(self.reduce_width, lanes, quant_bits=f.quant_bits,
                                               recip_bits=f.recip_bits)
        m.submodules.scalar = scalar_unit = ScalarUnit(bits=f.scalar_bits, exp_bits=16,
                                                       int_width=max(self.reduce_width, red.sum_bits),
                                                       recip_bits=f.recip_bits, fast=p.fast_scalar, impl=impl)
        # the sequencer's command for the scalar unit (offered until its result comes) reaches the unit through
        # registers, so the choice among the scale chain, QUANT and the sampler does not run into the unit's logic;
        # the copy stops with the result, which the sequencer takes in the same cycle
        offer = stream.Signature(scalar_unit.i.payload.shape()).create(path=("scalar_offer",))
        m.d.sync += [scalar_unit.i.valid.eq(offer.valid & ~scalar_unit.o.valid),
                     scalar_unit.i.payload.eq(offer.payload)]
        m.submodules.fields = fields = FieldReader((16, f.embed_bits), lanes=lanes, addr_bits=len(self.w_addr),
                                                   exact_reads=p.weight_stream, buffered=p.pipelined)
        m.submodules.datapath = dp = PassDatapath(self.elem_bits, lanes=lanes, impl=impl)
        # in a pipelined core a pass's elements reach the datapath through a FIFO, so the decision to fetch the next
        # (the vector memories' read enables) does not wait on the datapath's ready
        dp_in = fed_through_fifo(m, dp.i, name="dp", buffered=p.pipelined)
        # … and its results leave through one, so that the sinks' ready (the reduction units') does not reach the
        # datapath's stall, which every lane's pipeline registers and multipliers take
        dp_out = stream_fifo(m, dp.o, name="dp_out") if p.pipelined else dp.o
        m.submodules.program = program = BlockRam(width=WORD_BITS, depth=self.program_words, impl=impl)
        mems = {
            **{_SLOT_MEMORY[slot]: VectorMemory(width=self.widths[slot], depth=H, lanes=lanes, impl=impl)
               for slot in _SLOT_MEMORY},
            # the drain's vector lanes read and write the state in pairs at any layer's base
            Memory.STATE: (PairMemory(width=f.state_bits, depth=p.state_words, impl=impl) if p.vector_lanes > 1 else
                           BlockRam(width=f.state_bits, depth=p.state_words, impl=impl)),
            Memory.LOGITS: BlockRam(width=self.acc_bits, depth=H, impl=impl),
        }
        for name, mem in mems.items():
            m.submodules[f"mem_{name.name.lower()}"] = mem
            m.d.comb += mem.r_en.eq(0)

        # image and program loads, field reads of the weight memory
        m.d.comb += [
            engine.w_addr.eq(self.w_addr), engine.w_data.eq(self.w_data), engine.w_we.eq(self.w_we),
            program.w_addr.eq(self.p_addr), program.w_data.eq(self.p_data), program.w_en.eq(self.p_we),
            engine.r_addr.eq(fields.mem_addr), engine.r_en.eq(fields.mem_en), fields.mem_data.eq(engine.r_data),
            fields.mem_valid.eq(engine.r_valid), fields.mem_ready.eq(engine.r_ready),
        ]
        fields_stream = Signal()   # the field reader reads the weight stream
        if p.weight_stream:
            wiring.connect(m, wiring.flipped(self.ws), engine.ws)
            m.d.comb += [engine.r_stream.eq(fields_stream & fields.busy),
                         self.starved.eq(engine.stream_wait | fields.mem_stalled)]

        # -- registers of the sequencer ------------------------------------------------------------------------
        ir = Signal(INSTRUCTION_BITS)
        bl = data.View(instruction_layout(Opcode.BITLINEAR), ir)
        emb = data.View(instruction_layout(Opcode.EMBED), ir)
        conf = data.View(instruction_layout(Opcode.CONFIG), ir)
        opcode = ir[:OPCODE_BITS]
        pc = Signal(range(p.program_instructions + 1))
        m.d.comb += self.trace_pc.eq(pc)
        fetch = Signal(range(5))
        token = Signal(16)
        error = Signal(CoreError)
        argmax = Signal(16)
        greedy = Signal(16)                        # the argmax of the last token's logits
        logit_rows = Signal(16)                    # and their number
        logits_valid = Signal()
        sample_only = Signal()                     # a SAMPLE command: no program runs
        have_logits = Signal()
        cycles = Signal(32)

        scalar_layout = data.StructLayout({"mant": f.scalar_bits, "exp": signed(16)})
        regs = {name: Signal(scalar_layout, name=f"scalar_{name}") for name in ("t", "u", "a", "s")}
        eps, unit_x, unit_v, unit_g = (Signal(scalar_layout, name=n) for n in ("eps", "unit_x", "unit_v", "unit_g"))
        m.d.comb += [self.v_mant.eq(unit_v.mant), self.v_exp.eq(unit_v.exp), self.g_mant.eq(unit_g.mant),
                     self.g_exp.eq(unit_g.exp)]
        residual_frac = Signal(signed(8))
        k_v, k_f = Signal(8), Signal(8)
        # max|x| of each slot's vector, kept as it is written: the shift k of its sum of squares needs no pass. A
        # write's magnitudes are registered and taken into the peak a cycle later, so that the compares do not follow
        # the write's choice of elements; the peak is up to date two cycles after the last write
        peaks = {slot: Signal(self.widths[slot], name=f"peak_{slot.name.lower()}") for slot in (_Src.X, _Src.V, _Src.G)}
        peak_writes = {
            slot: SimpleNamespace(magnitudes=[Signal(self.widths[slot], name=f"written_{slot.name.lower()}{j}")
                                              for j in range(p.vector_lanes)],
                                  first=Signal(name=f"written_{slot.name.lower()}_first"),
                                  valid=Signal(name=f"written_{slot.name.lower()}_valid"))
            for slot in peaks}
        for slot, write in peak_writes.items():
            m.d.sync += write.valid.eq(0)
            with m.If(write.valid):
                peak = peaks[slot]
                larger = [Mux(write.first, 0, peak)] + write.magnitudes
                m.d.sync += peak.eq(larger[0])
                for candidate in larger[1:]:
                    with m.If(Cat(candidate >= other for other in larger if other is not candidate).all()):
                        m.d.sync += peak.eq(candidate)
        scan = Signal(max(self.widths.values()))   # a peak whose shift k is made next
        sum_v, sum_u, sum_f = (Signal(red.sum_bits, name=n) for n in ("sum_v", "sum_u", "sum_f"))
        max_p = Signal(self.reduce_width)
        # Σ u² of the last projection with two norms, kept while its input slot is unchanged: i_proj and g_proj
        # take f_proj's (the same x behind the same first norm) and skip that pass; and as their sums, ε and units
        # are f_proj's, so is the scale chain's rsqrt (register a), and their chains start at max|p|
        sums_ok = Signal()
        sum_g_ok = Signal()   # sum_f holds Σ G² of the vector in slot G, summed in the GATE drain that wrote it
        sums_src = Signal.like(bl.src)
        sums_pre = Signal.like(bl.pre)
        sums_cols = Signal.like(bl.cols)
        state_base = Signal(range(p.state_words + H))
        row_addr = Signal(20)
        mul_a, mul_b = Signal(20), Signal(16)      # shift-and-add products of addresses: mul_a · mul_b

        two_norms = bl.has_pre
        first_other = bl.has_pre & (bl.first != bl.src)

        # the back end: a BITLINEAR's scale chain, matvec and drain, on its own copy of the instruction (``bk``) and
        # of the sums its chain takes, so that the sequencer can go on with the next BITLINEAR's passes beside them
        ir_back = Signal(INSTRUCTION_BITS)
        bk = data.View(instruction_layout(Opcode.BITLINEAR), ir_back)
        back_ready = Signal()     # ir_back's scale chain has started; its matvec has not
        back_running = Signal()   # ir_back's matvec and drain run
        back_idle = ~back_ready & ~back_running
        chain_due = Signal()      # the sequencer's BITLINEAR is quantized: its back end starts once that is idle
        q_bank = Signal()         # the q-buffer bank the sequencer's BITLINEAR fills
        back_bank = Signal()      # … and the one ir_back's matvec reads
        drain_base = Signal.like(state_base)
        c_sum_a, c_sum_u = Signal.like(sum_v, name="chain_sum_a"), Signal.like(sum_u, name="chain_sum_u")
        c_max_p = Signal.like(max_p, name="chain_max_p")
        c_k_v, c_k_f = Signal.like(k_v, name="chain_k_v"), Signal.like(k_f, name="chain_k_f")
        bk_first_other = bk.has_pre & (bk.first != bk.src)
        # registered: read at BL_B_DONE, long after its inputs settle (the instruction's fields at DECODE, the sums
        # at the BITLINEAR before)
        reuse_u = Signal()
        m.d.sync += reuse_u.eq(sums_ok & (sums_src == bl.src) & (sums_pre == bl.pre) & (sums_cols == bl.cols)
                               & ~first_other)
        reused = Signal()   # this BITLINEAR took the last one's sums (decided before its own pass D could set them)
        quant_cmd_shift = Signal.like(quant.cmd.payload.shift)
        quant_cmd_recip = Signal.like(quant.cmd.payload.recip)
        # the quantizer holds no command: its cmd.ready a cycle ago, with none offered (it then stays ready), so that
        # its input's handshake, on which cmd.ready also depends, reaches no register of the sequencer's
        quant_idle = Signal()
        m.d.sync += quant_idle.eq(quant.cmd.ready & ~quant.cmd.valid)

        m.d.comb += self.cycles.eq(cycles)
        logit_exp = Signal(signed(16))
        m.d.comb += self.logit_exp.eq(logit_exp)
        logit_mant = Signal(f.scalar_bits)
        m.d.comb += self.logit_mant.eq(logit_mant)

        # -- the pass datapath -----------------------------------------------------------------------------------
        ps_src = Signal(_Src)
        ps_factor = Signal(_Factor)
        ps_pow = Signal(range(16))
        ps_pre = Signal(8)             # floor shift of the element
        ps_post = Signal(8)            # shift of the product
        ps_round = Signal()            # … rounding (else floor)
        ps_pre_round = Signal()        # the product takes the element's rounded cut
        ps_red = Signal(2)             # 0: none, 1: the element, 2: the product to the reduction unit
        ps_own_square = Signal()       # … which sums the squares of the element (x ≫ pre) instead
        ps_red_shift = Signal(8)
        ps_quant = Signal()
        ps_write = Signal(2)           # 0: none, 1: the product into slot X (saturated), 2: the element into slot F
        ps_count = Signal(range(max(H, p.state_words) + 1))   # beats
        ps_wide = Signal()             # a pass over slots, ``lanes`` elements per beat
        ps_pad = Signal(range(lanes))  # … its last beat's lanes beyond the vector (the highest ones, zero)
        ps_t = Signal.like(ps_count)
        t_out = Signal.like(ps_count)     # elements that left the datapath
        # a pass's result for a slot, held a cycle: EMBED's element for slot X (``pw_slot`` 1), a copy's beat of
        # ``lanes`` elements for slot F (2; their enables zero the lanes beyond the vector)
        pw_slot, pw_first = Signal(2), Signal()
        pw_value = Signal(signed(max(f.residual_bits, self.widths[_Src.F])))
        pw_copy = Signal(data.ArrayLayout(self.widths[_Src.F], lanes))
        pw_copy_en = Signal(lanes)
        pw_addr = Signal.like(t_out)
        m.d.sync += pw_slot.eq(0)
        dp_last = Signal()
        # the sampler: its LFSR, 1/T of the RUN, the pass's constant operand and the Gumbel noise table (read at the
        # LFSR's low bits, which change only when an element is taken: every 3 cycles, as the sampling pass runs
        # at limbs_for(elem_bits) ≥ 2 and the table's read takes one)
        lfsr = Signal(32, init=1)
        lfsr_next = lfsr_step(m, lfsr)
        inv_t = Signal(scalar_layout)
        sample_x = Signal(self.elem_bits)
        sample_mant, sample_shift = Signal(f.scalar_bits), Signal(signed(18))   # k = scale · (1/T) as it comes
        noise_table = [int(g) & 0xFFFF for g in gumbel_table()]
        noise = Signal(signed(16))   # G[the LFSR's low bits a cycle ago]
        if p.pipelined:
            # in logic (a DP16KD's clock-to-output would start the path through the sampler's addition)
            m.submodules.noise = table = Rom(shape=16, depth=1 << TABLE_BITS, init=noise_table,
                                        attrs={"rom_style": "logic"})
            port = table.read_port(domain="comb")
            m.d.comb += port.addr.eq(lfsr[:TABLE_BITS])
            m.d.sync += noise.eq(port.data)
        else:
            m.submodules.noise = table = BlockRam(width=16, depth=1 << TABLE_BITS, init=noise_table, impl=impl)
            m.d.comb += [table.r_addr.eq(lfsr[:TABLE_BITS]), table.r_en.eq(1), noise.eq(table.r_data)]
        m.d.comb += dp_in.payload.last.eq(dp_last)
        fetched = Signal()                # a beat's read was issued: its operands are on dp_in
        field = Signal(fields.o.payload.data.shape())
        ps_limbs = Signal.like(dp.limbs)
        m.d.comb += [dp.pre.eq(ps_pre), dp.post.eq(ps_post), dp.round.eq(ps_round), dp.pre_round.eq(ps_pre_round),
                     dp.limbs.eq(ps_limbs)]
        # limbs of each slot's elements: X and V at full width; G holds accumulators, |acc| ≤ 127 · max_vector
        slot_limbs = {Slot.X: limbs_for(self.widths[_Src.X]), Slot.V: limbs_for(self.widths[_Src.V]),
                      Slot.G: limbs_for((127 * H).bit_length() + 1)}

        def limbs_of(slot):
            return Mux(slot == Slot.X, slot_limbs[Slot.X], Mux(slot == Slot.V, slot_limbs[Slot.V], slot_limbs[Slot.G]))


        # the reduction units' inputs: from passes, or the head's accumulators in the drain (in a pipelined core
        # through a FIFO, so the choice between them stops there and does not run into the unit's compare and shifter)
        red_ins = [fed_through_fifo(m, unit.i, name=f"red{lane or ''}", buffered=p.pipelined)
                   for lane, unit in enumerate(reductions)]
        red_in = red_ins[0]
        red_data = Signal(signed(self.reduce_width))
        red_last = Signal()
        m.d.comb += [red_in.payload.data.eq(red_data), red_in.payload.last.eq(red_last)]
        # a pass's beats reach the reduction units through a register; the sampler's noise travels beside its
        # saturated logit and is added after the register, on the way into the unit. A wide pass's beat goes into
        # every unit in the same cycle; another's into the first.
        rs_valid, rs_last, rs_own, rs_wide = Signal(), Signal(), Signal(), Signal()
        rs_data = [Signal.like(red_data, name=f"rs_data{lane}") for lane in range(lanes)]
        rs_square = [Signal.like(red_in.payload.square, name=f"rs_square{lane}") for lane in range(lanes)]
        rs_noise = Signal.like(noise)
        rs_shift = Signal.like(red_in.payload.shift)
        all_ready = Cat(port.ready for port in red_ins).all()
        rs_taken = rs_valid & Mux(rs_wide, all_ready, red_in.ready)
        rs_free = ~rs_valid | rs_taken
        with m.If(rs_valid):
            m.d.comb += [red_data.eq(rs_data[0] + rs_noise), red_last.eq(rs_last)]
            for lane, port in enumerate(red_ins):
                others = Cat(other.ready for other in red_ins if other is not port).all()
                m.d.comb += [port.valid.eq(Mux(rs_wide, others, lane == 0)), port.payload.shift.eq(rs_shift),
                             port.payload.square.eq(rs_square[lane]), port.payload.own_square.eq(rs_own)]
                if lane:
                    m.d.comb += [port.payload.data.eq(rs_data[lane]), port.payload.last.eq(rs_last)]
        with m.If(rs_taken):
            m.d.sync += rs_valid.eq(0)
        # a wide pass's result: every unit's, taken together (the largest max|x|, the sum of Σ x²); with several
        # units, combined in registers a cycle after all of them offer theirs (a comparator and an adder tree too long
        # for the clock beside the sequencer's use of the result)
        offered = Cat(unit.o.valid for unit in reductions).all()
        sums_taken = Signal()
        sums_max = red.o.payload.max_abs
        sums_sq = red.o.payload.sum_sq
        sums_valid = offered
        if lanes > 1:
            def tree(values, combine):
                while len(values) > 1:
                    values = [combine(a, b) for a, b in zip(values[::2], values[1::2])]
                return values[0]
            combined_max = tree([unit.o.payload.max_abs for unit in reductions], lambda a, b: Mux(b > a, b, a))
            combined_sq = tree([unit.o.payload.sum_sq for unit in reductions], lambda a, b: a + b)
            sums_max, sums_sq, seen = Signal.like(combined_max), Signal.like(combined_sq), Signal()
            m.d.sync += [sums_max.eq(combined_max), sums_sq.eq(combined_sq), seen.eq(offered & ~sums_taken)]
            sums_valid = offered & seen

        def take_sums():
            m.d.comb += [unit.o.ready.eq(sums_valid) for unit in reductions] + [sums_taken.eq(sums_valid)]

        # the quantizer's int8 outputs, packed into q-buffer words of ``cols`` bytes: a beat's bytes go in at ``qbyte``,
        # those beyond the word into the next one; a complete word is written from ``q_out`` a cycle later (a last
        # beat that completes a word and carries bytes beyond it has them written a cycle after that)
        qword = Signal(8 * cols)   # bytes 0 … qbyte − 1 of the word being filled
        qbyte = Signal(range(cols))
        qaddr = Signal(range(engine.q_bank_words))
        q_out = Signal(8 * cols)
        q_done = Signal()
        q_flush = Signal()         # the last beat's carried bytes are due
        m.d.comb += [quant.o.ready.eq(1), engine.q_data.eq(q_out), engine.q_addr.eq(Cat(qaddr, q_bank))]
        filled = Signal(8 * (cols + lanes - 1))
        with m.Switch(qbyte):
            for k in range(cols):
                with m.Case(k):
                    m.d.comb += filled.eq(Cat(qword[:8 * k], quant.o.payload.q))
        complete = qbyte >= cols - lanes
        # a last beat's bytes beyond its word, padding lanes not counted
        carried = qbyte + lanes - ps_pad > cols if lanes > 1 else C(0)
        write_q = Signal()
        m.d.sync += write_q.eq(0)
        with m.If(quant.o.valid):
            with m.If(complete | quant.o.payload.last):
                m.d.sync += [write_q.eq(1), q_out.eq(filled[:8 * cols]), qword.eq(filled[8 * cols:]),
                             qbyte.eq(qbyte + lanes - cols)]
                with m.If(quant.o.payload.last):
                    m.d.sync += [qbyte.eq(0), q_flush.eq(carried), q_done.eq(~carried)]
            with m.Else():
                m.d.sync += [qword.eq(filled), qbyte.eq(qbyte + lanes)]
        with m.If(q_flush):
            m.d.sync += [write_q.eq(1), q_out.eq(qword), q_flush.eq(0), q_done.eq(1)]
        m.d.comb += engine.q_we.eq(write_q)
        with m.If(write_q):
            m.d.sync += qaddr.eq(qaddr + 1)

        # -- the drain (of the back end's BITLINEAR) -------------------------------------------------------------
        lanes_v = p.vector_lanes
        epilogue = Signal(Epilogue)
        m.d.comb += epilogue.eq(bk.epilogue)
        glu = epilogue == Epilogue.GLU
        is_logits = epilogue == Epilogue.LOGITS
        acc_lanes = data.ArrayLayout(signed(self.acc_bits), lanes_v)
        dr = SimpleNamespace(
            beat=Signal(data.ArrayLayout(signed(self.acc_bits), p.rows)), beat_valid=Signal(),
            entry=Signal(range(p.rows // (2 * lanes_v))),   # the beat's entry (2 · lanes_v rows) for the FIFO next
            ser_row=Signal(16),       # rows that left the beat register
            row=Signal(16),           # rows issued to the vector units (or the argmax)
            step=Signal(range(2 * lanes_v + 1)),   # … per issue
            at_last=Signal(),         # the next issue is the vector's last
            issued_all=Signal(),      # … and it was issued
            odd_tail=Signal(),        # the last issue has an element in lane 0 alone (two lanes, an odd count)
            out_count=Signal(16),     # elements written back
            results_done=Signal(),    # the vector's last result was written back
            el_valid=Signal(), el_taken=Signal(),
            el_acc=Signal(acc_lanes),     # per lane: its accumulator (the GLU's: the gate row's)
            el_acc_u=Signal(acc_lanes),   # the GLU's: the up row's
            el_row=Signal(16), el_last=Signal(),
            el_pair=Signal(),             # lane 1 holds an element
        )
        # an issue takes an element per lane (the GLU's: a row pair), or for the head one row
        m.d.comb += dr.step.eq(Mux(glu, 2 * lanes_v, Mux(is_logits, 1, lanes_v)))
        vu_shift = Signal(signed(7))

        scale_exp = regs["s"].exp
        frac = Mux(epilogue == Epilogue.RESIDUAL, residual_frac, f.act_frac)
        want_shift = Signal(signed(18))
        m.d.comb += want_shift.eq(-(scale_exp + frac))
        m.d.comb += vu_shift.eq(Mux(want_shift > 63, 63, Mux(want_shift < -64, -64, want_shift)))

        vop = Signal(VectorOp)
        with m.Switch(epilogue):
            with m.Case(Epilogue.FORGET):
                m.d.comb += vop.eq(VectorOp.FORGET)
            with m.Case(Epilogue.STATE):
                m.d.comb += vop.eq(VectorOp.STATE)
            with m.Case(Epilogue.GATE):
                m.d.comb += vop.eq(VectorOp.GATE)
            with m.Case(Epilogue.RESIDUAL):
                m.d.comb += vop.eq(VectorOp.RESIDUAL)
            with m.Case(Epilogue.GLU):
                m.d.comb += vop.eq(VectorOp.GLU)
        # in a pipelined core the operands (read from vector memory a cycle earlier) reach the vector units through a
        # FIFO, so no block RAM's output runs through the units' first stage
        vu_in = fed_in_lockstep(m, [unit.i for unit in vus], name="vu", buffered=p.pipelined)
        operands = {memory: _read_elements(mems[memory], lanes_v) for memory in (Memory.X, Memory.F, Memory.STATE)}
        for lane in range(lanes_v):
            load = vu_in.payload[lane]
            m.d.comb += [
                load.op.eq(vop),
                load.last.eq(dr.el_last),
                load.acc.eq(dr.el_acc[lane]),
                load.mant.eq(regs["s"].mant),
                load.shift.eq(vu_shift),
                load.a.eq(Mux(epilogue == Epilogue.RESIDUAL, operands[Memory.X][lane].as_signed(),
                              operands[Memory.F][lane].as_signed())),
                load.b.eq(Mux(glu, dr.el_acc_u[lane], operands[Memory.STATE][lane].as_signed())),
            ]
        m.d.comb += [unit.o.ready.eq(1) for unit in vus]
        # where accumulators always fit reduce_bits (|acc| ≤ 127 · max_vector, so k = 0), the GATE drain also sums the
        # squares of the accumulators it writes to slot G (a reduction unit per lane): o_proj's first norm then needs
        # no pass over G
        sum_g = epilogue == Epilogue.GATE if 127 * H < 1 << (f.reduce_bits - 1) else C(0)
        g_units = reductions[:lanes_v]
        g_ready = Cat(port.ready for port in red_ins[:lanes_v]).all()
        m.d.comb += dr.el_taken.eq(dr.el_valid & Mux(is_logits, red_in.ready, vu_in.ready & (~sum_g | g_ready)))

        # -- the sequencer ---------------------------------------------------------------------------------------
        ret = Signal(range(16))   # where a pass returns (an index into PASS_RETURNS)
        chain = Signal(range(len(SCALE_CHAIN) + 1))
        chain_busy = Signal()     # the scale chain runs on the scalar unit, beside the sequencer
        quant_busy = Signal()     # QUANT runs on the scalar unit, beside the sequencer

        def unit_of(slot):
            return Mux(slot == Slot.X, unit_x.as_value(), Mux(slot == Slot.V, unit_v.as_value(), unit_g.as_value()))

        def scalar(name):
            value = Signal(scalar_layout, name=name)
            m.d.comb += [value.mant.eq(bk[f"{name}_mant"]), value.exp.eq(bk[f"{name}_exp"])]
            return value

        def start_back(step):
            """The back end takes the sequencer's BITLINEAR: the instruction and the sums its scale chain takes are
            copied (Σ u² and max|p| again at ``BL_QCMD`` when the chain starts early); the chain starts at
            ``step``."""
            m.d.sync += [ir_back.eq(ir), back_ready.eq(1), back_bank.eq(q_bank), drain_base.eq(state_base),
                         c_sum_a.eq(Mux(first_other, sum_f, sum_v)), c_sum_u.eq(sum_u), c_max_p.eq(max_p),
                         c_k_v.eq(k_v), c_k_f.eq(k_f), chain.eq(step), chain_busy.eq(1)]
            with m.If(~two_norms | first_other):
                m.d.sync += sums_ok.eq(0)   # this chain's rsqrt (register a) is not of the kept sums

        # a chain started early (the first norm over another slot, whose sum is known before the passes; or over v,
        # once pass B has summed it) holds before its first use of Σ u² until BL_QCMD has copied it and max|p|;
        # QUANT may use the scalar unit then. It starts the cycle after the sequencer decides so (chain_early): the
        # decision, on a pass's handshake or sums, reaches no register of the back end's copy
        chain_early = Signal()
        chain_hold = Signal()
        with m.If(chain_early):
            start_back(0)
            m.d.sync += [chain_hold.eq(1), chain_early.eq(0)]
        with m.Elif(chain_due & back_idle & ~chain_busy):
            start_back(Mux(reused, _PEAK, 0))
            m.d.sync += chain_due.eq(0)
        chain_after_quant = chain_hold & ~bk_first_other   # started on v's first norm (after pass B): QUANT goes first
        chain_active = chain_busy & ~(chain_hold & (chain == _TWO_NORMS + 1)) & ~(chain_after_quant & quant_busy)
        with m.If(chain_active):  # the scale chain of the back end's BITLINEAR
            operands = {**regs, "eps": eps, "unit_src": unit_of(bk.src),
                        "unit_first": Mux(bk_first_other, unit_of(bk.first), unit_of(bk.src)),
                        "inv_n": scalar("inv_n"), "constant": scalar("constant")}
            integers = {"sum_a": c_sum_a, "sum_u": c_sum_u, "max_p": c_max_p}
            powers = {"k_v": c_k_v, "two_ka": Mux(bk_first_other, c_k_f, c_k_v) << 1,
                      "two_ku": (c_k_v + bk.pre_shift + bk.pre_exp) << 1}
            self._scale_chain(m, offer, scalar_unit.o, chain, regs, operands, integers, powers, bk.has_pre)
            with m.If(chain == len(SCALE_CHAIN)):
                m.d.sync += chain_busy.eq(0)
        with m.Elif(quant_busy):  # the quantizer's shift and reciprocal from max|p| (of the sequencer's BITLINEAR)
            m.d.comb += [offer.valid.eq(1), offer.payload.op.eq(ScalarOp.QUANT),
                         offer.payload.integer.eq(max_p), scalar_unit.o.ready.eq(1)]
            with m.If(scalar_unit.o.valid):
                m.d.sync += [quant_cmd_shift.eq(scalar_unit.o.payload.value.exp),
                             quant_cmd_recip.eq(scalar_unit.o.payload.recip), quant_busy.eq(0)]

        def start_pass(src, count, *, limbs, factor_=_Factor.ONE, pow_=0, pre=0, pre_round=0, post=0, round_=0,
                       red_sel=0, own_square=0, red_shift=0, quant_=0, write=0, wide=False, back):
            """Start a pass of ``count`` elements; a ``wide`` one (over slots; its fields, if any, read ``wide`` too)
            takes ``lanes`` elements per beat."""
            if wide and lanes > 1:
                shift = exact_log2(lanes)
                m.d.sync += [ps_count.eq((count + lanes - 1) >> shift), ps_pad.eq((-count)[:shift])]
            else:
                m.d.sync += ps_count.eq(count)
            m.d.sync += [ps_src.eq(src), ps_wide.eq(wide and lanes > 1), ps_t.eq(0), t_out.eq(0), fetched.eq(0),
                         ps_limbs.eq(limbs),
                         ps_factor.eq(factor_), ps_pow.eq(pow_), ps_pre_round.eq(pre_round),
                         ps_own_square.eq(own_square),
                         ps_pre.eq(pre), ps_post.eq(post), ps_round.eq(round_), ps_red.eq(red_sel),
                         ps_red_shift.eq(red_shift), ps_quant.eq(quant_), ps_write.eq(write),
                         ret.eq(PASS_RETURNS.index(back))]
            m.next = "PASS"

        def offer_fields(addr, count, width=0, is_signed=1, streamed=0, wide=False):
            """Offer the field reader a vector of ``count`` fields of ``widths[width]`` bits at word ``addr``; a
            ``wide`` one ``lanes`` fields per beat."""
            m.d.comb += [fields.start.valid.eq(1), fields.start.payload.addr.eq(addr),
                         fields.start.payload.count.eq(count), fields.start.payload.width.eq(width),
                         fields.start.payload.signed.eq(is_signed)]
            if lanes > 1:
                m.d.comb += fields.start.payload.wide.eq(wide)
            with m.If(fields.start.ready):
                m.d.sync += fields_stream.eq(streamed)

        # a BITLINEAR's passes over its constants (B, D, C) start the field reader on the next one's vector while
        # they wait (for the back end, for a pass's sums, for QUANT), so its words are on their way when it starts
        # (a core with a weight stream keeps the plain order)
        fields_ahead = Signal()   # the reader was started on the next pass's constants (never, with a weight stream)
        ahead = not p.weight_stream

        def constants_ahead(addr, when=C(1)):
            """Start the reader, while ``when``, on the next pass's constants at ``addr`` (``bl.cols``, wide)."""
            if ahead:
                with m.If(~fields_ahead & when):
                    offer_fields(addr, bl.cols, wide=True)
                    with m.If(fields.start.ready):
                        m.d.sync += fields_ahead.eq(1)

        def start_constants(addr):
            """Start the reader on the pass's constants at ``addr`` unless started ahead; the condition that it is."""
            with m.If(~fields_ahead):
                offer_fields(addr, bl.cols, wide=True)
            started = fields_ahead | fields.start.ready
            with m.If(started):
                m.d.sync += fields_ahead.eq(0)
            return started

        PASS_RETURNS = ["EMBED_DONE", "BL_B_DONE", "BL_C_DONE", "BL_D_DONE", "BL_F_DONE", "BL_AUX_DONE",
                        "SAMPLE_DONE"]

        def shift_add_step(product):
            """One step of ``product += mul_a · mul_b``, a bit of ``mul_b`` per cycle, until ``mul_b`` is 0."""
            m.d.sync += [product.eq(product + Mux(mul_b[0], mul_a, 0)), mul_a.eq(mul_a << 1), mul_b.eq(mul_b >> 1)]

        # the least shift that fits the peak in ``scan`` into reduce_bits − 1 bits: max(0, bitlen(scan) − rb + 1)
        scan_length = Signal(range(len(scan) + 1))
        for bit in range(len(scan)):
            with m.If(scan[bit]):
                m.d.comb += scan_length.eq(bit + 1)
        scan_k = Mux(scan_length >= f.reduce_bits, scan_length - (f.reduce_bits - 1), 0)

        def peak_of(slot):
            return Mux(slot == Slot.X, peaks[_Src.X], Mux(slot == Slot.V, peaks[_Src.V], peaks[_Src.G]))

        def track(src, values, first):
            """Keep max|x| over the writes of a slot's vector (``values``: a write's elements, at most
            ``vector_lanes``; ``first`` marks its first write)."""
            write = peak_writes[src]
            m.d.sync += [write.valid.eq(1), write.first.eq(first)]
            for j, register in enumerate(write.magnitudes):
                value = values[j] if j < len(values) else C(0)
                m.d.sync += register.eq(Mux(value < 0, -value, value))

        def slot_src(slot):
            return Mux(slot == Slot.X, _Src.X, Mux(slot == Slot.V, _Src.V, Mux(slot == Slot.G, _Src.G, _Src.F)))

        # a BITLINEAR's passes may run beside the back end's matvec and drain when they touch none of the memories
        # that drain uses (FORGET and STATE use slot F and the state; the passes, never the state) and neither takes
        # the weight stream; FORGET's copy into slot F, its first pass, may run beside the other drains. Anything
        # else waits until the back end is idle.
        beside_back = (opcode == Opcode.BITLINEAR) & back_running & ~bk.stream & ~bl.stream
        drain_uses_f = (bk.epilogue == Epilogue.FORGET) | (bk.epilogue == Epilogue.STATE)
        beside = (beside_back & drain_uses_f & (bl.epilogue != Epilogue.FORGET) & (bl.src != Slot.F) &
                  ~(first_other & (bl.first == Slot.F)))
        aux_beside = beside_back & ~drain_uses_f & (bl.epilogue == Epilogue.FORGET)

        # the debug port's reads of the weight image, while idle; in a pipelined core from registers, so that the
        # sequencer's state does not run into the matvec engine's choice between a read and the matvec
        image_read = Signal()
        image_addr = Signal.like(self.d_addr)
        if p.pipelined:
            m.d.sync += image_read.eq(0)
        with m.If(image_read):
            m.d.comb += [engine.r_addr.eq(image_addr), engine.r_en.eq(1)]

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.cmd.ready.eq(1)
                for mem in (*mems.values(), program):
                    m.d.comb += [mem.r_addr.eq(self.d_addr), mem.r_en.eq(1)]
                # (these reads are back before the field reader's first: a run fetches its first instruction first)
                reading_image = self.d_sel == Memory.IMAGE
                if p.pipelined:
                    m.d.sync += [image_read.eq(reading_image & ~self.cmd.valid), image_addr.eq(self.d_addr)]
                else:
                    m.d.comb += [image_read.eq(reading_image), image_addr.eq(self.d_addr)]
                with m.If(self.cmd.valid):
                    command = self.cmd.payload
                    m.d.sync += [token.eq(command.token), error.eq(CoreError.NONE), pc.eq(0),
                                 fetch.eq(0), have_logits.eq(0), cycles.eq(0), ps_t.eq(0),
                                 inv_t.mant.eq(command.inv_mant), inv_t.exp.eq(command.inv_exp)]
                    with m.Switch(command.op):
                        with m.Case(CoreCommand.CLEAR):
                            m.next = "CLEAR"
                        with m.Case(CoreCommand.SEED):
                            m.d.sync += lfsr.eq(Mux(command.seed == 0, 1, command.seed))
                        with m.Case(CoreCommand.RUN):
                            m.d.sync += [sample_only.eq(0), sums_ok.eq(0), sum_g_ok.eq(0)]
                            m.next = "FETCH"
                        with m.Case(CoreCommand.SAMPLE):
                            m.d.sync += [sample_only.eq(1), argmax.eq(greedy)]
                            with m.If(~logits_valid):
                                m.d.sync += error.eq(CoreError.NO_LOGITS)
                                m.next = "DONE"
                            with m.Elif(command.inv_mant != 0):
                                m.next = "SAMPLE_K"
                            with m.Else():
                                m.next = "DONE"

            with m.State("CLEAR"):
                m.d.comb += [mems[Memory.STATE].w_addr.eq(ps_t), mems[Memory.STATE].w_data.eq(0),
                             mems[Memory.STATE].w_en.eq(1)]
                m.d.sync += ps_t.eq(ps_t + 1)
                with m.If(ps_t == p.state_words - 1):
                    m.next = "IDLE"

            with m.State("FETCH"):
                # four program words, read latency 1: addresses in cycles 0…3, data in cycles 1…4
                m.d.comb += [program.r_addr.eq(Cat(fetch[:2], pc)), program.r_en.eq(1)]
                with m.If(fetch != 0):
                    m.d.sync += ir.eq(Cat(ir[WORD_BITS:], program.r_data))
                m.d.sync += fetch.eq(fetch + 1)
                with m.If(fetch == 4):
                    m.d.sync += fetch.eq(0)
                    m.next = "DECODE"

            with m.State("DECODE"):
                with m.If(back_idle | beside | aux_beside):
                    m.d.comb += self.trace_valid.eq(1)
                    with m.Switch(opcode):
                        with m.Case(Opcode.CONFIG):
                            m.d.sync += [residual_frac.eq(conf.residual_frac),
                                         eps.mant.eq(conf.eps_mant), eps.exp.eq(conf.eps_exp),
                                         unit_x.mant.eq(conf.unit_mant), unit_x.exp.eq(conf.unit_exp)]
                            m.next = "NEXT"
                        with m.Case(Opcode.EMBED):
                            m.d.sync += sums_ok.eq(0)
                            with m.If(token >= emb.tokens):
                                m.d.sync += error.eq(CoreError.TOKEN)
                                m.next = "DONE"
                            with m.Else():
                                m.d.sync += [mul_a.eq(emb.row_words), mul_b.eq(token), row_addr.eq(emb.table)]
                                m.next = "EMBED_ROW"
                        with m.Case(Opcode.BITLINEAR):
                            m.d.sync += [mul_a.eq(bl.rows), mul_b.eq(bl.layer), state_base.eq(0), qaddr.eq(0),
                                         qbyte.eq(0), q_done.eq(0), q_bank.eq(~q_bank)]
                            m.next = "BL_LAYER"
                        with m.Case(Opcode.END):
                            with m.If(~have_logits):
                                m.d.sync += error.eq(CoreError.NO_LOGITS)
                            m.next = "DONE"
                        with m.Default():
                            m.d.sync += error.eq(CoreError.OPCODE)
                            m.next = "DONE"

            with m.State("NEXT"):
                m.d.sync += pc.eq(pc + 1)
                with m.If(pc == p.program_instructions - 1):
                    with m.If(~have_logits):
                        m.d.sync += error.eq(CoreError.NO_LOGITS)
                    m.next = "DONE"
                with m.Else():
                    m.next = "FETCH"

            with m.State("DONE"):
                m.d.comb += [self.res.valid.eq(back_idle), self.res.payload.token.eq(argmax),
                             self.res.payload.error.eq(error)]
                with m.If(self.res.ready):
                    m.next = "IDLE"

            # -- EMBED: row address (shift-and-add), the exponent, then the row through the pass datapath ----
            with m.State("EMBED_ROW"):
                with m.If(mul_b == 0):
                    m.next = "EMBED_EXP"
                with m.Else():
                    shift_add_step(row_addr)

            with m.State("EMBED_EXP"):
                offer_fields(emb.exps + (token >> 2), token[:2] + 1, streamed=emb.stream)
                with m.If(fields.start.ready):
                    m.next = "EMBED_EXP_WAIT"

            with m.State("EMBED_EXP_WAIT"):
                m.d.comb += fields.o.ready.eq(1)
                with m.If(fields.o.valid & fields.o.payload.last):
                    e = Signal(signed(18))
                    m.d.comb += e.eq(fields.o.payload.data[0] + residual_frac)
                    m.d.sync += [ps_pow.eq(Mux(e > 0, e, 0)), ps_post.eq(Mux(e < 0, -e, 0))]
                    m.next = "EMBED_START"

            with m.State("EMBED_START"):
                offer_fields(row_addr, emb.length, width=1, streamed=emb.stream)
                with m.If(fields.start.ready):
                    start_pass(_Src.FIELD, emb.length, limbs=limbs_for(f.embed_bits), factor_=_Factor.POW2,
                               pow_=ps_pow, post=ps_post, round_=1, write=1, back="EMBED_DONE")

            with m.State("EMBED_DONE"):
                m.next = "NEXT"

            # -- BITLINEAR -----------------------------------------------------------------------------------
            with m.State("BL_LAYER"):
                with m.If(mul_b == 0):
                    m.next = "BL_AUX"
                with m.Else():
                    shift_add_step(state_base)

            with m.State("BL_AUX"):    # FORGET: the layer's 1 − lb into slot F
                with m.If(bl.epilogue == Epilogue.FORGET):
                    offer_fields(bl.aux, bl.rows, is_signed=0, wide=True)
                    with m.If(fields.start.ready):
                        start_pass(_Src.FIELD, bl.rows, limbs=1, write=2, wide=True, back="BL_AUX_DONE")
                with m.Else():
                    m.next = "BL_HOLD"

            with m.State("BL_AUX_DONE"):
                m.next = "BL_HOLD"

            with m.State("BL_HOLD"):   # the passes over the input wait for a drain that writes it
                constants_ahead(bl.consts, when=~engine.busy)   # (not while a matvec runs: it lends it the reads)
                with m.If(back_idle | beside):
                    m.d.sync += scan.eq(peak_of(bl.src))
                    m.next = "BL_K"

            with m.State("BL_K"):      # the shifts k of v's sum of squares, then of the first slot's
                constants_ahead(bl.consts)
                m.d.sync += [k_v.eq(scan_k), scan.eq(peak_of(bl.first))]
                m.next = "BL_K_FIRST"

            with m.State("BL_K_FIRST"):
                constants_ahead(bl.consts)
                m.d.sync += k_f.eq(scan_k)
                with m.If(first_other & ~(sum_g_ok & (bl.first == Slot.G))):
                    m.next = "BL_F"
                with m.Else():
                    m.next = "BL_B"

            with m.State("BL_B"):      # max|w ⊙ c|, w = v's rounded cut, and Σ (v ≫ k)²
                with m.If(start_constants(bl.consts)):
                    with m.If(first_other & back_idle & ~chain_busy):   # the chain's first norm beside the passes
                        m.d.sync += chain_early.eq(1)
                    start_pass(slot_src(bl.src), bl.cols, limbs=1, factor_=_Factor.FIELD, pre=k_v, pre_round=1,
                               red_sel=2, own_square=1, wide=True, back="BL_B_DONE")

            with m.State("BL_B_DONE"):
                constants_ahead(Mux(two_norms & ~reuse_u, bl.pre, bl.consts))   # D's, or C's
                take_sums()
                with m.If(sums_valid):
                    m.d.sync += [max_p.eq(sums_max), sum_v.eq(sums_sq), quant_busy.eq(1),
                                 reused.eq(two_norms & reuse_u)]
                    with m.If(two_norms & ~reuse_u):
                        with m.If(~first_other & back_idle & ~chain_busy):   # the chain's first norm beside pass D
                            m.d.sync += chain_early.eq(1)
                        m.next = "BL_D"
                    with m.Else():
                        m.next = "BL_QCMD"

            with m.State("BL_QCMD"):   # once QUANT is done: the quantizer's command; the back end is due
                constants_ahead(bl.consts)
                m.d.comb += [quant.cmd.valid.eq(~quant_busy & quant_idle),
                             quant.cmd.payload.shift.eq(quant_cmd_shift), quant.cmd.payload.recip.eq(quant_cmd_recip)]
                with m.If(~quant_busy & quant_idle):
                    with m.If(chain_hold):
                        m.d.sync += [c_sum_u.eq(sum_u), c_max_p.eq(max_p), chain_hold.eq(0)]
                    with m.Else():
                        m.d.sync += chain_due.eq(1)
                    m.next = "BL_C"

            with m.State("BL_C"):      # q into the q buffer
                with m.If(start_constants(bl.consts)):
                    start_pass(slot_src(bl.src), bl.cols, limbs=1, factor_=_Factor.FIELD, pre=k_v, pre_round=1,
                               quant_=1, wide=True, back="BL_C_DONE")

            with m.State("BL_C_DONE"):
                with m.If(q_done):
                    m.next = "BL_MATVEC"

            with m.State("BL_D"):      # Σ u², u = ((v ≫ k) · pre) ≫ pre_shift
                with m.If(start_constants(bl.pre)):
                    start_pass(slot_src(bl.src), bl.cols, limbs=limbs_for(f.reduce_bits), factor_=_Factor.FIELD,
                               pre=k_v, post=bl.pre_shift, red_sel=2, wide=True, back="BL_D_DONE")

            with m.State("BL_D_DONE"):
                constants_ahead(bl.consts)
                take_sums()
                with m.If(sums_valid):
                    m.d.sync += [sum_u.eq(sums_sq), sums_ok.eq(~first_other), sums_src.eq(bl.src),
                                 sums_pre.eq(bl.pre), sums_cols.eq(bl.cols)]
                    m.next = "BL_QCMD"

            with m.State("BL_F"):      # the first norm's slot: its sum of squares
                start_pass(slot_src(bl.first), bl.cols, limbs=limbs_of(bl.first), red_sel=1, red_shift=k_f,
                           wide=True, back="BL_F_DONE")

            with m.State("BL_F_DONE"):
                constants_ahead(bl.consts)
                take_sums()
                with m.If(sums_valid):
                    m.d.sync += [sum_f.eq(sums_sq), sum_g_ok.eq(0)]
                    m.next = "BL_B"

            with m.State("BL_MATVEC"):   # once the back end has taken this BITLINEAR: its matvec
                m.d.comb += [engine.cmd.valid.eq(back_ready), engine.cmd.payload.base.eq(bk.weights),
                             engine.cmd.payload.row_groups.eq((bk.rows + p.rows - 1) >> exact_log2(p.rows)),
                             engine.cmd.payload.col_groups.eq(bk.col_groups),
                             engine.cmd.payload.stream.eq(bk.stream), engine.cmd.payload.q_bank.eq(back_bank)]
                with m.If(back_ready & engine.cmd.ready):
                    m.d.sync += [dr.row.eq(0), dr.ser_row.eq(0), dr.entry.eq(0), dr.out_count.eq(0),
                                 dr.beat_valid.eq(0), dr.el_valid.eq(0), dr.at_last.eq(dr.step >= bk.rows),
                                 dr.odd_tail.eq(Mux(glu, bk.rows[1], bk.rows[0])),
                                 dr.issued_all.eq(0), dr.results_done.eq(0), back_ready.eq(0), back_running.eq(1)]
                    with m.If(bl.epilogue == Epilogue.LOGITS):
                        m.next = "BL_ARGMAX"
                    with m.Else():
                        m.next = "NEXT"

            with m.State("BL_ARGMAX"):    # once the head's drain has ended
                m.d.comb += red.o.ready.eq(back_idle)
                with m.If(red.o.valid & back_idle):
                    m.d.sync += [argmax.eq(red.o.payload.argmax), greedy.eq(red.o.payload.argmax),
                                 logit_rows.eq(bl.rows), logits_valid.eq(1), have_logits.eq(1),
                                 logit_mant.eq(regs["s"].mant), logit_exp.eq(regs["s"].exp)]
                    with m.If(inv_t.mant != 0):
                        m.next = "SAMPLE_K"
                    with m.Else():
                        m.next = "NEXT"

            # -- sampling: argmax of sat(round(acc · k)) + G[lfsr], k = scale · (1/T) (host.gumbel) -------------
            with m.State("SAMPLE_K"):
                m.d.comb += [offer.valid.eq(1), offer.payload.op.eq(ScalarOp.MUL),
                             offer.payload.a.eq(regs["s"]), offer.payload.b.eq(inv_t),
                             scalar_unit.o.ready.eq(1)]
                with m.If(scalar_unit.o.valid):
                    k = scalar_unit.o.payload.value
                    m.d.sync += [sample_mant.eq(k.mant), sample_shift.eq(-(k.exp + FRAC))]
                    m.next = "SAMPLE_SHIFT"

            with m.State("SAMPLE_SHIFT"):   # k as the pass's operand and post-shift, from registers
                shift = sample_shift
                m.d.sync += [sample_x.eq(Mux(shift >= 0, sample_mant, sample_mant << Mux(shift < -19, 19, -shift)[:5])),
                             ps_post.eq(Mux(shift > 255, 255, Mux(shift >= 0, shift, 0)))]
                m.next = "SAMPLE"

            with m.State("SAMPLE"):
                start_pass(_Src.REG, logit_rows, limbs=limbs_for(self.elem_bits), factor_=_Factor.LOGITS,
                           post=ps_post, round_=1, red_sel=3, back="SAMPLE_DONE")

            with m.State("SAMPLE_DONE"):
                m.d.comb += red.o.ready.eq(1)
                with m.If(red.o.valid):
                    m.d.sync += argmax.eq(red.o.payload.argmax)
                    with m.If(sample_only):
                        m.next = "DONE"
                    with m.Else():
                        m.next = "NEXT"

            # -- a pass: elements streamed through the pass datapath into its sinks ------------------------------
            with m.State("PASS"):
                # fetch: a slot read (latency 1; a wide pass's ``lanes`` elements from one word) and, where the pass
                # needs one, a field (a wide pass's: ``lanes``), then dp_in
                slot_data = Signal(data.ArrayLayout(signed(self.elem_bits), lanes))
                with m.Switch(ps_src):
                    for slot, memory in _SLOT_MEMORY.items():
                        with m.Case(slot):
                            m.d.comb += [slot_data[lane].eq(mems[memory].r_lanes[lane].as_signed())
                                         for lane in range(lanes)]
                    with m.Case(_Src.FIELD):
                        m.d.comb += [slot_data[lane].eq(field[lane]) for lane in range(lanes)]
                    with m.Case(_Src.REG):
                        m.d.comb += slot_data[0].eq(sample_x)
                with m.Switch(ps_factor):
                    with m.Case(_Factor.ONE):
                        m.d.comb += [dp_in.payload.y[lane].eq(1) for lane in range(lanes)]
                    with m.Case(_Factor.FIELD):
                        m.d.comb += [dp_in.payload.y[lane].eq(field[lane]) for lane in range(lanes)]
                    with m.Case(_Factor.POW2):
                        m.d.comb += dp_in.payload.y[0].eq(C(1, 16) << ps_pow)
                    with m.Case(_Factor.LOGITS):
                        m.d.comb += dp_in.payload.y[0].eq(mems[Memory.LOGITS].r_data.as_signed())
                # the last beat of a wide pass: its lanes beyond the vector are zero
                m.d.comb += [dp_in.valid.eq(fetched), dp_in.payload.x[0].eq(slot_data[0])]
                m.d.comb += [dp_in.payload.x[lane].eq(Mux(dp_last & (ps_pad >= lanes - lane), 0, slot_data[lane]))
                             for lane in range(1, lanes)]
                need_field = (ps_src == _Src.FIELD) | (ps_factor == _Factor.FIELD)
                issue = (ps_t != ps_count) & (~fetched | dp_in.ready) & (~need_field | fields.o.valid)
                for slot, memory in _SLOT_MEMORY.items():
                    m.d.comb += [mems[memory].r_addr.eq(ps_t << exact_log2(lanes)),
                                 mems[memory].r_en.eq(issue & (ps_src == slot))]
                m.d.comb += [mems[Memory.LOGITS].r_addr.eq(ps_t),
                             mems[Memory.LOGITS].r_en.eq(issue & (ps_factor == _Factor.LOGITS))]
                m.d.comb += fields.o.ready.eq(issue & need_field)
                with m.If(issue):
                    m.d.sync += [fetched.eq(1), field.eq(fields.o.payload.data), ps_t.eq(ps_t + 1),
                                 dp_last.eq(ps_t == ps_count - 1)]
                with m.Elif(dp_in.ready):
                    m.d.sync += fetched.eq(0)

                # the sinks: the reduction units, the quantizer, a slot
                red_needed = ps_red != 0
                result = dp_out.payload
                with m.If(dp_out.valid & red_needed & rs_free):
                    m.d.sync += [rs_valid.eq(1), rs_last.eq(result.last), rs_shift.eq(ps_red_shift),
                                 rs_own.eq(ps_own_square), rs_wide.eq(ps_wide),
                                 rs_data[0].eq(Mux(ps_red == 3, saturate(result.product[0], Y_BITS),
                                                   Mux(ps_red == 2, result.product[0], result.x[0]))),
                                 rs_noise.eq(Mux(ps_red == 3, noise, 0))]
                    m.d.sync += [rs_square[lane].eq(result.x[lane]) for lane in range(lanes)]
                    m.d.sync += [rs_data[lane].eq(Mux(ps_red == 2, result.product[lane], result.x[lane]))
                                 for lane in range(1, lanes)]
                m.d.comb += [dp_out.ready.eq(~red_needed | rs_free),
                             quant.i.valid.eq(dp_out.valid & ps_quant & dp_out.ready),
                             quant.i.payload.last.eq(result.last)]
                m.d.comb += [quant.i.payload.p[lane].eq(result.product[lane]) for lane in range(lanes)]
                with m.If(dp_out.valid & dp_out.ready):
                    m.d.sync += t_out.eq(t_out + 1)
                    with m.If(ps_red == 3):
                        m.d.sync += lfsr.eq(lfsr_next)
                    m.d.sync += [pw_slot.eq(ps_write), pw_addr.eq(t_out), pw_first.eq(t_out == 0)]
                    with m.Switch(ps_write):
                        with m.Case(1):   # saturated
                            m.d.sync += pw_value.eq(saturate(result.product[0], f.residual_bits))
                        with m.Case(2):   # a copy: the elements themselves (no product)
                            m.d.sync += [pw_copy[lane].eq(result.x[lane]) for lane in range(lanes)]
                            m.d.sync += pw_copy_en.eq(Cat(~(result.last & (ps_pad >= lanes - lane))
                                                          for lane in range(lanes)))
                    with m.If(result.last):
                        m.next = "PASS_RETURN"

            with m.State("PASS_RETURN"):
                with m.Switch(ret):
                    for index, name in enumerate(PASS_RETURNS):
                        with m.Case(index):
                            m.next = name

        # a pass's elements into slot X or F, a cycle after they leave the pass datapath
        with m.If(pw_slot == 1):
            m.d.comb += [mems[Memory.X].w_addr.eq(pw_addr), mems[Memory.X].w_en.eq(1),
                         mems[Memory.X].w_data.eq(pw_value)]
            track(_Src.X, [pw_value], pw_first)
        with m.If(pw_slot == 2):
            copy = mems[Memory.F]
            if lanes > 1:
                m.d.comb += [copy.w_addr.eq(pw_addr << exact_log2(lanes)), copy.w_lanes.eq(pw_copy),
                             copy.w_lanes_en.eq(pw_copy_en)]
            else:
                m.d.comb += [copy.w_addr.eq(pw_addr), copy.w_en.eq(1), copy.w_data.eq(pw_copy[0])]

        # -- the back end's drain, beside the sequencer ------------------------------------------------------
        with m.If(back_running):
            self._drain(m, dr, engine, vus, vu_in, red_ins, mems, bk, epilogue, drain_base, red_data, red_last, track,
                        ~chain_busy, sum_g)
            g_summed = Cat(unit.o.valid for unit in g_units).all()
            done = (dr.issued_all & ~dr.el_valid & (is_logits | dr.results_done) & ~chain_busy &
                    (~sum_g | g_summed))
            with m.If(sum_g):
                m.d.comb += [unit.o.ready.eq(done) for unit in g_units]
            with m.If(done):
                m.d.sync += back_running.eq(0)
                with m.If(sum_g):
                    m.d.sync += [sum_f.eq(sum(unit.o.payload.sum_sq for unit in g_units)), sum_g_ok.eq(1)]
                with m.If((epilogue == Epilogue.RESIDUAL) | (epilogue == Epilogue.GATE) | (epilogue == Epilogue.GLU)):
                    m.d.sync += sums_ok.eq(0)   # slot X or V written
                with m.Switch(epilogue):
                    with m.Case(Epilogue.GATE):
                        m.d.sync += [unit_g.eq(regs["s"]), unit_v.mant.eq(regs["s"].mant),
                                     unit_v.exp.eq(Mux(regs["s"].mant != 0,
                                                       regs["s"].exp + (f.gated_shift - f.state_frac), 0))]
                    with m.Case(Epilogue.GLU):
                        m.d.sync += [unit_v.mant.eq(regs["s"].mant),
                                     unit_v.exp.eq(Mux(regs["s"].mant != 0,
                                                       regs["s"].exp + (f.glu_shift - f.act_frac), 0))]

        with m.If(~self.cmd.ready):
            m.d.sync += cycles.eq(cycles + 1)
        m.d.comb += self.busy.eq(~self.cmd.ready)

        # the debug port: the memory read in an idle cycle, sign-extended, into the port's register; in a pipelined
        # core each memory's word passes a register of its own first, so no block RAM's output runs into the choice
        words = {**{name: mem.r_data.as_signed() for name, mem in mems.items()},
                 Memory.IMAGE: engine.r_data, Memory.PROGRAM: program.r_data}
        d_sel = Signal(Memory)
        m.d.sync += d_sel.eq(self.d_sel)
        if p.pipelined:
            held = {name: Signal(word.shape(), name=f"d_held_{name.name.lower()}") for name, word in words.items()}
            m.d.sync += [held[name].eq(word) for name, word in words.items()]
            held_sel = Signal(Memory)
            m.d.sync += held_sel.eq(d_sel)
            words, d_sel = held, held_sel
        with m.Switch(d_sel):
            for name, word in words.items():
                with m.Case(name):
                    m.d.sync += self.d_data.eq(word)
        return m

    @staticmethod
    def _scale_chain(m, offer, result, chain, regs, operands, integers, powers, two_norms):
        """Step ``chain`` of :data:`SCALE_CHAIN`: offer its command, store its result, go on."""
        with m.Switch(chain):
            for index, (op, a, b, integer, power, dest) in enumerate(SCALE_CHAIN):
                with m.Case(index):
                    command = offer.payload
                    m.d.comb += [offer.valid.eq(1), command.op.eq(op), result.ready.eq(1)]
                    if a is not None:
                        m.d.comb += command.a.eq(operands[a])
                    if b is not None:
                        m.d.comb += command.b.eq(operands[b])
                    if integer is not None:
                        m.d.comb += command.integer.eq(integers[integer])
                    if power is not None:
                        m.d.comb += command.power.eq(powers[power])
                    with m.If(result.valid):
                        m.d.sync += regs[dest].eq(result.payload.value)
                        following = index + 1
                        if following == _TWO_NORMS:
                            following = Mux(two_norms, _TWO_NORMS, _RSQRT)
                        m.d.sync += chain.eq(following)

    def _drain(self, m, dr, engine, vus, vu_in, red_ins, mems, bl, epilogue, state_base, red_data, red_last, track,
               scaled, sum_g):
        """The drain of a BITLINEAR (its registers in ``dr``): row groups from the matvec engine into a FIFO of
        :data:`DRAIN_DEPTH` accumulators, ``2 · vector_lanes`` rows an entry a cycle; from there, once the output scale
        is known (``scaled``), an element per lane a cycle into the vector units (the GLU's: a gate row and its up
        row), with its operands read from vector memory; results back into vector memory in order. The head's
        accumulators go one a cycle into the reduction unit and the logits memory; with ``sum_g`` each lane's element
        goes into a reduction unit as well, for their sum of squares. ``vu_in`` is the stream into the vector units
        (:func:`~mmfree.hw.stream_fifo.fed_in_lockstep`)."""
        rows, lanes = self.params.rows, self.params.vector_lanes
        width = 2 * lanes   # rows of a FIFO entry
        acc_bits = self.acc_bits
        m.d.comb += engine.o.ready.eq(~dr.beat_valid)
        with m.If(engine.o.valid & ~dr.beat_valid):
            m.d.sync += [dr.beat.eq(engine.o.payload.acc), dr.beat_valid.eq(1), dr.entry.eq(0)]

        m.submodules.drain_fifo = held = fifo.SyncFIFOBuffered(width=width * acc_bits, depth=DRAIN_DEPTH // width)
        entries = data.View(data.ArrayLayout(width * acc_bits, rows // width), dr.beat.as_value())
        push = dr.beat_valid & held.w_rdy
        m.d.comb += [held.w_data.eq(entries[dr.entry]), held.w_en.eq(push)]
        with m.If(push):   # (the last entry's rows beyond the vector are junk that nobody takes)
            m.d.sync += [dr.entry.eq(dr.entry + 1), dr.ser_row.eq(dr.ser_row + width)]
            with m.If((dr.entry == rows // width - 1) | (dr.ser_row + width >= bl.rows)):
                m.d.sync += dr.beat_valid.eq(0)

        # an issue takes its rows from the FIFO's head entry (the issue using the entry's last row, or the vector's,
        # takes the entry): lane j the row at + j, or for the GLU the pair 2j, 2j + 1
        glu = epilogue == Epilogue.GLU
        is_logits = epilogue == Epilogue.LOGITS
        low = exact_log2(width)
        accs = data.View(data.ArrayLayout(signed(acc_bits), width), held.r_data)
        at = dr.row[:low]
        next_row = Signal.like(dr.row)
        m.d.comb += next_row.eq(dr.row + dr.step)
        issue = held.r_rdy & (scaled | is_logits) & (~dr.el_valid | dr.el_taken)
        m.d.comb += held.r_en.eq(issue & ((next_row[:low] == 0) | dr.at_last))
        # the operands: slot X (RESIDUAL) or F (the others) and the state; the sequencer's passes may read the others
        with m.If(epilogue == Epilogue.RESIDUAL):
            m.d.comb += [mems[Memory.X].r_addr.eq(dr.row), mems[Memory.X].r_en.eq(issue)]
        with m.Else():
            m.d.comb += [mems[Memory.F].r_addr.eq(dr.row), mems[Memory.F].r_en.eq(issue)]
        m.d.comb += [mems[Memory.STATE].r_addr.eq(state_base + dr.row), mems[Memory.STATE].r_en.eq(issue)]
        with m.If(issue):
            m.d.sync += [dr.el_valid.eq(1), dr.el_last.eq(dr.at_last), dr.el_row.eq(dr.row), dr.row.eq(next_row),
                         dr.at_last.eq(next_row + dr.step >= bl.rows), dr.issued_all.eq(dr.at_last),
                         dr.el_pair.eq(~dr.at_last | ~dr.odd_tail)]
            for lane in range(lanes):
                m.d.sync += [dr.el_acc[lane].eq(Mux(glu, accs[2 * lane], accs[(at + lane)[:low]])),
                             dr.el_acc_u[lane].eq(accs[2 * lane + 1])]
        with m.Elif(dr.el_taken):
            m.d.sync += dr.el_valid.eq(0)
        # lane 1's element, where it holds one (else 0)
        elements = [dr.el_acc[0]] + [Mux(dr.el_pair, dr.el_acc[lane], 0) for lane in range(1, lanes)]
        # GATE's accumulators into slot G and the head's into the logits memory a cycle after they leave the FIFO, from
        # the element registers: the FIFO's block RAM drives nothing but those
        g_write, logits_write = Signal(), Signal()
        m.d.sync += [g_write.eq(issue & (epilogue == Epilogue.GATE)), logits_write.eq(issue & is_logits)]
        with m.If(g_write):
            _write_elements(m, mems[Memory.G], dr.el_row, list(dr.el_acc), [C(1)] + [dr.el_pair] * (lanes - 1))
            track(_Src.G, elements, dr.el_row == 0)
        with m.If(logits_write):
            m.d.comb += [mems[Memory.LOGITS].w_addr.eq(dr.el_row), mems[Memory.LOGITS].w_data.eq(dr.el_acc[0]),
                         mems[Memory.LOGITS].w_en.eq(1)]

        # with sum_g an element goes into both units in one cycle
        units = red_ins[:lanes]
        m.d.comb += vu_in.valid.eq(dr.el_valid & ~is_logits & (~sum_g | Cat(port.ready for port in units).all()))
        with m.If(is_logits | sum_g):
            m.d.comb += [red_data.eq(dr.el_acc[0]), red_last.eq(dr.el_last), red_ins[0].payload.shift.eq(0)]
        for lane, port in enumerate(units):
            others = [other.ready for other in units if other is not port]
            with m.If(sum_g | is_logits if lane == 0 else sum_g):
                m.d.comb += port.valid.eq(dr.el_valid & (is_logits | vu_in.ready & Cat(others, C(1)).all()))
            if lane:
                with m.If(sum_g):
                    m.d.comb += [port.payload.data.eq(elements[lane]), port.payload.last.eq(dr.el_last),
                                 port.payload.shift.eq(0)]

        # results: lane 1's is an element but for an odd count's last
        first = vus[0].o
        results = [unit.o.payload.data for unit in vus]
        writes = [C(1)] + [~first.payload.last | ~dr.odd_tail] * (lanes - 1)
        with m.If(first.valid):
            m.d.sync += dr.out_count.eq(dr.out_count + lanes)
            with m.If(first.payload.last):
                m.d.sync += dr.results_done.eq(1)
            with m.Switch(epilogue):
                for kind, memory, base in ((Epilogue.FORGET, Memory.F, 0), (Epilogue.STATE, Memory.STATE, state_base),
                                           (Epilogue.GATE, Memory.V, 0), (Epilogue.RESIDUAL, Memory.X, 0),
                                           (Epilogue.GLU, Memory.V, 0)):
                    with m.Case(kind):
                        _write_elements(m, mems[memory], base + dr.out_count, results, writes)
                        if memory in (Memory.X, Memory.V):
                            slot = _Src.X if memory is Memory.X else _Src.V
                            bits = self.widths[slot]
                            track(slot, [Mux(write, result[:bits].as_signed(), 0)
                                         for result, write in zip(results, writes)], dr.out_count == 0)


def _read_elements(memory, lanes):
    """The ``lanes`` elements at ``memory``'s read address, of its last read (its ``r_data``, or its ``r_pair``)."""
    return [memory.r_data] if lanes == 1 else list(memory.r_pair)


def _write_elements(m, memory, addr, values, enables):
    """Write ``values`` (one, or a pair) to ``memory`` from element ``addr`` on, each where its ``enables`` is set."""
    width = len(memory.w_data)
    if len(values) == 1:
        m.d.comb += [memory.w_addr.eq(addr), memory.w_data.eq(values[0]), memory.w_en.eq(enables[0])]
    else:
        m.d.comb += [memory.w_addr.eq(addr), memory.w_pair.eq(Cat(value[:width] for value in values)),
                     memory.w_pair_en.eq(Cat(enables))]

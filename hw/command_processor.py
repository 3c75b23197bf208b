"""The device side of the command layer (``docs/protocol.md``, section "Command layer"): requests from the link, the
core driven through its ports, responses back.

:class:`CommandProcessor` sits between :class:`~mmfree.hw.link.LinkDevice` (one request packet at a time: the type
byte, then the payload; one response packet per request) and :class:`~mmfree.hw.core.Core`.
:class:`mmfree.host.golden_device.GoldenDevice` is its behaviour in Python; for the programs the compiler emits the
answers are the same byte for byte, with the differences listed in ``docs/protocol.md`` ("What the gateware
implements"): fewer checks of a corrupt program, and streamed runs settled before a command's field checks.

It is one FSM. Payload fields are parsed byte by byte as they stream in (one byte per cycle) through a 64-bit shift
register: WRITE words go to the core's load ports (registered: in the cycle after each word's last byte),
GENERATE's prompt ids into a 128 × 16-bit block RAM; the values READ sends are shifted out of the same register.
The checks follow the golden device's order: unknown type, GENERATE's reserved flags, the payload length (MALFORMED,
known at the last byte), the fields, then what the command finds (NOT_LOADED, BAD_PROGRAM, BAD_TOKEN, NO_DATA,
OUT_OF_RANGE). A failing command is answered ERROR and leaves the processor ready for the next one; the check records
which fields the ERROR carries, and the response reads them as it is sent. (A WRITE whose payload turns out longer
or shorter than its ``count`` says is answered MALFORMED after its whole words were written: the length is known
only at the end, and the words are not buffered.)

A byte-wide block RAM holds the INFO, STATS and DONE responses whole, type byte included, and they are sent from it
byte by byte; the counters that STATS and DONE report live there, big-endian, and change a byte per cycle with one
8-bit adder (zeroed after a reset and, DONE's, by GENERATE).

Cycles, beyond one per payload byte in and one per response byte out, and two between a request's last byte and its
checks: DIGEST reads each word through the core's debug port and runs it through CRC-32 a bit per cycle (66 cycles
per word); GENERATE and READ first scan the program (6 cycles per instruction up to END) for the vocabulary, the
vector length, the head's rows, the layers and the residual unit; GENERATE zeroes DONE's counters (13 cycles),
checks the stored ids (3 cycles each), then runs each through the core; each run answered updates the counters (17
cycles, 25 with a generated token); READ reads one value per 11 cycles (two to address it, one into a register,
eight bytes out); RESET and RESET_STATE wait out the core's CLEAR (``state_words`` cycles); INFO, STATS and DONE take
one more cycle to read their first byte.

With a weight stream (``CoreParams.weight_stream``) it also runs streamed generations: a GENERATE with the STREAM
flag (one prompt id) or a NEXT of such a generation starts the core on its token and answers at once; the run then
owes CONFIG's ``pass_words`` words, which STREAM requests push into the core as their words complete (a word that
finds the FIFO full waits while the core runs). Any later command but INFO, STATS, STREAM and RESET first *settles*
the run: STREAM_SHORT while words are owed, else it waits for the core's answer (BAD_PROGRAM if the core starves
for words the program did not announce). RESET abandons a run: it resets the core (``core_reset``), FIFO included.
"""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..host.commands import (HASH_BYTES, MAX_READ, RESET_STATE, SCALAR_BITS, STREAM, VERSION, WIDE_IDS,
                             WORDS_PER_INSTRUCTION, Command, ErrorCode, Info, Region, Reply, Target)
from ..host.isa import FIELDS, Epilogue, Opcode, Slot, field_offset
from ..host.protocol import REPLY_BIT
from .checks import check_int
from .core import WORD_BITS, CoreCommand, CoreError, Memory, command_layout, debug_latency
from .link import request_layout, response_layout
from .primitives import BlockRam

__all__ = ["CommandProcessor", "core_result_layout", "crc32_bit"]

#: prompt ids the processor holds (a GENERATE carries at most 121)
PROMPT_DEPTH = 128
#: CRC-32/ISO-HDLC (zlib), reflected
CRC32_POLY = 0xEDB88320
#: widths of the STATS counters (sent zero-extended to 64 bits; they wrap)
TOKEN_COUNT_BITS = 32
CYCLE_COUNT_BITS = 48

_WRITE_HEADER, _GENERATE_HEADER, _STREAM_HEADER = 6, 14, 1
#: how a counter in the byte RAM changes: by the core's cycles, by one, to zero
_ADD_CYCLES, _ADD_ONE, _ZERO = range(3)
#: groups of the processor's counters (first, last): a run, a generated token, DONE's at GENERATE, all at reset
_RAN, _GENERATED, _RAN_GENERATED, _NEW_GENERATION, _ALL = (0, 2), (3, 4), (0, 4), (5, 5), (5, 6)
#: the instruction fields the program scan reads, all within words 0 and 1 of an instruction
_SCANNED = {Opcode.CONFIG: ("unit_mant", "unit_exp", "pass_words"), Opcode.EMBED: ("length", "tokens"),
            Opcode.BITLINEAR: ("epilogue", "layer", "rows")}


def _field_bits(opcode, name):
    """``(offset, width)`` of an instruction field."""
    width = next(f.bits for f in FIELDS[opcode] if f.name == name)
    return field_offset(opcode, name), width


#: bits of word 1 the scan keeps
_W1_BITS = max(sum(_field_bits(op, name)) for op, names in _SCANNED.items() for name in names) - WORD_BITS


def core_result_layout():
    """Layout of the core's ``res`` stream: ``token`` (the argmax, 16 bits), ``error``
    (:class:`~mmfree.hw.core.CoreError`)."""
    return data.StructLayout({"token": 16, "error": CoreError})


def crc32_bit(crc, bit):
    """The CRC-32/ISO-HDLC register after one more bit (reflected: each byte's least significant bit first).

    Parameters
    ----------
    crc : Value
        32 bits (the register, not yet complemented: it starts at ``0xFFFFFFFF`` and the checksum is its complement).
    bit : Value
        1 bit.

    Returns
    -------
    Value
        32 bits.
    """
    crc = Value.cast(crc)
    return (crc >> 1) ^ Mux(crc[0] ^ bit, CRC32_POLY, 0)


class CommandProcessor(wiring.Component):
    """The command layer on the device (see the module notes).

    Parameters
    ----------
    params : mmfree.host.compiler.CoreParams
        The core's parameters (INFO reports them; ``weight_words`` and ``program_instructions`` size the regions).
    clk_hz : int
        The configured clock, reported by INFO (0: none), 0 … 2³² − 1.
    gateware_hash : bytes
        The 32-byte gateware hash INFO reports (a build input).
    impl : {"model", "ice40", "ecp5"} or None
        Implementation of the block RAMs (the prompt ids; the INFO, STATS and DONE responses).

    Attributes
    ----------
    request : In(stream.Signature(request_layout()))
        Requests from :class:`~mmfree.hw.link.LinkDevice`: the type beat, then the payload; one byte per cycle.
    response : Out(stream.Signature(response_layout()))
        One response per request: the type beat, then the payload; one byte per cycle.
    idle : Out(1)
        1 while waiting for a request.
    error : Out(4)
        The code (:class:`~mmfree.host.commands.ErrorCode`) of the last request's ERROR response, 0 if it had none;
        cleared when the next request arrives.
    cmd : Out(stream.Signature(command_layout(SCALAR_BITS)))
    res : In(stream.Signature(core_result_layout()))
    busy : In(1)
    cycles : In(32)
    w_addr, w_data, w_we, p_addr, p_data, p_we : Out
        The core's load ports (64-bit words).
    d_sel, d_addr : Out; d_data : In(signed(64))
        The core's debug read port (the element :func:`~mmfree.hw.core.debug_latency` cycles after the address).
    logit_mant : In(16); logit_exp : In(signed(16))
        The head's output scale after the last RUN.
    v_mant, g_mant : In(16); v_exp, g_exp : In(signed(16))
        The units of slots V and G.
    ws : Out(stream.Signature(64)); starved : In(1); core_reset : Out(1)
        With a weight stream: words for the core's weight stream; the core waits for one; reset the core.
    """

    def __init__(self, params, clk_hz, gateware_hash, *, impl=None):
        check_int("clk_hz", clk_hz, 0, (1 << 32) - 1)
        if not isinstance(gateware_hash, (bytes, bytearray)) or len(gateware_hash) != HASH_BYTES:
            raise ValueError(f"gateware_hash must be {HASH_BYTES} bytes, got {gateware_hash!r}")
        self.params, self.clk_hz, self.gateware_hash, self._impl = params, clk_hz, bytes(gateware_hash), impl
        self.program_words = WORDS_PER_INSTRUCTION * params.program_instructions
        #: the INFO response's payload
        self.info = Info(VERSION, params, clk_hz, self.gateware_hash).encode()
        debug_words = max(params.max_vector, params.state_words, self.program_words, params.weight_words)
        super().__init__({
            "request": In(stream.Signature(request_layout())),
            "response": Out(stream.Signature(response_layout())),
            "idle": Out(1),
            "error": Out(4),
            "cmd": Out(stream.Signature(command_layout(SCALAR_BITS))),
            "res": In(stream.Signature(core_result_layout())),
            "busy": In(1),
            "cycles": In(32),
            "w_addr": Out(range(params.weight_words)), "w_data": Out(WORD_BITS), "w_we": Out(1),
            "p_addr": Out(range(self.program_words)), "p_data": Out(WORD_BITS), "p_we": Out(1),
            "d_sel": Out(Memory), "d_addr": Out(range(debug_words)), "d_data": In(signed(WORD_BITS)),
            "logit_mant": In(SCALAR_BITS), "logit_exp": In(signed(16)),
            "v_mant": In(SCALAR_BITS), "v_exp": In(signed(16)), "g_mant": In(SCALAR_BITS), "g_exp": In(signed(16)),
            **({"ws": Out(stream.Signature(WORD_BITS)), "starved": In(1), "core_reset": Out(1)}
               if params.weight_stream else {}),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        req, resp = self.request, self.response
        byte = req.payload.data

        m.submodules.prompt = prompt = BlockRam(width=16, depth=PROMPT_DEPTH, impl=self._impl)
        # the byte RAM: the INFO, STATS and DONE responses, each from its type byte; STATS and DONE hold the
        # processor's counters, big-endian and zero-extended to their fields as they are sent
        info_at, stats_at = 0, 1 + len(self.info)
        done_at = stats_at + 1 + 3 * 8
        ends = {Command.INFO: stats_at, Command.STATS: done_at, Command.NEXT: done_at + 1 + 8 + 4}
        m.submodules.ram = ram = BlockRam(width=8, depth=1 << ends[Command.NEXT].bit_length(),
                                          init=[Reply.INFO, *self.info, Reply.STATS, *bytes(3 * 8), Reply.DONE],
                                          impl=self._impl)
        ra = Signal(range(ram.depth))   # the byte it reads next (sending: the byte after the one sent)
        ra_end = Signal.like(ra)        # the end of the response being sent
        wa = Signal.like(ra)            # the counter byte being updated
        # the counters: (the address of the least significant byte, bytes, how it changes); `_RAN` … `_ALL` group them
        cycle_bytes, token_bytes = CYCLE_COUNT_BITS // 8, TOKEN_COUNT_BITS // 8
        counters = [
            (stats_at + 24, cycle_bytes, _ADD_CYCLES),      # STATS: cycles
            (done_at + 12, cycle_bytes, _ADD_CYCLES),       # DONE: cycles of the generation
            (stats_at + 8, token_bytes, _ADD_ONE),          # STATS: tokens run
            (done_at + 4, 4, _ADD_ONE),                     # DONE: tokens generated
            (stats_at + 16, token_bytes, _ADD_ONE),         # STATS: tokens generated
            (done_at + 12, 12, _ZERO),                      # DONE's fields
            (stats_at + 24, 24, _ZERO),                     # STATS's fields
        ]

        # -- the request: type, length, fields -------------------------------------------------------------------
        cmd = Signal(8)
        is_cmd = {c: Signal(name=f"is_{c.name.lower()}") for c in Command}   # `cmd == c`, registered with it
        pos = Signal(9)                 # payload bytes received
        sh = Signal(64)                 # the last 8 payload bytes, the latest in the low byte
        sh_next = Cat(byte, sh[:56])
        b0, b1, b2 = Signal(8), Signal(8), Signal(8)   # payload bytes 0, 1, 2
        n32 = Signal(32)                # WRITE offset, DIGEST count, READ offset, GENERATE max_new_tokens
        mant = Signal(16)               # GENERATE's 1/T mantissa (0: greedy), exponent and seed
        exp = Signal(16)
        seed = Signal(32)
        sub = Signal(3)                 # byte within an item (WRITE word, GENERATE id)
        item = Signal(8)                # items completed
        have_big, big_high, big_pos = Signal(), Signal(16), Signal(8)  # the first id above 0xFFFF: high half, where
        wide = (b0 & WIDE_IDS).any()
        reset_state = (b0 & RESET_STATE).any()

        # -- the device's state ----------------------------------------------------------------------------------
        written = Signal(2)             # bit r: region r was written
        ran = Signal()                  # a token has run since RESET: vectors, state and logits can be read
        active = Signal()               # a generation is in progress
        argmax = Signal(16)             # the greedy token of the last run
        tok = Signal(16)                # the token being run
        remaining = Signal(32)
        run_cycles = Signal(32)         # cycles of the last run answered
        # streamed generations (a core with a weight stream; otherwise these stay 0)
        streams = p.weight_stream
        pending = Signal()              # a streamed run was started and is not settled
        owed = Signal(24)               # words it still needs
        streamed = Signal()             # the generation in progress is streamed
        first = Signal()                # … and its next NEXT seeds and samples first
        accept = Signal()               # the STREAM's count fits what is owed
        dropped = Signal()              # a STREAM word found the FIFO full and the core idle
        starved = self.starved if streams else C(0)

        # what a program scan finds
        vocab = Signal(20)              # EMBED's tokens
        length = Signal(16)             # EMBED's length: H, the length of X, F and a layer's state
        logits_len = Signal(16)         # the LOGITS projection's rows
        glu_len = Signal(16)            # half the GLU projection's rows: I, the length of slot V after a token
        layers = Signal(9)              # 1 + the highest layer with a STATE epilogue
        has_forget = Signal()           # slot F is written
        unit_mant, unit_exp = Signal(16), Signal(signed(12))   # CONFIG's residual unit: slot X's scale
        pass_words = Signal(24)         # CONFIG's words streamed per run
        w1 = Signal(_W1_BITS)           # the low bits of the instruction's word 1
        w0 = Signal(64)                 # … and its word 0; the word DIGEST reads

        # the working registers of the loops
        ctr = Signal(16)
        # cycles the debug port's element has been on its way
        dwait = Signal(range(max(debug_latency(self.params, memory) for memory in Memory)))
        addr = Signal(16)
        # the loops' end conditions, registered (the counters hold still for a cycle first); `digested`: `addr == n32`
        # a cycle ahead (DIGEST_BITS sets it for the next word; elsewhere it is set for the first)
        last_instruction, last_value, digested = Signal(), Signal(), Signal()
        dsel = Signal(Memory)
        crc = Signal(32)
        j = Signal(range(13))           # byte of the response being sent (a TOKEN has 13)
        pid = Signal(16)                # the prompt RAM's output, registered: no block RAM read in front of logic
        ebyte = Signal(8)               # the ERROR byte being sent from its value or limit (taken a beat early)

        m.d.comb += [self.d_sel.eq(dsel), self.d_addr.eq(addr), prompt.r_addr.eq(ctr)]
        m.d.sync += [last_instruction.eq(ctr == p.program_instructions - 1), last_value.eq(ctr == b2 - 1),
                     digested.eq(n32 == 0)]
        m.d.sync += pid.eq(prompt.r_data)

        region_words = Mux(b0[0], self.program_words, p.weight_words)
        write_count = Mux(is_cmd[Command.WRITE], b1, 0)
        # the checks on the longest paths are registered: valid from the second cycle after their fields arrive
        last_word = Signal(signed(34))  # a WRITE's last word; DIGEST's count − 1 (−1: none)
        m.d.sync += last_word.eq(n32 + (write_count - 1).as_signed())
        # `last_word` is in the region if `n32` is below `n32_limit` (registered from the fields before `n32`)
        n32_limit = Signal(range(1 - 255, max(self.program_words, p.weight_words) + 2))
        m.d.sync += n32_limit.eq(region_words + 1 - write_count)
        in_region, bad_length = Signal(), Signal()
        m.d.sync += in_region.eq(n32 < n32_limit)
        write_fits = (b0 <= Region.PROGRAM) & (b1 != 0) & in_region

        # an item completes with this beat: a WRITE word goes to its port, a prompt id to the prompt RAM, a STREAM
        # word to the core's weight stream
        is_stream = is_cmd[Command.STREAM] if streams else C(0)
        has_items = is_cmd[Command.WRITE] | is_cmd[Command.GENERATE] | is_stream
        short = Signal()                # `pos` is below the request's header (registered with `pos`)
        header = Mux(is_cmd[Command.WRITE], _WRITE_HEADER,
                     Mux(is_cmd[Command.STREAM], _STREAM_HEADER, _GENERATE_HEADER))
        in_items = has_items & ~short
        item_last = Mux(is_cmd[Command.WRITE] | is_stream, 7, Mux(wide, 3, 1))
        item_done = Signal()
        stream_word = req.valid & in_items & (sub == item_last) & is_stream & accept & (item < b0)
        stall = Signal()                # a STREAM word waits for room in the FIFO while the core runs
        if streams:
            m.d.comb += [self.ws.payload.eq(sh_next), stall.eq(stream_word & ~self.ws.ready & self.busy)]
        # the load ports are registered: a word is written in the cycle after its last byte, from `sh`
        write = item_done & is_cmd[Command.WRITE] & write_fits & (item < b1)
        word_address = Signal(range(max(self.params.weight_words, self.program_words)))
        m.d.sync += [word_address.eq(n32 + item), self.w_we.eq(write & (b0 == Region.IMAGE)),
                     self.p_we.eq(write & (b0 == Region.PROGRAM))]
        m.d.comb += [
            self.w_addr.eq(word_address), self.w_data.eq(sh), self.p_addr.eq(word_address), self.p_data.eq(sh),
            prompt.w_addr.eq(item), prompt.w_data.eq(sh_next[:16]),
            prompt.w_en.eq(item_done & is_cmd[Command.GENERATE] & (item < PROMPT_DEPTH)),
        ]
        n32_at = Mux(is_cmd[Command.DIGEST], 4, Mux(is_cmd[Command.READ], 6, 5))

        # READ: the target's length and scale (slot X: the residual unit; the logits: the head's output scale); the
        # checks, registered in stages: the scan's results are final from the END instruction on, 7 cycles before
        # READ_CHECK
        target_len = Signal(16)
        left = Signal(17)               # values from the offset to the end (bit 16: the offset is beyond)
        bad_slot, bad_layer, no_data, bad_offset, clamp = (Signal(name=name) for name in (
            "bad_slot", "bad_layer", "no_data", "bad_offset", "clamp"))
        slot_v = (b0 == Target.SLOT) & (b1 == Slot.V)
        m.d.sync += [
            target_len.eq(Mux(b0 == Target.LOGITS, logits_len, Mux(slot_v & (glu_len != 0), glu_len, length))),
            left.eq(target_len - n32[:16]),
            bad_offset.eq(n32[16:].any() | left[16] | ~left.any()),
            clamp.eq(~left[8:].any() & (left[:8] < b2)),    # fewer values left than asked for
            bad_slot.eq((b0 == Target.SLOT) & (b1 >= len(Slot))),
            bad_layer.eq((b0 == Target.STATE) & (b1 >= layers)),
        ]
        with m.Switch(b0):
            with m.Case(Target.SLOT):
                m.d.sync += no_data.eq(~ran | ((b1 == Slot.F) & ~has_forget)
                                       | (b1.matches(Slot.V, Slot.G) & (layers == 0)))
            with m.Case(Target.STATE):
                m.d.sync += no_data.eq(~ran | (layers == 0))
            with m.Default():
                m.d.sync += no_data.eq(~ran)
        scale_mant, scale_exp = Signal(16), Signal(signed(16))     # registered too (the core is idle by then)
        m.d.sync += [scale_mant.eq(0), scale_exp.eq(0)]
        with m.If(b0 == Target.LOGITS):
            m.d.sync += [scale_mant.eq(self.logit_mant), scale_exp.eq(self.logit_exp)]
        with m.Elif(b0 == Target.SLOT):
            with m.Switch(b1):
                for slot, (mant_, exp_) in {Slot.X: (unit_mant, unit_exp), Slot.V: (self.v_mant, self.v_exp),
                                            Slot.G: (self.g_mant, self.g_exp)}.items():
                    with m.Case(slot):
                        m.d.sync += [scale_mant.eq(mant_), scale_exp.eq(exp_)]

        need = Signal(11)               # the payload length the request's type and header call for
        with m.Switch(cmd):
            with m.Case(Command.WRITE):
                m.d.comb += need.eq(Mux(short, _WRITE_HEADER, _WRITE_HEADER + 8 * b1))
            with m.Case(Command.DIGEST):
                m.d.comb += need.eq(5)
            with m.Case(Command.READ):
                m.d.comb += need.eq(7)
            with m.Case(Command.GENERATE):
                m.d.comb += need.eq(Mux(short, _GENERATE_HEADER, _GENERATE_HEADER + Mux(wide, b1 << 2, b1 << 1)))
            with m.Case(Command.STREAM):
                m.d.comb += need.eq(Mux(short, _STREAM_HEADER, _STREAM_HEADER + (b0 << 3)))
        m.d.sync += bad_length.eq(pos != need)
        # DISPATCH's other checks, registered the same way (on fields and on state that holds still there)
        commands = [c for c in Command if streams or c != Command.STREAM]
        flags = RESET_STATE | WIDE_IDS | (STREAM if streams else 0)
        unknown, bad_flags, settles, bad_region, bad_count, no_more = (Signal(name=name) for name in (
            "unknown", "bad_flags", "settles", "bad_region", "bad_count", "no_more"))
        with m.Switch(cmd):
            with m.Case(Command.WRITE):
                m.d.sync += bad_count.eq(b1 == 0)
            with m.Case(Command.STREAM):
                m.d.sync += bad_count.eq(b0 == 0)
            with m.Case(Command.READ):
                m.d.sync += bad_count.eq((b2 == 0) | (b2 > MAX_READ))
            with m.Case(Command.GENERATE):
                m.d.sync += bad_count.eq((b0 & STREAM).any() & b1[1:].any())
        m.d.sync += [
            unknown.eq(~cmd.matches(*commands)),
            bad_flags.eq(is_cmd[Command.GENERATE] & (b0 & (0xFF & ~flags)).any()),
            settles.eq(~cmd.matches(Command.INFO, Command.STATS, Command.STREAM, Command.RESET)),
            bad_region.eq(b0 > Mux(is_cmd[Command.READ], Target.LOGITS, Region.PROGRAM)),
            no_more.eq(remaining == 0),
        ]
        loaded_missing = ~written
        big = Signal()                      # the prompt id being checked is above 0xFFFF (`ctr` holds a cycle first)
        m.d.sync += big.eq(have_big & (ctr == big_pos))
        bad_id = Signal()                   # … or not below the vocabulary (registered: a cycle after `pid`)
        m.d.sync += bad_id.eq(big | (pid >= vocab))

        # an ERROR's value and limit, (value, limit) by name: `fail` records the code (`error`) and the name (its
        # index, `err_of`), and the ERROR state reads the pair as it sends it (each source holds still from the
        # failing check until the response is sent)
        errors = {
            "none": (0, 0), "type": (cmd, 0), "flags": (0, b0), "length": (pos, need), "region": (b0, 0),
            "count": (1, 0), "range": (n32, region_words), "read_count": (2, b2), "missing": (loaded_missing, 0),
            "prompt_count": (1, b1), "slot": (b1, len(Slot)), "layer": (b1, layers), "offset": (n32, target_len),
            # the prompt RAM holds the low half of every id
            "token": (Cat(pid, Mux(big, big_high, 0)), vocab), "stream_count": (b0, owed), "short": (owed, 0),
        }
        err_of = Signal(range(len(errors)))

        def fail(code, fields="none"):
            """Answer ERROR ``code`` with the value and limit ``errors[fields]``."""
            m.d.sync += [self.error.eq(code), err_of.eq(list(errors).index(fields))]
            m.next = "ERROR"

        # the response's data byte is the OR of the bytes of `out_terms`, (state, condition, byte), whose state is
        # the current one and whose condition holds; a byte no term covers is zero
        out_terms = []

        def put(state, at, value, nbytes, cond=C(1), terms=out_terms):
            """Terms for ``value`` (a Value, or an int) as ``nbytes`` big-endian bytes, the first at byte ``at``."""
            for index in range(nbytes):
                low = 8 * (nbytes - 1 - index)
                if isinstance(value, int):
                    byte = (value >> low) & 0xFF
                    if byte:
                        terms.append((state, cond & (j == at + index), C(byte, 8)))
                elif low < len(Value.cast(value)):
                    terms.append((state, cond & (j == at + index), Value.cast(value)[low:low + 8]))

        def out_of_region():
            """WRITE or DIGEST beyond the region: the value is the last word, which replaces ``n32``."""
            m.d.sync += n32.eq(last_word)
            fail(ErrorCode.OUT_OF_RANGE, "range")

        def emit(state, fields, done, last=1):
            """State ``state`` sends ``fields``, ``(value, bytes)`` each (big-endian; value None: terms put
            elsewhere), then runs ``done()``; the final byte is the packet's last where ``last``."""
            at = 0
            for value, nbytes in fields:
                if value is not None:
                    put(state, at, value, nbytes)
                at += nbytes
            with m.State(state):
                final = j == at - 1
                m.d.comb += [resp.valid.eq(1), resp.payload.last.eq(final & last)]
                with m.If(resp.ready):
                    m.d.sync += j.eq(j + 1)
                    with m.If(final):
                        m.d.sync += j.eq(0)
                        done()

        def goto(state):
            def done():
                m.next = state
            return done

        def await_debug(memory, state):
            """Wait in this state until the element of the address it started with is on ``d_data``, then go to
            ``state`` (the first cycle of a waiting state is the first with the address on ``d_addr``)."""
            with m.If(dwait == debug_latency(self.params, memory) - 1):
                m.d.sync += dwait.eq(0)
                m.next = state
            with m.Else():
                m.d.sync += dwait.eq(dwait + 1)

        # the counter loop: counters `first` … `last` of `counters`, then state `resume` (an index of `resumes`)
        resumes = ["IDLE", "DISPATCH", "G_RUN", "CLEAR", "TOKEN"]
        csel, cstop = Signal(range(len(counters))), Signal(range(len(counters)))
        nth = Signal(range(max(n for _, n, _ in counters)))   # the byte of the counter
        carry = Signal()                # into the counter's next byte (at its first byte: 1 to add one)
        resume = Signal(range(len(resumes)))
        # counter `csel` in registers (COUNT_START loads them): its last byte, how it changes, the next counter's
        # least significant byte
        clast, ckind, cnext = Signal.like(nth), Signal(2), Signal.like(ra)
        assert all(nbytes > 1 for _, nbytes, _ in counters)
        at_last = Signal()              # `nth == clast`, registered a cycle ahead (0 outside COUNT)
        m.d.comb += ram.r_addr.eq(Mux(at_last, cnext, ra))

        def start(index):
            """Counter `index` is next."""
            _, nbytes, how = counters[index]
            m.d.sync += [csel.eq(index), clast.eq(nbytes - 1), ckind.eq(how), carry.eq(how == _ADD_ONE),
                         cnext.eq(counters[min(index + 1, len(counters) - 1)][0])]

        def count(group, then):
            """Update the counters of `group`, then go to state `then` (a name, or an index of `resumes`)."""
            first, last = group
            m.d.sync += [csel.eq(first), cstop.eq(last), ra.eq(counters[first][0]), nth.eq(0), at_last.eq(0),
                         resume.eq(resumes.index(then) if isinstance(then, str) else then)]
            m.next = "COUNT_START"

        # the counter's byte `wa` after this cycle: one adder (the carry is the low bit of both operands)
        cycles_byte = Mux(nth < len(self.cycles) // 8, self.cycles.word_select(nth[:2], 8), 0)
        total = (Cat(carry, Mux(ckind == _ZERO, 0, ram.r_data))
                 + Cat(carry, Mux(ckind == _ADD_CYCLES, cycles_byte, 0)))[1:]
        m.d.comb += [ram.w_addr.eq(wa), ram.w_data.eq(total[:8])]

        def send(command):
            """Send the response to `command` (INFO, STATS, NEXT) from the RAM."""
            m.d.sync += [ra.eq({Command.INFO: info_at, Command.STATS: stats_at, Command.NEXT: done_at}[command]),
                         ra_end.eq(ends[command])]
            m.next = "SEND_START"

        def record_run(group, then):
            """The core answered a run: its choice of the next token, the counters of `group`."""
            m.d.sync += [argmax.eq(self.res.payload.token), ran.eq(1), run_cycles.eq(self.cycles)]
            count(group, then)

        def count_generated():
            m.d.sync += remaining.eq(remaining - 1)
            count(_GENERATED, "TOKEN")

        with m.FSM() as fsm:
            with m.State("INIT"):           # the counters start at zero (after a reset too)
                count(_ALL, "IDLE")

            with m.State("IDLE"):
                m.d.comb += [req.ready.eq(1), self.idle.eq(1)]
                with m.If(req.valid):
                    m.d.sync += [cmd.eq(byte), *(flag.eq(byte == c) for c, flag in is_cmd.items()), pos.eq(0),
                                 short.eq(1), b0.eq(0), sub.eq(0), item.eq(0), have_big.eq(0), dropped.eq(0),
                                 self.error.eq(0)]
                    with m.If(req.payload.last):
                        m.next = "PARSED"
                    with m.Else():
                        m.next = "PARSE"

            with m.State("PARSE"):
                m.d.comb += req.ready.eq(~stall)
                if streams:
                    m.d.comb += self.ws.valid.eq(stream_word)
                    with m.If(stream_word & ~stall):
                        m.d.sync += [owed.eq(owed - 1), dropped.eq(dropped | ~self.ws.ready)]
                with m.If(req.valid & ~stall):
                    m.d.sync += [sh.eq(sh_next), pos.eq(pos + 1), short.eq(pos + 1 < header)]
                    with m.Switch(pos):
                        with m.Case(0):
                            m.d.sync += [b0.eq(byte), accept.eq((byte != 0) & (byte <= owed))]
                        with m.Case(1):
                            m.d.sync += b1.eq(byte)
                        with m.Case(2):
                            m.d.sync += b2.eq(byte)
                    with m.If(is_cmd[Command.GENERATE]):   # kept for the generation's NEXTs
                        with m.Switch(pos):
                            with m.Case(7):
                                m.d.sync += mant.eq(sh_next[:16])
                            with m.Case(9):
                                m.d.sync += exp.eq(sh_next[:16])
                            with m.Case(13):
                                m.d.sync += seed.eq(sh_next[:32])
                    with m.If(pos == n32_at):
                        m.d.sync += n32.eq(sh_next[:32])
                    with m.If(in_items):
                        m.d.sync += sub.eq(sub + 1)
                        with m.If(sub == item_last):
                            m.d.comb += item_done.eq(1)
                            m.d.sync += [sub.eq(0), item.eq(item + 1)]
                            with m.If(is_cmd[Command.GENERATE] & wide & sh_next[16:32].any() & ~have_big):
                                m.d.sync += [have_big.eq(1), big_high.eq(sh_next[16:32]), big_pos.eq(item)]
                    with m.If(req.payload.last):
                        m.next = "PARSED"

            with m.State("PARSED"):         # the registered checks take the last field
                m.next = "DISPATCH"
            with m.State("DISPATCH"):
                m.d.sync += [ctr.eq(0), crc.eq(0xFFFF_FFFF)]  # for READ, GENERATE and DIGEST (the rest ignore them)
                with m.If(unknown):
                    fail(ErrorCode.UNKNOWN_COMMAND, "type")
                with m.Elif(bad_flags):
                    fail(ErrorCode.BAD_VALUE, "flags")
                with m.Elif(bad_length):
                    fail(ErrorCode.MALFORMED, "length")
                with m.Elif(pending & settles):
                    m.next = "SETTLE"
                with m.Else():
                    with m.Switch(cmd):
                        with m.Case(Command.INFO):
                            send(Command.INFO)
                        with m.Case(Command.WRITE):
                            with m.If(bad_region):
                                fail(ErrorCode.BAD_REGION, "region")
                            with m.Elif(bad_count):
                                fail(ErrorCode.BAD_VALUE, "count")
                            with m.Elif(~in_region):
                                out_of_region()
                            with m.Else():
                                m.d.sync += [written.eq(written | Mux(b0[0], 2, 1)), active.eq(0)]
                                m.next = "ACK"
                        with m.Case(Command.DIGEST):
                            with m.If(bad_region):
                                fail(ErrorCode.BAD_REGION, "region")
                            with m.Elif(~in_region):
                                out_of_region()
                            with m.Else():
                                m.d.sync += [addr.eq(0), dsel.eq(Mux(b0[0], Memory.PROGRAM, Memory.IMAGE))]
                                m.next = "DIGEST_WORD"
                        with m.Case(Command.RESET):
                            with m.If(pending):
                                m.next = "ABORT"
                            with m.Else():
                                m.next = "CLEAR"
                        with m.Case(Command.STREAM):
                            with m.If(bad_count):
                                fail(ErrorCode.BAD_VALUE)
                            with m.Elif(~accept):
                                fail(ErrorCode.OUT_OF_RANGE, "stream_count")
                            with m.Elif(dropped):
                                fail(ErrorCode.BAD_PROGRAM)
                            with m.Else():
                                m.next = "ACK"
                        with m.Case(Command.READ):
                            with m.If(bad_region):
                                fail(ErrorCode.BAD_REGION, "region")
                            with m.Elif(bad_count):
                                fail(ErrorCode.BAD_VALUE, "read_count")
                            with m.Elif(loaded_missing.any()):
                                fail(ErrorCode.NOT_LOADED, "missing")
                            with m.Else():
                                m.next = "SCAN"
                        with m.Case(Command.STATS):
                            send(Command.STATS)
                        with m.Case(Command.GENERATE):
                            with m.If(bad_count):
                                fail(ErrorCode.BAD_VALUE, "prompt_count")
                            with m.Elif(loaded_missing.any()):
                                fail(ErrorCode.NOT_LOADED, "missing")
                            with m.Else():
                                m.next = "SCAN"
                        with m.Case(Command.NEXT):
                            with m.If(~active):
                                fail(ErrorCode.IDLE)
                            with m.Elif(no_more):
                                m.d.sync += active.eq(0)
                                send(Command.NEXT)
                            with m.Elif(first):
                                m.next = "G_SEED"
                            with m.Else():
                                m.next = "RUN"

            # -- a streamed run: settled before a command that needs its result, or abandoned by RESET ---------
            with m.State("SETTLE"):
                m.d.comb += self.res.ready.eq(owed == 0)
                with m.If(owed != 0):
                    fail(ErrorCode.STREAM_SHORT, "short")
                with m.Elif(self.res.valid):
                    m.d.sync += pending.eq(0)
                    with m.If(self.res.payload.error != CoreError.NONE):
                        fail(ErrorCode.BAD_PROGRAM)
                    with m.Else():
                        record_run(_RAN, "DISPATCH")
                with m.Elif(starved):
                    fail(ErrorCode.BAD_PROGRAM)
            with m.State("ABORT"):
                if streams:
                    m.d.comb += self.core_reset.eq(1)
                m.d.sync += [pending.eq(0), owed.eq(0)]
                m.next = "CLEAR"

            # -- WRITE, RESET, GENERATE: an empty acknowledgement ----------------------------------------------
            emit("ACK", [(cmd | REPLY_BIT, 1)], goto("IDLE"))

            # -- INFO, STATS, DONE: a response from the byte RAM, read one byte ahead ------------------------------
            with m.State("SEND_START"):     # the RAM reads the type byte
                m.d.sync += ra.eq(ra + 1)
                m.next = "SEND"
            with m.State("SEND"):           # the RAM reads byte `ra` with each beat, and holds between
                final = ra == ra_end
                m.d.comb += [resp.valid.eq(1), resp.payload.last.eq(final), ram.r_en.eq(resp.ready)]
                with m.If(resp.ready):
                    m.d.sync += ra.eq(ra + 1)
                    with m.If(final):
                        m.next = "IDLE"

            # -- the counters in the byte RAM, a byte per cycle, least significant first -------------------------
            with m.State("COUNT_START"):    # the RAM reads the first counter's least significant byte
                m.d.sync += [wa.eq(ra), ra.eq(ra - 1)]
                with m.Switch(csel):
                    for index in range(len(counters)):
                        with m.Case(index):
                            start(index)
                m.next = "COUNT"
            with m.State("COUNT"):
                m.d.comb += ram.w_en.eq(1)
                m.d.sync += [carry.eq(total[8]), nth.eq(nth + 1), at_last.eq(nth + 1 == clast), wa.eq(ram.r_addr),
                             ra.eq(ram.r_addr - 1)]
                with m.If(at_last):
                    m.d.sync += [nth.eq(0), at_last.eq(0)]
                    with m.Switch(csel):
                        for index in range(len(counters) - 1):
                            with m.Case(index):
                                start(index + 1)
                    with m.If(csel == cstop):
                        with m.Switch(resume):
                            for index, state in enumerate(resumes):
                                with m.Case(index):
                                    m.next = state

            # -- DIGEST: CRC-32 of the region's words through the debug port -------------------------------------
            with m.State("DIGEST_WORD"):    # the debug port reads word `addr`
                with m.If(digested):
                    m.d.sync += ctr.eq(0)
                    m.next = "DIGEST_SEND"
                with m.Else():
                    await_debug(Memory.IMAGE, "DIGEST_HOLD")
            with m.State("DIGEST_HOLD"):    # the word into a register
                m.d.sync += [w0.eq(self.d_data), ctr.eq(0)]
                m.next = "DIGEST_BITS"
            with m.State("DIGEST_BITS"):    # the word's bits, least significant first, a bit per cycle
                m.d.sync += [crc.eq(crc32_bit(crc, w0[0])), w0.eq(w0 >> 1), ctr.eq(ctr + 1),
                             digested.eq((addr + 1)[:len(addr)] == n32)]
                with m.If(ctr == WORD_BITS - 1):
                    m.d.sync += addr.eq(addr + 1)
                    m.next = "DIGEST_WORD"
            with m.State("DIGEST_SEND"):    # the type, then the checksum (the complement), most significant first
                m.d.comb += [resp.valid.eq(1), resp.payload.last.eq(j == 4)]
                with m.If(resp.ready):
                    m.d.sync += j.eq(j + 1)
                    with m.If(j != 0):
                        m.d.sync += crc.eq(crc << 8)
                    with m.If(j == 4):
                        m.d.sync += j.eq(0)
                        m.next = "IDLE"

            # -- RESET (and GENERATE's RESET_STATE): the core zeroes the state -----------------------------------
            with m.State("CLEAR"):
                m.d.comb += [self.cmd.valid.eq(1), self.cmd.payload.op.eq(CoreCommand.CLEAR)]
                with m.If(self.cmd.ready):
                    m.next = "CLEAR_WAIT"
            with m.State("CLEAR_WAIT"):
                with m.If(~self.busy):
                    m.d.sync += ran.eq(0)
                    with m.If(is_cmd[Command.RESET]):
                        m.d.sync += active.eq(0)
                        m.next = "ACK"
                    with m.Else():
                        m.next = "G_RUN"

            # -- the program scan (GENERATE, READ): word 1, then word 0 of each instruction ---------------------
            with m.State("SCAN"):
                m.d.sync += [addr.eq(Cat(C(1, 2), ctr)), dsel.eq(Memory.PROGRAM)]
                with m.If(ctr == 0):
                    m.d.sync += [vocab.eq(0), layers.eq(0), has_forget.eq(0), logits_len.eq(0), glu_len.eq(0)]
                m.next = "SCAN_W1_WAIT"
            with m.State("SCAN_W1_WAIT"):
                await_debug(Memory.PROGRAM, "SCAN_W1")
            with m.State("SCAN_W1"):
                m.d.sync += [w1.eq(self.d_data[:_W1_BITS]), addr.eq(Cat(C(0, 2), ctr))]
                m.next = "SCAN_W0_WAIT"
            with m.State("SCAN_W0_WAIT"):
                await_debug(Memory.PROGRAM, "SCAN_W0_HOLD")
            with m.State("SCAN_W0_HOLD"):   # word 0 into a register: no memory read in front of the decode below
                m.d.sync += w0.eq(self.d_data)
                m.next = "SCAN_W0"
            with m.State("SCAN_W0"):
                words = Cat(w0, w1)

                def field(opcode, name):
                    offset, width = _field_bits(opcode, name)
                    return words[offset:offset + width]

                m.d.sync += ctr.eq(ctr + 1)
                m.next = "SCAN"
                with m.Switch(w0[:4]):
                    with m.Case(Opcode.CONFIG):
                        m.d.sync += [unit_mant.eq(field(Opcode.CONFIG, "unit_mant")),
                                     unit_exp.eq(field(Opcode.CONFIG, "unit_exp"))]
                        if streams:
                            m.d.sync += pass_words.eq(field(Opcode.CONFIG, "pass_words"))
                    with m.Case(Opcode.EMBED):
                        m.d.sync += [length.eq(field(Opcode.EMBED, "length")), vocab.eq(field(Opcode.EMBED, "tokens"))]
                    with m.Case(Opcode.BITLINEAR):
                        epilogue, layer, rows = (field(Opcode.BITLINEAR, name)
                                                 for name in ("epilogue", "layer", "rows"))
                        with m.Switch(epilogue):
                            with m.Case(Epilogue.FORGET):
                                m.d.sync += has_forget.eq(1)
                            with m.Case(Epilogue.STATE):
                                with m.If(layer >= layers):
                                    m.d.sync += layers.eq(layer + 1)
                            with m.Case(Epilogue.LOGITS):
                                m.d.sync += logits_len.eq(rows)
                            with m.Case(Epilogue.GLU):
                                m.d.sync += glu_len.eq(rows >> 1)
                    with m.Case(Opcode.END):
                        m.next = "SCANNED"
                    with m.Default():
                        fail(ErrorCode.BAD_PROGRAM)
                with m.If(last_instruction & (w0[:4] != Opcode.END)):
                    fail(ErrorCode.BAD_PROGRAM)
            with m.State("SCANNED"):
                m.d.comb += prompt.r_addr.eq(0)     # for G_CHECK
                m.d.sync += ctr.eq(0)
                with m.If(vocab == 0):
                    fail(ErrorCode.BAD_PROGRAM)
                with m.Elif(is_cmd[Command.READ]):
                    m.next = "READ_CHECK"
                with m.Else():
                    m.next = "G_CHECK"

            # -- GENERATE: check every id, then run the prompt ---------------------------------------------------
            with m.State("G_CHECK"):        # `pid` takes id `ctr` (the prompt RAM read it in the state before)
                with m.If(ctr == b1):
                    with m.If((b1 == 0) & (reset_state | ~ran)):
                        fail(ErrorCode.NO_DATA)
                    with m.Else():
                        m.d.sync += [active.eq(0), remaining.eq(n32), ctr.eq(0), first.eq(0)]
                        if streams:
                            m.d.sync += streamed.eq((b0 & STREAM).any())
                        count(_NEW_GENERATION, Mux(reset_state, resumes.index("CLEAR"), resumes.index("G_RUN")))
                with m.Else():
                    m.next = "G_CHECK_READ"
            with m.State("G_CHECK_READ"):   # the id is compared with the vocabulary
                m.next = "G_CHECK_ID"
            with m.State("G_CHECK_ID"):
                with m.If(bad_id):
                    fail(ErrorCode.BAD_TOKEN, "token")
                with m.Else():
                    m.d.comb += prompt.r_addr.eq(ctr + 1)
                    m.d.sync += ctr.eq(ctr + 1)
                    m.next = "G_CHECK"
            with m.State("G_RUN"):          # `pid` takes id `ctr` (`ctr` holds from the state before)
                with m.If((ctr == b1) & streamed):  # the first NEXT seeds and samples once the prompt has run
                    m.d.sync += [active.eq(1), first.eq(1)]
                    m.next = "ACK"
                with m.Elif(ctr == b1):
                    m.next = "G_SEED"
                with m.Else():
                    m.next = "RUN"
            # the sampler is seeded after the prompt, and the first token is chosen from the last one's logits (a
            # sample, or the argmax when 1/T is 0), as the golden device does; each NEXT then runs its token with 1/T
            with m.State("G_SEED"):
                m.d.comb += [self.cmd.valid.eq(1), self.cmd.payload.op.eq(CoreCommand.SEED),
                             self.cmd.payload.seed.eq(seed)]
                with m.If(self.cmd.ready):
                    m.next = "G_SAMPLE"
            with m.State("G_SAMPLE"):
                m.d.comb += [self.cmd.valid.eq(1), self.cmd.payload.op.eq(CoreCommand.SAMPLE),
                             self.cmd.payload.inv_mant.eq(mant), self.cmd.payload.inv_exp.eq(exp)]
                with m.If(self.cmd.ready):
                    m.next = "G_SAMPLE_WAIT"
            with m.State("G_SAMPLE_WAIT"):
                m.d.comb += self.res.ready.eq(1)
                with m.If(self.res.valid):
                    with m.If(self.res.payload.error != CoreError.NONE):
                        fail(ErrorCode.BAD_PROGRAM)
                    with m.Elif(is_cmd[Command.NEXT]):   # the first NEXT of a streamed generation
                        m.d.sync += [argmax.eq(self.res.payload.token), first.eq(0)]
                        m.next = "RUN"
                    with m.Else():
                        m.d.sync += [argmax.eq(self.res.payload.token), active.eq(1)]
                        m.next = "ACK"

            # -- a token through the core: a prompt id (GENERATE) or the greedy choice (NEXT) --------------------
            with m.State("RUN"):
                token = Mux(is_cmd[Command.NEXT], argmax, pid)
                m.d.comb += [self.cmd.valid.eq(1), self.cmd.payload.op.eq(CoreCommand.RUN),
                             self.cmd.payload.token.eq(token),
                             self.cmd.payload.inv_mant.eq(Mux(is_cmd[Command.NEXT], mant, 0)),
                             self.cmd.payload.inv_exp.eq(exp)]
                with m.If(self.cmd.ready):
                    m.d.sync += tok.eq(token)
                    with m.If(streamed):            # the run takes its words from STREAMs that follow
                        m.d.sync += [pending.eq(1), owed.eq(pass_words)]
                        with m.If(is_cmd[Command.NEXT]):
                            count_generated()
                        with m.Else():
                            m.d.sync += ctr.eq(ctr + 1)
                            m.next = "G_RUN"
                    with m.Else():
                        m.next = "RUN_WAIT"
            with m.State("RUN_WAIT"):
                m.d.comb += self.res.ready.eq(1)
                with m.If(self.res.valid):
                    with m.If(self.res.payload.error != CoreError.NONE):
                        fail(ErrorCode.BAD_PROGRAM)
                    with m.Elif(is_cmd[Command.NEXT]):
                        m.d.sync += remaining.eq(remaining - 1)
                        record_run(_RAN_GENERATED, "TOKEN")
                    with m.Else():
                        m.d.sync += ctr.eq(ctr + 1)
                        record_run(_RAN, "G_RUN")
                with m.Elif(starved):               # a streamed program run without its stream
                    m.d.sync += pending.eq(1)
                    fail(ErrorCode.BAD_PROGRAM)

            emit("TOKEN", [(Reply.TOKEN, 1), (tok, 4), (run_cycles if streams else self.cycles, 8)], goto("IDLE"))

            # -- READ: check the target, address the first value, then the header and the values ----------------
            with m.State("READ_CHECK"):
                m.d.sync += ctr.eq(Mux(b0 == Target.STATE, b1, 0))     # the layer (an ERROR ignores it)
                with m.If(bad_slot):
                    fail(ErrorCode.OUT_OF_RANGE, "slot")
                with m.Elif(no_data):
                    fail(ErrorCode.NO_DATA)
                with m.Elif(bad_layer):
                    fail(ErrorCode.OUT_OF_RANGE, "layer")
                with m.Else():
                    with m.Switch(b0):
                        with m.Case(Target.SLOT):
                            m.d.sync += dsel.as_value().eq(b1)   # Memory X, V, G, F share the slots' numbers
                        with m.Case(Target.STATE):
                            m.d.sync += dsel.eq(Memory.STATE)
                        with m.Default():
                            m.d.sync += dsel.eq(Memory.LOGITS)
                    with m.If(bad_offset):
                        fail(ErrorCode.OUT_OF_RANGE, "offset")
                    with m.Else():
                        m.d.sync += [addr.eq(n32), b2.eq(Mux(clamp, left, b2))]
                        m.next = "READ_BASE"
            with m.State("READ_BASE"):      # a layer's state starts at layer · H
                with m.If(ctr != 0):
                    m.d.sync += [addr.eq(addr + length), ctr.eq(ctr - 1)]
                with m.Else():
                    m.next = "READ_HEADER"
            emit("READ_HEADER", [(Reply.READ, 1), (target_len, 4), (scale_mant, 2), (scale_exp, 2), (b2, 1)],
                 goto("READ_HOLD"), last=0)

            def next_value():
                m.d.sync += [addr.eq(addr + 1), ctr.eq(ctr + 1)]
                with m.If(last_value):
                    m.next = "IDLE"
                with m.Else():
                    m.next = "READ_WAIT"
            with m.State("READ_HOLD"):      # the element into a register: no memory read in front of the response
                m.d.sync += sh.eq(self.d_data)
                m.next = "READ_VALUE"
            with m.State("READ_VALUE"):     # the element's bytes, most significant first, shifted out of `sh`
                final = j == 7
                m.d.comb += [resp.valid.eq(1), resp.payload.last.eq(final & last_value)]
                with m.If(resp.ready):
                    m.d.sync += [j.eq(j + 1), sh.eq(sh_next)]
                    with m.If(final):
                        m.d.sync += j.eq(0)
                        next_value()
            with m.State("READ_WAIT"):      # the debug port reads element `addr`
                await_debug(Memory.STATE, "READ_HOLD")

            emit("ERROR", [(Reply.ERROR, 1), (cmd, 1), (self.error, 1), (None, 8)], goto("IDLE"))
            out_terms += [("SEND", C(1), ram.r_data), ("DIGEST_SEND", j == 0, C(Reply.DIGEST, 8)),
                          ("DIGEST_SEND", j != 0, ~crc[24:]), ("READ_VALUE", C(1), sh[56:]), ("ERROR", j >= 3, ebyte)]
            ongoing = {state: fsm.ongoing(state) for state, _, _ in out_terms}
        # ERROR's value and limit, bytes 3 … 10, each taken into `ebyte` in the beat before it is sent
        ebyte_terms = []
        for index, (value, limit) in enumerate(errors.values()):
            put("ERROR", 2, value, 4, err_of == index, ebyte_terms)
            put("ERROR", 6, limit, 4, err_of == index, ebyte_terms)
        data, next_ebyte = C(0, 8), C(0, 8)
        for state, cond, byte in out_terms:
            data = data | Mux(ongoing[state] & cond, byte, 0)
        for _, cond, byte in ebyte_terms:
            next_ebyte = next_ebyte | Mux(cond, byte, 0)
        m.d.comb += resp.payload.data.eq(data)
        with m.If(ongoing["ERROR"] & resp.ready):
            m.d.sync += ebyte.eq(next_ebyte)
        return m

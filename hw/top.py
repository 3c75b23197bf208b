"""The accelerator's board-independent top: the host link, the command layer and the core.

:class:`AcceleratorTop` wires :class:`~mmfree.hw.link.LinkDevice` → :class:`~mmfree.hw.command_processor.CommandProcessor`
→ :class:`~mmfree.hw.core.Core` (the requests and the responses through FIFOs of 3,
:func:`~mmfree.hw.stream_fifo.stream_fifo`), with the link's byte streams either on ports (``link="fast"``: the
virtual board injects bytes behind the PHY) or behind the :class:`~mmfree.hw.uart.UART` on two pins
(``link="uart"``). Both forms are what :class:`mmfree.sim.virtual_board.VirtualBoard` runs; board shells (clock,
reset, pins) wrap the UART form.
"""

from amaranth import *
from amaranth.hdl import ResetInserter
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .checks import check_int
from .command_processor import CommandProcessor
from .core import Core
from .link import LinkDevice
from .stream_fifo import stream_fifo
from .uart import UART, uart_divisor

__all__ = ["AcceleratorTop", "LINKS"]

#: the forms of the link ports
LINKS = ("fast", "uart")
#: cycles without any activity after which ``idle`` rises
QUIET_CYCLES = 63


class AcceleratorTop(wiring.Component):
    """The accelerator: link, command layer and core.

    Parameters
    ----------
    params : mmfree.host.compiler.CoreParams
    formats : mmfree.host.golden.Formats
        The numeric formats the core computes in.
    clk_hz : int
        The clock (INFO reports it; sets the UART divisor and the link's 10 ms inter-byte timeout).
    baud : int
        The UART's baud rate (``link="uart"``).
    gateware_hash : bytes
        32 bytes, reported by INFO.
    link : {"fast", "uart"}
        The link's ports (see the module notes).
    impl : {"model", "ice40", "ecp5"} or None
        Implementation of the memories and multipliers.

    Attributes
    ----------
    rx : In(stream.Signature(8)); tx : Out(stream.Signature(8))
        ``link="fast"``: bytes from and to the host, behind the PHY.
    uart_rx : In(1); uart_tx : Out(1)
        ``link="uart"``: the UART pins (8N1, idle high).
    trace_valid : Out(1); trace_pc : Out
        The core starts the program's instruction ``trace_pc`` (the virtual board's per-instruction trace).
    error : Out(4)
        The command layer's last ERROR code (:class:`~mmfree.host.commands.ErrorCode`; 0: the last request had
        none), for the board's LEDs.
    idle : Out(1)
        1 after 63 cycles in which no byte moved, the command layer waited for a request and the core was idle:
        nothing happens until the host sends a byte (the virtual board sleeps meanwhile).
    clocks_per_bit : int or None
        ``link="uart"``: the UART's divisor.
    """

    def __init__(self, params, formats, clk_hz, baud=3_000_000, gateware_hash=bytes(32), *, link="fast",
                 impl=None):
        check_int("clk_hz", clk_hz, 1, (1 << 32) - 1)
        if link not in LINKS:
            raise ValueError(f"link must be one of {LINKS}, got {link!r}")
        self.params, self.formats, self.clk_hz, self.baud = params, formats, clk_hz, baud
        self.gateware_hash, self.link, self._impl = gateware_hash, link, impl
        self.clocks_per_bit = uart_divisor(clk_hz, baud) if link == "uart" else None
        members = {"idle": Out(1), "error": Out(4), "trace_valid": Out(1),
                   "trace_pc": Out(range(params.program_instructions + 1))}
        if link == "fast":
            members.update(rx=In(stream.Signature(8)), tx=Out(stream.Signature(8)))
        else:
            members.update(uart_rx=In(1, init=1), uart_tx=Out(1, init=1))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = link = LinkDevice(timeout=min(max(self.clk_hz // 100, 1), 1 << 24))
        m.submodules.commands = commands = CommandProcessor(self.params, self.clk_hz, self.gateware_hash,
                                                            impl=self._impl)
        core = Core(self.params, self.formats, impl=self._impl)
        if self.params.weight_stream:   # RESET abandons a streamed run: the core and its FIFO start afresh
            m.submodules.core = ResetInserter(commands.core_reset)(core)
            wiring.connect(m, commands.ws, core.ws)
            m.d.comb += commands.starved.eq(core.starved)
        else:
            m.submodules.core = core

        # requests reach the command processor through a FIFO, so its decision to take a beat stops there and does
        # not run on into the link's RX-buffer address; its responses reach the link through another, so the byte it
        # forms does not run on into the link's TX buffer
        requests = stream_fifo(m, link.request, name="requests")
        wiring.connect(m, requests, commands.request)
        wiring.connect(m, stream_fifo(m, commands.response, name="responses"), link.response)
        wiring.connect(m, commands.cmd, core.cmd)
        m.d.comb += [
            commands.res.valid.eq(core.res.valid), core.res.ready.eq(commands.res.ready),
            commands.res.payload.eq(core.res.payload),
            self.error.eq(commands.error), self.trace_valid.eq(core.trace_valid), self.trace_pc.eq(core.trace_pc),
            commands.busy.eq(core.busy), commands.cycles.eq(core.cycles), commands.d_data.eq(core.d_data),
            commands.logit_mant.eq(core.logit_mant), commands.logit_exp.eq(core.logit_exp),
            commands.v_mant.eq(core.v_mant), commands.v_exp.eq(core.v_exp),
            commands.g_mant.eq(core.g_mant), commands.g_exp.eq(core.g_exp),
            core.w_addr.eq(commands.w_addr), core.w_data.eq(commands.w_data), core.w_we.eq(commands.w_we),
            core.p_addr.eq(commands.p_addr), core.p_data.eq(commands.p_data), core.p_we.eq(commands.p_we),
            core.d_sel.eq(commands.d_sel), core.d_addr.eq(commands.d_addr),
        ]

        active = link.rx.valid | link.tx.valid | link.request.valid | requests.valid | link.response.valid | ~commands.idle | \
            core.busy
        if self.link == "fast":
            wiring.connect(m, wiring.flipped(self.rx), link.rx)
            wiring.connect(m, link.tx, wiring.flipped(self.tx))
        else:
            m.submodules.uart = uart = UART(self.clk_hz, self.baud)
            wiring.connect(m, uart.rx, link.rx)
            wiring.connect(m, link.tx, uart.tx)
            m.d.comb += [uart.rxd.eq(self.uart_rx), self.uart_tx.eq(uart.txd)]
            active |= ~uart.tx.ready

        quiet = Signal(range(QUIET_CYCLES + 1))
        with m.If(active):
            m.d.sync += quiet.eq(0)
        with m.Elif(quiet != QUIET_CYCLES):
            m.d.sync += quiet.eq(quiet + 1)
        m.d.comb += self.idle.eq(quiet == QUIET_CYCLES)
        return m

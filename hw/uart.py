"""UART PHY, 8N1: a receiver and a transmitter of bytes at one baud rate, as byte streams.

The bit period is ``divisor = round(clk_freq / baud)`` clock cycles; the constructor refuses a divisor below 4 or a
baud-rate error above 2 % (the other end's clock error and this receiver's sampling error must fit in what is left).
3 Mbaud at 30 MHz is 10 cycles per bit, 1 Mbaud at 12 MHz 12.

Receiver. ``rxd`` passes two flip-flops (it is asynchronous to the clock). A low level while idle starts a byte; the
line is sampled ``divisor // 2`` cycles later (mid start bit: still low, or it was a glitch and the receiver goes back
to idle) and then every ``divisor`` cycles: eight data bits, least significant first, and the stop bit. A high stop
bit delivers the byte on ``rx``; a low one pulses ``framing_error`` for a cycle, drops the byte and waits for the
line to go high (a break holds it there, so no byte is delivered until the line idles). The receiver cannot be
stalled: a byte that completes while ``rx`` still holds an untaken one is dropped and ``overrun`` pulses.
Detecting the start edge costs up to one cycle, so the sampling point of bit ``k`` (stop bit: ``k = 9``) lies between
``divisor // 2`` and ``divisor // 2 + 1`` cycles into the bit at the nominal rate; a rate error ``ε`` of the sender
shifts it by ``9.5 · divisor · ε`` cycles at the stop bit. At 10 cycles per bit that tolerates about ±4 %.

Transmitter. ``tx.ready`` is high while idle and in the last cycle of a stop bit; a byte taken is sent as a start
bit, eight data bits (least significant first) and a stop bit, ``divisor`` cycles each, from a register driving
``txd`` (high while idle): back-to-back bytes follow with no idle time.

Cost on the iCE40UP5K (``benchmarks/cost_table.py`` harness, nextpnr at 30 MHz): 81 logic cells at 3 Mbaud / 30 MHz,
Fmax 72 MHz.
"""

from amaranth import *
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["UART", "uart_divisor"]

#: the largest baud-rate error (relative) the constructor accepts
MAX_RATE_ERROR = 0.02


def uart_divisor(clk_freq, baud):
    """Clock cycles per bit for ``baud`` at ``clk_freq``: ``round(clk_freq / baud)``.

    Raises
    ------
    TypeError
        ``clk_freq`` or ``baud`` is not a number.
    ValueError
        Either is not positive, the divisor is below 4, or the resulting rate is off by more than 2 %.
    """
    for name, value in (("clk_freq", clk_freq), ("baud", baud)):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise TypeError(f"{name} must be a number, got {value!r}")
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value}")
    divisor = round(clk_freq / baud)
    if divisor < 4:
        raise ValueError(f"{clk_freq:g} Hz gives {clk_freq / baud:.2f} cycles per bit at {baud:g} baud; "
                         f"the UART needs at least 4")
    error = abs(clk_freq / divisor - baud) / baud
    if error > MAX_RATE_ERROR:
        raise ValueError(f"{baud:g} baud at {clk_freq:g} Hz: divisor {divisor} gives {clk_freq / divisor:.0f} baud, "
                         f"{error:.1%} off (at most {MAX_RATE_ERROR:.0%} allowed)")
    return divisor


class UART(wiring.Component):
    """8N1 UART receiver and transmitter (see the module notes).

    Parameters
    ----------
    clk_freq : int or float
        Clock frequency of the ``sync`` domain, Hz.
    baud : int or float
        Baud rate; ``clk_freq / baud`` rounds to the divisor (≥ 4, rate error ≤ 2 %).

    Attributes
    ----------
    rxd : In(1)
        The receive pin (asynchronous; idles high).
    txd : Out(1)
        The transmit pin (registered; idles high).
    rx : Out(stream.Signature(8))
        Received bytes. Cannot be stalled: see ``overrun``.
    tx : In(stream.Signature(8))
        Bytes to send.
    framing_error : Out(1)
        One-cycle pulse: a byte ended with a low stop bit (it is dropped).
    overrun : Out(1)
        One-cycle pulse: a byte was dropped because ``rx`` still held the previous one.
    """

    def __init__(self, clk_freq, baud=3_000_000):
        self._divisor = uart_divisor(clk_freq, baud)
        self._clk_freq, self._baud = clk_freq, baud
        super().__init__({
            "rxd": In(1, init=1),
            "txd": Out(1, init=1),
            "rx": Out(stream.Signature(8)),
            "tx": In(stream.Signature(8)),
            "framing_error": Out(1),
            "overrun": Out(1),
        })

    divisor = property(lambda self: self._divisor)
    clk_freq = property(lambda self: self._clk_freq)
    baud = property(lambda self: self._baud)

    def elaborate(self, platform):
        m = Module()
        divisor = self._divisor

        # -- receiver -----------------------------------------------------------------------------------------
        line = Signal(init=1)
        meta = Signal(init=1)
        m.d.sync += [meta.eq(self.rxd), line.eq(meta)]
        rx_timer = Signal(range(divisor))
        rx_bits = Signal(range(8))
        shift = Signal(8)
        tick = Signal()
        m.d.comb += tick.eq(rx_timer == 0)
        m.d.sync += rx_timer.eq(Mux(tick, divisor - 1, rx_timer - 1))

        with m.If(self.rx.ready):
            m.d.sync += self.rx.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                m.d.sync += rx_timer.eq(divisor // 2 - 1)
                with m.If(~line):
                    m.next = "START"
            with m.State("START"):
                with m.If(tick):
                    m.d.sync += rx_bits.eq(0)
                    with m.If(line):
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "DATA"
            with m.State("DATA"):
                with m.If(tick):
                    m.d.sync += [shift.eq(Cat(shift[1:], line)), rx_bits.eq(rx_bits + 1)]
                    with m.If(rx_bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(tick):
                    with m.If(~line):
                        m.d.comb += self.framing_error.eq(1)
                        m.next = "BREAK"
                    with m.Elif(self.rx.valid & ~self.rx.ready):
                        m.d.comb += self.overrun.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [self.rx.valid.eq(1), self.rx.payload.eq(shift)]
                        m.next = "IDLE"
            with m.State("BREAK"):
                with m.If(line):
                    m.next = "IDLE"

        # -- transmitter --------------------------------------------------------------------------------------
        tx_timer = Signal(range(divisor))
        tx_left = Signal(range(11))  # bits still to send, the one on txd included
        tx_shift = Signal(10, init=0x3FF)
        # ready while idle and in the stop bit's last cycle, so that back-to-back bytes leave no idle time
        m.d.comb += [self.txd.eq(tx_shift[0]),
                     self.tx.ready.eq((tx_left == 0) | ((tx_left == 1) & (tx_timer == 0)))]
        with m.If(self.tx.valid & self.tx.ready):
            m.d.sync += [tx_shift.eq(Cat(C(0, 1), self.tx.payload, C(1, 1))), tx_left.eq(10),
                         tx_timer.eq(divisor - 1)]
        with m.Elif(tx_left != 0):
            m.d.sync += tx_timer.eq(tx_timer - 1)
            with m.If(tx_timer == 0):
                m.d.sync += [tx_shift.eq(Cat(tx_shift[1:], C(1, 1))), tx_left.eq(tx_left - 1),
                             tx_timer.eq(divisor - 1)]
        return m

"""Board shells: what sits between a board's pins and the board-independent accelerator top.

A :class:`BoardShell` wraps an :class:`~mmfree.hw.top.AcceleratorTop` built with ``link="uart"``:

- the **clock**: the board's oscillator drives a PLL configured for the core clock (:func:`pll_config` computes the
  dividers for the family: iCE40 ``SB_PLL40_PAD``, ECP5 ``EHXPLLL``); the ``sync`` domain runs on its output;
- the **reset**: held while the PLL is not locked, released synchronously to the core clock (a 2-stage reset
  synchroniser), and asserted again whenever lock is lost;
- the **UART**: the pins go to the top's (its UART passes the receive pin through two flip-flops of its own);
- the **LEDs**, each given one role (:data:`LED_ROLES`): ``"heartbeat"`` blinks at 1 Hz while the clock runs,
  ``"busy"`` is lit while the accelerator is not idle, ``"status"`` is the heartbeat while idle and steadily lit while
  busy, ``"error"`` is lit while the PLL is not locked (the core is held in reset then) and otherwise blinks the
  top's ``error`` code, where it has one (:class:`~mmfree.host.commands.ErrorCode` of the last request's ERROR):
  ``n`` quarter-second flashes, then a 1.5 s pause, repeated until a request succeeds.

The PLL dividers are computed, not tabulated: :func:`pll_config` searches every divider setting within the family's
limits (input, PFD and VCO frequency ranges from the Lattice data sheets) and returns the one closest to the target,
preferring a VCO near the middle of its range; it raises ``ValueError`` when no setting lands within ``tolerance``.
"""

import dataclasses

from amaranth import *
from amaranth.lib import io, wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.wiring import Component, In, Out

from .checks import check_int

__all__ = ["FAMILIES", "LED_ROLES", "PllConfig", "BoardShell", "CodeBlinker", "pll_config"]

#: the FPGA families a shell can target
FAMILIES = ("ice40", "ecp5")
#: what an LED can show (see the module notes)
LED_ROLES = ("heartbeat", "busy", "status", "error")

#: iCE40 SB_PLL40 limits (iCE40 sysCLOCK PLL design and usage guide, TN1251), Hz; FEEDBACK_PATH "SIMPLE":
#: f_pfd = f_in / (DIVR + 1), f_vco = f_pfd · (DIVF + 1), f_out = f_vco / 2^DIVQ
_ICE40 = {"in": (10e6, 133e6), "pfd": (10e6, 133e6), "vco": (533e6, 1066e6), "out": (16e6, 275e6),
          "divr": range(16), "divf": range(128), "divq": range(1, 7)}
#: the SB_PLL40 loop filter setting for a PFD frequency: the first upper bound (Hz) above it, in order 1, 2, …
_ICE40_FILTER_BOUNDS = (17e6, 26e6, 44e6, 66e6, 101e6)
#: ECP5 EHXPLLL limits (ECP5 sysCLOCK PLL/DLL design and usage guide, TN1263), Hz; feedback from CLKOP:
#: f_pfd = f_in / CLKI_DIV, f_out = f_pfd · CLKFB_DIV, f_vco = f_out · CLKOP_DIV
_ECP5 = {"in": (8e6, 400e6), "pfd": (3.125e6, 400e6), "vco": (400e6, 800e6), "out": (3.125e6, 400e6),
         "clki_div": range(1, 129), "clkfb_div": range(1, 81), "clkop_div": range(1, 129)}


@dataclasses.dataclass(frozen=True)
class PllConfig:
    """A PLL setting: input, achieved output, VCO, and the primitive's divider parameters.

    Attributes
    ----------
    family : {"ice40", "ecp5"}
    in_hz : int
        The reference (the board's oscillator), Hz.
    target_hz : int
        The requested core clock, Hz.
    out_hz : float
        The clock the setting produces, Hz.
    vco_hz : float
        The VCO frequency, Hz.
    params : dict
        The divider parameters of the primitive (``DIVR``/``DIVF``/``DIVQ``/``FILTER_RANGE`` on iCE40,
        ``CLKI_DIV``/``CLKFB_DIV``/``CLKOP_DIV``/``CLKOP_CPHASE`` on ECP5).
    """

    family: str
    in_hz: int
    target_hz: int
    out_hz: float
    vco_hz: float
    params: dict

    @property
    def error_ppm(self):
        """Deviation of :attr:`out_hz` from :attr:`target_hz`, parts per million."""
        return (self.out_hz - self.target_hz) / self.target_hz * 1e6


def _within(value, bounds):
    return bounds[0] <= value <= bounds[1]


def _ice40_candidates(in_hz):
    for divr in _ICE40["divr"]:
        pfd = in_hz / (divr + 1)
        if not _within(pfd, _ICE40["pfd"]):
            continue
        for divf in _ICE40["divf"]:
            vco = pfd * (divf + 1)
            if not _within(vco, _ICE40["vco"]):
                continue
            for divq in _ICE40["divq"]:
                out = vco / (1 << divq)
                if _within(out, _ICE40["out"]):
                    filter_range = next((index + 1 for index, bound in enumerate(_ICE40_FILTER_BOUNDS)
                                         if pfd < bound), len(_ICE40_FILTER_BOUNDS) + 1)
                    yield out, vco, {"DIVR": divr, "DIVF": divf, "DIVQ": divq, "FILTER_RANGE": filter_range}


def _ecp5_candidates(in_hz):
    for clki_div in _ECP5["clki_div"]:
        pfd = in_hz / clki_div
        if not _within(pfd, _ECP5["pfd"]):
            continue
        for clkfb_div in _ECP5["clkfb_div"]:
            out = pfd * clkfb_div
            if not _within(out, _ECP5["out"]):
                continue
            for clkop_div in _ECP5["clkop_div"]:
                vco = out * clkop_div
                if _within(vco, _ECP5["vco"]):
                    # the coarse phase that places CLKOP at 0° (what Lattice's tools write for it)
                    yield out, vco, {"CLKI_DIV": clki_div, "CLKFB_DIV": clkfb_div, "CLKOP_DIV": clkop_div,
                                     "CLKOP_CPHASE": (clkop_div - 1) // 2}


def pll_config(family, in_hz, target_hz, tolerance=0.005):
    """The PLL setting of ``family`` closest to ``target_hz`` from an ``in_hz`` reference.

    Parameters
    ----------
    family : {"ice40", "ecp5"}
    in_hz : int
        The reference clock, Hz.
    target_hz : int
        The wanted output clock, Hz.
    tolerance : float
        The largest relative deviation of the achieved clock from ``target_hz`` accepted (0.005: 0.5 %).

    Returns
    -------
    PllConfig
        Ties in deviation go to the VCO frequency nearest the middle of the VCO's range.

    Raises
    ------
    ValueError
        The family is unknown, the reference is outside the PLL's input range, or no setting comes within
        ``tolerance`` of the target (the message names the closest one).
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    check_int("in_hz", in_hz, 1)
    check_int("target_hz", target_hz, 1)
    if not isinstance(tolerance, (int, float)) or not 0 <= tolerance < 1:
        raise ValueError(f"tolerance must be a fraction in [0, 1), got {tolerance!r}")
    limits, candidates = (_ICE40, _ice40_candidates) if family == "ice40" else (_ECP5, _ecp5_candidates)
    if not _within(in_hz, limits["in"]):
        raise ValueError(f"the {family} PLL takes a {limits['in'][0] / 1e6:g}–{limits['in'][1] / 1e6:g} MHz "
                         f"reference, not {in_hz / 1e6:g} MHz")
    middle = sum(limits["vco"]) / 2
    best = min(candidates(in_hz), key=lambda c: (abs(c[0] - target_hz), abs(c[1] - middle)), default=None)
    if best is None or abs(best[0] - target_hz) > tolerance * target_hz:
        closest = f"; the closest is {best[0] / 1e6:.4f} MHz" if best else ""
        raise ValueError(f"the {family} PLL cannot make {target_hz / 1e6:g} MHz from {in_hz / 1e6:g} MHz within "
                         f"{tolerance:.2%} (outputs {limits['out'][0] / 1e6:g}–{limits['out'][1] / 1e6:g} MHz)"
                         f"{closest}")
    out, vco, params = best
    return PllConfig(family, in_hz, target_hz, out, vco, params)


def _check_top(top):
    """``top`` if it has the UART form of :class:`~mmfree.hw.top.AcceleratorTop`'s signature."""
    if not isinstance(top, Component):
        raise TypeError(f"top must be an Amaranth Component, got {top!r}")
    members = top.signature.members
    for name, flow in (("uart_rx", In), ("uart_tx", Out), ("idle", Out)):
        if name not in members or members[name].flow != flow or not members[name].is_port \
                or Shape.cast(members[name].shape) != unsigned(1):
            raise TypeError(f"top must have a 1-bit {flow.name.lower()}put port {name!r} (an AcceleratorTop with "
                            f"link=\"uart\"), got signature {top.signature!r}")
    return top


class CodeBlinker(wiring.Component):
    """Blinks an error code on an LED: ``n`` flashes of one tick on, one tick off, then a pause of six ticks, over
    and over while the code ``n`` is not 0.

    Parameters
    ----------
    code_bits : int
        Width of the code.

    Attributes
    ----------
    code : In(code_bits)
    tick : In(1)
        Advances the pattern by one step (the shell: every quarter second).
    led : Out(1)
    """

    def __init__(self, code_bits=4):
        check_int("code_bits", code_bits, 1)
        super().__init__({"code": In(code_bits), "tick": In(1), "led": Out(1)})

    def elaborate(self, platform):
        m = Module()
        step = Signal(range(2 * (1 << len(self.code)) + 6))
        with m.If(self.tick):
            m.d.sync += step.eq(Mux(step >= 2 * self.code + 5, 0, step + 1))
        m.d.comb += self.led.eq((self.code != 0) & (step < 2 * self.code) & ~step[0])
        return m


class BoardShell(Elaboratable):
    """A board's toplevel: PLL, reset, UART pins and LEDs around an accelerator top.

    Parameters
    ----------
    top : Component (amaranth.lib.wiring)
        The accelerator (:class:`~mmfree.hw.top.AcceleratorTop` with ``link="uart"``): 1-bit ports ``uart_rx``
        (in), ``uart_tx`` and ``idle`` (out), clocked by ``sync``. Its clock must be ``pll.out_hz``.
    pll : PllConfig
        From :func:`pll_config`; ``pll.in_hz`` must be the frequency of the platform's default clock.
    leds : tuple of str
        The role of LED 0, 1, … (``platform.request("led", i)``), each one of :data:`LED_ROLES`.

    Notes
    -----
    Elaborates only on a platform: it requests the default clock, ``uart`` 0 and the LEDs with ``dir="-"`` and
    puts :class:`amaranth.lib.io.Buffer` on them (none on the iCE40 clock: ``SB_PLL40_PAD`` takes the pad itself).
    """

    def __init__(self, top, pll, leds):
        self.top = _check_top(top)
        if not isinstance(pll, PllConfig):
            raise TypeError(f"pll must be a PllConfig (see pll_config), got {pll!r}")
        if not isinstance(leds, tuple) or any(role not in LED_ROLES for role in leds):
            raise ValueError(f"leds must be a tuple of roles from {LED_ROLES}, got {leds!r}")
        self.pll, self.leds = pll, leds

    def _pll(self, m, platform, clk, lock):
        """The PLL instance: the default clock in, ``clk`` and ``lock`` out."""
        params = {f"p_{name}": value for name, value in self.pll.params.items()}
        if self.pll.family == "ice40":
            pad = platform.request(platform.default_clk, dir="-")
            m.submodules.pll = Instance(
                "SB_PLL40_PAD", p_FEEDBACK_PATH="SIMPLE", p_PLLOUT_SELECT="GENCLK", **params,
                i_PACKAGEPIN=pad.io, i_RESETB=1, i_BYPASS=0, o_PLLOUTGLOBAL=clk, o_LOCK=lock)
        else:
            m.submodules.clk_buf = reference = io.Buffer("i", platform.request(platform.default_clk, dir="-"))
            m.submodules.pll = Instance(
                "EHXPLLL", p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED", p_CLKOP_FPHASE=0,
                p_FEEDBK_PATH="CLKOP", **params,
                a_FREQUENCY_PIN_CLKI=f"{self.pll.in_hz / 1e6:g}", a_FREQUENCY_PIN_CLKOP=f"{self.pll.out_hz / 1e6:g}",
                i_CLKI=reference.i, i_CLKFB=clk, i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=0,
                i_PHASESTEP=0, i_PHASELOADREG=0, i_PLLWAKESYNC=0, i_ENCLKOP=0, o_CLKOP=clk, o_LOCK=lock)

    def elaborate(self, platform):
        if platform is None:
            raise TypeError("BoardShell elaborates only on a board platform (it instantiates the PLL and pins)")
        m = Module()
        m.domains.sync = sync = ClockDomain("sync")
        lock = Signal()
        self._pll(m, platform, sync.clk, lock)
        m.submodules.reset = ResetSynchronizer(~lock, domain="sync")

        m.submodules.top = top = self.top
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx_buf = rx = io.Buffer("i", uart.rx)
        m.submodules.tx_buf = tx = io.Buffer("o", uart.tx)
        m.d.comb += [top.uart_rx.eq(rx.i), tx.o.eq(top.uart_tx)]

        # quarter-second ticks: the heartbeat toggles every second one, the error code's flashes step on each
        quarter_period = max(round(self.pll.out_hz) // 4, 2)
        quarter, tick, heartbeat = Signal(range(quarter_period)), Signal(), Signal()
        m.d.comb += tick.eq(quarter == quarter_period - 1)
        m.d.sync += quarter.eq(Mux(tick, 0, quarter + 1))
        half = Signal()
        with m.If(tick):
            m.d.sync += half.eq(~half)
            with m.If(half):
                m.d.sync += heartbeat.eq(~heartbeat)
        error = Signal()
        if "error" in top.signature.members:
            m.submodules.blink = blink = CodeBlinker(len(top.error))
            m.d.comb += [blink.code.eq(top.error), blink.tick.eq(tick), error.eq(blink.led)]
        roles = {"heartbeat": heartbeat, "busy": ~top.idle, "status": heartbeat | ~top.idle, "error": ~lock | error}
        for index, role in enumerate(self.leds):
            m.submodules[f"led_{index}"] = led = io.Buffer("o", platform.request("led", index, dir="-"))
            m.d.comb += led.o.eq(roles[role])
        return m

"""Platform primitives behind one interface each: a behavioural model in simulation, the vendor cell on hardware.

- :class:`Mac16`: a 16×16 multiplier with an optional 32-bit accumulator. iCE40: ``SB_MAC16`` (the UP5K has 8);
  ECP5: ``MULT18X18D`` (the accumulator in logic).
- :class:`SinglePortRam`: 16 K × 16 bit with a nibble write mask. iCE40: ``SB_SPRAM256KA`` (the UP5K has 4); ECP5: a
  :class:`~amaranth.lib.memory.Memory` that Yosys maps to 16 ``DP16KD``.
- :class:`BlockRam`: a simple dual-port RAM (one write port, one read port, one clock), any width and depth. iCE40:
  ``SB_RAM40_4K`` instances, tiled at the best aspect ratio; ECP5: a :class:`~amaranth.lib.memory.Memory` that
  Yosys maps to ``DP16KD``/``PDPW16KD`` with no logic around it. :func:`ebr_blocks` counts the blocks.
- :func:`replica`: a register that synthesis keeps apart from its twins (a copy of a widely loaded register near a
  group of its loads). ECP5: ``FD1S3AX`` cells; elsewhere a plain register.

Which implementation a wrapper elaborates to is its ``impl`` argument, or, when that is ``None``, the platform it
is elaborated for: no platform (simulation) → ``"model"``, an iCE40 platform (``SiliconBluePlatform``) → ``"ice40"``,
an ECP5 platform (``LatticePlatform``, family ``ecp5``) → ``"ecp5"``. Name ``impl`` explicitly to synthesize a unit
for a family without a board platform (the cost table does) or to simulate the vendor cell models.

Every model matches its cell cycle for cycle at the ports, including what the cell leaves undefined: where a cell's
output is undefined (``SB_SPRAM256KA`` after a write or in standby), the model drives junk from an LFSR, so a design
that relies on it fails its bench; memories that the bitstream cannot initialise start with random contents in
simulation (the bench runner randomises every memory whose initial contents are all zero). The benches
(:mod:`mmfree.sim.benches.primitives`) run the same checks on the models and on Yosys's simulation models of the
iCE40 cells (``SB_MAC16``, ``SB_SPRAM256KA``, ``SB_RAM40_4K``), which follow Lattice's technology library.

iCE40 builds that map multipliers to DSPs (``synth_ice40 -dsp``) must apply :data:`ICE40_YOSYS_GUARD`
(:func:`build_overrides` does, for an Amaranth platform), or Yosys rewrites the instantiated ``SB_MAC16``.
"""

import math

from amaranth import *
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from .checks import check_int

__all__ = ["IMPLS", "ICE40_YOSYS_GUARD", "YOSYS_HIDE_VIEW_FIELDS", "check_impl", "resolve_impl", "build_overrides",
           "ebr_blocks", "replica", "Mac16", "SinglePortRam", "BlockRam"]

#: the implementations a wrapper elaborates to
IMPLS = ("model", "ice40", "ecp5")


def check_impl(impl):
    """``impl`` if it is None or one of :data:`IMPLS` (a component's constructor argument), else ``ValueError``."""
    if impl is not None and impl not in IMPLS:
        raise ValueError(f"impl must be None or one of {list(IMPLS)}, got {impl!r}")
    return impl


def resolve_impl(impl, platform, primitive=None):
    """The implementation to elaborate: ``impl`` if given, else the one that ``platform`` calls for.

    Parameters
    ----------
    impl : {"model", "ice40", "ecp5"} or None
    platform : amaranth.build.Platform or None
        What ``elaborate`` was given; ``None`` (simulation) means ``"model"``.
    primitive : str, optional
        Names the cell in the error message.

    Raises
    ------
    NotImplementedError
        The platform's family has no implementation here.
    """
    if impl is not None:
        return impl
    if platform is None:
        return "model"
    from amaranth.vendor import LatticePlatform, SiliconBluePlatform
    if isinstance(platform, SiliconBluePlatform):
        return "ice40"
    if isinstance(platform, LatticePlatform) and platform.family == "ecp5":
        return "ecp5"
    raise NotImplementedError(f"{primitive or 'this primitive'} has no implementation for platform "
                              f"{type(platform).__name__}; pass impl='model' to use the behavioural model")


def _check_ice40_device(platform, cell):
    device = getattr(platform, "device", None)
    if device is not None and not device.startswith("iCE40UP"):
        raise NotImplementedError(f"{cell} exists on the iCE40 UltraPlus devices only, not on {device}")


def _lfsr16(m, domain):
    """A 16-bit maximal-length LFSR (x^16 + x^14 + x^13 + x^11 + 1) stepping every cycle: junk for undefined data."""
    state = Signal(16, init=0xACE1)
    feedback = state[0] ^ state[2] ^ state[3] ^ state[5]
    m.d[domain] += state.eq(Cat(state[1:], feedback))
    return state


# --- Yosys -dsp guard -----------------------------------------------------------------------------------------------

_SB_MAC16_PARAMETERS = [
    "NEG_TRIGGER", "C_REG", "A_REG", "B_REG", "D_REG", "TOP_8x8_MULT_REG", "BOT_8x8_MULT_REG",
    "PIPELINE_16x16_MULT_REG1", "PIPELINE_16x16_MULT_REG2", "TOPOUTPUT_SELECT", "TOPADDSUB_LOWERINPUT",
    "TOPADDSUB_UPPERINPUT", "TOPADDSUB_CARRYSELECT", "BOTOUTPUT_SELECT", "BOTADDSUB_LOWERINPUT",
    "BOTADDSUB_UPPERINPUT", "BOTADDSUB_CARRYSELECT", "MODE_8x8", "A_SIGNED", "B_SIGNED",
]

#: Keeps instantiated ``SB_MAC16`` cells intact through ``synth_ice40 -dsp``.
#:
#: ``-dsp`` (which maps the ``*`` of the other units to ``SB_MAC16``) runs Yosys's ``ice40_dsp`` pass, which
#: rewrites *every* ``SB_MAC16`` in the design from what it packs around it: on a cell instantiated with its own
#: registers it clears ``A_REG``/``B_REG`` and the pipeline registers and ties ``CLK`` and ``CE`` to 0, silently
#: (seen with Yosys 0.70). The guard renames ``SB_MAC16`` cells to a black box before synthesis (all of them are
#: instances then: inference comes later) and back after it. Keys: ``verilog`` (the black box, a file to read
#: before the design), ``script_after_read`` and ``script_after_synth`` (Yosys commands; Amaranth's iCE40 platform
#: has overrides of these names). :func:`build_overrides` packages it for ``platform.prepare``.
ICE40_YOSYS_GUARD = {
    "verilog": "(* blackbox *)\nmodule MMFREE_SB_MAC16 (\n"
               "  input CLK, CE, input [15:0] C, A, B, D,\n"
               "  input AHOLD, BHOLD, CHOLD, DHOLD, IRSTTOP, IRSTBOT, ORSTTOP, ORSTBOT,\n"
               "  input OLOADTOP, OLOADBOT, ADDSUBTOP, ADDSUBBOT, OHOLDTOP, OHOLDBOT, CI, ACCUMCI, SIGNEXTIN,\n"
               "  output [31:0] O, output CO, ACCUMCO, SIGNEXTOUT\n);\n"
               + "".join(f"  parameter {name} = 0;\n" for name in _SB_MAC16_PARAMETERS)
               + "endmodule\n",
    "script_after_read": "chtype -map SB_MAC16 MMFREE_SB_MAC16",
    "script_after_synth": "chtype -map MMFREE_SB_MAC16 SB_MAC16",
}


#: Yosys commands to run on an Amaranth design after reading it. A ``lib.data`` view leaves wires named ``name[0]``,
#: ``name[1]``, … beside its own wire ``name``; ABC9 names the bits of ``name`` the same way when it maps them back,
#: and Yosys asserts (``count_id(wire->name) == 0``, YosysHQ/yosys#4349; seen in ``synth_ecp5`` of the ULX3S core
#: with Yosys 0.64 and 0.69). Hiding those names (as ``$``-names) leaves the netlist as it is.
YOSYS_HIDE_VIEW_FIELDS = "rename -hide w:*]"


def build_overrides(platform, family):
    """Build options for a design with these primitives on ``family`` (``"ice40"`` or ``"ecp5"``): the view fields'
    names hidden (:data:`YOSYS_HIDE_VIEW_FIELDS`); on iCE40 also ``synth_ice40 -dsp`` and the SB_MAC16 guard, whose
    black box it adds to ``platform`` (``add_file``).

    Returns the overrides for ``platform.prepare(design, **overrides)`` (or ``build``).
    """
    if family != "ice40":
        return {"script_after_read": YOSYS_HIDE_VIEW_FIELDS}
    platform.add_file("mmfree_sb_mac16_bb.v", ICE40_YOSYS_GUARD["verilog"])
    return {
        "synth_opts": "-dsp",
        "script_after_read": f"{YOSYS_HIDE_VIEW_FIELDS}\n{ICE40_YOSYS_GUARD['script_after_read']}",
        "script_after_synth": ICE40_YOSYS_GUARD["script_after_synth"],
    }


def replica(m, value, *, name, impl=None, platform=None):
    """``value`` a cycle later, in a register of its own that Yosys does not merge with its twins.

    Copies of a register, each beside a group of its loads, shorten routes that one register driving all of them
    would stretch across the die. Yosys's ``opt_merge`` folds identical flip-flops back into one; it leaves vendor
    cells alone, so on the ECP5 each bit is an ``FD1S3AX`` (a D flip-flop without enable or reset, 0 at
    configuration). Elsewhere, and in simulation, the copy is a plain register without reset, like those cells.

    Parameters
    ----------
    m : Module
    value : Value
    name : str
        The register's name.
    impl, platform
        As for the other primitives (:func:`resolve_impl`).

    Returns
    -------
    Signal
        Of ``len(value)`` bits, in the ``sync`` domain.
    """
    held = Signal(len(value), name=name, reset_less=True)
    if resolve_impl(check_impl(impl), platform, "replica") != "ecp5":
        m.d.sync += held.eq(value)
        return held
    for bit in range(len(value)):
        m.submodules[f"{name}_{bit}"] = Instance("FD1S3AX", p_GSR="DISABLED", i_D=value[bit], i_CK=ClockSignal(),
                                                 o_Q=held[bit])
    return held


# --- Mac16 -----------------------------------------------------------------------------------------------------------

class Mac16(wiring.Component):
    """A 16×16 multiplier, signed or unsigned per operand, with an optional 32-bit accumulator.

    Pipeline (every register advances only on cycles with ``en`` high, the cell's ``CE``):
    ``a``/``b`` → input registers → product register → [accumulator] → ``o``. ``o`` reflects a pair of operands
    :attr:`latency` enabled clock edges after they were presented: 2 for the product, 3 with ``accumulate``; one
    fewer without the input registers (``input_registers=False``: for operands that come from registers already).

    Without ``accumulate``, ``o`` is the exact product: 32 bits hold every product of two 16-bit operands, mixed
    signedness included (−32768 · 65535 > −2³¹).

    With ``accumulate``, ``o`` is a 32-bit accumulator that wraps modulo 2³² (the cell's; Σx² over long vectors
    needs more, see docs/numerics.md). A pair presented with ``load`` high does not add its product: the accumulator
    restarts at ``init`` in its place (``SB_MAC16``'s ``OLOAD``, which loads the constant from the ``C``/``D``
    inputs), so a sum of n products takes n + 1 enabled cycles: a load, then the n pairs. ``load`` is delayed in
    logic (2 flip-flops) to line up with its pair. The accumulator is not reset by the domain's reset and starts
    undefined: load it before the first sum.

    Mapping. ``"ice40"``: one ``SB_MAC16`` with ``A_REG = B_REG = 1``, ``PIPELINE_16x16_MULT_REG2 = 1``,
    ``A_SIGNED``/``B_SIGNED`` from the operands; the product from the ``H`` register (``TOPOUTPUT_SELECT =
    BOTOUTPUT_SELECT = 3``), or the accumulator from the output registers (``*OUTPUT_SELECT = 1``,
    ``*ADDSUB_LOWERINPUT = 2``, ``*ADDSUB_UPPERINPUT = 0``, ``TOPADDSUB_CARRYSELECT = 2``: one 32-bit adder across
    both halves). ``"ecp5"``: one ``MULT18X18D`` (operands sign- or zero-extended to 18 bits, ``SIGNEDA = SIGNEDB =
    1``, input and pipeline registers on ``CLK0``/``CE0``), the accumulator a 32-bit adder in logic.

    Synthesis with ``synth_ice40 -dsp`` (which the other units' multipliers need) must use
    :data:`ICE40_YOSYS_GUARD` (:func:`build_overrides`): Yosys's DSP packer otherwise rewrites this cell and
    disconnects its clock.

    Parameters
    ----------
    a_signed, b_signed : bool
        Whether ``a`` and ``b`` are two's complement.
    accumulate : bool
        Accumulate the products instead of emitting each.
    input_registers : bool
        Register the operands in the cell (``A_REG``/``B_REG``, ``REG_INPUTA``/``REG_INPUTB``).
    init : int
        The value a ``load`` restarts the accumulator at (a rounding constant, or 0); only with ``accumulate``.
    domain : str
        Clock domain.
    impl : {"model", "ice40", "ecp5"} or None
        Implementation; ``None`` chooses by the platform (see the module's documentation).

    Attributes
    ----------
    a : In(signed(16) or unsigned(16))
    b : In(signed(16) or unsigned(16))
    en : In(1, init=1)
        Clock enable of the whole pipeline.
    load : In(1)
        With ``accumulate`` only: restart the sum at ``init`` in place of this pair's product.
    o : Out(signed(32) if either operand is signed else unsigned(32))
        The product, or the accumulator.
    """

    def __init__(self, *, a_signed=True, b_signed=True, accumulate=False, input_registers=True, init=0,
                 domain="sync", impl=None):
        self._a_signed, self._b_signed = bool(a_signed), bool(b_signed)
        self._accumulate = bool(accumulate)
        self._input_registers = bool(input_registers)
        if not isinstance(init, int):
            raise TypeError(f"init must be an int, got {init!r}")
        if init and not accumulate:
            raise ValueError("init is the accumulator's restart value; it needs accumulate=True")
        if not -2**31 <= init < 2**32:
            raise ValueError(f"init must fit in 32 bits, got {init}")
        self._init = init % 2**32
        self._domain = domain
        self._impl = check_impl(impl)
        members = {
            "a": In(signed(16) if a_signed else unsigned(16)),
            "b": In(signed(16) if b_signed else unsigned(16)),
            "en": In(1, init=1),
            "o": Out(signed(32) if a_signed or b_signed else unsigned(32)),
        }
        if accumulate:
            members["load"] = In(1)
        super().__init__(members)

    @property
    def accumulate(self):
        return self._accumulate

    @property
    def latency(self):
        """Enabled clock edges from presenting ``a``, ``b`` (and ``load``) until ``o`` reflects them."""
        return 1 + self._input_registers + self._accumulate

    def elaborate(self, platform):
        impl = resolve_impl(self._impl, platform, "Mac16")
        m = Module()
        domain = self._domain
        load = Signal(reset_less=True)
        if self._accumulate:  # line load up with its pair's product, at the accumulator
            load_1 = Signal(reset_less=True)
            with m.If(self.en):
                m.d[domain] += load.eq(load_1 if self._input_registers else self.load)
                if self._input_registers:
                    m.d[domain] += load_1.eq(self.load)
        if impl == "ice40":
            _check_ice40_device(platform, "SB_MAC16")
            self._elaborate_ice40(m, load)
        elif impl == "ecp5":
            self._elaborate_ecp5(m, load)
        else:
            a, b = self.a, self.b
            if self._input_registers:
                a, b = Signal.like(self.a, reset_less=True), Signal.like(self.b, reset_less=True)
                with m.If(self.en):
                    m.d[domain] += [a.eq(self.a), b.eq(self.b)]
            product = Signal(self.o.shape(), reset_less=True)
            with m.If(self.en):
                m.d[domain] += product.eq(a * b)
            self._accumulator(m, product, load)
        return m

    def _accumulator(self, m, product, load):
        if not self._accumulate:
            m.d.comb += self.o.eq(product)
            return
        acc = Signal(32, reset_less=True)
        with m.If(self.en):
            m.d[self._domain] += acc.eq(Mux(load, self._init, acc + product))
        m.d.comb += self.o.eq(acc)

    def _elaborate_ice40(self, m, load):
        if self._accumulate:
            outputs = dict(p_TOPOUTPUT_SELECT=1, p_BOTOUTPUT_SELECT=1,
                           p_TOPADDSUB_LOWERINPUT=2, p_BOTADDSUB_LOWERINPUT=2,
                           p_TOPADDSUB_UPPERINPUT=0, p_BOTADDSUB_UPPERINPUT=0,
                           p_TOPADDSUB_CARRYSELECT=2, p_BOTADDSUB_CARRYSELECT=0)
        else:
            outputs = dict(p_TOPOUTPUT_SELECT=3, p_BOTOUTPUT_SELECT=3,
                           p_TOPADDSUB_LOWERINPUT=0, p_BOTADDSUB_LOWERINPUT=0,
                           p_TOPADDSUB_UPPERINPUT=0, p_BOTADDSUB_UPPERINPUT=0,
                           p_TOPADDSUB_CARRYSELECT=0, p_BOTADDSUB_CARRYSELECT=0)
        o = Signal(32)
        m.submodules.mac = Instance(
            "SB_MAC16",
            p_NEG_TRIGGER=0, p_C_REG=0, p_A_REG=int(self._input_registers), p_B_REG=int(self._input_registers),
            p_D_REG=0,
            p_TOP_8x8_MULT_REG=0, p_BOT_8x8_MULT_REG=0,
            p_PIPELINE_16x16_MULT_REG1=0, p_PIPELINE_16x16_MULT_REG2=1,
            p_MODE_8x8=0, p_A_SIGNED=int(self._a_signed), p_B_SIGNED=int(self._b_signed),
            **outputs,
            i_CLK=ClockSignal(self._domain), i_CE=self.en,
            i_A=self.a.as_unsigned(), i_B=self.b.as_unsigned(),
            i_C=Const(self._init >> 16, 16), i_D=Const(self._init & 0xFFFF, 16),
            i_AHOLD=0, i_BHOLD=0, i_CHOLD=0, i_DHOLD=0,
            i_IRSTTOP=0, i_IRSTBOT=0, i_ORSTTOP=0, i_ORSTBOT=0,
            i_OLOADTOP=load, i_OLOADBOT=load,
            i_ADDSUBTOP=0, i_ADDSUBBOT=0, i_OHOLDTOP=0, i_OHOLDBOT=0,
            i_CI=0, i_ACCUMCI=0, i_SIGNEXTIN=0,
            o_O=o,
        )
        m.d.comb += self.o.eq(o)

    def _elaborate_ecp5(self, m, load):
        a18, b18, p = Signal(18), Signal(18), Signal(36)
        m.d.comb += [a18.eq(self.a), b18.eq(self.b)]  # sign- or zero-extends by the operand's shape
        ports = {}
        # unused pins stay unconnected, as in Yosys's own MULT18X18D mapping: nextpnr cannot route a constant to
        # some of them (CLK1-3, CE1-3, RST*, SRIA/SRIB)
        for name, value in (("A", a18), ("B", b18), ("C", Const(0, 18))):
            ports.update({f"i_{name}{k}": value[k] for k in range(18)})
        ports.update({f"o_P{k}": p[k] for k in range(36)})
        m.submodules.mult = Instance(
            "MULT18X18D",
            **{f"p_REG_INPUT{x}_{key}": value for x in "AB"
               for key, value in (("CLK", "CLK0" if self._input_registers else "NONE"), ("CE", "CE0"),
                                  ("RST", "RST0"))},
            p_REG_INPUTC_CLK="NONE",
            p_REG_PIPELINE_CLK="CLK0", p_REG_PIPELINE_CE="CE0", p_REG_PIPELINE_RST="RST0",
            p_REG_OUTPUT_CLK="NONE",
            p_CLK0_DIV="ENABLED", p_CLK1_DIV="ENABLED", p_CLK2_DIV="ENABLED", p_CLK3_DIV="ENABLED",
            p_HIGHSPEED_CLK="NONE", p_GSR="DISABLED", p_CAS_MATCH_REG="FALSE",
            p_SOURCEB_MODE="B_SHIFT", p_MULT_BYPASS="DISABLED", p_RESETMODE="SYNC",
            i_SIGNEDA=1, i_SIGNEDB=1, i_SOURCEA=0, i_SOURCEB=0,
            i_CLK0=ClockSignal(self._domain), i_CE0=self.en,
            **ports,
        )
        product = Signal(self.o.shape())
        m.d.comb += product.eq(p[:32])
        self._accumulator(m, product, load)


# --- SinglePortRam ---------------------------------------------------------------------------------------------------

class SinglePortRam(wiring.Component):
    """16 K words × 16 bit, one port, with a write mask per nibble: the iCE40 UltraPlus ``SB_SPRAM256KA`` (other
    depths where no such cell is used).

    Per rising clock edge (the cell's truth table):

    ======================  ==========================================================  ===========================
    inputs                  memory                                                      ``rdata`` after the edge
    ======================  ==========================================================  ===========================
    ``sleep``               kept                                                        0 (at once, while asleep)
    ``standby``             kept                                                        undefined
    ``cs & we``             nibble k of ``mem[addr]`` ← ``wdata`` where ``wmask[k]``    undefined
    ``cs & ~we``            kept                                                        ``mem[addr]``
    ``~cs``                 kept                                                        held
    ======================  ==========================================================  ===========================

    Read latency is 1 cycle; there is no read-during-write (a write cycle does not read). ``rdata`` is undefined
    after a write or standby cycle until the next read: the model drives junk from an LFSR there.

    The contents are undefined at power-up, and the bitstream cannot initialise them: the model's contents start
    random in simulation. Load them (over the link) before reading.

    ``sleep`` and ``standby`` map to the cell's ``SLEEP`` and ``STANDBY`` (the cell needs wake-up time after
    either before the next access, which the model does not enforce); ``POWEROFF`` is tied high (powered: contents
    kept). ``"ecp5"`` has no such cell: a :class:`~amaranth.lib.memory.Memory` with 4-bit write granularity, which
    Yosys maps to 16 ``DP16KD`` (4 K × 4 each); there ``rdata`` holds through write cycles (one of the behaviours
    that "undefined" allows) and ``sleep`` only zeroes ``rdata``.

    Parameters
    ----------
    depth : int
        Words: :data:`DEPTH` (16 K, the cell's) for ``"ice40"``; any for the others (``"ecp5"``: ``depth / 4096``
        ``DP16KD`` per nibble, rounded up).
    domain : str
        Clock domain.
    impl : {"model", "ice40", "ecp5"} or None
        Implementation; ``None`` chooses by the platform (see the module's documentation).

    Attributes
    ----------
    addr : In(range(depth))
        Word address (``ADDRESS``).
    wdata : In(16)
        Write data (``DATAIN``).
    wmask : In(4)
        Bit k enables the write of nibble k, bits ``[4k+3:4k]`` (``MASKWREN``).
    we : In(1)
        Write, else read (``WREN``).
    cs : In(1)
        Access this cycle (``CHIPSELECT``).
    standby, sleep : In(1)
        Low-power modes (``STANDBY``, ``SLEEP``); contents are kept.
    rdata : Out(16)
        Read data (``DATAOUT``).
    """

    DEPTH = 16384
    WIDTH = 16

    def __init__(self, depth=DEPTH, *, domain="sync", impl=None):
        check_int("depth", depth, 1)
        self._domain = domain
        self._impl = check_impl(impl)
        self.depth = depth
        self._check_depth(self._impl)
        super().__init__({
            "addr": In(range(depth)),
            "wdata": In(16),
            "wmask": In(4),
            "we": In(1),
            "cs": In(1),
            "standby": In(1),
            "sleep": In(1),
            "rdata": Out(16),
        })

    def _check_depth(self, impl):
        """The cell has :data:`DEPTH` words: another depth needs an implementation without it."""
        if impl == "ice40" and self.depth != self.DEPTH:
            raise ValueError(f"an SB_SPRAM256KA holds {self.DEPTH} words; depth {self.depth} needs impl 'model' or "
                             f"'ecp5'")

    def elaborate(self, platform):
        impl = resolve_impl(self._impl, platform, "SinglePortRam")
        m = Module()
        if impl == "ice40":
            self._check_depth(impl)
            _check_ice40_device(platform, "SB_SPRAM256KA")
            m.submodules.spram = Instance(
                "SB_SPRAM256KA",
                i_ADDRESS=self.addr, i_DATAIN=self.wdata, i_MASKWREN=self.wmask, i_WREN=self.we,
                i_CHIPSELECT=self.cs, i_CLOCK=ClockSignal(self._domain),
                i_STANDBY=self.standby, i_SLEEP=self.sleep, i_POWEROFF=1,
                o_DATAOUT=self.rdata,
            )
            return m

        domain = self._domain
        # Amaranth starts a memory without init at zeros; the bench runner turns that into random words. The read
        # is an asynchronous port and a register, for the reason BlockRam gives.
        m.submodules.mem = mem = memory.Memory(shape=16, depth=self.depth, init=[], attrs={"no_rw_check": 1})
        write = mem.write_port(granularity=4, domain=domain)
        read = mem.read_port(domain="comb")
        active = self.cs & ~self.standby & ~self.sleep
        data = Signal(16, reset_less=True)
        m.d.comb += [
            write.addr.eq(self.addr),
            write.data.eq(self.wdata),
            write.en.eq(Mux(active & self.we, self.wmask, 0)),
            read.addr.eq(self.addr),
        ]
        with m.If(active & ~self.we):
            m.d[domain] += data.eq(read.data)
        if impl == "ecp5":
            m.d.comb += self.rdata.eq(Mux(self.sleep, 0, data))
            return m

        # where the cell's output is undefined (from power-up to the first read, too), the model's is junk
        junk, zero = Signal(init=1), Signal()
        with m.If(self.sleep):
            m.d[domain] += [zero.eq(1), junk.eq(0)]
        with m.Elif(self.standby | (self.cs & self.we)):
            m.d[domain] += [zero.eq(0), junk.eq(1)]
        with m.Elif(self.cs):
            m.d[domain] += [zero.eq(0), junk.eq(0)]
        lfsr = _lfsr16(m, domain)
        with m.If(self.sleep | zero):
            m.d.comb += self.rdata.eq(0)
        with m.Elif(junk):
            m.d.comb += self.rdata.eq(lfsr)
        with m.Else():
            m.d.comb += self.rdata.eq(data)
        return m


# --- BlockRam --------------------------------------------------------------------------------------------------------

# (depth, width) of each aspect ratio of a block
_EBR_MODES = {
    # SB_RAM40_4K: 4 Kbit; READ_MODE/WRITE_MODE 0, 1, 2, 3
    "ice40": [(256, 16), (512, 8), (1024, 4), (2048, 2)],
    # DP16KD: 18 Kbit (16 Kbit at widths 1, 2, 4); PDPW16KD: 512 × 36 simple dual port
    "ecp5": [(16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36)],
}


def _ice40_modes(width, depth, granularity):
    """(blocks, mode, block depth, block width) of each SB_RAM40_4K mode that can hold the memory, best first.

    Ties go to the fewest rows of blocks (the read multiplexer). Only mode 0 (256 × 16) has a bit write mask; a
    narrower mode can serve a write granularity that is a multiple of its width (each block column then lies
    within one granule and takes its enable).
    """
    options = []
    for mode, (block_depth, block_width) in enumerate(_EBR_MODES["ice40"]):
        if mode and granularity != width and granularity % block_width:
            continue
        rows = math.ceil(depth / block_depth)
        options.append((rows * math.ceil(width / block_width), rows, mode, block_depth, block_width))
    return [(blocks, mode, block_depth, block_width) for blocks, _, mode, block_depth, block_width in sorted(options)]


def ebr_blocks(width, depth, family, granularity=None):
    """Block RAMs that a ``width`` × ``depth`` simple dual-port memory takes, at the best aspect ratio.

    Parameters
    ----------
    width, depth : int
    family : {"ice40", "ecp5"}
    granularity : int, optional
        Write granularity (iCE40: see :class:`BlockRam`); ``None``: whole words.

    Returns
    -------
    int
        ``SB_RAM40_4K`` (iCE40, as :class:`BlockRam` tiles them) or ``DP16KD``/``PDPW16KD`` (ECP5, as Yosys maps
        a whole-word memory).
    """
    if family == "ice40":
        return _ice40_modes(width, depth, granularity or width)[0][0]
    if family == "ecp5":
        return min(math.ceil(depth / mode_depth) * math.ceil(width / mode_width)
                   for mode_depth, mode_width in _EBR_MODES[family])
    raise ValueError(f"family must be one of {list(_EBR_MODES)}, got {family!r}")


class BlockRam(wiring.Component):
    """A simple dual-port block RAM: one write port and one read port on one clock, read latency 1.

    Per rising clock edge: ``mem[w_addr]`` takes ``w_data`` in the granules (of ``granularity`` bits) that
    ``w_en`` enables; where ``r_en``, ``r_data`` takes ``mem[r_addr]``, else it holds. A read of the address
    written in the same cycle is undefined on the blocks (the model returns the old word): do not rely on it.

    Mapping. ``"ice40"``: ``SB_RAM40_4K`` instances, tiled at the aspect ratio that takes the fewest blocks
    (:func:`ebr_blocks`; ties go to the fewest rows of blocks, which need the least read multiplexing): ``READ_MODE =
    WRITE_MODE`` 0…3 for 256 × 16, 512 × 8, 1024 × 4, 2048 × 2, data on the bits the technology library assigns in
    each mode, ``init`` in ``INIT_0``…``INIT_F``; a memory deeper than one block reads every row and picks one with
    a registered row index (a few LUTs per data bit). Only mode 0 has a bit write mask: a granularity that is not a
    multiple of the mode's width forces mode 0. ``"model"`` and ``"ecp5"``: a :class:`~amaranth.lib.memory.Memory`
    with an asynchronous read port and an output register without reset, marked ``no_rw_check``, which Yosys
    maps to ``DP16KD``/``PDPW16KD`` with no logic around them. (The same memory costs about ``width`` LUTs and a
    flip-flop per memory on iCE40, where Yosys emulates the register's zero initial value, or ~45 LUTs and
    flip-flops per block with Amaranth's synchronous read port, where it emulates read-first: hence the
    instances.)

    ``init`` is loaded by the bitstream on both families. Without ``init`` the contents start random in
    simulation (and zero on hardware).

    Parameters
    ----------
    width, depth : int
        Word width and number of words.
    init : sequence of int, optional
        Initial contents (the rest zero); ``None``: undefined (random in simulation).
    granularity : int, optional
        Bits per write-enable bit; ``None``: whole words.
    domain : str
        Clock domain.
    impl : {"model", "ice40", "ecp5"} or None
        Implementation; ``None`` chooses by the platform (see the module's documentation).

    Attributes
    ----------
    w_addr : In(range(depth))
    w_data : In(width)
    w_en : In(width // granularity)
    r_addr : In(range(depth))
    r_en : In(1, init=1)
    r_data : Out(width)
    """

    def __init__(self, *, width, depth, init=None, granularity=None, domain="sync", impl=None):
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive int, got {width!r}")
        if not isinstance(depth, int) or depth < 2:
            raise ValueError(f"depth must be an int of at least 2, got {depth!r}")
        if granularity is None:
            granularity = width
        if not isinstance(granularity, int) or granularity < 1 or width % granularity:
            raise ValueError(f"granularity must divide width {width}, got {granularity!r}")
        if init is not None:
            init = [int(word) for word in init]
            if len(init) > depth:
                raise ValueError(f"init has {len(init)} words, more than depth {depth}")
            if any(not 0 <= word < 2**width for word in init):
                raise ValueError(f"init words must fit in {width} unsigned bits")
        self._width, self._depth, self._granularity = width, depth, granularity
        self._init = init
        self._domain = domain
        self._impl = check_impl(impl)
        super().__init__({
            "w_addr": In(range(depth)),
            "w_data": In(width),
            "w_en": In(width // granularity),
            "r_addr": In(range(depth)),
            "r_en": In(1, init=1),
            "r_data": Out(width),
        })

    @property
    def width(self):
        return self._width

    @property
    def depth(self):
        return self._depth

    @property
    def granularity(self):
        return self._granularity

    def blocks(self, family):
        """Block RAMs this memory takes on ``family`` (``"ice40"`` or ``"ecp5"``): :func:`ebr_blocks`."""
        return ebr_blocks(self._width, self._depth, family, self._granularity)

    def elaborate(self, platform):
        impl = resolve_impl(self._impl, platform, "BlockRam")
        m = Module()
        if impl == "ice40":
            self._elaborate_ice40(m)
            return m
        # An asynchronous read port and a register, not a synchronous read port: Yosys merges the register into
        # the port (memory_dff), and only there does it honour no_rw_check, which leaves a read of the address being
        # written undefined instead of emulating read-first in logic.
        m.submodules.mem = mem = memory.Memory(shape=self._width, depth=self._depth, init=self._init or [],
                                               attrs={"no_rw_check": 1})
        write = mem.write_port(domain=self._domain,
                               granularity=None if self._granularity == self._width else self._granularity)
        read = mem.read_port(domain="comb")
        m.d.comb += [
            write.addr.eq(self.w_addr),
            write.data.eq(self.w_data),
            write.en.eq(self.w_en),
            read.addr.eq(self.r_addr),
        ]
        data = Signal(self._width, reset_less=True)  # a block's output register has no reset
        with m.If(self.r_en):
            m.d[self._domain] += data.eq(read.data)
        m.d.comb += self.r_data.eq(data)
        return m

    def _elaborate_ice40(self, m):
        _, mode, block_depth, block_width = _ice40_modes(self._width, self._depth, self._granularity)[0]
        group = 16 // block_width  # words of the mode per 16-bit row of the block
        rows = math.ceil(self._depth / block_depth)
        cols = math.ceil(self._width / block_width)
        addr_bits = 8 + mode  # address bits a block of this mode decodes
        # data bit i of a block: WDATA/RDATA bit 2i (mode 1), 4i + 1 (mode 2), 8i + 3 (mode 3), i (mode 0)
        lanes = [i if mode == 0 else (2 * i, 4 * i + 1, 8 * i + 3)[mode - 1] for i in range(block_width)]
        clk = ClockSignal(self._domain)
        w_data = Cat(self.w_data, Const(0, cols * block_width - self._width))
        w_bits = Cat(self.w_en[bit // self._granularity] for bit in range(self._width))  # enable per data bit
        row_of = lambda addr: addr[addr_bits:]
        r_addr, w_addr = Signal(11), Signal(11)
        m.d.comb += [r_addr.eq(self.r_addr[:addr_bits]), w_addr.eq(self.w_addr[:addr_bits])]
        read_data = []
        for row in range(rows):
            w_row = (row_of(self.w_addr) == row) if rows > 1 else C(1, 1)
            row_data = []
            for col in range(cols):
                low, high = col * block_width, min((col + 1) * block_width, self._width)
                wdata, rdata, mask = Signal(16), Signal(16), Signal(16, init=0xFFFF)
                for i in range(high - low):
                    m.d.comb += wdata[lanes[i]].eq(w_data[low + i])
                if self._granularity == self._width:
                    m.d.comb += mask.eq(0)
                    we = w_row & self.w_en
                elif mode == 0:
                    m.d.comb += mask.eq(~Cat(w_bits[low:high], Const(0, 16 - (high - low))))
                    we = w_row & w_bits[low:high].any()
                else:  # the column lies within one granule
                    we = w_row & self.w_en[low // self._granularity]
                m.submodules[f"ebr_{row}_{col}"] = Instance(
                    "SB_RAM40_4K",
                    p_READ_MODE=mode, p_WRITE_MODE=mode,
                    **self._ice40_init(row, low, high, mode, block_depth, group, lanes),
                    o_RDATA=rdata,
                    i_RCLK=clk, i_RCLKE=self.r_en, i_RE=1,
                    i_RADDR=r_addr,
                    i_WCLK=clk, i_WCLKE=1, i_WE=we,
                    i_WADDR=w_addr,
                    i_MASK=mask, i_WDATA=wdata,
                )
                row_data.append(Cat(rdata[lanes[i]] for i in range(high - low)))
            read_data.append(Cat(row_data))
        if rows == 1:
            m.d.comb += self.r_data.eq(read_data[0])
            return
        row = Signal(range(rows), reset_less=True)  # the row the blocks' output registers hold
        with m.If(self.r_en):
            m.d[self._domain] += row.eq(row_of(self.r_addr))
        m.d.comb += self.r_data.eq(Array(read_data)[row])

    def _ice40_init(self, row, low, high, mode, block_depth, group, lanes):
        """INIT_0…INIT_F of the block holding words ``row·block_depth…`` and data bits ``low…high-1``.

        As the technology library's model lays a block out: 256 rows of 16 bits, ``INIT_j[16i+15:16i]`` is row
        ``16j + i``; word ``w`` of a mode-``mode`` block sits in row ``w % 256``, its data bit ``b`` at bit
        ``lanes[b] - lanes[0] + w // 256`` (the group member the upper address bits select).
        """
        bits = 0
        if self._init:
            words = self._init[row * block_depth:(row + 1) * block_depth]
            for w, word in enumerate(words):
                value = (word >> low) & ((1 << (high - low)) - 1)
                for b in range(high - low):
                    if value >> b & 1:
                        position = b if mode == 0 else group * b + w // 256
                        bits |= 1 << (16 * (w % 256) + position)
        return {f"p_INIT_{j:X}": Const((bits >> (256 * j)) & ((1 << 256) - 1), 256) for j in range(16)}

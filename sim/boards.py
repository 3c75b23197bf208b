"""The virtual boards by name: each board's accelerator top (:class:`~mmfree.hw.top.AcceleratorTop`) in Verilator,
as ``sim://<board>`` URLs open them (:func:`mmfree.host.transport.open_transport` uses :data:`VIRTUAL_BOARDS` when
it is given no other registry).

A virtual board reports an all-zero gateware hash in INFO: the hash of a board's design is a property of its
bitstream, and the bitstream manifests (``bitstreams/<board>/``) supply it where a bitstream is built. Emitting the
design only to hash it would double the start-up of every ``sim://`` session.
"""

import dataclasses

from ..host.commands import HASH_BYTES
from ..host.compiler import CORES, CoreParams
from ..host.golden import Formats

__all__ = ["Board", "BOARDS", "VIRTUAL_BOARDS", "VIRTUAL_BOARD_HASH"]

#: the gateware hash every virtual board reports
VIRTUAL_BOARD_HASH = bytes(HASH_BYTES)


@dataclasses.dataclass(frozen=True)
class Board:
    """A board's accelerator: its core, formats, clock and UART rate.

    Attributes
    ----------
    name : str
    core : mmfree.host.compiler.CoreParams
    formats : mmfree.host.golden.Formats
    clk_hz : int
        The configured clock, Hz.
    baud : int
        The host link's UART rate.
    """

    name: str
    core: CoreParams
    formats: Formats
    clk_hz: int
    baud: int

    def top(self, link="fast"):
        """The board's :class:`~mmfree.hw.top.AcceleratorTop` with the behavioural memories and multipliers, its
        link on byte streams (``"fast"``) or on UART pins (``"uart"``)."""
        from ..hw.top import AcceleratorTop

        return AcceleratorTop(self.core, self.formats, self.clk_hz, self.baud, VIRTUAL_BOARD_HASH, link=link,
                              impl="model")

    def virtual_board(self, link="fast", *, dump=None):
        """The board's :class:`~mmfree.sim.virtual_board.VirtualBoard` (``link`` as for :meth:`top`; ``dump``: built
        to write switching activity, ``"saif"``, or a waveform, ``"vcd"``)."""
        from .virtual_board import VirtualBoard

        top = self.top(link)
        return VirtualBoard(top, name=f"{self.name}_{link}", clocks_per_bit=top.clocks_per_bit, dump=dump)


#: the boards by name
BOARDS = {
    "icebreaker": Board("icebreaker", CORES["icebreaker"], Formats(), clk_hz=30_000_000, baud=3_000_000),
    # 60 MHz: the clock the ULX3S design meets with the 10 % margin (docs/builds.md); 3 Mbaud is 20 cycles per bit
    "ulx3s-85f": Board("ulx3s-85f", CORES["ulx3s-85f"], Formats(), clk_hz=60_000_000, baud=3_000_000),
    # a virtual board only: the core for real checkpoint shapes, its weights streamed over the link
    "large": Board("large", CORES["large"], Formats(), clk_hz=100_000_000, baud=3_000_000),
}

#: board name → factory of its virtual board (fast link), the default registry of ``sim://`` URLs
VIRTUAL_BOARDS = {name: board.virtual_board for name, board in BOARDS.items()}

"""Trit decoders: one packed weight byte in, one group of 4 or 5 signed trits out.

The packing formats (the contract; :mod:`mmfree.host.packing` writes them):

- ``"2bit"``: 4 trits per byte, trit ``k`` in bits ``[2k+1:2k]``; code ``0b00`` → 0, ``0b01`` → +1, ``0b11`` → −1.
  The valid codes already are the trits in 2-bit two's complement, so decoding only has to catch ``0b10``.
- ``"base3"``: 5 trits per byte, ``byte = Σ_{k=0..4} (t_k + 1)·3^k`` (trit 0 is the least significant digit).

Invalid input is flagged, never dropped: a ``0b10`` code decodes as trit 0 (the other trits of the byte decode
normally) and a base-3 byte 243–255 decodes as five zeros; either sets ``error`` in that group.
"""

from amaranth import *
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..host.packing import TRITS_PER_BYTE

__all__ = ["DECODER_TABLES", "TRITS_PER_BYTE", "trit_group_layout", "decoder_latency", "TritDecoder"]

#: where a base-3 decoder's table may live
DECODER_TABLES = ("block", "logic")


def trit_group_layout(trits):
    """Layout of one decoded group.

    Parameters
    ----------
    trits : int
        Trits per group (4 or 5).

    Returns
    -------
    data.StructLayout
        ``trits``: ``data.ArrayLayout(signed(2), trits)``, trit ``k`` at bits ``[2k+1:2k]``, each −1, 0 or +1;
        ``error``: 1 bit above them, set when the byte held an invalid code.
    """
    return data.StructLayout({"trits": data.ArrayLayout(signed(2), trits), "error": 1})


def decoder_latency(registered=False):
    """Cycles from a byte's transfer to its group's ``o.valid`` in a :class:`TritDecoder` (``o`` not stalled)."""
    return 2 if registered else 1


def _base3_group(byte):
    if byte >= 3**5:
        return {"trits": [0] * 5, "error": 1}
    return {"trits": [byte // 3**k % 3 - 1 for k in range(5)], "error": 0}


class TritDecoder(wiring.Component):
    """Decodes a stream of packed weight bytes into a stream of trit groups, one group per byte.

    One register stage (two with ``registered``), full throughput (a byte per cycle) and back-pressure:
    ``i.ready`` is ``~o.valid | o.ready``, a combinational path from ``o.ready``, and the stages all advance when
    it is high; ``o.valid`` and ``o.payload`` come from registers and hold while ``o.valid & ~o.ready``.

    The base-3 decode is a 256-entry ROM whose synchronous read port is that register stage (its read enable is
    the back-pressure). Yosys maps it on iCE40 to one ``SB_RAM40_4K``, 2 LUT4s and 1 flip-flop. As logic, the same
    table (a ``Switch`` or an asynchronous read port, under ``synth_ice40 -nobram``) takes 123 LUT4s and 12
    flip-flops, and a divide-by-3 chain 54 LUT4s and 48 carry cells, so one EBR of the UP5K's 30 is the cheaper
    price; where block RAM is scarcer than logic (a wide array on the ECP5) ``table="logic"`` puts the ROM in LUTs.
    The 2-bit decode is logic: 9 LUT4s and 10 flip-flops.

    Parameters
    ----------
    fmt : {"2bit", "base3"}
        Packing format of the input bytes.
    registered : bool
        The decoded group passes a second register (of fabric flip-flops): latency 2 instead of 1. For clocks the
        ROM's read path does not reach: an ECP5 DP16KD's clock-to-output is 5.6 ns, and Yosys does not use its
        output register.
    table : {"block", "logic"}
        Where the base-3 table lives: a block RAM, or LUTs (Yosys's ``rom_style``). Ignored for ``"2bit"``.

    Attributes
    ----------
    i : In(stream.Signature(8))
        Packed bytes.
    o : Out(stream.Signature(trit_group_layout(n)))
        Decoded groups, ``n = TRITS_PER_BYTE[fmt]``; trit ``k`` of a group is trit ``k`` of its byte.
    """

    def __init__(self, fmt, *, registered=False, table="block"):
        if not isinstance(registered, bool):
            raise TypeError(f"registered must be a bool, got {registered!r}")
        if table not in DECODER_TABLES:
            raise ValueError(f"table must be one of {DECODER_TABLES}, got {table!r}")
        if not isinstance(fmt, str):
            raise TypeError(f"fmt must be a str, got {fmt!r}")
        if fmt not in TRITS_PER_BYTE:
            raise ValueError(f"unknown packing format {fmt!r}; expected one of {list(TRITS_PER_BYTE)}")
        self._fmt, self._registered, self._table = fmt, registered, table
        super().__init__({
            "i": In(stream.Signature(8)),
            "o": Out(stream.Signature(trit_group_layout(TRITS_PER_BYTE[fmt]))),
        })

    @property
    def fmt(self):
        return self._fmt

    @property
    def latency(self):
        """Cycles from a byte's transfer on ``i`` to its group's ``o.valid`` (:func:`decoder_latency`)."""
        return decoder_latency(self._registered)

    def elaborate(self, platform):
        m = Module()

        load = Signal()  # every stage takes its input (byte, group or bubble) at the next edge
        m.d.comb += [
            load.eq(~self.o.valid | self.o.ready),
            self.i.ready.eq(load),
        ]

        group = Signal(self.o.payload.shape())  # the first stage's decoded group
        if self._fmt == "2bit":
            codes = [self.i.payload[2 * k:2 * k + 2] for k in range(4)]
            with m.If(load):
                m.d.sync += [
                    group.trits.eq(Cat(Cat(code[0], code[1] & code[0]) for code in codes)),
                    group.error.eq(Cat(code[1] & ~code[0] for code in codes).any()),
                ]
        else:
            m.submodules.rom = rom = memory.Memory(shape=trit_group_layout(5), depth=256,
                                                   init=[_base3_group(byte) for byte in range(256)],
                                                   attrs={"rom_style": self._table})
            port = rom.read_port()
            m.d.comb += [
                port.addr.eq(self.i.payload),
                port.en.eq(load),
                group.eq(port.data),
            ]

        if self._registered:
            valid = Signal()  # the first stage holds a group
            with m.If(load):
                m.d.sync += [
                    valid.eq(self.i.valid),
                    self.o.valid.eq(valid),
                    self.o.payload.eq(group),
                ]
        else:
            with m.If(load):
                m.d.sync += self.o.valid.eq(self.i.valid)
            m.d.comb += self.o.payload.eq(group)

        return m

# amaranth: UnusedElaboratable=no

"""The activation quantizer against ``GoldenModel.quantize``, alone and feeding the ternary matvec, in Verilator;
its constructor's checks."""

import pytest
from amaranth import Module, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from mmfree.hw.quantizer import Quantizer, command_layout, input_layout, output_layout
from mmfree.hw.ternary_matvec import TernaryMatVec
from mmfree.sim.runner import run_bench

BENCH = "mmfree.sim.benches.quantizer"


class QuantizedMatVec(wiring.Component):
    """Bench top: a quantizer with ``lanes = cols`` whose ``o`` feeds the matvec's ``a`` (its ``last`` is dropped:
    the weights frame the row groups)."""

    def __init__(self, rows, cols, max_len, p_width):
        self.quantizer = Quantizer(p_width, lanes=cols)
        self.matvec = TernaryMatVec(rows, cols, max_len)
        super().__init__({
            "cmd": In(self.quantizer.cmd.signature.flip()),
            "i": In(self.quantizer.i.signature.flip()),
            "w": In(self.matvec.w.signature.flip()),
            "o": Out(self.matvec.o.signature),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.quantizer = quantizer = self.quantizer
        m.submodules.matvec = matvec = self.matvec
        wiring.connect(m, wiring.flipped(self.cmd), quantizer.cmd)
        wiring.connect(m, wiring.flipped(self.i), quantizer.i)
        wiring.connect(m, wiring.flipped(self.w), matvec.w)
        wiring.connect(m, matvec.o, wiring.flipped(self.o))
        m.d.comb += [
            matvec.a.valid.eq(quantizer.o.valid),
            matvec.a.payload.eq(quantizer.o.payload.q),
            quantizer.o.ready.eq(matvec.a.ready),
        ]
        return m


@pytest.mark.parametrize("p_width, lanes, quant_bits, recip_bits, vectors", [
    (60, 1, 16, 16, 1200),  # the golden model's widest p (o_proj, down_proj), one element per cycle
    (24, 3, 16, 16, 600),   # a narrow p, three lanes (padding lanes in the last beat)
    (40, 2, 12, 14, 400),   # other golden formats (quant_bits ≠ recip_bits)
    (63, 1, 24, 16, 400),   # a 24-bit normalized magnitude; the widest p the int64 golden model rounds
])
def test_bench(p_width, lanes, quant_bits, recip_bits, vectors, tmp_path):
    run_bench(Quantizer(p_width, lanes, quant_bits=quant_bits, recip_bits=recip_bits), name="quantizer",
              test_module=BENCH, run_dir=tmp_path,
              params={"p_width": p_width, "lanes": lanes, "quant_bits": quant_bits, "recip_bits": recip_bits,
                      "vectors": vectors})


def test_chain_bench(tmp_path):
    rows, cols, max_len, p_width = 8, 5, 1024, 48
    run_bench(QuantizedMatVec(rows, cols, max_len, p_width), name="quantized_matvec", test_module=BENCH,
              params={"mode": "chain", "p_width": p_width, "lanes": cols, "quant_bits": 16, "recip_bits": 16,
                      "rows": rows, "cols": cols, "max_len": max_len, "ops": 300},
              run_dir=tmp_path)


def test_signature():
    unit = Quantizer(60, 3)
    assert (unit.p_width, unit.lanes, unit.quant_bits, unit.recip_bits, unit.recip_shift) == (60, 3, 16, 16, 25)
    members = unit.signature.members
    assert [members[name].flow for name in ("cmd", "i", "o")] == [wiring.In, wiring.In, wiring.Out]
    assert unit.cmd.payload.shape() == command_layout(60) == data.StructLayout({
        "shift": signed(7), "recip": unsigned(17)})
    assert unit.i.payload.shape() == input_layout(60, 3) == data.StructLayout({
        "p": data.ArrayLayout(signed(60), 3), "last": 1})
    assert unit.o.payload.shape() == output_layout(3) == data.StructLayout({
        "q": data.ArrayLayout(signed(8), 3), "last": 1})


@pytest.mark.parametrize("p_width, quant_bits", [(60, 16), (24, 16), (2, 16), (100, 8)])
def test_shift_field_covers_every_golden_k(p_width, quant_bits):
    shape = Quantizer(p_width, quant_bits=quant_bits).cmd.payload.shift.shape()
    low, high = -quant_bits, p_width - quant_bits  # k of an all-zero vector .. k of |p| = 2^(p_width-1)
    assert shape.signed and -(1 << (shape.width - 1)) <= low and high < 1 << (shape.width - 1)


@pytest.mark.parametrize("args, kwargs, error, message", [
    (("60",), {}, TypeError, "p_width must be an int, got '60'"),
    ((1,), {}, ValueError, "p_width must be at least 2, got 1"),
    ((60, 0), {}, ValueError, "lanes must be at least 1, got 0"),
    ((60, True), {}, TypeError, "lanes must be an int, got True"),
    ((60,), {"quant_bits": 0}, ValueError, "quant_bits must be between 1 and 32, got 0"),
    ((60,), {"quant_bits": 16.0}, TypeError, "quant_bits must be an int, got 16.0"),
    ((60,), {"recip_bits": 6}, ValueError, "recip_bits must be between 7 and 32, got 6"),
    ((60,), {"recip_bits": 33}, ValueError, "recip_bits must be between 7 and 32, got 33"),
])
def test_rejects_bad_arguments(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        Quantizer(*args, **kwargs)

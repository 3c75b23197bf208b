# amaranth: UnusedElaboratable=no

"""Bench of :class:`mmfree.hw.multiplier.MultiplierPool`: products of random and extreme operands against Python.

:class:`Products` (the design under test) holds a pool in a pipeline of a given period: products of operand pairs
of given shapes, all at stage 0, then one product of the first product's top bits by the first operand, made
where the first product is ready (a request at a later stage, as the vector unit's chain of products makes).
Elements enter every ``period`` cycles at most, with random gaps and back-pressure; every product is compared with
Python's integers.

Parameters (:func:`mmfree.sim.benches.params`): ``shapes`` (list of ``[[width, signed], [width, signed]]``),
``period``, ``count`` (elements).
"""

import random

import cocotb
from amaranth import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from mmfree.hw.multiplier import MultiplierPool
from mmfree.hw.sigmoid import Pipeline

from . import params
from .streams import Sink, Source, reset


def _shape(width, is_signed):
    return (signed if is_signed else unsigned)(width)


class Products(wiring.Component):
    """``i``: operand pairs of ``shapes``; ``o``: their products, then ``(p_0 >> CHAIN_SHIFT) · a_0``.

    Parameters
    ----------
    shapes : list of ((width, signed), (width, signed))
    period : int
        Cycles per element (the pipeline's period).
    lut_bits : int
        The pool's ``lut_bits``.
    """

    #: bits of the first product dropped before the chained product
    CHAIN_SHIFT = 8

    def __init__(self, shapes, *, period=1, lut_bits=4):
        self.shapes = [(_shape(*x), _shape(*y)) for x, y in shapes]
        self.period, self.lut_bits = period, lut_bits
        self.latency = self.multipliers = None
        first = self.shapes[0]
        top = first[0].width + first[1].width - self.CHAIN_SHIFT
        chain = signed(top + first[0].width) if first[0].signed or first[1].signed else unsigned(
            top + first[0].width)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout(
                {f"{side}{k}": shape for k, pair in enumerate(self.shapes) for side, shape in zip("ab", pair)}))),
            "o": Out(stream.Signature(data.StructLayout(
                {**{f"p{k}": (signed if x.signed or y.signed else unsigned)(x.width + y.width)
                    for k, (x, y) in enumerate(self.shapes)}, "chain": chain}))),
        })

    def elaborate(self, platform):
        m = Module()
        en = Signal()
        pipe = Pipeline(m, en, period=self.period)
        pool = MultiplierPool(m, pipe, lut_bits=self.lut_bits)
        valid = pipe.comb(self.i.valid, name="valid", reset=True)
        a0 = pipe.comb(self.i.payload.a0, name="a0")
        products = [pool.product(self.i.payload[f"a{k}"], self.i.payload[f"b{k}"], name=f"p{k}")
                    for k in range(len(self.shapes))]
        pipe.reach(products[0])
        chain = pool.product(products[0] >> self.CHAIN_SHIFT, pipe(a0), name="chain")
        for product in products:
            pipe.reach(product)
        pipe.reach(chain)
        pipe.next()
        self.latency = pipe.stage
        pool.finish()
        self.multipliers = len(pool.multipliers)
        m.d.comb += [
            self.o.valid.eq(pipe(valid) & pipe.present()),
            *(self.o.payload[f"p{k}"].eq(pipe(product)) for k, product in enumerate(products)),
            self.o.payload.chain.eq(pipe(chain)),
            en.eq(~self.o.valid | self.o.ready),
            self.i.ready.eq(en & pipe.present(0)),
        ]
        pipe.finish()
        return m


def _range(shape):
    return (-(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1) if shape.signed else (0, (1 << shape.width) - 1)


P = params()


@cocotb.test(timeout_time=100, timeout_unit="ms")
async def random_and_extreme_products(dut):
    """Products of extreme and random operands, every element checked, under gaps and back-pressure."""
    await reset(dut)
    unit = Products(P["shapes"], period=P.get("period", 1))
    in_layout, out_layout = unit.i.payload.shape(), unit.o.payload.shape()
    elements = []
    for _ in range(P.get("count", 400)):
        element = {}
        for k, pair in enumerate(unit.shapes):
            for side, shape in zip("ab", pair):
                low, high = _range(shape)
                element[f"{side}{k}"] = random.choice([low, high, 0, 1, -1 if shape.signed else high - 1,
                                                       random.randint(low, high), random.randint(low, high)])
        elements.append(element)

    def pack(element):
        raw = 0
        for name, field in in_layout:
            raw |= (element[name] & ((1 << field.width) - 1)) << field.offset
        return raw

    source = Source(dut, "i", dut.clk, p_gap=0.3, junk_bits=in_layout.size)
    sink = Sink(dut, "o", dut.clk, p_stall=0.3)
    sending = cocotb.start_soon(source.send([pack(e) for e in elements]))
    received = await sink.receive(len(elements), max_cycles=20 * len(elements) * unit.period + 100)
    await sending
    for index, (element, raw) in enumerate(zip(elements, received)):
        for k in range(len(unit.shapes)):
            want = element[f"a{k}"] * element[f"b{k}"]
            got = _get(raw, out_layout, f"p{k}")
            assert got == want, f"element {index}: p{k} = {element[f'a{k}']} · {element[f'b{k}']}: got {got}"
        want = ((element["a0"] * element["b0"]) >> Products.CHAIN_SHIFT) * element["a0"]
        got = _get(raw, out_layout, "chain")
        assert got == want, f"element {index}: chained product: got {got}, expected {want}"


def _get(raw, layout, name):
    field = layout[name]
    value = raw >> field.offset & ((1 << field.width) - 1)
    return value - (1 << field.width) if field.shape.signed and value >> (field.width - 1) else value

# amaranth: UnusedElaboratable=no

"""The field reader against ``pack_words``, in Verilator; and its constructor's checks."""

import pytest
from amaranth import signed
from amaranth.lib import data

from mmfree.hw.field_reader import FieldReader
from mmfree.sim.runner import run_bench

BENCH = "mmfree.sim.benches.field_reader"

CONFIGS = {
    # name: (the reader's arguments, the memory's read latency)
    # the core's formats, two fields per beat, through the weight memory's latency (and its throughput)
    "pairs": ({"widths": (16, 20), "lanes": 2}, 6),
    "pairs_exact_buffered": ({"widths": (16, 20, 7, 32, 40), "lanes": 2, "exact_reads": True, "buffered": True}, 1),
    "pairs_exact": ({"widths": (16, 3, 31), "lanes": 2, "exact_reads": True}, 6),
    "single": ({"widths": (16, 20, 63, 1)}, 1),
    "single_exact_buffered": ({"widths": (16, 20, 33, 63), "exact_reads": True, "buffered": True}, 6),
    # four fields per beat: the core's formats (20-bit fields one per beat), a word per cycle of 16-bit fields;
    # fields straddling words; exact reads of partial beats
    "quads": ({"widths": (16, 20, 8), "lanes": 4}, 6),
    "quads_exact": ({"widths": (16, 3, 13), "lanes": 4, "exact_reads": True}, 6),
    "quads_exact_buffered": ({"widths": (16, 1, 11), "lanes": 4, "exact_reads": True, "buffered": True}, 1),
}


@pytest.mark.parametrize("config", list(CONFIGS))
def test_bench(config, tmp_path):
    reader, latency = CONFIGS[config]
    run_bench(FieldReader(**reader), name="field_reader", test_module=BENCH, params={**reader, "latency": latency},
              run_dir=tmp_path)


def test_interface():
    for lanes in (1, 2, 4):
        start = ["addr", "count", "width", "signed", *(["wide"] if lanes > 1 else [])]
        reader = FieldReader((16, 13), lanes=lanes)
        assert [name for name, _ in reader.start.payload.shape()] == start
        assert reader.o.payload.shape() == data.StructLayout({"data": data.ArrayLayout(signed(17), lanes), "last": 1})


@pytest.mark.parametrize("args, kwargs, error, match", [
    ((16,), {"lanes": 3}, ValueError, "lanes must be 1, 2 or 4"),
    ((16,), {"lanes": 0}, ValueError, "lanes must be 1, 2 or 4"),
    ((16,), {"lanes": 8}, ValueError, "lanes must be 1, 2 or 4"),
    ((16,), {"lanes": 2.0}, TypeError, "lanes"),
    ((16,), {"lanes": True}, TypeError, "lanes"),
    ((65,), {}, ValueError, "at most 64 bits"),
    ((0,), {}, ValueError, "width"),
    ([16], {}, TypeError, "widths"),
    ((), {}, TypeError, "widths"),
    ((16,), {"addr_bits": 0}, ValueError, "addr_bits"),
    ((16,), {"count_bits": 0}, ValueError, "count_bits"),
    ((16,), {"exact_reads": 1}, TypeError, "exact_reads"),
    ((16,), {"buffered": 1}, TypeError, "buffered"),
])
def test_rejects_bad_parameters(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        FieldReader(args, **kwargs)

# amaranth: UnusedElaboratable=no

"""The UART PHY in Verilator (rate errors, framing errors, overrun, bit timing, loopback) and its constructor's
checks."""

import pytest
from amaranth.lib import wiring

from mmfree.hw.uart import UART, uart_divisor
from mmfree.sim.runner import run_bench

BENCH = "mmfree.sim.benches.uart"


@pytest.mark.parametrize("clk_freq, baud, divisor", [
    (30e6, 3e6, 10),    # the iCEBreaker link: 3 Mbaud on the FT2232H at 30 MHz
    (12e6, 1e6, 12),    # 1 Mbaud from the 12 MHz oscillator
    (12e6, 3e6, 4),     # the smallest divisor
    (48e6, 115200, 417),
])
def test_bench(clk_freq, baud, divisor, tmp_path):
    uart = UART(clk_freq, baud)
    assert uart.divisor == divisor
    run_bench(uart, name="uart", test_module=BENCH, run_dir=tmp_path,
              params={"divisor": divisor, "bytes": 300 if divisor < 100 else 30})


def test_signature():
    uart = UART(30_000_000)
    assert (uart.clk_freq, uart.baud, uart.divisor) == (30_000_000, 3_000_000, 10)
    members = uart.signature.members
    assert [members[name].flow for name in ("rxd", "txd", "rx", "tx", "framing_error", "overrun")] == \
        [wiring.In, wiring.Out, wiring.Out, wiring.In, wiring.Out, wiring.Out]
    assert members["rxd"].init == 1 and members["txd"].init == 1


def test_divisor():
    assert uart_divisor(30e6, 3e6) == 10 and uart_divisor(12e6, 1e6) == 12
    assert uart_divisor(12e6, 115200) == 104  # 0.16 % fast


@pytest.mark.parametrize("args, error, message", [
    ((12e6, 4e6), ValueError, r"3.00 cycles per bit at 4e\+06 baud; the UART needs at least 4"),
    ((10e6, 2.2e6), ValueError, r"divisor 5 gives 2000000 baud, 9.1% off \(at most 2% allowed\)"),
    ((0, 1e6), ValueError, "clk_freq must be positive, got 0"),
    (("30e6", 3e6), TypeError, "clk_freq must be a number, got '30e6'"),
    ((30e6, None), TypeError, "baud must be a number, got None"),
    ((30e6, -1), ValueError, "baud must be positive, got -1"),
])
def test_rejects_bad_arguments(args, error, message):
    with pytest.raises(error, match=message):
        UART(*args)

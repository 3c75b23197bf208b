"""The power ESTIMATE: the SAIF reader, the net classification, the Monte Carlo, the coefficient file and its
calibration against the published UP5K measurements.

``tests/data/power_fixture.saif`` and ``power_fixture.v`` are hand-written format fixtures (Verilator 5.048's SAIF
layout, Yosys's Verilog layout), not simulation results.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from mmfree.host.power import (FAMILY_KEYS, Activity, Saif, SaifError, activity, calibrate, estimate_power,
                               load_coefficients, parse_saif, read_saif)

DATA = Path(__file__).parent / "data"
FIXTURE = DATA / "power_fixture.saif"
VERILOG = (DATA / "power_fixture.v").read_text()


def test_saif_fixture_parses_to_its_nets():
    saif = read_saif(FIXTURE)
    assert saif.timescale_s == 1e-12 and saif.duration == 100
    assert len(saif.nets) == 23
    assert saif.nets[(("TOP", "top"), "count[1]")] == (50, 50, 50)
    assert saif.nets[(("TOP", "top", "mac"), "a$4[0]")] == (50, 50, 100)  # escapes undone, `$` kept
    assert saif.nets[(("TOP", "top", "bank"), "cs")] == (75, 25, 50)
    assert saif.nets[(("TOP",), "uart_tx")] == (50, 50, 12)


def test_saif_subtraction_leaves_the_difference():
    saif = read_saif(FIXTURE)
    more = Saif(saif.timescale_s, 300, {key: (t0 + 1, t1 + 2, tc + 3) for key, (t0, t1, tc) in saif.nets.items()})
    diff = more - saif
    assert diff.duration == 200
    assert set(diff.nets.values()) == {(1, 2, 3)}
    with pytest.raises(SaifError, match="timescales"):
        saif - Saif(1e-9, 0, {})


def test_fixture_activity_is_classified_by_the_verilog():
    a = activity(read_saif(FIXTURE), VERILOG)
    # count: 4 flip-flops, 100 + 50 + 25 + 12 toggles; $1 (the adder): 150; alias (a copy), product and r_data
    # (children's outputs) are counted where they are driven; uart_tx is a pin; the TOP wrapper is skipped
    assert a == Activity(cycles=100, ff_bits=4, ff_toggles=187, lc_toggles=150, ebr_reads=60, ebr_writes=10,
                         spram_accesses=25, dsp_input_toggles=150, io_toggles=7)
    assert activity(read_saif(FIXTURE), VERILOG, cycle_units=10).cycles == 10
    assert a.per(4).ff_toggles == 187 / 4 and a.per(4).ff_bits == 4


def test_saif_instance_missing_from_the_verilog_is_an_error():
    text = FIXTURE.read_text().replace("(INSTANCE bank", "(INSTANCE stray")
    with pytest.raises(ValueError, match="stray"):
        activity(parse_saif(text), VERILOG)


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.rstrip().removesuffix(")"), "unbalanced '\\('"),
    (lambda t: t + ")", "unbalanced '\\)'"),
    (lambda t: t.replace("(DURATION 100)", ""), "no DURATION"),
    (lambda t: t.replace("(TIMESCALE 1ps)", "(TIMESCALE fortnight)"), "TIMESCALE"),
    (lambda t: t.replace("(TC 50))\n     (data", "(TZ 0))\n     (data"), "lacks T0, T1 or TC"),
    (lambda t: t.replace("(SAIFILE", "(VCDFILE"), "SAIFILE"),
    (lambda t: t.replace(" (INSTANCE TOP\n  (NET\n", " (INSTANCE TOP\n  (NOTNET\n"), "outside an instance"),
])
def test_malformed_saif_is_refused(edit, message):
    with pytest.raises(SaifError, match=message):
        parse_saif(edit(FIXTURE.read_text()))


def test_coefficients_have_every_field_and_a_version():
    data = load_coefficients()
    assert data["version"]
    for family in data["families"].values():
        for key in FAMILY_KEYS:
            entry = family[key]
            assert entry["low"] <= entry["value"] <= entry["high"] and entry["source"]


@pytest.mark.parametrize("path, field", [(("families", "ice40up", "spram_access_pj"), "source"),
                                         (("boards", "icebreaker", "rail_factor_core"), "high")])
def test_coefficients_file_missing_a_field_is_refused(tmp_path, path, field):
    data = load_coefficients()
    entry = data
    for key in path:
        entry = entry[key]
    del entry[field]
    broken = tmp_path / "coefficients.json"
    broken.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=f"{'.'.join(path)} has no '{field}'"):
        load_coefficients(broken)


def test_coefficients_file_out_of_order_range_is_refused(tmp_path):
    data = load_coefficients()
    data["families"]["ecp5"]["clock_pj"]["low"] = 1e9
    broken = tmp_path / "coefficients.json"
    broken.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="low ≤ value ≤ high"):
        load_coefficients(broken)


WORKLOAD = dict(board="icebreaker", clock_hz=30e6, cycles_per_token=46_373, macs_per_token=490_624, samples=4000)


def test_estimate_percentiles_are_ordered_and_consistent():
    per_token = activity(read_saif(FIXTURE), VERILOG).per(1)
    r = estimate_power(per_token, **WORKLOAD)
    assert r["label"] == "ESTIMATE" and r["version"] == load_coefficients()["version"]
    tokens_per_s = 30e6 / 46_373
    assert r["tokens_per_s"] == pytest.approx(tokens_per_s)
    for key in ("fpga_mw", "board_mw", "pj_per_mac", "tokens_per_j_fpga", "tokens_per_j_board"):
        assert 0 < r[key]["p10"] <= r[key]["p50"] <= r[key]["p90"], key
    # pJ per MAC is the FPGA's power over the MAC rate; tokens per joule its inverse over the token rate
    for p in ("p10", "p50", "p90"):
        assert r["pj_per_mac"][p] == pytest.approx(r["fpga_mw"][p] * 1e9 / (tokens_per_s * 490_624))
    assert r["tokens_per_j_fpga"]["p50"] == pytest.approx(tokens_per_s / (r["fpga_mw"]["p50"] * 1e-3), rel=1e-3)
    assert r["board_mw"]["p10"] > r["fpga_mw"]["p90"]  # the board draws the FPGA through its regulators, and more


def test_estimate_breakdown_is_the_coefficients_times_the_activity():
    c = load_coefficients()["families"]["ice40up"]
    per_token = Activity(ff_bits=1000, spram_accesses=2000, dsp_input_toggles=10)
    r = estimate_power(per_token, **WORKLOAD)
    b, tokens_per_s = r["breakdown_mw"], 30e6 / 46_373
    assert b["static"] == c["static_mw"]["value"] and b["pll"] == c["pll_mw"]["value"]
    assert b["clock network"] == pytest.approx(30e6 * c["clock_pj"]["value"] * 1e-9)
    assert b["flip-flop clocks"] == pytest.approx(30e6 * 1000 * c["ff_clock_pj"]["value"] * 1e-9)
    assert b["spram accesses"] == pytest.approx(tokens_per_s * 2000 * c["spram_access_pj"]["value"] * 1e-9)
    assert b["lc toggles"] == 0 and b["i/o"] == 0
    # with every range collapsed to its value the Monte Carlo returns the sum of the breakdown
    data = load_coefficients()
    for group in (data["families"]["ice40up"], data["boards"]["icebreaker"], data["boards"]["icebreaker"]["parts"]):
        for entry in group.values():
            if isinstance(entry, dict) and "value" in entry:
                entry["low"] = entry["high"] = entry["value"]
    fixed = estimate_power(per_token, coefficients=data, **WORKLOAD)
    core = sum(v for k, v in b.items() if k not in ("i/o", "rest of the board"))
    assert fixed["fpga_mw"]["p10"] == pytest.approx(core) == pytest.approx(fixed["fpga_mw"]["p90"])
    assert fixed["board_mw"]["p50"] == pytest.approx(
        b["rest of the board"] + data["boards"]["icebreaker"]["rail_factor_core"]["value"] * core)


def test_unknown_board_is_refused():
    with pytest.raises(ValueError, match="no power coefficients for board 'tinytapeout'"):
        estimate_power(Activity(), **{**WORKLOAD, "board": "tinytapeout"})


def test_coefficient_medians_are_their_values():
    """Each coefficient's draws have their value as median (P50), so the nominal breakdown is the P50 of each part."""
    from mmfree.host.power import _draw

    rng = np.random.default_rng(1)
    entry = {"value": 1.0, "low": 0.5, "high": 10.0}
    draws = _draw(entry, rng, 200_000)
    assert np.median(draws) == pytest.approx(1.0, rel=0.01)
    assert draws.min() >= 0.5 and draws.max() <= 10.0


def test_calibration_against_the_published_up5k_measurements():
    rows = {row["name"]: row for row in calibrate(samples=4000)}
    assert len(rows) == 7
    for row in rows.values():
        assert row["predicted_mw"]["p10"] <= row["predicted_mw"]["p50"] <= row["predicted_mw"]["p90"]
        if row["role"].startswith("fit"):  # fitted: the nominal model reproduces them
            assert row["ratio"] == pytest.approx(1, abs=0.02), row["name"]
    for name in ("HFOSC (6 MHz) + 24 bit counter (28 LC's)", "HFOSC (48 MHz) + 24 bit counter (28 LC's)"):
        assert rows[name]["role"].startswith("held out") and rows[name]["ratio"] == pytest.approx(1, abs=0.05)
        assert rows[name]["within"]
    # the documented limit: RTL toggles do not see a LUT multiplier's internal switching (docs/power.md)
    assert rows["HFOSC (12 MHz) + Math (no DSP) + 24 bit counter (208 LC's)"]["ratio"] < 0.8


def test_docs_figure_of_the_demo_workload():
    """docs/power.md's table: the demo workload's recorded activity (tests/data/power_demo_activity.json) priced with
    the packaged coefficients; a change of either that moves the figures must update the docs."""
    w = json.loads((DATA / "power_demo_activity.json").read_text())
    r = estimate_power(Activity(**w["activity_per_token"]), board="icebreaker", clock_hz=w["clock_hz"],
                       cycles_per_token=w["cycles_per_token"], macs_per_token=w["macs_per_token"])
    docs = {"fpga_mw": (24.8, 35.5, 56.8), "board_mw": (286, 371, 485), "pj_per_mac": (35.5, 50.9, 81.4)}
    for key, expected in docs.items():
        got = tuple(r[key][p] for p in ("p10", "p50", "p90"))
        assert got == pytest.approx(expected, rel=0.01), key
    assert sum(v for k, v in r["breakdown_mw"].items() if k != "rest of the board") == pytest.approx(27.6, abs=0.05)

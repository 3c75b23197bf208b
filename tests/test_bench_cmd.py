# amaranth: UnusedElaboratable=no

"""``mmfree bench``: cycles measured on the virtual board, the build report's Fmax, the bounds, the estimate's error."""

import json
import struct

import pytest

from mmfree.host.bench_cmd import bench, write_roofline
from mmfree.host.build import parse_report
from mmfree.host.cli import main
from mmfree.host.models import resolve_model

from test_build import DATA


@pytest.fixture(scope="module")
def demo():
    return resolve_model("demo")


def test_demo_on_the_virtual_icebreaker(demo, tmp_path, capsys):
    report = tmp_path / "build-report.json"
    report.write_text(json.dumps({"board": "icebreaker",
                                  **parse_report(DATA / "nextpnr_report_ice40.json", "ice40", 30e6)}))
    result = bench("icebreaker", demo, tokens=2, report_path=report, progress=False)
    m = result["measured"]
    assert len(result["tokens"]) == 2 and not result["streamed"]
    assert 20_000 < m["cycles_per_token"] < 30_000  # the core as built: 24,626 on the core bench (docs/core.md)
    assert m["tokens_per_s_at_clock"] == pytest.approx(30e6 / m["cycles_per_token"])
    assert m["ternary_mac_per_s_at_clock"] == pytest.approx(490_624 * m["tokens_per_s_at_clock"])
    assert result["build"]["fmax_mhz"] == 75.34 and result["build"]["meets_margin"]
    assert m["tokens_per_s_at_fmax"] == pytest.approx(75.34e6 / m["cycles_per_token"])
    assert result["binding"] == "memory" and result["measured_over_binding"] > 1
    spent = {entry["name"]: entry["cycles"] for entry in result["instructions"]}
    assert len(spent) == 21 and spent["lm_head (LOGITS)"] > spent["EMBED"] > 0  # every instruction but END
    assert sum(spent.values()) == pytest.approx(m["cycles_per_token"], rel=0.02)
    assert result["roofline"]["macs_per_weight_byte"] == pytest.approx(490_624 / (8 * 12_462))  # padded words
    write_roofline(tmp_path / "roofline.png", result)
    png = (tmp_path / "roofline.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == (720, 440)
    low, high = result["estimate"]["cycles_per_token"]
    assert result["estimate"]["error_vs_measured"] == pytest.approx(
        [(low - m["cycles_per_token"]) / m["cycles_per_token"], (high - m["cycles_per_token"]) / m["cycles_per_token"]])


def test_a_report_of_another_board_is_refused_before_simulating(demo, tmp_path):
    report = tmp_path / "build-report.json"
    report.write_text(json.dumps({"board": "ulx3s-85f",
                                  **parse_report(DATA / "nextpnr_report_ecp5.json", "ecp5", 100e6)}))
    with pytest.raises(ValueError, match="is a build of ulx3s-85f, not of icebreaker"):
        bench("icebreaker", demo, report_path=report)
    with pytest.raises(ValueError, match="tokens must be a positive int"):
        bench("icebreaker", demo, tokens=0)
    assert main(["bench", "--model", "demo", "--report", str(tmp_path / "none.json")]) == 1


def test_the_clock_comes_from_the_build(tmp_path, monkeypatch):
    """A bitstream built at another clock (``mmfree build --clock-mhz``) is benched at that clock; without a build
    directory, or with one of another core, the shipped bitstream's manifest says it."""
    from mmfree.host.bench_cmd import _build
    from mmfree.host.build import BITSTREAMS
    from mmfree.sim.boards import BOARDS

    board = BOARDS["ulx3s-85f"]
    report = tmp_path / "build-report.json"
    report.write_text(json.dumps({"board": "ulx3s-85f",
                                  **parse_report(DATA / "nextpnr_report_ecp5.json", "ecp5", 45e6)}))
    assert _build("ulx3s-85f", board, report)["clock_hz"] == 45e6
    monkeypatch.chdir(tmp_path)   # no build/ulx3s-85f here
    manifest = json.loads((BITSTREAMS / "ulx3s-85f" / "manifest.json").read_text())
    shipped = _build("ulx3s-85f", board, None)
    assert shipped["clock_hz"] == manifest["clk_hz"] and shipped["fmax_mhz"] == manifest["fmax_mhz"]
    assert shipped["meets_margin"]
    given = _build("ulx3s-85f", board, BITSTREAMS / "ulx3s-85f" / "manifest.json")   # a manifest named
    assert given["clock_hz"] == manifest["clk_hz"] and given["fmax_mhz"] == manifest["fmax_mhz"]
    local = tmp_path / "build" / "ulx3s-85f"   # a build left from a core other than the board's: not used
    local.mkdir(parents=True)
    (local / "build-report.json").write_text(report.read_text())
    (local / "manifest.json").write_text(json.dumps({**manifest, "core": {**manifest["core"], "rows": 8}}))
    skipped = _build("ulx3s-85f", board, None)
    assert skipped["fmax_mhz"] == manifest["fmax_mhz"] and "another core" in skipped["note"]
    (local / "manifest.json").write_text(json.dumps(manifest))   # … and of the board's core: used
    assert _build("ulx3s-85f", board, None)["clock_hz"] == 45e6
    neither = tmp_path / "neither.json"
    neither.write_text(json.dumps({"board": "ulx3s-85f"}))
    with pytest.raises(ValueError, match="neither a build report"):
        _build("ulx3s-85f", board, neither)

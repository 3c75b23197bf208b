"""``mmfree estimate``: every figure recomputed from its inputs (the compiled program, the board, the link framing, the
cost tables), the fit error of a model too large, and the packaged copy of the UP5K budget."""

import json
from pathlib import Path

import pytest

from mmfree.host.cli import main
from mmfree.host.compiler import CORES, compile_model
from mmfree.host.estimate import estimate_cycles, link_payload_rate
from mmfree.host.estimate_cmd import budget, estimate
from mmfree.host.model import ModelConfig, random_model
from mmfree.host.models import resolve_model
from mmfree.sim.boards import BOARDS

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def demo():
    return resolve_model("demo")


def test_link_payload_rate_is_the_uart_rate_less_the_frame_overhead():
    # 8N1: 10 bits per byte; a STREAM of 31 words: 248 weight bytes after a 1-byte count, a 7-byte frame header
    # and a 2-byte CRC (docs/protocol.md)
    rate, efficiency = link_payload_rate(3_000_000)
    assert efficiency == 248 / (248 + 1 + 7 + 2)
    assert rate == pytest.approx(300_000 * 248 / 258)


def test_demo_on_icebreaker(demo):
    board = BOARDS["icebreaker"]
    report = estimate("icebreaker", demo)
    program = compile_model(demo, board.core, board.formats)
    cycles = estimate_cycles(program)
    low, high = cycles["total"]
    assert report["label"] == "ESTIMATE" and "ESTIMATE" in report["method"]
    assert report["fit"] == {"fits": True, "weight_words": len(program.image), "weight_capacity": 16384,
                             "instructions": len(program.instructions), "program_capacity": 32}
    assert report["cycles_per_token"]["range"] == [low, high]
    assert report["tokens_per_s"] == [30e6 / high, 30e6 / low]
    macs = demo.config.ternary_weights  # every weight is one MAC per token
    b = report["bounds"]
    assert b["macs"] == macs == 490_624
    assert report["mac_per_s"] == [macs * 30e6 / high, macs * 30e6 / low]
    assert b["lanes"] == 40 and b["lanes_cycles"] == macs / 40
    matrix_words = sum(words for name, (_, words) in program.layout.items() if name.endswith("trits"))
    assert b["matrix_words"] == matrix_words and b["memory_cycles"] == matrix_words  # one 64-bit word per cycle
    row_words = program.layout["embedding"][1] // demo.config.vocab_size  # one embedding row per token
    assert b["streamed_bytes"] == 8 * (matrix_words + row_words + 1)
    assert b["link_cycles"] == pytest.approx(b["streamed_bytes"] / link_payload_rate(3_000_000)[0] * 30e6)
    assert (b["resident"], b["streamed"]) == ("memory", "link")
    assert b["lanes_cycles"] <= b["memory_cycles"] < low


def test_clock_is_the_boards_which_is_the_shipped_bitstreams(demo):
    manifest = json.loads((ROOT / "bitstreams" / "ulx3s-85f" / "manifest.json").read_text())
    assert manifest["clk_hz"] == BOARDS["ulx3s-85f"].clk_hz   # a release is the board's configured design
    report = estimate("ulx3s-85f", demo)
    assert report["clock_hz"] == manifest["clk_hz"]
    low, high = report["cycles_per_token"]["range"]
    assert report["tokens_per_s"] == [manifest["clk_hz"] / high, manifest["clk_hz"] / low]
    assert estimate("icebreaker", demo)["clock_hz"] == BOARDS["icebreaker"].clk_hz


def test_a_pipelined_core_gets_its_own_constants(demo):
    """The ULX3S core's: the pipelined core's, with the fast scalar unit's chain and QUANT."""
    from mmfree.host.estimate import FAST_SCALAR_TIMING, PIPELINED_TIMING, TIMING

    program = compile_model(demo, CORES["ulx3s-85f"])
    assert program.core.pipelined and program.core.fast_scalar
    ulx3s = dict(PIPELINED_TIMING, **FAST_SCALAR_TIMING)
    assert estimate_cycles(program) == estimate_cycles(program, ulx3s)
    others = [estimate_cycles(program, timing) for timing in (PIPELINED_TIMING, TIMING)]
    assert all(estimate_cycles(program) != other for other in others)
    low, high = estimate("ulx3s-85f", demo)["cycles_per_token"]["range"]
    assert [low, high] == list(estimate_cycles(program, ulx3s)["total"])


def test_resources_say_the_planned_core_exceeds_the_up5k(demo):
    res = estimate("icebreaker", demo)["resources"]
    plan = res["budget"]
    assert plan["total"]["LC"] > plan["available"]["LC"] and plan["total"]["EBR"] > plan["available"]["EBR"]
    assert res["over"] == ["LC", "EBR"]
    assert f"LC {plan['total']['LC']:,} > 5,280" in res["summary"] and "exceeds the UP5K" in res["summary"]
    assert res["built_core"]["yosys_bound"]["LC"] > 5280


def test_packaged_budget_is_docs_cost_json_s():
    cost = json.loads((ROOT / "docs" / "cost.json").read_text())
    data = budget("icebreaker")
    assert data["up5k_budget"] == cost["up5k_budget"], "rerun: host/data/cost_budget.json is stale (docs/power.md)"
    core = next(r for r in cost["rows"] if r["unit"] == "Core" and r["family"] == "ice40")
    assert data["built_core"]["yosys_bound"] == core["yosys_bound"]
    assert budget("ulx3s") is None


def test_model_too_large_gets_the_fit_error_and_the_lifted_estimate():
    model = random_model(ModelConfig(vocab_size=100, hidden_size=384, num_layers=2, intermediate_size=512))
    report = estimate("icebreaker", model)
    assert report["fit"]["fits"] is False
    assert "does not fit the icebreaker core" in report["fit"]["message"]
    assert "vector length H: needs 384" in report["fit"]["message"]
    assert report["bounds"]["macs"] == model.config.ternary_weights
    assert report["cycles_per_token"]["range"][0] > report["bounds"]["memory_cycles"]


def test_unknown_board_is_refused(demo):
    with pytest.raises(ValueError, match="unknown board 'tinytapeout'; the boards are icebreaker"):
        estimate("tinytapeout", demo)


def test_cli_prints_and_writes_json(tmp_path, capsys):
    out = tmp_path / "estimate.json"
    assert main(["estimate", "--board", "icebreaker", "--model", "demo", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "cycles per token: ESTIMATE" in text and "exceeds the UP5K" in text and "binds" in text
    report = json.loads(out.read_text())
    assert report["label"] == "ESTIMATE" and report["board"] == "icebreaker"


def test_cli_refuses_an_unknown_board(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["estimate", "--board", "tinytapeout", "--model", "demo"])
    assert exit_info.value.code == 2 and "tinytapeout" in capsys.readouterr().err

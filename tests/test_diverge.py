# amaranth: UnusedElaboratable=no

"""The divergence finder names the instruction a planted fault first shows in, and reports none without one."""

from mmfree.host.compiler import compile_model
from mmfree.host.models import resolve_model
from mmfree.sim.diverge import first_divergence, instruction_names


def test_names_every_instruction():
    program = compile_model(resolve_model("demo"))
    names = instruction_names(program)
    assert names[:4] == ["CONFIG", "EMBED", "layer 0 f_proj (FORGET)", "layer 0 i_proj (STATE)"]
    assert names[-2:] == ["lm_head (LOGITS)", "END"]


def test_finds_a_planted_fault():
    program = compile_model(resolve_model("demo"))
    address, _ = program.layout["layer 1 o_proj trits"]
    index, name, message = first_divergence(program, 5, corrupt=(address + 3, 0x0101_0000_0000_0000),
                                            progress=lambda line: None)
    assert (index, name) == (11, "layer 1 o_proj (RESIDUAL)")
    assert "slot X" in message

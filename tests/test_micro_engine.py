# amaranth: UnusedElaboratable=no
"""The micro-engine's gateware against its simulator in Verilator; the simulator's word format and assembler; the
gateware's constructor checks."""

import pytest

from mmfree.host.golden import Formats
from mmfree.host.micro import (CYCLES, FORMATS, SHIFT_RANGE, TAKEN_EXTRA, Assembler, MicroError, MicroMachine, Op,
                               Space, decode, encode)
from mmfree.hw import micro_engine
from mmfree.hw.micro_engine import MicroEngine
from mmfree.sim.benches.micro_engine import Harness
from mmfree.sim.runner import run_bench


def test_bench(tmp_path):
    run_bench(Harness(), name="micro_engine", test_module="mmfree.sim.benches.micro_engine",
              params={"programs": 40, "length": 60}, run_dir=tmp_path)


# --- host/micro.py ---------------------------------------------------------------------------------------------------

def _extremes(bits, signed):
    return [-(1 << (bits - 1)), -1, 0, (1 << (bits - 1)) - 1] if signed else [0, 1, (1 << bits) - 1]


@pytest.mark.parametrize("op", list(Op))
def test_encode_decode_round_trip(op):
    for regs in [(0, 0, 0), (7, 7, 7), (1, 2, 3), (7, 0, 5)]:
        for pick in range(4):
            fields = {name: _extremes(bits, signed)[pick % len(_extremes(bits, signed))]
                      for name, bits, signed in FORMATS[op]}
            word = encode(op, *regs, **fields)
            assert 0 <= word < 1 << 32
            assert decode(word) == (op, *regs, fields)


def test_field_layout():
    assert encode(Op.ADD, 1, 2, 3) == 1 | 1 << 6 | 2 << 9 | 3 << 12
    assert encode(Op.MSR, rs=5, s=-1, bits=48) == 11 | 5 << 15 | 0x7F << 18 | 48 << 25
    assert encode(Op.LD, space=6, imm=-2) == 15 | 6 << 15 | ((1 << 13) - 2) << 19


@pytest.mark.parametrize("kwargs, error, match", [
    ({"op": Op.ADD, "rd": 8}, ValueError, "rd = 8 does not fit unsigned 3 bits"),
    ({"op": Op.ADD, "ra": -1}, ValueError, "ra = -1"),
    ({"op": Op.ADD, "rb": 1.0}, TypeError, "rb must be an int"),
    ({"op": Op.ADDI, "imm": 1 << 16}, ValueError, "ADDI.imm = 65536 does not fit signed 17 bits"),
    ({"op": Op.ADDI, "imm": True}, TypeError, "ADDI.imm must be an int"),
    ({"op": Op.ADDI}, ValueError, "ADDI needs field imm"),
    ({"op": Op.ADD, "imm": 1}, ValueError, r"ADD has no field\(s\) \['imm'\]"),
    ({"op": Op.MSR, "rs": 0, "s": 64, "bits": 0}, ValueError, "MSR.s = 64"),
    ({"op": Op.BEQ, "target": 1024}, ValueError, "BEQ.target = 1024"),
    ({"op": 29}, ValueError, "29 is not a valid Op"),
])
def test_encode_rejects(kwargs, error, match):
    with pytest.raises(error, match=match):
        encode(**kwargs)


@pytest.mark.parametrize("word, match", [
    (29, "unknown operation 29"),
    (63, "unknown operation 63"),
    (1 << 15, "bits above 15 set for HALT"),
    (int(Op.ADD) | 1 << 31, "bits above 15 set for ADD"),
    (int(Op.SIG) | 1 << 22, "bits above 22 set for SIG"),
    (encode(Op.BEQ, target=1023) | 1 << 25, "bits above 25 set for BEQ"),
])
def test_decode_rejects(word, match):
    with pytest.raises(MicroError, match=match):
        decode(word)


def test_cycles_table():
    assert TAKEN_EXTRA == 1
    assert {op for op, n in CYCLES.items() if n != 1} == {Op.LD, Op.MSR, Op.MSF, Op.MAC, Op.SIG}
    assert (CYCLES[Op.LD], CYCLES[Op.MSR], CYCLES[Op.MAC], CYCLES[Op.SIG]) == (2, 3, 3, 5)


SPACES = {0: Space("w", 48, 16), 2: Space("u", 8, 4, signed=False)}


def test_machine_faults():
    asm = Assembler()
    asm.ld(1, 0, space=0, imm=16)
    asm.halt()
    with pytest.raises(MicroError, match="address 16 outside space w"):
        MicroMachine(asm.assemble(), SPACES).run()
    with pytest.raises(MicroError, match="no data space 1"):
        MicroMachine([encode(Op.ST, space=1, imm=0), 0], SPACES).run()
    with pytest.raises(MicroError, match=r"shift -49 outside \(-48, 66\)"):
        MicroMachine([encode(Op.MSR, 1, 0, 0, rs=0, s=-49, bits=0), 0], SPACES).run()
    asm = Assembler()
    asm.lis(1, imm=67, sh=0)     # r1 = 67
    asm.msr(2, 1, 1, rs=1, s=0, bits=0)
    asm.halt()
    with pytest.raises(MicroError, match="shift 67 outside"):
        MicroMachine(asm.assemble(), SPACES).run()
    with pytest.raises(MicroError, match="bits 49 above 48"):
        MicroMachine([encode(Op.MSF, 1, 0, 0, rs=0, s=0, bits=49), 0], SPACES).run()
    with pytest.raises(MicroError, match="pc 1: ADD reads r3 before anything was written to it"):
        MicroMachine([encode(Op.ADDI, 2, 0, imm=1), encode(Op.ADD, 1, 2, 3), 0], SPACES).run()
    with pytest.raises(MicroError, match="MSR reads r4 before"):
        MicroMachine([encode(Op.MSR, 1, 0, 0, rs=4, s=0, bits=0), 0], SPACES).run()
    with pytest.raises(MicroError, match="MAC reads r5 before"):
        MicroMachine([encode(Op.MAC, 5, 0, 0), 0], SPACES).run()
    with pytest.raises(MicroError, match="pc 1 outside the firmware"):
        MicroMachine([encode(Op.ADD)], SPACES).run()
    with pytest.raises(MicroError, match="SIG frac 4 below"):
        MicroMachine([encode(Op.SIG, 1, 0, mode=0, frac=4), 0], SPACES).run()
    with pytest.raises(MicroError, match="SIG mode 3"):
        MicroMachine([encode(Op.SIG, 1, 0, mode=3, frac=20), 0], SPACES).run()
    with pytest.raises(MicroError, match="no HALT within 100 cycles"):
        MicroMachine([encode(Op.BEQ, target=0)], SPACES).run(max_cycles=100)
    with pytest.raises(MicroError, match="unknown operation"):
        MicroMachine([63], SPACES)


def test_machine_semantics_and_cycles():
    asm = Assembler()
    asm.ld(1, 0, space=2, imm=0)             # 2: unsigned 8-bit 0xFF → 255
    asm.lis(2, imm=-3, sh=30)                    # 1
    asm.msr(3, 2, 0, rs=0, s=29, bits=0)     # 3: −3·2^30 / 2^29 = −6
    asm.msr(4, 1, 1, rs=0, s=9, bits=0)      # 3: 255² / 512 = 127.0019… → 127
    asm.msf(5, 3, 0, rs=0, s=2, bits=2)      # 3: ⌊−6/4⌋ = −2, fits 2 bits
    asm.msr(6, 1, 0, rs=0, s=-40, bits=40)   # 3: saturates to 2^39 − 1
    asm.label("loop")
    asm.addi(1, 1, imm=-100)                 # 1 ×3
    asm.blt(0, 1, target="loop")             # 2, 2, 1
    asm.jal(7, target="end")                 # 2
    asm.halt()
    asm.label("end")
    asm.bitlen(1, 1)                         # 1: |255 − 300| = 45 → 6
    asm.halt()                               # 1
    mm = MicroMachine(asm.assemble(), SPACES)
    mm.load(2, [0xFF])
    assert mm.run() == 2 + 1 + 3 * 4 + 3 + 5 + 2 + 1 + 1
    assert mm.regs == [0, 6, -3 << 30, -6, 127, -2, (1 << 39) - 1, 9]
    assert list(mm.read(2, 1)) == [255]


def test_assembler_labels():
    asm = Assembler()
    asm.label("top")
    asm.bne(1, 2, target="later")
    asm.jal(3, target="top")
    assert asm.here() == 2
    asm.label("later")
    asm.jr(3)
    words = asm.assemble()
    assert [decode(w) for w in words] == [(Op.BNE, 0, 1, 2, {"target": 2}), (Op.JAL, 3, 0, 0, {"target": 0}),
                                          (Op.JR, 0, 3, 0, {})]
    with pytest.raises(ValueError, match="label 'top' defined twice"):
        asm.label("top")
    asm.beq(0, 0, target="nowhere")
    with pytest.raises(ValueError, match="undefined label 'nowhere'"):
        asm.assemble()
    with pytest.raises(AttributeError):
        asm.nop
    asm = Assembler()
    asm.addi(1, 0, imm=1 << 20)
    with pytest.raises(ValueError, match="ADDI.imm"):
        asm.assemble()
    with pytest.raises(TypeError, match=r"LIS takes the registers \(rd\), not 2; its immediate fields go by name: "
                                        r"imm, sh"):
        asm.lis(1, 5, sh=0)
    with pytest.raises(TypeError, match=r"ST takes the registers \(ra, rb\), not 3"):
        asm.st(1, 2, 3, space=0, imm=0)


# --- the gateware's constructor --------------------------------------------------------------------------------------

def test_engine_geometry():
    engine = MicroEngine([0] * 300, SPACES)
    assert (engine.depth, engine.pc_bits) == (512, 9)
    assert MicroEngine([0], SPACES).depth == 256
    assert not hasattr(MicroEngine([0], SPACES), "prog")
    assert hasattr(MicroEngine([0], SPACES, writable=True), "prog")


@pytest.mark.parametrize("args, kwargs, error, match", [
    (("x", SPACES), {}, TypeError, "firmware must be a list"),
    (([], SPACES), {}, ValueError, "firmware must have 1 … 1024 words, got 0"),
    (([0] * 1025, SPACES), {}, ValueError, "got 1025"),
    (([63], SPACES), {}, ValueError, r"firmware\[0\]: word 0x0000003f: unknown operation"),
    (([0, 1 << 32], SPACES), {}, ValueError, r"firmware\[1\] must be between 0 and 4294967295"),
    (([0, 1.0], SPACES), {}, TypeError, r"firmware\[1\] must be an int"),
    (([0], [Space("w", 8, 4)]), {}, TypeError, "spaces must be a dict"),
    (([0], {16: Space("w", 8, 4)}), {}, ValueError, "space number must be between 0 and 15"),
    (([encode(Op.VMAC, 1, 2)], SPACES), {}, ValueError, "VMAC: the vector operations are not in the gateware yet"),
    (([0], {0: (8, 4)}), {}, TypeError, r"spaces\[0\] must be a Space"),
    (([0], SPACES), {"formats": {}}, TypeError, "formats must be a golden.Formats"),
    (([0], SPACES), {"formats": Formats(gate_frac=20)}, ValueError, "must fit 17 bits"),
    (([0], SPACES), {"impl": "gowin"}, ValueError, "impl must be None or one of"),
])
def test_engine_rejects(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        MicroEngine(*args, **kwargs)


def test_engine_shift_range_is_the_contracts():
    """The gateware's largest shift is the top of the contract's range (shifts above act as it)."""
    assert micro_engine._SHIFT_MAX == SHIFT_RANGE[1]

"""The AArch64 rules load cleanly: no errors, no coverage holes; encodings round-trip."""

import pytest

from wasmlower.isa.aarch64 import preds
from wasmlower.isa.aarch64.emit import load_imm


def test_rules_check_is_clean():
    from wasmlower.lower.isa import ISA_ROOT, load_isa_dir
    errors = []
    isa = load_isa_dir(ISA_ROOT / "aarch64", "aarch64", errors=errors, cache=False)
    assert [str(e) for e in errors if "warning" not in str(e)] == []
    assert "call_indirect" in isa.decls and "load32" in isa.decls


def test_rules_check_cli(capsys):
    from wasmlower.cli import main
    try:
        main(["rules", "check", "aarch64"])
    except SystemExit as e:
        assert not e.code
    out = capsys.readouterr()
    assert "aarch64: 0 errors" in out.out + out.err
    assert "0 coverage holes" in out.out + out.err


@pytest.mark.parametrize("value", [0, 1, 0xFFFF, 0x10000, 0x12345678, 0xFFFFFFFF, -1, -2,
                                   0x8000000000000000, 0x7FFFFFFFFFFFFFFF, 0xC1E0000000200000,
                                   -0x80000000, 0x0000FFFF0000FFFF])
def test_load_imm_encodes_the_value(value):
    """movz/movn/movk sequences give the value (run in unicorn)."""
    import unicorn
    from unicorn import arm64_const as A

    from wasmlower.emit.assemble import assemble
    text = "\n".join(load_imm("x3", value))
    code = assemble(text, "aarch64")
    assert len(code) == 4 * len(text.splitlines())
    uc = unicorn.Uc(unicorn.UC_ARCH_ARM64, unicorn.UC_MODE_ARM)
    uc.mem_map(0x10000, 0x1000)
    uc.mem_write(0x10000, code)
    uc.reg_write(A.UC_ARM64_REG_X3, 0x5555)
    uc.emu_start(0x10000, 0x10000 + len(code))
    assert uc.reg_read(A.UC_ARM64_REG_X3) == value & ((1 << 64) - 1)


def test_predicates():
    assert preds.uimm12(4095) and not preds.uimm12(4096) and not preds.uimm12(-1)
    assert preds.nimm12(-1) and preds.nimm12(-4095) and not preds.nimm12(0)
    assert preds.memimm(0, 4) and preds.memimm(3, 4) and preds.memimm(4080, 8)
    assert not preds.memimm(4092, 8) and not preds.memimm(257, 4) and preds.memimm(260, 4)
    assert preds.cond("ult") == "lo" and preds.fcond("lt") == "mi" and preds.fcond("le") == "ls"

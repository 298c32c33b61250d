"""`wasmlower explain --target aarch64`: the AArch64 pipeline, stage by stage, with origins."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wasmlower import pipeline
from wasmlower.errors import CompileError
from wasmlower.explain import compile_lowered, explain
from wasmlower.isa.aarch64 import emit

BENCH = Path(__file__).resolve().parents[3] / "shared" / "bench"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FIB = BENCH / "fib.wasm" if (BENCH / "fib.wasm").exists() else EXAMPLES / "fib.wasm"
RULE = re.compile(r"isa/aarch64/lower\.rules:\d+")
INST_LINE = re.compile(r"\s+0x[0-9a-f]{4}\s")
SECTIONS = ("wasm operators", "IR after translate", "IR after optimize",
            "IR after lower (the rule of each machine op)", "rules fired",
            "IR after register allocation", "machine code")


def _section(text: str, title: str) -> list[str]:
    """The lines of the section headed ``-- title``, up to the next heading."""
    body = text.split(f"\n-- {title}", 1)[1]
    return body.split("\n-- ", 1)[0].splitlines()[1:]


@pytest.fixture(scope="module")
def fib_text() -> str:
    return explain(FIB.read_bytes(), 1, target="aarch64")


def test_every_stage_in_aarch64_terms(fib_text):
    for title in SECTIONS:
        assert f"-- {title}" in fib_text
    assert "target aarch64" in fib_text.splitlines()[0]
    lowered = _section(fib_text, "IR after lower")
    machine_ops = [ln for ln in lowered if "aarch64." in ln and "aarch64.params" not in ln]
    assert machine_ops and not any("x64." in ln for ln in lowered)
    from wasmlower.lower import load_isa
    labels = {r.label for r in load_isa("aarch64").rules}
    for ln in machine_ops:
        m = RULE.search(ln)
        assert m and m.group(0) in labels, ln
    # Register names of the allocation are AArch64's.
    assert re.search(r"@x\d+", "\n".join(_section(fib_text, "IR after register allocation")))


def test_machine_code_is_disassembled_as_arm64_and_tagged(fib_text):
    code = _section(fib_text, "machine code")
    insts = [ln for ln in code if INST_LINE.match(ln)]
    n = int(re.search(r"(\d+) instructions", fib_text).group(1))
    assert len(insts) == n
    nbytes = int(re.search(r"machine code \((\d+) bytes", fib_text).group(1))
    assert nbytes == 4 * n                              # fixed-width encoding
    assert "stp x29, x30, [sp, #-0x10]!" in insts[0]
    for ln in insts:
        origin = ln[2 + 8 + 24 + 36 + 8:]
        assert RULE.search(origin) or origin.startswith(
            ("prologue", "regalloc move", "trap stub", "block layout")), ln
    assert any("bl #" in ln and "; func 1" in ln and "aarch64.call" in ln for ln in insts)
    assert any(re.search(r"\s0x4b\s+aarch64\.sub32_ri\s+" + RULE.pattern, ln) for ln in insts)
    assert any("trap stub (stack_overflow)" in ln and "blr x16" in ln for ln in insts)


def _lowered(module, index):
    func = pipeline.translate(module, index)
    pipeline.optimize(func, module)
    pipeline.lower(func, "aarch64")
    return func


def test_machine_code_is_what_the_compiler_emits():
    """explain's bytes and address map are compile_module's, per function."""
    names = ("sieve.wasm", "qsort.wasm", "interp.wasm")
    paths = [BENCH / n for n in names if (BENCH / n).exists()] or [FIB]
    for path in paths:
        wasm = path.read_bytes()
        compiled = pipeline.compile_module(wasm, pipeline.Options(target="aarch64"))
        module = pipeline.decode(wasm)
        relocs = {off for off, *_ in compiled.relocs}
        for cf in compiled.functions:
            mc = compile_lowered(_lowered(module, cf.index - module.num_imported_funcs),
                                 pipeline.ModuleInfo(module), target="aarch64")
            real = bytearray(compiled.text[cf.offset:cf.offset + cf.size])
            mine = bytearray(mc.code)
            for off in relocs:                  # bl offsets are resolved at layout
                if cf.offset <= off < cf.offset + cf.size:
                    k = off - cf.offset
                    real[k:k + 4] = mine[k:k + 4] = b"\0\0\0\0"
            assert mine == real, (path.name, cf.name)
            assert sorted(o - cf.offset for o in relocs
                          if cf.offset <= o < cf.offset + cf.size) == [o for o, _ in mc.calls]
            mine_map = []
            for mi in mc.insts:
                if mi.loc is not None and (not mine_map or mine_map[-1][1] != mi.loc):
                    mine_map.append((mi.offset, mi.loc))
            assert [(o - cf.offset, w) for o, w in cf.addrmap] == mine_map
            assert [(o - cf.offset, k) for o, k in cf.traps] == mc.traps


def test_origins_survive_branch_relaxation(monkeypatch):
    """Relaxed branches (one line becomes three) keep the origin of the branch they replace."""
    from wasmlower.ir import parse_function
    monkeypatch.setattr(emit, "COND_RANGE", 16)
    f = parse_function("func @f(i32, i32) -> i32 {\nblock0(v0: i32, v1: i32):\n"
                       "    v2 = iconst.i32 [10]\n    v3 = icmp v0, v2 [ult]\n"
                       "    brif v3, block1, block2\nblock1:\n    v4 = udiv v1, v0\n"
                       "    return v4\nblock2:\n    return v1\n}")
    pipeline.lower(f, "aarch64")
    mc = compile_lowered(f, check=True, target="aarch64")
    assert len(mc.insts) * 4 == len(mc.code)
    relaxed = [i for i, mi in enumerate(mc.insts) if mi.text.startswith("b .L")
               and i > 0 and mc.insts[i - 1].text.startswith(("b.", "cbz", "cbnz"))]
    assert relaxed, [mi.text for mi in mc.insts]
    for i in relaxed:
        assert mc.insts[i].origin == mc.insts[i - 1].origin != "jump"
        assert mc.insts[i].inst is mc.insts[i - 1].inst
    assert {"prologue", "inst", "stub"} <= {mi.origin for mi in mc.insts}
    assert ["stack_overflow"] == [k for _, k in mc.traps][:1]


def test_unknown_targets_are_clear_errors():
    with pytest.raises(CompileError, match="x86_64 and aarch64 targets, not 'riscv64'"):
        explain(FIB.read_bytes(), 1, target="riscv64")


def test_the_cli_explains_for_aarch64(capsys):
    from wasmlower.cli import main
    assert main(["explain", str(FIB), "--func", "1", "--target", "aarch64"]) == 0
    out = capsys.readouterr().out
    assert "-- machine code" in out and RULE.search(out) and "ldp x29, x30" in out

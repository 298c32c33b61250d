"""`wasmlower explain` and rule tracing (wasmlower.explain)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wasmlower.errors import CompileError
from wasmlower.explain import compile_lowered, explain, format_operator, trace_rules

BENCH = Path(__file__).resolve().parent.parent.parent / "shared" / "bench"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FIB = BENCH / "fib.wasm" if (BENCH / "fib.wasm").exists() else EXAMPLES / "fib.wasm"

SECTIONS = ("wasm operators", "IR after translate", "IR after optimize",
            "IR after lower (the rule of each machine op)", "rules fired",
            "IR after register allocation", "machine code")
_RULE = re.compile(r"isa/x64/lower\.rules:\d+")


def wat(text: str) -> bytes:
    wasmtime = pytest.importorskip("wasmtime")
    return bytes(wasmtime.wat2wasm(text))


def _section(text: str, title: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(f"-- {title}"))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("-- ")),
               len(lines))
    return lines[start + 1:end]


@pytest.fixture(scope="module")
def fib_text() -> str:
    return explain(FIB.read_bytes(), 1)


def test_every_stage_is_shown(fib_text):
    for title in SECTIONS:
        assert f"-- {title}" in fib_text
    assert fib_text.index("IR after translate") < fib_text.index("IR after lower") \
        < fib_text.index("machine code")


def test_wasm_operators_with_offsets(fib_text):
    from wasmlower.pipeline import decode
    module = decode(FIB.read_bytes())
    body = module.codes[1 - module.num_imported_funcs].body
    ops = [ln for ln in _section(fib_text, "wasm operators") if ln.strip()]
    assert len(ops) == len(body)
    for line, ins in zip(ops, body):
        assert line.split()[0] == f"{ins.offset:#06x}"
        assert ins.op in line


def test_every_machine_op_names_its_rule(fib_text):
    from wasmlower.lower import load_isa
    labels = {r.label for r in load_isa("x64").rules}
    lowered = _section(fib_text, "IR after lower")
    machine_ops = [ln for ln in lowered if "x64." in ln and "x64.params" not in ln]
    assert machine_ops
    for ln in machine_ops:
        m = _RULE.search(ln)
        assert m and m.group(0) in labels, ln
    fired = _section(fib_text, "rules fired")
    assert any("(brif (icmp i32 cc a (iconst k)))" in ln for ln in fired)


def test_every_machine_instruction_is_tagged(fib_text):
    code = _section(fib_text, "machine code")
    insts = [ln for ln in code if re.match(r"\s+0x[0-9a-f]{4}\s", ln)]
    header = next(ln for ln in code if "offset" in ln)
    assert "origin" in header
    n = int(re.search(r"(\d+) instructions", fib_text).group(1))
    assert len(insts) == n
    for ln in insts:
        origin = ln[2 + 8 + 24 + 36 + 8:]
        assert origin.strip(), ln
        assert (_RULE.search(origin) or origin.startswith(("prologue", "regalloc move",
                                                           "trap stub", "block layout"))), ln
    # The body's instructions carry the wasm offset they came from.
    assert any(re.search(r"\s0x4b\s+x64\.sub32_ri\s+isa/x64/lower\.rules:\d+", ln)
               for ln in insts)


def test_machine_code_is_what_the_compiler_emits():
    """explain shows the same bytes and address map as compile_module, per function."""
    from wasmlower import pipeline
    wasm = (BENCH / "sieve.wasm").read_bytes() if (BENCH / "sieve.wasm").exists() \
        else FIB.read_bytes()
    compiled = pipeline.compile_module(wasm)
    module = pipeline.decode(wasm)
    relocs = {off for off, *_ in compiled.relocs}
    for cf in compiled.functions:
        func = pipeline.translate(module, cf.index - module.num_imported_funcs)
        pipeline.optimize(func, module)
        pipeline.lower(func)
        mc = compile_lowered(func, pipeline.ModuleInfo(module))
        real = bytearray(compiled.text[cf.offset:cf.offset + cf.size])
        mine = bytearray(mc.code)
        for off in relocs:                      # call displacements are resolved later
            if cf.offset <= off < cf.offset + cf.size:
                k = off - cf.offset
                real[k:k + 4] = mine[k:k + 4] = b"\0\0\0\0"
        assert mine == real, cf.name
        assert b"".join(mi.data for mi in mc.insts) == mc.code
        # Each address-map entry is the first instruction of a new wasm offset.
        mine_map = []
        for mi in mc.insts:
            if mi.loc is not None and (not mine_map or mine_map[-1][1] != mi.loc):
                mine_map.append((mi.offset, mi.loc))
        assert [(o - cf.offset, w) for o, w in cf.addrmap] == mine_map


def test_origins_of_compile_lowered():
    from wasmlower import pipeline
    from wasmlower.ir import parse_function
    f = parse_function("func @f(i32, i32) -> i32 {\nblock0(v0: i32, v1: i32):\n"
                       "    v2 = ishl v0, v1\n    v3 = udiv v2, v0\n    return v3\n}")
    pipeline.lower(f)
    mc = compile_lowered(f, check=True)
    origins = {mi.origin for mi in mc.insts}
    assert {"prologue", "inst", "move", "stub"} <= origins
    shl = [mi for mi in mc.insts if mi.inst is not None and mi.inst.op == "x64.shl32"
           and mi.origin == "inst"]
    assert [mi.asm.split()[0] for mi in shl] == ["shl"]
    assert shl[0].rule and _RULE.fullmatch(shl[0].rule)
    moves = [mi for mi in mc.insts if mi.origin == "move"]
    assert all(mi.asm.startswith("mov") and mi.detail in ("before", "after", "edge")
               for mi in moves)
    assert [k for _, k in mc.traps] == ["stack_overflow"]


def test_imports_and_bad_indices_are_clear_errors():
    wasm = wat('(module (import "env" "f" (func)) '
               '(func (export "g") (param i32) (result i32) local.get 0 i32.const 41 i32.add))')
    with pytest.raises(CompileError, match=r"function 0 is the import env\.f.*defined "
                                           r"function indices: 1\.\.1"):
        explain(wasm, 0)
    with pytest.raises(CompileError, match=r"function index 5 is out of range: the module has "
                                           r"2 function\(s\), 1 imported and 1 defined"):
        explain(wasm, 5)
    with pytest.raises(CompileError, match="x86_64 and aarch64 targets"):
        explain(wasm, 1, target="riscv64")
    text = explain(wasm, 1)
    assert "exported as 'g'" in text and "i32.const 41" in text
    assert re.search(r"add32_ri.*isa/x64/lower\.rules:\d+", text)


def test_the_cli_prints_explain(capsys):
    from wasmlower.cli import main
    assert main(["explain", str(FIB), "--func", "1"]) == 0
    out = capsys.readouterr().out
    assert "-- machine code" in out and _RULE.search(out)
    assert main(["explain", str(FIB), "--func", "9"]) == 1
    assert "error: function index 9 is out of range" in capsys.readouterr().err


@pytest.mark.parametrize("op, imm, text", [
    ("i32.load", (2, 16), "i32.load offset=16 align=4"),
    ("i64.store8", (0, 0), "i64.store8 align=1"),
    ("br_table", ((0, 1), 2), "br_table 0 1 2"),
    ("f32.const", 0x3FC00000, "f32.const 1.5 (bits 0x3fc00000)"),
    ("call_indirect", (3, 0), "call_indirect 0 (type 3)"),
    ("local.get", 2, "local.get 2"),
    ("i32.add", None, "i32.add"),
])
def test_format_operator(op, imm, text):
    assert format_operator(op, imm) == text


def test_trace_rules_counts_a_corpus():
    from wasmlower.lower.driver import rule_counts
    from wasmlower.pipeline import Options, compile_module
    corpus = [p.read_bytes() for p in sorted(BENCH.glob("*.wasm"))] or [FIB.read_bytes()]
    counts = trace_rules(corpus)
    assert sum(counts.values()) > 0
    assert all(_RULE.fullmatch(label) for label in counts)
    expected = sum((rule_counts(t) for t in _traces(corpus, Options, compile_module)),
                   start=type(counts)())
    assert counts == expected
    single = trace_rules([FIB.read_bytes()])
    assert all(counts[k] >= v for k, v in single.items())


def test_trace_rules_known_counts():
    """fib.wasm: two calls, three returns, two fused compare-and-branches, two adds."""
    from wasmlower.lower import load_isa
    by_source = {r.ast.pattern_text: r.label for r in load_isa("x64").rules}
    counts = trace_rules([FIB.read_bytes()])
    assert counts[by_source["(call f args...)"]] == 2
    assert counts[by_source["(return args...)"]] == 3
    assert counts[by_source["(brif (icmp i32 cc a (iconst k)))"]] == 2
    assert counts[by_source["(iadd i32 x y)"]] == 2
    assert counts[by_source["(isub i32 x (iconst k))"]] == 2


def _traces(corpus, Options, compile_module):
    for wasm in corpus:
        trace: list = []
        compile_module(wasm, Options(trace=trace))
        yield trace

"""The semantic checker of lowering rules (wasmlower.lower.semantics).

Three layers: the reference semantics (``evaluate``) against known values,
the emulated machine against hand-made code, and ``check_rule_semantics``
over every checked x64 rule, plus copies of the x64 ISA with one rule made
wrong, which the checker must catch.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from wasmlower.ir import parse_function
from wasmlower.lower import load_isa
from wasmlower.lower.semantics import (
    CHECKED_OPS,
    WASM_PAGE,
    Machine,
    Memory,
    Undefined,
    check_rule_semantics,
    evaluate,
    run_against_reference,
    zero_fill,
)

X64 = Path(__file__).resolve().parent.parent / "wasmlower" / "isa" / "x64"
M32 = (1 << 32) - 1
M64 = (1 << 64) - 1


@pytest.fixture(scope="module")
def machine() -> Machine:
    return Machine()


def _unary(op: str, t: str, x: int, imm: str = "") -> int:
    f = parse_function(f"func @f({t}) -> {t} {{\nblock0(v0: {t}):\n"
                       f"    v1 = {op} v0{imm}\n    return v1\n}}")
    kind, values = evaluate(f, [x], Memory(0))
    assert kind == "return"
    return values[0]                                   # type: ignore[index]


def _binary(op: str, t: str, x: int, y: int) -> int:
    f = parse_function(f"func @f({t}, {t}) -> {t} {{\nblock0(v0: {t}, v1: {t}):\n"
                       f"    v2 = {op} v0, v1\n    return v2\n}}")
    kind, values = evaluate(f, [x, y], Memory(0))
    assert kind == "return"
    return values[0]                                   # type: ignore[index]


# ---------------------------------------------------------------------------
# The reference semantics
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("op, t, x, y, want", [
    ("iadd", "i32", M32, 1, 0),
    ("isub", "i64", 0, 1, M64),
    ("imul", "i32", 0x10000, 0x10000, 0),
    ("ishl", "i32", 1, 33, 2),                   # counts modulo the width
    ("ishl", "i64", 1, 64, 1),
    ("ushr", "i32", 0x80000000, 31, 1),
    ("sshr", "i32", 0x80000000, 31, M32),
    ("sshr", "i64", 1 << 63, 65, 0xC000000000000000),
    ("rotl", "i32", 0x80000001, 1, 3),
    ("rotr", "i64", 1, 1, 1 << 63),
    ("rotl", "i32", 0x12345678, 32, 0x12345678),
    ("udiv", "i32", M32, 2, 0x7FFFFFFF),
    ("sdiv", "i32", (-7) & M32, 2, (-3) & M32),   # truncates toward zero
    ("srem", "i32", (-7) & M32, 2, M32),          # sign of the dividend
    ("srem", "i32", 0x80000000, M32, 0),          # MIN % -1 = 0
    ("urem", "i64", M64, 10, 5),
])
def test_binary_reference(op, t, x, y, want):
    assert _binary(op, t, x, y) == want


@pytest.mark.parametrize("op, t, x, imm, want", [
    ("clz", "i32", 0, "", 32), ("clz", "i64", 1, "", 63), ("ctz", "i64", 0, "", 64),
    ("ctz", "i32", 0x80000000, "", 31), ("popcnt", "i64", M64, "", 64),
    ("sext_in", "i32", 0x80, " [8]", 0xFFFFFF80), ("sext_in", "i64", 0x7FFF, " [16]", 0x7FFF),
    ("sext_in", "i64", 0x80000000, " [32]", 0xFFFFFFFF80000000),
])
def test_unary_reference(op, t, x, imm, want):
    assert _unary(op, t, x, imm) == want


def test_conversions_and_compares_reference():
    f = parse_function("func @f(i32, i64) -> i64, i64, i32, i32 {\nblock0(v0: i32, v1: i64):\n"
                       "    v2 = sextend.i64 v0\n    v3 = uextend.i64 v0\n"
                       "    v4 = ireduce.i32 v1\n    v5 = icmp v0, v4 [slt]\n"
                       "    return v2, v3, v4, v5\n}")
    assert evaluate(f, [0x80000000, 0x1_0000_0005], Memory(0)) == \
        ("return", [0xFFFFFFFF80000000, 0x80000000, 5, 1])


@pytest.mark.parametrize("op, x, y", [("udiv", 5, 0), ("srem", 5, 0),
                                      ("sdiv", 0x80000000, M32)])
def test_division_preconditions_are_undefined(op, x, y):
    with pytest.raises(Undefined):
        _binary(op, "i32", x, y)


def test_memory_reference_traps_in_64_bit_arithmetic():
    f = parse_function("func @f(i32, i64) -> i64 {\nblock0(v0: i32, v1: i64):\n"
                       "    store v0, v1 [i16, 4294967295]\n"
                       "    v2 = load.i64 v0 [i16s, 4294967295]\n    return v2\n}")
    mem = Memory(1 << 33, zero_fill)       # larger than wasm32 allows: shows the arithmetic
    assert evaluate(f, [1, 0x8001], mem) == ("return", [0xFFFFFFFFFFFF8001])
    assert mem.writes == {0x1_0000_0000: 0x01, 0x1_0000_0001: 0x80}
    # Index near 2^32 plus a large offset: past a 4 GiB memory, never wrapped.
    assert evaluate(f, [0xFFFFFFFF, 1], Memory(1 << 32)) == ("trap", "heap_oob")
    assert evaluate(f, [0, 1], Memory(1 << 32)) == ("trap", "heap_oob")


def test_branches_and_traps_reference():
    f = parse_function("func @f(i32) -> i32 {\nblock0(v0: i32):\n    trapz v0 [int_divz]\n"
                       "    br_table v0, block1, block2\nblock1:\n    v1 = iconst.i32 [10]\n"
                       "    return v1\nblock2:\n    v2 = iconst.i32 [-1]\n    return v2\n}")
    assert evaluate(f, [0], Memory(0)) == ("trap", "int_divz")
    assert evaluate(f, [1], Memory(0)) == ("return", [M32])
    assert evaluate(f, [2], Memory(0)) == ("return", [M32])     # the default is last


# ---------------------------------------------------------------------------
# The machine
# ---------------------------------------------------------------------------

def _asm(machine: Machine, text: str) -> int:
    from wasmlower.emit.assemble import assemble
    return machine.load(assemble(text))


def test_machine_returns_traps_and_faults(machine):
    from wasmlower.ir.types import I32, I64
    entry = _asm(machine, "lea eax, [rdi + rsi]\nret")
    out = machine.run(entry, [(I32, 7), (I32, 5)], [I32], WASM_PAGE)
    assert out.kind == "return" and out.values[0] & M32 == 12
    from wasmlower.ir.ops import TRAP_CODES
    entry = _asm(machine, f"mov esi, {TRAP_CODES['heap_oob']}\ncall qword ptr [r15+56]")
    out = machine.run(entry, [], [], WASM_PAGE)
    assert (out.kind, out.trap) == ("trap", "heap_oob")
    wild = _asm(machine, "mov rax, qword ptr [0x1234]\nret")
    out = machine.run(wild, [], [I64], WASM_PAGE)
    assert out.kind == "fault" and "0x1234" in out.message
    loop = _asm(machine, "jmp 0")
    assert machine.run(loop, [], [], WASM_PAGE).kind == "hang"


def test_machine_memory_is_lazy_and_guarded(machine):
    from wasmlower.ir.types import I32
    load = _asm(machine, "mov r11, qword ptr [r15+8]\nmov eax, dword ptr [r11 + rdi]\nret")
    inside = machine.run(load, [(I32, WASM_PAGE - 4)], [I32], WASM_PAGE)
    assert inside.kind == "return"
    assert inside.values[0] & M32 == int.from_bytes(machine.fill(WASM_PAGE - 4, 4), "little")
    assert list(inside.pages) == [WASM_PAGE - 4096]
    straddle = machine.run(load, [(I32, WASM_PAGE - 2)], [I32], WASM_PAGE)
    assert (straddle.kind, straddle.trap) == ("trap", "heap_oob")   # the guard region


def test_a_correct_function_agrees_with_the_reference(machine):
    src = ("func @f(i32, i32) -> i32 {\nblock0(v0: i32, v1: i32):\n"
           "    v2 = load.i32 v0 [i32, 8]\n    v3 = rotl v2, v1\n"
           "    store v0, v3 [i8, 3]\n    return v3\n}")
    for args in ([0, 0], [100, 33], [WASM_PAGE - 12, 7], [WASM_PAGE - 11, 1], [M32, 1]):
        expected, got, diff = run_against_reference(src, args, machine=machine)
        assert diff is None, (args, expected, got)


@pytest.mark.parametrize("offset", [0x7FFFFFF8, 0x80000000, 0xFFFFFFF0, 0xFFFFFFFF])
@pytest.mark.parametrize("index", [0xFFFFFFF0, 0xFFFFFFFF, 0x80000000, 0x7FFFFFFF, 0x10])
def test_index_near_2_32_with_large_offsets(machine, index, offset):
    """CVE-2023-26489: zext(index) + offset is computed in 64 bits, never wrapped to 32."""
    src = ("func @f(i32) -> i64 {\nblock0(v0: i32):\n"
           f"    v1 = load.i64 v0 [i64, {offset}]\n    return v1\n}}")
    for mem_size in (WASM_PAGE, 1 << 32):
        expected, got, diff = run_against_reference(src, [index], mem_size, machine=machine)
        assert diff is None, (expected, got)
        if index + offset + 8 > mem_size:
            assert got.kind == "trap" and got.trap == "heap_oob"


# ---------------------------------------------------------------------------
# The checker over the real rules
# ---------------------------------------------------------------------------

def test_every_checked_x64_rule_agrees_with_the_reference(machine):
    isa = load_isa("x64")
    start = time.perf_counter()
    report = check_rule_semantics(isa, cases=100, instances=8, seed=1, machine=machine)
    elapsed = time.perf_counter() - start
    assert report.ok, report.format()
    checked = {r.label for r in isa.rules if r.op in CHECKED_OPS}
    assert {r.rule for r in report.results} == checked
    assert not report.skipped, report.format(verbose=False)
    assert all(r.cases >= 20 for r in report.results), report.format(verbose=False)
    # Address rules are exercised on both sides of the 2^31 offset boundary.
    ops = {r.label: r.op for r in isa.rules}
    assert sum(1 for r in report.results if ops[r.rule] in ("load", "store")) >= 30
    assert elapsed < 60, f"the semantic check took {elapsed:.0f} s"


def test_every_checked_x64_rule_agrees_with_the_reference_under_register_stress(machine):
    """Three registers per class: every spill and reuse path of the templates runs.

    This is how heap_addr_big's template was found writing {out} before its
    last read of {p} (the address became 2 * offset when both shared a
    register); fixed in isa/x64/ops.rules.
    """
    isa = load_isa("x64")
    report = check_rule_semantics(isa, cases=40, instances=4, seed=1, stress=True,
                                  machine=machine)
    assert not report.skipped, report.format(verbose=False)
    assert not report.failures, report.format()


# ---------------------------------------------------------------------------
# Wrong rules are caught
# ---------------------------------------------------------------------------

# (rule line as shipped, wrong replacement, what the counterexample shows)
MUTATIONS = {
    "swapped_operands": (
        r"\(isub i32 x y\)(\s+)=> \(sub32 x y\)", r"(isub i32 x y)\1=> (sub32 y x)",
        "return"),
    "wrong_shift_mask": (
        r"\(ishl i32 x \(iconst k\)\)(\s+)=> \(shl32_ri x \[mask\(k, 31\)\]\)",
        r"(ishl i32 x (iconst k))\1=> (shl32_ri x [mask(k, 15)])", "return"),
    "dirty_upper_half": (
        r"\(ireduce i32 x\)(\s+)=> \(movzx32_64 x\)", r"(ireduce i32 x)\1=> (copy64 x)",
        "zero-extended"),
    # The index and the offset added in 32 bits: wraps near 2^32 (CVE-2023-26489).
    "address_in_32_bits": (
        r"prio 1 \(load i32 i32 off p\) if simm32\(off\)(\s+)=> \(load32 p \[off\]\)",
        r"prio 1 (load i32 i32 off p) if simm32(off)\1=> (load32 (add32_ri p [off]) [0])",
        "trap heap_oob"),
    "big_offset_in_32_bits": (
        r"\(load i64 i64 off p\)(\s+)=> \(load64 \(heap_addr_big p \[off, off \+ 8\]\) \[0\]\)",
        r"(load i64 i64 off p)\1=> (load64 (add32_ri p [off]) [0])", "trap heap_oob"),
}


@pytest.fixture(scope="module")
def mutant_root(tmp_path_factory):
    """A private matcher cache: mutated rule sets must not land in the user's cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("WASMLOWER_CACHE_DIR", str(tmp_path_factory.mktemp("matcher-cache")))
    yield tmp_path_factory.mktemp("mutants")
    mp.undo()


def _copy_isa(root: Path, name: str, edit) -> tuple[Path, int]:
    """A copy of the x64 ISA whose lower.rules is ``edit(text)``; its dir, first changed line."""
    d = root / f"x64_{name}"
    if d.exists():
        shutil.rmtree(d)
    shutil.copytree(X64, d, ignore=shutil.ignore_patterns("__pycache__"))
    for py in d.glob("*.py"):          # the copy is outside the package: absolute imports
        py.write_text(re.sub(r"from \.\.\.", "from wasmlower.", py.read_text()))
    rules = d / "lower.rules"
    text = rules.read_text()
    new = edit(text)
    rules.write_text(new)
    line = next(i + 1 for i, (a, b) in enumerate(zip(text.splitlines(), new.splitlines()))
                if a != b)
    return d, line


def _mutant(root: Path, name: str) -> tuple[Path, int]:
    """A copy of the x64 ISA with mutation ``name``; returns its dir and the changed line."""
    pattern, replacement, _ = MUTATIONS[name]

    def edit(text: str) -> str:
        new, n = re.subn(pattern, replacement, text)
        assert n == 1, f"the rule to mutate ({name}) is no longer in isa/x64/lower.rules"
        return new

    return _copy_isa(root, name, edit)


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_a_wrong_rule_is_caught(mutant_root, machine, name):
    from wasmlower.lower import check_isa, load_isa_dir
    d, line = _mutant(mutant_root, name)
    isa = load_isa_dir(d)
    assert check_isa(isa).ok, "the mutant must pass the static checks"
    label = next(r.label for r in isa.rules if r.ast.line == line)
    report = check_rule_semantics(isa, cases=100, seed=2, rules=[label], machine=machine)
    result = report.result(label)
    assert result.counterexample is not None, report.format()
    cx = result.counterexample
    assert cx.rule == label and label.endswith(f"lower.rules:{line}")
    text = cx.format()
    assert MUTATIONS[name][2] in text and "expected:" in text and "got:" in text
    assert not report.ok


def test_the_report_names_rule_inputs_and_outcomes(mutant_root, machine):
    from wasmlower.lower import load_isa_dir
    d, _ = _mutant(mutant_root, "swapped_operands")
    isa = load_isa_dir(d)
    report = check_rule_semantics(isa, cases=50, rules=["isub"], machine=machine)
    [bad] = report.failures
    cx = bad.counterexample
    assert cx is not None
    x, y = (bits for name, _, bits in cx.inputs)
    assert f"return {((x - y) & M32):#x}" == cx.expected
    assert cx.got == f"return {((y - x) & M32):#x}"
    assert "(sub32 y x)" in cx.source and "x64_swapped_operands.sub32" in cx.lowered
    assert report.format().splitlines()[-1].endswith("1 with a counterexample, 0 not checked")
    # The other isub rules of the same ISA are still fine.
    assert len(report.results) == 4 and len(report.failures) == 1


# ---------------------------------------------------------------------------
# The tutorial of docs/rules.md
# ---------------------------------------------------------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs" / "rules.md"


def _doc_rules(marker: str) -> list[str]:
    """The rule lines of the code blocks right after ``<!-- marker -->`` in docs/rules.md."""
    text = DOCS.read_text()
    out = []
    for m in re.finditer(rf"<!-- {marker} -->\s*```\n(.*?)```", text, re.DOTALL):
        out += [ln for ln in m.group(1).splitlines() if ln.strip() and not ln.startswith("#")]
    return out


def _with_tutorial(root: Path, name: str, rules: list[str]) -> tuple[Path, int]:
    anchor = "prio 1 commutative (imul i32 x (iconst k))"

    def edit(text: str) -> str:
        assert anchor in text
        return text.replace(anchor, "\n".join(rules) + "\n" + anchor, 1)

    return _copy_isa(root, name, edit)


def test_the_tutorial_rules_check_and_run(mutant_root, machine):
    from wasmlower.ir import parse_function
    from wasmlower.lower import check_isa, load_isa_dir, lower_function
    rules = _doc_rules("tutorial-rules")
    assert len(rules) == 2 and all("if pow2(k)" in r for r in rules)
    d, line = _with_tutorial(mutant_root, "tutorial", rules)
    isa = load_isa_dir(d)
    assert check_isa(isa).ok, check_isa(isa).format()
    labels = [r.label for r in isa.rules if r.ast.line in (line, line + 1)]
    report = check_rule_semantics(isa, cases=100, rules=labels, machine=machine)
    assert report.ok and len(report.results) == 2, report.format()
    f = parse_function("func @f(i32) -> i32 {\nblock0(v0: i32):\n    v1 = iconst.i32 [8]\n"
                       "    v2 = imul v1, v0\n    return v2\n}")
    lower_function(f, isa)
    [shl] = [i for _, i in f.insts() if i.op.endswith(".shl32_ri")]
    assert shl.imm == (3,) and shl.rule == labels[0]


def test_the_tutorial_mistake_is_caught(mutant_root, machine):
    from wasmlower.lower import check_isa, load_isa_dir
    [wrong] = _doc_rules("tutorial-wrong-rule")
    assert "shl32_ri" in wrong and "imul i64" in wrong
    d, line = _with_tutorial(mutant_root, "tutorial_wrong", [wrong])
    isa = load_isa_dir(d)
    assert check_isa(isa).ok
    label = next(r.label for r in isa.rules if r.ast.line == line)
    report = check_rule_semantics(isa, cases=100, rules=[label], machine=machine)
    assert not report.ok and report.result(label).counterexample is not None

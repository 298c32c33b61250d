"""Tests of the wasm -> IR translator (wasmlower/wasm/translate.py).

- golden IR text for small functions, one per construct;
- every op group translates to the IR ops it should, and verifies;
- differential runs: translated functions executed by the reference IR
  interpreter (``ir_interp.py``) against Wasmtime on the same module;
- translate + verify every function of ../shared/bench and of every plain
  module of the mvp / 2.0-scalar spec test files;
- robustness: impossible input raises CodegenError with the wasm offset;
  huge functions do not recurse.

``PYTHONPATH=. python tests/wasm/test_translate.py`` prints the translation throughput.
"""

from __future__ import annotations

import csv
import glob
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from wasmlower.errors import CodegenError, MalformedError, Trap, WasmError
from wasmlower.ir import Function, parse_function, verify
from wasmlower.ir.ops import OPS, TRAP_MESSAGES
from wasmlower.wasm import FunctionBody, FuncType, Instr, Module, decode_module, validate
from wasmlower.wasm.translate import (
    LIBCALLS,
    SUPPORTED_OPS,
    remove_trivial_block_params,
    remove_unreachable_blocks,
    translate_function,
    translate_module,
)

try:
    from . import ir_interp
except ImportError:
    sys.path.insert(0, str(Path(__file__).parent))
    import ir_interp

wasmtime = pytest.importorskip("wasmtime")

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
BENCH = SHARED / "bench"
needs_bench = pytest.mark.skipif(not BENCH.is_dir(),
                                 reason=f"the bench programs are not at {BENCH}")
TESTSUITE = SHARED / "wasm-testsuite"


# --- the verifier -----------------------------------------------------------------------
# wasmlower/ir/verify.py (at the time of writing) takes the controlling type
# ``T`` of icmp/fcmp from their i32 *result*, so ``icmp`` of two i64s fails
# ("argument has type i64, expected T").  The op table says T is the first
# result's type only for ops whose result type is ``same``/``ctrl``.  Until
# verify.py is fixed, the tests of this module swap in a corrected argument
# check; the probe below turns the workaround off as soon as the fix lands.

def _verifier_mistypes_icmp() -> bool:
    f = parse_function("func @probe(i64) -> i32 {\nblock0(v0: i64):\n"
                       "    v1 = icmp v0, v0 [eq]\n    return v1\n}")
    try:
        verify(f)
    except CodegenError:
        return True
    return False


def _check_arg_types_fixed(f, b, inst, fail):
    info = inst.info
    codes = list(info.args)
    if info.variadic:
        fixed, rep = codes[:-2], codes[-2]
        if len(inst.args) < len(fixed):
            fail(inst, f"expects at least {len(fixed)} argument(s), got {len(inst.args)}")
        codes = fixed + [rep] * (len(inst.args) - len(fixed))
    elif len(codes) != len(inst.args):
        fail(inst, f"expects {len(codes)} argument(s), got {len(inst.args)}")
    if inst.results and info.result in ("same", "ctrl"):
        ctrl = inst.results[0].type
    else:
        ctrl = inst.args[0].type if inst.args else None
    for code, a in zip(codes, inst.args):
        t = a.type
        ok = (code == "any" or (code == "T" and t == ctrl) or (code == "int" and t.is_int)
              or (code == "float" and t.is_float) or code == t.value)
        if not ok:
            fail(inst, f"argument v{a.id} has type {t}, expected {code}")
    if info.result == "same" and inst.results and inst.results[0].type != inst.args[0].type:
        fail(inst, "result type differs from the first argument's")


@pytest.fixture(autouse=True)
def _fixed_verifier(monkeypatch: pytest.MonkeyPatch) -> None:
    if _verifier_mistypes_icmp():
        monkeypatch.setattr(sys.modules["wasmlower.ir.verify"], "_check_arg_types",
                            _check_arg_types_fixed)


# --- helpers ------------------------------------------------------------------------------

def wat(text: str) -> bytes:
    return wasmtime.wat2wasm(text)


def check_function(f: Function, module: Module | None = None) -> None:
    """verify, plus the translator's own guarantees."""
    verify(f)
    assert remove_unreachable_blocks_count(f) == 0, "unreachable block emitted"
    for b in f.blocks:
        for inst in b.insts:
            assert inst.loc is not None, f"no loc: {inst!r}"
    assert trivial_params(f) == [], f"trivial block params left in\n{f}"


def remove_unreachable_blocks_count(f: Function) -> int:
    n = len(f.blocks)
    copy = Function(f.name, f.params, f.results)
    copy.blocks = list(f.blocks)
    remove_unreachable_blocks(copy)
    return n - len(copy.blocks)


def trivial_params(f: Function) -> list:
    incoming: dict = {}
    for b in f.blocks:
        for call in b.insts[-1].targets:
            incoming.setdefault(call.block, []).append(call.args)
    out = []
    for b in f.blocks[1:]:
        for i, p in enumerate(b.params):
            vals = {args[i] for args in incoming.get(b, [])} - {p}
            if len(vals) <= 1:
                out.append(p)
    return out


def compile_wat(text: str) -> tuple[Module, list[Function]]:
    m = decode_module(wat(text))
    validate(m)
    funcs = translate_module(m)
    for f in funcs:
        check_function(f, m)
    return m, funcs


def ir_of(text: str, index: int = -1) -> str:
    """The IR text of one function of a wat module (the last by default)."""
    return str(compile_wat(text)[1][index])


def body_ops(f: Function) -> list[str]:
    return [i.op for b in f.blocks for i in b.insts]


def golden(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


# --- API ------------------------------------------------------------------------------------

def test_names_index_and_signature() -> None:
    m, funcs = compile_wat("""(module
      (import "env" "h" (func $h (param i32)))
      (func $first (param i32 f64) (result i64) i64.const 1)
      (func (result funcref externref) ref.null func ref.null extern))""")
    f0, f1 = funcs
    assert f0.name == "first" and f1.name == "f2"
    assert f0.meta["wasm_index"] == 1 and f1.meta["wasm_index"] == 2
    assert [str(t) for t in f0.params] == ["i32", "f64"]
    assert [str(t) for t in f1.results] == ["i64", "i64"]
    assert str(translate_function(m, 1)) == str(f1)


def test_libcall_table_covers_every_libcall() -> None:
    for name, (args, results) in LIBCALLS.items():
        assert re.fullmatch(r"[a-z_]+", name)
        assert all(t.is_int for t in args + results)


# --- golden IR --------------------------------------------------------------------------------

def test_golden_add() -> None:
    assert ir_of("(module (func (param i32 i32) (result i32)"
                 " local.get 0 local.get 1 i32.add))") == golden("""
func @f0(i32, i32) -> i32 {
block0(v0: i32, v1: i32):
    v2 = iadd v0, v1
    return v2
}""")


def test_golden_if_else_result() -> None:
    assert ir_of("""(module (func (param i32) (result i32)
      (if (result i32) (local.get 0) (then (i32.const 10)) (else (i32.const 20)))))""") \
        == golden("""
func @f0(i32) -> i32 {
block0(v0: i32):
    brif v0, block1, block2
block1:
    v1 = iconst.i32 [10]
    jump block3(v1)
block2:
    v2 = iconst.i32 [20]
    jump block3(v2)
block3(v3: i32):
    return v3
}""")


def test_golden_loop_locals_become_block_params() -> None:
    # sum = 0; i = n; do { sum += i; i -= 1 } while (i); return sum
    # n is read-only in the loop: no parameter for it; i and sum get one each.
    text = ir_of("""(module (func (param $n i32) (result i32) (local $i i32) (local $sum i32)
      (local.set $i (local.get $n))
      (loop $l
        (local.set $sum (i32.add (local.get $sum) (local.get $i)))
        (local.set $i (i32.sub (local.get $i) (i32.const 1)))
        (br_if $l (local.get $i)))
      (i32.add (local.get $sum) (local.get $n))))""")
    assert text == golden("""
func @f0(i32) -> i32 {
block0(v0: i32):
    v1 = iconst.i32 [0]
    jump block1(v1, v0)
block1(v2: i32, v3: i32):
    v4 = iadd v2, v3
    v5 = iconst.i32 [1]
    v6 = isub v3, v5
    brif v6, block1(v4, v6), block2
block2:
    v7 = iadd v4, v0
    return v7
}""")


def test_golden_div_traps() -> None:
    text = ir_of("""(module (func (param i32 i32) (result i32)
      (i32.div_s (local.get 0) (local.get 1))))""")
    assert text == golden("""
func @f0(i32, i32) -> i32 {
block0(v0: i32, v1: i32):
    trapz v1 [int_divz]
    v2 = iconst.i32 [-2147483648]
    v3 = icmp v0, v2 [eq]
    v4 = iconst.i32 [-1]
    v5 = icmp v1, v4 [eq]
    v6 = band v3, v5
    trapnz v6 [int_ovf]
    v7 = sdiv v0, v1
    return v7
}""")


def test_golden_br_table_default_last() -> None:
    text = ir_of("""(module (func (param i32) (result i32)
      (block $b2 (block $b1 (block $b0
        (br_table $b0 $b1 $b0 $b2 (local.get 0)))
        (return (i32.const 100)))
        (return (i32.const 101)))
      (i32.const 102)))""")
    assert text == golden("""
func @f0(i32) -> i32 {
block0(v0: i32):
    br_table v0, block1, block2, block1, block3
block1:
    v1 = iconst.i32 [100]
    return v1
block2:
    v2 = iconst.i32 [101]
    return v2
block3:
    v3 = iconst.i32 [102]
    return v3
}""")


def test_golden_multi_value_block_and_loop_params() -> None:
    text = ir_of("""(module (func (param i32 i32) (result i32 i32)
      (local.get 0) (local.get 1)
      (block (param i32 i32) (result i32 i32)
        (br_if 0 (local.get 0))
        (i32.add) (i32.const 5))
      (loop (param i32 i32) (result i32 i32)
        (i32.add) (i32.const 1)
        (br_if 0 (local.get 0)))))""")
    assert text == golden("""
func @f0(i32, i32) -> i32, i32 {
block0(v0: i32, v1: i32):
    brif v0, block2(v0, v1), block1
block1:
    v2 = iadd v0, v1
    v3 = iconst.i32 [5]
    jump block2(v2, v3)
block2(v4: i32, v5: i32):
    jump block3(v4, v5)
block3(v6: i32, v7: i32):
    v8 = iadd v6, v7
    v9 = iconst.i32 [1]
    brif v0, block3(v8, v9), block4
block4:
    return v8, v9
}""")


def test_trivial_block_results_are_removed() -> None:
    # Both ways out of the block carry (v0, v1): the next block needs no params.
    text = ir_of("""(module (func (param i32 i32) (result i32 i32)
      (local.get 0) (local.get 1)
      (block (param i32 i32) (result i32 i32) (br_if 0 (local.get 0)))))""")
    assert text == golden("""
func @f0(i32, i32) -> i32, i32 {
block0(v0: i32, v1: i32):
    brif v0, block2, block1
block1:
    jump block2
block2:
    return v0, v1
}""")


def test_golden_unreachable_code_is_skipped() -> None:
    text = ir_of("""(module (func (param i32) (result i32)
      (block (result i32)
        (br 0 (i32.const 1))
        (i32.add (i32.const 2) (i32.const 3))
        (if (local.get 0) (then (loop (br 0))))
        (drop (call 0 (i32.const 4))))
      (return)
      (unreachable)))""")
    assert text == golden("""
func @f0(i32) -> i32 {
block0(v0: i32):
    v1 = iconst.i32 [1]
    return v1
}""")


def test_golden_memory_and_globals() -> None:
    text = ir_of("""(module (memory 1) (global $g (mut i64) (i64.const 0))
      (func (param i32)
        (i64.store32 offset=8 (local.get 0) (i64.load16_s offset=4 (local.get 0)))
        (global.set $g (i64.extend_i32_u (i32.load8_u (local.get 0))))
        (drop (memory.grow (memory.size)))))""")
    assert text == golden("""
func @f0(i32) {
block0(v0: i32):
    v1 = load.i64 v0 [i16s, 4]
    store v0, v1 [i32, 8]
    v2 = load.i32 v0 [i8u, 0]
    v3 = uextend.i64 v2
    global_set v3 [0]
    v4 = memory_size
    v5 = libcall.i32 v4 [memory_grow]
    return
}""")


def test_golden_locals_start_at_zero() -> None:
    text = ir_of("""(module (func (result i32 i64 f32 f64 funcref)
      (local i32 i64 f32 f64 funcref)
      (local.get 0) (local.get 1) (local.get 2) (local.get 3) (local.get 4)))""")
    assert text == golden("""
func @f0() -> i32, i64, f32, f64, i64 {
block0:
    v0 = iconst.i32 [0]
    v1 = iconst.i64 [0]
    v2 = fconst.f32 [0x0]
    v3 = fconst.f64 [0x0]
    return v0, v1, v2, v3, v1
}""")


@needs_bench
def test_golden_round_trips_through_the_parser() -> None:
    _, funcs = compile_wat((BENCH / "interp.wat").read_text())
    for f in funcs:
        assert str(parse_function(str(f))) == str(f)


# --- op groups ---------------------------------------------------------------------------------

def _single(text: str) -> list[tuple[str, tuple, list[str]]]:
    """(op, imm, result types) of every instruction of the last function."""
    f = compile_wat(text)[1][-1]
    return [(i.op, i.imm, [str(r.type) for r in i.results]) for b in f.blocks for i in b.insts]


INT_BINARY = {"add": "iadd", "sub": "isub", "mul": "imul", "and": "band", "or": "bor",
              "xor": "bxor", "shl": "ishl", "shr_s": "sshr", "shr_u": "ushr", "rotl": "rotl",
              "rotr": "rotr"}
INT_CMP = {"eq": "eq", "ne": "ne", "lt_s": "slt", "lt_u": "ult", "gt_s": "sgt", "gt_u": "ugt",
           "le_s": "sle", "le_u": "ule", "ge_s": "sge", "ge_u": "uge"}


@pytest.mark.parametrize("t", ["i32", "i64"])
def test_integer_ops(t: str) -> None:
    for w, ir in INT_BINARY.items():
        insts = _single(f"(module (func (param {t} {t}) (result {t}) "
                        f"({t}.{w} (local.get 0) (local.get 1))))")
        assert insts == [(ir, (), [t]), ("return", (), [])], w
    for w, cc in INT_CMP.items():
        insts = _single(f"(module (func (param {t} {t}) (result i32) "
                        f"({t}.{w} (local.get 0) (local.get 1))))")
        assert insts == [("icmp", (cc,), ["i32"]), ("return", (), [])], w
    for w in ("clz", "ctz", "popcnt"):
        insts = _single(f"(module (func (param {t}) (result {t}) ({t}.{w} (local.get 0))))")
        assert insts[0] == (w, (), [t])
    insts = _single(f"(module (func (param {t}) (result i32) ({t}.eqz (local.get 0))))")
    assert insts == [("iconst", (0,), [t]), ("icmp", ("eq",), ["i32"]), ("return", (), [])]
    for w, ir in (("div_u", "udiv"), ("rem_u", "urem"), ("rem_s", "srem")):
        insts = _single(f"(module (func (param {t} {t}) (result {t}) "
                        f"({t}.{w} (local.get 0) (local.get 1))))")
        assert [i[0] for i in insts] == ["trapz", ir, "return"], w
        assert insts[0][1] == ("int_divz",)


def test_constant_divisors_need_no_checks() -> None:
    ops = [i[0] for i in _single("""(module (func (param i32) (result i32)
      (i32.div_s (local.get 0) (i32.const 7))))""")]
    assert ops == ["iconst", "sdiv", "return"]
    ops = [i[0] for i in _single("""(module (func (param i64) (result i64)
      (i64.div_s (local.get 0) (i64.const -1))))""")]
    assert "trapnz" in ops and "trapz" not in ops
    ops = [i[0] for i in _single("""(module (func (param i32) (result i32)
      (i32.rem_u (local.get 0) (i32.const 0))))""")]
    assert ops[:2] == ["iconst", "trapz"]


def test_integer_conversions() -> None:
    cases = {
        "(i32.wrap_i64 (local.get 1))": ("ireduce", (), ["i32"]),
        "(i64.extend_i32_s (local.get 0))": ("sextend", (), ["i64"]),
        "(i64.extend_i32_u (local.get 0))": ("uextend", (), ["i64"]),
        "(i32.extend8_s (local.get 0))": ("sext_in", (8,), ["i32"]),
        "(i32.extend16_s (local.get 0))": ("sext_in", (16,), ["i32"]),
        "(i64.extend8_s (local.get 1))": ("sext_in", (8,), ["i64"]),
        "(i64.extend16_s (local.get 1))": ("sext_in", (16,), ["i64"]),
        "(i64.extend32_s (local.get 1))": ("sext_in", (32,), ["i64"]),
    }
    for expr, expected in cases.items():
        insts = _single(f"(module (func (param i32 i64) {expr} drop))")
        assert insts[0] == expected, expr


@pytest.mark.parametrize("t", ["f32", "f64"])
def test_float_ops(t: str) -> None:
    for w in ("add", "sub", "mul", "div", "min", "max", "copysign"):
        insts = _single(f"(module (func (param {t} {t}) (result {t}) "
                        f"({t}.{w} (local.get 0) (local.get 1))))")
        assert insts[0] == ("f" + w, (), [t])
    for w in ("abs", "neg", "ceil", "floor", "trunc", "nearest", "sqrt"):
        insts = _single(f"(module (func (param {t}) (result {t}) ({t}.{w} (local.get 0))))")
        assert insts[0] == ("f" + w, (), [t])
    for w in ("eq", "ne", "lt", "gt", "le", "ge"):
        insts = _single(f"(module (func (param {t} {t}) (result i32) "
                        f"({t}.{w} (local.get 0) (local.get 1))))")
        assert insts[0] == ("fcmp", (w,), ["i32"])


def test_float_constants_are_bit_patterns() -> None:
    insts = _single("(module (func (result f32 f64) (f32.const -0.0) (f64.const nan:0x4)))")
    assert insts[0] == ("fconst", (0x80000000,), ["f32"])
    assert insts[1] == ("fconst", (0x7FF0000000000004,), ["f64"])


def test_float_conversions() -> None:
    cases = {}
    for r in ("i32", "i64"):
        for s in ("f32", "f64"):
            p = 2 if s == "f32" else 3
            for sign, word in (("s", "sint"), ("u", "uint")):
                cases[f"({r}.trunc_{s}_{sign} (local.get {p}))"] = (f"fcvt_to_{word}", r)
                cases[f"({r}.trunc_sat_{s}_{sign} (local.get {p}))"] = (f"fcvt_to_{word}_sat", r)
                cases[f"({s}.convert_{r}_{sign} (local.get {0 if r == 'i32' else 1}))"] = \
                    (f"fcvt_from_{word}", s)
    cases.update({
        "(f32.demote_f64 (local.get 3))": ("fdemote", "f32"),
        "(f64.promote_f32 (local.get 2))": ("fpromote", "f64"),
        "(i32.reinterpret_f32 (local.get 2))": ("bitcast", "i32"),
        "(i64.reinterpret_f64 (local.get 3))": ("bitcast", "i64"),
        "(f32.reinterpret_i32 (local.get 0))": ("bitcast", "f32"),
        "(f64.reinterpret_i64 (local.get 1))": ("bitcast", "f64"),
    })
    for expr, (op, t) in cases.items():
        insts = _single(f"(module (func (param i32 i64 f32 f64) {expr} drop))")
        assert insts[0] == (op, (), [t]), expr


def test_loads_and_stores() -> None:
    loads = {"i32.load": ("i32", "i32"), "i64.load": ("i64", "i64"), "f32.load": ("f32", "f32"),
             "f64.load": ("f64", "f64"), "i32.load8_s": ("i8s", "i32"),
             "i32.load8_u": ("i8u", "i32"), "i32.load16_s": ("i16s", "i32"),
             "i32.load16_u": ("i16u", "i32"), "i64.load8_s": ("i8s", "i64"),
             "i64.load8_u": ("i8u", "i64"), "i64.load16_s": ("i16s", "i64"),
             "i64.load16_u": ("i16u", "i64"), "i64.load32_s": ("i32s", "i64"),
             "i64.load32_u": ("i32u", "i64")}
    for op, (kind, t) in loads.items():
        insts = _single(f"(module (memory 1) (func (param i32) "
                        f"({op} offset=4294967295 (local.get 0)) drop))")
        assert insts[0] == ("load", (kind, 4294967295), [t]), op
    stores = {"i32.store": ("i32", "i32"), "i64.store": ("i64", "i64"),
              "f32.store": ("f32", "f32"), "f64.store": ("f64", "f64"),
              "i32.store8": ("i8", "i32"), "i32.store16": ("i16", "i32"),
              "i64.store8": ("i8", "i64"), "i64.store16": ("i16", "i64"),
              "i64.store32": ("i32", "i64")}
    for op, (kind, t) in stores.items():
        f = compile_wat(f"(module (memory 1) (func (param i32 {t}) "
                        f"({op} offset=3 (local.get 0) (local.get 1))))")[1][0]
        inst = f.entry.insts[0]
        assert (inst.op, inst.imm, str(inst.args[1].type)) == ("store", (kind, 3), t), op


def test_calls() -> None:
    f = compile_wat("""(module
      (type $t (func (param i64 f32) (result i32 f64)))
      (table 2 funcref)
      (func $callee (param i64 f32) (result i32 f64) (i32.const 1) (f64.const 2))
      (func (param i32) (result i32)
        (call $callee (i64.const 5) (f32.const 1)) drop drop
        (call_indirect (type $t) (i64.const 6) (f32.const 2) (local.get 0))
        drop))""")[1][1]
    calls = [i for b in f.blocks for i in b.insts if i.op.startswith("call")]
    c, ci = calls
    assert str(c).endswith("call.i32.f64 v1, v2 [0]")
    assert [str(r.type) for r in ci.results] == ["i32", "f64"]
    assert ci.imm == (0, 0) and ci.args[0] is f.entry.params[0]
    assert [str(a.type) for a in ci.args] == ["i32", "i64", "f32"]


def test_select_and_references() -> None:
    insts = _single("""(module (elem declare func $f)
      (func $f (param i32 f64 f64) (result f64 i32 i32 funcref)
      (select (local.get 1) (local.get 2) (local.get 0))
      (ref.is_null (ref.null extern))
      (ref.is_null (ref.func $f))
      (select (result funcref) (ref.null func) (ref.func $f) (local.get 0))))""")
    ops = [(op, imm) for op, imm, _ in insts]
    assert ops[0] == ("select", ())
    assert ("func_ref", (0,)) in ops
    assert ops.count(("icmp", ("eq",))) == 2
    assert insts[-2] == ("select", (), ["i64"])


def test_bulk_memory_and_table_libcalls() -> None:
    f = compile_wat("""(module (memory 1) (table $t0 2 funcref) (table $t1 3 externref)
      (data $d "abc") (elem $e func 0)
      (func (param i32 i64)
        (memory.fill (local.get 0) (i32.const 7) (i32.const 9))
        (memory.copy (local.get 0) (i32.const 1) (i32.const 2))
        (memory.init $d (local.get 0) (i32.const 1) (i32.const 2))
        (data.drop $d)
        (drop (table.get $t1 (i32.const 1)))
        (table.set $t1 (i32.const 1) (ref.null extern))
        (drop (table.size $t1))
        (drop (table.grow $t1 (ref.null extern) (i32.const 3)))
        (table.fill $t1 (i32.const 0) (ref.null extern) (i32.const 1))
        (table.copy $t0 $t0 (i32.const 0) (i32.const 1) (i32.const 1))
        (table.init $t0 $e (i32.const 0) (i32.const 0) (i32.const 1))
        (elem.drop $e)))""")[1][0]
    consts = {}
    seen = []
    for inst in f.entry.insts:
        if inst.op == "iconst":
            consts[inst.result] = inst.imm[0]
        if inst.op == "libcall":
            name = inst.imm[0]
            args, results = LIBCALLS[name]
            assert [a.type for a in inst.args] == list(args), name
            assert [r.type for r in inst.results] == list(results), name
            seen.append((name, [consts.get(a, "?") for a in inst.args]))
    assert seen == [
        ("memory_fill", ["?", 7, 9]), ("memory_copy", ["?", 1, 2]),
        ("memory_init", [0, "?", 1, 2]), ("data_drop", [0]),
        ("table_get", [1, 1]), ("table_set", [1, 1, 0]), ("table_size", [1]),
        ("table_grow", [1, 0, 3]), ("table_fill", [1, 0, 0, 1]),
        ("table_copy", [0, 0, 0, 1, 1]), ("table_init", [0, 0, 0, 0, 1]), ("elem_drop", [0]),
    ]


@needs_bench
def test_every_ir_op_used_exists_and_locs_are_instruction_offsets() -> None:
    data = (BENCH / "compile" / "big.wasm").read_bytes()
    m = decode_module(data)
    for i, f in enumerate(translate_module(m)):
        offsets = {ins.offset for ins in m.codes[i].body} | {m.codes[i].offset}
        for b in f.blocks:
            for inst in b.insts:
                assert inst.op in OPS
                assert inst.loc in offsets


def test_supported_ops_cover_the_decoder() -> None:
    from wasmlower.wasm import opcodes
    names = {n for n in opcodes.NAMES if n and not n.startswith("<")}
    names |= set(opcodes.FC_NAMES.values())
    assert names - SUPPORTED_OPS == set()


# --- control-flow shapes -------------------------------------------------------------------------

def test_if_without_else_passes_params_through() -> None:
    f = compile_wat("""(module (func (param i32 i32) (result i32)
      (local.get 1)
      (if (param i32) (result i32) (local.get 0)
        (then (i32.const 1) (i32.add)))))""")[1][0]
    brif = f.entry.insts[-1]
    assert brif.op == "brif" and brif.targets[1].args == [f.entry.params[1]]


def test_if_with_unreachable_then_and_else() -> None:
    _, funcs = compile_wat("""(module (func (param i32) (result i32)
      (if (result i32) (local.get 0)
        (then (return (i32.const 1)))
        (else (i32.const 2))))
      (func (param i32) (result i32)
      (if (result i32) (local.get 0)
        (then (unreachable))
        (else (unreachable)))))""")
    assert body_ops(funcs[1]) == ["brif", "trap", "trap"]


def test_branch_to_function_label() -> None:
    f = compile_wat("""(module (func (param i32) (result i32)
      (br_if 0 (i32.const 7) (local.get 0))
      (drop)
      (br_table 0 0 (i32.const 8) (local.get 0))))""")[1][0]
    rets = [i for b in f.blocks for i in b.insts if i.op == "return"]
    assert len(rets) == 1 and len(rets[0].args) == 1


def test_trivial_params_removed_after_nested_loops() -> None:
    # x is never written inside the loops: no block parameter may carry it.
    f = compile_wat("""(module (func (param $x i32) (param $n i32) (result i32) (local $i i32)
      (loop $outer
        (loop $inner
          (local.set $i (i32.add (local.get $i) (local.get $x)))
          (br_if $inner (i32.lt_u (local.get $i) (local.get $n))))
        (if (local.get $x) (then (nop)) (else (nop)))
        (br_if $outer (i32.lt_u (local.get $i) (i32.mul (local.get $n) (i32.const 2)))))
      (local.get $x)))""")[1][0]
    params = [p for b in f.blocks[1:] for p in b.params]
    assert len(params) == 2                      # i in each loop header
    assert f.blocks[-1].insts[-1].args == [f.entry.params[0]]


def test_remove_trivial_block_params_as_a_pass() -> None:
    f = parse_function("""func @t(i32) -> i32 {
block0(v0: i32):
    jump block1(v0, v0)
block1(v1: i32, v2: i32):
    v3 = iconst.i32 [1]
    v4 = iadd v2, v3
    brif v4, block1(v1, v4), block2(v1)
block2(v5: i32):
    return v5
}""")
    remove_trivial_block_params(f)
    verify(f)
    assert [len(b.params) for b in f.blocks] == [1, 1, 0]
    assert f.blocks[2].insts[-1].args == [f.entry.params[0]]


def test_remove_unreachable_blocks_as_a_pass() -> None:
    f = parse_function("""func @t() {
block0:
    jump block2
block1:
    jump block2
block2:
    return
}""")
    remove_unreachable_blocks(f)
    assert [b.id for b in f.blocks] == [0, 2]


# --- robustness --------------------------------------------------------------------------------

def _fake_module(body: list[tuple[str, object]], params=(), results=(), locals_=()) -> Module:
    instrs = [Instr(op, imm, 0x40 + i) for i, (op, imm) in enumerate(body)]
    m = Module(types=[FuncType(tuple(params), tuple(results))], funcs=[0])
    m.codes = [FunctionBody(list(locals_), instrs, 0x3E)]
    return m


def test_unsupported_instruction_names_the_offset() -> None:
    m = _fake_module([("i32.const", 1), ("i8x16.splat", None), ("drop", None), ("end", None)])
    with pytest.raises(CodegenError, match=r"unsupported instruction i8x16\.splat at offset 0x41"):
        translate_function(m, 0)


@pytest.mark.parametrize("body", [
    [("i32.add", None), ("end", None)],                       # stack underflow
    [("br", 5), ("end", None)],                               # bad depth
    [("local.get", 3), ("end", None)],                        # unknown local
    [("else", None), ("end", None)],                          # else outside if
    [("block", None), ("end", None)],                         # body ends inside a block
    [("end", None), ("end", None)],                           # code after the last end
    [("call", 9), ("end", None)],                             # unknown function
    [("i32.const", 1), ("end", None)],                        # stack height at the end
])
def test_impossible_input_raises_codegen_error(body: list) -> None:
    m = _fake_module(body)
    with pytest.raises(CodegenError, match="offset 0x"):
        translate_function(m, 0)


def test_huge_functions_do_not_recurse() -> None:
    # 3000 br_ifs make a 3000-block chain of single predecessors, then 1500
    # if/else merges; reading the local at the end walks all of them.
    n = 3000
    body = "(block " + "(br_if 0 (local.get 1))" * n + ")"
    body += "(if (local.get 1) (then) (else))" * 1500
    body += "(local.get 0)"
    _, funcs = compile_wat(f"(module (func (param i32 i32) (result i32) {body}))")
    f = funcs[0]
    assert f.blocks[-1].insts[-1].args == [f.entry.params[0]]
    nested = "(block " * 2000 + "(br 1000)" + ")" * 2000
    compile_wat(f"(module (func {nested}))")


# --- differential: IR interpreter vs Wasmtime ------------------------------------------------------

DIFF_WAT = r"""(module
  (type $i2i (func (param i32) (result i32)))
  (memory 1)
  (global $g (mut i32) (i32.const 10))
  (table 4 funcref)
  (elem (i32.const 0) $fib $sq)
  (func $fac (export "fac") (param i64) (result i64)
    (if (result i64) (i64.le_u (local.get 0) (i64.const 1))
      (then (i64.const 1))
      (else (i64.mul (local.get 0) (call $fac (i64.sub (local.get 0) (i64.const 1)))))))
  (func (export "fac_iter") (param $n i64) (result i64) (local $r i64)
    (local.set $r (i64.const 1))
    (block $done (loop $l
      (br_if $done (i64.le_u (local.get $n) (i64.const 1)))
      (local.set $r (i64.mul (local.get $r) (local.get $n)))
      (local.set $n (i64.sub (local.get $n) (i64.const 1)))
      (br $l)))
    (local.get $r))
  (func $fib (export "fib") (param i32) (result i32)
    (if (result i32) (i32.lt_s (local.get 0) (i32.const 2))
      (then (local.get 0))
      (else (i32.add (call $fib (i32.sub (local.get 0) (i32.const 1)))
                     (call $fib (i32.sub (local.get 0) (i32.const 2)))))))
  (func $sq (param i32) (result i32) (i32.mul (local.get 0) (local.get 0)))
  (func (export "fib_iter") (param $n i32) (result i32) (local $a i32) (local $b i32) (local $t i32)
    (local.set $b (i32.const 1))
    (block $e (loop $l
      (br_if $e (i32.eqz (local.get $n)))
      (local.set $t (i32.add (local.get $a) (local.get $b)))
      (local.set $a (local.get $b))
      (local.set $b (local.get $t))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $l)))
    (local.get $a))
  (func (export "switch") (param i32) (result i32) (local $r i32)
    (block $d (block $c (block $b (block $a
      (br_table $a $b $c $b $d (local.get 0)))
      (local.set $r (i32.const 100)) (br $d))
      (local.set $r (i32.const 200)) (br $d))
      (local.set $r (i32.const 300)))
    (i32.add (local.get $r) (global.get $g)))
  (func (export "multi") (param i32 i32) (result i32 i32 i32)
    (local.get 0) (local.get 1)
    (block (param i32 i32) (result i32 i32 i32)
      (i32.add) (local.get 0)
      (br_if 0 (i32.const 99) (local.get 1))
      (drop) (i32.const -1))
    )
  (func (export "loop_params") (param $n i32) (result i32 i32) (local $c i32)
    ;; (1 + 2 + ... + count, count) carried on the operand stack through the loop
    (i32.const 0) (i32.const 0)
    (loop $l (param i32 i32) (result i32 i32)
      (i32.const 1) (i32.add)
      (local.set $c)
      (local.get $c) (i32.add)
      (local.get $c)
      (br_if $l (i32.lt_u (local.get $c) (local.get $n)))))
  (func (export "mem") (param $p i32) (param $v i64) (result i64)
    (i64.store offset=3 (local.get $p) (local.get $v))
    (i32.store8 (i32.const 0) (i32.const 0x1ff))
    (i64.add (i64.load8_s offset=3 (local.get $p))
      (i64.add (i64.load16_u offset=4 (local.get $p))
        (i64.add (i64.load32_s offset=5 (local.get $p)) (i64.load32_u (i32.const 0))))))
  (func (export "div") (param i32 i32) (result i32 i32 i32 i32)
    (i32.div_s (local.get 0) (local.get 1)) (i32.div_u (local.get 0) (local.get 1))
    (i32.rem_s (local.get 0) (local.get 1)) (i32.rem_u (local.get 0) (local.get 1)))
  (func (export "div64") (param i64 i64) (result i64 i64)
    (i64.div_s (local.get 0) (local.get 1)) (i64.rem_s (local.get 0) (local.get 1)))
  (func (export "bits") (param i32 i64) (result i32 i32 i32 i64 i64 i32 i64 i64)
    (i32.rotl (local.get 0) (i32.const 35)) (i32.shr_s (local.get 0) (i32.const 33))
    (i32.clz (local.get 0)) (i64.ctz (local.get 1)) (i64.popcnt (local.get 1))
    (i32.extend8_s (local.get 0)) (i64.extend32_s (local.get 1))
    (i64.rotr (local.get 1) (i64.extend_i32_u (local.get 0))))
  (func (export "cmp") (param i32 i32) (result i32)
    (i32.add (i32.lt_s (local.get 0) (local.get 1))
      (i32.add (i32.mul (i32.lt_u (local.get 0) (local.get 1)) (i32.const 2))
        (i32.mul (select (i32.const 4) (i32.const 8) (i32.ge_s (local.get 0) (local.get 1)))
                 (i32.const 1)))))
  (func (export "fops") (param f64 f64) (result f64 f64 f64 f64 f32 i32)
    (f64.min (local.get 0) (local.get 1)) (f64.max (local.get 0) (local.get 1))
    (f64.nearest (local.get 0)) (f64.copysign (f64.sqrt (local.get 1)) (local.get 0))
    (f32.demote_f64 (f64.div (local.get 0) (local.get 1)))
    (f64.ne (local.get 0) (local.get 1)))
  (func (export "fconv") (param f32 i64) (result i32 i64 f32 f64 i32)
    (i32.trunc_sat_f32_s (local.get 0)) (i64.trunc_f32_u (local.get 0))
    (f32.convert_i64_u (local.get 1)) (f64.convert_i64_s (local.get 1))
    (i32.reinterpret_f32 (f32.floor (local.get 0))))
  (func (export "indirect") (param i32 i32) (result i32)
    (call_indirect (type $i2i) (local.get 1) (local.get 0)))
  (func (export "grow") (param i32) (result i32 i32)
    (memory.grow (local.get 0)) (memory.size))
  (func (export "bulk") (param i32) (result i32)
    (memory.fill (i32.const 100) (local.get 0) (i32.const 10))
    (memory.copy (i32.const 105) (i32.const 100) (i32.const 10))
    (i32.load (i32.const 112)))
  (func (export "setg") (param i32) (result i32)
    (global.set $g (local.get 0)) (global.get $g))
  (func (export "unreach") (param i32) (result i32)
    (block (br_if 0 (local.get 0)) (unreachable)) (i32.const 5))
)"""

DIFF_CALLS = [
    ("fac", [(0,), (1,), (5,), (20,), (25,)]),
    ("fac_iter", [(0,), (5,), (21,)]),
    ("fib", [(0,), (1,), (10,), (15,)]),
    ("fib_iter", [(0,), (1,), (30,), (50,)]),
    ("switch", [(0,), (1,), (2,), (3,), (4,), (5,), (-1,)]),
    ("multi", [(1, 2), (3, 0), (-5, 7)]),
    ("loop_params", [(1,), (5,), (100,)]),
    ("mem", [(0, 0x0102030405060708), (100, -1), (65530, 1), (70000, 1)]),
    ("div", [(7, 2), (-7, 2), (7, -2), (-2**31, -1), (5, 0), (-2**31, 1), (0, 3)]),
    ("div64", [(7, -2), (-2**63, -1), (1, 0), (-2**63, 2)]),
    ("bits", [(0, 0), (-1, -1), (0x80, 0x1234567800000000), (1 << 31, 1 << 63)]),
    ("cmp", [(1, 2), (2, 1), (-1, 1), (1, -1), (3, 3)]),
    ("fops", [(1.5, 2.5), (-0.0, 0.0), (2.5, -4.0), (math.nan, 1.0), (math.inf, 3.0),
              (-0.5, 0.0), (1e300, 1e-300)]),
    ("fconv", [(1.5, 3), (-1.5, -3), (3e9, 2**63 + 12345), (math.nan, 1), (2e19, 2**53 + 1),
               (-0.75, 2**64 - 1)]),
    ("indirect", [(0, 10), (1, 7), (2, 1), (9, 1)]),
    ("grow", [(0,), (1,), (70000,)]),
    ("bulk", [(0x41,), (0x1FF,)]),
    ("setg", [(3,), (-3,)]),
    ("unreach", [(1,), (0,)]),
]

# Substrings of Wasmtime's trap messages for each IR trap code.
WASMTIME_TRAPS = {"int_divz": "divide by zero", "int_ovf": "integer overflow",
                  "heap_oob": "out of bounds memory", "bad_conv": "invalid conversion",
                  "unreachable": "unreachable", "indirect_null": "uninitialized element",
                  "bad_sig": "indirect call type mismatch", "indirect_oob": "undefined element",
                  "table_oob": "out of bounds table access"}
if "indirect_oob" not in TRAP_MESSAGES:
    WASMTIME_TRAPS["table_oob"] = "undefined element"


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if math.isnan(a) and math.isnan(b):
            return True
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return a == b


def _wasmtime_results(func, store, args):
    out = func(store, *args)
    if out is None:
        return []
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _run_both(wasm: bytes, calls: list) -> int:
    m = decode_module(wasm)
    validate(m)
    funcs = translate_module(m)
    for f in funcs:
        check_function(f, m)
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    inst = wasmtime.Instance(store, wasmtime.Module(engine, wasm), [])
    exports = inst.exports(store)
    vm = ir_interp.Instance(m, funcs)
    n = 0
    for name, arglists in calls:
        for args in arglists:
            try:
                expected = _wasmtime_results(exports[name], store, args)
                wt_trap = None
            except wasmtime.Trap as e:
                expected, wt_trap = None, str(e)
            try:
                got = vm.invoke(name, *args)
            except Trap as e:
                assert wt_trap is not None, f"{name}{args}: IR trapped ({e.kind}), wasmtime not"
                assert WASMTIME_TRAPS[e.kind] in wt_trap, (name, args, e.kind, wt_trap)
                n += 1
                continue
            assert wt_trap is None, f"{name}{args}: wasmtime trapped ({wt_trap}), IR gave {got}"
            assert len(got) == len(expected)
            assert all(_same(a, b) for a, b in zip(got, expected)), (name, args, got, expected)
            n += 1
    return n


def test_interpreter_matches_wasmtime() -> None:
    assert _run_both(wat(DIFF_WAT), DIFF_CALLS) == sum(len(a) for _, a in DIFF_CALLS)


# Bench programs that run quickly in the IR interpreter (sieve and matmul take minutes).
QUICK_BENCH = ["fib", "qsort", "sha256", "xorshift64", "nbody", "interp"]


@needs_bench
@pytest.mark.parametrize("name", QUICK_BENCH)
def test_bench_program_runs_translated(name: str) -> None:
    entry = next(b for b in json.loads((BENCH / "bench.json").read_text())
                 if b["file"] == f"{name}.wasm")
    m = decode_module((BENCH / entry["file"]).read_bytes())
    vm = ir_interp.Instance(m, translate_module(m))
    assert vm.invoke(entry["export"], *entry["quick_args"]) == [entry["quick_expected"]]


# --- corpora: bench and spec test suite --------------------------------------------------------

BENCH_FILES = sorted(glob.glob(str(BENCH / "*.wasm")) + glob.glob(str(BENCH / "compile/*.wasm")))


@pytest.mark.parametrize("path", BENCH_FILES, ids=[Path(p).name for p in BENCH_FILES])
def test_bench_translates_and_verifies(path: str) -> None:
    m = decode_module(Path(path).read_bytes())
    validate(m)
    funcs = translate_module(m)
    assert len(funcs) == len(m.codes)
    for f in funcs:
        check_function(f, m)


def _spec_files() -> list[str]:
    manifest = TESTSUITE / "MANIFEST.tsv"
    if not manifest.exists():
        return []
    with manifest.open() as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return [r["file"] for r in rows if r["tier"] in ("mvp", "2.0-scalar")]


def _top_level_forms(text: str):
    """(start index, text) of every top-level parenthesised form of a .wast file."""
    i, n, depth, start = 0, len(text), 0, 0
    while i < n:
        c = text[i]
        if c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif text.startswith(";;", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        elif text.startswith("(;", i):
            level, i = 1, i + 2
            while i < n and level:
                if text.startswith("(;", i):
                    level, i = level + 1, i + 2
                elif text.startswith(";)", i):
                    level, i = level - 1, i + 2
                else:
                    i += 1
            continue
        elif c == "(":
            if depth == 0:
                start = i
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                yield start, text[start:i + 1]
        i += 1


def spec_modules(wast: Path) -> list[tuple[int, bytes]]:
    """(line, binary) of every plain ``module`` command of a .wast file.

    wabt's wast2json does the work; for the files it rejects (newer syntax
    elsewhere in the file) the top-level ``(module ...)`` forms are cut out
    of the text and converted one by one with ``wasmtime.wat2wasm``.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "m.json")
        proc = subprocess.run(["wast2json", "--enable-all", str(wast), "-o", out],
                              check=False, capture_output=True)
        if proc.returncode == 0:
            mods = []
            for c in json.loads(Path(out).read_text())["commands"]:
                if c["type"] == "module":
                    mods.append((c["line"], Path(tmp, c["filename"]).read_bytes()))
            return mods
    text = wast.read_text()
    mods = []
    for start, form in _top_level_forms(text):
        m = re.match(r"\(\s*module\b\s*(\$\S+\s*)?(\w+)?", form)
        if m and m.group(2) not in ("quote", "definition", "instance"):
            mods.append((text.count("\n", 0, start) + 1, wat(form)))
    return mods


SPEC_FILES = _spec_files()


@pytest.mark.skipif(not SPEC_FILES, reason="no spec test suite")
@pytest.mark.parametrize("name", SPEC_FILES)
def test_spec_modules_translate_and_verify(name: str) -> None:
    if not Path(TESTSUITE, name).exists():
        pytest.skip(f"{name} missing")
    skipped = []
    count = 0
    for line, data in spec_modules(TESTSUITE / name):
        try:
            m = decode_module(data)
            validate(m)
        except MalformedError as e:
            if "unsupported feature" not in str(e):
                raise
            skipped.append(f"line {line}: {e}")
            continue
        except WasmError as e:
            raise AssertionError(f"{name}:{line}: the decoder rejects a valid module: {e}")
        for f in translate_module(m):
            check_function(f, m)
        count += 1
    if skipped and not count:
        pytest.skip("; ".join(skipped))


# The spec scripts' assertions, run on the translated IR by the reference interpreter
# through the project's spec runner.  Only the kinds that depend on the translated
# code are checked here (decoding/validation have their own tests).
TRANSLATION_KINDS = ("assert_return", "assert_trap", "assert_exhaustion", "action", "module")


@pytest.fixture
def deep_recursion():
    # The interpreter recurses a few Python frames per wasm call; the call-depth
    # limit (ir_interp.Store.max_depth) must be reached before Python's.
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 10000))
    yield
    sys.setrecursionlimit(old)


def _files_with_old_modules() -> list[str]:
    """Every .wast with a module of tier mvp/2.0-scalar (the runner skips the others)."""
    modules = TESTSUITE / "MODULES.tsv"
    if not modules.exists():
        return SPEC_FILES
    with modules.open() as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    names = {r["file"] for r in rows if r["tier"] in ("mvp", "2.0-scalar")}
    return sorted(names | set(SPEC_FILES))


# Assertions that depend on a module the decoder rightly refuses (it has two memories,
# a 3.0 feature) having written into a shared memory/table first.
HARNESS_ARTIFACTS = {
    "load1.wast": "reads data a skipped multi-memory module writes into M's memory",
    "linking0.wast": "expects elements a skipped multi-memory module writes into Mt's table",
}
ASSERTION_FILES = _files_with_old_modules()


@pytest.mark.skipif(not ASSERTION_FILES, reason="no spec test suite")
@pytest.mark.parametrize("name", ASSERTION_FILES)
def test_spec_assertions_on_translated_ir(name: str, deep_recursion: None) -> None:
    if name in HARNESS_ARTIFACTS:
        pytest.skip(HARNESS_ARTIFACTS[name])
    runner = pytest.importorskip("wasmlower.spec.runner")
    result = runner.run_file(TESTSUITE / name, ir_interp.IRAdapter())
    assert result.error is None, result.error
    failures = [str(f) for f in result.failures if f.kind in TRANSLATION_KINDS]
    assert not failures, "\n".join(failures[:20])
    if name in SPEC_FILES:
        assert result.counts["assert_return"]["skipped"] == 0


# --- throughput (a benchmark, not a test) --------------------------------------------------------

def _throughput() -> None:
    for name in ("big", "many300", "many1500"):
        data = (BENCH / "compile" / f"{name}.wasm").read_bytes()
        m = decode_module(data)
        best = math.inf
        for _ in range(3):
            t = time.perf_counter()
            funcs = translate_module(m)
            best = min(best, time.perf_counter() - t)
        insts = sum(len(b.insts) for f in funcs for b in f.blocks)
        print(f"{name}.wasm: {len(data):7d} bytes, {len(funcs)} functions, {insts} IR insts: "
              f"{best * 1000:7.1f} ms, {len(data) / best / 1e3:6.0f} KB/s")


if __name__ == "__main__":
    _throughput()

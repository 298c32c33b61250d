"""AArch64 code running under unicorn: results, traps, host functions, libcalls."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import pytest
from a64_helpers import compile_a64, instance

from wasmlower.errors import ExhaustionError, Trap
from wasmlower.runtime import Func, Store
from wasmlower.wasm import FuncType
from wasmlower.wasm import ValType as V

BENCH = Path(__file__).resolve().parents[3] / "shared" / "bench"


def _bench():
    path = BENCH / "bench.json"
    return json.loads(path.read_text()) if path.exists() else []


@pytest.mark.parametrize("b", _bench(), ids=lambda b: b["file"])
def test_bench_programs_quick_args(b):
    """Every program of ../shared/bench with its quick_args (run under emulation)."""
    inst = instance((BENCH / b["file"]).read_bytes())
    assert inst.exports[b["export"]](*b["quick_args"]) == b["quick_expected"]


ARITH = """(module
  (func (export "srem") (param i32 i32) (result i32) (i32.rem_s (local.get 0) (local.get 1)))
  (func (export "srem64") (param i64 i64) (result i64) (i64.rem_s (local.get 0) (local.get 1)))
  (func (export "urem") (param i32 i32) (result i32) (i32.rem_u (local.get 0) (local.get 1)))
  (func (export "div") (param i32 i32) (result i32) (i32.div_s (local.get 0) (local.get 1)))
  (func (export "rotl") (param i32 i32) (result i32) (i32.rotl (local.get 0) (local.get 1)))
  (func (export "rotl7") (param i64) (result i64) (i64.rotl (local.get 0) (i64.const 7)))
  (func (export "shl") (param i32 i32) (result i32) (i32.shl (local.get 0) (local.get 1)))
  (func (export "ctz") (param i64) (result i64) (i64.ctz (local.get 0)))
  (func (export "popcnt") (param i32) (result i32) (i32.popcnt (local.get 0)))
  (func (export "addk") (param i32) (result i32) (i32.add (local.get 0) (i32.const -5)))
  (func (export "ltk") (param i64) (result i32) (i64.lt_s (local.get 0) (i64.const -3)))
  (func (export "sel") (param i32 i32 i32 i32) (result i32)
    (select (local.get 2) (local.get 3) (i32.lt_u (local.get 0) (local.get 1))))
  (func (export "ext") (param i32) (result i64) (i64.extend_i32_s (local.get 0)))
  (func (export "wrap") (param i64) (result i64)
    (i64.extend_i32_u (i32.wrap_i64 (local.get 0)))))"""


def test_integer_ops():
    ex = instance(ARITH).exports
    assert ex["srem"](-0x80000000, -1) == 0                 # sdiv does not trap; msub gives 0
    assert ex["srem64"](-(1 << 63), -1) == 0
    assert ex["srem"](-7, 2) == -1 and ex["urem"](-1, 10) == 5
    assert ex["div"](-7, 2) == -3
    assert ex["rotl"](0x80000001, 1) == 3 and ex["rotl"](1, 33) == 2
    assert ex["rotl7"](1 << 60) == 1 << 3
    assert ex["shl"](1, 35) == 8
    assert ex["ctz"](0) == 64 and ex["ctz"](1 << 40) == 40
    assert ex["popcnt"](-1) == 32
    assert ex["addk"](3) == -2
    assert ex["ltk"](-4) == 1 and ex["ltk"](-3) == 0
    assert ex["sel"](1, 2, 10, 20) == 10 and ex["sel"](2, 1, 10, 20) == 20
    assert ex["ext"](-1) == -1
    assert ex["wrap"](-1) == 0xFFFFFFFF


FLOATS = """(module
  (func (export "min") (param f64 f64) (result f64) (f64.min (local.get 0) (local.get 1)))
  (func (export "max") (param f32 f32) (result f32) (f32.max (local.get 0) (local.get 1)))
  (func (export "nearest") (param f64) (result f64) (f64.nearest (local.get 0)))
  (func (export "copysign") (param f64 f64) (result f64) (f64.copysign (local.get 0) (local.get 1)))
  (func (export "neg") (param f32) (result f32) (f32.neg (local.get 0)))
  (func (export "k") (result f64) (f64.const 1.25))
  (func (export "lt") (param f64 f64) (result i32) (f64.lt (local.get 0) (local.get 1)))
  (func (export "ne") (param f32 f32) (result i32) (f32.ne (local.get 0) (local.get 1)))
  (func (export "trunc_s") (param f64) (result i32) (i32.trunc_f64_s (local.get 0)))
  (func (export "trunc_u") (param f32) (result i64) (i64.trunc_f32_u (local.get 0)))
  (func (export "sat_s") (param f64) (result i32) (i32.trunc_sat_f64_s (local.get 0)))
  (func (export "sat_u") (param f32) (result i64) (i64.trunc_sat_f32_u (local.get 0)))
  (func (export "u64tof") (param i64) (result f32) (f32.convert_i64_u (local.get 0))))"""


def test_float_semantics():
    ex = instance(FLOATS).exports
    assert math.copysign(1, ex["min"](0.0, -0.0)) == -1
    assert math.copysign(1, ex["max"](-0.0, 0.0)) == 1
    assert math.isnan(ex["min"](math.nan, 1.0)) and math.isnan(ex["max"](1.0, math.nan))
    assert ex["nearest"](2.5) == 2.0 and ex["nearest"](-3.5) == -4.0
    assert math.copysign(1, ex["nearest"](-0.4)) == -1
    assert ex["copysign"](3.0, -0.0) == -3.0
    (bits,) = ex["neg"].call_raw([0x7FC00001])
    assert bits == 0xFFC00001                              # fneg keeps the payload
    assert ex["k"]() == 1.25
    assert ex["lt"](1.0, 2.0) == 1 and ex["lt"](math.nan, 2.0) == 0
    assert ex["ne"](math.nan, math.nan) == 1
    assert ex["trunc_s"](-2147483648.9) == -2147483648
    assert ex["trunc_u"](1.5) == 1
    assert ex["sat_s"](math.nan) == 0 and ex["sat_s"](1e30) == 0x7FFFFFFF
    assert ex["sat_u"](-5.0) == 0 and ex["sat_u"](1e30) == -1
    assert ex["u64tof"](-1) == struct.unpack("<f", struct.pack("<I", 0x5F800000))[0]


@pytest.mark.parametrize("name,arg,kind", [
    ("trunc_s", math.nan, "bad_conv"), ("trunc_s", 2147483648.0, "int_ovf"),
    ("trunc_s", -2147483649.0, "int_ovf"), ("trunc_u", -1.0, "int_ovf"),
    ("trunc_u", 1.8446744073709552e19, "int_ovf")])
def test_trapping_conversions(name, arg, kind):
    ex = instance(FLOATS).exports
    with pytest.raises(Trap) as e:
        ex[name](arg)
    assert e.value.kind == kind


TRAPS = """(module
  (type $v (func))
  (type $i (func (result i32)))
  (memory 1)
  (table 2 funcref)
  (elem (i32.const 0) $inner)
  (func $inner (result i32) unreachable)
  (func $mid (export "unreachable") (result i32) (call $inner))
  (func (export "div0") (param i32) (result i32) (i32.div_u (i32.const 1) (local.get 0)))
  (func (export "ovf") (param i32) (result i32) (i32.div_s (i32.const 0x80000000) (local.get 0)))
  (func (export "load") (param i32) (result i32) (i32.load offset=4 (local.get 0)))
  (func (export "load_big") (param i32) (result i64) (i64.load offset=70000 (local.get 0)))
  (func (export "store8") (param i32) (i32.store8 (local.get 0) (i32.const 7)))
  (func (export "ind") (param i32) (result i32) (call_indirect (type $i) (local.get 0)))
  (func (export "sig") (call_indirect (type $v) (i32.const 0)))
  (func $rec (export "rec") (param i32) (result i32) (call $rec (i32.add (local.get 0) (i32.const 1)))))"""


def test_traps_and_backtrace():
    ex = instance(TRAPS).exports
    with pytest.raises(Trap) as e:
        ex["unreachable"]()
    assert e.value.kind == "unreachable"
    assert [f[0] for f in e.value.backtrace[:2]] == [0, 1]     # $inner, then $mid
    for name, arg, kind in [("div0", 0, "int_divz"), ("ovf", -1, "int_ovf"),
                            ("load", 65532, "heap_oob"), ("load", -1, "heap_oob"),
                            ("load_big", 0, "heap_oob"), ("store8", 65536, "heap_oob"),
                            ("ind", 1, "indirect_null"), ("ind", 2, "indirect_oob")]:
        with pytest.raises(Trap) as e:
            ex[name](arg)
        assert e.value.kind == kind, name
    with pytest.raises(Trap) as e:
        ex["sig"]()
    assert e.value.kind == "bad_sig"
    assert ex["load"](65528) == 0 and ex["div0"](1) == 1
    with pytest.raises(ExhaustionError):
        ex["rec"](0)
    assert ex["load"](0) == 0                               # usable after every trap


def test_host_functions_and_reentry():
    store = Store()
    calls = []

    def log(x, y):
        calls.append((x, y))
        return x * 2.0 + y

    def boom():
        raise ValueError("from the host")

    wat = """(module
      (import "h" "f" (func $f (param f64 i64) (result f64)))
      (import "h" "back" (func $back (param i32) (result i32)))
      (import "h" "boom" (func $boom))
      (func (export "call") (param f64) (result f64) (call $f (local.get 0) (i64.const 5)))
      (func (export "sq") (param i32) (result i32) (i32.mul (local.get 0) (local.get 0)))
      (func (export "nested") (param i32) (result i32)
        (i32.add (call $back (local.get 0)) (i32.const 1)))
      (func (export "boom") (call $boom)))"""
    holder = {}

    def back(x):
        return holder["sq"](x) + 100

    imports = {("h", "f"): Func(store, FuncType((V.F64, V.I64), (V.F64,)), log),
               ("h", "back"): Func(store, FuncType((V.I32,), (V.I32,)), back),
               ("h", "boom"): Func(store, FuncType((), ()), boom)}
    ex = instance(wat, imports, store).exports
    holder["sq"] = ex["sq"]
    assert ex["call"](1.5) == 8.0 and calls == [(1.5, 5)]
    assert ex["nested"](7) == 150
    with pytest.raises(ValueError, match="from the host"):
        ex["boom"]()
    assert ex["nested"](3) == 110


def test_libcalls_memory_grow_fill_copy():
    wat = """(module (memory 1 4)
      (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
      (func (export "size") (result i32) (memory.size))
      (func (export "fill") (param i32 i32 i32) (memory.fill (local.get 0) (local.get 1) (local.get 2)))
      (func (export "get") (param i32) (result i32) (i32.load8_u (local.get 0))))"""
    ex = instance(wat).exports
    assert ex["grow"](1) == 1 and ex["size"]() == 2
    ex["fill"](70000, 9, 10)                                # in the grown page
    assert ex["get"](70009) == 9 and ex["get"](70010) == 0
    with pytest.raises(Trap) as e:
        ex["fill"](131070, 1, 10)
    assert e.value.kind == "heap_oob"
    assert ex["grow"](5) == -1


def test_stress_allocation_spills():
    """Three registers per class: the spill paths of the emitter run."""
    b = next((b for b in _bench() if b["file"] == "sha256.wasm"), None)
    if b is None:
        pytest.skip("no ../shared/bench")
    cm = compile_a64((BENCH / b["file"]).read_bytes(), stress=True)
    from wasmlower.runtime import Instance
    assert Instance(cm).exports[b["export"]](*b["quick_args"]) == b["quick_expected"]


def test_many_args_on_the_stack():
    params = " ".join(["i64"] * 10 + ["f64"] * 10)
    body = "(local.get 0)" + "".join(
        f"(i64.add (local.get {i}))" for i in range(1, 10))
    fsum = "(local.get 10)" + "".join(f"(f64.add (local.get {i}))" for i in range(11, 20))
    wat = f"""(module
      (func $g (param {params}) (result i64 f64) {body} {fsum})
      (func (export "f") (param {params}) (result i64 f64)
        {" ".join(f"(local.get {i})" for i in range(20))} (call $g)))"""
    ex = instance(wat).exports
    assert ex["f"](*range(1, 11), *[0.5 * i for i in range(1, 11)]) == (55, 27.5)


def test_stress_call_indirect_with_arguments():
    """Three registers per class, all argument registers: the index still gets one."""
    wat = """(module (type $t (func (param i32 i32 i32) (result i32)))
      (table 1 funcref) (elem (i32.const 0) $add3)
      (func $add3 (type $t) (i32.add (local.get 0) (i32.add (local.get 1) (local.get 2))))
      (func (export "f") (param i32 i32 i32 i32) (result i32)
        (call_indirect (type $t) (local.get 1) (local.get 2) (local.get 3) (local.get 0))))"""
    ex = instance(wat, stress=True).exports
    assert ex["f"](0, 1, 2, 3) == 6
    with pytest.raises(Trap) as e:
        ex["f"](1, 1, 2, 3)
    assert e.value.kind == "indirect_oob"

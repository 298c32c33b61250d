import ctypes
import gc
import math

import pytest
from rt_helpers import EPILOGUE, PROLOGUE, body, build, call_import, libcall, trap, trap_kind

from wasmlower.errors import ExhaustionError, LinkError, Trap
from wasmlower.ir.ops import TRAP_MESSAGES
from wasmlower.runtime import (
    F32Bits,
    F64Bits,
    Func,
    Global,
    Instance,
    Memory,
    Store,
    Table,
    native,
    signature_id,
)
from wasmlower.wasm import FuncType, GlobalType, Limits, MemoryType, TableType
from wasmlower.wasm import ValType as V

# --- calls ----------------------------------------------------------------------------

CALLS_WAT = """(module
  (func (export "add") (param i32 i32) (result i32) unreachable)
  (func (export "add64") (param i64 i64) (result i64) unreachable)
  (func (export "fadd") (param f64 f64) (result f64) unreachable)
  (func (export "fid") (param f32) (result f32) unreachable)
  (func (export "pair") (param i32) (result i32 i64 f64) unreachable)
  (func (export "sum8") (param i64 i64 i64 i64 i64 i64 i64 i64) (result i64) unreachable)
  (func (export "none") unreachable)
  (func (export "mixed") (param f64 i32 f32) (result f64) unreachable)
  (func (export "dirty") (result i32) unreachable))"""
CALLS_BODIES = {
    0: body("lea eax, [rdi+rsi]"),
    1: body("lea rax, [rdi+rsi]"),
    2: body("addsd xmm0, xmm1"),
    3: body("nop"),
    4: body("mov eax, edi; movsxd rdx, edi; neg rdx; cvtsi2sd xmm0, edi"),
    5: body("mov rax, rdi; add rax, rsi; add rax, rdx; add rax, rcx; add rax, r8; add rax, r9; "
            "add rax, qword ptr [rbp+16]; add rax, qword ptr [rbp+24]"),
    6: body("nop"),
    7: body("cvtss2sd xmm1, xmm1; addsd xmm0, xmm1; cvtsi2sd xmm2, edi; addsd xmm0, xmm2"),
    8: body("mov rax, 0xdeadbeef00000005"),          # i32 result with a dirty upper half
}


@pytest.fixture(scope="module")
def calls_module():
    return build(CALLS_WAT, CALLS_BODIES)


def test_calls_with_python_values(calls_module):
    ex = Instance(calls_module).exports
    assert ex["add"](2, 3) == 5
    assert ex["add"](-1, 0) == -1
    assert ex["add"](0x7FFFFFFF, 1) == -(1 << 31)
    assert ex["add"](0xFFFFFFFF, 0) == -1
    assert ex["add64"](1 << 62, 1 << 62) == -(1 << 63)
    assert ex["fadd"](1.5, 2.25) == 3.75
    assert ex["fid"](1.5) == 1.5
    assert ex["pair"](5) == (5, -5, 5.0)
    assert ex["sum8"](*range(1, 9)) == 36
    assert ex["none"]() is None
    assert ex["mixed"](0.5, 2, 0.25) == 2.75
    assert ex["dirty"]() == 5


def test_call_argument_errors(calls_module):
    ex = Instance(calls_module).exports
    with pytest.raises(TypeError):
        ex["add"](1)
    with pytest.raises(TypeError):
        ex["add"](1.0, 2)
    with pytest.raises(ValueError):
        ex["add"](1 << 32, 0)
    with pytest.raises(ValueError):
        ex["add"].call_raw([-1, 0])


def test_raw_calls_keep_nan_payloads(calls_module):
    ex = Instance(calls_module).exports
    for bits in (0x7FA00001, 0xFFC00000, 0x7F800001):
        assert ex["fid"].call_raw([bits]) == [bits]
        assert ex["fid"](F32Bits(bits)) != ex["fid"](F32Bits(bits))      # NaN
    assert ex["fadd"].call_raw([0x7FF4000000000001, 0]) in (
        [0x7FF4000000000001], [0x7FFC000000000001])                      # quieted by addsd
    assert ex["add"].call_raw([0xFFFFFFFF, 2]) == [1]
    assert ex["pair"].call_raw([3]) == [3, (1 << 64) - 3, 0x4008000000000000]
    assert ex["fadd"](F64Bits(0x3FF0000000000000), 1.0) == 2.0


def test_instances_share_one_code_mapping(calls_module):
    a, b = Instance(calls_module), Instance(calls_module, store=Store())
    assert a._mapping is b._mapping
    assert a.exports["add"](1, 2) == b.exports["add"](1, 2) == 3


def test_mapping_dies_with_its_users():
    cm = build(CALLS_WAT, CALLS_BODIES)
    inst = Instance(cm)
    base = inst._mapping.base
    assert native.lookup_code(base) is inst._mapping
    del inst, cm
    gc.collect()
    assert native.lookup_code(base) is None


# --- traps ----------------------------------------------------------------------------

TRAPS_WAT = """(module
  (func $add (export "add") (param i32 i32) (result i32) unreachable)
  (func $boom (export "boom") unreachable)
  (func $outer (export "outer") call $boom)
  (func $rec (export "rec") call $rec)
  (func $kind (export "kind") unreachable))"""


def _traps_module(kind: str = "int_divz"):
    rec = f"""push rbp; mov rbp, rsp; push r15; sub rsp, 8
        mov rax, qword ptr [r15]; cmp rsp, qword ptr [rax+8]; jb ovf
        call rec_start
        {EPILOGUE}
        ovf: {trap("stack_overflow")}"""
    return build(TRAPS_WAT, {
        0: body("lea eax, [rdi+rsi]"),
        1: body(trap("unreachable"), 0x33),
        2: [(PROLOGUE, 0x40), ("call", 1, 0x41), (EPILOGUE, 0x45)],
        3: [("rec_start: " + rec, 0x50)],
        4: body(trap(kind)),
    })


def test_trap_with_backtrace_and_recovery():
    inst = Instance(_traps_module())
    with pytest.raises(Trap) as e:
        inst.exports["boom"]()
    assert (e.value.kind, e.value.message) == ("unreachable", "unreachable")
    assert e.value.backtrace == [(1, "boom", 0x33)]
    with pytest.raises(Trap) as e:
        inst.exports["outer"]()
    assert e.value.backtrace == [(1, "boom", 0x33), (2, "outer", 0x41)]
    assert "at outer (wasm offset 0x41)" in str(e.value)
    store = inst.store
    assert (store.trap_code, store.pending, store.block[0]) == (0, 0, 0)
    assert inst.exports["add"](5, 3) == 8


@pytest.mark.parametrize("kind", ["heap_oob", "int_divz", "int_ovf", "bad_conv", "bad_sig",
                                  "indirect_null", "table_oob"])
def test_every_trap_kind(kind):
    inst = Instance(_traps_module(kind))
    with pytest.raises(Trap) as e:
        inst.exports["kind"]()
    assert e.value.kind == kind and e.value.message == TRAP_MESSAGES[kind]
    assert not isinstance(e.value, ExhaustionError)


def test_stack_overflow_is_exhaustion():
    inst = Instance(_traps_module())
    with pytest.raises(ExhaustionError) as e:
        inst.exports["rec"]()
    assert e.value.kind == "stack_overflow"
    assert 100 < len(e.value.backtrace) <= native.BACKTRACE_CAPACITY + 1
    assert {f[0] for f in e.value.backtrace} == {3}
    assert inst.store.block[0] == 0 and inst.store.block[1] == 0   # trap_sp, stack_limit restored
    with pytest.raises(ExhaustionError):
        inst.exports["rec"]()
    assert inst.exports["add"](1, 1) == 2


# --- host functions -----------------------------------------------------------------------

HOST_WAT = """(module
  (import "env" "h" (func $h (param i32 i64) (result i64)))
  (import "env" "boom" (func $boom))
  (func (export "call_h") (param i32 i64) (result i64) unreachable)
  (func (export "call_boom") unreachable)
  (func (export "trap") unreachable)
  (export "h" (func $h)))"""
HOST_BODIES = {2: body(call_import(0)), 3: body(call_import(1)), 4: body(trap("unreachable"))}


@pytest.fixture(scope="module")
def host_module():
    return build(HOST_WAT, HOST_BODIES)


def _host_instance(host_module, boom, store=None):
    store = store or Store()
    seen = []

    def h(a, b):
        seen.append((a, b))
        return a * 1000 + b
    imports = {("env", "h"): Func(store, FuncType((V.I32, V.I64), (V.I64,)), h),
               ("env", "boom"): boom}
    return Instance(host_module, imports, store), seen


def test_wasm_calls_host(host_module):
    inst, seen = _host_instance(host_module, lambda: None)
    assert inst.exports["call_h"](3, -4) == 2996
    assert seen == [(3, -4)]
    assert inst.exports["h"] is inst.func(0)            # re-exported import: same Func
    assert inst.exports["h"](1, 1) == 1001              # called from Python directly
    assert inst.exports["call_boom"]() is None


def test_host_exception_propagates(host_module):
    class Oops(Exception):
        pass

    def boom():
        raise Oops("from host")
    inst, _ = _host_instance(host_module, boom)
    with pytest.raises(Oops, match="from host"):
        inst.exports["call_boom"]()
    assert inst.store.pending_exception is None
    assert inst.exports["call_h"](1, 2) == 1002


def test_host_trap_propagates_as_itself(host_module):
    mine = Trap("unreachable", "host says unreachable")

    def boom():
        raise mine
    inst, _ = _host_instance(host_module, boom)
    with pytest.raises(Trap) as e:
        inst.exports["call_boom"]()
    assert e.value is mine


def test_nested_wasm_host_wasm(host_module):
    store = Store()
    holder = {}
    caught = []

    def boom():                                   # calls back into wasm, which traps
        holder["inst"].exports["trap"]()

    inst, _ = _host_instance(host_module, boom, store)
    holder["inst"] = inst
    with pytest.raises(Trap) as e:
        inst.exports["call_boom"]()
    assert e.value.kind == "unreachable"

    def boom2():                                  # catches the inner trap and returns
        try:
            holder["inst2"].exports["trap"]()
        except Trap as t:
            caught.append(t.kind)
    inst2, _ = _host_instance(host_module, boom2, store)
    holder["inst2"] = inst2
    assert inst2.exports["call_boom"]() is None
    assert caught == ["unreachable"]
    assert inst2.exports["call_h"](2, 3) == 2003
    assert store.block[0] == 0


def test_plain_callables_and_raw_host_functions(host_module):
    store = Store()
    got = []

    def h_raw(bits):
        got.append(bits)
        return [bits[1] + 1]
    imports = {("env", "h"): Func(store, FuncType((V.I32, V.I64), (V.I64,)), h_raw, raw=True),
               ("env", "boom"): lambda: None}
    inst = Instance(host_module, imports, store)
    assert inst.exports["call_h"](-1, -2) == -1
    assert got == [[0xFFFFFFFF, (1 << 64) - 2]]
    assert inst.func(1).is_host


def test_host_result_errors_become_exceptions(host_module):
    store = Store()
    imports = {("env", "h"): Func(store, FuncType((V.I32, V.I64), (V.I64,)), lambda a, b: 1.5),
               ("env", "boom"): lambda: None}
    inst = Instance(host_module, imports, store)
    with pytest.raises(TypeError):
        inst.exports["call_h"](1, 2)


# --- tables and call_indirect ----------------------------------------------------------------

CI_WAT = """(module
  (type $v_i (func (result i32)))
  (type $i_i (func (param i32) (result i32)))
  (import "env" "g" (global $g i32))
  (table (export "t") 5 funcref)
  (func $seven (type $v_i) unreachable)
  (func $ci (export "ci") (param i32) (result i32) unreachable)
  (func $other (export "other") (type $i_i) unreachable)
  (func $get_g (export "get_g") (type $v_i) unreachable)
  (elem (i32.const 1) $seven))"""


def _call_indirect(type_index: int) -> str:
    oob = trap_kind("indirect_oob", "table_oob")
    return f"""{PROLOGUE}
        mov rax, qword ptr [r15+0x18]
        mov ecx, edi
        cmp rcx, qword ptr [rax+8]
        jae oob
        mov rax, qword ptr [rax]
        mov rax, qword ptr [rax+rcx*8]
        test rax, rax
        jz null
        mov rdx, qword ptr [r15+0x28]
        mov rdx, qword ptr [rdx+{8 * type_index}]
        cmp rdx, qword ptr [rax+16]
        jne sig
        mov r15, qword ptr [rax+8]
        call qword ptr [rax]
        mov r15, qword ptr [rbp-8]
        {EPILOGUE}
        oob: {trap(oob)}
        null: {trap("indirect_null")}
        sig: {trap("bad_sig")}"""


@pytest.fixture(scope="module")
def ci_module():
    return build(CI_WAT, {0: body("mov eax, 7"), 1: [(_call_indirect(0), 0x10)],
                          2: body("mov eax, edi"),
                          3: body("mov rax, qword ptr [r15+0x40]; mov eax, dword ptr [rax]")})


def test_call_indirect(ci_module):
    store = Store()
    inst = Instance(ci_module, {("env", "g"): Global(store, GlobalType(V.I32, False), 1)}, store)
    other = Instance(ci_module, {("env", "g"): 2}, store)
    t = inst.exports["t"]
    assert t.get(1) is inst.func(0)
    assert inst.exports["ci"](1) == 7
    for index, kind in [(0, "indirect_null"), (5, trap_kind("indirect_oob", "table_oob")),
                        (1 << 31, trap_kind("indirect_oob", "table_oob"))]:
        with pytest.raises(Trap) as e:
            inst.exports["ci"](index)
        assert e.value.kind == kind
    t.set(2, inst.exports["other"])
    with pytest.raises(Trap) as e:
        inst.exports["ci"](2)
    assert e.value.kind == "bad_sig"
    t.set(3, Func(store, FuncType((), (V.I32,)), lambda: 42))
    assert inst.exports["ci"](3) == 42
    t.set(4, other.exports["get_g"])                 # cross-instance: switches VMContext
    assert inst.exports["ci"](4) == 2
    assert inst.exports["get_g"]() == 1
    assert t.grow(1, inst.func(0)) == 5
    assert inst.exports["ci"](5) == 7


def test_records_and_vmctx_layout(ci_module):
    store = Store()
    inst = Instance(ci_module, {("env", "g"): 5}, store)
    vm = (ctypes.c_uint64 * 9).from_address(inst.vmctx)
    assert vm[0] == store.address
    assert vm[1] == 0 and vm[2] == 0                       # no memory
    tables = (ctypes.c_uint64 * 2).from_address(vm[3])
    assert (tables[0], tables[1]) == (inst.exports["t"].base, 5)
    rec = (ctypes.c_uint64 * 4).from_address(vm[4] + 32 * 1)
    cf = ci_module.functions[1]
    assert list(rec) == [inst._mapping.base + cf.offset, inst.vmctx,
                         signature_id(FuncType((V.I32,), (V.I32,))), 1]
    ids = (ctypes.c_uint64 * 2).from_address(vm[5])
    assert list(ids) == [signature_id(t) for t in ci_module.module.types]
    assert vm[7] == inst._mapping.base + ci_module.trap_routine
    assert vm[8] == inst.globals[0].address
    assert inst.exports["ci"].record == vm[4] + 32


# --- globals and linking ------------------------------------------------------------------------

GLOBALS_WAT = """(module
  (import "env" "g" (global $g i32))
  (import "env" "mg" (global $mg (mut i64)))
  (global $a (export "a") i32 (global.get $g))
  (global $b (export "b") (mut f64) (f64.const 1.5))
  (global $f (export "fref") funcref (ref.func $get_mg))
  (global $e (export "ext") (mut externref) (ref.null extern))
  (func $get_mg (export "get_mg") (result i64) unreachable)
  (func $set_mg (export "set_mg") (param i64) unreachable)
  (func $get_a (export "get_a") (result i32) unreachable)
  (export "mg" (global $mg)))"""


@pytest.fixture(scope="module")
def globals_module():
    return build(GLOBALS_WAT, {
        0: body("mov rax, qword ptr [r15+0x48]; mov rax, qword ptr [rax]"),
        1: body("mov rax, qword ptr [r15+0x48]; mov qword ptr [rax], rdi"),
        2: body("mov eax, dword ptr [r15+0x50]")})


def test_globals(globals_module):
    store = Store()
    mg = Global(store, GlobalType(V.I64, True), -3)
    inst = Instance(globals_module, {("env", "g"): 42, ("env", "mg"): mg}, store)
    ex = inst.exports
    assert ex["a"].value == 42 and ex["get_a"]() == 42
    assert ex["get_mg"]() == -3
    ex["set_mg"](5)
    assert mg.value == 5
    mg.value = 9
    assert ex["get_mg"]() == 9
    assert ex["mg"] is mg
    assert ex["fref"].value is ex["get_mg"]
    assert ex["b"].value == 1.5 and ex["b"].mutable
    ex["b"].value = -0.5
    assert ex["b"].value == -0.5
    assert ex["ext"].value is None
    ex["ext"].value = {"k": 1}
    assert ex["ext"].value == {"k": 1}
    with pytest.raises(AttributeError):
        ex["a"].value = 1


@pytest.mark.parametrize(("imports", "message"), [
    ({}, 'unknown import "env" "g"'),
    ({"g": GlobalType(V.I32, True)}, "incompatible import type"),
    ({"g": GlobalType(V.I64, False)}, "incompatible import type"),
    ({"mg": GlobalType(V.I64, False)}, "incompatible import type"),
    ({"mg": "func"}, "incompatible import type"),
    ({"mg": 5}, "incompatible import type"),         # a number only for immutable globals
])
def test_global_link_errors(globals_module, imports, message):
    store = Store()
    full = {"g": GlobalType(V.I32, False), "mg": GlobalType(V.I64, True)}
    if imports:
        full.update(imports)
    else:
        full = {}
    resolved = {}
    for name, what in full.items():
        if isinstance(what, GlobalType):
            resolved[("env", name)] = Global(store, what)
        elif what == "func":
            resolved[("env", name)] = Func(store, FuncType((), ()), lambda: None)
        else:
            resolved[("env", name)] = what
    with pytest.raises(LinkError, match=message):
        Instance(globals_module, resolved, store)


def test_resolver_and_foreign_store(globals_module):
    store = Store()
    g = Global(store, GlobalType(V.I64, True), 1)
    inst = Instance(globals_module, lambda m, n: {"g": 3, "mg": g}.get(n), store)
    assert inst.exports["a"].value == 3
    with pytest.raises(LinkError, match="another store"):
        Instance(globals_module, {("env", "g"): 3, ("env", "mg"): g}, Store())
    # Without a store argument, the imports' store is used.
    assert Instance(globals_module, {("env", "g"): 3, ("env", "mg"): g}).store is store


LIMITS_WAT = """(module
  (import "env" "t" (table 2 10 funcref))
  (import "env" "m" (memory 1 2))
  (import "env" "f" (func (param i32) (result i32))))"""


@pytest.mark.parametrize(("table", "memory", "func_type", "ok"), [
    ((2, 10, V.FUNCREF), (1, 2), ((V.I32,), (V.I32,)), True),
    ((3, 5, V.FUNCREF), (2, 2), ((V.I32,), (V.I32,)), True),
    ((1, 10, V.FUNCREF), (1, 2), ((V.I32,), (V.I32,)), False),     # table min too small
    ((3, None, V.FUNCREF), (1, 2), ((V.I32,), (V.I32,)), False),   # table unbounded
    ((2, 11, V.FUNCREF), (1, 2), ((V.I32,), (V.I32,)), False),     # table max too large
    ((2, 10, V.EXTERNREF), (1, 2), ((V.I32,), (V.I32,)), False),   # element type
    ((2, 10, V.FUNCREF), (1, None), ((V.I32,), (V.I32,)), False),  # memory unbounded
    ((2, 10, V.FUNCREF), (0, 1), ((V.I32,), (V.I32,)), False),     # memory min too small
    ((2, 10, V.FUNCREF), (1, 3), ((V.I32,), (V.I32,)), False),     # memory max too large
    ((2, 10, V.FUNCREF), (1, 2), ((V.I64,), (V.I32,)), False),     # function params
    ((2, 10, V.FUNCREF), (1, 2), ((V.I32,), ()), False),           # function results
])
def test_limits_and_signature_matching(table, memory, func_type, ok):
    cm = build(LIMITS_WAT, {})
    store = Store()
    imports = {("env", "t"): Table(store, TableType(table[2], Limits(table[0], table[1]))),
               ("env", "m"): Memory(store, MemoryType(Limits(*memory))),
               ("env", "f"): Func(store, FuncType(*func_type), lambda x: x)}
    if ok:
        inst = Instance(cm, imports, store)
        assert inst.memory is imports[("env", "m")]
        assert inst.tables[0] is imports[("env", "t")]
    else:
        with pytest.raises(LinkError, match="incompatible import type"):
            Instance(cm, imports, store)


def test_grown_memory_matches_a_larger_minimum():
    cm = build(LIMITS_WAT, {})
    store = Store()
    mem = Memory(store, MemoryType(Limits(0, 2)))
    imports = {("env", "t"): Table(store, TableType(V.FUNCREF, Limits(2, 10))),
               ("env", "m"): mem, ("env", "f"): lambda x: x}
    with pytest.raises(LinkError):
        Instance(cm, imports, store)
    mem.grow(1)
    Instance(cm, imports, store)


def test_wrong_kind_is_incompatible():
    cm = build(LIMITS_WAT, {})
    store = Store()
    imports = {("env", "t"): Memory(store, 2, 10), ("env", "m"): Memory(store, 1, 2),
               ("env", "f"): lambda x: x}
    with pytest.raises(LinkError, match="incompatible import type"):
        Instance(cm, imports, store)


# --- segments and start ---------------------------------------------------------------------

SEG_WAT = """(module
  (import "env" "log" (func $log (param i32)))
  (memory (export "mem") 1)
  (table (export "tab") 3 funcref)
  (data (i32.const 10) "abc")
  (data "passive")
  (elem (i32.const 0) $f $f)
  (elem func $f $g)
  (elem declare func $g)
  (func $f (result i32) unreachable)
  (func $g unreachable)
  (func $start (call $log (i32.const 7)))
  (start $start))"""


def test_segments_and_start():
    cm = build(SEG_WAT, {1: body("mov eax, 1"), 2: body("nop"),
                         3: body("mov edi, 7; " + call_import(0))})
    logged = []
    inst = Instance(cm, {("env", "log"): logged.append})
    assert logged == [7]
    assert inst.exports["mem"].read(9, 5) == b"\0abc\0"
    tab = inst.exports["tab"]
    assert tab.get(0) is inst.func(1) and tab.get(1) is inst.func(1) and tab.get(2) is None
    assert inst.data_segment(0) == b"" and inst.data_segment(1) == b"passive"
    assert inst.elem_segment(0) == [] and inst.elem_segment(2) == []
    assert inst.elem_segment(1) == [inst.func(1).record, inst.func(2).record]


OOB_DATA_WAT = """(module (import "env" "m" (memory 1))
  (data (i32.const 0) "ok") (data (i32.const 65535) "xx") (data (i32.const 5) "never"))"""
OOB_ELEM_WAT = """(module (import "env" "t" (table 3 funcref)) (import "env" "m" (memory 1))
  (elem (i32.const 0) $f) (elem (i32.const 2) $f $f) (elem (i32.const 1) $f)
  (data (i32.const 0) "no")
  (func $f unreachable))"""


def test_out_of_bounds_data_traps_after_earlier_segments():
    cm = build(OOB_DATA_WAT, {})
    store = Store()
    mem = Memory(store, 1)
    with pytest.raises(Trap) as e:
        Instance(cm, {("env", "m"): mem}, store)
    assert e.value.kind == "heap_oob"
    assert e.value.message == "out of bounds memory access"
    assert mem.read(0, 2) == b"ok" and mem.read(65535, 1) == b"\0" and mem.read(5, 1) == b"\0"


def test_out_of_bounds_elems_trap_before_any_data():
    cm = build(OOB_ELEM_WAT, {})
    store = Store()
    tab, mem = Table(store, TableType(V.FUNCREF, Limits(3, None))), Memory(store, 1)
    with pytest.raises(Trap) as e:
        Instance(cm, {("env", "t"): tab, ("env", "m"): mem}, store)
    assert e.value.kind == "table_oob"
    assert tab.get(0) is not None and tab.get(1) is None and tab.get(2) is None
    assert mem.read(0, 2) == b"\0\0"
    with pytest.raises(Trap):                   # the function from the failed instance runs
        tab.get(0)()


def test_start_function_trap():
    cm = build("(module (func $s unreachable) (start $s))", {0: body(trap("unreachable"))})
    with pytest.raises(Trap) as e:
        Instance(cm)
    assert e.value.kind == "unreachable"


# --- memory from wasm and libcalls --------------------------------------------------------------

MEM_WAT = """(module (memory (export "mem") 1 3)
  (func (export "grow") (param i32) (result i32) unreachable)
  (func (export "size") (result i32) unreachable)
  (func (export "fill") (param i32 i32 i32) unreachable)
  (func (export "load") (param i32) (result i32) unreachable))"""
LOAD = f"""{PROLOGUE}
    mov eax, edi
    lea rcx, [rax+4]
    cmp rcx, qword ptr [r15+0x10]
    ja oob
    mov rcx, qword ptr [r15+8]
    mov eax, dword ptr [rcx+rax]
    {EPILOGUE}
    oob: {trap("heap_oob")}"""


def test_memory_from_wasm():
    cm = build(MEM_WAT, {0: body(libcall("memory_grow", 1)),
                         1: body("mov rax, qword ptr [r15+0x10]; shr rax, 16"),
                         2: body(libcall("memory_fill", 3)), 3: [(LOAD, 0x20)]})
    inst = Instance(cm)
    ex = inst.exports
    mem = inst.memory
    assert ex["mem"] is mem
    assert ex["size"]() == 1
    with pytest.raises(Trap) as e:
        ex["load"](65536)
    assert e.value.backtrace == [(3, None, 0x20)] or e.value.backtrace[0][0] == 3
    assert ex["grow"](1) == 1
    assert ex["size"]() == 2
    mem.write(2 * 65536 - 4, b"\x01\x02\x03\x04")
    assert ex["load"](2 * 65536 - 4) == 0x04030201
    assert ex["grow"](5) == -1
    assert ex["grow"](1) == 2 and ex["grow"](0) == 3
    ex["fill"](1, 0x41, 3)
    assert mem.read(0, 5) == b"\0AAA\0"
    with pytest.raises(Trap) as e:
        ex["fill"](3 * 65536 - 1, 0x42, 2)
    assert e.value.kind == "heap_oob"
    assert mem.read(3 * 65536 - 1, 1) == b"\0"
    assert inst.store.pending == 0
    ex["fill"](0, 0x43, 1)
    assert mem.read(0, 1) == b"C"


def test_memory_shared_between_instances():
    wat = """(module (import "env" "m" (memory 1))
      (func (export "grow") (param i32) (result i32) unreachable)
      (func (export "size") (result i32) unreachable))"""
    cm = build(wat, {0: body(libcall("memory_grow", 1)),
                     1: body("mov rax, qword ptr [r15+0x10]; shr rax, 16")})
    store = Store()
    mem = Memory(store, 1)
    a = Instance(cm, {("env", "m"): mem}, store)
    b = Instance(cm, {("env", "m"): mem}, store)
    assert a.exports["grow"](2) == 1
    assert b.exports["size"]() == 3 and mem.size == 3
    mem.grow(1)
    assert a.exports["size"]() == 4


def test_unknown_libcall_is_a_link_error():
    cm = build("(module)", {}, libcall_names=("memory_grow", "frobnicate"))
    with pytest.raises(LinkError, match="frobnicate"):
        Instance(cm)


def test_float_globals_and_nan_bits():
    wat = """(module (global (export "f") (mut f32) (f32.const nan:0x200001))
                     (global (export "d") f64 (f64.const -nan:0x4000000000001)))"""
    inst = Instance(build(wat, {}))
    assert inst.exports["f"].get_raw() == 0x7FA00001
    assert inst.exports["d"].get_raw() == 0xFFF4000000000001
    assert math.isnan(inst.exports["d"].value)


def test_calls_and_traps_on_another_thread():
    import threading
    cm = _traps_module()
    out = {}

    def run():
        inst = Instance(cm)
        out["sum"] = inst.exports["add"](20, 22)
        try:
            inst.exports["outer"]()
        except Trap as e:
            out["bt"] = e.backtrace
        try:
            inst.exports["rec"]()
        except ExhaustionError:
            out["exhausted"] = True
    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert out == {"sum": 42, "bt": [(1, "boom", 0x33), (2, "outer", 0x41)], "exhausted": True}


def test_small_thread_stack_overflows_cleanly():
    # rsp - 512 KiB would be below this thread's whole stack: the runtime's floor
    # (native.STACK_RESERVE above the stack's low end) must catch the recursion.
    # In a subprocess, so a regression cannot take the test run down with it.
    import os
    import subprocess
    import sys
    code = """if 1:
        import threading
        from test_instance import _traps_module
        from wasmlower.errors import ExhaustionError
        from wasmlower.runtime import Instance
        cm = _traps_module()
        out = []
        def run():
            inst = Instance(cm)
            try:
                inst.exports["rec"]()
            except ExhaustionError:
                out.append(inst.store.block[1])
        threading.stack_size(0x60000)
        t = threading.Thread(target=run)
        t.start()
        t.join()
        print(out)
    """
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([here, *sys.path])
    r = subprocess.run([sys.executable, "-c", code], cwd=here, env=env, capture_output=True,
                       text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[0]"

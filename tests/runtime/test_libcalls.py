"""The runtime helpers, called through their C entry points as compiled code calls them."""

import pytest
from rt_helpers import build

from wasmlower.ir.ops import TRAP_CODES
from wasmlower.runtime import Func, Instance, Store
from wasmlower.runtime import libcalls as lc
from wasmlower.runtime.libcalls import call_libcall
from wasmlower.wasm import FuncType

WAT = """(module
  (memory (export "mem") 1 2)
  (table $t0 (export "t0") 4 funcref)
  (table $t1 (export "t1") 2 10 externref)
  (data $d0 "hello")
  (data $d1 "world")
  (elem $e0 func $f $g)
  (elem $e1 (i32.const 0) $g)
  (func $f unreachable)
  (func $g unreachable))"""

M32 = 0xFFFFFFFF


@pytest.fixture
def inst():
    return Instance(build(WAT, {}))


def _pending(inst) -> int:
    code = inst.store.pending
    inst.store.pending = 0
    return code


def test_memory_grow(inst):
    assert call_libcall("memory_grow", inst.vmctx, 1) == 1
    assert call_libcall("memory_grow", inst.vmctx, 1) == M32         # max is 2
    assert call_libcall("memory_grow", inst.vmctx, 0xFFFFFFFF_00000000) == 2   # upper bits ignored
    assert inst.memory.size == 2 and _pending(inst) == 0


def test_memory_fill_and_copy(inst):
    v = inst.vmctx
    call_libcall("memory_fill", v, 4, 0x1FF, 3)
    assert inst.memory.read(3, 5) == b"\0\xff\xff\xff\0"
    call_libcall("memory_fill", v, 65535, 1, 2)
    assert _pending(inst) == TRAP_CODES["heap_oob"]
    assert inst.memory.read(65535, 1) == b"\0"
    call_libcall("memory_fill", v, 65536, 1, 0)
    assert _pending(inst) == 0
    call_libcall("memory_copy", v, 5, 4, 3)
    assert inst.memory.read(3, 6) == b"\0\xff\xff\xff\xff\0"
    call_libcall("memory_copy", v, 0, 65530, 7)
    assert _pending(inst) == TRAP_CODES["heap_oob"]
    call_libcall("memory_copy", v, 0xFFFFFFFF, 0, 1)
    assert _pending(inst) == TRAP_CODES["heap_oob"]


def test_memory_init_and_data_drop(inst):
    v = inst.vmctx
    call_libcall("memory_init", v, 0, 100, 1, 3)
    assert inst.memory.read(100, 3) == b"ell" and _pending(inst) == 0
    call_libcall("memory_init", v, 1, 100, 3, 3)                   # past the segment's end
    assert _pending(inst) == TRAP_CODES["heap_oob"]
    assert inst.memory.read(100, 3) == b"ell"
    call_libcall("memory_init", v, 1, 65534, 0, 3)                 # past the memory's end
    assert _pending(inst) == TRAP_CODES["heap_oob"]
    call_libcall("data_drop", v, 1)
    call_libcall("memory_init", v, 1, 0, 0, 0)                     # empty init of a dropped seg
    assert _pending(inst) == 0
    call_libcall("memory_init", v, 1, 0, 0, 1)
    assert _pending(inst) == TRAP_CODES["heap_oob"]


def test_table_get_set_size_grow(inst):
    v = inst.vmctx
    f = inst.func(0)
    assert call_libcall("table_size", v, 0) == 4 and call_libcall("table_size", v, 1) == 2
    assert call_libcall("table_get", v, 0, 0) == inst.func(1).record     # from active $e1
    call_libcall("table_set", v, 0, 3, f.record)
    assert inst.exports["t0"].get(3) is f
    call_libcall("table_get", v, 0, 4)
    assert _pending(inst) == TRAP_CODES["table_oob"]
    call_libcall("table_set", v, 0, 4, 0)
    assert _pending(inst) == TRAP_CODES["table_oob"]
    h = inst.store.externref_handle("x")
    assert call_libcall("table_grow", v, 1, h, 3) == 2
    assert inst.exports["t1"].get(4) == "x"
    assert call_libcall("table_grow", v, 1, 0, 6) == M32               # max is 10
    assert call_libcall("table_size", v, 1) == 5


def test_table_fill_copy_init_drop(inst):
    v = inst.vmctx
    t0 = inst.exports["t0"]
    f, g = inst.func(0), inst.func(1)
    call_libcall("table_fill", v, 0, 1, f.record, 3)
    assert [t0.get(i) for i in range(4)] == [g, f, f, f]
    call_libcall("table_fill", v, 0, 2, 0, 3)
    assert _pending(inst) == TRAP_CODES["table_oob"]
    assert t0.get(2) is f
    call_libcall("table_copy", v, 0, 0, 0, 1, 3)
    assert [t0.get(i) for i in range(4)] == [f, f, f, f]
    call_libcall("table_init", v, 0, 0, 2, 0, 2)                        # passive $e0: f g
    assert [t0.get(2), t0.get(3)] == [f, g]
    call_libcall("table_init", v, 0, 0, 3, 0, 2)
    assert _pending(inst) == TRAP_CODES["table_oob"]
    call_libcall("table_init", v, 0, 1, 0, 0, 1)                        # active: dropped
    assert _pending(inst) == TRAP_CODES["table_oob"]
    call_libcall("elem_drop", v, 0)
    call_libcall("table_init", v, 0, 0, 0, 0, 0)
    assert _pending(inst) == 0
    call_libcall("table_init", v, 0, 0, 0, 0, 1)
    assert _pending(inst) == TRAP_CODES["table_oob"]
    call_libcall("table_copy", v, 1, 0, 0, 0, 1)                        # different tables
    assert _pending(inst) == 0


def test_unknown_vmctx_is_ignored():
    assert call_libcall("memory_grow", 0x1234, 1) == 0


def test_unexpected_errors_become_host_traps(inst, monkeypatch):
    def broken(*_):
        raise RuntimeError("bug")
    monkeypatch.setattr(inst, "data_segment", broken)
    call_libcall("memory_init", inst.vmctx, 0, 0, 0, 1)
    assert _pending(inst) == TRAP_CODES["host"]
    assert isinstance(inst.store.pending_exception, RuntimeError)


def test_every_declared_libcall_exists():
    from wasmlower.wasm.translate import LIBCALLS
    assert set(LIBCALLS) <= set(lc.IMPLEMENTATIONS)
    table = lc.libcall_table(tuple(LIBCALLS))
    assert list(table) == [lc.libcall_address(n) for n in LIBCALLS]
    assert lc.libcall_table(tuple(LIBCALLS)) is table


def test_host_func_outside_wasm():
    store = Store()
    f = Func(store, FuncType((), ()), lambda: None)
    assert f() is None
    assert f.call_raw([]) == []

import ctypes

import pytest

from wasmlower.errors import Trap
from wasmlower.runtime import Func, Store, Table
from wasmlower.runtime.table import MAX_ELEMENTS
from wasmlower.wasm import FuncType, Limits, TableType
from wasmlower.wasm import ValType as V


@pytest.fixture
def store():
    return Store()


def _host(store):
    return Func(store, FuncType((), ()), lambda: None)


def test_funcref_table_basics(store):
    t = Table(store, TableType(V.FUNCREF, Limits(2, 4)))
    assert t.size == 2 and len(t) == 2
    assert t.get(0) is None and t.get(1) is None
    f = _host(store)
    t.set(1, f)
    assert t.get(1) is f
    assert t.get_raw(1) == f.record
    with pytest.raises(Trap) as e:
        t.get(2)
    assert e.value.kind == "table_oob"
    with pytest.raises(Trap):
        t.set(-1, None)
    with pytest.raises(TypeError):
        t.set(0, 5)


def test_grow_and_descriptors(store):
    t = Table(store, TableType(V.FUNCREF, Limits(1, 10)))
    desc = (ctypes.c_uint64 * 4)()
    t.attach(desc, 2)
    assert (desc[2], desc[3]) == (t.base, 1)
    f = _host(store)
    t.set(0, f)
    assert t.grow(5, f) == 1
    assert t.size == 6
    assert (desc[2], desc[3]) == (t.base, 6)
    assert all(t.get(i) is f for i in range(6))
    assert t.grow(5) == -1
    assert t.size == 6
    assert t.grow(4) == 6
    assert t.get(9) is None
    assert t.grow(0) == 10


def test_unbounded_grow_limit(store):
    t = Table(store, TableType(V.EXTERNREF, Limits(0, None)))
    assert t.grow(MAX_ELEMENTS + 1) == -1
    assert t.grow(3) == 0


def test_fill_copy_init(store):
    t = Table(store, TableType(V.EXTERNREF, Limits(8, None)))
    a, b = object(), "b"
    t.fill(1, a, 3)
    assert [t.get(i) for i in range(5)] == [None, a, a, a, None]
    with pytest.raises(Trap):
        t.fill(6, b, 3)
    assert t.get(6) is None and t.get(7) is None    # checked before writing
    t.fill(8, b, 0)
    with pytest.raises(Trap):
        t.fill(9, b, 0)
    t.set(0, b)
    t.copy_from(1, t, 0, 4)                        # overlapping
    assert [t.get(i) for i in range(5)] == [b, b, a, a, a]
    other = Table(store, TableType(V.EXTERNREF, Limits(2, None)))
    with pytest.raises(Trap):
        other.copy_from(0, t, 7, 2)
    other.copy_from(0, t, 0, 2)
    assert other.get(1) == b
    refs = [store.externref_handle(x) for x in ("x", "y", "z")]
    t.init_raw(5, refs, 1, 2)
    assert [t.get(5), t.get(6)] == ["y", "z"]
    with pytest.raises(Trap):
        t.init_raw(0, refs, 2, 2)
    with pytest.raises(Trap):
        t.init_raw(7, refs, 0, 2)


def test_large_fill_is_fast(store):
    t = Table(store, TableType(V.EXTERNREF, Limits(0, None)))
    t.grow(1_000_000, "v")
    assert t.get(999_999) == "v" and t.get(0) == "v"


def test_type_and_validation(store):
    t = Table(store, TableType(V.FUNCREF, Limits(1, 2)))
    t.grow(1)
    assert t.type == TableType(V.FUNCREF, Limits(2, 2))
    with pytest.raises(ValueError):
        Table(store, TableType(V.I32, Limits(1, 2)))
    with pytest.raises(ValueError):
        Table(store, TableType(V.FUNCREF, Limits(3, 2)))

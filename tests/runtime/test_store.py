import math

import pytest

from wasmlower.runtime import F32Bits, Func, Global, Store, signature_id
from wasmlower.wasm import FuncType, GlobalType
from wasmlower.wasm import ValType as V


def test_store_block_layout():
    s = Store()
    assert len(s.block) * 8 >= 0x30
    s.pending = 3
    assert s.block[5] == 3 and s.pending == 3
    s.block[2], s.block[3], s.block[4] = 1, 2, 3
    assert (s.trap_code, s.trap_pc, s.trap_fp) == (1, 2, 3)
    s.clear_trap()
    assert (s.trap_code, s.trap_pc, s.trap_fp, s.pending) == (0, 0, 0, 0)


def test_externref_handles():
    s = Store()
    a, b = object(), [1, 2]                       # b is unhashable: identity
    assert s.externref_handle(None) == 0
    ha, hb = s.externref_handle(a), s.externref_handle(b)
    assert 0 not in (ha, hb) and ha != hb
    assert s.externref_handle(a) == ha
    assert s.externref_handle(b) == hb
    assert s.externref_handle([1, 2]) != hb
    assert s.externref_handle(7) == s.externref_handle(7)
    assert s.externref_handle(1) != s.externref_handle(True)   # same hash, other type
    assert s.externref_object(ha) is a and s.externref_object(0) is None
    with pytest.raises(ValueError):
        s.externref_object(10**6)


def test_signature_ids_are_canonical():
    a = FuncType((V.I32,), (V.I64,))
    assert signature_id(a) == signature_id(FuncType((V.I32,), (V.I64,)))
    assert signature_id(a) != signature_id(FuncType((V.I64,), (V.I64,)))
    assert signature_id(a) >= 1


def test_funcref_conversion_checks_the_store():
    s1, s2 = Store(), Store()
    f = Func(s1, FuncType((), ()), lambda: None)
    assert s1.to_bits(V.FUNCREF, f) == f.record
    assert s1.from_bits(V.FUNCREF, f.record) is f
    assert s1.from_bits(V.FUNCREF, 0) is None
    with pytest.raises(ValueError):
        s2.to_bits(V.FUNCREF, f)
    with pytest.raises(ValueError):
        s2.from_bits(V.FUNCREF, f.record)


def test_global_conversions():
    s = Store()
    g = Global(s, GlobalType(V.I32, True), -1)
    assert g.value == -1 and g.get_raw() == 0xFFFFFFFF
    g.value = 0x80000000
    assert g.value == -(1 << 31)
    assert g.type is V.I32 and g.mutable
    f = Global(s, GlobalType(V.F32, False), F32Bits(0x7FA00001))
    assert f.get_raw() == 0x7FA00001 and math.isnan(f.value)
    with pytest.raises(AttributeError):
        f.value = 1.0
    d = Global(s, V.F64, 2.5, mutable=True)
    assert d.value == 2.5 and d.global_type == GlobalType(V.F64, True)
    e = Global(s, GlobalType(V.EXTERNREF, True))
    assert e.value is None
    e.value = "hello"
    assert e.value == "hello"
    with pytest.raises(ValueError):
        g.set_raw(1 << 32)
    with pytest.raises(TypeError):
        g.value = 1.5

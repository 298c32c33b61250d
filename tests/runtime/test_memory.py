import ctypes
import gc

import pytest

from wasmlower.errors import Trap
from wasmlower.runtime import Memory
from wasmlower.runtime.memory import PAGE_SIZE
from wasmlower.wasm import Limits, MemoryType


def _perms(addr: int) -> str:
    with open("/proc/self/maps") as f:
        for line in f:
            span, perms = line.split()[:2]
            lo, hi = (int(x, 16) for x in span.split("-"))
            if lo <= addr < hi:
                return perms
    return ""


def test_initial_size_and_zeroed():
    m = Memory(None, MemoryType(Limits(1, 3)))
    assert (m.size, m.data_len, m.min, m.max) == (1, PAGE_SIZE, 1, 3)
    assert m.read(0, 8) == bytes(8)
    assert m.read(PAGE_SIZE - 4, 4) == bytes(4)


def test_read_write_bounds():
    m = Memory(None, 1)
    m.write(10, b"hello")
    assert m.read(10, 5) == b"hello"
    m.write(PAGE_SIZE - 2, b"ab")
    assert m.read(PAGE_SIZE - 2, 2) == b"ab"
    assert m.read(PAGE_SIZE, 0) == b""
    for addr, n in [(PAGE_SIZE - 1, 2), (PAGE_SIZE, 1), (-1, 1), (0, -1), (1 << 40, 1)]:
        with pytest.raises(Trap) as e:
            m.read(addr, n)
        assert e.value.kind == "heap_oob"
        assert e.value.message == "out of bounds memory access"
    with pytest.raises(Trap):
        m.write(PAGE_SIZE - 1, b"xy")
    assert m.read(PAGE_SIZE - 2, 2) == b"ab"          # nothing was written


def test_grow_respects_max_and_commits():
    m = Memory(None, 1, 3)
    assert _perms(m.base + PAGE_SIZE).startswith("---")
    assert m.grow(0) == 1
    assert m.grow(2) == 1
    assert m.size == 3
    assert _perms(m.base + 2 * PAGE_SIZE).startswith("rw")
    assert m.read(3 * PAGE_SIZE - 1, 1) == b"\0"
    assert m.grow(1) == -1
    assert m.size == 3
    assert m.grow(-1) == -1


def test_unbounded_memory_and_the_4gib_limit():
    m = Memory(None, 0)
    assert m.size == 0 and m.max is None
    with pytest.raises(Trap):
        m.read(0, 1)
    assert m.grow(0x10001) == -1
    assert m.grow(2) == 0
    m.write(2 * PAGE_SIZE - 1, b"z")
    assert m.read(2 * PAGE_SIZE - 1, 1) == b"z"


def test_mem_size_cells_follow_grow():
    m = Memory(None, 1)
    cells_a = (ctypes.c_uint64 * 8)()
    cells_b = (ctypes.c_uint64 * 8)()
    m.attach(cells_a, 2)
    m.attach(cells_b, 2)
    assert cells_a[2] == PAGE_SIZE
    m.grow(3)
    assert cells_a[2] == cells_b[2] == 4 * PAGE_SIZE
    assert m.base == m.base                     # the base never moves


def test_fill_copy_init_check_before_writing():
    m = Memory(None, 1)
    m.fill(0, 0x1AB, 4)
    assert m.read(0, 5) == b"\xab\xab\xab\xab\0"
    with pytest.raises(Trap):
        m.fill(PAGE_SIZE - 2, 1, 3)
    assert m.read(PAGE_SIZE - 2, 2) == b"\0\0"
    m.fill(PAGE_SIZE, 1, 0)                       # zero length at the end: fine
    with pytest.raises(Trap):
        m.fill(PAGE_SIZE + 1, 1, 0)               # zero length past the end: traps
    m.write(0, b"abcdef")
    m.copy_within(2, 0, 4)                        # overlapping, forwards
    assert m.read(0, 6) == b"ababcd"
    m.copy_within(0, 2, 4)                        # overlapping, backwards
    assert m.read(0, 6) == b"abcdcd"
    with pytest.raises(Trap):
        m.copy_within(0, PAGE_SIZE - 1, 2)
    with pytest.raises(Trap):
        m.copy_within(PAGE_SIZE - 1, 0, 2)
    assert m.read(PAGE_SIZE - 1, 1) == b"\0"
    m.init(100, b"0123456789", 2, 3)
    assert m.read(100, 3) == b"234"
    with pytest.raises(Trap):
        m.init(0, b"0123", 2, 3)                  # source out of bounds
    with pytest.raises(Trap):
        m.init(PAGE_SIZE - 1, b"0123", 0, 2)      # destination out of bounds
    m.init(PAGE_SIZE, b"", 0, 0)


def test_buffer_view():
    m = Memory(None, 1)
    view = m.buffer()
    view[5] = 9
    assert m.read(5, 1) == b"\x09"
    assert len(view) == PAGE_SIZE
    assert len(Memory(None, 0).buffer()) == 0


def test_type_reports_current_size():
    m = Memory(None, MemoryType(Limits(1, 5)))
    m.grow(1)
    assert m.type == MemoryType(Limits(2, 5))


def test_invalid_limits():
    with pytest.raises(ValueError):
        Memory(None, 2, 1)
    with pytest.raises(ValueError):
        Memory(None, 0x10001)


def test_mapping_is_released():
    m = Memory(None, 1)
    fin = m._finalizer
    base = m.base
    del m
    gc.collect()
    assert not fin.alive
    assert not _perms(base).startswith("rw")

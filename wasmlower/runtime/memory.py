"""Linear memory: a fixed reservation of address space, committed as it grows.

A ``Memory`` reserves 8 GiB of address space up front as ``PROT_NONE`` (its
largest extent plus the guard region compiled code relies on instead of
bounds checks, see ``signals.py``), so its base address never moves; ``grow`` makes the next pages read+write with
``mprotect``.  Fresh anonymous pages read as zero, as wasm requires.

Every VMContext that uses the memory registered its ``mem_size`` cell with
``attach``; ``grow`` rewrites them all, so instances sharing an imported
memory see the new size at once.

Invariants: ``[base, base + data_len)`` is read+write, the rest of the
reservation is inaccessible; ``data_len == pages * PAGE_SIZE``; every
access made from Python is checked against ``data_len`` first.
"""

from __future__ import annotations

import ctypes
import weakref
from typing import TYPE_CHECKING, Any

from wasmlower.errors import Trap
from wasmlower.ir.ops import TRAP_MESSAGES
from wasmlower.runtime import native, signals
from wasmlower.wasm.module import Limits, MemoryType

if TYPE_CHECKING:
    from wasmlower.runtime.store import Store

__all__ = ["MAX_PAGES", "PAGE_SIZE", "Memory"]

PAGE_SIZE = 0x10000
MAX_PAGES = 0x10000                  # 4 GiB: the 32-bit address space
# Compiled code accesses base + zext32(index) + offset (offset < 2^31) with no
# bounds check, relying on the fault an out-of-bounds access takes in the
# inaccessible rest of the reservation (signals.py): so every memory reserves
# 4 GiB + 2 GiB and more, whatever its maximum.
RESERVATION = 8 << 30


def heap_oob() -> Trap:
    return Trap("heap_oob", TRAP_MESSAGES["heap_oob"])


class Memory:
    """A linear memory (an exported/imported memory is one shared object)."""

    def __init__(self, store: Store | None, type: MemoryType | Limits | int,
                 max: int | None = None) -> None:
        if isinstance(type, MemoryType):
            limits = type.limits
        elif isinstance(type, Limits):
            limits = type
        else:
            limits = Limits(int(type), max)
        if not 0 <= limits.min <= MAX_PAGES or (
                limits.max is not None and not limits.min <= limits.max <= MAX_PAGES):
            raise ValueError(f"invalid memory limits {limits.min}..{limits.max}")
        self.store = store
        self.min = limits.min
        self.max = limits.max
        self._reserved = RESERVATION
        signals.ensure_installed()
        self.base: int = native.reserve(self._reserved)
        self._finalizer = weakref.finalize(self, native.release, self.base, self._reserved)
        self._pages = 0
        self._cells: list[tuple[Any, int]] = []       # (u64 array, index) of mem_size cells
        if self.grow(limits.min) < 0:
            raise MemoryError(f"cannot commit {limits.min} pages of linear memory")

    # -- size ------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Current size in pages (wasm ``memory.size``)."""
        return self._pages

    @property
    def data_len(self) -> int:
        """Current size in bytes."""
        return self._pages * PAGE_SIZE

    @property
    def type(self) -> MemoryType:
        """The memory's current type: the current size as minimum (for import matching)."""
        return MemoryType(Limits(self._pages, self.max))

    def attach(self, cells: Any, index: int) -> None:
        """Keep ``cells[index]`` (a VMContext's ``mem_size``) equal to the size in bytes."""
        cells[index] = self.data_len
        self._cells.append((cells, index))

    def grow(self, delta: int) -> int:
        """Add ``delta`` pages; return the old size in pages, or -1 (nothing changes)."""
        old = self._pages
        if delta < 0:
            return -1
        new = old + delta
        limit = MAX_PAGES if self.max is None else self.max
        if new > limit or new * PAGE_SIZE > self._reserved:
            return -1
        if delta and not native.commit(self.base + old * PAGE_SIZE, delta * PAGE_SIZE):
            return -1
        self._pages = new
        size = new * PAGE_SIZE
        for cells, index in self._cells:
            cells[index] = size
        return old

    # -- access from Python -------------------------------------------------------

    def _check(self, addr: int, n: int) -> None:
        if addr < 0 or n < 0 or addr + n > self.data_len:
            raise heap_oob()

    def read(self, addr: int, n: int) -> bytes:
        """``n`` bytes at ``addr``; traps (``heap_oob``) if out of bounds."""
        self._check(addr, n)
        return ctypes.string_at(self.base + addr, n) if n else b""

    def write(self, addr: int, data: bytes | bytearray | memoryview) -> None:
        """Store ``data`` at ``addr``; traps (``heap_oob``) if any byte is out of bounds."""
        data = bytes(data)
        self._check(addr, len(data))
        if data:
            ctypes.memmove(self.base + addr, data, len(data))

    def fill(self, addr: int, value: int, n: int) -> None:
        """``memory.fill``: the whole range is checked before any byte is written."""
        self._check(addr, n)
        if n:
            ctypes.memset(self.base + addr, value & 0xFF, n)

    def copy_within(self, dst: int, src: int, n: int) -> None:
        """``memory.copy`` (overlap-safe); both ranges are checked first."""
        self._check(dst, n)
        self._check(src, n)
        if n:
            ctypes.memmove(self.base + dst, self.base + src, n)

    def init(self, dst: int, data: bytes, src: int, n: int) -> None:
        """``memory.init`` from ``data``: both ranges are checked first."""
        if src < 0 or n < 0 or src + n > len(data):
            raise heap_oob()
        self._check(dst, n)
        if n:
            ctypes.memmove(self.base + dst, data[src:src + n], n)

    def buffer(self) -> memoryview:
        """A writable view of the current bytes (stale after ``grow``)."""
        n = self.data_len
        if n == 0:
            return memoryview(bytearray())
        arr = (ctypes.c_ubyte * n).from_address(self.base)
        arr.owner = self            # the view keeps the mapping alive
        return memoryview(arr).cast("B")

    def __repr__(self) -> str:
        return f"<Memory {self._pages} pages, max {self.max}>"

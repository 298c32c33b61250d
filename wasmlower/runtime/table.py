"""Tables: arrays of references (func record addresses or externref handles).

The elements live in a ctypes u64 array.  Wasm code reaches a table through
a 16-byte descriptor ``{base, size}`` in its instance's table array
(docs/ABI.md); every instance using the table registered its descriptor with
``attach``, and ``grow`` rewrites them all in place when it moves or resizes
the elements.  Replaced element arrays are kept until the table dies, so a
stale base loaded before a grow still points at readable memory.

Invariants: elements ``[0, size)`` are valid references of the element type;
every Python access is bounds-checked against ``size`` before it touches
memory; ``size <= capacity``.
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING, Any

from wasmlower.errors import Trap
from wasmlower.ir.ops import TRAP_MESSAGES
from wasmlower.wasm.module import Limits, TableType, ValType

if TYPE_CHECKING:
    from wasmlower.runtime.store import Store

__all__ = ["MAX_ELEMENTS", "Table"]

MAX_ELEMENTS = 10_000_000        # runtime limit on a table's size (80 MB of elements)


def table_oob() -> Trap:
    return Trap("table_oob", TRAP_MESSAGES["table_oob"])


class Table:
    """A table of ``funcref`` or ``externref`` (an exported/imported table is shared)."""

    def __init__(self, store: Store, type: TableType, init: Any = None) -> None:
        if not type.elem.is_ref:
            raise ValueError(f"table element type must be a reference type, not {type.elem}")
        lim = type.limits
        if lim.max is not None and lim.max < lim.min:
            raise ValueError(f"invalid table limits {lim.min}..{lim.max}")
        self.store = store
        self.elem: ValType = type.elem
        self.min = lim.min
        self.max = lim.max
        self._size = 0
        self._elems: Any = (ctypes.c_uint64 * 1)()
        self._retired: list[Any] = []
        self._cells: list[tuple[Any, int]] = []     # (u64 array, index of base; size at +1)
        if self.grow_raw(lim.min, store.to_bits(self.elem, init)) < 0:
            raise MemoryError(f"table of {lim.min} elements exceeds the runtime limit")

    # -- shape -----------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Current number of elements."""
        return self._size

    @property
    def type(self) -> TableType:
        """The table's current type: the current size as minimum (for import matching)."""
        return TableType(self.elem, Limits(self._size, self.max))

    @property
    def base(self) -> int:
        """Address of element 0."""
        return ctypes.addressof(self._elems)

    def attach(self, cells: Any, index: int) -> None:
        """Keep ``cells[index]``/``cells[index+1]`` equal to this table's base and size."""
        cells[index] = self.base
        cells[index + 1] = self._size
        self._cells.append((cells, index))

    def _publish(self) -> None:
        base = self.base
        for cells, index in self._cells:
            cells[index] = base
            cells[index + 1] = self._size

    # -- raw access (bits) ---------------------------------------------------------------

    def get_raw(self, i: int) -> int:
        """Element ``i`` as raw bits; traps (``table_oob``) out of bounds."""
        if not 0 <= i < self._size:
            raise table_oob()
        return int(self._elems[i])

    def set_raw(self, i: int, bits: int) -> None:
        """Store raw reference ``bits`` at ``i``; traps out of bounds."""
        if not 0 <= i < self._size:
            raise table_oob()
        self._elems[i] = bits

    def grow_raw(self, delta: int, bits: int = 0) -> int:
        """Append ``delta`` elements of ``bits``; return the old size or -1."""
        old = self._size
        new = old + delta
        limit = MAX_ELEMENTS if self.max is None else min(self.max, MAX_ELEMENTS)
        if delta < 0 or new > limit:
            return -1
        if new > len(self._elems):
            cap = min(max(new, 2 * len(self._elems)), limit)
            try:
                elems = (ctypes.c_uint64 * cap)()
            except MemoryError:
                return -1
            ctypes.memmove(elems, self._elems, old * 8)
            self._retired.append(self._elems)
            self._elems = elems
        self._size = new
        self._fill(old, bits, delta)
        self._publish()
        return old

    def _fill(self, start: int, bits: int, n: int) -> None:
        # Caller checked [start, start+n) against the size.
        if n <= 0:
            return
        base = self.base + 8 * start
        if bits == 0:
            ctypes.memset(base, 0, 8 * n)
            return
        self._elems[start] = bits
        done = 1
        while done < n:          # double the filled prefix: O(log n) copies
            k = min(done, n - done)
            ctypes.memmove(base + 8 * done, base, 8 * k)
            done += k

    def fill_raw(self, i: int, bits: int, n: int) -> None:
        """``table.fill``: the whole range is checked before any write."""
        if i < 0 or n < 0 or i + n > self._size:
            raise table_oob()
        self._fill(i, bits, n)

    def copy_from(self, dst: int, src_table: Table, src: int, n: int) -> None:
        """``table.copy`` from ``src_table`` (may be self; overlap-safe); checked first."""
        if dst < 0 or src < 0 or n < 0 or src + n > src_table._size or dst + n > self._size:
            raise table_oob()
        if n:
            ctypes.memmove(self.base + 8 * dst, src_table.base + 8 * src, 8 * n)

    def init_raw(self, dst: int, refs: list[int], src: int, n: int) -> None:
        """``table.init`` from a segment's reference bits; both ranges checked first."""
        if dst < 0 or src < 0 or n < 0 or src + n > len(refs) or dst + n > self._size:
            raise table_oob()
        for k in range(n):
            self._elems[dst + k] = refs[src + k]

    # -- Python values ------------------------------------------------------------------

    def get(self, i: int) -> Any:
        """Element ``i``: a ``Func``/None (funcref) or the object/None (externref)."""
        return self.store.from_bits(self.elem, self.get_raw(i))

    def set(self, i: int, value: Any) -> None:
        """Store a ``Func``/object/None at ``i``."""
        self.set_raw(i, self.store.to_bits(self.elem, value))

    def grow(self, delta: int, init: Any = None) -> int:
        """Append ``delta`` copies of ``init``; return the old size or -1."""
        return self.grow_raw(delta, self.store.to_bits(self.elem, init))

    def fill(self, i: int, value: Any, n: int) -> None:
        """Set ``n`` elements from ``i`` to ``value``; traps out of bounds."""
        self.fill_raw(i, self.store.to_bits(self.elem, value), n)

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"<Table {self.elem.value} size {self._size}, max {self.max}>"

"""Runtime helpers called from wasm code (docs/ABI.md, "Libcalls").

Each helper is a SysV C function ``u64 f(u64 vmctx, u64 a0, ..., u64 a4)``
made with ``ctypes.CFUNCTYPE``; the callback objects live in this module for
the life of the process.  ``libcall_table(names)`` builds the u64 array of
entry points in the order the compiled module expects (its
``libcall_names``), cached per order.

Arguments are raw bits: i32 arguments carry unspecified upper halves, so every
one is masked to 32 bits; references are full 64-bit handles.  A helper traps
by setting the store's ``pending`` field to the trap code and returning; the
compiled code tests ``pending`` after the call.  Semantics follow the 2.0 spec:
every bulk operation checks its whole range(s) before it writes anything, and
zero-length operations still trap when an offset is past the end.

The helpers find their instance through the process-wide map from VMContext
address to instance (``register_vmctx``).
"""

from __future__ import annotations

import ctypes
import threading
import weakref
from collections.abc import Callable
from typing import Any

from wasmlower.errors import LinkError, Trap
from wasmlower.ir.ops import TRAP_CODES
from wasmlower.runtime.memory import heap_oob
from wasmlower.runtime.table import table_oob

__all__ = [
    "IMPLEMENTATIONS",
    "LIBCALL_PROTO",
    "libcall_address",
    "libcall_table",
    "register_vmctx",
]

M32 = 0xFFFFFFFF
M64 = (1 << 64) - 1

LIBCALL_PROTO = ctypes.CFUNCTYPE(ctypes.c_uint64, *(ctypes.c_uint64,) * 6)

_INSTANCES: dict[int, weakref.ref] = {}


def register_vmctx(address: int, instance: Any) -> None:
    """Let helpers called with VMContext ``address`` find ``instance`` (until it dies)."""
    _INSTANCES[address] = weakref.ref(instance)
    weakref.finalize(instance, _INSTANCES.pop, address, None)


def instance_of_vmctx(address: int) -> Any:
    ref = _INSTANCES.get(address)
    return ref() if ref is not None else None


# --- the helpers: (instance, raw args) -> raw result --------------------------


def _memory(inst: Any) -> Any:
    mem = inst.memory
    if mem is None:
        raise heap_oob()
    return mem


def _memory_grow(inst: Any, delta: int, *_: int) -> int:
    return _memory(inst).grow(delta & M32) & M32


def _memory_fill(inst: Any, d: int, v: int, n: int, *_: int) -> int:
    _memory(inst).fill(d & M32, v & 0xFF, n & M32)
    return 0


def _memory_copy(inst: Any, d: int, s: int, n: int, *_: int) -> int:
    _memory(inst).copy_within(d & M32, s & M32, n & M32)
    return 0


def _memory_init(inst: Any, seg: int, d: int, s: int, n: int, *_: int) -> int:
    data = inst.data_segment(seg & M32)
    _memory(inst).init(d & M32, data, s & M32, n & M32)
    return 0


def _data_drop(inst: Any, seg: int, *_: int) -> int:
    inst.drop_data(seg & M32)
    return 0


def _table(inst: Any, t: int) -> Any:
    t &= M32
    if t >= len(inst.tables):
        raise table_oob()
    return inst.tables[t]


def _table_get(inst: Any, t: int, i: int, *_: int) -> int:
    return _table(inst, t).get_raw(i & M32)


def _table_set(inst: Any, t: int, i: int, v: int, *_: int) -> int:
    _table(inst, t).set_raw(i & M32, v)
    return 0


def _table_size(inst: Any, t: int, *_: int) -> int:
    return _table(inst, t).size & M32


def _table_grow(inst: Any, t: int, init: int, n: int, *_: int) -> int:
    return _table(inst, t).grow_raw(n & M32, init) & M32


def _table_fill(inst: Any, t: int, i: int, v: int, n: int, *_: int) -> int:
    _table(inst, t).fill_raw(i & M32, v, n & M32)
    return 0


def _table_copy(inst: Any, dt: int, st: int, d: int, s: int, n: int) -> int:
    _table(inst, dt).copy_from(d & M32, _table(inst, st), s & M32, n & M32)
    return 0


def _table_init(inst: Any, t: int, seg: int, d: int, s: int, n: int) -> int:
    refs = inst.elem_segment(seg & M32)
    _table(inst, t).init_raw(d & M32, refs, s & M32, n & M32)
    return 0


def _elem_drop(inst: Any, seg: int, *_: int) -> int:
    inst.drop_elem(seg & M32)
    return 0


IMPLEMENTATIONS: dict[str, Callable[..., int]] = {
    "memory_grow": _memory_grow,
    "memory_fill": _memory_fill,
    "memory_copy": _memory_copy,
    "memory_init": _memory_init,
    "data_drop": _data_drop,
    "table_get": _table_get,
    "table_set": _table_set,
    "table_size": _table_size,
    "table_grow": _table_grow,
    "table_fill": _table_fill,
    "table_copy": _table_copy,
    "table_init": _table_init,
    "elem_drop": _elem_drop,
}


def _wrap(impl: Callable[..., int]) -> Callable[..., int]:
    def entry(vmctx: int, a0: int, a1: int, a2: int, a3: int, a4: int) -> int:
        inst = instance_of_vmctx(vmctx)
        if inst is None:        # cannot happen: wasm code runs only for live instances
            return 0
        store = inst.store
        try:
            return impl(inst, a0, a1, a2, a3, a4) & M64
        except Trap as t:
            code = TRAP_CODES.get(t.kind)
            if code is None:
                store.pending_exception = t
                code = TRAP_CODES["host"]
            store.pending = code
        except BaseException as e:  # noqa: BLE001 - nothing may escape a C callback
            store.pending_exception = e
            store.pending = TRAP_CODES["host"]
        return 0
    entry.__name__ = impl.__name__.lstrip("_")
    return entry


_CALLBACKS: dict[str, Any] = {name: LIBCALL_PROTO(_wrap(fn)) for name, fn in IMPLEMENTATIONS.items()}
_TABLES: dict[tuple[str, ...], Any] = {}
_TABLES_LOCK = threading.Lock()


def libcall_address(name: str) -> int:
    """Entry address of helper ``name``."""
    cb = _CALLBACKS.get(name)
    if cb is None:
        raise LinkError(f"the runtime has no libcall {name!r}")
    return ctypes.cast(cb, ctypes.c_void_p).value or 0


def libcall_table(names: tuple[str, ...]) -> Any:
    """The u64 array of entry points in the order ``names`` (shared, lives forever)."""
    names = tuple(names)
    with _TABLES_LOCK:
        table = _TABLES.get(names)
        if table is None:
            table = (ctypes.c_uint64 * max(len(names), 1))(*[libcall_address(n) for n in names])
            _TABLES[names] = table
    return table


def call_libcall(name: str, vmctx: int, *args: int) -> int:
    """Call helper ``name`` through its C entry point, as compiled code would (for tests)."""
    fn = LIBCALL_PROTO(libcall_address(name))
    padded = list(args) + [0] * (5 - len(args))
    return fn(vmctx, *padded)

"""The Store: the per-thread block wasm code reports traps through, and what it owns.

A ``Store`` holds

- the Store block of docs/ABI.md (a ctypes u64 array; its address goes in
  every VMContext's ``store`` field): ``trap_sp``, ``stack_limit``,
  ``trap_code``, ``trap_pc``, ``trap_fp``, ``pending``;
- the externref handle table: a Python object <-> a nonzero integer handle
  (0 is null); equal hashable objects of one type share a handle, others are
  told apart by identity; handles live as long as the store;
- every func record address it has handed out -> the ``Func`` it stands for,
  and every instance and host function (all live as long as the store, since
  tables and globals may hold their records);
- the exception a host function raised, until the host-to-wasm call that
  sees the ``host`` trap code picks it up.

Canonical signature ids (``signature_id``) are process-wide, so ids compare
equal across stores and instances exactly when the signatures are equal.
"""

from __future__ import annotations

import ctypes
import threading
from typing import TYPE_CHECKING, Any

from wasmlower.runtime import values as _values
from wasmlower.wasm.module import FuncType, ValType

if TYPE_CHECKING:
    from wasmlower.runtime.instance import Func, Instance

__all__ = ["STORE_BLOCK_WORDS", "Store", "signature_id"]

# Store block fields (docs/ABI.md), as u64 indexes.
TRAP_SP, STACK_LIMIT, TRAP_CODE, TRAP_PC, TRAP_FP, PENDING = range(6)
STORE_BLOCK_WORDS = 8            # 0x40 bytes: the six ABI fields and two spare words

_SIG_LOCK = threading.Lock()
_SIG_IDS: dict[FuncType, int] = {}


def signature_id(ft: FuncType) -> int:
    """The process-wide canonical id (>= 1) of signature ``ft``."""
    sid = _SIG_IDS.get(ft)
    if sid is None:
        with _SIG_LOCK:
            sid = _SIG_IDS.setdefault(ft, len(_SIG_IDS) + 1)
    return sid


class Store:
    """Owner of instances, host functions and externref handles; one per thread."""

    def __init__(self) -> None:
        self.block = (ctypes.c_uint64 * STORE_BLOCK_WORDS)()
        self.address: int = ctypes.addressof(self.block)
        self._handles: dict[Any, int] = {}          # key -> handle
        self._objects: list[Any] = [None]           # handle -> object
        self._records: dict[int, Any] = {}          # func record address -> Func | (inst, idx)
        self.instances: list[Instance] = []
        self.host_funcs: list[Func] = []
        self._keep: list[Any] = []                  # anything else that must stay alive
        self.pending_exception: BaseException | None = None
        self._bt: Any = None

    # -- Store block fields ------------------------------------------------------

    @property
    def trap_code(self) -> int:
        return int(self.block[TRAP_CODE])

    @property
    def trap_pc(self) -> int:
        return int(self.block[TRAP_PC])

    @property
    def trap_fp(self) -> int:
        return int(self.block[TRAP_FP])

    @property
    def pending(self) -> int:
        return int(self.block[PENDING])

    @pending.setter
    def pending(self, code: int) -> None:
        self.block[PENDING] = code

    def clear_trap(self) -> None:
        """Reset ``trap_code``, ``trap_pc``, ``trap_fp`` and ``pending`` after a trap."""
        for i in (TRAP_CODE, TRAP_PC, TRAP_FP, PENDING):
            self.block[i] = 0

    def backtrace_buffer(self) -> Any:
        """The buffer wasm calls of this store walk frames into (shared: read right away)."""
        if self._bt is None:
            from wasmlower.runtime.native import new_backtrace_buffer
            self._bt = new_backtrace_buffer()
        return self._bt

    # -- externref handles -----------------------------------------------------

    @staticmethod
    def _key(obj: Any) -> Any:
        try:
            hash(obj)
        except TypeError:
            return ("id", id(obj))
        return (type(obj), obj)

    def externref_handle(self, obj: Any) -> int:
        """The handle of ``obj`` (0 for None), allocating one on first use."""
        if obj is None:
            return 0
        key = self._key(obj)
        h = self._handles.get(key)
        if h is None:
            h = len(self._objects)
            self._objects.append(obj)
            self._handles[key] = h
        return h

    def externref_object(self, handle: int) -> Any:
        """The object of externref ``handle`` (None for 0)."""
        if not 0 <= handle < len(self._objects):
            raise ValueError(f"unknown externref handle {handle:#x}")
        return self._objects[handle]

    # -- func records --------------------------------------------------------------

    def register_record(self, address: int, owner: Any) -> None:
        """Remember what func record ``address`` is: a ``Func`` or ``(instance, index)``."""
        self._records[address] = owner

    def func_of_record(self, address: int) -> Func | None:
        """The ``Func`` of func record ``address`` (None for 0)."""
        if address == 0:
            return None
        owner = self._records.get(address)
        if owner is None:
            raise ValueError(f"{address:#x} is not a func record of this store")
        if isinstance(owner, tuple):
            instance, index = owner
            return instance.func(index)
        return owner

    def owns_record(self, address: int) -> bool:
        return address == 0 or address in self._records

    # -- values --------------------------------------------------------------------

    def to_bits(self, vt: ValType, value: Any) -> int:
        """Raw bits of a Python value of wasm type ``vt`` (refs: Func/object/None)."""
        if vt is ValType.FUNCREF:
            if value is None:
                return 0
            from wasmlower.runtime.instance import Func
            if not isinstance(value, Func):
                raise TypeError(f"expected a Func or None for funcref, got {type(value).__name__}")
            if value.store is not self:
                raise ValueError("the function belongs to another store")
            return value.record
        if vt is ValType.EXTERNREF:
            return self.externref_handle(value)
        return _values.to_bits(vt, value)

    def from_bits(self, vt: ValType, bits: int) -> Any:
        """The Python value of raw ``bits`` of wasm type ``vt``."""
        if vt is ValType.FUNCREF:
            return self.func_of_record(bits)
        if vt is ValType.EXTERNREF:
            return self.externref_object(bits)
        return _values.from_bits(vt, bits)

    def check_ref_bits(self, vt: ValType, bits: int) -> None:
        """Raise ValueError unless ``bits`` is a valid reference of type ``vt`` here."""
        if vt is ValType.FUNCREF and not self.owns_record(bits):
            raise ValueError(f"{bits:#x} is not a funcref of this store")
        if vt is ValType.EXTERNREF and not 0 <= bits < len(self._objects):
            raise ValueError(f"{bits:#x} is not an externref handle of this store")

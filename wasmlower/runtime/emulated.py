"""Running AArch64 code on this x86-64 host: unicorn, with the native runtime's data.

The problem: an AArch64 ``CompiledModule`` must instantiate and run through
the same ``Instance``/``Func``/``Store`` code as native x86-64 code, reading
and writing the same VMContext, Store block, linear memory, tables and
globals, which live in this process's memory (ctypes arrays and mmap
regions at host addresses baked into the VMContext).

The mechanism: **identity mapping**.  Every guest address is the host
address: a guest page is mapped with ``mem_map_ptr(addr, size, perms, addr)``
onto the host page itself, so pointers need no translation and writes on
either side are seen by the other at once.  Pages are mapped lazily: a guest
access to an unmapped page stops in a hook, which looks the address up in
``/proc/self/maps`` and maps the readable host mapping around it (the parts
not mapped yet).  Executable guest pages are only ever the AArch64 code
mappings registered here (``code_mapping``), never the host's own x86-64
code.

Control leaves the guest in exactly one way: a branch to an address that is
not AArch64 code, which unicorn reports as a fetch from unmapped memory
(``UC_ERR_FETCH_UNMAPPED``, pc = that address, x30 = the return address).
``_Emulator.service`` then plays the role of the callee in Python:

- a libcall entry point (``libcalls.libcall_address``): call the helper with
  x0..x5, put the result in x0, continue at x30;
- the host callback (``instance._HOST_CB_ADDRESS``) as called by an AArch64
  wasm-to-host trampoline: ``_host_entry(x0, x1)``, result in x0;
- the code of a host function's func record (an x86-64 wasm-to-host
  trampoline; x28 = its HostContext): continue in the AArch64 wasm-to-host
  trampoline of the same signature, which spills the arguments and calls the
  host callback (above), and on failure traps through the calling instance's
  trap routine, as on x86-64.

``call_wasm(block)`` has ``native.call_wasm``'s contract (call block in,
trap code out, backtrace buffer filled on a trap): it enters the module's
host-to-wasm trampoline with x0 = vmctx, x1 = code, x2 = values and x30 =
``EXIT`` (never mapped; ``emu_start`` stops there).  Traps run the AArch64 trap
routine, which unwinds to the trampoline; the frame chain is then walked in
Python from ``trap_fp`` (``[fp]`` = caller's fp, ``[fp+8]`` = return address).
A host function called from the guest may call back into wasm: the nested
``call_wasm`` saves the guest's registers (``context_save``), runs below the
interrupted guest's stack pointer and restores them afterwards.

Invariants: one emulator (``Uc``) per thread with its own guest stack (a host
mmap); the guest stack limit is set on the outermost entry and cleared on
exit; a code mapping is mapped into an emulator only while it is alive (dead
ones are unmapped, and the translation cache flushed, before each outermost
call if any mapping came or went since the last one).
"""

from __future__ import annotations

import bisect
import contextlib
import ctypes
import threading
import weakref
from typing import Any

from wasmlower.emit.relocs import apply_relocs
from wasmlower.errors import LinkError
from wasmlower.runtime import native

__all__ = ["EXIT", "EmulationError", "call_wasm", "code_mapping", "is_emulated"]

EXIT = 0xE0_0000_0000            # the return address of an entry: never mapped
STACK_SIZE = 4 << 20             # guest stack per thread
STACK_RESERVE = 256 << 10        # below the stack limit: trap path, nested entries' slack
NESTED_GAP = 256                 # bytes left below an interrupted guest's sp
PAGE = 0x1000
_TARGETS = ("aarch64", "arm64")


class EmulationError(RuntimeError):
    """The guest did something the emulator cannot continue from (a bug, never a trap)."""


def is_emulated(target: str) -> bool:
    """Does code for ``target`` run under emulation on this host?"""
    return target.split("-", 1)[0] in _TARGETS


# --- code mappings ------------------------------------------------------------------

_CODE_LOCK = threading.Lock()
_CODE_STARTS: list[int] = []
_CODE: list[tuple[int, int, weakref.ref]] = []       # (start, end, mapping), sorted
_CODE_GENERATION = [0]                               # bumped when a mapping comes or goes
_CACHE: dict[int, tuple[weakref.ref, weakref.ref]] = {}


def _forget_code(start: int) -> None:
    with _CODE_LOCK:
        i = bisect.bisect_left(_CODE_STARTS, start)
        if i < len(_CODE_STARTS) and _CODE_STARTS[i] == start:
            del _CODE_STARTS[i]
            del _CODE[i]
        _CODE_GENERATION[0] += 1


def _register_code(mapping: native.CodeMapping) -> None:
    with _CODE_LOCK:
        i = bisect.bisect_left(_CODE_STARTS, mapping.base)
        _CODE_STARTS.insert(i, mapping.base)
        _CODE.insert(i, (mapping.base, mapping.base + mapping.size, weakref.ref(mapping)))
        _CODE_GENERATION[0] += 1
    weakref.finalize(mapping, _forget_code, mapping.base)


def _code_range(addr: int) -> tuple[int, int] | None:
    with _CODE_LOCK:
        i = bisect.bisect_right(_CODE_STARTS, addr) - 1
        if i < 0:
            return None
        start, end, ref = _CODE[i]
    return (start, end) if addr < end and ref() is not None else None


def map_code(text: bytes, relocs=(), compiled: Any = None) -> native.CodeMapping:
    """Map AArch64 ``text`` (read-only on the host, executable in the emulator)."""
    mapping = native.CodeMapping(apply_relocs(text, relocs), (), compiled)
    _register_code(mapping)
    return mapping


def code_mapping(compiled: Any) -> native.CodeMapping:
    """The mapping of an AArch64 ``compiled``'s text, shared by its live instances.

    Unlike native mappings, its trampolines are not entered in
    ``native.TRAMPOLINES`` (those are called from the host directly).
    """
    key = id(compiled)
    entry = _CACHE.get(key)
    if entry is not None and entry[0]() is compiled:
        mapping = entry[1]()
        if mapping is not None:
            return mapping
    mapping = map_code(compiled.text, compiled.relocs, compiled)
    try:
        ref = weakref.ref(compiled, lambda _r, k=key: _CACHE.pop(k, None))
    except TypeError:
        return mapping
    _CACHE[key] = (ref, weakref.ref(mapping))
    return mapping


# --- wasm-to-host trampolines by signature (AArch64) ---------------------------------

_W2H_LOCK = threading.Lock()
_W2H: dict[Any, int] = {}
_W2H_KEEP: list[native.CodeMapping] = []


def _wasm_to_host(ft: Any) -> int:
    with _W2H_LOCK:
        addr = _W2H.get(ft)
        if addr is None:
            from wasmlower.isa.aarch64.trampolines import build_trampolines
            text, _h2w, w2h, _trap = build_trampolines([ft])
            mapping = map_code(text)
            _W2H_KEEP.append(mapping)
            addr = _W2H[ft] = mapping.address(w2h[ft])
        return addr


# --- host memory map ----------------------------------------------------------------


def _host_region(addr: int) -> tuple[int, int, str] | None:
    """``(start, end, perms)`` of the host mapping holding ``addr`` (from /proc/self/maps)."""
    with open("/proc/self/maps") as f:
        for line in f:
            rng, perms = line.split(None, 2)[:2]
            lo, hi = (int(x, 16) for x in rng.split("-"))
            if lo <= addr < hi:
                return lo, hi, perms
    return None


# --- the emulator ---------------------------------------------------------------------


class _Emulator:
    """One unicorn AArch64 CPU with identity-mapped host memory and a guest stack."""

    def __init__(self) -> None:
        import unicorn
        from unicorn import arm64_const as A

        from wasmlower.runtime import instance as _instance
        from wasmlower.runtime import libcalls as _libcalls
        self.unicorn = unicorn
        self.uc = uc = unicorn.Uc(unicorn.UC_ARCH_ARM64, unicorn.UC_MODE_ARM)
        self.A = A
        self.X = [getattr(A, f"UC_ARM64_REG_X{i}") for i in range(29)] + [A.UC_ARM64_REG_X29,
                                                                        A.UC_ARM64_REG_X30]
        self.regions: list[tuple[int, int, str]] = []     # (start, end, "code"|"data"), sorted
        self.generation = _CODE_GENERATION[0]
        self.depth = 0
        self.stack_lo = native.reserve(STACK_SIZE, native.PROT_READ | native.PROT_WRITE)
        self.stack_hi = self.stack_lo + STACK_SIZE
        self._map(self.stack_lo, self.stack_hi, "data")
        self.instance = _instance
        self.libcalls = {}
        for name, impl in _libcalls.IMPLEMENTATIONS.items():
            self.libcalls[_libcalls.libcall_address(name)] = _libcalls._wrap(impl)
        self.host_cb = _instance._HOST_CB_ADDRESS
        uc.hook_add(unicorn.UC_HOOK_MEM_READ_UNMAPPED | unicorn.UC_HOOK_MEM_WRITE_UNMAPPED,
                    self._on_data_fault)
        uc.hook_add(unicorn.UC_HOOK_MEM_FETCH_UNMAPPED, self._on_fetch_fault)

    def __del__(self) -> None:  # pragma: no cover - threads rarely end in tests
        with contextlib.suppress(Exception):
            native.release(self.stack_lo, STACK_SIZE)

    # -- memory ------------------------------------------------------------------------

    def _map(self, lo: int, hi: int, kind: str) -> None:
        """Map ``[lo, hi)`` (page aligned) identically, around what is mapped already."""
        uc = self.uc
        perms = (self.unicorn.UC_PROT_READ | self.unicorn.UC_PROT_EXEC if kind == "code"
                 else self.unicorn.UC_PROT_READ | self.unicorn.UC_PROT_WRITE)
        if kind == "code":          # code replaces whatever stale mapping overlaps it
            for s, e, _k in [r for r in self.regions if r[0] < hi and lo < r[1]]:
                uc.mem_unmap(s, e - s)
                self.regions.remove((s, e, _k))
                uc.ctl_remove_cache(s, e)
        at = lo
        gaps = []
        for s, e, _k in self.regions:
            if e <= at or s >= hi:
                continue
            if s > at:
                gaps.append((at, s))
            at = max(at, e)
        if at < hi:
            gaps.append((at, hi))
        for s, e in gaps:
            uc.mem_map_ptr(s, e - s, perms, s)
            bisect.insort(self.regions, (s, e, kind))

    def _on_data_fault(self, uc, access, address, size, value, data) -> bool:
        region = _host_region(address)
        if region is None or "r" not in region[2] or "x" in region[2]:
            return False
        write = access == self.unicorn.UC_MEM_WRITE_UNMAPPED
        if write and "w" not in region[2]:
            return False
        self._map(region[0], region[1], "data")
        if address + size > region[1]:                  # the access straddles two mappings
            return self._on_data_fault(uc, access, region[1], address + size - region[1], value,
                                       data)
        return True

    def _on_fetch_fault(self, uc, access, address, size, value, data) -> bool:
        rng = _code_range(address)
        if rng is None:
            return False                                 # a call out of the guest: service()
        self._map(rng[0], rng[1], "code")
        return True

    def _drop_code(self) -> None:
        """Forget every code region and translation after code mappings came or went.

        A dead mapping's addresses may be reused by new code (same range,
        other bytes: translations would be stale) or by data (mapped here as
        code: not writable); new code may sit where stale data pages are
        mapped (not executable).  Code is mapped again on its next fetch.
        """
        self.generation = _CODE_GENERATION[0]
        with _CODE_LOCK:
            live = [(s, e) for s, e, ref in _CODE if ref() is not None]
        for s, e, k in list(self.regions):
            if k == "code" or any(ls < e and s < le for ls, le in live):
                self.uc.mem_unmap(s, e - s)
                self.regions.remove((s, e, k))
        self.uc.ctl_flush_tb()

    # -- calls -------------------------------------------------------------------------

    def reg(self, i: int) -> int:
        return self.uc.reg_read(self.X[i])

    def call(self, entry: int, vmctx: int, code: int, store: int, values: int, bt: Any) -> int:
        uc, A = self.uc, self.A
        block = (ctypes.c_uint64 * 6).from_address(store)
        nested = self.depth > 0
        ctx = None
        if nested:
            ctx = uc.context_save()
            sp = (uc.reg_read(A.UC_ARM64_REG_SP) - NESTED_GAP) & ~15
        else:
            if self.generation != _CODE_GENERATION[0]:
                self._drop_code()
            sp = self.stack_hi
        set_limit = block[1] == 0
        if set_limit:
            block[1] = self.stack_lo + STACK_RESERVE
        uc.reg_write(self.X[0], vmctx)
        uc.reg_write(self.X[1], code)
        uc.reg_write(self.X[2], values)
        uc.reg_write(A.UC_ARM64_REG_SP, sp)
        uc.reg_write(self.X[30], EXIT)
        if not nested:
            uc.reg_write(self.X[29], 0)
        self.depth += 1
        try:
            pc = entry
            while True:
                try:
                    uc.emu_start(pc, EXIT)
                    break
                except self.unicorn.UcError as e:
                    if e.errno != self.unicorn.UC_ERR_FETCH_UNMAPPED:
                        raise EmulationError(
                            f"{e} at pc {uc.reg_read(A.UC_ARM64_REG_PC):#x}") from None
                    pc = self.service(uc.reg_read(A.UC_ARM64_REG_PC))
            result = self.reg(0)
            if result:
                self._walk(block[4], bt)
        finally:
            self.depth -= 1
            if set_limit:
                block[1] = 0
            if ctx is not None:
                uc.context_restore(ctx)
        return result

    def service(self, pc: int) -> int:
        """Do what the host code at ``pc`` would; return where the guest continues."""
        impl = self.libcalls.get(pc)
        if impl is not None:
            args = [self.reg(i) for i in range(6)]
            self.uc.reg_write(self.X[0], impl(*args))
            return self.reg(30)
        if pc == self.host_cb:
            result = self.instance._host_entry(self.reg(0), self.reg(1))
            self.uc.reg_write(self.X[0], result)
            return self.reg(30)
        ref = self.instance._HOST_BY_CTX.get(self.reg(28))
        func = ref() if ref is not None else None
        if func is not None:
            return _wasm_to_host(func.type)
        raise EmulationError(f"the guest jumped to {pc:#x}, which is neither AArch64 code "
                             f"nor a runtime entry point")

    def _walk(self, fp: int, bt: Any) -> None:
        """Copy the frame chain's return addresses from ``fp`` into ``bt`` (as the shim does)."""
        n = 0
        cap = native.BACKTRACE_CAPACITY
        while n < cap and fp % 16 == 0 and self.stack_lo <= fp < self.stack_hi - 16:
            words = (ctypes.c_uint64 * 2).from_address(fp)
            bt[1 + n] = words[1]
            n += 1
            if words[0] <= fp:
                break
            fp = words[0]
        bt[0] = n


_tls = threading.local()


def _emulator() -> _Emulator:
    emu = getattr(_tls, "emu", None)
    if emu is None:
        emu = _tls.emu = _Emulator()
    return emu


def call_wasm(block: Any) -> int:
    """``native.call_wasm`` for AArch64 code: run the call ``block`` under emulation."""
    values = ctypes.addressof(block) + 8 * native.BLOCK_VALUES
    try:
        return _emulator().call(block[0], block[1], block[2], block[3], values, block._bt)
    except ImportError as e:  # pragma: no cover - unicorn missing
        raise LinkError(f"AArch64 code needs unicorn to run on this host: {e}") from None

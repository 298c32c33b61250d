"""Native memory and code on x86-64 Linux: mmap through ctypes, code mappings, calls.

Mechanisms:

- ``reserve``/``commit``/``release`` wrap ``mmap``/``mprotect``/``munmap``.
- ``CodeMapping`` maps a text blob: mmap read+write, copy, apply the
  PC-relative relocations, then mprotect read+execute (never writable and
  executable at once).  Every mapping is entered in a process-wide registry of
  code regions, so a program counter can be turned into a wasm frame
  (``symbolize``); the entry goes away when the mapping is collected.
- ``TRAMPOLINES`` knows a host-to-wasm and a wasm-to-host trampoline per
  signature, from the modules mapped so far, and builds missing ones on demand
  (``wasmlower.isa.x64.trampolines.build_trampolines``).
- ``call_wasm`` enters wasm through a host-to-wasm trampoline via a small
  machine-code shim (``_SHIM_CODE``) that takes one "call block" (callee,
  store, backtrace buffer, argument/result slots).  When the trampoline
  returns a trap code, the shim walks the wasm frame chain *before* returning
  to C: once ctypes and the interpreter run again they overwrite the stack
  below them, and with it the frames a backtrace needs.  On the outermost
  entry the shim also bounds the store's ``stack_limit`` by the thread's real
  stack.

Invariants: a mapping's pages are RX from construction until finalization;
the registry holds only weak references, sorted by start address, without
overlaps (the kernel never hands out overlapping mappings).
"""

from __future__ import annotations

import bisect
import ctypes
import mmap
import threading
import weakref
from collections.abc import Iterable
from typing import Any

from wasmlower.emit.relocs import PC32, apply_relocs
from wasmlower.errors import ArtifactError, LinkError
from wasmlower.runtime import signals

__all__ = [
    "BACKTRACE_CAPACITY",
    "BLOCK_VALUES",
    "PAGE_SIZE",
    "PROT_EXEC",
    "PROT_NONE",
    "PROT_READ",
    "PROT_WRITE",
    "STACK_RESERVE",
    "TRAMPOLINES",
    "CodeMapping",
    "backtrace_addresses",
    "call_wasm",
    "cfunc",
    "commit",
    "lookup_code",
    "new_backtrace_buffer",
    "new_call_block",
    "release",
    "reserve",
    "symbolize",
    "thread_stack_bounds",
]

PAGE_SIZE = mmap.PAGESIZE
PROT_NONE, PROT_READ, PROT_WRITE, PROT_EXEC = 0, 1, 2, 4
_MAP_PRIVATE, _MAP_ANONYMOUS, _MAP_NORESERVE = 0x02, 0x20, 0x4000
_MAP_FAILED = (1 << 64) - 1

_libc = ctypes.CDLL(None, use_errno=True)
_mmap = _libc.mmap
_mmap.restype = ctypes.c_void_p
_mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                  ctypes.c_long)
_mprotect = _libc.mprotect
_mprotect.restype = ctypes.c_int
_mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
_munmap = _libc.munmap
_munmap.restype = ctypes.c_int
_munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)


def _page_round(size: int) -> int:
    return max(PAGE_SIZE, (size + PAGE_SIZE - 1) // PAGE_SIZE * PAGE_SIZE)


def reserve(size: int, prot: int = PROT_NONE) -> int:
    """Map ``size`` bytes (rounded up to pages) of private anonymous memory; return the base."""
    addr = _mmap(None, _page_round(size), prot, _MAP_PRIVATE | _MAP_ANONYMOUS | _MAP_NORESERVE,
                 -1, 0)
    if addr is None or addr == _MAP_FAILED:
        err = ctypes.get_errno()
        raise MemoryError(f"mmap of {size:#x} bytes failed (errno {err})")
    return addr


def commit(addr: int, size: int, prot: int = PROT_READ | PROT_WRITE) -> bool:
    """Set the protection of ``[addr, addr+size)`` (page aligned); False if the kernel refuses."""
    if size == 0:
        return True
    if addr % PAGE_SIZE or size % PAGE_SIZE:
        raise ValueError("commit needs page-aligned ranges")
    return _mprotect(addr, size, prot) == 0


def release(addr: int, size: int) -> None:
    """Unmap a region made by ``reserve``."""
    _munmap(addr, _page_round(size))


_PROTOS: dict[tuple, Any] = {}


def cfunc(address: int, restype: Any, *argtypes: Any) -> Any:
    """A ctypes callable for the C function at ``address``."""
    key = (restype, *argtypes)
    proto = _PROTOS.get(key)
    if proto is None:
        proto = _PROTOS[key] = ctypes.CFUNCTYPE(restype, *argtypes)
    return proto(address)


# --- code mappings and the region registry ------------------------------------

_REG_LOCK = threading.Lock()
_REG_STARTS: list[int] = []                     # sorted start addresses
_REG_ENTRIES: list[tuple[int, int, weakref.ref]] = []   # (start, end, mapping), same order


def _publish() -> None:
    """Tell the fault handler (signals.py) where wasm code lives; call under _REG_LOCK."""
    signals.publish([(start, end) for start, end, _ in _REG_ENTRIES])


def _unregister(start: int) -> None:
    with _REG_LOCK:
        i = bisect.bisect_left(_REG_STARTS, start)
        if i < len(_REG_STARTS) and _REG_STARTS[i] == start:
            del _REG_STARTS[i]
            del _REG_ENTRIES[i]
            _publish()


# Mappings whose finalizer ran, waiting to be unregistered and unmapped.  A
# finalizer can run inside any allocation (the cyclic collector), including
# one made while _REG_LOCK is held, so it must never take the lock: it only
# appends here (atomic under the GIL), and `_drain` does the work later.
_PENDING_UNMAP: list[tuple[int, int]] = []


def _unmap_code(start: int, size: int) -> None:
    _PENDING_UNMAP.append((start, size))


def _drain() -> None:
    """Unregister and unmap finalized mappings (size 0: unregister only, the pages
    belong to a ``FileText``); call without holding _REG_LOCK."""
    while _PENDING_UNMAP:
        start, size = _PENDING_UNMAP.pop(0)
        _unregister(start)
        if size:
            _munmap(start, size)




class FileText:
    """A text section mapped executable straight from an artifact file's pages.

    ``offset`` must be page-aligned and the file's text already resolved (the
    artifact writer resolves relocations).  The pages are compared with
    ``expected`` (the text the artifact checks verified) once mapped, so a
    file changed between checking and mapping is refused.
    """

    def __init__(self, fd: int, offset: int, expected: bytes) -> None:
        size = _page_round(len(expected))
        addr = _mmap(None, size, PROT_READ | PROT_EXEC, _MAP_PRIVATE, fd, offset)
        if addr is None or addr == _MAP_FAILED:
            raise OSError(ctypes.get_errno(), "mmap of the artifact's text failed")
        self.base, self.size, self.text_size = addr, size, len(expected)
        self._finalizer = weakref.finalize(self, _unmap_code, addr, size)
        if ctypes.string_at(addr, len(expected)) != expected:
            self._finalizer()
            raise ArtifactError("the artifact file changed while it was being loaded")


class CodeMapping:
    """Executable code: a copy of a text blob (with ``relocs`` resolved), or the
    pages of an artifact file (``file_text``); ``compiled`` (optional)
    describes its functions."""

    def __init__(self, text: bytes, relocs: Iterable[tuple[int, str, int, int]] = (),
                 compiled: Any = None, file_text: FileText | None = None) -> None:
        self.compiled = compiled
        self.text_size = len(text)
        self.size = _page_round(len(text))
        self.file_text = file_text
        for _offset, kind, _target, _addend in relocs:
            if kind not in PC32:
                raise ArtifactError(f"unsupported relocation type {kind!r} at {_offset:#x}")
        if file_text is not None and file_text.text_size == len(text):
            # The file's text was written resolved and compared with the checked bytes.
            base = file_text.base               # unmapped with the FileText, not here
            self._finalizer = weakref.finalize(self, _unmap_code, base, 0)
        else:
            patched = apply_relocs(text, relocs)
            base = reserve(self.size, PROT_READ | PROT_WRITE)
            self._finalizer = weakref.finalize(self, _unmap_code, base, self.size)
            ctypes.memmove(base, patched, len(patched))
            if not commit(base, self.size, PROT_READ | PROT_EXEC):
                raise MemoryError("mprotect(PROT_READ|PROT_EXEC) failed")
        self.base = base
        # Function table for symbolization: sorted by start offset.
        funcs = sorted(getattr(compiled, "functions", ()) or (), key=lambda f: f.offset)
        self._funcs = funcs
        self._func_starts = [f.offset for f in funcs]
        _drain()
        with _REG_LOCK:
            i = bisect.bisect_left(_REG_STARTS, base)
            _REG_STARTS.insert(i, base)
            _REG_ENTRIES.insert(i, (base, base + self.size, weakref.ref(self)))
            _publish()

    def address(self, offset: int) -> int:
        """The address of text offset ``offset``."""
        if not 0 <= offset <= self.text_size:
            raise ArtifactError(f"text offset {offset:#x} is outside the text")
        return self.base + offset

    def function_at(self, pc: int) -> Any:
        """The ``CompiledFunction`` whose code holds address ``pc``, or None."""
        off = pc - self.base
        i = bisect.bisect_right(self._func_starts, off) - 1
        if i < 0:
            return None
        f = self._funcs[i]
        return f if off < f.offset + f.size else None

    def frame(self, pc: int) -> tuple[int, str | None, int | None] | None:
        """``(function index, name, wasm offset)`` of the code byte at ``pc``, or None."""
        f = self.function_at(pc)
        if f is None:
            return None
        off = pc - self.base
        amap = f.addrmap
        wasm_off = None
        if amap:
            # The address map holds text offsets; accept function-relative ones too.
            rel = amap[0][0] < f.offset
            key = off - f.offset if rel else off
            j = bisect.bisect_right(amap, (key, float("inf"))) - 1
            if j >= 0:
                wasm_off = amap[j][1]
        name = f.name or None
        if name is None:
            module = getattr(self.compiled, "module", None)
            name = getattr(module, "func_names", {}).get(f.index)
        return (f.index, name, wasm_off)


def lookup_code(pc: int) -> CodeMapping | None:
    """The live mapping holding address ``pc``, or None."""
    with _REG_LOCK:
        i = bisect.bisect_right(_REG_STARTS, pc) - 1
        if i < 0:
            return None
        _start, end, ref = _REG_ENTRIES[i]
    if pc >= end:
        return None
    return ref()


def symbolize(pc: int) -> tuple[int, str | None, int | None] | None:
    """The wasm frame of code address ``pc`` (a byte inside a call, not a return address)."""
    mapping = lookup_code(pc)
    return mapping.frame(pc) if mapping is not None else None


# --- trampolines per signature -----------------------------------------------


class _Trampolines:
    """Host-to-wasm and wasm-to-host trampolines by signature, from any mapping."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._h2w: dict[Any, tuple[int, weakref.ref]] = {}
        self._w2h: dict[Any, tuple[int, int, weakref.ref]] = {}
        self._built: list[CodeMapping] = []     # on-demand mappings live forever (small)

    def add(self, mapping: CodeMapping, host_to_wasm: dict, wasm_to_host: dict,
            trap_routine: int | None) -> None:
        """Record the trampolines of ``mapping`` (text offsets by signature)."""
        ref = weakref.ref(mapping)
        with self._lock:
            for ft, off in host_to_wasm.items():
                if self._alive(self._h2w.get(ft)) is None:
                    self._h2w[ft] = (mapping.address(off), ref)
            if trap_routine is None:
                return
            trap = mapping.address(trap_routine)
            for ft, off in wasm_to_host.items():
                if self._alive(self._w2h.get(ft)) is None:
                    self._w2h[ft] = (mapping.address(off), trap, ref)

    @staticmethod
    def _alive(entry: tuple | None) -> CodeMapping | None:
        return entry[-1]() if entry is not None else None

    def _build(self, ft: Any) -> None:
        try:
            from wasmlower.isa.x64.trampolines import build_trampolines
        except ImportError as e:  # pragma: no cover - depends on the back end being present
            raise LinkError(f"no trampoline for signature {ft} and none can be built: {e}") \
                from None
        text, h2w, w2h, trap = build_trampolines([ft])
        mapping = CodeMapping(text)
        self._built.append(mapping)
        self.add(mapping, h2w, w2h, trap)

    def host_to_wasm(self, ft: Any) -> tuple[int, CodeMapping]:
        """``(entry address, mapping to keep alive)`` of the host-to-wasm trampoline for ``ft``."""
        with self._lock:
            entry = self._h2w.get(ft)
            mapping = self._alive(entry)
            if mapping is None:
                self._build(ft)
                entry = self._h2w[ft]
                mapping = self._alive(entry)
            assert entry is not None and mapping is not None
            return entry[0], mapping

    def wasm_to_host(self, ft: Any) -> tuple[int, int, CodeMapping]:
        """``(entry, trap routine, mapping to keep alive)`` of the wasm-to-host trampoline."""
        with self._lock:
            entry = self._w2h.get(ft)
            mapping = self._alive(entry)
            if mapping is None:
                self._build(ft)
                entry = self._w2h[ft]
                mapping = self._alive(entry)
            assert entry is not None and mapping is not None
            return entry[0], entry[1], mapping


TRAMPOLINES = _Trampolines()


# --- thread stack bounds -------------------------------------------------------

_tls = threading.local()


def thread_stack_bounds() -> tuple[int, int]:
    """``(low, high)`` addresses of the calling thread's stack; ``(2**64-1, 0)`` if unknown."""
    cached = getattr(_tls, "stack", None)
    if cached is not None:
        return cached
    bounds = ((1 << 64) - 1, 0)
    try:
        self_fn = _libc.pthread_self
        self_fn.restype = ctypes.c_ulong
        attr = ctypes.create_string_buffer(256)       # pthread_attr_t is 56 bytes on x86-64
        if _libc.pthread_getattr_np(ctypes.c_ulong(self_fn()), attr) == 0:
            addr, size = ctypes.c_void_p(), ctypes.c_size_t()
            if _libc.pthread_attr_getstack(attr, ctypes.byref(addr), ctypes.byref(size)) == 0 \
                    and addr.value:
                bounds = (addr.value, addr.value + size.value)
            _libc.pthread_attr_destroy(attr)
    except AttributeError:  # pragma: no cover - not glibc
        pass
    _tls.stack = bounds
    return bounds


# --- entering wasm ---------------------------------------------------------------

# u64 shim(u64 *blk): blk = {entry, vmctx, code, store, bt, values...} (a call block);
# calls entry(vmctx, code, &blk[5]), the host-to-wasm trampoline ABI.
# In: bt[0] = capacity, bt[1] = lowest address a frame may have, bt[2] = stack floor.
# - If the store has no stack_limit yet (outermost entry), sets it to
#   max(rsp - 512 KiB, floor) for the call and clears it afterwards: the
#   trampolines' own budget (rsp - 512 KiB, used only when the limit is 0),
#   but never below the floor, so a thread with a small stack gets a
#   stack_overflow trap instead of running into its guard page.
# - If the call returns a trap code, copies the return addresses of the frame
#   chain starting at store->trap_fp into bt (out: bt[0] = count, bt[1..count]).
#   The walk only reads 8-aligned frames at or above bt[1] and below this shim's
#   own rsp, each above the previous one, so it cannot fault.
#     push rbx; push r12; push r13; push r14; push r15; push rbp; sub rsp, 8
#     mov r12, [rdi+24]; mov rbx, [rdi+32]; mov r13, [rbx]; mov r14, [rbx+8]
#     xor ebp, ebp; cmp qword ptr [r12+8], 0; jne go
#     mov rax, rsp; sub rax, 0x80000; mov r10, [rbx+16]; cmp rax, r10; jae setl; mov rax, r10
# setl: mov [r12+8], rax; mov ebp, 1
# go: mov rax, [rdi]; mov rsi, [rdi+16]; lea rdx, [rdi+40]; mov rdi, [rdi+8]; call rax
#     test ebp, ebp; jz keep; mov qword ptr [r12+8], 0
# keep: test rax, rax; jz done
#     mov r15, rax; mov rcx, [r12+0x20]; xor r8d, r8d
# walk: cmp r8, r13; jae stop; cmp rcx, r14; jb stop; test cl, 7; jnz stop
#     mov rax, rsp; sub rax, 0x10; cmp rcx, rax; ja stop
#     mov rax, [rcx+8]; mov [rbx+r8*8+8], rax; inc r8
#     mov rax, [rcx]; cmp rax, rcx; jbe stop; mov rcx, rax; jmp walk
# stop: mov [rbx], r8; mov rax, r15
# done: add rsp, 8; pop rbp; pop r15; pop r14; pop r13; pop r12; pop rbx; ret
# (One pointer argument: ctypes converts each integer argument slowly.)
_SHIM_CODE = bytes.fromhex(
    "534154415541564157554883ec084c8b6718488b5f204c8b2b4c8b730831ed49"
    "837c240800751f4889e0482d000008004c8b53104c39d073034c89d049894424"
    "08bd01000000488b07488b7710488d5728488b7f08ffd085ed740949c7442408"
    "000000004885c074454989c7498b4c24204531c04d39e8732f4c39f1722af6c1"
    "0775254889e04883e8104839c17719488b41084a8944c30849ffc0488b014839"
    "c876054889c1ebcc4c89034c89f84883c4085d415f415e415d415c5bc3")

_shim_lock = threading.Lock()
_shim: tuple[CodeMapping, Any] | None = None
BACKTRACE_CAPACITY = 4096
_STACK_SLACK = 0x10000      # frames are never in the lowest 64 KiB of a stack (guard pages)
STACK_RESERVE = 0x40000     # native stack left below wasm for host functions and libcalls
BLOCK_VALUES = 5            # index of the first value in a call block


def _get_shim() -> Any:
    global _shim
    if _shim is None:
        with _shim_lock:
            if _shim is None:
                mapping = CodeMapping(_SHIM_CODE)
                _shim = (mapping, cfunc(mapping.base, ctypes.c_uint64, ctypes.c_void_p))
    return _shim[1]


def new_backtrace_buffer() -> Any:
    """A buffer for ``call_wasm``'s frame walk."""
    return (ctypes.c_uint64 * (BACKTRACE_CAPACITY + 2))()


def new_call_block(entry: int, vmctx: int, code: int, store_block: int, bt: Any,
                   nvalues: int) -> Any:
    """A call block for ``call_wasm``: the callee, the store, ``bt``, then ``nvalues`` slots.

    A block may be reused by nested calls of the same function: the trampoline
    reads the arguments on entry and writes the results on exit, so nested
    uses finish before the outer one writes its results.
    """
    block = (ctypes.c_uint64 * (BLOCK_VALUES + max(nvalues, 1)))()
    block[0], block[1], block[2], block[3] = entry, vmctx, code, store_block
    block[4] = ctypes.addressof(bt)
    block._bt = bt                      # keep the buffer alive with the block
    return block


def _walk_bounds() -> tuple[int, int]:
    """(lowest frame address, stack floor) for the calling thread (see the shim)."""
    words = getattr(_tls, "walk", None)
    if words is None:
        low, _high = thread_stack_bounds()
        if low + STACK_RESERVE < (1 << 64):
            words = (low + _STACK_SLACK, low + STACK_RESERVE)
        else:                   # unknown stack: no walk, the trampolines' own budget
            words = ((1 << 64) - 1, 0)
        _tls.walk = words
    return words


def call_wasm(block: Any) -> int:
    """Call through the call ``block`` (``new_call_block``); return 0 or the trap code.

    Arguments go in ``block[BLOCK_VALUES:]`` and results come back there; on a
    trap the block's backtrace buffer receives the frame chain's return
    addresses, innermost first.  The outermost call of a store also sets its
    ``stack_limit`` (see the shim above).
    """
    shim = _shim[1] if _shim is not None else _get_shim()
    bt = block._bt
    bt[0] = BACKTRACE_CAPACITY
    bt[1], bt[2] = _walk_bounds()
    return shim(block)


def backtrace_addresses(bt: Any) -> list[int]:
    """The return addresses ``call_wasm`` stored in ``bt`` after a trap."""
    n = min(int(bt[0]), BACKTRACE_CAPACITY)
    return list(bt[1:1 + n])

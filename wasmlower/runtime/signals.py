"""Out-of-bounds heap accesses as traps: guard pages and a SIGSEGV handler.

Every linear memory reserves 8 GiB of address space (``memory.py``), of which
only ``[base, base + size)`` is accessible, and compiled code accesses
``base + zext32(index) + offset`` with ``offset < 2^31`` without a bounds
check: an out-of-bounds access always lands in the inaccessible rest of the
reservation and faults.  This module installs (once per process) a
SIGSEGV/SIGBUS handler, written in machine code because no Python may run in
a signal handler, that turns such a fault into a wasm trap:

- if the faulting pc lies in a mapped wasm code region (``REGIONS``, kept in
  sync by ``native.py``), it makes the interrupted context *call the trap
  routine* of the faulting instance: it pushes ``pc + 1`` as the return
  address (so the address-map lookup at ``pc`` names the faulting access),
  sets ``rsi`` to the ``heap_oob`` code and ``rip`` to ``[r15 + 0x38]``, and
  returns; the kernel resumes there, and the trap unwinds as any other;
- otherwise it hands the signal to the handler that was installed before it
  (Python's faulthandler, say), or restores the default action and returns,
  so the fault repeats and ends the process as it would have without us.

Invariant: ``REGIONS[0]`` is the number of (start, end) pairs that follow.
Only ``native.py`` writes it, under its registry lock, count last when adding.
"""

from __future__ import annotations

import ctypes
import signal
import threading

from ..ir.ops import TRAP_CODES

CAPACITY = 1 << 16
REGIONS = (ctypes.c_uint64 * (1 + 2 * CAPACITY))()
_OLD = (ctypes.c_uint64 * 65)()                    # previous handler, by signal number
_DFL = (ctypes.c_uint64 * 4)()                     # a zeroed kernel sigaction: SIG_DFL

SA_SIGINFO = 0x4
SA_ONSTACK = 0x08000000
SIGNALS = (signal.SIGSEGV, signal.SIGBUS)

_lock = threading.Lock()
_handler_addr = 0
_keep: list = []


class _SigAction(ctypes.Structure):
    _fields_ = [("handler", ctypes.c_void_p), ("mask", ctypes.c_uint64 * 16),
                ("flags", ctypes.c_int), ("restorer", ctypes.c_void_p)]


def publish(regions: list[tuple[int, int]]) -> None:
    """Make ``regions`` (start, end) the set of wasm code ranges the handler knows."""
    n = min(len(regions), CAPACITY)
    REGIONS[0] = 0
    for i, (start, end) in enumerate(regions[:n]):
        REGIONS[1 + 2 * i] = start
        REGIONS[2 + 2 * i] = end
    REGIONS[0] = n


def _handler_asm() -> str:
    table = ctypes.addressof(REGIONS)
    old = ctypes.addressof(_OLD)
    dfl = ctypes.addressof(_DFL)
    return "\n".join([
        "mov rax, qword ptr [rdx+168]",            # the faulting rip (gregs[REG_RIP])
        f"movabs rcx, {table:#x}",
        "mov r8, qword ptr [rcx]",
        "lea r9, [rcx+8]",
        ".Lloop:",
        "test r8, r8",
        "jz .Lnot_ours",
        "cmp rax, qword ptr [r9]",
        "jb .Lnext",
        "cmp rax, qword ptr [r9+8]",
        "jb .Lours",
        ".Lnext:",
        "add r9, 16",
        "dec r8",
        "jmp .Lloop",
        ".Lours:",
        "mov rcx, qword ptr [rdx+160]",            # rsp
        "sub rcx, 8",
        "lea r8, [rax+1]",
        "mov qword ptr [rcx], r8",                 # the trap routine's "return address"
        "mov qword ptr [rdx+160], rcx",
        f"mov qword ptr [rdx+112], {TRAP_CODES['heap_oob']}",   # rsi = trap code
        "mov rcx, qword ptr [rdx+96]",             # r15: the instance's VMContext
        "mov rcx, qword ptr [rcx+56]",             # its trap routine
        "mov qword ptr [rdx+168], rcx",
        "ret",
        ".Lnot_ours:",
        f"movabs rax, {old:#x}",
        "mov rax, qword ptr [rax+rdi*8]",
        "cmp rax, 1",
        "jbe .Ldefault",
        "jmp rax",
        ".Ldefault:",                              # rt_sigaction(signo, SIG_DFL, 0, 8)
        f"movabs rsi, {dfl:#x}",
        "xor edx, edx",
        "mov r10d, 8",
        "mov eax, 13",
        "syscall",
        "ret",
    ])


def _libc_sigaction():
    libc = ctypes.CDLL(None, use_errno=True)
    fn = libc.sigaction
    fn.argtypes = [ctypes.c_int, ctypes.POINTER(_SigAction), ctypes.POINTER(_SigAction)]
    fn.restype = ctypes.c_int
    return fn


def ensure_installed() -> None:
    """Install the handler for SIGSEGV and SIGBUS unless it is the current one."""
    global _handler_addr
    with _lock:
        sigaction = _libc_sigaction()
        if not _handler_addr:
            from ..emit.assemble import assemble
            from .native import CodeMapping
            mapping = CodeMapping(assemble(_handler_asm()))
            _keep.append(mapping)
            _handler_addr = mapping.address(0)
        for sig in SIGNALS:
            cur = _SigAction()
            if sigaction(sig, None, ctypes.byref(cur)) != 0:
                continue
            if (cur.handler or 0) == _handler_addr:
                continue
            _OLD[sig] = cur.handler or 0
            act = _SigAction()
            act.handler = _handler_addr
            act.flags = SA_SIGINFO | SA_ONSTACK
            if sigaction(sig, ctypes.byref(act), None) != 0:
                raise OSError(ctypes.get_errno(), f"sigaction({sig}) failed")

"""Trampolines between the host and AArch64 wasm code, and the trap routine.

How values are marshalled is shared with x64 (``wasmlower/isa/trampolines.py``);
here are AArch64's frames and instructions.  The layout of the Store block is
docs/ABI.md, the frames docs/AARCH64.md.  The runtime enters the host-to-wasm trampoline under
emulation (runtime/emulated.py) with the C-like signature
``u64 entry(x0 = vmctx, x1 = code, x2 = values)``.  Its frame (fp-relative)::

    fp+8, fp      return address, caller's fp
    fp-16         the store's previous stack_limit (restored on exit: nesting)
    fp-16-8       ... and previous trap_sp (pair at [fp-16], trap_sp first)
    fp-96..fp-24  saved x19..x28; trap_sp points at fp-96, so a trap's
                  fp = trap_sp + 96

The trap routine (entered with w1 = the trap code) moves sp back to the
innermost trap_sp and leaves through the normal return path, which restores
x19..x28 and the store's previous trap_sp/stack_limit.
"""

from __future__ import annotations

from wasmlower.ir.ops import TRAP_CODES
from wasmlower.isa import trampolines as shared

from .abi import CONV
from .emit import load_imm, mem_operand
from .regs import reg_name

SAVE_AREA = 96                # x19..x28 and the store's previous trap_sp/stack_limit

_EXIT = [
    "ldp x10, x11, [x29, #-16]",
    "str x10, [x9]",
    "str x11, [x9, #8]",
    f"sub sp, x29, #{SAVE_AREA}",
    "ldp x19, x20, [sp]",
    "ldp x21, x22, [sp, #16]",
    "ldp x23, x24, [sp, #32]",
    "ldp x25, x26, [sp, #48]",
    "ldp x27, x28, [sp, #64]",
    "mov sp, x29",
    "ldp x29, x30, [sp], #16",
    "ret",
]


def _access(op: str, preg: int, base: str, off: int) -> list[str]:
    setup, addr = mem_operand(base, off, "x17")
    return [*setup, f"{op} {reg_name(preg)}, {addr}"]


def _sub_sp(n: int) -> list[str]:
    if n < 4096:
        return [f"sub sp, sp, #{n}"]
    return [*load_imm("x17", n), "sub sp, sp, x17"]


class Aarch64Trampolines(shared.Trampolines):
    arch = "aarch64"
    align = 4
    conv = CONV
    SP, FP = "sp", "x29"
    VALUES = "x19"
    H2W_SCRATCH = 10              # x10
    W2H_SCRATCH = 16              # x16

    def load(self, preg: int, base: str, off: int) -> list[str]:
        return _access("ldr", preg, base, off)

    def store(self, preg: int, base: str, off: int) -> list[str]:
        return _access("str", preg, base, off)

    def reserve(self, size: int) -> list[str]:
        return _sub_sp(size)

    def h2w_enter(self, label: str) -> list[str]:
        # x28 = vmctx, x19 = values, x20 = code, x21 = the store; save its
        # trap_sp and stack_limit, set trap_sp, and the stack limit if this is
        # the outermost entry.
        return ["stp x29, x30, [sp, #-16]!", "mov x29, sp",
                f"sub sp, sp, #{SAVE_AREA}", "stp x19, x20, [sp]", "stp x21, x22, [sp, #16]",
                "stp x23, x24, [sp, #32]", "stp x25, x26, [sp, #48]", "stp x27, x28, [sp, #64]",
                "mov x28, x0", "mov x19, x2", "mov x20, x1", "ldr x21, [x28]",
                "ldr x10, [x21]", "ldr x11, [x21, #8]", "stp x10, x11, [sp, #80]",
                "mov x10, sp", "str x10, [x21]", f"cbnz x11, {label}_go",
                *load_imm("x12", shared.STACK_BUDGET), "sub x10, x10, x12", "str x10, [x21, #8]",
                f"{label}_go:"]

    def h2w_call(self) -> list[str]:
        return ["blr x20"]

    def h2w_leave(self) -> list[str]:
        return ["mov x0, xzr", "mov x9, x21", *_EXIT]

    def w2h_enter(self, slots: int) -> list[str]:
        area = 16 + shared.aligned16(8 * slots)
        return ["stp x29, x30, [sp, #-16]!", "mov x29, sp", *_sub_sp(area),
                "stur x28, [x29, #-8]"]

    def w2h_call(self, label: str) -> list[str]:
        return ["mov x0, x28", "mov x1, sp", f"ldr x16, [x28, #{shared.HOST_CALLBACK}]",
                "blr x16", f"cbnz x0, {label}_trap"]

    def w2h_leave(self, label: str) -> list[str]:
        return ["ldur x28, [x29, #-8]", "mov sp, x29", "ldp x29, x30, [sp], #16", "ret",
                # The trap routine of the calling instance: its VMContext is the
                # one the calling wasm frame saved at [fp-8].
                f"{label}_trap:", "ldr x16, [x29]", "ldur x28, [x16, #-8]",
                f"mov w1, #{TRAP_CODES['host']}", f"ldr x16, [x28, #{shared.VM_TRAP_FN}]",
                "blr x16"]

    def trap_routine_asm(self, label: str) -> str:
        """Entered by ``blr`` with the trap code in w1 and x28 a VMContext of the store."""
        return "\n".join([
            f"{label}:",
            "ldr x9, [x28]",
            f"str x1, [x9, #{shared.ST_CODE}]",
            f"str x30, [x9, #{shared.ST_PC}]",
            f"str x29, [x9, #{shared.ST_FP}]",
            f"ldr x10, [x9, #{shared.ST_TRAP_SP}]",
            "mov sp, x10",
            f"add x29, sp, #{SAVE_AREA}",
            "mov w0, w1",
            *_EXIT,
        ])


TRAMPOLINES = Aarch64Trampolines()
host_to_wasm_asm = TRAMPOLINES.host_to_wasm_asm
wasm_to_host_asm = TRAMPOLINES.wasm_to_host_asm
trap_routine_asm = TRAMPOLINES.trap_routine_asm
build_trampolines = TRAMPOLINES.build

"""Trampolines between Python (C ABI) and x86-64 wasm code, and the trap routine.

The marshalling of values follows the calling convention as on every ISA
(``wasmlower/isa/trampolines.py``); this module gives the frames and the
instructions.  The layout of frames and of the Store block is docs/ABI.md.
The host-to-wasm trampoline's frame (rbp-relative):

    rbp-8 .. rbp-40   saved rbx r12 r13 r14 r15
    rbp-48            the store's previous trap_sp (restored on exit: nesting)
    rbp-56            the store's previous stack_limit
    rbp-64            padding; trap_sp points here, so a trap's rbp = trap_sp + 64

The trap routine resets rsp to the innermost trap_sp and runs the same exit
sequence as a normal return, so every callee-saved register is restored.
"""

from __future__ import annotations

from wasmlower.ir.ops import TRAP_CODES
from wasmlower.isa import trampolines as shared

from .abi import CONV
from .regs import FLOAT_BASE, NUM, reg_name

_EXIT = """\
    mov rdx, qword ptr [rbp-48]
    mov qword ptr [rcx], rdx
    mov rdx, qword ptr [rbp-56]
    mov qword ptr [rcx+8], rdx
    lea rsp, [rbp-40]
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret"""


class X64Trampolines(shared.Trampolines):
    arch = "x86_64"
    align = 16
    conv = CONV
    SP, FP = "rsp", "rbp"
    VALUES = "r12"
    H2W_SCRATCH = W2H_SCRATCH = NUM["rax"]

    def load(self, preg: int, base: str, off: int) -> list[str]:
        op = "movq" if preg >= FLOAT_BASE else "mov"
        return [f"{op} {reg_name(preg)}, qword ptr [{base}+{off}]"]

    def store(self, preg: int, base: str, off: int) -> list[str]:
        op = "movq" if preg >= FLOAT_BASE else "mov"
        return [f"{op} qword ptr [{base}+{off}], {reg_name(preg)}"]

    def reserve(self, size: int) -> list[str]:
        return [f"sub rsp, {size}"]

    def h2w_enter(self, label: str) -> list[str]:
        # r15 = vmctx, r12 = values, r11 = code; push the store's trap_sp and
        # stack_limit, set trap_sp, and the stack limit if this is the outermost entry.
        return ["push rbp", "mov rbp, rsp", "push rbx", "push r12", "push r13",
                "push r14", "push r15", "mov r15, rdi", "mov r12, rdx", "mov r11, rsi",
                "mov rax, qword ptr [r15]", "push qword ptr [rax]", "push qword ptr [rax+8]",
                "sub rsp, 8", "mov qword ptr [rax], rsp", "cmp qword ptr [rax+8], 0",
                f"jne {label}_go", f"lea rcx, [rsp - {shared.STACK_BUDGET:#x}]",
                "mov qword ptr [rax+8], rcx", f"{label}_go:"]

    def h2w_call(self) -> list[str]:
        return ["call r11"]

    def h2w_leave(self) -> list[str]:
        return ["xor eax, eax", "mov rcx, qword ptr [r15]", _EXIT]

    def w2h_enter(self, slots: int) -> list[str]:
        area = shared.aligned16(8 * slots) + 8          # keeps rsp 16-aligned at the call
        return ["push rbp", "mov rbp, rsp", "push r15", f"sub rsp, {area}"]

    def w2h_call(self, label: str) -> list[str]:
        return ["mov rdi, r15", "mov rsi, rsp", f"call qword ptr [r15+{shared.HOST_CALLBACK}]",
                "test rax, rax", f"jnz {label}_trap"]

    def w2h_leave(self, label: str) -> list[str]:
        return ["mov r15, qword ptr [rbp-8]", "mov rsp, rbp", "pop rbp", "ret",
                f"{label}_trap:", "mov r15, qword ptr [rbp-8]",
                f"mov esi, {TRAP_CODES['host']}", f"call qword ptr [r15+{shared.VM_TRAP_FN}]"]

    def trap_routine_asm(self, label: str) -> str:
        return "\n".join([
            f"{label}:",
            "mov rax, qword ptr [r15]",
            f"mov qword ptr [rax+{shared.ST_CODE}], rsi",
            "pop rcx",
            f"mov qword ptr [rax+{shared.ST_PC}], rcx",
            f"mov qword ptr [rax+{shared.ST_FP}], rbp",
            f"mov rsp, qword ptr [rax+{shared.ST_TRAP_SP}]",
            "lea rbp, [rsp+64]",
            "mov rcx, rax",
            f"mov rax, qword ptr [rcx+{shared.ST_CODE}]",
            _EXIT,
        ])


TRAMPOLINES = X64Trampolines()
host_to_wasm_asm = TRAMPOLINES.host_to_wasm_asm
wasm_to_host_asm = TRAMPOLINES.wasm_to_host_asm
trap_routine_asm = TRAMPOLINES.trap_routine_asm
build_trampolines = TRAMPOLINES.build

"""x86-64 registers: names, classes, and the allocator's view of them.

Numbering: general-purpose registers 0-15 in hardware encoding order, xmm
registers 16-31.  ``r15`` holds the VMContext and ``rbp``/``rsp`` the frame,
so they are never allocated; ``r11`` and ``xmm15`` are the scratch registers
of the move resolver and of multi-instruction templates (free inside one
instruction's template, never live across instructions).
"""

from __future__ import annotations

GPR64 = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
         "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
GPR32 = ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi",
         "r8d", "r9d", "r10d", "r11d", "r12d", "r13d", "r14d", "r15d")
GPR16 = ("ax", "cx", "dx", "bx", "sp", "bp", "si", "di",
         "r8w", "r9w", "r10w", "r11w", "r12w", "r13w", "r14w", "r15w")
GPR8 = ("al", "cl", "dl", "bl", "spl", "bpl", "sil", "dil",
        "r8b", "r9b", "r10b", "r11b", "r12b", "r13b", "r14b", "r15b")
XMM = tuple(f"xmm{i}" for i in range(16))

NAMES = GPR64 + XMM
NUM = {name: i for i, name in enumerate(NAMES)}

# Register name -> class, as the rule files see them.
REGS: dict[str, str] = {**dict.fromkeys(GPR64, "gpr"), **dict.fromkeys(XMM, "xmm")}
FLOAT_CLASSES = {"xmm"}
CLASS_INDEX = {"gpr": 0, "xmm": 1}

# Template placeholders the x64 emitter (emit.py) expands itself.
TEMPLATE_PLACEHOLDERS = {"nothing", "epilogue", "callee", "call_indirect", "slot"}

GPR, FPR = 0, 1
FLOAT_BASE = 16                  # xmm0
VMCTX = NUM["r15"]
SCRATCH_GPR = NUM["r11"]
SCRATCH_XMM = NUM["xmm15"]

# Caller-saved first: short values take them and leave callee-saved ones
# for values that live across calls.
ALLOCATABLE_GPR = tuple(NUM[r] for r in ("rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10",
                                         "rbx", "r12", "r13", "r14"))
ALLOCATABLE_XMM = tuple(NUM[f"xmm{i}"] for i in range(15))
CALLEE_SAVED = frozenset(NUM[r] for r in ("rbx", "r12", "r13", "r14"))
CALLER_SAVED = frozenset(set(ALLOCATABLE_GPR) - CALLEE_SAVED) | frozenset(
    {SCRATCH_GPR, *ALLOCATABLE_XMM, SCRATCH_XMM})


def reg_name(preg: int, width: int = 64) -> str:
    """The assembly name of a physical register at an operand width."""
    if preg >= FLOAT_BASE:
        return XMM[preg - FLOAT_BASE]
    return {64: GPR64, 32: GPR32, 16: GPR16, 8: GPR8}[width][preg]


def regfile(stress: bool = False):
    """The allocator's description of the register file."""
    from ...regalloc.constraints import RegFile
    gpr, xmm = ALLOCATABLE_GPR, ALLOCATABLE_XMM
    return RegFile(names=NAMES, classes=(gpr, xmm), callee_saved=CALLEE_SAVED,
                   scratch=(SCRATCH_GPR, SCRATCH_XMM))

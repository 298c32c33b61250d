"""AArch64 registers: names, classes, and the allocator's view of them.

Numbering: general-purpose registers x0-x30 are 0-30, ``sp`` is 31, and the
SIMD/FP registers v0-v31 are 32-63 (used as ``d``/``s`` scalars).  ``x28``
holds the VMContext, ``x29``/``x30`` are the frame pointer and link register,
``x18`` (the platform register) is left alone.  ``x16``/``x17`` and
``v30``/``v31`` are scratch: ``x16`` and ``v31`` belong to the move resolver
between instructions, and inside one instruction's template all four are
free (never live across instructions).
"""

from __future__ import annotations

GPR64 = tuple(f"x{i}" for i in range(31)) + ("sp",)
GPR32 = tuple(f"w{i}" for i in range(31)) + ("wsp",)
VEC = tuple(f"v{i}" for i in range(32))
FPR64 = tuple(f"d{i}" for i in range(32))
FPR32 = tuple(f"s{i}" for i in range(32))

NAMES = GPR64 + VEC
NUM = {name: i for i, name in enumerate(NAMES)}
NUM.update({f"d{i}": 32 + i for i in range(32)})

# Register name -> class, as the rule files see them.
REGS: dict[str, str] = {**dict.fromkeys(GPR64, "gpr"), **dict.fromkeys(VEC, "fpr")}
FLOAT_CLASSES = {"fpr"}
CLASS_INDEX = {"gpr": 0, "fpr": 1}

# Template placeholders the AArch64 emitter (emit.py) expands itself:
# {li:REG:IMM} loads an immediate into a register with movz/movk (one line
# per instruction); {lit32:REG:IMM}/{lit64:REG:IMM} load a float pattern from
# the function's literal pool; {fk32:REG:IMM}/{fk64:REG:IMM} load one by the
# shortest route (movi, fmov #imm8, the pool, or movz/movk + fmov as the
# fconst rules choose); {hex:IMM} is an immediate written in hex (for fmov's
# encoded imm8, which a decimal would mean as a float); the others as on x64.
TEMPLATE_PLACEHOLDERS = {"nothing", "epilogue", "call", "call_indirect", "slot", "li",
                         "lit32", "lit64", "fk32", "fk64", "hex"}

GPR, FPR = 0, 1
FLOAT_BASE = 32
VMCTX = NUM["x28"]
FP, LR, SP = NUM["x29"], NUM["x30"], NUM["sp"]
SCRATCH_GPR = NUM["x16"]
SCRATCH_FPR = NUM["v31"]

# Caller-saved first: short values take them and leave callee-saved ones
# for values that live across calls.  Temporaries before argument registers,
# so that the stress setting's first three registers are not all taken by
# the fixed arguments of a call (call_indirect also needs its index).
ALLOCATABLE_GPR = tuple(range(9, 16)) + tuple(range(9)) + tuple(range(19, 28))
ALLOCATABLE_FPR = tuple(FLOAT_BASE + i for i in (*range(16, 30), *range(16)))
CALLEE_SAVED = frozenset(range(19, 28))
CALLER_SAVED = frozenset(set(ALLOCATABLE_GPR) - CALLEE_SAVED) | frozenset(
    {NUM["x16"], NUM["x17"], LR, *ALLOCATABLE_FPR, FLOAT_BASE + 30, FLOAT_BASE + 31})


def reg_name(preg: int, width: int = 64) -> str:
    """The assembly name of a physical register at an operand width (d/s for floats)."""
    if preg >= FLOAT_BASE:
        return (FPR32 if width == 32 else FPR64)[preg - FLOAT_BASE]
    return (GPR32 if width in (8, 16, 32) else GPR64)[preg]


def regfile(stress: bool = False):
    """The allocator's description of the register file."""
    from ...regalloc.constraints import RegFile
    return RegFile(names=NAMES, classes=(ALLOCATABLE_GPR, ALLOCATABLE_FPR),
                   callee_saved=CALLEE_SAVED, scratch=(SCRATCH_GPR, SCRATCH_FPR))

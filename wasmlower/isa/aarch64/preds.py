"""Predicates and immediate helpers used by the AArch64 rules."""

from __future__ import annotations

# The target-independent helpers are re-exported for the rule loader.
from wasmlower.isa.preds import is64, isf32, isf64, log2, mask, pow2

__all__ = ["cond", "fcond", "is64", "isf32", "isf64", "log2", "mask", "memimm", "neg", "nimm12", "pow2", "uimm12", "vmoff"]


_COND = {"eq": "eq", "ne": "ne", "slt": "lt", "sle": "le", "sgt": "gt", "sge": "ge",
         "ult": "lo", "ule": "ls", "ugt": "hi", "uge": "hs"}


def uimm12(k: int) -> bool:
    """k fits the unsigned 12-bit immediate of add/sub/cmp (unshifted)."""
    return 0 <= k < 4096


def nimm12(k: int) -> bool:
    """-k fits the 12-bit immediate (so add becomes sub, cmp becomes cmn)."""
    return -4096 < k < 0


def neg(k: int) -> int:
    return -k


def memimm(off: int, size: int) -> bool:
    """The access `[base + off]` and the bounds check `p + off + size` fit one instruction.

    The end goes in an add immediate (imm12); the offset in ldr/str's scaled
    imm12 (a multiple of the size) or ldur/stur's signed 9-bit one.
    """
    return 0 <= off and off + size < 4096 and (off % size == 0 or off < 256)


def vmoff(off: int) -> bool:
    """A VMContext/pointer offset fits ldr/str's scaled immediate for 8-byte slots."""
    return 0 <= off < 32760 and off % 8 == 0


def cond(cc: str) -> str:
    """The AArch64 condition of an IR integer comparison."""
    return _COND[cc]


_FCOND = {"eq": "eq", "ne": "ne", "lt": "mi", "le": "ls", "gt": "gt", "ge": "ge"}


def fcond(cc: str) -> str:
    """The AArch64 condition of an IR float comparison (false when unordered, but ne)."""
    return _FCOND[cc]

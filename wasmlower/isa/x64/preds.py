"""Predicates and immediate helpers used by the x86-64 rules."""

from __future__ import annotations

# The target-independent helpers are re-exported for the rule loader.
from wasmlower.isa.preds import is64, isf32, isf64, log2, mask, pow2

__all__ = ["is64", "isf32", "isf64", "log2", "mask", "pow2", "simm32", "x86cc"]


_X86CC = {"eq": "e", "ne": "ne", "slt": "l", "sle": "le", "sgt": "g", "sge": "ge",
          "ult": "b", "ule": "be", "ugt": "a", "uge": "ae"}


def simm32(k: int) -> bool:
    """k fits a sign-extended 32-bit immediate."""
    return -(1 << 31) <= k < (1 << 31)


def x86cc(cc: str) -> str:
    """The x86 condition-code suffix of an IR integer comparison."""
    return _X86CC[cc]

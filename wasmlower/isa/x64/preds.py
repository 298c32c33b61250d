"""Predicates and immediate helpers used by the x86-64 rules."""

from __future__ import annotations

from wasmlower.ir.types import Type

_X86CC = {"eq": "e", "ne": "ne", "slt": "l", "sle": "le", "sgt": "g", "sge": "ge",
          "ult": "b", "ule": "be", "ugt": "a", "uge": "ae"}


def simm32(k: int) -> bool:
    """k fits a sign-extended 32-bit immediate."""
    return -(1 << 31) <= k < (1 << 31)


def pow2(k: int) -> bool:
    return k > 0 and k & (k - 1) == 0


def log2(k: int) -> int:
    return k.bit_length() - 1


def mask(k: int, m: int) -> int:
    return k & m


def x86cc(cc: str) -> str:
    """The x86 condition-code suffix of an IR integer comparison."""
    return _X86CC[cc]


def is64(v) -> bool:
    """The value is a 64-bit integer."""
    return v.type is Type.I64


def isf64(v) -> bool:
    """The value is an f64."""
    return v.type is Type.F64


def isf32(v) -> bool:
    """The value is an f32."""
    return v.type is Type.F32

"""Target-independent predicates and immediate helpers for rule guards.

Each ISA's ``preds.py`` re-exports these beside its own (the rule loader
looks names up on that module).
"""

from __future__ import annotations

from wasmlower.ir.types import Type


def pow2(k: int) -> bool:
    return k > 0 and k & (k - 1) == 0


def log2(k: int) -> int:
    return k.bit_length() - 1


def mask(k: int, m: int) -> int:
    return k & m


def is64(v) -> bool:
    """The value is a 64-bit integer."""
    return v.type is Type.I64


def isf64(v) -> bool:
    """The value is an f64."""
    return v.type is Type.F64


def isf32(v) -> bool:
    """The value is an f32."""
    return v.type is Type.F32

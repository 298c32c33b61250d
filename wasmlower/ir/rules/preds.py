"""Immediate helpers for the mid-end rewrite rules (opt.rules)."""

from __future__ import annotations


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def wrap32(value: int) -> int:
    """``value`` wrapped to i32 (stored signed, as the IR keeps immediates)."""
    return _signed(value, 32)


def wrap64(value: int) -> int:
    return _signed(value, 64)


def and_(a: int, b: int) -> int:
    return a & b


def or_(a: int, b: int) -> int:
    return a | b


def xor_(a: int, b: int) -> int:
    return a ^ b

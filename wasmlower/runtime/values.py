"""Python values <-> the raw bits wasm code sees.

Every wasm value crosses the Python boundary as a u64 of raw bits (docs/ABI.md):
i32/f32 in the low 32 bits, i64/f64 in all 64, references as handles.  This
module converts the numeric types; references need a store to resolve their
handles (``Store.to_bits``/``Store.from_bits``).

Floats: a Python ``float`` converts through IEEE rounding (an f32 out of range
becomes an infinity), which can change a NaN's payload.  For exact bit
transfer wrap the bits in ``F32Bits``/``F64Bits`` (accepted wherever a float
is), or use ``Func.call_raw``.
"""

from __future__ import annotations

import math
import struct
from typing import Self

from wasmlower.wasm.module import ValType

__all__ = [
    "MASK32",
    "MASK64",
    "F32Bits",
    "F64Bits",
    "bits_to_f32",
    "bits_to_f64",
    "f32_to_bits",
    "f64_to_bits",
    "from_bits",
    "signed",
    "to_bits",
]

MASK32 = (1 << 32) - 1
MASK64 = (1 << 64) - 1


class F32Bits(int):
    """An f32 given by its raw IEEE bit pattern (0 <= bits < 2**32)."""

    def __new__(cls, bits: int) -> Self:
        if not 0 <= bits <= MASK32:
            raise ValueError(f"f32 bit pattern out of range: {bits:#x}")
        return super().__new__(cls, bits)

    def __repr__(self) -> str:
        return f"F32Bits({int(self):#010x})"

    @property
    def float(self) -> float:
        return bits_to_f32(int(self))


class F64Bits(int):
    """An f64 given by its raw IEEE bit pattern (0 <= bits < 2**64)."""

    def __new__(cls, bits: int) -> Self:
        if not 0 <= bits <= MASK64:
            raise ValueError(f"f64 bit pattern out of range: {bits:#x}")
        return super().__new__(cls, bits)

    def __repr__(self) -> str:
        return f"F64Bits({int(self):#018x})"

    @property
    def float(self) -> float:
        return bits_to_f64(int(self))


def signed(bits: int, width: int) -> int:
    """The two's complement value of the low ``width`` bits of ``bits``."""
    bits &= (1 << width) - 1
    return bits - (1 << width) if bits >> (width - 1) else bits


def f32_to_bits(value: float) -> int:
    """IEEE single bits of ``value``, rounded to nearest (overflow gives an infinity)."""
    try:
        return struct.unpack("<I", struct.pack("<f", value))[0]
    except OverflowError:
        # struct refuses finite values whose float rounding is infinite; that
        # rounding is exactly what wasm's demotion does.
        return 0xFF800000 if value < 0 else 0x7F800000


def f64_to_bits(value: float) -> int:
    """IEEE double bits of ``value``."""
    return struct.unpack("<Q", struct.pack("<d", value))[0]


def bits_to_f32(bits: int) -> float:
    """The f32 with bit pattern ``bits`` (low 32 bits), as a Python float."""
    return struct.unpack("<f", struct.pack("<I", bits & MASK32))[0]


def bits_to_f64(bits: int) -> float:
    """The f64 with bit pattern ``bits``, as a Python float."""
    return struct.unpack("<d", struct.pack("<Q", bits & MASK64))[0]


def _int_arg(value: object, width: int, vt: ValType) -> int:
    if isinstance(value, (F32Bits, F64Bits)) or not isinstance(value, int):
        raise TypeError(f"expected an int for {vt.value}, got {type(value).__name__}")
    if not -(1 << (width - 1)) <= value < (1 << width):
        raise ValueError(f"{value} does not fit in {vt.value}")
    return value & ((1 << width) - 1)


def to_bits(vt: ValType, value: object) -> int:
    """Raw bits of the numeric wasm value ``value`` of type ``vt``.

    i32/i64 accept signed or unsigned ints in range; f32/f64 accept ints,
    floats and the raw wrappers of their own width.
    """
    if vt is ValType.I32:
        return _int_arg(value, 32, vt)
    if vt is ValType.I64:
        return _int_arg(value, 64, vt)
    if vt is ValType.F32:
        if isinstance(value, F32Bits):
            return int(value)
        if isinstance(value, F64Bits):
            raise TypeError("F64Bits given for an f32 value")
        if isinstance(value, (int, float)):
            return f32_to_bits(float(value))
        raise TypeError(f"expected a float for f32, got {type(value).__name__}")
    if vt is ValType.F64:
        if isinstance(value, F64Bits):
            return int(value)
        if isinstance(value, F32Bits):
            raise TypeError("F32Bits given for an f64 value")
        if isinstance(value, (int, float)):
            try:
                return f64_to_bits(float(value))
            except OverflowError:
                return f64_to_bits(math.copysign(math.inf, value))
        raise TypeError(f"expected a float for f64, got {type(value).__name__}")
    raise TypeError(f"{vt} is not a numeric type")


def from_bits(vt: ValType, bits: int) -> int | float:
    """The Python value of raw ``bits`` of numeric type ``vt``: signed ints, floats."""
    if vt is ValType.I32:
        return signed(bits, 32)
    if vt is ValType.I64:
        return signed(bits, 64)
    if vt is ValType.F32:
        return bits_to_f32(bits)
    if vt is ValType.F64:
        return bits_to_f64(bits)
    raise TypeError(f"{vt} is not a numeric type")

"""Predicates and immediate helpers used by the AArch64 rules."""

from __future__ import annotations

# The target-independent helpers are re-exported for the rule loader.
from wasmlower.isa.preds import is64, isf32, isf64, log2, mask, pow2

__all__ = ["bit_index", "cond", "fcond", "fimm8", "fimm8_code", "is64", "isf32", "isf64",
           "literal", "log2", "logimm", "mask", "memimm", "mov_count", "neg", "nimm12", "pow2",
           "single_bit", "uimm12", "vmoff"]


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


def logimm(k: int, bits: int) -> bool:
    """k, as a ``bits``-bit pattern, is a bitmask immediate of and/orr/eor (32 or 64 bits).

    Such a value is an element of e = 2, 4, ..., ``bits`` bits repeated to
    fill the register, the element being a run of 1 to e-1 ones rotated by
    any amount (Arm ARM, DecodeBitMasks).  So 0 and all ones are not.
    """
    v = k & ((1 << bits) - 1)
    if v == 0 or v == (1 << bits) - 1:
        return False
    size = bits
    # Halve the element while its two halves are equal (v repeats them).
    while size > 2:
        half = size // 2
        low = v & ((1 << half) - 1)
        if (v >> half) & ((1 << half) - 1) != low:
            break
        size = half
    elem = v & ((1 << size) - 1)
    # A rotated run of ones has exactly two bit changes around the circle.
    rotated = (elem >> 1) | ((elem & 1) << (size - 1))
    return (elem ^ rotated).bit_count() == 2


def single_bit(k: int, bits: int) -> bool:
    """k, as a ``bits``-bit pattern, has exactly one bit set (so tbz/tbnz can test it)."""
    return (k & ((1 << bits) - 1)).bit_count() == 1


def bit_index(k: int, bits: int) -> int:
    """The index of the lowest set bit of k as a ``bits``-bit pattern."""
    v = k & ((1 << bits) - 1)
    return (v & -v).bit_length() - 1


# --- float constants ----------------------------------------------------------
# fmov's 8-bit immediate abcdefgh stands for (-1)^a * 2^e * (16 + efgh) / 16 with
# e = -3..4 (VFPExpandImm): exponent NOT(b):b...b:cd, fraction efgh:0...0.  So
# a float is encodable iff its fraction has 4 significant bits at most and its
# exponent field is NOT(b) followed by copies of b (5 for f32, 8 for f64) and
# two free bits.  (0.0 is not: its exponent field is all zeros.)
_FLOAT = {32: (8, 23), 64: (11, 52)}             # width -> (exponent bits, fraction bits)


def fimm8(bits: int, width: int) -> bool:
    """The float with IEEE pattern ``bits`` (width 32 or 64) is an fmov immediate."""
    e, f = _FLOAT[width]
    v = bits & ((1 << width) - 1)
    if v & ((1 << (f - 4)) - 1):                 # fraction bits below the top 4
        return False
    high = (v >> (f + 2)) & ((1 << (e - 2)) - 1)  # exponent without its two low bits
    return high in (1 << (e - 3), (1 << (e - 3)) - 1)


def fimm8_code(bits: int, width: int) -> int:
    """fmov's imm8 for an encodable ``bits`` (fimm8): sign, b, then cd:efgh."""
    e, f = _FLOAT[width]
    v = bits & ((1 << width) - 1)
    return (v >> (width - 1)) << 7 | ((v >> (f + e - 3)) & 1) << 6 | ((v >> (f - 4)) & 0x3F)


def mov_count(value: int) -> int:
    """How many movz/movn/movk ``emit.load_imm`` takes for the 64-bit ``value``."""
    v = value & ((1 << 64) - 1)
    chunks = [(v >> (16 * i)) & 0xFFFF for i in range(4)]
    ones, zeros = chunks.count(0xFFFF), chunks.count(0)
    if v == 0:
        return 1
    return max(1, 4 - ones) if ones > zeros else 4 - zeros


def literal(bits: int, width: int) -> bool:
    """A literal-pool load is shorter than movz/movk + fmov for this float pattern.

    The pool costs the ldr and the constant's 4 or 8 bytes, the other route
    4 bytes per mov plus the fmov: pooled are f32 patterns with two non-zero
    halves and f64 patterns that take three or four movs (ties stay in
    registers: no load, no data).
    """
    return 4 * (mov_count(bits & ((1 << width) - 1)) + 1) > 4 + width // 8

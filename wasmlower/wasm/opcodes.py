"""Opcode tables shared by the decoder and the validator.

``NAMES[b]``/``KINDS[b]`` give the mnemonic and immediate kind of the
single-byte opcode ``b``; ``FC_NAMES``/``FC_KINDS`` do the same for the
``0xFC`` prefix, indexed by the sub-opcode.  ``UNSUPPORTED[b]`` names the
proposal an opcode belongs to when it is outside the supported set (MVP and
the 2.0 scalar features).  ``SIMPLE_SIGS`` maps every instruction whose type is
a fixed ``[params] -> [results]`` to that signature, and ``MEMOPS`` gives
each load/store its value type, natural alignment (log2) and direction.
"""

from __future__ import annotations

from wasmlower.wasm.module import ValType

I32, I64, F32, F64 = ValType.I32, ValType.I64, ValType.F32, ValType.F64
FUNCREF, EXTERNREF = ValType.FUNCREF, ValType.EXTERNREF

# Immediate kinds.
K_ILLEGAL = 0
K_NONE = 1
K_IDX = 2  # one u32 index
K_BLOCK = 3  # block type
K_END = 4
K_ELSE = 5
K_I32 = 6
K_I64 = 7
K_F32 = 8
K_F64 = 9
K_MEMARG = 10
K_BR_TABLE = 11
K_IDX2 = 12  # two u32 indices
K_SELECT_T = 13  # vec(valtype)
K_REF_NULL = 14  # heap type
K_PREFIX_FC = 15
K_UNSUPPORTED = 16

# Value type encodings (single bytes).
VALTYPE_BYTES: dict[int, ValType] = {
    0x7F: I32, 0x7E: I64, 0x7D: F32, 0x7C: F64, 0x70: FUNCREF, 0x6F: EXTERNREF,
}
REFTYPE_BYTES: dict[int, ValType] = {0x70: FUNCREF, 0x6F: EXTERNREF}

# Type codes of later proposals, so that they are reported as unsupported
# rather than malformed.
UNSUPPORTED_TYPE_BYTES: dict[int, str] = {
    0x7B: "simd",  # v128
    0x64: "function-references",  # (ref ht)
    0x63: "function-references",  # (ref null ht)
    0x6E: "gc", 0x6D: "gc", 0x6C: "gc", 0x6B: "gc", 0x6A: "gc",  # any eq i31 struct array
    0x71: "gc", 0x72: "gc", 0x73: "gc",  # none noextern nofunc
    0x69: "exceptions", 0x74: "exceptions",  # exnref, noexn
    0x78: "gc", 0x77: "gc",  # packed i8/i16 (storage types)
}

NAMES: list[str | None] = [None] * 256
KINDS: list[int] = [K_ILLEGAL] * 256
UNSUPPORTED: dict[int, str] = {}


def _op(byte: int, name: str, kind: int = K_NONE) -> None:
    NAMES[byte] = name
    KINDS[byte] = kind


_op(0x00, "unreachable")
_op(0x01, "nop")
_op(0x02, "block", K_BLOCK)
_op(0x03, "loop", K_BLOCK)
_op(0x04, "if", K_BLOCK)
_op(0x05, "else", K_ELSE)
_op(0x0B, "end", K_END)
_op(0x0C, "br", K_IDX)
_op(0x0D, "br_if", K_IDX)
_op(0x0E, "br_table", K_BR_TABLE)
_op(0x0F, "return")
_op(0x10, "call", K_IDX)
_op(0x11, "call_indirect", K_IDX2)
_op(0x1A, "drop")
_op(0x1B, "select")
_op(0x1C, "select", K_SELECT_T)
_op(0x20, "local.get", K_IDX)
_op(0x21, "local.set", K_IDX)
_op(0x22, "local.tee", K_IDX)
_op(0x23, "global.get", K_IDX)
_op(0x24, "global.set", K_IDX)
_op(0x25, "table.get", K_IDX)
_op(0x26, "table.set", K_IDX)
_op(0x3F, "memory.size", K_IDX)
_op(0x40, "memory.grow", K_IDX)
_op(0x41, "i32.const", K_I32)
_op(0x42, "i64.const", K_I64)
_op(0x43, "f32.const", K_F32)
_op(0x44, "f64.const", K_F64)
_op(0xD0, "ref.null", K_REF_NULL)
_op(0xD1, "ref.is_null")
_op(0xD2, "ref.func", K_IDX)
_op(0xFC, "<0xfc>", K_PREFIX_FC)

# name, value type, natural alignment (log2), is_store
MEMOPS: dict[str, tuple[ValType, int, bool]] = {}
_MEM = [
    (0x28, "i32.load", I32, 2), (0x29, "i64.load", I64, 3),
    (0x2A, "f32.load", F32, 2), (0x2B, "f64.load", F64, 3),
    (0x2C, "i32.load8_s", I32, 0), (0x2D, "i32.load8_u", I32, 0),
    (0x2E, "i32.load16_s", I32, 1), (0x2F, "i32.load16_u", I32, 1),
    (0x30, "i64.load8_s", I64, 0), (0x31, "i64.load8_u", I64, 0),
    (0x32, "i64.load16_s", I64, 1), (0x33, "i64.load16_u", I64, 1),
    (0x34, "i64.load32_s", I64, 2), (0x35, "i64.load32_u", I64, 2),
    (0x36, "i32.store", I32, 2), (0x37, "i64.store", I64, 3),
    (0x38, "f32.store", F32, 2), (0x39, "f64.store", F64, 3),
    (0x3A, "i32.store8", I32, 0), (0x3B, "i32.store16", I32, 1),
    (0x3C, "i64.store8", I64, 0), (0x3D, "i64.store16", I64, 1),
    (0x3E, "i64.store32", I64, 2),
]
for _b, _name, _t, _align in _MEM:
    _op(_b, _name, K_MEMARG)
    MEMOPS[_name] = (_t, _align, _b >= 0x36)

SIMPLE_SIGS: dict[str, tuple[tuple[ValType, ...], tuple[ValType, ...]]] = {}


def _numeric(first: int, t: ValType, names: str, params: tuple, results: tuple) -> None:
    for i, n in enumerate(names.split()):
        name = f"{t.value}.{n}"
        _op(first + i, name)
        SIMPLE_SIGS[name] = (params, results)


_numeric(0x45, I32, "eqz", (I32,), (I32,))
_numeric(0x46, I32, "eq ne lt_s lt_u gt_s gt_u le_s le_u ge_s ge_u", (I32, I32), (I32,))
_numeric(0x50, I64, "eqz", (I64,), (I32,))
_numeric(0x51, I64, "eq ne lt_s lt_u gt_s gt_u le_s le_u ge_s ge_u", (I64, I64), (I32,))
_numeric(0x5B, F32, "eq ne lt gt le ge", (F32, F32), (I32,))
_numeric(0x61, F64, "eq ne lt gt le ge", (F64, F64), (I32,))
_numeric(0x67, I32, "clz ctz popcnt", (I32,), (I32,))
_numeric(0x6A, I32, "add sub mul div_s div_u rem_s rem_u and or xor shl shr_s shr_u rotl rotr",
         (I32, I32), (I32,))
_numeric(0x79, I64, "clz ctz popcnt", (I64,), (I64,))
_numeric(0x7C, I64, "add sub mul div_s div_u rem_s rem_u and or xor shl shr_s shr_u rotl rotr",
         (I64, I64), (I64,))
_numeric(0x8B, F32, "abs neg ceil floor trunc nearest sqrt", (F32,), (F32,))
_numeric(0x92, F32, "add sub mul div min max copysign", (F32, F32), (F32,))
_numeric(0x99, F64, "abs neg ceil floor trunc nearest sqrt", (F64,), (F64,))
_numeric(0xA0, F64, "add sub mul div min max copysign", (F64, F64), (F64,))

_TYPES = {"i32": I32, "i64": I64, "f32": F32, "f64": F64}
# Conversions, 0xA7..0xBF in opcode order.
_CONVERSIONS = [
    "i32.wrap_i64", "i32.trunc_f32_s", "i32.trunc_f32_u", "i32.trunc_f64_s", "i32.trunc_f64_u",
    "i64.extend_i32_s", "i64.extend_i32_u", "i64.trunc_f32_s", "i64.trunc_f32_u",
    "i64.trunc_f64_s", "i64.trunc_f64_u", "f32.convert_i32_s", "f32.convert_i32_u",
    "f32.convert_i64_s", "f32.convert_i64_u", "f32.demote_f64", "f64.convert_i32_s",
    "f64.convert_i32_u", "f64.convert_i64_s", "f64.convert_i64_u", "f64.promote_f32",
    "i32.reinterpret_f32", "i64.reinterpret_f64", "f32.reinterpret_i32", "f64.reinterpret_i64",
]
for _i, _name in enumerate(_CONVERSIONS):
    _op(0xA7 + _i, _name)
    # "<result>.<op>_<operand>[_s|_u]": the operand type is the first i../f.. after the dot.
    _src = next(p for p in _name.split(".")[1].split("_") if p in _TYPES)
    SIMPLE_SIGS[_name] = ((_TYPES[_src],), (_TYPES[_name[:3]],))

# Sign extension (2.0).
for _b, _name, _t in [(0xC0, "i32.extend8_s", I32), (0xC1, "i32.extend16_s", I32),
                      (0xC2, "i64.extend8_s", I64), (0xC3, "i64.extend16_s", I64),
                      (0xC4, "i64.extend32_s", I64)]:
    _op(_b, _name)
    SIMPLE_SIGS[_name] = ((_t,), (_t,))

# The 0xFC prefix: non-trapping float-to-int, bulk memory, table instructions.
FC_NAMES: dict[int, str] = {}
FC_KINDS: dict[int, int] = {}
for _i, _name in enumerate(["i32.trunc_sat_f32_s", "i32.trunc_sat_f32_u",
                            "i32.trunc_sat_f64_s", "i32.trunc_sat_f64_u",
                            "i64.trunc_sat_f32_s", "i64.trunc_sat_f32_u",
                            "i64.trunc_sat_f64_s", "i64.trunc_sat_f64_u"]):
    FC_NAMES[_i], FC_KINDS[_i] = _name, K_NONE
    SIMPLE_SIGS[_name] = ((_TYPES[_name[14:17]],), (_TYPES[_name[:3]],))
for _i, _name, _kind in [(8, "memory.init", K_IDX2), (9, "data.drop", K_IDX),
                         (10, "memory.copy", K_IDX2), (11, "memory.fill", K_IDX),
                         (12, "table.init", K_IDX2), (13, "elem.drop", K_IDX),
                         (14, "table.copy", K_IDX2), (15, "table.grow", K_IDX),
                         (16, "table.size", K_IDX), (17, "table.fill", K_IDX)]:
    FC_NAMES[_i], FC_KINDS[_i] = _name, _kind

# Opcodes of proposals beyond the supported set (3.0 and others).
for _b, _feature in [(0x08, "exceptions"), (0x0A, "exceptions"), (0x1F, "exceptions"),
                     (0x12, "tail-call"), (0x13, "tail-call"),
                     (0x14, "function-references"), (0x15, "function-references"),
                     (0xD4, "function-references"), (0xD5, "function-references"),
                     (0xD6, "function-references"), (0xD3, "gc"), (0xFB, "gc"),
                     (0xFD, "simd"), (0xFE, "threads")]:
    KINDS[_b] = K_UNSUPPORTED
    UNSUPPORTED[_b] = _feature

# Constant-expression instructions of 3.0's extended-const proposal.
EXTENDED_CONST = frozenset({"i32.add", "i32.sub", "i32.mul", "i64.add", "i64.sub", "i64.mul"})

del _b, _name, _t, _align, _i, _src, _kind, _feature

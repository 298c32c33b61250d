"""Tests of the binary decoder: malformed binaries give MalformedError with the
spec's wording and the right offset; valid modules decode to the right
structure; nothing but WasmError ever escapes."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest

from wasmlower.errors import MalformedError, ValidationError
from wasmlower.wasm import (
    FuncType,
    GlobalType,
    Instr,
    Limits,
    MemoryType,
    TableType,
    ValType,
    decode_module,
    validate,
)
from wasmlower.wasm.decode import MAX_LOCALS, _uleb

wasmtime = pytest.importorskip("wasmtime")

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO.parent / "shared" / "bench"
I32, I64, F32, F64 = ValType.I32, ValType.I64, ValType.F32, ValType.F64
FUNCREF, EXTERNREF = ValType.FUNCREF, ValType.EXTERNREF

HEADER = b"\x00asm\x01\x00\x00\x00"


# -- a tiny binary builder -----------------------------------------------------------


def uleb(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def sleb(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if (n == 0 and not b & 0x40) or (n == -1 and b & 0x40):
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


def vec(items: list[bytes]) -> bytes:
    return uleb(len(items)) + b"".join(items)


def name(s: str | bytes) -> bytes:
    raw = s.encode() if isinstance(s, str) else s
    return uleb(len(raw)) + raw


def section(sid: int, content: bytes) -> bytes:
    return bytes([sid]) + uleb(len(content)) + content


def body(code: bytes, local_decls: bytes = b"\x00") -> bytes:
    inner = local_decls + code
    return uleb(len(inner)) + inner


def module(*sections: bytes) -> bytes:
    return HEADER + b"".join(sections)


TYPE_VOID = section(1, vec([b"\x60\x00\x00"]))  # type 0: [] -> []
FUNC_1 = section(3, vec([b"\x00"]))  # one function of type 0
MEM_1 = section(5, vec([b"\x00\x01"]))  # memory 1


def one_func(code: bytes, *, extra_before_code: bytes = b"", after: bytes = b"",
             local_decls: bytes = b"\x00", mem: bool = False) -> bytes:
    """A module with one [] -> [] function whose body is ``code`` (add the final end)."""
    return module(TYPE_VOID, FUNC_1, MEM_1 if mem else b"", extra_before_code,
                  section(10, vec([body(code, local_decls)])), after)


def wat(text: str) -> bytes:
    return bytes(wasmtime.wat2wasm(text))


def malformed(data: bytes, message: str, offset: int | None = None) -> MalformedError:
    with pytest.raises(MalformedError) as info:
        decode_module(data)
    assert info.value.message.startswith(message), info.value.message
    if offset is not None:
        assert info.value.offset == offset, (info.value.offset, info.value.message)
    return info.value


# -- header and sections -----------------------------------------------------------------


@pytest.mark.parametrize("data, message, offset", [
    (b"", "unexpected end", 0),
    (b"\x00as", "unexpected end", 3),
    (b"asm\x00", "magic header not detected", 0),
    (b"\x00ASM\x01\x00\x00\x00", "magic header not detected", 0),
    (b"\x00asm\x01\x00", "unexpected end", 6),
    (b"\x00asm\x02\x00\x00\x00", "unknown binary version", 4),
    (b"\x00asm\x0d\x00\x01\x00", "unknown binary version", 4),
])
def test_header(data: bytes, message: str, offset: int) -> None:
    malformed(data, message, offset)


def test_empty_module() -> None:
    m = decode_module(HEADER)
    assert m.types == [] and m.codes == [] and m.start is None and m.data_count is None
    validate(m)


def test_accepts_bytearray_and_memoryview() -> None:
    data = one_func(b"\x0b")
    assert len(decode_module(bytearray(data)).codes) == 1
    assert len(decode_module(memoryview(data)).codes) == 1


@pytest.mark.parametrize("sid", [0x0E, 0x7F, 0x80, 0xFF])
def test_malformed_section_id(sid: int) -> None:
    malformed(HEADER + bytes([sid, 1, 0]), "malformed section id", 8)


def test_section_order_and_duplicates() -> None:
    # Duplicate type section.
    malformed(module(section(1, b"\x00"), section(1, b"\x00")),
              "unexpected content after last section", 11)
    # Import after function.
    malformed(module(section(3, b"\x00"), section(2, b"\x00")),
              "unexpected content after last section", 11)
    # Data count goes between element and code sections.
    malformed(module(section(10, b"\x00"), section(12, b"\x00")),
              "unexpected content after last section", 11)
    # Custom sections may go anywhere, any number of times.
    custom = section(0, name("x") + b"abc")
    m = decode_module(module(custom, TYPE_VOID, custom, FUNC_1, custom,
                             section(10, vec([body(b"\x0b")])), custom))
    assert m.customs == [("x", b"abc")] * 4


def test_section_size_mismatch() -> None:
    # Type section declares 5 bytes but its content takes 4: the extra byte is left over.
    data = HEADER + b"\x01\x05" + vec([b"\x60\x00\x00"]) + b"\x00"
    malformed(data, "section size mismatch", 10)
    # Content longer than declared: the reader runs on and notices afterwards.
    data = HEADER + b"\x01\x03" + vec([b"\x60\x00\x00"])
    malformed(data, "section size mismatch", 10)


def test_length_out_of_bounds() -> None:
    malformed(HEADER + b"\x01\x07\x02\x60\x00\x00", "length out of bounds", 9)
    malformed(HEADER + b"\x00\x26\x10a custom section", "length out of bounds", 9)


def test_unexpected_end_inside_section() -> None:
    # Two types declared, one given, at the end of the binary.
    data = HEADER + b"\x01\x04\x02\x60\x00\x00"
    malformed(data, "unexpected end of section or function", len(data))


def test_function_and_code_counts() -> None:
    msg = "function and code section have inconsistent lengths"
    malformed(module(TYPE_VOID, section(3, vec([b"\x00", b"\x00"]))), msg)
    malformed(module(section(10, vec([body(b"\x0b")]))), msg)
    malformed(module(TYPE_VOID, FUNC_1, section(10, vec([body(b"\x0b")] * 2))), msg)
    decode_module(module(section(3, b"\x00")))  # zero functions, no code section
    decode_module(module(section(10, b"\x00")))


def test_data_count() -> None:
    passive = b"\x01" + name(b"")
    msg = "data count and data section have inconsistent lengths"
    malformed(module(section(12, uleb(3)), section(11, vec([passive] * 2))), msg)
    malformed(module(MEM_1, section(12, uleb(1))), msg)
    m = decode_module(module(section(12, uleb(2)), section(11, vec([passive] * 2))))
    assert m.data_count == 2 and len(m.datas) == 2
    # memory.init / data.drop need the data count section.
    code = b"\x41\x00\x41\x00\x41\x00\xfc\x08\x00\x00\x0b"
    err = malformed(one_func(code, mem=True, after=section(11, vec([passive]))),
                    "data count section required")
    assert err.offset is not None and one_func(code, mem=True)[err.offset] == 0xFC
    malformed(one_func(b"\xfc\x09\x00\x0b", after=section(11, vec([passive]))),
              "data count section required")
    ok = module(TYPE_VOID, FUNC_1, MEM_1, section(12, uleb(1)),
                section(10, vec([body(code)])), section(11, vec([passive])))
    validate(decode_module(ok))


# -- LEB128 ---------------------------------------------------------------------------------


def test_leb_unsigned_limits() -> None:
    # u32 function type index: 5 bytes max, the 5th may only use 4 bits.
    code = section(10, vec([body(b"\x0b")]))

    def func_sec(idx: bytes) -> bytes:
        return module(section(3, b"\x01" + idx), code)

    assert decode_module(func_sec(b"\x80\x80\x80\x80\x00")).funcs == [0]
    malformed(func_sec(b"\x80\x80\x80\x80\x80\x00"), "integer representation too long", 16)
    malformed(func_sec(b"\x80\x80\x80\x80\x10"), "integer too large", 15)
    malformed(func_sec(b"\xff\xff\xff\xff\x1f"), "integer too large", 15)
    assert decode_module(func_sec(b"\xff\xff\xff\xff\x0f")).funcs == [2**32 - 1]


@pytest.mark.parametrize("encoded, value", [
    (b"\x7f", -1),
    (b"\x3f", 63),
    (b"\x40", -64),
    (b"\xc0\x00", 64),
    (b"\x80\x80\x80\x80\x78", -(2**31)),
    (b"\xff\xff\xff\xff\x07", 2**31 - 1),
    (b"\xff\xff\xff\xff\x7f", -1),
])
def test_i32_const_values(encoded: bytes, value: int) -> None:
    m = decode_module(one_func(b"\x41" + encoded + b"\x1a\x0b"))
    assert m.codes[0].body[0] == Instr("i32.const", value, m.codes[0].body[0].offset)
    assert m.codes[0].body[0].imm == value


@pytest.mark.parametrize("encoded, message", [
    (b"\x80\x80\x80\x80\x70", "integer too large"),  # bits 32..34 not a sign extension
    (b"\xff\xff\xff\xff\x0f", "integer too large"),
    (b"\x80\x80\x80\x80\x80\x00", "integer representation too long"),
])
def test_i32_const_malformed(encoded: bytes, message: str) -> None:
    malformed(one_func(b"\x41" + encoded + b"\x1a\x0b"), message)


def test_i64_const_values() -> None:
    for value in (0, -1, 2**63 - 1, -(2**63), 12345678901234, -98765432109876):
        m = decode_module(one_func(b"\x42" + sleb(value) + b"\x1a\x0b"))
        assert m.codes[0].body[0].imm == value
    malformed(one_func(b"\x42" + b"\x80" * 9 + b"\x02" + b"\x1a\x0b"), "integer too large")
    malformed(one_func(b"\x42" + b"\x80" * 10 + b"\x00" + b"\x1a\x0b"),
              "integer representation too long")


def test_float_consts_keep_bit_patterns() -> None:
    nan_payload = 0x7FA00001
    snan64 = 0xFFF4000000000123
    code = (b"\x43" + struct.pack("<I", nan_payload) + b"\x1a"
            + b"\x44" + struct.pack("<Q", snan64) + b"\x1a\x0b")
    body_ = decode_module(one_func(code)).codes[0].body
    assert body_[0].op == "f32.const" and body_[0].imm == nan_payload
    assert body_[2].op == "f64.const" and body_[2].imm == snan64
    malformed(one_func(b"\x43\x00\x00"), "unexpected end")


# -- code ---------------------------------------------------------------------------------------


def test_missing_end() -> None:
    # Body exhausted at the end of the binary.
    data = module(TYPE_VOID, FUNC_1, section(10, vec([body(b"\x41\x01\x1a")])))
    malformed(data, "unexpected end of section or function", len(data))
    # Between two functions: the reader runs into the next body and finds junk.
    two = module(TYPE_VOID, section(3, vec([b"\x00"] * 2)),
                 section(10, vec([body(b"\x41\x01\x1a"), body(b"\x41\x01\x1a\x0b")])))
    with pytest.raises(MalformedError):
        decode_module(two)


def test_body_size_mismatch() -> None:
    # Body claims 4 bytes, its `end` comes after 3.
    data = module(TYPE_VOID, FUNC_1, section(10, b"\x01\x04\x00\x01\x0b\x01"))
    malformed(data, "section size mismatch", 22)


@pytest.mark.parametrize("code, message", [
    (b"\x05\x0b", "END opcode expected"),  # else outside if
    (b"\x02\x40\x05\x0b\x0b", "END opcode expected"),  # else in a block
    (b"\x41\x00\x04\x40\x05\x05\x0b\x0b", "END opcode expected"),  # two elses
    (b"\xff\x0b", "illegal opcode ff"),
    (b"\x27\x0b", "illegal opcode 27"),
    (b"\xfc\x12\x0b", "illegal opcode fc 12"),
    (b"\x1c\x01\x40\x0b", "malformed value type"),
    (b"\x02\xff\x7f\x0b\x0b", "malformed block type"),  # a negative two-byte s33
    (b"\xd0\x7f\x0b", "malformed heap type"),
    (b"\x41\x00\x28\x80\x01\x00\x1a\x0b", "malformed memop flags"),
])
def test_malformed_code(code: bytes, message: str) -> None:
    malformed(one_func(code, mem=True), message)


def test_illegal_opcode_offset() -> None:
    data = one_func(b"\x01\x01\xff\x0b")
    err = malformed(data, "illegal opcode ff")
    assert data[err.offset] == 0xFF


def test_too_many_locals() -> None:
    decls = vec([b"\xff\xff\xff\xff\x0f\x7f", b"\x02\x7e"])
    malformed(one_func(b"\x0b", local_decls=decls), "too many locals")
    decls = vec([b"\x80\x80\x80\x80\x04" + t for t in (b"\x7f", b"\x7e", b"\x7d", b"\x7c")])
    malformed(one_func(b"\x0b", local_decls=decls), "too many locals")
    malformed(one_func(b"\x0b", local_decls=vec([b"\x80\x80\x80\x80\x10\x7f"])),
              "integer too large")
    # Well-formed, but beyond what this implementation expands.
    with pytest.raises(ValidationError, match="too many locals"):
        decode_module(one_func(b"\x0b", local_decls=vec([uleb(MAX_LOCALS + 1) + b"\x7f"])))
    m = decode_module(one_func(b"\x0b", local_decls=vec([b"\x02\x7f", b"\x00\x7e",
                                                          b"\x01\x7c"])))
    assert m.codes[0].locals == [I32, I32, F64]


def test_utf8_names() -> None:
    def imp(mod: str | bytes) -> bytes:
        return section(2, vec([name(mod) + name("f") + b"\x03\x7f\x00"]))

    for bad in (b"\x80", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe0\x80"):
        malformed(module(imp(bad)), "malformed UTF-8 encoding", 11)
    m = decode_module(module(imp("\u00e9\U0001f600".encode())))
    assert m.imports[0].module == "\u00e9\U0001f600"
    malformed(module(section(0, name(b"\xff") + b"xx")), "malformed UTF-8 encoding")


def test_limits_and_kinds() -> None:
    malformed(module(section(5, b"\x01\x08\x00")), "malformed limits flags", 11)
    malformed(module(section(5, b"\x01\x81\x00\x00")), "malformed limits flags", 11)
    malformed(module(section(4, b"\x01\x70\x10\x00")), "malformed limits flags", 12)
    malformed(module(section(2, vec([name("") + name("") + b"\x05"]))),
              "malformed import kind")
    malformed(module(section(7, vec([name("x") + b"\x05\x00"]))), "malformed export kind")
    malformed(module(section(6, vec([b"\x7f\x02\x41\x00\x0b"]))), "malformed mutability")
    malformed(module(section(4, vec([b"\x7f\x00\x00"]))), "malformed reference type")
    malformed(module(section(1, vec([b"\x61\x00\x00"]))), "malformed function type")
    malformed(module(section(11, vec([b"\x03"]))), "malformed data segment kind")
    malformed(module(section(9, vec([b"\x08"]))), "malformed elements segment kind")
    malformed(module(section(9, vec([b"\x01\x01\x00"]))), "malformed element kind")
    # Limits are u64 in the binary (3.0); their bounds are a validation matter.
    m = decode_module(module(section(5, b"\x01\x01\x80\x80\x04\x80\x80\x80\x80\x10")))
    assert m.memories == [MemoryType(Limits(65536, 2**32))]
    with pytest.raises(ValidationError, match="memory size must be at most 65536 pages"):
        validate(m)


# -- unsupported features ---------------------------------------------------------------------------


@pytest.mark.parametrize("data, feature", [
    (one_func(b"\xfd\x0c" + bytes(16) + b"\x1a\x0b"), "simd"),
    (one_func(b"\x02\x7b\x00\x0b\x0b"), "simd"),
    (module(section(1, vec([b"\x60\x01\x7b\x00"]))), "simd"),
    (one_func(b"\x12\x00\x0b"), "tail-call"),
    (one_func(b"\xd0\x00\x1a\x0b"), "function-references"),
    (one_func(b"\x0a\x0b"), "exceptions"),
    (one_func(b"\xfb\x00\x0b"), "gc"),
    (one_func(b"\xfe\x00\x0b"), "threads"),
    (module(section(5, b"\x01\x04\x00")), "memory64"),
    (module(section(5, b"\x01\x03\x00\x01")), "threads"),
    (module(section(13, b"\x01\x00\x00")), "exceptions"),
    (module(section(1, vec([b"\x5f\x00"]))), "gc"),
    (module(section(4, vec([b"\x40\x00\x70\x00\x00\xd0\x70\x0b"]))), "function-references"),
    (module(section(6, vec([b"\x64\x70\x00\xd0\x70\x0b"]))), "function-references"),
])
def test_unsupported_features(data: bytes, feature: str) -> None:
    err = malformed(data, f"unsupported feature: {feature}")
    assert err.offset is not None


def test_unsupported_is_reported_after_malformed() -> None:
    # A tail call in a function whose body is otherwise malformed: malformed wins.
    malformed(one_func(b"\x12\x00\xff\x0b"), "illegal opcode ff")
    malformed(module(section(5, b"\x01\x04\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00")),
              "integer representation too long")


# -- structure of valid modules --------------------------------------------------------------------

FEATURES_WAT = r"""
(module
  (type $sig (func (param i32 i64) (result f32)))
  (type $pair (func (param i32) (result i32 i32)))
  (import "env" "f" (func $imp (type $sig)))
  (import "env" "t" (table 2 10 funcref))
  (import "env" "g" (global $gi i32))
  (import "env" "gm" (global $gm (mut i64)))
  (table $t2 3 externref)
  (memory 1 2)
  (global $g (mut f64) (f64.const 1.5))
  (global (ref null func) (ref.func $main))
  (export "main" (func $main))
  (export "mem" (memory 0))
  (export "gm" (global $gm))
  (start $init)
  (elem (i32.const 1) $main $init)
  (elem $passive func $main)
  (elem declare func $init)
  (data (i32.const 16) "hi\00")
  (data $pdata "passive")
  (func $init)
  (func $main (param $x i32) (result i32) (local i64 f32 f32)
    (block $b (result i32)
      (i32.const -7)
      (br_if $b (local.get $x))
      (drop)
      (call_indirect (type $sig) (i32.const 1) (i64.const 2) (i32.const 0))
      (drop)
      (i32.load8_u offset=5 align=1 (i32.const 0))
      (drop)
      (i64.store32 offset=8 (i32.const 0) (i64.const -1))
      (memory.copy (i32.const 0) (i32.const 1) (i32.const 2))
      (memory.init $pdata (i32.const 0) (i32.const 0) (i32.const 1))
      (data.drop $pdata)
      (table.copy 0 0 (i32.const 0) (i32.const 0) (i32.const 0))
      (table.init 0 $passive (i32.const 0) (i32.const 0) (i32.const 0))
      (elem.drop $passive)
      (drop (table.grow $t2 (ref.null extern) (i32.const 1)))
      (drop (ref.is_null (ref.func $init)))
      (drop (select (result f32) (f32.const 1) (f32.const 2) (local.get $x)))
      (drop (i32.trunc_sat_f64_u (f64.const 3)))
      (drop (i64.extend32_s (i64.const 5)))
      (call $pairs (i32.const 3))
      (drop)
      (br_table $b 0 (local.get $x))
    )
  )
  (func $pairs (type $pair) (local.get 0) (local.get 0))
)
"""


def test_structure_round_trip() -> None:
    data = wat(FEATURES_WAT)
    m = decode_module(data)
    validate(m)
    assert m.types[0] == FuncType((I32, I64), (F32,))
    assert m.types[1] == FuncType((I32,), (I32, I32))
    assert [(i.module, i.name, i.kind) for i in m.imports] == [
        ("env", "f", "func"), ("env", "t", "table"), ("env", "g", "global"),
        ("env", "gm", "global")]
    assert m.imports[0].desc == 0
    assert m.imports[1].desc == TableType(FUNCREF, Limits(2, 10))
    assert m.imports[3].desc == GlobalType(I64, True)
    assert m.tables == [TableType(EXTERNREF, Limits(3, None))]
    assert m.memories == [MemoryType(Limits(1, 2))]
    assert m.globals[0].type == GlobalType(F64, True)
    assert [(i.op, i.imm) for i in m.globals[0].init] == [("f64.const", 0x3FF8000000000000)]
    assert m.globals[1].type == GlobalType(FUNCREF, False)
    # Index spaces: 1 imported function, 2 imported globals, 1 imported table.
    assert m.num_imported_funcs == 1 and m.num_imported_funcs() == 1
    assert m.num_imported_globals == 2 and m.num_imported_tables == 1
    assert m.num_imported_memories == 0
    assert m.func_type(0) == m.types[0]
    assert m.func_type(2) == FuncType((I32,), (I32,))
    assert m.global_type(1) == GlobalType(I64, True)
    assert m.global_type(2) == GlobalType(F64, True)
    assert m.table_type(1) == TableType(EXTERNREF, Limits(3, None))
    assert m.memory_type(0) == MemoryType(Limits(1, 2))
    with pytest.raises(ValidationError, match="unknown function 9"):
        m.func_type(9)
    assert {(e.name, e.kind, e.index) for e in m.exports} == {
        ("main", "func", 2), ("mem", "memory", 0), ("gm", "global", 1)}
    assert m.start == 1
    modes = [(e.mode, e.type, e.table) for e in m.elems]
    assert modes == [("active", FUNCREF, 0), ("passive", FUNCREF, 0),
                     ("declarative", FUNCREF, 0)]
    assert [[(i.op, i.imm) for i in init] for init in m.elems[0].init] == [
        [("ref.func", 2)], [("ref.func", 1)]]
    assert [(i.op, i.imm) for i in m.elems[0].offset] == [("i32.const", 1)]
    assert m.elems[1].offset is None
    assert [(d.mode, d.memory, d.data) for d in m.datas] == [
        ("active", 0, b"hi\x00"), ("passive", 0, b"passive")]
    assert m.data_count == 2
    assert len(m.funcs) == len(m.codes) == 3
    assert m.func_names == {0: "imp", 1: "init", 2: "main", 3: "pairs"}

    main = m.codes[1]
    assert main.locals == [I64, F32, F32]
    ops = [(i.op, i.imm) for i in main.body]
    assert ops[0] == ("block", I32)
    assert ops[-1] == ("end", None) and ops[-2] == ("end", None)
    expected = [
        ("i32.const", -7), ("br_if", 0), ("call_indirect", (0, 0)),
        ("i32.load8_u", (0, 5)), ("i64.store32", (2, 8)), ("memory.copy", (0, 0)),
        ("memory.init", (1, 0)), ("data.drop", 1), ("table.copy", (0, 0)),
        ("table.init", (1, 0)), ("elem.drop", 1), ("table.grow", 1),
        ("ref.null", EXTERNREF), ("ref.func", 1), ("ref.is_null", None),
        ("select", (F32,)), ("i32.trunc_sat_f64_u", None), ("i64.extend32_s", None),
        ("call", 3), ("br_table", ((0,), 0)),
    ]
    for item in expected:
        assert item in ops, item
    assert ops.index(("i32.const", -7)) < ops.index(("br_if", 0))
    pairs = m.codes[2]
    assert [i.op for i in pairs.body] == ["local.get", "local.get", "end"]


def test_offsets_point_at_opcodes() -> None:
    data = wat(FEATURES_WAT)
    m = decode_module(data)
    first = {"block": 0x02, "i32.const": 0x41, "br_if": 0x0D, "call_indirect": 0x11,
             "i32.load8_u": 0x2D, "memory.copy": 0xFC, "end": 0x0B, "select": 0x1C}
    for code in m.codes:
        # The body's offset is that of its size field; the final `end` is its last byte.
        size, start = _uleb(data, code.offset, 32)
        assert code.body[-1].offset == start + size - 1
        for ins in code.body:
            if ins.op in first:
                assert data[ins.offset] == first[ins.op], ins
    g = m.globals[0].init[0]
    assert data[g.offset] == 0x44


def test_block_types() -> None:
    m = decode_module(wat("""(module (type (func (param i32) (result i32 i32)))
        (func (result i32) (i32.const 1)
              (block (type 0) (param i32) (result i32 i32) (i32.const 2))
              (drop) (block) (loop (result f64) (f64.const 0)) (drop)
              (if (i32.const 0) (then) (else)))
    )"""))
    validate(m)
    blocks = [(i.op, i.imm) for i in m.codes[0].body if i.op in ("block", "loop", "if")]
    assert blocks == [("block", 0), ("block", None), ("loop", F64), ("if", None)]
    assert [i.op for i in m.codes[0].body].count("else") == 1


ELEM_ENCODINGS = [
    # flags, payload, expected (mode, type, table, has offset, inits)
    (0, b"\x41\x00\x0b" + vec([b"\x00"]), ("active", FUNCREF, 0, True, [("ref.func", 0)])),
    (1, b"\x00" + vec([b"\x00"]), ("passive", FUNCREF, 0, False, [("ref.func", 0)])),
    (2, b"\x01\x41\x00\x0b\x00" + vec([b"\x00"]),
     ("active", FUNCREF, 1, True, [("ref.func", 0)])),
    (3, b"\x00" + vec([b"\x00"]), ("declarative", FUNCREF, 0, False, [("ref.func", 0)])),
    (4, b"\x41\x00\x0b" + vec([b"\xd2\x00\x0b", b"\xd0\x70\x0b"]),
     ("active", FUNCREF, 0, True, [("ref.func", 0), ("ref.null", FUNCREF)])),
    (5, b"\x6f" + vec([b"\xd0\x6f\x0b"]), ("passive", EXTERNREF, 0, False,
                                           [("ref.null", EXTERNREF)])),
    (6, b"\x01\x41\x00\x0b\x70" + vec([b"\xd2\x00\x0b"]),
     ("active", FUNCREF, 1, True, [("ref.func", 0)])),
    (7, b"\x70" + vec([b"\xd2\x00\x0b"]), ("declarative", FUNCREF, 0, False,
                                           [("ref.func", 0)])),
]


@pytest.mark.parametrize("flags, payload, expected", ELEM_ENCODINGS)
def test_element_segment_encodings(flags: int, payload: bytes, expected: tuple) -> None:
    tables = section(4, vec([b"\x70\x00\x01", b"\x70\x00\x01"]))
    data = module(TYPE_VOID, FUNC_1, tables, section(9, vec([bytes([flags]) + payload])),
                  section(10, vec([body(b"\x0b")])))
    m = decode_module(data)
    validate(m)
    (seg,) = m.elems
    mode, etype, table, has_offset, inits = expected
    assert (seg.mode, seg.type, seg.table, seg.offset is not None) == (
        mode, etype, table, has_offset)
    assert [(e[0].op, e[0].imm) for e in seg.init] == inits
    assert all(len(e) == 1 for e in seg.init)


def test_data_segment_with_memory_index() -> None:
    data = module(MEM_1, section(11, vec([b"\x02\x00\x41\x04\x0b" + name(b"xy")])))
    m = decode_module(data)
    assert (m.datas[0].mode, m.datas[0].memory, m.datas[0].data) == ("active", 0, b"xy")
    validate(m)
    m = decode_module(module(MEM_1, section(11, vec([b"\x02\x01\x41\x04\x0b" + name(b"")]))))
    with pytest.raises(ValidationError, match="unknown memory 1"):
        validate(m)


def test_broken_name_section_is_ignored() -> None:
    names = vec([b"\x00" + name("fn")])
    good = section(0, name("name") + b"\x01" + uleb(len(names)) + names)
    m = decode_module(one_func(b"\x0b", after=good))
    assert m.func_names == {0: "fn"}
    broken = section(0, name("name") + b"\x01\x09" + vec([b"\x00" + name(b"\xff")]))
    m = decode_module(one_func(b"\x0b", after=broken))
    assert m.func_names == {}
    assert m.customs[0][0] == "name"
    truncated = section(0, name("name") + b"\x01\x7f\x01")
    assert decode_module(one_func(b"\x0b", after=truncated)).func_names == {}


def test_memarg_with_memory_index() -> None:
    # Flags bit 6: a memory index follows (multi-memory encoding).  Index 0 is the plain form.
    m = decode_module(one_func(b"\x41\x00\x28\x42\x00\x04\x1a\x0b", mem=True))
    assert m.codes[0].body[1].imm == (2, 4)
    validate(m)
    m = decode_module(one_func(b"\x41\x00\x28\x42\x01\x04\x1a\x0b", mem=True))
    assert m.codes[0].body[1].imm == (2, 4, 1)
    with pytest.raises(ValidationError, match="unknown memory 1"):
        validate(m)


# -- real modules and robustness ------------------------------------------------------------


def _bench_files() -> list[Path]:
    return sorted(BENCH.glob("*.wasm")) + sorted(BENCH.glob("compile/*.wasm"))


@pytest.mark.parametrize("path", _bench_files(), ids=lambda p: p.name)
def test_bench_modules(path: Path) -> None:
    m = decode_module(path.read_bytes())
    validate(m)
    assert len(m.codes) == len(m.funcs) > 0
    assert all(code.body[-1].op == "end" for code in m.codes)


def test_bench_modules_present() -> None:
    if not BENCH.is_dir():
        pytest.skip(f"benchmark modules not found at {BENCH}")
    assert len(_bench_files()) >= 11


def _seeds() -> list[bytes]:
    seeds = [wat(FEATURES_WAT)]
    seeds += [p.read_bytes() for p in _bench_files() if p.stat().st_size < 20_000]
    return seeds


def test_mutated_binaries_raise_only_wasm_errors() -> None:
    """Random byte edits of valid modules: decode+validate either succeed or raise
    MalformedError/ValidationError, never another exception."""
    rng = random.Random(1234)
    seeds = _seeds()
    outcomes = {"ok": 0, "malformed": 0, "invalid": 0}
    for _ in range(3000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(8, len(data))
            r = rng.random()
            if r < 0.5:
                data[i] = rng.randrange(256)
            elif r < 0.7:
                data[i] ^= 1 << rng.randrange(8)
            elif r < 0.85:
                data.insert(i, rng.randrange(256))
            elif r < 0.95:
                del data[i]
            else:
                del data[i:]
            if len(data) <= 8:
                break
        try:
            validate(decode_module(bytes(data)))
            outcomes["ok"] += 1
        except MalformedError:
            outcomes["malformed"] += 1
        except ValidationError:
            outcomes["invalid"] += 1
    assert all(outcomes.values()), outcomes


def test_every_truncation_is_malformed() -> None:
    data = wat(FEATURES_WAT)
    boundaries = {8}
    pos = 8
    while pos < len(data):
        size, pos = _uleb(data, pos + 1, 32)
        pos += size
        boundaries.add(pos)
    for end in range(len(data)):
        if end in boundaries:
            continue  # dropping whole trailing sections can leave a well-formed module
        with pytest.raises(MalformedError):
            decode_module(data[:end])


def test_deep_nesting_does_not_recurse() -> None:
    depth = 20_000
    code = b"\x02\x40" * depth + b"\x0b" * depth + b"\x0b"
    m = decode_module(one_func(code))
    validate(m)
    assert len(m.codes[0].body) == 2 * depth + 1

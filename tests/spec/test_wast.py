"""The .wast script reader: commands, constants (exact bit patterns), expectations."""

from __future__ import annotations

import struct
import time
from decimal import Decimal, getcontext

import pytest

from wasmlower.spec.runner import find_spec_dir, scope_files
from wasmlower.spec.wast import (
    Action,
    AssertExhaustion,
    AssertInvalid,
    AssertMalformed,
    AssertReturn,
    AssertTrap,
    AssertUnlinkable,
    Expected,
    ModuleCmd,
    ModuleInstance,
    Register,
    Unsupported,
    Value,
    WastSyntaxError,
    float_bits,
    int_bits,
    match_value,
    parse_file,
    parse_script,
    v128_bits,
)


def f32(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def f64(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


# --------------------------------------------------------------------------- integers


@pytest.mark.parametrize("text, width, bits", [
    ("0", 32, 0), ("-1", 32, 0xFFFFFFFF), ("0xffffffff", 32, 0xFFFFFFFF),
    ("4_294_967_295", 32, 0xFFFFFFFF), ("-0x8000_0000", 32, 0x80000000),
    ("-2147483648", 32, 0x80000000), ("+7", 32, 7), ("0x7fffffff", 32, 0x7FFFFFFF),
    ("-9223372036854775808", 64, 0x8000000000000000),
    ("18446744073709551615", 64, 0xFFFFFFFFFFFFFFFF), ("-1", 64, 0xFFFFFFFFFFFFFFFF),
    ("0x7fff_ffff_ffff_ffff", 64, 0x7FFFFFFFFFFFFFFF), ("-0x1", 64, 0xFFFFFFFFFFFFFFFF),
])
def test_int_literals(text: str, width: int, bits: int) -> None:
    assert int_bits(text, width) == bits


@pytest.mark.parametrize("text, width", [
    ("4294967296", 32), ("-2147483649", 32), ("18446744073709551616", 64),
    ("-9223372036854775809", 64), ("1__0", 32), ("_1", 32), ("1_", 32), ("0x", 32),
    ("1.0", 32), ("", 32), ("0x_1", 32),
])
def test_bad_int_literals(text: str, width: int) -> None:
    with pytest.raises(ValueError):
        int_bits(text, width)


# --------------------------------------------------------------------------- floats

F64_DECIMALS = [
    "0", "-0", "1", "0.1", "-0.1", "1e10", "1.5e-10", "123456789012345678901234567890",
    "2.2250738585072014e-308", "2.2250738585072011e-308", "4.9e-324", "2.4703282292062328e-324",
    "1.7976931348623157e308", "0.000001", "3.141592653589793238462643383279", "1_000.000_1",
    "1e-400", "9007199254740993", "+2.5",
]


@pytest.mark.parametrize("text", F64_DECIMALS)
def test_f64_decimal_matches_struct(text: str) -> None:
    assert float_bits(text, 64) == f64(float(text.replace("_", "")))


@pytest.mark.parametrize("text", [
    "0x1p0", "0x1.8p3", "-0x1.fffffffffffffp1023", "0x1p-1074", "0x1p-1022",
    "0x0.0000000000001p-1022", "0x1.0000000000000fp0", "0x1.00000000000008p0",
    "0x1.00000000000018p0", "0xabc.defp-5", "0x1P+4",
])
def test_f64_hex_matches_fromhex(text: str) -> None:
    assert float_bits(text, 64) == f64(float.fromhex(text))


@pytest.mark.parametrize("text, bits", [
    ("0", 0), ("-0", 0x80000000), ("1", 0x3F800000), ("-1.5", 0xBFC00000),
    ("0x1.8p3", 0x41400000), ("0.1", 0x3DCCCCCD), ("1e10", 0x501502F9),
    # rounding ties: exactly between two floats -> even mantissa
    ("0x1.000001p0", 0x3F800000), ("0x1.000003p0", 0x3F800002),
    ("0x1.0000010000000000001p0", 0x3F800001), ("16777217", 0x4B800000),
    ("16777219", 0x4B800002), ("16777218", 0x4B800001),
    # subnormals
    ("0x1p-149", 0x00000001), ("0x1p-150", 0x00000000), ("0x1.8p-150", 0x00000001),
    ("0x1.000002p-150", 0x00000001), ("0x1.fffffcp-127", 0x007FFFFF), ("0x1p-126", 0x00800000),
    ("1.4e-45", 0x00000001), ("7e-46", 0x00000000), ("7.1e-46", 0x00000001),
    ("1.17549435e-38", 0x00800000), ("1e-50", 0),
    # the largest finite value and rounding into it
    ("0x1.fffffep127", 0x7F7FFFFF), ("3.4028234663852886e38", 0x7F7FFFFF),
    ("0x1.fffffefffp127", 0x7F7FFFFF), ("3.40282356e38", 0x7F7FFFFF),
    # specials
    ("inf", 0x7F800000), ("+inf", 0x7F800000), ("-inf", 0xFF800000),
    ("nan", 0x7FC00000), ("-nan", 0xFFC00000), ("+nan", 0x7FC00000),
    ("nan:0x200000", 0x7FA00000), ("nan:0x1", 0x7F800001), ("-nan:0x7f_ffff", 0xFFFFFFFF),
])
def test_f32_literals(text: str, bits: int) -> None:
    assert float_bits(text, 32) == bits


def test_f32_decimal_is_not_double_rounded() -> None:
    # 1 + 2**-24 + 2**-60: rounding to f64 first lands exactly on the f32 midpoint
    # (which then ties to even, 1.0); the exact value is above it -> 1 + 2**-23.
    getcontext().prec = 100
    exact = Decimal(1) + Decimal(2) ** -24 + Decimal(2) ** -60
    text = format(exact, "f")
    assert f32(float(text)) == 0x3F800000  # what double rounding would give
    assert float_bits(text, 32) == 0x3F800001
    # and just below a midpoint
    below = Decimal(1) + Decimal(2) ** -24 - Decimal(2) ** -60
    assert float_bits(format(below, "f"), 32) == 0x3F800000


def test_f32_decimal_agrees_with_struct_when_no_double_rounding_risk() -> None:
    for text in ["3.14159", "2.5e-20", "-6.02214076e23", "1e-40", "0.333333343267"]:
        assert float_bits(text, 32) == f32(float(text))


@pytest.mark.parametrize("text, width", [
    ("0x1p128", 32), ("3.4028236e38", 32), ("1e39", 32), ("1e309", 64), ("0x1p1024", 64),
    ("nan:0x0", 32), ("nan:0x800000", 32), ("nan:0x10000000000000", 64), ("1.e", 32),
    ("1e", 32), (".5", 32), ("0x.8p1", 32), ("infinity", 64), ("nan:canonical", 32),
])
def test_bad_float_literals(text: str, width: int) -> None:
    with pytest.raises(ValueError):
        float_bits(text, width)


def test_float_literal_forms() -> None:
    assert float_bits("1.", 32) == 0x3F800000
    assert float_bits("1.e2", 64) == f64(100.0)
    assert float_bits("0x1.p1", 64) == f64(2.0)
    assert float_bits("0x1_0p-4", 64) == f64(1.0)
    assert float_bits("1E-2", 64) == f64(0.01)


def test_v128_lanes_little_endian() -> None:
    assert v128_bits("i32x4", ["1", "2", "3", "-1"]) == (
        1 | 2 << 32 | 3 << 64 | 0xFFFFFFFF << 96)
    assert v128_bits("i8x16", [str(i) for i in range(16)]) == int.from_bytes(bytes(range(16)),
                                                                             "little")
    assert v128_bits("f32x4", ["1", "-0", "inf", "nan"]) == (
        0x3F800000 | 0x80000000 << 32 | 0x7F800000 << 64 | 0x7FC00000 << 96)
    assert v128_bits("i64x2", ["-1", "0"]) == 0xFFFFFFFFFFFFFFFF
    with pytest.raises(ValueError):
        v128_bits("i32x4", ["1", "2"])
    with pytest.raises(ValueError):
        v128_bits("i16x8", ["65536"] * 8)


# --------------------------------------------------------------------------- commands

SCRIPT = r'''
(module $M (func (export "f") (param i32) (result i32) (local.get 0)))
(module binary "\00asm" "\01\00\00\00")
(module $Q quote "(func)" " (memory 1)")
(register "m" $M)
(invoke "f" (i32.const -1))
(get $M "g")
(assert_return (invoke $M "f" (i32.const 7)) (i32.const 7))
(assert_return (invoke "f" (f32.const nan:0x200000) (f64.const -0x1p-1074))
  (f32.const nan:canonical) (f64.const nan:arithmetic))
(assert_return (invoke "r" (ref.null func) (ref.null extern) (ref.extern 3))
  (ref.null func) (ref.extern 3) (ref.func) (ref.extern) (ref.null))
(assert_return (invoke "e") (either (i32.const 1) (i32.const 2)))
(assert_return (invoke "v" (v128.const i16x8 1 2 3 4 5 6 7 8))
  (v128.const f32x4 nan:canonical 1.0 nan:arithmetic -0))
(assert_trap (invoke "t") "unreachable")
(assert_trap (module (func $s unreachable) (start $s)) "unreachable")
(assert_exhaustion (invoke "deep") "call stack exhausted")
(assert_invalid (module (func (result i32))) "type mismatch")
(assert_malformed (module quote "(func" "") "unexpected end")
(assert_unlinkable (module (import "m" "nope" (func))) "unknown import")
(module definition $D (memory 1))
(module instance $I $D)
(thread $T (invoke "x"))
'''


def test_commands() -> None:
    cmds = parse_script(SCRIPT, "s.wast")
    kinds = [type(c).__name__ for c in cmds]
    assert kinds == [
        "ModuleCmd", "ModuleCmd", "ModuleCmd", "Register", "Action", "Action",
        "AssertReturn", "AssertReturn", "AssertReturn", "AssertReturn", "AssertReturn",
        "AssertTrap", "AssertTrap", "AssertExhaustion", "AssertInvalid", "AssertMalformed",
        "AssertUnlinkable", "ModuleCmd", "ModuleInstance", "Unsupported",
    ]
    m, b, q, reg, inv, get = cmds[:6]
    assert isinstance(m, ModuleCmd) and m.name == "$M" and m.form == "text" and m.line == 2
    assert m.text is not None and m.text.startswith("(module $M (func") and m.text.endswith(")))")
    assert isinstance(b, ModuleCmd) and b.form == "binary" and b.binary == b"\x00asm\x01\x00\x00\x00"
    assert b.name is None and b.text is None
    assert isinstance(q, ModuleCmd) and q.form == "quote" and q.quote_text == "(func) (memory 1)"
    assert q.name == "$Q"
    assert reg == Register(line=5, name="m", module_id="$M")
    assert inv == Action(line=6, op="invoke", module=None, name="f",
                         args=[Value("i32", 0xFFFFFFFF)])
    assert isinstance(get, Action) and get.op == "get" and get.module == "$M" and get.args == []

    r1, r2, r3, r4, r5 = cmds[6:11]
    assert isinstance(r1, AssertReturn) and r1.action is not None and r1.action.module == "$M"
    assert r1.expected == [Expected("value", "i32", Value("i32", 7))]
    assert isinstance(r2, AssertReturn) and r2.action is not None
    assert r2.action.args == [Value("f32", 0x7FA00000), Value("f64", 0x8000000000000001)]
    assert [e.kind for e in r2.expected] == ["nan:canonical", "nan:arithmetic"]
    assert [e.type for e in r2.expected] == ["f32", "f64"]
    assert isinstance(r3, AssertReturn) and r3.action is not None
    assert r3.action.args == [Value("funcref", None), Value("externref", None),
                              Value("externref", 3)]
    assert [(e.kind, e.type) for e in r3.expected] == [
        ("ref.null", "funcref"), ("value", "externref"), ("ref.nonnull", "funcref"),
        ("ref.nonnull", "externref"), ("ref.null", "ref")]
    assert isinstance(r4, AssertReturn)
    assert r4.expected[0].kind == "either" and len(r4.expected[0].alternatives) == 2
    assert isinstance(r5, AssertReturn) and r5.action is not None
    assert r5.action.args == [Value("v128", v128_bits("i16x8", list("12345678")))]
    v = r5.expected[0]
    assert v.kind == "v128" and v.shape == "f32x4"
    assert [lane.kind for lane in v.lanes] == ["nan:canonical", "value", "nan:arithmetic", "value"]

    t1, t2, ex, inval, mal, unl, d, inst, thread = cmds[11:]
    assert isinstance(t1, AssertTrap) and isinstance(t1.action, Action)
    assert t1.message == "unreachable"
    assert isinstance(t2, AssertTrap) and isinstance(t2.action, ModuleCmd)
    assert isinstance(ex, AssertExhaustion) and ex.message == "call stack exhausted"
    assert isinstance(inval, AssertInvalid) and inval.module is not None
    assert inval.module.text == "(module (func (result i32)))" and inval.message == "type mismatch"
    assert isinstance(mal, AssertMalformed) and mal.module is not None
    assert mal.module.quote_text == "(func"
    assert isinstance(unl, AssertUnlinkable) and unl.message == "unknown import"
    assert isinstance(d, ModuleCmd) and d.definition and d.name == "$D"
    assert d.text is not None and "definition" not in d.text and d.text.startswith("(module ")
    assert isinstance(inst, ModuleInstance) and (inst.instance, inst.module) == ("$I", "$D")
    assert isinstance(thread, Unsupported) and thread.kind == "thread" and "thread" in thread.reason


def test_command_lines() -> None:
    cmds = parse_script("\n\n(module)\n;; c\n(assert_return\n (invoke \"f\"))\n")
    assert [c.line for c in cmds] == [3, 5]
    assert cmds[1].kind == "assert_return"


def test_inline_module() -> None:
    (cmd,) = parse_script('(func) (memory 0) (func (export "f"))')
    assert isinstance(cmd, ModuleCmd) and cmd.form == "text"
    assert cmd.text is not None and cmd.text.startswith("(module (func) (memory 0)")


def test_annotated_commands() -> None:
    (cmd, ret) = parse_script('((@a) module (@b) $m (@c "x") (func))\n'
                              '((@a) assert_return (@b) (invoke (@c) "f") (i32.const 1))')
    assert isinstance(cmd, ModuleCmd) and cmd.name == "$m"
    assert isinstance(ret, AssertReturn) and ret.action is not None and ret.action.name == "f"


def test_quote_with_invalid_utf8() -> None:
    (cmd,) = parse_script(r'(assert_malformed (module quote "\ff") "malformed UTF-8")')
    assert isinstance(cmd, AssertMalformed) and cmd.module is not None
    assert cmd.module.quote_error is not None


def test_script_errors_have_positions() -> None:
    text = '(module)\n(assert_return (invoke "f") (i32.const 0x1_))'
    with pytest.raises(WastSyntaxError) as info:
        parse_script(text, "t.wast")
    assert (info.value.line, info.value.col) == (2, text.split("\n")[1].index("(i32") + 1)
    assert str(info.value).startswith("t.wast:2:")
    with pytest.raises(WastSyntaxError) as info:
        parse_script('(assert_return (invoke "f" (i64.const 18446744073709551616)))', "u.wast")
    assert "out of range" in str(info.value)
    with pytest.raises(WastSyntaxError):
        parse_script('(assert_return (invoke "f" (f32.const nan:canonical)))')
    with pytest.raises(WastSyntaxError):
        parse_script("(assert_invalid (invoke \"f\") \"x\")")


def test_match_value() -> None:
    def exp(text: str) -> Expected:
        (cmd,) = parse_script(f'(assert_return (invoke "f") {text})')
        assert isinstance(cmd, AssertReturn)
        return cmd.expected[0]

    canon, arith = exp("(f32.const nan:canonical)"), exp("(f64.const nan:arithmetic)")
    assert match_value(canon, Value("f32", 0x7FC00000))
    assert match_value(canon, Value("f32", 0xFFC00000))
    assert not match_value(canon, Value("f32", 0x7FC00001))
    assert not match_value(canon, Value("f32", 0x7FA00000))
    assert not match_value(canon, Value("f64", 0x7FF8000000000000))
    assert match_value(arith, Value("f64", 0x7FF8000000000001))
    assert match_value(arith, Value("f64", 0xFFF8000000000000))
    assert not match_value(arith, Value("f64", 0x7FF4000000000000))
    assert not match_value(arith, Value("f64", 0x7FF0000000000000))
    exact_nan = exp("(f32.const nan:0x200000)")
    assert match_value(exact_nan, Value("f32", 0x7FA00000))
    assert not match_value(exact_nan, Value("f32", 0x7FE00000))
    zero = exp("(f64.const 0)")
    assert match_value(zero, Value("f64", 0)) and not match_value(zero, Value("f64", 1 << 63))
    assert not match_value(exp("(i32.const 0)"), Value("i64", 0))
    assert match_value(exp("(ref.null func)"), Value("funcref", None))
    assert not match_value(exp("(ref.null func)"), Value("funcref", 5))
    assert match_value(exp("(ref.func)"), Value("funcref", 5))
    assert match_value(exp("(ref.extern 3)"), Value("externref", 3))
    assert not match_value(exp("(ref.extern 3)"), Value("externref", 4))
    assert not match_value(exp("(ref.extern 3)"), Value("externref", None))
    assert match_value(exp("(ref.extern)"), Value("externref", 4))
    assert match_value(exp("(ref.null)"), Value("externref", None))
    assert not match_value(exp("(ref.null)"), Value("i32", 0))
    either = exp("(either (i32.const 1) (i32.const 2))")
    assert match_value(either, Value("i32", 2)) and not match_value(either, Value("i32", 3))
    lanes = exp("(v128.const f32x4 nan:canonical 1 nan:arithmetic -0)")
    good = 0x7FC00000 | 0x3F800000 << 32 | 0xFFC00001 << 64 | 0x80000000 << 96
    assert match_value(lanes, Value("v128", good))
    assert not match_value(lanes, Value("v128", good ^ (1 << 96)))
    assert not match_value(lanes, Value("v128", good & ~(0xFFFFFFFF << 64) | 0x7F800000 << 64))


# --------------------------------------------------------------------------- the suite

SPEC_DIR = find_spec_dir()
needs_suite = pytest.mark.skipif(SPEC_DIR is None, reason="the wasm spec test suite is absent")


@needs_suite
def test_parse_all_in_scope_files_quickly() -> None:
    assert SPEC_DIR is not None
    files = scope_files(SPEC_DIR, ("mvp", "2.0-scalar"))
    assert len(files) >= 80
    start = time.perf_counter()
    total = 0
    for path in files:
        total += len(parse_file(path))
    elapsed = time.perf_counter() - start
    print(f"parsed {len(files)} in-scope files, {total} commands, in {elapsed:.2f}s")
    assert total > 25000
    assert elapsed < 15  # about 1.5 s on a normal machine


@needs_suite
def test_parse_every_file_and_match_manifest_counts() -> None:
    import csv

    assert SPEC_DIR is not None
    with (SPEC_DIR / "MANIFEST.tsv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    for row in rows:
        cmds = parse_file(SPEC_DIR / row["file"])
        kinds = [c.kind for c in cmds]
        assert kinds.count("assert_return") == int(row["n_assert_return"]), row["file"]
        assert kinds.count("assert_trap") == int(row["n_assert_trap"]), row["file"]
        assert kinds.count("assert_invalid") == int(row["n_assert_invalid"]), row["file"]
        assert kinds.count("assert_malformed") == int(row["n_assert_malformed"]), row["file"]
        assert kinds.count("module") == int(row["n_modules"]), row["file"]
        assert kinds.count("register") == int(row["n_register"]), row["file"]


def test_lenient_parsing_keeps_bad_commands() -> None:
    text = '(module)\n(assert_return (invoke "f" (i32.const 1x)))\n(invoke "g")'
    cmds = parse_script(text, "l.wast", strict=False)
    assert [type(c).__name__ for c in cmds] == ["ModuleCmd", "Unsupported", "Action"]
    bad = cmds[1]
    assert isinstance(bad, Unsupported) and bad.kind == "assert_return"
    assert bad.error is not None and bad.error.startswith("l.wast:2:")
    with pytest.raises(WastSyntaxError):
        parse_script("(module", strict=False)

"""Tests of the validator, and the spec-suite-driven check of decoder and
validator together.

The spec tests are read straight from the ``.wast`` files with a small
s-expression reader; text modules are converted with ``wasmtime.wat2wasm``
(which does not validate).  ``wast2json`` is not used: wabt 1.0.32 rejects
or crashes on 16 of the 82 in-scope files.
"""

from __future__ import annotations

import collections
import functools
import os
import random
import re
from pathlib import Path

import pytest

from wasmlower.errors import MalformedError, ValidationError, WasmError
from wasmlower.wasm import Module, decode_module, validate, validate_function

wasmtime = pytest.importorskip("wasmtime")

REPO = Path(__file__).resolve().parents[2]
SPEC_DIR = Path(os.environ.get("WASMLOWER_SPEC_DIR") or REPO.parent / "shared" / "wasm-testsuite")
IN_SCOPE_TIERS = ("mvp", "2.0-scalar")


def wat(text: str) -> bytes:
    return bytes(wasmtime.wat2wasm(text))


def check(text: str) -> Module:
    m = decode_module(wat(text))
    validate(m)
    return m


def invalid(text: str, message: str) -> ValidationError:
    m = decode_module(wat(text))
    with pytest.raises(ValidationError) as info:
        validate(m)
    assert info.value.message.startswith(message), info.value.message
    return info.value


# -- valid code, including the polymorphic stack -------------------------------------------


VALID = {
    "unreachable-polymorphic": "(func (result i32) unreachable i32.add)",
    "unreachable-then-typed": "(func (result f64) unreachable (f64.neg) (f64.const 1) f64.add)",
    "br-in-middle": "(func (result i32) (block (result i32) (br 0 (i32.const 1)) i32.add))",
    "return-polymorphic": "(func (result i64) (return (i64.const 1)) (drop) (drop))",
    "select-unknown": "(func (result i32) unreachable select)",
    "select-after-unreachable": "(func (result i32) unreachable (i32.const 0) select)",
    "br_table-bottom": """(func (block (result f64) (block (result f32) unreachable
                            (br_table 0 1 1 (i32.const 1))) (drop) (f64.const 0)) (drop))""",
    "br_if-value": "(func (result i32) (block (result i32) (br_if 0 (i32.const 1) "
                   "(i32.const 0))))",
    "multi-value-block": "(func (result i32 i64) (block (result i32 i64) (i32.const 1) "
                         "(i64.const 2)))",
    "block-params": "(type $t (func (param i32) (result i32))) (func (result i32) (i32.const 1) "
                    "(block (type $t) (param i32) (result i32) (i32.const 2) i32.add))",
    "loop-params-br": "(func (param i32) (result i32) (local.get 0) (loop (param i32) "
                      "(result i32) (br_if 0 (i32.eqz (local.get 0)))))",
    "if-else-values": "(func (param i32) (result i32) (if (result i32) (local.get 0) "
                      "(then (i32.const 1)) (else (i32.const 2))))",
    "if-params-no-else": "(func (param i32) (result i32) (i32.const 3) (local.get 0) "
                         "(if (param i32) (result i32) (then)))",
    "ref-types": """(table 1 funcref) (table $e 2 externref) (elem declare func 0)
        (func (param externref) (result i32)
          (table.set $e (i32.const 0) (local.get 0))
          (drop (table.get $e (i32.const 1)))
          (drop (table.grow 0 (ref.func 0) (i32.const 1)))
          (table.fill $e (i32.const 0) (ref.null extern) (i32.const 1))
          (drop (table.size $e))
          (drop (select (result externref) (local.get 0) (ref.null extern) (i32.const 1)))
          (ref.is_null (local.get 0)))""",
    "mutable-global-export": "(global $g (export \"g\") (mut i32) (i32.const 0)) "
                             "(func (global.set $g (i32.const 1)))",
    "imported-global-in-const": "(import \"m\" \"g\" (global $g i32)) "
                                "(global i32 (global.get $g)) (memory 1) "
                                "(data (global.get $g) \"x\")",
    "bulk": """(memory 1) (table 2 funcref) (data $d "abc") (elem $e func 0)
        (func (memory.init $d (i32.const 0) (i32.const 0) (i32.const 1)) (data.drop $d)
              (memory.copy (i32.const 0) (i32.const 1) (i32.const 1))
              (memory.fill (i32.const 0) (i32.const 1) (i32.const 1))
              (table.init $e (i32.const 0) (i32.const 0) (i32.const 1)) (elem.drop $e)
              (table.copy (i32.const 0) (i32.const 1) (i32.const 1)))""",
    "memory-limits-max": "(memory 0 65536)",
    "table-limits-max": "(table 0 0xffff_ffff funcref)",
    "start": "(func $s) (start $s)",
    "loads-natural-align": """(memory 1) (func
        (drop (i64.load align=8 (i32.const 0))) (drop (i32.load16_u align=2 (i32.const 0)))
        (i64.store32 align=4 (i32.const 0) (i64.const 0))
        (drop (i32.load offset=0xffff_ffff (i32.const 0))))""",
}


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid(name: str) -> None:
    check(f"(module {VALID[name]})")


# -- invalid code ----------------------------------------------------------------------------

INVALID = [
    ("(func (result i32) (i64.const 0))", "type mismatch"),
    ("(func (i32.add (i32.const 0)) (drop))", "type mismatch"),
    ("(func (result i32))", "type mismatch"),
    ("(func (i32.const 1))", "type mismatch"),
    ("(func (block (result i32) (i64.const 1)) (drop))", "type mismatch"),
    ("(func (result i32) (if (result i32) (i32.const 1) (then (i32.const 1))))", "type mismatch"),
    ("(func (if (i64.const 1) (then)))", "type mismatch"),
    ("(func (local.get 0) (drop))", "unknown local 0"),
    ("(func (param i32) (local i64) (local.set 2 (i32.const 0)))", "unknown local 2"),
    ("(func (drop (global.get 0)))", "unknown global 0"),
    ("(global i32 (i32.const 0)) (func (global.set 0 (i32.const 1)))", "immutable global"),
    ("(func (call 5))", "unknown function 5"),
    ("(func (drop (ref.func 0)))", "undeclared function reference"),
    ("(func (br 1))", "unknown label"),
    ("(func (block (br_table 0 2 (i32.const 0))))", "unknown label"),
    ("(func (block (result i32) (block (br_table 0 1 (i32.const 0)))) (drop))", "type mismatch"),
    ("(func (drop (i32.load (i32.const 0))))", "unknown memory 0"),
    ("(func (drop (memory.size)))", "unknown memory 0"),
    ("(memory 1) (func (drop (i32.load align=8 (i32.const 0))))",
     "alignment must not be larger than natural"),
    ("(memory 1) (func (i64.store8 align=2 (i32.const 0) (i64.const 0)))",
     "alignment must not be larger than natural"),
    ("(func (drop (table.get 0 (i32.const 0))))", "unknown table 0"),
    ("(table 1 externref) (type $t (func)) (func (call_indirect (type $t) (i32.const 0)))",
     "type mismatch"),
    ("(table 1 funcref) (func (call_indirect (type 3) (i32.const 0)))", "unknown type"),
    ("(memory 1) (func (data.drop 0))", "unknown data segment 0"),
    ("(table 1 funcref) (func (elem.drop 0))", "unknown elem segment 0"),
    (("(table 1 funcref) (elem $e externref) (func "
      "(table.init 0 $e (i32.const 0) (i32.const 0) (i32.const 0)))"), "type mismatch"),
    (("(table $a 1 funcref) (table $b 1 externref) "
      "(func (table.copy $a $b (i32.const 0) (i32.const 0) (i32.const 0)))"), "type mismatch"),
    ("(func (drop (select (ref.null func) (ref.null func) (i32.const 1))))", "type mismatch"),
    ("(func (drop (select (i32.const 1) (i64.const 1) (i32.const 1))))", "type mismatch"),
    ("(func (drop (ref.is_null (i32.const 0))))", "type mismatch"),
    ("(table 1 funcref) (func (table.set 0 (i32.const 0) (ref.null extern)))", "type mismatch"),
    ("(func (export \"a\")) (export \"a\" (func 0))", "duplicate export name"),
    ("(export \"a\" (func 0))", "unknown function 0"),
    ("(export \"a\" (global 0))", "unknown global 0"),
    ("(export \"a\" (memory 0))", "unknown memory 0"),
    ("(export \"a\" (table 0))", "unknown table 0"),
    ("(func $s (param i32)) (start $s)", "start function"),
    ("(start 0)", "unknown function 0"),
    ("(memory 2 1)", "size minimum must not be greater than maximum"),
    ("(memory 65537)", "memory size must be at most 65536 pages (4GiB)"),
    ("(table 2 1 funcref)", "size minimum must not be greater than maximum"),
    ("(global i32 (i64.const 0))", "type mismatch"),
    ("(global i32)", "type mismatch"),  # empty constant expression
    ("(global i32 (i32.ctz (i32.const 1)))", "constant expression required"),
    ("(global i32 (i32.add (i32.const 1) (i32.const 2)))", "unsupported feature: extended-const"),
    ("(global i32 (i32.const 0)) (global i32 (global.get 0))", "unsupported feature: gc"),
    ("(global i32 (global.get 1)) (global i32 (i32.const 0))", "unknown global 1"),
    ("(global i32 (global.get 0))", "unknown global 0"),
    ("(import \"m\" \"g\" (global (mut i32))) (global i32 (global.get 0))",
     "constant expression required"),
    ("(memory 1) (data (i64.const 0) \"\")", "type mismatch"),
    ("(data (i32.const 0) \"\")", "unknown memory 0"),
    ("(elem (i32.const 0) 0) (func)", "unknown table 0"),
    ("(table 1 externref) (elem (table 0) (i32.const 0) func 0) (func)", "type mismatch"),
    ("(table 1 funcref) (elem (i32.const 0) 3)", "unknown function 3"),
    ("(memory 1) (memory 1)", "unsupported feature: multi-memory"),
    ("(import \"m\" \"f\" (func (type 4)))", "unknown type 4"),
    ("(func (type 9))", "unknown type 9"),
    ("(func (drop (select (result i32 i32) (i32.const 1) (i32.const 1) (i32.const 1))))",
     "invalid result arity"),
]


@pytest.mark.parametrize("fields, message", INVALID)
def test_invalid(fields: str, message: str) -> None:
    invalid(f"(module {fields})", message)


def test_error_offset_points_at_instruction() -> None:
    data = wat("(module (func (result i32) (i32.const 1) (i64.const 2) (i32.add)))")
    with pytest.raises(ValidationError) as info:
        validate(decode_module(data))
    assert data[info.value.offset] == 0x6A  # i32.add


def test_module_level_errors_carry_offsets() -> None:
    data = wat('(module (func) (export "a" (func 0)) (export "a" (func 0)))')
    err = invalid_binary(data, "duplicate export name")
    assert data[err.offset:err.offset + 2] == b"\x01a"  # the second export's name
    assert err.offset > data.index(b"\x01a")
    data = wat("(module (memory 70000))")
    err = invalid_binary(data, "memory size must be at most 65536 pages")
    assert data[err.offset] == 0x00  # the limits flags of the memory entry
    data = wat("(module (func $f (param i32)) (start $f))")
    err = invalid_binary(data, "start function")
    assert data[err.offset - 2] == 0x08  # just after the start section's id and size
    data = wat("(module (memory 1) (memory 1))")
    err = invalid_binary(data, "unsupported feature: multi-memory")
    assert err.offset == data.index(b"\x05\x05\x02") + 5  # the second memory


def invalid_binary(data: bytes, message: str) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        validate(decode_module(data))
    assert info.value.message.startswith(message), info.value.message
    assert info.value.offset is not None
    return info.value


def test_multiple_memories_mentions_both_wordings() -> None:
    err = invalid("(module (memory 1) (memory 1))", "unsupported feature: multi-memory")
    assert "multiple memories" in err.message
    invalid("(module (import \"m\" \"m\" (memory 1)) (memory 1))",
            "unsupported feature: multi-memory")


def test_offset_out_of_range() -> None:
    # memarg offsets are u64 in the binary; a 32-bit memory bounds them to 2^32-1.
    data = (b"\x00asm\x01\x00\x00\x00" b"\x01\x04\x01\x60\x00\x00" b"\x03\x02\x01\x00"
            b"\x05\x03\x01\x00\x01" b"\x0a\x0e\x01\x0c\x00\x41\x00\x28\x02\x80\x80\x80\x80\x10"
            b"\x1a\x0b")
    with pytest.raises(ValidationError, match="offset out of range"):
        validate(decode_module(data))


def test_validate_function() -> None:
    m = decode_module(wat("""(module (import "m" "f" (func))
        (func (result i32) (i32.const 0)) (func (result i32) (i64.const 0)))"""))
    validate_function(m, 1)
    with pytest.raises(ValidationError, match="type mismatch"):
        validate_function(m, 2)
    with pytest.raises(ValidationError, match="unknown function"):
        validate_function(m, 0)  # imported: no body
    with pytest.raises(ValidationError, match="unknown function"):
        validate_function(m, 3)


def test_hand_built_module_without_end_is_rejected() -> None:
    m = decode_module(wat("(module (func))"))
    m.codes[0].body.pop()
    with pytest.raises(ValidationError, match="END opcode expected"):
        validate(m)


def test_big_body_and_many_functions() -> None:
    n = 3000
    body = "(i32.const 1)" + " (i32.add (i32.const 2))" * n
    funcs = "".join(f"(func (result i32) {body} (call {i + 1}) (i32.add))" for i in range(20))
    m = check(f"(module {funcs} (func (result i32) (i32.const 0)))")
    assert len(m.codes) == 21


# -- the spec test suite -----------------------------------------------------------------------


class Sexp(list):
    """A parenthesised list of a .wast script, with its source span."""

    start = 0
    end = 0


class Str(bytes):
    """A string literal of a .wast script, unescaped."""


_ATOM = re.compile(r'[^\s()";]+')
_ESCAPES = {"n": b"\n", "t": b"\t", "r": b"\r", "\\": b"\\", "'": b"'", '"': b'"'}


def _unescape(text: str) -> bytes:
    out = bytearray()
    i = 0
    while i < len(text):
        j = text.find("\\", i)
        if j < 0:
            out += text[i:].encode()
            break
        out += text[i:j].encode()
        c = text[j + 1]
        if c in _ESCAPES:
            out += _ESCAPES[c]
            i = j + 2
        elif c == "u":
            close = text.index("}", j)
            out += chr(int(text[j + 3:close].replace("_", ""), 16)).encode("utf-8",
                                                                          "surrogatepass")
            i = close + 1
        else:
            out.append(int(text[j + 1:j + 3], 16))
            i = j + 3
    return bytes(out)


def parse_wast(text: str) -> list:
    """The top-level s-expressions of a .wast script (atoms as str, strings as Str)."""
    stack: list[Sexp] = [Sexp()]
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            i += 1
        elif text.startswith(";;", i):
            j = text.find("\n", i)
            i = n if j < 0 else j + 1
        elif text.startswith("(;", i):
            depth, i = 1, i + 2
            while depth and i < n:
                if text.startswith("(;", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith(";)", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "(":
            node = Sexp()
            node.start = i
            stack[-1].append(node)
            stack.append(node)
            i += 1
        elif c == ")":
            stack.pop().end = i + 1
            i += 1
        elif c == '"':
            j = i + 1
            while text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            stack[-1].append(Str(_unescape(text[i + 1:j])))
            i = j + 1
        else:
            m = _ATOM.match(text, i)
            if m is None:
                stack[-1].append(c)
                i += 1
            else:
                stack[-1].append(m.group())
                i = m.end()
    return stack[0]


def _escape_non_ascii(src: str) -> str:
    """Write non-ASCII characters of string literals as \\u{...} (wat2wasm refuses some
    bidi characters written literally, e.g. in names.wast)."""
    def fix(m: re.Match) -> str:
        return "".join(ch if ord(ch) < 128 else f"\\u{{{ord(ch):x}}}" for ch in m.group())
    return re.sub(r'"(?:[^"\\]|\\.)*"', fix, src)


def _module_binary(text: str, node: Sexp) -> tuple[str, bytes | None]:
    """(form, bytes) of a ``(module ...)`` node; bytes is None if the text does not convert."""
    items = [x for x in node[1:] if isinstance(x, Str) or not str(x).startswith("$")]
    if items and items[0] == "definition":
        items = items[1:]
    if items and items[0] == "instance":
        return "instance", None
    if items and items[0] == "binary":
        return "binary", b"".join(items[1:])
    if items and items[0] == "quote":
        src = b" ".join(items[1:]).decode("utf-8", "replace")
        try:
            return "quote", wat(f"(module {src})")
        except Exception:  # noqa: BLE001 - any conversion failure means "malformed text"
            return "quote", None
    src = re.sub(r"^\(module(\s+\$\S+)?\s+definition\b", r"(module\1", text[node.start:node.end])
    try:
        return "text", wat(src)
    except Exception:  # noqa: BLE001
        try:
            return "text", wat(_escape_non_ascii(src))
        except Exception:  # noqa: BLE001
            return "text", None


@functools.cache
def _manifest() -> dict[str, str]:
    path = SPEC_DIR / "MANIFEST.tsv"
    if not path.is_file():
        return {}
    rows = [line.split("\t") for line in path.read_text().splitlines()[1:] if line]
    return {row[0]: row[1] for row in rows}


def _in_scope_files() -> list[str]:
    return sorted(f for f, tier in _manifest().items() if tier in IN_SCOPE_TIERS)


@functools.cache
def _run_file(fname: str) -> tuple[collections.Counter, tuple[str, ...]]:
    """Check every module of one .wast file; returns (counts, failures).

    Counts are keyed (kind, outcome); kind is "valid", "malformed" or "invalid".
    """
    text = (SPEC_DIR / fname).read_text(encoding="utf-8")
    counts: collections.Counter = collections.Counter()
    failures: list[str] = []
    for cmd in parse_wast(text):
        if not isinstance(cmd, Sexp) or not cmd:
            continue
        head = cmd[0]
        module_arg = len(cmd) > 1 and isinstance(cmd[1], Sexp) and cmd[1][:1] == ["module"]
        if head == "module":
            kind, node, expect = "valid", cmd, ""
        elif head in ("assert_trap", "assert_unlinkable") and module_arg:
            kind, node, expect = "valid", cmd[1], ""  # these modules validate
        elif head in ("assert_malformed", "assert_invalid") and module_arg:
            kind, node = head[len("assert_"):], cmd[1]
            expect = cmd[2].decode() if len(cmd) > 2 and isinstance(cmd[2], Str) else ""
        else:
            continue
        form, data = _module_binary(text, node)
        where = f"{fname}:{text.count(chr(10), 0, node.start) + 1}"
        if form == "instance":
            continue
        if data is None:
            if kind == "valid":
                failures.append(f"{where}: valid {form} module does not convert")
            else:
                counts[(kind, "text-level (not converted)")] += 1
            continue
        try:
            validate(decode_module(data))
            err = None
        except WasmError as e:
            err = e
        except Exception as e:  # noqa: BLE001 - any other exception is a bug
            failures.append(f"{where}: {type(e).__name__} escaped: {e}")
            counts[(kind, "crash")] += 1
            continue
        if kind == "valid":
            if err is None:
                counts[(kind, "accepted")] += 1
            else:
                counts[(kind, "REJECTED")] += 1
                failures.append(f"{where}: valid module rejected: {err}")
        elif err is None:
            counts[(kind, "ACCEPTED")] += 1
            failures.append(f"{where}: {kind} module accepted (expected {expect!r})")
        elif err.message.startswith("unsupported feature"):
            counts[(kind, "rejected: unsupported feature")] += 1
        elif kind == "malformed" and not isinstance(err, MalformedError):
            counts[(kind, "WRONG CLASS")] += 1
            failures.append(f"{where}: expected malformed ({expect!r}), got {err}")
        elif kind == "invalid" and not isinstance(err, ValidationError):
            # The decoder may legitimately find a problem first.
            counts[(kind, "rejected as malformed")] += 1
        elif err.message.startswith(expect):
            counts[(kind, "rejected, same message")] += 1
        else:
            counts[(kind, "rejected, other message")] += 1
    return counts, tuple(failures)


def _need_suite() -> None:
    if not _manifest():
        pytest.skip(f"spec test suite not found at {SPEC_DIR}")


@pytest.mark.parametrize("fname", _in_scope_files() or ["<none>"])
def test_spec_file(fname: str) -> None:
    """Valid modules decode and validate; assert_malformed binaries raise
    MalformedError; assert_invalid modules raise ValidationError (or
    MalformedError when the decoder finds a problem first)."""
    _need_suite()
    _, failures = _run_file(fname)
    assert not failures, "\n".join(failures)


def test_spec_suite_counts(capsys: pytest.CaptureFixture) -> None:
    """Totals over the in-scope files; printed with ``pytest -s``."""
    _need_suite()
    total: collections.Counter = collections.Counter()
    for fname in _in_scope_files():
        total.update(_run_file(fname)[0])
    with capsys.disabled():
        print("\nspec suite (tiers mvp, 2.0-scalar):")
        for key in sorted(total):
            print(f"  {key[0]:>9}: {key[1]:<32} {total[key]}")
    assert total[("valid", "accepted")] >= 950
    assert total[("malformed", "rejected, same message")] >= 700
    assert total[("invalid", "rejected, same message")] >= 1300
    bad = ("REJECTED", "ACCEPTED", "WRONG CLASS", "crash")
    assert not any(total[(k, b)] for k in ("valid", "malformed", "invalid") for b in bad)


def test_spec_higher_tiers_are_supported_or_flagged() -> None:
    """Files of the simd and 3.0+ tiers: nothing but WasmError escapes, and a
    valid module is either accepted or rejected as "unsupported feature"."""
    _need_suite()
    problems = []
    for fname, tier in sorted(_manifest().items()):
        if tier in IN_SCOPE_TIERS:
            continue
        _, failures = _run_file(fname)
        problems += [f for f in failures if "unsupported feature" not in f]
    assert not problems, "\n".join(problems[:50])


# -- differential check against Wasmtime -------------------------------------------------------

SEED_WAT = [
    """(module (memory 1) (table 2 funcref) (global $g (mut i32) (i32.const 0))
      (type $bin (func (param i32 i32) (result i32)))
      (func $add (type $bin) (i32.add (local.get 0) (local.get 1)))
      (func (export "f") (param i32 i64 f32 f64) (result i32) (local i32 i64)
        (block $out (result i32)
          (loop $l
            (local.set 4 (i32.add (local.get 4) (i32.const 1)))
            (br_if $l (i32.lt_u (local.get 4) (i32.const 10))))
          (i64.store (i32.const 8) (i64.extend_i32_s (local.get 0)))
          (f32.store (i32.const 4) (f32.add (local.get 2) (f32.convert_i64_s (local.get 1))))
          (drop (f64.sqrt (local.get 3)))
          (if (result i32) (i32.eqz (local.get 0))
            (then (call_indirect (type $bin) (i32.const 1) (i32.const 2) (i32.const 0)))
            (else (global.get $g)))
          (br_table $out $out (local.get 0))))
      (elem (i32.const 0) $add))""",
    """(module (type $t (func (param i32) (result i32 i64)))
      (table $r 4 externref) (memory 1) (data $d "hello") (elem $e func 0)
      (func (type $t) (local.get 0) (i64.const 7))
      (func (param externref) (result i32)
        (table.set $r (i32.const 0) (local.get 0))
        (memory.init $d (i32.const 0) (i32.const 0) (i32.const 5))
        (memory.fill (i32.const 0) (i32.const 1) (i32.const 2))
        (drop (i64.trunc_sat_f32_s (f32.const 1.5)))
        (drop (i32.extend8_s (i32.const 300)))
        (block (result i32 i64) (i32.const 1) (call 0))
        (drop) (drop)
        (select (result i32) (i32.const 1) (i32.const 2) (ref.is_null (local.get 0)))))""",
]


def test_agrees_with_wasmtime_on_mutated_code() -> None:
    """Random edits of function bodies: wherever the result is not "unsupported
    feature", accept/reject agrees with Wasmtime's validator."""
    seeds = [wat(text) for text in SEED_WAT]
    bench = REPO.parent / "shared" / "bench"
    seeds += [p.read_bytes() for p in sorted(bench.glob("*.wasm"))]
    engine = wasmtime.Engine()
    rng = random.Random(99)
    opcodes = [b for b in range(256) if b not in (0xFB, 0xFD, 0xFE)]
    ranges = []
    for data in seeds:
        pos = 8
        while pos < len(data):  # find the code section
            sid = data[pos]
            size, p = _uleb(data, pos + 1)
            if sid == 10:
                ranges.append((data, p + 3, p + size))
            pos = p + size
    disagreements = []
    verdicts = collections.Counter()
    for _ in range(1500):
        data, lo, hi = rng.choice(ranges)
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 2)):
            mutated[rng.randrange(lo, hi)] = rng.choice(opcodes)
        mutated = bytes(mutated)
        try:
            validate(decode_module(mutated))
            ours = "valid"
        except WasmError as e:
            if e.message.startswith("unsupported feature"):
                continue
            ours = "rejected"
        try:
            wasmtime.Module.validate(engine, mutated)
            theirs = "valid"
        except Exception:  # noqa: BLE001 - wasmtime's error type varies across versions
            theirs = "rejected"
        verdicts[ours] += 1
        if ours != theirs:
            disagreements.append(f"{mutated.hex()}: ours {ours}, wasmtime {theirs}")
    assert verdicts["valid"] > 100 and verdicts["rejected"] > 100, verdicts
    assert not disagreements, "\n".join(disagreements[:10])


def _uleb(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return result, pos

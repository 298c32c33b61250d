"""The s-expression reader: tokens, strings as bytes, comments, positions, errors."""

from __future__ import annotations

import pytest

from wasmlower.spec.sexpr import (
    Atom,
    Opaque,
    SList,
    String,
    WastSyntaxError,
    decode_string,
    parse,
)


def test_lists_atoms_and_positions() -> None:
    nodes = parse('(module $m\n  (func (export "f") (result i32)\n    i32.const 42))', "x.wast")
    assert len(nodes) == 1
    module = nodes[0]
    assert isinstance(module, SList)
    assert module.head == "module"
    assert (module.line, module.col) == (1, 1)
    assert module[1] == Atom(module.src, 0, 0, "$m")
    func = module[2]
    assert isinstance(func, SList) and func.head == "func"
    assert (func.line, func.col) == (2, 3)
    export = func[1]
    assert isinstance(export[1], String) and export[1].value == b"f"
    assert (export[1].line, export[1].col) == (2, 17)
    const = func[3]
    assert isinstance(const, Atom) and const.text == "i32.const"
    assert (const.line, const.col) == (3, 5)
    assert module.source_text.startswith("(module $m") and module.source_text.endswith("42))")


def test_strings_are_bytes_with_all_escapes() -> None:
    (node,) = parse(r'"a\n\t\\\'\"\u{41}\u{e9}\u{1F600}\00\ff\7F"')
    assert isinstance(node, String)
    assert node.value == b"a\n\t\\'\"A\xc3\xa9\xf0\x9f\x98\x80\x00\xff\x7f"
    (node,) = parse('"h\u00e9llo"')
    assert node.value == "h\u00e9llo".encode()
    assert decode_string(r'"\r\u{10_FFFF}"') == b"\r" + chr(0x10FFFF).encode()
    assert parse('""')[0].value == b""


def test_raw_bytes_need_not_be_utf8() -> None:
    (node,) = parse(r'"\80\81"')
    assert node.value == b"\x80\x81"
    with pytest.raises(UnicodeDecodeError):
        _ = node.text


@pytest.mark.parametrize("bad, col", [
    (r'"\q"', 2), (r'"ab\u{}"', 4), (r'"\u{D800}"', 2), (r'"\u{110000}"', 2), (r'"\4"', 2),
])
def test_bad_escapes(bad: str, col: int) -> None:
    with pytest.raises(WastSyntaxError) as info:
        parse(bad, "s.wast")
    assert info.value.line == 1 and info.value.col == col
    assert str(info.value).startswith(f"s.wast:1:{col}:")


def test_comments() -> None:
    text = """;; line comment (
    (a ;; comment )
      (; block (; nested ;) still ;) b
      c;;x
      (;) ;) d)
    (;;) (; "not a string ;) e
    """
    nodes = parse(text)
    assert [n.head if isinstance(n, SList) else n.text for n in nodes] == ["a", "e"]
    assert [x.text for x in nodes[0]] == ["a", "b", "c", "d"]


def test_atoms_with_quoted_ids_and_reserved_chars() -> None:
    nodes = parse('(func $"a b" x;y {;} nan:0x7f_ffff)')
    assert [x.text for x in nodes[0]] == ["func", '$"a b"', "x;y", "{;}", "nan:0x7f_ffff"]


def test_annotations_are_lists() -> None:
    (node,) = parse("((@a x) module (@b (c)) $m)")
    assert isinstance(node, SList)
    assert node[0].is_annotation and node[2].is_annotation
    assert node.keyword == "module"
    assert [getattr(x, "text", None) for x in node.without_annotations()] == ["module", "$m"]


def test_opaque_lists() -> None:
    text = '(module $m (func ";)" (; ) ;) ;; )\n (x)) "s") (invoke "f")'
    module, invoke = parse(text, opaque={"module"})
    assert isinstance(module, SList) and module.head == "module"
    assert isinstance(module[2], Opaque)
    assert module[2].source_text.startswith("(func") and module[2].source_text.endswith("(x))")
    assert module[3].value == b"s"
    assert invoke.head == "invoke" and invoke[1].value == b"f"
    with pytest.raises(WastSyntaxError) as info:
        parse("(module (func (x)", "o.wast", opaque={"module"})
    assert (info.value.line, info.value.col) == (1, 9)


@pytest.mark.parametrize("text, line, col, what", [
    ("(a\n (b)", 1, 1, "unclosed"),
    ("(a)\n  )", 2, 3, "unexpected ')'"),
    ('(a\n  "abc\n")', 2, 3, "unterminated string"),
    ("(a (; x (; y ;) z", 1, 4, "unterminated block comment"),
])
def test_error_positions(text: str, line: int, col: int, what: str) -> None:
    with pytest.raises(WastSyntaxError) as info:
        parse(text, "e.wast")
    assert (info.value.line, info.value.col) == (line, col)
    assert str(info.value).startswith(f"e.wast:{line}:{col}: ")
    assert what in str(info.value)


def test_empty_and_whitespace_only() -> None:
    assert parse("") == []
    assert parse("  \n\t ;; x\n (; y ;)\r\n") == []

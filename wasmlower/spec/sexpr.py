"""A fast reader for the s-expression syntax of WebAssembly text and ``.wast`` scripts.

The reader produces a tree of three node kinds:

* :class:`Atom` -- a keyword, identifier, number or other bare token (``text``);
* :class:`String` -- a string literal; ``value`` is the decoded **bytes**
  (``\\hh`` escapes are raw bytes, everything else is UTF-8);
* :class:`SList` -- a parenthesised list (``items``).  Annotations such as
  ``(@name ...)`` are read as lists whose first atom is ``@name``.

Every node knows its source offsets (``pos``/``end``, ``end`` exclusive) and
its 1-based ``line`` and ``col`` (computed on demand from a shared line table,
which keeps reading fast).  Comments (``;; ...`` and nested ``(; ... ;)``) are
dropped.  Malformed input raises :class:`WastSyntaxError` whose text starts with
``file:line:col``.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Collection, Iterator

from wasmlower.errors import WasmlowerError

__all__ = [
    "Atom",
    "Node",
    "Opaque",
    "SList",
    "Source",
    "String",
    "WastSyntaxError",
    "decode_string",
    "parse",
]


class WastSyntaxError(WasmlowerError, ValueError):
    """The text is not well-formed; ``file``, ``line`` and ``col`` locate the problem."""

    def __init__(self, message: str, file: str = "<string>", line: int = 0, col: int = 0) -> None:
        self.message, self.file, self.line, self.col = message, file, line, col
        super().__init__(f"{file}:{line}:{col}: {message}")


class Source:
    """The text being read, its name and a table of line starts."""

    __slots__ = ("_line_starts", "name", "text")

    def __init__(self, text: str, name: str = "<string>") -> None:
        self.text = text
        self.name = name
        self._line_starts: list[int] | None = None

    def line_col(self, pos: int) -> tuple[int, int]:
        """1-based (line, column) of the character offset ``pos``."""
        starts = self._line_starts
        if starts is None:
            starts = [0]
            starts.extend(m.end() for m in _NEWLINE.finditer(self.text))
            self._line_starts = starts
        index = bisect_right(starts, pos) - 1
        return index + 1, pos - starts[index] + 1

    def error(self, message: str, pos: int) -> WastSyntaxError:
        line, col = self.line_col(pos)
        return WastSyntaxError(message, self.name, line, col)


class Node:
    """Base of the tree nodes: where the node is in its :class:`Source`."""

    __slots__ = ("end", "pos", "src")

    src: Source
    pos: int
    end: int

    @property
    def line(self) -> int:
        return self.src.line_col(self.pos)[0]

    @property
    def col(self) -> int:
        return self.src.line_col(self.pos)[1]

    @property
    def source_text(self) -> str:
        """The exact source text of this node."""
        return self.src.text[self.pos:self.end]

    @property
    def is_annotation(self) -> bool:
        """Is this an annotation list ``(@name ...)``?"""
        return False

    def where(self) -> str:
        line, col = self.src.line_col(self.pos)
        return f"{self.src.name}:{line}:{col}"

    def error(self, message: str) -> WastSyntaxError:
        return self.src.error(message, self.pos)


class Atom(Node):
    """A bare token: keyword, ``$id``, number, ``nan:canonical`` ..."""

    __slots__ = ("text",)

    def __init__(self, src: Source, pos: int, end: int, text: str) -> None:
        self.src, self.pos, self.end, self.text = src, pos, end, text

    def __repr__(self) -> str:
        return f"Atom({self.text!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Atom):
            return self.text == other.text
        if isinstance(other, str):
            return self.text == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.text)


class String(Node):
    """A string literal; ``value`` is its decoded bytes."""

    __slots__ = ("value",)

    def __init__(self, src: Source, pos: int, end: int, value: bytes) -> None:
        self.src, self.pos, self.end, self.value = src, pos, end, value

    def __repr__(self) -> str:
        return f"String({self.value!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, String):
            return self.value == other.value
        if isinstance(other, bytes):
            return self.value == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.value)

    @property
    def text(self) -> str:
        """The value decoded as UTF-8 (raises ``UnicodeDecodeError`` if it is not)."""
        return self.value.decode("utf-8")


class Opaque(Node):
    """A list that was delimited but not read (see the ``opaque`` argument of :func:`parse`)."""

    __slots__ = ()

    def __init__(self, src: Source, pos: int, end: int) -> None:
        self.src, self.pos, self.end = src, pos, end

    def __repr__(self) -> str:
        return f"Opaque({self.source_text[:40]!r})"

    @property
    def is_annotation(self) -> bool:
        return self.src.text.startswith("(@", self.pos)


class SList(Node):
    """A parenthesised list of nodes."""

    __slots__ = ("items",)

    def __init__(self, src: Source, pos: int, end: int, items: list[Node]) -> None:
        self.src, self.pos, self.end, self.items = src, pos, end, items

    def __repr__(self) -> str:
        return f"SList({self.items!r})"

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.items)

    def __getitem__(self, index):  # type: ignore[no-untyped-def]
        return self.items[index]

    @property
    def head(self) -> str | None:
        """The text of the first item if it is an atom (the form's keyword), else None."""
        if self.items:
            first = self.items[0]
            if isinstance(first, Atom):
                return first.text
        return None

    @property
    def is_annotation(self) -> bool:
        items = self.items
        return bool(items) and type(items[0]) is Atom and items[0].text.startswith("@")  # type: ignore[union-attr]

    @property
    def keyword(self) -> str | None:
        """The first atom, skipping leading annotations (``((@a) module ...)`` -> ``module``)."""
        return _keyword(self.items)

    def without_annotations(self) -> list[Node]:
        """The items, annotation lists left out."""
        return [item for item in self.items if not item.is_annotation]


# --------------------------------------------------------------------------- tokenizer

_NEWLINE = re.compile(r"\n")

# One token per match, preceded by optional whitespace and line comments.
# Groups: 1 = "(", 2 = ")", 3 = string, 4 = atom, 5 = "(;" block comment start.
_STRING_BODY = r'"(?:[^"\\\n]++|\\[^\n])*+"'
_TOKEN = re.compile(
    r"(?:[ \t\n\r]++|;;[^\n]*+)*+"
    r"(?:(\((?!;))|(\))|(" + _STRING_BODY + r")"
    r"|((?:[^ \t\n\r()\";]++|;(?!;)|" + _STRING_BODY + r")++)|(\(;))"
)
_SKIP = re.compile(r"(?:[ \t\n\r]++|;;[^\n]*+)*+")
_LIST_BODY = re.compile(r"(?:[^()\";]++|" + _STRING_BODY + r"|;;[^\n]*+|;(?!;))*+")
_BLOCK_DELIM = re.compile(r"\(;|;\)")

_ESCAPE = re.compile(r"\\(?:u\{([0-9a-fA-F_]*)\}|([0-9a-fA-F]{2})|(.))|([^\\]+)", re.DOTALL)
_SIMPLE_ESCAPES = {"n": b"\n", "t": b"\t", "r": b"\r", "\\": b"\\", "'": b"'", '"': b'"'}
_HEX_UNDERSCORED = re.compile(r"[0-9a-fA-F](?:_?[0-9a-fA-F])*\Z")


class _EscapeError(Exception):
    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message, self.offset = message, offset


def _decode_body(body: str) -> bytes:
    """Decode the inside of a string literal (between the quotes) to bytes."""
    if "\\" not in body:
        return body.encode("utf-8")
    out = bytearray()
    for m in _ESCAPE.finditer(body):
        plain = m.group(4)
        if plain is not None:
            out += plain.encode("utf-8")
            continue
        hexcode = m.group(1)
        if hexcode is not None:
            if not _HEX_UNDERSCORED.match(hexcode):
                raise _EscapeError("malformed \\u{...} escape", m.start())
            code = int(hexcode.replace("_", ""), 16)
            if code > 0x10FFFF or 0xD800 <= code < 0xE000:
                raise _EscapeError(f"invalid code point U+{code:X} in \\u escape", m.start())
            out += chr(code).encode("utf-8")
            continue
        raw = m.group(2)
        if raw is not None:
            out.append(int(raw, 16))
            continue
        simple = _SIMPLE_ESCAPES.get(m.group(3))
        if simple is None:
            raise _EscapeError(f"unknown escape sequence \\{m.group(3)}", m.start())
        out += simple
    return bytes(out)


def decode_string(literal: str) -> bytes:
    """Decode a string literal given with its quotes, e.g. ``'"a\\n"'`` -> ``b'a\\n'``."""
    if len(literal) < 2 or literal[0] != '"' or literal[-1] != '"':
        raise WastSyntaxError("not a string literal", "<string>", 1, 1)
    try:
        return _decode_body(literal[1:-1])
    except _EscapeError as e:
        raise WastSyntaxError(e.message, "<string>", 1, e.offset + 2) from None


def _skip_block_comment(src: Source, start: int) -> int:
    """``start`` is at ``(;``; return the offset just past the matching ``;)``."""
    text = src.text
    depth = 0
    for m in _BLOCK_DELIM.finditer(text, start):
        if m.group() == "(;":
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return m.end()
    raise src.error("unterminated block comment", start)


def _bad_token(src: Source, pos: int) -> WastSyntaxError:
    text = src.text
    m = _SKIP.match(text, pos)
    where = m.end() if m else pos
    if where < len(text):
        ch = text[where]
        if ch == '"':
            return src.error("unterminated string (or a line break inside a string)", where)
        return src.error(f"unexpected character {ch!r}", where)
    return src.error("unexpected end of input", where)


def parse(text: str, name: str = "<string>", opaque: Collection[str] = ()) -> list[Node]:
    """Read all top-level nodes of ``text``; ``name`` is used in error messages.

    Inside a list whose keyword is in ``opaque`` (e.g. ``{"module"}``), nested lists
    are not read into nodes but only delimited (balanced parentheses, strings and
    comments respected) and kept as :class:`Opaque` nodes; atoms and strings directly
    in such a list are read as usual.  This makes reading large scripts much faster
    when the caller only needs the source text of those lists.
    """
    src = Source(text, name)
    token_match = _TOKEN.match
    n = len(text)
    top: list[Node] = []
    items = top
    stack: list[tuple[list[Node], int]] = []  # (parent items, position of "(")
    pos = 0
    while True:
        m = token_match(text, pos)
        if m is None:
            tail = _SKIP.match(text, pos)
            if tail is not None and tail.end() >= n:
                break
            raise _bad_token(src, pos)
        if m.lastindex is None:
            # Only whitespace/comments matched: end of input or an unexpected character.
            if m.end() >= n:
                break
            raise _bad_token(src, pos)
        group = m.lastindex
        pos = m.end()
        if group == 4:
            atom_text = m.group(4)
            items.append(Atom(src, m.start(4), pos, atom_text))
        elif group == 1:
            start = m.start(1)
            if opaque and items and _keyword(items) in opaque:
                pos = _skip_list(src, start)
                items.append(Opaque(src, start, pos))
            else:
                stack.append((items, start))
                items = []
        elif group == 2:
            if not stack:
                raise src.error("unexpected ')'", m.start(2))
            parent, start = stack.pop()
            parent.append(SList(src, start, pos, items))
            items = parent
        elif group == 3:
            start = m.start(3)
            try:
                value = _decode_body(m.group(3)[1:-1])
            except _EscapeError as e:
                raise src.error(e.message, start + 1 + e.offset) from None
            items.append(String(src, start, pos, value))
        else:
            pos = _skip_block_comment(src, m.start(5))
    if stack:
        raise src.error("unclosed '('", stack[-1][1])
    return top


def _keyword(items: list[Node]) -> str | None:
    """The first atom of a list's items, skipping annotations; None if there is none."""
    for item in items:
        if type(item) is Atom:
            return item.text
        if not item.is_annotation:
            return None
    return None


def _skip_list(src: Source, start: int) -> int:
    """``start`` is at ``(``; return the offset just past its matching ``)``."""
    text = src.text
    n = len(text)
    body = _LIST_BODY.match
    pos = start + 1
    depth = 1
    while True:
        pos = body(text, pos).end()  # type: ignore[union-attr]
        if pos >= n:
            raise src.error("unclosed '('", start)
        ch = text[pos]
        if ch == "(":
            if text.startswith("(;", pos):
                pos = _skip_block_comment(src, pos)
                continue
            depth += 1
            pos += 1
        elif ch == ")":
            depth -= 1
            pos += 1
            if depth == 0:
                return pos
        else:  # a '"' that does not start a complete string
            raise src.error("unterminated string (or a line break inside a string)", pos)


def iter_lists(node: Node) -> Iterator[SList]:
    """All lists in ``node`` (pre-order), including ``node`` itself if it is a list."""
    todo = [node]
    while todo:
        current = todo.pop()
        if isinstance(current, SList):
            yield current
            todo.extend(reversed(current.items))

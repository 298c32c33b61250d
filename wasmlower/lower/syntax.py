"""Parsing rule files: text -> Lark parse tree -> AST dataclasses with locations.

The grammar is ``rules.lark`` beside this module: one machine-op declaration
or one rule per line.  This module knows nothing about ops, types or
registers; ``check.py`` resolves names against the op table and the ISA.

Every AST node carries the 1-based ``line`` and ``col`` of its first
character, so later stages can point a ``RuleError`` caret at it.  A rule
also keeps the source text of its pattern, guard and result (with line
continuations folded), which the generated matchers quote in comments.

A syntax error becomes a ``RuleError`` listing what was expected, from
Lark's expected terminals, in words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RuleError

GRAMMAR_PATH = Path(__file__).with_name("rules.lark")

# ---------------------------------------------------------------------------
# AST
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PName:
    """A name in a pattern: a variable, a type, or an identifier literal."""
    name: str
    line: int
    col: int


@dataclass(frozen=True)
class PInt:
    value: int
    line: int
    col: int


@dataclass(frozen=True)
class PWild:
    line: int
    col: int


@dataclass(frozen=True)
class PRest:
    """``name...``: binds the remaining variadic arguments (``_...`` ignores them)."""
    name: str
    line: int
    col: int


@dataclass(frozen=True)
class PNode:
    """``(op item...)``; ``commutative`` if written ``(commutative (op ...))``."""
    op: str
    items: tuple[PName | PInt | PWild | PRest | PNode, ...]
    commutative: bool
    line: int
    col: int
    op_line: int
    op_col: int


PItem = PName | PInt | PWild | PRest | PNode


@dataclass(frozen=True)
class EInt:
    value: int
    line: int
    col: int


@dataclass(frozen=True)
class EName:
    name: str
    line: int
    col: int


@dataclass(frozen=True)
class ECall:
    func: str
    args: tuple[Expr, ...]
    line: int
    col: int


@dataclass(frozen=True)
class EBin:
    """Binary operator: ``+ - *``, comparisons, ``and``, ``or``."""
    op: str
    left: Expr
    right: Expr
    line: int
    col: int


@dataclass(frozen=True)
class EUnary:
    """``not x`` or ``-x``."""
    op: str
    operand: Expr
    line: int
    col: int


Expr = EInt | EName | ECall | EBin | EUnary


@dataclass(frozen=True)
class RName:
    name: str
    line: int
    col: int


@dataclass(frozen=True)
class RRest:
    name: str
    line: int
    col: int


@dataclass(frozen=True)
class RImms:
    exprs: tuple[Expr, ...]
    line: int
    col: int


@dataclass(frozen=True)
class RNode:
    op: str
    items: tuple[RName | RRest | RImms | RNode, ...]
    line: int
    col: int
    op_line: int
    op_col: int


@dataclass(frozen=True)
class RuleAst:
    name: str | None
    prio: int
    commutative: bool
    pattern: PNode
    guard: Expr | None
    rhs: RNode | RName
    line: int
    col: int
    pattern_text: str
    guard_text: str | None
    rhs_text: str


@dataclass(frozen=True)
class ClassAst:
    """A register class reference: ``gpr``, ``fixed(rax)`` or ``any(gpr)``."""
    kind: str            # "class", "fixed" or "any"
    name: str            # the class name, or the register name for "fixed"
    line: int
    col: int


@dataclass(frozen=True)
class OperandAst:
    name: str
    cls: ClassAst
    type: str | None     # results only: ``gpr:i64``
    line: int
    col: int


@dataclass(frozen=True)
class NameAst:
    name: str
    line: int
    col: int


@dataclass(frozen=True)
class OpDeclAst:
    name: str
    operands: tuple[OperandAst, ...]
    variadic: str | None             # ``(args...)``: the name
    imms: tuple[OperandAst, ...]     # ``cls.name`` is the immediate kind
    results: tuple[OperandAst, ...]
    variadic_results: str | None     # ``-> (results...)``: the name
    reuse: tuple[NameAst, ...]
    temps: tuple[OperandAst, ...]
    clobbers: tuple[NameAst, ...]
    effects: tuple[NameAst, ...]
    template: str                    # unescaped
    template_raw: str                # as written, without the quotes
    template_line: int
    template_col: int                # column of the first character after the quote
    line: int
    col: int
    name_col: int


@dataclass
class RuleFile:
    """One parsed file: its declarations and rules in order, and its lines."""
    path: str            # the path on disk
    display: str         # the path shown in messages and ``Inst.rule``
    text: str
    decls: list[OpDeclAst]
    rules: list[RuleAst]

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()

    def source_line(self, line: int) -> str | None:
        lines = self.lines
        return lines[line - 1].rstrip() if 0 < line <= len(lines) else None

    def error(self, message: str, line: int, col: int, hint: str | None = None) -> RuleError:
        """A ``RuleError`` located in this file."""
        return RuleError(message, self.display, line, col, self.source_line(line), hint)


# ---------------------------------------------------------------------------
# Parse tree -> AST
# ---------------------------------------------------------------------------

_parser: Any = None


def get_parser() -> Any:
    """The LALR parser for ``rules.lark``, built once per process."""
    global _parser
    if _parser is None:
        import lark
        _parser = lark.Lark(GRAMMAR_PATH.read_text(), parser="lalr", lexer="contextual",
                            propagate_positions=True, maybe_placeholders=False,
                            cache=True)
    return _parser


_CONT = re.compile(r"\\[ \t]*\r?\n")


def _fold(text: str) -> str:
    """Source text of one construct on one line: continuations folded, spaces collapsed."""
    return re.sub(r"\s+", " ", _CONT.sub(" ", text)).strip()


def _unescape(raw: str) -> str:
    out, i = [], 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\" and i + 1 < len(raw):
            nxt = raw[i + 1]
            out.append({"n": "\n", "t": "\t", "\\": "\\", '"': '"'}.get(nxt, "\\" + nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


class _Builder:
    """Turns a Lark tree into AST nodes (a hand-written visitor; no Transformer magic)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def slice(self, node: Any) -> str:
        return _fold(self.text[node.meta.start_pos:node.meta.end_pos])

    # -- helpers -------------------------------------------------------------
    @staticmethod
    def _tokens(node: Any, type_: str) -> list[Any]:
        return [c for c in node.children if getattr(c, "type", None) == type_]

    @staticmethod
    def _trees(node: Any, data: str | None = None) -> list[Any]:
        return [c for c in node.children
                if hasattr(c, "data") and (data is None or c.data == data)]

    # -- declarations --------------------------------------------------------
    def cls(self, node: Any) -> ClassAst:
        kind = {"cls_name": "class", "cls_fixed": "fixed", "cls_any": "any"}[node.data]
        tok = self._tokens(node, "NAME")[0]
        return ClassAst(kind, str(tok), node.meta.line, node.meta.column)

    def operand(self, node: Any) -> OperandAst:
        name = self._tokens(node, "NAME")[0]
        cls = self.cls(self._trees(node)[0])
        return OperandAst(str(name), cls, None, name.line, name.column)

    def result(self, node: Any) -> OperandAst:
        cls = self.cls(self._trees(node)[0])
        types = self._tokens(node, "NAME")
        return OperandAst("", cls, str(types[0]) if types else None,
                          node.meta.line, node.meta.column)

    def opdecl(self, node: Any) -> OpDeclAst:
        name = node.children[0]
        operands: tuple[OperandAst, ...] = ()
        variadic = None
        imms: tuple[OperandAst, ...] = ()
        results: tuple[OperandAst, ...] = ()
        variadic_results = None
        reuse, temps, clobbers, effects = [], [], [], []
        seen_arrow = False
        template = None
        for c in node.children[1:]:
            data = getattr(c, "data", None)
            if data == "operands":
                operands = tuple(self.operand(o) for o in self._trees(c, "operand"))
            elif data == "var_operands":
                variadic = str(self._tokens(c, "NAME")[0])
            elif data == "imms":
                imms = tuple(
                    OperandAst(str(i.children[0]),
                               ClassAst("kind", str(i.children[2]), i.children[2].line,
                                        i.children[2].column),
                               None, i.children[0].line, i.children[0].column)
                    for i in self._trees(c, "immdecl"))
            elif data == "one_result":
                results = (self.result(self._trees(c, "result")[0]),)
            elif data == "result_tuple":
                results = tuple(self.result(r) for r in self._trees(c, "result"))
            elif data == "var_results":
                variadic_results = str(self._tokens(c, "NAME")[0])
            elif data == "flag_reuse":
                tok = self._tokens(c, "NAME")[0]
                reuse.append(NameAst(str(tok), tok.line, tok.column))
            elif data == "flag_temp":
                temps.extend(self.operand(o) for o in self._trees(c, "operand"))
            elif data == "flag_clobber":
                clobbers.extend(NameAst(str(t), t.line, t.column)
                                for t in self._tokens(c, "NAME"))
            elif data == "flag_effect":
                tok = c.children[0]
                effects.append(NameAst(str(tok), tok.line, tok.column))
            elif getattr(c, "type", None) == "ARROW":
                seen_arrow = True
            elif getattr(c, "type", None) == "STRING":
                template = c
        assert seen_arrow and template is not None
        raw = str(template)[1:-1]
        return OpDeclAst(str(name), operands, variadic, imms, results, variadic_results,
                         tuple(reuse), tuple(temps), tuple(clobbers), tuple(effects),
                         _unescape(raw), raw, template.line, template.column + 1,
                         node.meta.line, node.meta.column, name.column)

    # -- patterns ------------------------------------------------------------
    def pattern(self, node: Any) -> PNode:
        if node.data == "comm_pattern":
            inner = self.pattern(self._trees(node)[0])
            return PNode(inner.op, inner.items, True, node.meta.line, node.meta.column,
                         inner.op_line, inner.op_col)
        op = node.children[1]
        items = tuple(self.patitem(c) for c in node.children[2:-1])
        return PNode(str(op), items, False, node.meta.line, node.meta.column,
                     op.line, op.column)

    def patitem(self, node: Any) -> PItem:
        data = node.data
        if data in ("pattern", "comm_pattern"):
            return self.pattern(node)
        tok = node.children[-1] if data != "p_rest" else node.children[0]
        line, col = node.meta.line, node.meta.column
        if data == "p_name":
            return PName(str(tok), line, col)
        if data == "p_int":
            value = int(str(tok), 0)
            return PInt(-value if len(node.children) == 2 else value, line, col)
        if data == "p_wild":
            return PWild(line, col)
        assert data == "p_rest"
        return PRest(str(tok), line, col)

    # -- expressions ---------------------------------------------------------
    def expr(self, node: Any) -> Expr:
        data = node.data
        line, col = node.meta.line, node.meta.column
        ch = node.children
        if data == "e_int":
            return EInt(int(str(ch[0]), 0), line, col)
        if data == "e_name":
            return EName(str(ch[0]), line, col)
        if data == "e_call":
            args = tuple(self.expr(c) for c in ch if hasattr(c, "data"))
            return ECall(str(ch[0]), args, line, col)
        if data in ("e_or", "e_and"):
            return EBin(data[2:], self.expr(ch[0]), self.expr(ch[-1]), line, col)
        if data in ("e_cmp", "e_bin"):
            return EBin(str(ch[1]), self.expr(ch[0]), self.expr(ch[2]), line, col)
        if data == "e_not":
            return EUnary("not", self.expr(ch[-1]), line, col)
        if data == "e_neg":
            return EUnary("-", self.expr(ch[-1]), line, col)
        raise AssertionError(data)

    # -- right-hand sides ----------------------------------------------------
    def rhs(self, node: Any) -> RNode | RName:
        if node.data == "rhs_var":
            tok = node.children[0]
            return RName(str(tok), tok.line, tok.column)
        return self.rexpr(node)

    def rexpr(self, node: Any) -> RNode:
        op = node.children[1]
        items: list[RName | RRest | RImms | RNode] = []
        for c in node.children[2:-1]:
            line, col = c.meta.line, c.meta.column
            if c.data == "r_name":
                items.append(RName(str(c.children[0]), line, col))
            elif c.data == "r_rest":
                items.append(RRest(str(c.children[0]), line, col))
            elif c.data == "r_imms":
                items.append(RImms(tuple(self.expr(e) for e in c.children
                                         if hasattr(e, "data")), line, col))
            else:
                items.append(self.rexpr(c))
        return RNode(str(op), tuple(items), node.meta.line, node.meta.column,
                     op.line, op.column)

    def rule(self, node: Any) -> RuleAst:
        name = None
        prio = 0
        commutative = False
        pattern = guard = rhs = None
        guard_text = None
        for c in node.children:
            data = getattr(c, "data", None)
            if data is None:
                if c.type == "NAME":
                    name = str(c)
                continue
            if data == "mod_prio":
                value = int(str(c.children[-1]), 0)
                prio = -value if len(c.children) == 2 else value
            elif data == "mod_comm":
                commutative = True
            elif data in ("pattern", "comm_pattern"):
                pattern = c
            elif data == "guard":
                guard = self.expr(c.children[0])
                guard_text = self.slice(c)[2:].strip()
            else:
                rhs = c
        assert pattern is not None and rhs is not None
        return RuleAst(name, prio, commutative, self.pattern(pattern), guard, self.rhs(rhs),
                       node.meta.line, node.meta.column, self.slice(pattern), guard_text,
                       self.slice(rhs) if hasattr(rhs.meta, "start_pos") else "")


def parse_text(text: str, path: str = "<rules>", display: str | None = None) -> RuleFile:
    """Parse the text of one rule file; raise ``RuleError`` on a syntax error."""
    import lark

    display = display or path
    source = text if text.endswith("\n") else text + "\n"
    rf = RuleFile(path, display, text, [], [])
    try:
        tree = get_parser().parse(source)
    except lark.exceptions.UnexpectedInput as e:
        raise _syntax_error(e, rf) from None
    b = _Builder(source)
    for item in tree.children:
        if item.data == "opdecl":
            rf.decls.append(b.opdecl(item))
        else:
            rf.rules.append(b.rule(item))
    return rf


def parse_file(path: str | Path, display: str | None = None) -> RuleFile:
    """Parse one rule file from disk."""
    p = Path(path)
    return parse_text(p.read_text(), str(p), display or str(p))


# ---------------------------------------------------------------------------
# Syntax errors in words
# ---------------------------------------------------------------------------

_WORDS = {
    "NAME": "a name", "INT": "an integer", "STRING": "a template string",
    "CMPOP": "a comparison", "EFFECT": "an effect", "_NL": "end of line",
    "$END": "end of file", "WILD": "`_`",
}
# Order of expected things in messages: names and brackets first.
_ORDER = ["NAME", "INT", "WILD", "LPAR", "RPAR", "LSQB", "RSQB", "ELLIPSIS", "COMMA", "COLON",
          "ARROW", "FATARROW", "STRING", "EFFECT", "CMPOP", "PLUS", "MINUS", "STAR", "_NL"]


def _term_words(name: str) -> str:
    if name in _WORDS:
        return _WORDS[name]
    parser = get_parser()
    for t in parser.terminals:
        if t.name == name and t.pattern.type == "str":
            return f"`{t.pattern.value}`"
    return name.lower()


def _expected_words(names: set[str]) -> str:
    ranked = sorted(names, key=lambda n: (_ORDER.index(n) if n in _ORDER else len(_ORDER), n))
    words = list(dict.fromkeys(_term_words(n) for n in ranked))
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _syntax_error(e: Any, rf: RuleFile) -> RuleError:
    import lark

    line, col = e.line, e.column
    if isinstance(e, lark.exceptions.UnexpectedToken):
        tok = e.token
        if tok.type in ("_NL", "$END"):
            found = _WORDS[tok.type]
        else:
            found = f"`{tok}`"
        expected = set(e.expected)
        ip = getattr(e, "interactive_parser", None)
        if ip is not None:
            # The parser state's own choices: the lexer folds keyword-like
            # terminals such as `_` into NAME, so e.expected can miss them.
            expected = {t for t in ip.choices() if t.isupper()} or expected
        if tok.type == "$END":
            lines = rf.lines
            line = len(lines) or 1
            col = len(lines[-1]) + 1 if lines else 1
        elif tok.type == "_NL":
            # Point just past the end of the line's text.
            src = rf.source_line(line) or ""
            col = len(src.split("#", 1)[0].rstrip()) + 1
    else:
        found = f"`{e.char}`"
        expected = set(getattr(e, "allowed", None) or ())
    message = "syntax error: "
    message += (f"expected {_expected_words(expected)}, found {found}" if expected
                else f"unexpected {found}")
    src = (rf.source_line(line) or "").lstrip()
    if found == "end of line":
        hint = "one rule or declaration per line; end a line with `\\` to continue it"
    elif src.startswith("op ") or src == "op":
        hint = 'a declaration reads: op NAME (OPERANDS) [IMMS] -> RESULTS FLAGS "TEMPLATE"'
    else:
        hint = ("a rule reads: [NAME:] [prio N] [commutative] (OP [TYPE] IMM* ARG*) "
                "[if GUARD] => RESULT")
    return rf.error(message, line, col, hint)

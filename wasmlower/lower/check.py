"""Resolving and checking rules: names, arity and types; overlap, shadowing, coverage.

Two stages live here.

``Resolver`` turns a parsed rule (``syntax.RuleAst``) into a resolved
``Rule``: the pattern's op is looked up in ``wasmlower.ir.OPS``; its items are
split into the optional controlling type, the immediates (in ``OpInfo.imms``
order) and the arguments; names become variables or identifier literals;
``commutative`` is expanded into pattern *variants*; the result is checked
against the machine-op declarations (lowering) or the op table (rewrites).
Every problem is a ``RuleError`` at ``file:line:col`` with the offending line
and a hint.

``check_rules``/``check_isa`` then look at a whole rule set: pairwise
overlap of equal-priority rules (by unification), rules shadowed by an
unguarded higher-priority rule (by one-way matching), coverage holes for the
(op, type) pairs the frontend produces, unused machine ops and rules that
can never fire.  They return a ``Report``.

The *controlling type* of an instruction is the type of its first result for
ops whose result type is ``same``/``ctrl``; otherwise the type of its
controlling argument (the first ``T`` argument, the stored value of
``store``, else argument 0); ``None`` for ops with neither.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import TYPE_CHECKING

from ..errors import CompileError, RuleError
from ..ir.function import Inst
from ..ir.ops import OPS, TRAP_MESSAGES, OpInfo
from ..ir.types import F32, F64, I32, I64, Type
from .decl import FLAGS, TYPE_NAMES, MachineOpDecl, class_holds
from .syntax import (
    EBin,
    ECall,
    EName,
    EUnary,
    Expr,
    PInt,
    PName,
    PNode,
    PRest,
    PWild,
    RImms,
    RName,
    RNode,
    RRest,
    RuleAst,
    RuleFile,
)

if TYPE_CHECKING:
    from .isa import Isa, RuleSet

ALL_TYPES: frozenset[Type] = frozenset({I32, I64, F32, F64})
INT_TYPES: frozenset[Type] = frozenset({I32, I64})
FLOAT_TYPES: frozenset[Type] = frozenset({F32, F64})
TYPE_ORDER = {I32: 0, I64: 1, F32: 2, F64: 3}

ICMP_CC = ("eq", "ne", "slt", "sle", "sgt", "sge", "ult", "ule", "ugt", "uge")
FCMP_CC = ("eq", "ne", "lt", "le", "gt", "ge")
LOAD_KINDS = {I32: ("i32", "i8s", "i8u", "i16s", "i16u"),
              I64: ("i64", "i8s", "i8u", "i16s", "i16u", "i32s", "i32u"),
              F32: ("f32",), F64: ("f64",)}
STORE_KINDS = {I32: ("i32", "i8", "i16"), I64: ("i64", "i8", "i16", "i32"),
               F32: ("f32",), F64: ("f64",)}
TRAP_CODES = tuple(TRAP_MESSAGES)
ANY_NAME = frozenset({"*"})      # vocabulary marker: every identifier is a literal

# Controlling types of ops whose result type is given in the text (``ctrl``)
# but which accept only some types.  Other ``ctrl`` ops take any type.
_CTRL_TYPES: dict[str, frozenset[Type]] = {
    "iconst": INT_TYPES, "fconst": FLOAT_TYPES,
    "sextend": frozenset({I64}), "uextend": frozenset({I64}), "ireduce": frozenset({I32}),
    "fpromote": frozenset({F64}), "fdemote": frozenset({F32}),
    "fcvt_to_sint": INT_TYPES, "fcvt_to_uint": INT_TYPES,
    "fcvt_to_sint_sat": INT_TYPES, "fcvt_to_uint_sat": INT_TYPES,
    "fcvt_from_sint": FLOAT_TYPES, "fcvt_from_uint": FLOAT_TYPES,
}
# Ops the driver leaves alone when no rule matches them.
PASSTHROUGH = frozenset({"jump"})


# ---------------------------------------------------------------------------
# Facts about generic ops
# ---------------------------------------------------------------------------

def _code_types(code: str) -> frozenset[Type]:
    if code == "int":
        return INT_TYPES
    if code == "float":
        return FLOAT_TYPES
    if code in TYPE_NAMES:
        return frozenset({TYPE_NAMES[code]})
    return ALL_TYPES


def arg_codes(info: OpInfo, n: int | None = None) -> list[str]:
    """The type codes of ``info``'s arguments (variadic ops: expanded to ``n``)."""
    codes = list(info.args)
    if info.variadic:
        fixed, rep = codes[:-2], codes[-2]
        return fixed + [rep] * max((n or len(fixed)) - len(fixed), 0)
    return codes


def fixed_arg_count(info: OpInfo) -> int:
    return len(info.args) - 2 if info.variadic else len(info.args)


def variable_results(op: str) -> bool:
    """Does the number of results of ``op`` vary (calls: variadic, result type given)?"""
    info = OPS[op]
    return info.result == "ctrl" and info.variadic


def ctrl_arg(op: str) -> int | None:
    """Index of the argument giving the controlling type, if the result does not.

    Argument 0 if some argument has type ``T`` (as in ``icmp``: ``T`` is the
    first argument's type), else the first ``any`` argument (the stored value
    of ``store``), else argument 0.
    """
    info = OPS[op]
    if info.result in ("same", "ctrl"):
        return None
    codes = [c for c in info.args if c != "*"]
    if "T" in codes:
        return 0
    return codes.index("any") if "any" in codes else (0 if codes else None)


def allowed_types(op: str) -> frozenset[Type | None]:
    """The controlling types an instruction of generic ``op`` can have (``None``: untyped)."""
    info = OPS[op]
    if op in _CTRL_TYPES:
        return frozenset(_CTRL_TYPES[op])
    if info.result == "same":
        return frozenset(_code_types(info.args[0]))
    if info.result == "ctrl":
        extra: set[Type | None] = {None} if variable_results(op) else set()
        return frozenset(ALL_TYPES | extra)
    k = ctrl_arg(op)
    if k is not None:
        types: set[Type | None] = set(_code_types(info.args[k]))
        if info.variadic and k >= fixed_arg_count(info):
            types.add(None)
        return frozenset(types)
    if info.result:
        return frozenset(TYPE_NAMES[t] for t in info.result[:1])
    return frozenset({None})


def arg_types(op: str, index: int, ctrls: frozenset[Type] | None,
              n: int | None = None) -> frozenset[Type]:
    """The types argument ``index`` of ``op`` can have when the controlling type is in ``ctrls``."""
    info = OPS[op]
    codes = arg_codes(info, max(n or 0, index + 1))
    code = codes[index]
    types = _code_types(code) if code != "T" else (
        frozenset(t for t in allowed_types(op) if t is not None))
    tied = code == "T" or index == ctrl_arg(op) or (info.result == "same" and index == 0)
    if ctrls is not None and tied:
        types = types & ctrls
    return types


def kind_types(op: str, kind: object) -> frozenset[Type] | None:
    """The controlling types a ``load``/``store`` of ``kind`` can have (None: any)."""
    table = LOAD_KINDS if op == "load" else STORE_KINDS if op == "store" else None
    if table is None or not isinstance(kind, str):
        return None
    return frozenset(t for t, kinds in table.items() if kind in kinds)


def result_count(op: str) -> int | None:
    """How many results an instruction of ``op`` has (``None``: it varies)."""
    info = OPS[op]
    if variable_results(op) or (info.dialect and info.decl is not None
                                and getattr(info.decl, "variadic_results", False)):
        return None
    if info.result in ("same", "ctrl"):
        return 1
    return len(info.result)


def result_types(op: str, ctrl: Type | None, index: int = 0) -> frozenset[Type]:
    """The types result ``index`` of ``op`` can have when the controlling type is ``ctrl``."""
    info = OPS[op]
    if info.result in ("same", "ctrl"):
        if ctrl is not None:
            return frozenset({ctrl})
        return frozenset(t for t in allowed_types(op) if t is not None)
    if index < len(info.result):
        return frozenset({TYPE_NAMES[info.result[index]]})
    return frozenset()


def ctrl_type(inst: Inst) -> Type | None:
    """The controlling type of ``inst`` (see the module docstring)."""
    info = inst.info
    if info.result in ("same", "ctrl"):
        return inst.results[0].type if inst.results else None
    k = ctrl_arg(inst.op) if not info.dialect else 0
    if k is not None and k < len(inst.args):
        return inst.args[k].type
    return inst.results[0].type if inst.results else None


def ctrl_type_src(op: str, var: str) -> str:
    """Python source computing the controlling type of ``var``, an instruction of ``op``."""
    info = OPS[op]
    if info.result in ("same", "ctrl"):
        if variable_results(op):
            return f"({var}.results[0].type if {var}.results else None)"
        return f"{var}.results[0].type"
    k = ctrl_arg(op)
    if k is not None:
        if info.variadic and k >= fixed_arg_count(info):
            return f"({var}.args[{k}].type if len({var}.args) > {k} else None)"
        return f"{var}.args[{k}].type"
    if info.result:
        return f"{var}.results[0].type"
    return "None"


def imm_vocab(op: str, index: int) -> frozenset[str]:
    """Identifiers that are literals (not variables) at immediate ``index`` of generic ``op``."""
    name = OPS[op].imms[index]
    if op == "icmp" and name == "cc":
        return frozenset(ICMP_CC)
    if op == "fcmp" and name == "cc":
        return frozenset(FCMP_CC)
    if op == "load" and name == "kind":
        return frozenset(k for ks in LOAD_KINDS.values() for k in ks)
    if op == "store" and name == "kind":
        return frozenset(k for ks in STORE_KINDS.values() for k in ks)
    if name == "code":
        return frozenset(TRAP_CODES)
    if name == "name":
        return ANY_NAME
    return frozenset()


def imm_domain(op: str, index: int, ctrl: Type | None) -> tuple[str, ...] | None:
    """The finite set of values immediate ``index`` can take, or ``None`` if unbounded."""
    name = OPS[op].imms[index]
    if op == "icmp" and name == "cc":
        return ICMP_CC
    if op == "fcmp" and name == "cc":
        return FCMP_CC
    if op == "load" and name == "kind":
        return LOAD_KINDS.get(ctrl) if ctrl is not None else None
    if op == "store" and name == "kind":
        return STORE_KINDS.get(ctrl) if ctrl is not None else None
    if name == "code":
        return TRAP_CODES
    if op == "sext_in" and name == "bits":
        return (8, 16) if ctrl is Type.I32 else (8, 16, 32)
    return None


def machine_imm_vocab(kind: str) -> frozenset[str]:
    """Identifiers that are literals in a machine op's immediate of ``kind``."""
    if kind in ("i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "bits"):
        return frozenset()
    if kind == "cc":
        return frozenset(ICMP_CC + FCMP_CC)
    if kind == "trap":
        return frozenset(TRAP_CODES)
    return ANY_NAME


def signature(op: str) -> str:
    """``(icmp T cc x y)``: how a pattern of ``op`` is written."""
    info = OPS[op]
    parts = [op]
    if allowed_types(op) != {None}:
        parts.append("T")
    parts.extend(info.imms)
    names = "xyzw"
    nfixed = fixed_arg_count(info)
    parts.extend(names[i] if i < 4 else f"x{i}" for i in range(nfixed))
    if info.variadic:
        parts.append("args...")
    return "(" + " ".join(parts) + ")"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _arity_text(op: str) -> str:
    info = OPS[op]
    nimm, nargs = len(info.imms), fixed_arg_count(info)
    args = "any number of arguments" if info.variadic and not nargs else _plural(nargs, "argument")
    if info.variadic and nargs:
        args = f"{nargs} or more arguments"
    if nimm and (nargs or info.variadic):
        return f"{op} takes {_plural(nimm, 'immediate')} and {args}: {signature(op)}"
    if nimm:
        return f"{op} takes {_plural(nimm, 'immediate')}: {signature(op)}"
    return f"{op} takes {args}: {signature(op)}"


def near(name: str, options: Iterable[str]) -> str | None:
    """``did you mean `x`?`` for the closest names, or None."""
    close = difflib.get_close_matches(name, sorted(options), n=3, cutoff=0.6)
    if not close:
        return None
    quoted = [f"`{c}`" for c in close]
    return "did you mean " + (" or ".join(quoted) if len(quoted) < 3
                              else ", ".join(quoted[:-1]) + " or " + quoted[-1]) + "?"


def _types_text(types: Iterable[Type | None]) -> str:
    names = [str(t) for t in sorted((t for t in types if t is not None), key=TYPE_ORDER.get)]
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " or " + names[-1]


# ---------------------------------------------------------------------------
# Resolved rules
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Var:
    name: str


@dataclass(frozen=True)
class Wild:
    pass


@dataclass(frozen=True)
class Lit:
    value: int | str


WILD = Wild()
Slot = Var | Wild | Lit


@dataclass(frozen=True)
class Pat:
    """A resolved pattern node.  ``rest`` names the variadic tail (``"_"``: ignored)."""
    op: str
    type: Type | None
    imms: tuple[Slot, ...]
    args: tuple[Slot | Pat, ...]
    rest: str | None = None
    commutative: bool = False
    line: int = field(default=0, compare=False)
    col: int = field(default=0, compare=False)

    def show(self) -> str:
        parts = [self.op] + ([str(self.type)] if self.type else [])
        parts += [show_slot(s) for s in self.imms] + [show_slot(a) for a in self.args]
        if self.rest is not None:
            parts.append(f"{self.rest}...")
        return "(" + " ".join(parts) + ")"


def show_slot(s: Slot | Pat) -> str:
    if isinstance(s, Pat):
        return s.show()
    if isinstance(s, Var):
        return s.name
    if isinstance(s, Lit):
        return str(s.value)
    return "_"


@dataclass(frozen=True)
class VarInfo:
    kind: str                   # "value", "imm" or "values" (a variadic tail)
    types: frozenset[Type]      # values: the types it can have
    line: int
    col: int


@dataclass(frozen=True)
class RUse:
    """A bound value variable used in a result."""
    name: str


@dataclass(frozen=True)
class RSplice:
    """``name...``: the values of a variadic tail."""
    name: str


# A result type: ("const", Type) | ("var", name) | ("orig", index) | ("tmp", index)
TypeExpr = tuple


@dataclass(frozen=True)
class ROp:
    """One op of a rule's result.  ``tmp`` numbers nested ops in evaluation order."""
    op: str                         # the name in OPS ("x64.add32" or "iadd")
    args: tuple[RUse | RSplice | ROp, ...]
    imms: tuple[Expr, ...]
    type: TypeExpr | None           # nested ops: the type of the value made
    tmp: int | None                 # nested ops: index of the value; None for the top op
    line: int = field(default=0, compare=False)
    col: int = field(default=0, compare=False)


@dataclass(eq=False)
class Rule:
    """A resolved rule.  ``variants`` are its commutative expansions, tried in order."""
    index: int
    file: RuleFile
    ast: RuleAst
    label: str                      # "file:line" or "file:line name"
    prio: int
    pattern: Pat
    variants: tuple[Pat, ...]
    guard: Expr | None
    rhs: ROp | RUse
    vars: dict[str, VarInfo]
    ops_used: frozenset[str]
    never: bool = False             # the checker proved it can never fire (a warning)

    @property
    def loc(self) -> str:
        return f"{self.file.display}:{self.ast.line}"

    @property
    def op(self) -> str:
        return self.pattern.op

    def error(self, message: str, hint: str | None = None) -> RuleError:
        return self.file.error(message, self.ast.line, self.ast.col, hint)


# ---------------------------------------------------------------------------
# The resolver
# ---------------------------------------------------------------------------

class Resolver:
    """Resolves parsed rules of one rule set.

    ``kind`` is ``"lower"`` (results are machine ops from ``decls``) or
    ``"rewrite"`` (results are generic ops).  Problems that make a rule
    wrong raise ``RuleError``; problems that make it useless (it can never
    fire) go to ``warnings``.
    """

    def __init__(self, kind: str, isa: str, decls: Mapping[str, MachineOpDecl],
                 preds: ModuleType | None, float_classes: frozenset[str],
                 preds_label: str | None = None) -> None:
        self.kind, self.isa, self.decls, self.preds = kind, isa, decls, preds
        self.preds_label = preds_label or (preds.__name__ if preds is not None
                                           else "no predicate module")
        self.float_classes = float_classes
        self.warnings: list[RuleError] = []
        self.broken: frozenset[str] = frozenset()   # declared ops whose declaration failed
        self.pred_names = frozenset(
            n for n in dir(preds) if not n.startswith("_") and callable(getattr(preds, n))
        ) if preds is not None else frozenset()
        self._generic = sorted(n for n, i in OPS.items() if not i.dialect)

    # -- entry ---------------------------------------------------------------
    def rule(self, rf: RuleFile, ast: RuleAst, index: int) -> Rule:
        self.rf, self.ast = rf, ast
        self.vars: dict[str, VarInfo] = {}
        self.ntmp = 0
        self.ops_used: set[str] = set()
        self._warned = False
        self.top_ctrls: frozenset[Type] | None = None
        pattern = self.pat(ast.pattern, None)
        if ast.commutative:
            self.need_commutative(pattern.op, ast.pattern)
            pattern = replace(pattern, commutative=True)
        if ast.guard is not None:
            self.guard(ast.guard)
        if isinstance(ast.rhs, RName):
            rhs: ROp | RUse = self.bare(ast.rhs, pattern)
        else:
            rhs = self.top(ast.rhs, pattern)
        label = f"{rf.display}:{ast.line}" + (f" {ast.name}" if ast.name else "")
        return Rule(index, rf, ast, label, ast.prio, pattern, tuple(expand(pattern)), ast.guard,
                    rhs, self.vars, frozenset(self.ops_used), self._warned)

    def fail(self, message: str, line: int, col: int, hint: str | None = None) -> RuleError:
        return self.rf.error(message, line, col, hint)

    def never(self, message: str, line: int, col: int, hint: str | None = None) -> None:
        if not self._warned:
            self._warned = True
            self.warnings.append(self.fail(f"rule can never fire: {message}", line, col, hint))

    def need_commutative(self, op: str, node: PNode) -> None:
        if not OPS[op].commutative:
            raise self.fail(f"`{op}` is not commutative", node.line, node.col,
                            "`commutative` swaps the two arguments of a commutative op only")

    # -- patterns ------------------------------------------------------------
    def pat(self, node: PNode, expected: frozenset[Type] | None) -> Pat:
        info = OPS.get(node.op)
        if info is None or info.dialect:
            raise self.fail(f"unknown generic op `{node.op}`", node.op_line, node.op_col,
                            near(node.op, self._generic)
                            or "patterns match generic ops of wasmlower.ir.OPS")
        op = node.op
        items = list(node.items)
        nimm, nfixed = len(info.imms), fixed_arg_count(info)
        n = nimm + nfixed
        first = items[0] if items else None
        has_type = (isinstance(first, PName) and first.name in TYPE_NAMES
                    and (info.variadic or len(items) == n + 1))
        type_: Type | None = None
        if has_type:
            assert isinstance(first, PName)
            type_ = TYPE_NAMES[first.name]
            items = items[1:]
        rest = None
        if items and isinstance(items[-1], PRest):
            tail = items.pop()
            assert isinstance(tail, PRest)
            if not info.variadic:
                raise self.fail(f"`{tail.name}...` needs a variadic op; {_arity_text(op)}",
                                tail.line, tail.col)
            rest = tail.name
        for it in items:
            if isinstance(it, PRest):
                raise self.fail(f"`{it.name}...` must be the last argument", it.line, it.col)
        if len(items) != n and not (info.variadic and len(items) >= n):
            raise self.fail(_arity_text(op), node.line, node.col,
                            f"found {len(items)} after the op name; the type, if written, "
                            "comes first, then immediates, then arguments")
        if type_ is not None and type_ not in allowed_types(op):
            assert isinstance(first, PName)
            ok = allowed_types(op) - {None}
            ok_types = sorted((t for t in ok if t is not None), key=TYPE_ORDER.get)
            raise self.fail(f"type mismatch: {op} does not take {type_}"
                            + (f" (it takes {_types_text(ok)})" if ok else " (it has no type)"),
                            first.line, first.col,
                            f"write ({op} {ok_types[0]} ...)" if ok_types
                            else f"write ({op} ...) without a type")
        if node.commutative:
            self.need_commutative(op, node)
        # The controlling types this node can have, as far as the pattern and context say.
        ctrls = frozenset({type_}) if type_ is not None else frozenset(
            t for t in allowed_types(op) if t is not None)
        if expected is not None and info.result in ("same", "ctrl"):
            ctrls = ctrls & expected
        imms = tuple(self.imm_slot(op, j, it) for j, it in enumerate(items[:nimm]))
        if "kind" in info.imms:
            kind = imms[info.imms.index("kind")]
            narrowed = kind_types(op, kind.value) if isinstance(kind, Lit) else None
            if narrowed is not None:
                ctrls = ctrls & narrowed
        if expected is not None:
            self.check_nested(node, info, type_, expected)
        nargs = len(items) - nimm
        args = tuple(self.arg_slot(it, arg_types(op, i, ctrls, nargs))
                     for i, it in enumerate(items[nimm:]))
        if rest is not None and rest != "_":
            self.bind(rest, "values", ALL_TYPES, node.line, node.col)
        if expected is None:
            self.top_ctrls = ctrls
        return Pat(op, type_, imms, args, rest, node.commutative, node.line, node.col)

    def check_nested(self, node: PNode, info: OpInfo, ctrl: Type | None,
                     expected: frozenset[Type]) -> None:
        op = node.op
        if info.effects:
            effects = ", ".join(sorted(info.effects))
            self.never(f"the matcher does not look through `{op}` (it has effects: {effects})",
                       node.line, node.col,
                       "bind its result to a variable; folding ops with effects needs "
                       "instruction colors, which are not implemented")
        elif result_count(op) != 1:
            self.never(f"`{op}` does not define exactly one value", node.line, node.col)
        elif not (result_types(op, ctrl) & expected):
            shown = f"({op} {ctrl} ...)" if ctrl else f"({op} ...)"
            self.never(f"{shown} has type "
                       f"{_types_text(result_types(op, ctrl))}, but the argument here is "
                       f"{_types_text(expected)}", node.line, node.col)

    def imm_slot(self, op: str, index: int, it: object) -> Slot:
        if isinstance(it, PInt):
            return Lit(it.value)
        if isinstance(it, PWild):
            return WILD
        if isinstance(it, PName):
            vocab = imm_vocab(op, index)
            if it.name in vocab:
                return Lit(it.name)
            if it.name in TYPE_NAMES:
                raise self.fail(f"`{it.name}` is a type, not an immediate", it.line, it.col,
                                "the type comes right after the op name")
            self.bind(it.name, "imm", ALL_TYPES, it.line, it.col)
            return Var(it.name)
        assert isinstance(it, PNode)
        raise self.fail(f"immediate `{OPS[op].imms[index]}` of {op} cannot be a pattern",
                        it.line, it.col, f"{_arity_text(op)}")

    def arg_slot(self, it: object, types: frozenset[Type]) -> Slot | Pat:
        if isinstance(it, PWild):
            return WILD
        if isinstance(it, PName):
            if it.name in TYPE_NAMES:
                raise self.fail(f"`{it.name}` is a type, not a variable", it.line, it.col,
                                "the type comes right after the op name: (iadd i32 x y)")
            self.bind(it.name, "value", types, it.line, it.col)
            return Var(it.name)
        if isinstance(it, PInt):
            raise self.fail("an argument cannot be an integer", it.line, it.col,
                            f"match a constant with (iconst {it.value})")
        assert isinstance(it, PNode)
        return self.pat(it, types)

    def bind(self, name: str, kind: str, types: frozenset[Type], line: int, col: int) -> None:
        old = self.vars.get(name)
        if old is None:
            self.vars[name] = VarInfo(kind, types, line, col)
            return
        if old.kind != kind:
            what = {"value": "a value", "imm": "an immediate", "values": "a variadic tail"}
            raise self.fail(f"`{name}` is bound both as {what[old.kind]} and as {what[kind]}",
                            line, col, "use another name for one of them")
        both = old.types & types
        if not both and kind == "value":
            self.never(f"`{name}` would need to be {_types_text(old.types)} and "
                       f"{_types_text(types)} at once", line, col)
        self.vars[name] = replace(old, types=both)

    # -- guards and immediate expressions ------------------------------------
    def guard(self, e: Expr) -> None:
        if isinstance(e, EName):
            self.need_var(e.name, e.line, e.col)
        elif isinstance(e, ECall):
            self.need_pred(e)
            for a in e.args:
                self.guard(a)
        elif isinstance(e, EBin):
            self.guard(e.left)
            self.guard(e.right)
        elif isinstance(e, EUnary):
            self.guard(e.operand)

    def need_var(self, name: str, line: int, col: int) -> VarInfo:
        v = self.vars.get(name)
        if v is None:
            bound = ", ".join(sorted(self.vars)) or "none"
            raise self.fail(f"unbound variable `{name}`", line, col,
                            near(name, self.vars) or f"the pattern binds: {bound}")
        return v

    def need_pred(self, e: ECall) -> None:
        if e.func not in self.pred_names:
            hint = near(e.func, self.pred_names)
            hint = (hint + " " if hint else "") + f"predicates are the functions of " \
                f"{self.preds_label}"
            raise self.fail(f"unknown predicate `{e.func}`", e.line, e.col, hint)

    def imm_expr(self, e: Expr, vocab: frozenset[str]) -> None:
        if isinstance(e, EName):
            v = self.vars.get(e.name)
            if v is None and (e.name in vocab or vocab is ANY_NAME):
                return
            v = self.need_var(e.name, e.line, e.col)
            if v.kind != "imm":
                raise self.fail(f"`{e.name}` is a value, not an immediate", e.line, e.col,
                                "immediates in [...] are computed from immediates of the "
                                "pattern")
        elif isinstance(e, ECall):
            self.need_pred(e)
            for a in e.args:
                self.imm_expr(a, frozenset())
        elif isinstance(e, EBin):
            self.imm_expr(e.left, frozenset())
            self.imm_expr(e.right, frozenset())
        elif isinstance(e, EUnary):
            self.imm_expr(e.operand, frozenset())

    # -- results -------------------------------------------------------------
    def bare(self, r: RName, pattern: Pat) -> RUse:
        if self.kind == "lower":
            raise self.fail("a bare variable result is only allowed in rewrite rules",
                            r.line, r.col, "lower the value with a machine op")
        v = self.need_var(r.name, r.line, r.col)
        if v.kind != "value":
            raise self.fail(f"`{r.name}` is not a value", r.line, r.col,
                            "a bare variable result must be an argument of the pattern")
        if result_count(pattern.op) != 1:
            raise self.fail(f"{pattern.op} does not define one value to replace", r.line, r.col)
        want = result_types(pattern.op, pattern.type)
        if v.types and want and not (v.types & want):
            raise self.fail(f"type mismatch: `{r.name}` is {_types_text(v.types)}, but the "
                            f"result of {pattern.op} is {_types_text(want)}", r.line, r.col)
        return RUse(r.name)

    def split(self, node: RNode) -> tuple[list[RName | RRest | RNode], tuple[Expr, ...] | None]:
        args: list[RName | RRest | RNode] = []
        imms: tuple[Expr, ...] | None = None
        for it in node.items:
            if isinstance(it, RImms):
                if imms is not None:
                    raise self.fail("only one immediate list [...] per op", it.line, it.col)
                imms = it.exprs
            else:
                args.append(it)
        return args, imms

    def top(self, node: RNode, pattern: Pat) -> ROp:
        if self.kind == "lower":
            return self.mop(node, pattern, None)
        return self.gop(node, pattern, ("orig", 0), top=True)

    def value_arg(self, it: RName, what: str) -> VarInfo:
        v = self.need_var(it.name, it.line, it.col)
        if v.kind == "imm":
            raise self.fail(f"`{it.name}` is an immediate, not a value", it.line, it.col,
                            f"pass immediates in [...]: {what}")
        if v.kind == "values":
            raise self.fail(f"`{it.name}` is a variadic tail", it.line, it.col,
                            f"splice it with `{it.name}...`")
        return v

    def mop(self, node: RNode, pattern: Pat, slot: str | None) -> ROp:
        """A machine op in a lowering result; ``slot`` is the class it feeds (nested)."""
        decl = self.decls.get(node.op)
        if decl is None:
            hint = near(node.op, self.decls)
            if node.op in self.broken:
                hint = f"the declaration of `{node.op}` has an error"
            elif node.op in OPS and not OPS[node.op].dialect:
                hint = (f"`{node.op}` is a generic op; lowering rules produce machine ops of "
                        f"{self.isa}")
            raise self.fail(f"unknown machine op `{node.op}`", node.op_line, node.op_col,
                            hint or f"declare it with an `op` line in {self.isa}'s ops.rules")
        self.ops_used.add(decl.qualname)
        args, imms = self.split(node)
        if not decl.variadic:
            for it in args:
                if isinstance(it, RRest):
                    raise self.fail(f"`{it.name}...` splices into a variadic op only; "
                                    f"{decl.name} takes {_plural(len(decl.operands), 'operand')}",
                                    it.line, it.col)
            if len(args) != len(decl.operands):
                raise self.fail(f"{decl.name} takes {_plural(len(decl.operands), 'operand')}: "
                                f"{decl.signature()}", node.line, node.col,
                                f"found {len(args)}")
        exprs = imms or ()
        if len(exprs) != len(decl.imms):
            shown = ", ".join(f"{i.name}: {i.kind}" for i in decl.imms)
            message = (f"{decl.name} takes {_plural(len(decl.imms), 'immediate')}: [{shown}]"
                       if decl.imms else f"{decl.name} takes no immediates")
            raise self.fail(message, node.line, node.col, f"found {len(exprs) or 'none'}")
        for e, imm in zip(exprs, decl.imms):
            self.imm_expr(e, machine_imm_vocab(imm.kind))
        rargs: list[RUse | RSplice | ROp] = []
        for i, it in enumerate(args):
            operand = decl.operands[i] if not decl.variadic else None
            if isinstance(it, RName):
                v = self.value_arg(it, decl.signature())
                if operand is not None:
                    bad = [t for t in sorted(v.types, key=TYPE_ORDER.get)
                           if not class_holds(operand.cls, t, self.float_classes)]
                    # Wrong for every type it can have, or for some while the pattern could
                    # be given a narrower type: an error.  (Some ops, like bitcast, take
                    # `any` argument that the pattern's type cannot narrow.)
                    if bad and (len(bad) == len(v.types) or len(self.top_ctrls or ()) > 1):
                        may = "may be " if len(v.types) > 1 else "is "
                        raise self.fail(
                            f"type mismatch: operand {operand.name} of {decl.name} takes "
                            f"{operand.cls}, but `{it.name}` {may}{bad[0]}", it.line, it.col,
                            self.type_hint(pattern, operand.cls) if len(v.types) > 1 else
                            f"use an op whose operand class holds {bad[0]}")
                rargs.append(RUse(it.name))
            elif isinstance(it, RRest):
                v = self.need_var(it.name, it.line, it.col)
                if v.kind != "values":
                    raise self.fail(f"`{it.name}` is not a variadic tail", it.line, it.col,
                                    f"bind it with `{it.name}...` in the pattern")
                rargs.append(RSplice(it.name))
            else:
                sub = self.mop(it, pattern, operand.cls if operand else None)
                rargs.append(sub)
        if slot is not None or node is not self.ast.rhs:
            # A nested op makes exactly one value.
            if decl.variadic_results or len(decl.results) != 1:
                raise self.fail(f"{decl.name} defines {len(decl.results)} results; only an op "
                                "with one result can be nested", node.line, node.col)
            out = decl.results[0]
            if slot is not None and out.cls != slot:
                raise self.fail(f"type mismatch: {decl.name} returns {out.cls}, but the "
                                f"operand it feeds takes {slot}", node.line, node.col)
            tmp = self.ntmp
            self.ntmp += 1
            return ROp(decl.qualname, tuple(rargs), tuple(exprs),
                       ("const", decl.result_type(0, self.float_classes)), tmp,
                       node.line, node.col)
        self.check_top_results(node, decl, pattern)
        return ROp(decl.qualname, tuple(rargs), tuple(exprs), None, None, node.line, node.col)

    def type_hint(self, pattern: Pat, cls: str) -> str:
        """How to give ``pattern`` a type that fits register class ``cls``."""
        op = pattern.op
        fits = [t for t in sorted(self.top_ctrls or (), key=TYPE_ORDER.get)
                if class_holds(cls, t, self.float_classes)]
        hint = f"give the pattern a type, e.g. ({op} {fits[0]} ...)" if fits \
            else "give the pattern a type"
        k = ctrl_arg(op)
        if k:
            hint += f"; the type of {op} is that of its argument {k + 1}"
        return hint

    def check_top_results(self, node: RNode, decl: MachineOpDecl, pattern: Pat) -> None:
        terminator = OPS[pattern.op].is_terminator
        if decl.branch and not terminator:
            raise self.fail(f"{decl.name} is a branch, but {pattern.op} is not a terminator",
                            node.op_line, node.op_col,
                            "a `branch` op ends a block; lower only terminators to one")
        if terminator and not decl.branch:
            raise self.fail(f"{pattern.op} ends a block, but {decl.name} is not a branch",
                            node.op_line, node.op_col,
                            f"declare {decl.name} with the `branch` flag")
        count = result_count(pattern.op)
        if decl.variadic_results:
            return
        if count is not None and len(decl.results) != count:
            raise self.fail(f"{pattern.op} defines {_plural(count, 'result')}, but "
                            f"{decl.name} returns {len(decl.results)}", node.line, node.col)
        for i, out in enumerate(decl.results):
            want = result_types(pattern.op, pattern.type, i)
            bad = [t for t in sorted(want, key=TYPE_ORDER.get)
                   if not class_holds(out.cls, t, self.float_classes)]
            if bad:
                hint = (f"give the pattern a type, e.g. ({pattern.op} {bad[0]} ...)"
                        if len(want) > 1 and len(bad) < len(want) else
                        f"use an op whose result class holds {bad[0]}")
                raise self.fail(f"type mismatch: {decl.name} returns {out.cls}, which cannot "
                                f"hold the {bad[0]} result of {pattern.op}", node.op_line,
                                node.op_col, hint)
            if out.cls == FLAGS:
                raise self.fail(f"type mismatch: {decl.name} returns flags, which cannot hold "
                                f"the result of {pattern.op}", node.op_line, node.op_col)

    def gop(self, node: RNode, pattern: Pat, want: TypeExpr | None, top: bool = False) -> ROp:
        """A generic op in a rewrite result; ``want`` is the type its result must have."""
        info = OPS.get(node.op)
        if info is None or info.dialect:
            raise self.fail(f"unknown generic op `{node.op}`", node.op_line, node.op_col,
                            near(node.op, self._generic)
                            or "rewrite rules produce generic ops of wasmlower.ir.OPS")
        op = node.op
        args, imms = self.split(node)
        explicit: Type | None = None
        if args and isinstance(args[0], RName) and args[0].name in TYPE_NAMES \
                and args[0].name not in self.vars:
            explicit = TYPE_NAMES[args[0].name]
            if explicit not in allowed_types(op):
                raise self.fail(f"type mismatch: {op} does not take {explicit}",
                                args[0].line, args[0].col)
            args = args[1:]
        nfixed = fixed_arg_count(info)
        nargs = sum(1 for a in args if not isinstance(a, RRest))
        if any(isinstance(a, RRest) for a in args) and not info.variadic:
            raise self.fail(f"splices go into variadic ops only; {_arity_text(op)}",
                            node.line, node.col)
        if (nargs != nfixed and not info.variadic) or nargs < nfixed:
            raise self.fail(_arity_text(op), node.line, node.col, f"found {nargs} arguments")
        exprs = imms or ()
        if len(exprs) != len(info.imms):
            shown = ", ".join(info.imms)
            message = (f"{op} takes {_plural(len(info.imms), 'immediate')}: [{shown}]"
                       if info.imms else f"{op} takes no immediates")
            raise self.fail(message, node.line, node.col, f"found {len(exprs) or 'none'}")
        for j, e in enumerate(exprs):
            self.imm_expr(e, imm_vocab(op, j))
        # The controlling type: explicit, from the wanted result type, or from an argument.
        ctrl: TypeExpr | None = ("const", explicit) if explicit else None
        if ctrl is None and info.result in ("same", "ctrl"):
            ctrl = want
        k = ctrl_arg(op)
        if ctrl is None:
            for i, a in enumerate(args):
                if isinstance(a, RName) and (i == k or arg_codes(info, len(args))[i] == "T"):
                    ctrl = ("var", a.name)
                    break
        if ctrl is None and info.result == "same" and args and isinstance(args[0], RName):
            ctrl = ("var", args[0].name)
        rargs: list[RUse | RSplice | ROp] = []
        codes = arg_codes(info, len(args))
        for i, a in enumerate(args):
            if isinstance(a, RName):
                v = self.value_arg(a, signature(op))
                code_types = _code_types(codes[i]) if codes[i] != "T" else ALL_TYPES
                if v.types and not (v.types & code_types):
                    raise self.fail(f"type mismatch: `{a.name}` is {_types_text(v.types)}, but "
                                    f"argument {i + 1} of {op} takes "
                                    f"{_types_text(code_types)}", a.line, a.col)
                rargs.append(RUse(a.name))
            elif isinstance(a, RRest):
                v = self.need_var(a.name, a.line, a.col)
                if v.kind != "values":
                    raise self.fail(f"`{a.name}` is not a variadic tail", a.line, a.col)
                rargs.append(RSplice(a.name))
            else:
                sub_want = ctrl if (codes[i] == "T" or i == k) else (
                    ("const", TYPE_NAMES[codes[i]]) if codes[i] in TYPE_NAMES else None)
                rargs.append(self.gop(a, pattern, sub_want))
        if top:
            count = result_count(pattern.op)
            mine = result_count(op)
            if count is not None and mine is not None and count != mine:
                raise self.fail(f"{pattern.op} defines {_plural(count, 'result')}, but {op} "
                                f"defines {mine}", node.line, node.col)
            return ROp(op, tuple(rargs), tuple(exprs), None, None, node.line, node.col)
        if result_count(op) != 1:
            raise self.fail(f"{op} does not define one value; only an op with one result can "
                            "be nested", node.line, node.col)
        if info.result == "ctrl":
            rtype = ctrl
        elif info.result == "same":
            first = rargs[0] if rargs else None
            rtype = (("var", first.name) if isinstance(first, RUse)
                     else ("tmp", first.tmp) if isinstance(first, ROp) else ctrl)
        else:
            rtype = ("const", TYPE_NAMES[info.result[0]])
        if rtype is None:
            raise self.fail(f"cannot infer the type of ({op} ...)", node.line, node.col,
                            f"write the type after the op name: ({op} i32 ...)")
        tmp = self.ntmp
        self.ntmp += 1
        return ROp(op, tuple(rargs), tuple(exprs), rtype, tmp, node.line, node.col)


def expand(p: Pat) -> list[Pat]:
    """The commutative expansions of ``p``, the written order first."""
    choices = [expand(a) if isinstance(a, Pat) else [a] for a in p.args]
    out: list[Pat] = []
    for combo in itertools.product(*choices):
        q = replace(p, args=tuple(combo), commutative=False)
        out.append(q)
        if p.commutative and len(combo) >= 2 and combo[0] != combo[1]:
            out.append(replace(q, args=(combo[1], combo[0], *combo[2:])))
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------------------
# Overlap (unification) and shadowing (one-way matching)
# ---------------------------------------------------------------------------

def _pat_types(p: Pat) -> frozenset[Type | None]:
    return frozenset({p.type}) if p.type is not None else allowed_types(p.op)


class _Unifier:
    """First-order unification of two patterns; variables are (side, name)."""

    def __init__(self) -> None:
        self.subst: dict[tuple[int, str], object] = {}

    def walk(self, t: object) -> object:
        while isinstance(t, tuple) and t in self.subst:
            t = self.subst[t]
        return t

    def term(self, side: int, s: Slot | Pat) -> object:
        if isinstance(s, Var):
            return (side, s.name)
        if isinstance(s, Pat):
            return (side, s)
        return s

    def occurs(self, var: tuple[int, str], t: object) -> bool:
        t = self.walk(t)
        if t == var:
            return True
        if isinstance(t, tuple) and isinstance(t[1], Pat):
            side, p = t
            return any(self.occurs(var, self.term(side, a)) for a in (*p.imms, *p.args))
        return False

    def unify(self, a: object, b: object) -> bool:
        a, b = self.walk(a), self.walk(b)
        if isinstance(a, Wild) or isinstance(b, Wild) or a == b:
            return True
        if isinstance(a, tuple) and isinstance(a[1], str):
            if self.occurs(a, b):
                return False
            self.subst[a] = b
            return True
        if isinstance(b, tuple) and isinstance(b[1], str):
            return self.unify(b, a)
        if isinstance(a, Lit) or isinstance(b, Lit):
            return False        # two different literals, or a literal against a node
        assert isinstance(a, tuple) and isinstance(b, tuple)
        (sa, pa), (sb, pb) = a, b
        if pa.op != pb.op or not (_pat_types(pa) & _pat_types(pb)):
            return False
        for x, y in zip(pa.imms, pb.imms):
            if not self.unify(self.term(sa, x), self.term(sb, y)):
                return False
        na, nb = len(pa.args), len(pb.args)
        if (na < nb and pa.rest is None) or (nb < na and pb.rest is None):
            return False
        for x, y in zip(pa.args, pb.args):
            if not self.unify(self.term(sa, x), self.term(sb, y)):
                return False
        return True

    def show(self, t: object) -> str:
        t = self.walk(t)
        if isinstance(t, tuple) and isinstance(t[1], str):
            return t[1]
        if isinstance(t, tuple):
            side, p = t
            parts = [p.op] + ([str(p.type)] if p.type else [])
            parts += [self.show(self.term(side, s)) for s in (*p.imms, *p.args)]
            if p.rest is not None:
                parts.append(f"{p.rest}...")
            return "(" + " ".join(parts) + ")"
        return show_slot(t)  # type: ignore[arg-type]


def overlap(a: Pat, b: Pat) -> str | None:
    """An instruction shape both patterns match, or None if they are disjoint."""
    u = _Unifier()
    if u.unify((0, a), (1, b)):
        return u.show((0, a))
    return None


def subsumes(a: Slot | Pat, b: Slot | Pat, env: dict[str, Slot | Pat] | None = None) -> bool:
    """Does ``a`` match every input ``b`` matches?  (``b``'s variables are opaque.)"""
    env = {} if env is None else env
    if isinstance(a, Wild):
        return True
    if isinstance(a, Var):
        if a.name in env:
            return env[a.name] == b and not isinstance(b, Wild)
        env[a.name] = b
        return True
    if isinstance(a, Lit):
        return a == b
    if not isinstance(b, Pat) or a.op != b.op:
        return False
    if a.type is not None and not _pat_types(b) <= {a.type}:
        return False
    if not all(subsumes(x, y, env) for x, y in zip(a.imms, b.imms)):
        return False
    if a.rest is None and (b.rest is not None or len(a.args) != len(b.args)):
        return False
    if len(a.args) > len(b.args):
        return False
    return all(subsumes(x, y, env) for x, y in zip(a.args, b.args))


# ---------------------------------------------------------------------------
# Coverage
# ---------------------------------------------------------------------------

# Generic ops that `ir.legalize.legalize_module_refs` rewrites before lowering.
LEGALIZED = frozenset({"global_get", "global_set"})


def _default_coverage() -> tuple[tuple[str, Type | None], ...]:
    pairs = []
    for name, info in OPS.items():
        if info.dialect or name in LEGALIZED:
            continue
        for t in sorted(allowed_types(name), key=lambda t: -1 if t is None else TYPE_ORDER[t]):
            pairs.append((name, t))
    return tuple(pairs)


FRONTEND_COVERAGE: tuple[tuple[str, Type | None], ...] = _default_coverage()
"""Every (generic op, controlling type) pair the frontend can produce."""


@dataclass(frozen=True)
class Hole:
    """An (op, type) pair no catch-all rule lowers; ``partial``: the rules that lower some."""
    op: str
    type: Type | None
    partial: tuple[str, ...] = ()
    isa: str = ""

    def format(self) -> str:
        what = f"({self.op} {self.type} ...)" if self.type else f"({self.op} ...)"
        text = f"{self.isa}: coverage hole: no rule lowers every {what}"
        if self.partial:
            text += "\n  only guarded or narrower rules: " + ", ".join(self.partial)
        text += f"\n  hint: add a rule without a guard whose pattern is {what}"
        return text


def _linear(p: Pat) -> bool:
    names = [s.name for s in (*p.imms, *p.args) if isinstance(s, Var)]
    return len(names) == len(set(names))


def _covers_rows(rows: list[tuple[Slot, ...]], domains: list[tuple[str, ...] | None]) -> bool:
    if not domains:
        return bool(rows)
    dom, rest = domains[0], domains[1:]
    wild = [r[1:] for r in rows if not isinstance(r[0], Lit)]
    if dom is None:
        return _covers_rows(wild, rest)
    return all(_covers_rows([r[1:] for r in rows
                             if not isinstance(r[0], Lit) or r[0].value == v], rest)
               for v in dom)


def coverage_holes(rules: Sequence[Rule], pairs: Iterable[tuple[str, Type | None]],
                   isa: str = "") -> list[Hole]:
    """The pairs no unguarded, flat rule (or union of such rules over literals) lowers."""
    by_op: dict[str, list[Rule]] = {}
    for r in rules:
        by_op.setdefault(r.op, []).append(r)
    holes = []
    for op, t in pairs:
        mine = by_op.get(op, [])
        if not mine and op in PASSTHROUGH:
            continue
        info = OPS[op]
        rows = []
        partial = []
        for r in mine:
            fits = [v for v in r.variants if v.type is None or v.type == t]
            if not fits:
                continue
            partial.append(r.loc)
            if r.guard is None:
                for v in fits:
                    if (all(not isinstance(a, (Pat, Lit)) for a in v.args) and _linear(v)
                            and (not info.variadic or v.rest is not None)):
                        rows.append(v.imms)
        domains = [imm_domain(op, j, t) for j in range(len(info.imms))]
        if not _covers_rows(rows, domains):
            holes.append(Hole(op, t, tuple(dict.fromkeys(partial)), isa))
    return holes


# ---------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------

def format_diagnostic(e: RuleError, severity: str = "") -> str:
    """``file:line:col: [warning: ]message``, the source line, a caret and the hint."""
    head = f"{e.file}:{e.line}:{e.col}: " + (f"{severity}: " if severity else "") + e.message
    lines = [head]
    if e.source_line is not None:
        lines += [f"  {e.source_line}", f"  {' ' * max(e.col - 1, 0)}^"]
    if e.hint:
        lines.append(f"  hint: {e.hint}")
    return "\n".join(lines)


@dataclass
class Report:
    """What ``check_rules``/``check_isa`` found."""
    name: str
    errors: list[RuleError] = field(default_factory=list)
    warnings: list[RuleError] = field(default_factory=list)
    holes: list[Hole] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No errors and no holes (warnings allowed)."""
        return not self.errors and not self.holes

    def format(self) -> str:
        parts = [format_diagnostic(e) for e in self.errors]
        parts += [format_diagnostic(w, "warning") for w in self.warnings]
        parts += [h.format() for h in self.holes]
        parts.append(f"{self.name}: {_plural(len(self.errors), 'error')}, "
                     f"{_plural(len(self.warnings), 'warning')}, "
                     f"{_plural(len(self.holes), 'coverage hole')}")
        return "\n".join(parts)

    def extend(self, other: Report) -> None:
        self.errors += other.errors
        self.warnings += other.warnings
        self.holes += other.holes


def _sort_key(r: Rule) -> tuple[int, int]:
    return (-r.prio, r.index)


def overlap_errors(rules: Sequence[Rule]) -> list[RuleError]:
    """Errors for pairs of equal-priority rules that can match the same instruction."""
    by_op: dict[str, list[Rule]] = {}
    for r in rules:
        if not r.never:
            by_op.setdefault(r.op, []).append(r)
    errors = []
    for group in by_op.values():
        group = sorted(group, key=_sort_key)
        for i, b in enumerate(group):
            for a in group[:i]:
                if a.prio != b.prio:
                    continue
                witness = next((w for va in a.variants for vb in b.variants
                                if (w := overlap(va, vb)) is not None), None)
                if witness is not None:
                    errors.append(b.error(
                        f"rules {a.loc} and {b.loc} overlap: both match {witness}",
                        "give one a higher priority (`prio N`), or make the patterns disjoint"))
    return errors


def shadow_errors(rules: Sequence[Rule]) -> list[RuleError]:
    """Errors for rules whose every match is taken by an unguarded higher-priority rule."""
    by_op: dict[str, list[Rule]] = {}
    for r in rules:
        if not r.never:
            by_op.setdefault(r.op, []).append(r)
    errors = []
    for group in by_op.values():
        for b in group:
            winners = []
            for vb in b.variants:
                a = next((a for a in sorted(group, key=_sort_key)
                          if a.prio > b.prio and a.guard is None
                          and any(subsumes(va, vb) for va in a.variants)), None)
                if a is None:
                    break
                winners.append(a)
            else:
                names = ", ".join(dict.fromkeys(a.loc for a in winners))
                errors.append(b.error(
                    f"rule can never fire: every input it matches is taken first by {names}",
                    "give it a higher priority, or narrow the earlier rule"))
    return errors


def unused_ops(decls: Iterable[MachineOpDecl], rules: Sequence[Rule],
               files: Sequence[RuleFile]) -> list[RuleError]:
    """Warnings for declared machine ops no rule produces."""
    used = set().union(*(r.ops_used for r in rules)) if rules else set()
    by_display = {f.display: f for f in files}
    out = []
    for d in decls:
        if d.qualname not in used:
            rf = by_display.get(d.file)
            src = rf.source_line(d.line) if rf else None
            out.append(RuleError(f"machine op `{d.name}` is never used by a rule", d.file,
                                 d.line, d.col, src,
                                 "remove it, or ignore this if the ABI or emitter uses it"))
    return out


def check_rules(ruleset: RuleSet,
                coverage: Iterable[tuple[str, Type | None]] | None = None) -> Report:
    """Check a loaded rule set: overlap, shadowing, never-firing rules, unused ops, coverage.

    ``coverage`` lists the (op, type) pairs that need a catch-all rule; ``None``
    skips the coverage check (the default for rewrite rule sets).
    """
    rules = ruleset.rules
    report = Report(ruleset.name)
    report.errors += ruleset.load_errors
    report.errors += overlap_errors(rules)
    report.errors += shadow_errors(rules)
    report.warnings += ruleset.warnings
    if ruleset.kind == "lower":
        report.warnings += unused_ops(ruleset.decls.values(), rules, ruleset.files)
    if coverage is not None:
        report.holes += coverage_holes(rules, coverage, ruleset.name)
    return report


def check_isa(isa: Isa, coverage: Iterable[tuple[str, Type | None]] = FRONTEND_COVERAGE
              ) -> Report:
    """Check an ISA's rules, including coverage of ``coverage`` (the frontend's pairs)."""
    return check_rules(isa.ruleset, coverage)


def check_targets(targets: Sequence[str],
                  coverage: Iterable[tuple[str, Type | None]] = FRONTEND_COVERAGE) -> Report:
    """``wasmlower rules check [ISA|DIR|FILE...]``: load and check each target.

    A name is an ISA of ``wasmlower/isa``; a directory is an ISA directory
    (``*.rules``, ``regs.py``, ``preds.py``); a file inside an ISA directory
    checks that ISA; any other ``.rules`` file is checked as a rewrite rule
    set.  Load errors are reported, not raised.
    """
    from pathlib import Path

    from .isa import ISA_ROOT, load_isa_dir, load_rules

    report = Report(", ".join(targets) or "rules")
    for target in targets or ["x64"]:
        p = Path(target)
        errors: list[RuleError] = []
        if p.is_file() and not (p.parent / "regs.py").exists():
            rs = load_rules([p], errors=errors)
            report.extend(check_rules(rs, None))
            continue
        directory = p.parent if p.is_file() else (p if p.is_dir() else ISA_ROOT / target)
        try:
            isa = load_isa_dir(directory, errors=errors)
        except CompileError as e:
            report.errors.append(RuleError(str(e), str(directory)))
            continue
        report.extend(check_rules(isa.ruleset, coverage))
    return report


def main(items: Sequence[str] | None = None) -> int:
    """``wasmlower rules check [ISA|DIR|FILE...]``: print the report; 1 if errors or holes."""
    report = check_targets(list(items or ["x64"]))
    print(report.format())
    return 0 if report.ok else 1

"""Compiling rules to Python matchers, and a reference interpreter.

``generate(ruleset)`` writes one function per generic op::

    def lower_iadd(ctx, inst):
        ...
        # rule isa/x64/lower.rules:14
        # match: (iadd i32 x (iconst k))
        # if:    simm32(k)
        # =>     (add32_ri x [k])

Each function is a decision tree in the style of Maranget's "Compiling
pattern matching to good decision trees" (2008).  A rule variant is a row of
*tests*, keyed by occurrence: the controlling type of an instruction, an
immediate literal, or the op of the pure generic instruction defining an
argument.  The generator switches on one occurrence at a time; a branch
keeps the rows whose test agrees or that do not test it, in their order, so
each occurrence is computed and tested once per path and rules are still
tried in priority order.  A row with no tests left is a leaf: variadic arity
checks, non-linear equalities and the guard run there, then the result is
built through the context (``ctx.begin``, ``ctx.value``, ``ctx.top``,
``ctx.alias``).  An unconditional leaf ends its branch.

Looking through an argument uses ``ctx.defs``, which maps a value to its
defining instruction only if that instruction is a *pure* generic op: a load
or any op with effects is never folded, because nothing tells the matcher
yet whether an effect lies between the definition and the use (Cranelift's
instruction "colors" solve this; we do not have them).

``load_matchers`` caches the generated module under
``$WASMLOWER_CACHE_DIR`` (else ``~/.cache/wasmlower``), keyed by the sha256 of
every rule file and of the generator's sources, and imports it from there.

``interpret`` walks the same rows in the same order, matching recursively;
tests check that it and the compiled matcher agree on every instruction.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..ir.function import Inst
from ..ir.ops import OPS
from ..ir.types import F32, F64, I32, I64, Type
from .check import (
    Lit,
    Pat,
    ROp,
    RSplice,
    Rule,
    RUse,
    Var,
    Wild,
    arg_types,
    ctrl_type,
    ctrl_type_src,
    fixed_arg_count,
)
from .syntax import EBin, ECall, EInt, EName, EUnary, Expr

if TYPE_CHECKING:
    from .isa import RuleSet

_HERE = Path(__file__).resolve().parent
# Sources whose change must invalidate generated matchers.
GENERATOR_SOURCES = (_HERE / "matchgen.py", _HERE / "check.py", _HERE / "syntax.py",
                     _HERE / "decl.py", _HERE / "rules.lark", _HERE.parent / "ir" / "ops.py")
_TYPE_NAMES = {I32: "I32", I64: "I64", F32: "F32", F64: "F64"}

Row = tuple[Rule, int, Pat]


def rows_by_op(rules: list[Rule]) -> dict[str, list[Row]]:
    """Rule variants per top op, in the order they are tried: priority, then file order."""
    out: dict[str, list[Row]] = {}
    for rule in sorted(rules, key=lambda r: (-r.prio, r.index)):
        for k, v in enumerate(rule.variants):
            out.setdefault(v.op, []).append((rule, k, v))
    return out


# ---------------------------------------------------------------------------
# Rows: tests and leaf checks of one rule variant
# ---------------------------------------------------------------------------

Path_ = tuple[int, ...]


def _sfx(p: Path_) -> str:
    return "".join(f"_{i}" for i in p)


def _inst_var(p: Path_) -> str:
    return "inst" if not p else f"_d{_sfx(p)}"


class _Row:
    """One variant as tests (occurrence -> expected) plus what its leaf does."""

    def __init__(self, rule: Rule, variant: int, pat: Pat) -> None:
        self.rule, self.variant, self.pat = rule, variant, pat
        self.tests: dict[tuple, object] = {}
        self.arity: list[str] = []           # source of arity conditions
        self.binds: list[tuple[str, str]] = []  # (variable, source of its value)
        self.eqs: list[str] = []             # source of non-linear equality conditions
        seen: dict[str, str] = {}
        self._flatten(pat, (), seen, None)

    def _flatten(self, pat: Pat, path: Path_, seen: dict[str, str],
                 implied: frozenset[Type] | None) -> None:
        """Collect tests of ``pat``; ``implied`` is what SSA typing already says its type is."""
        iv = _inst_var(path)
        info = OPS[pat.op]
        ctrl = pat.type
        same = info.result in ("same", "ctrl")
        if ctrl is not None and not (same and implied == {ctrl}):
            self.tests[("type", path)] = ctrl
        ctrls = frozenset({ctrl}) if ctrl is not None else (
            implied if same and implied is not None else None)
        if info.variadic:
            n = len(pat.args)
            if pat.rest is None:
                self.arity.append(f"len({iv}.args) == {n}")
            elif n:
                self.arity.append(f"len({iv}.args) >= {n}")
        for j, s in enumerate(pat.imms):
            self._slot(s, f"{iv}.imm[{j}]", ("imm", path, j), seen, "imm")
        for i, a in enumerate(pat.args):
            if isinstance(a, Pat):
                self.tests[("def", path, i)] = a.op
                self._flatten(a, (*path, i), seen, arg_types(pat.op, i, ctrls, len(pat.args)))
            else:
                self._slot(a, f"{iv}.args[{i}]", None, seen, "value")
        if pat.rest is not None and pat.rest != "_":
            self._slot(Var(pat.rest), f"{iv}.args[{len(pat.args)}:]", None, seen, "values")

    def _slot(self, s: object, src: str, occ: tuple | None, seen: dict[str, str],
              kind: str) -> None:
        if isinstance(s, Lit):
            assert occ is not None
            self.tests[occ] = s.value
        elif isinstance(s, Var):
            if s.name in seen:
                op = "is" if kind == "value" else "=="
                self.eqs.append(f"{src} {op} v_{s.name}")
            else:
                seen[s.name] = src
                self.binds.append((s.name, src))


# ---------------------------------------------------------------------------
# Code generation
# ---------------------------------------------------------------------------

def expr_src(e: Expr, rule: Rule) -> str:
    """Python source of a guard or immediate expression."""
    if isinstance(e, EInt):
        return str(e.value)
    if isinstance(e, EName):
        return f"v_{e.name}" if e.name in rule.vars else repr(e.name)
    if isinstance(e, ECall):
        return f"p_{e.func}(" + ", ".join(expr_src(a, rule) for a in e.args) + ")"
    if isinstance(e, EUnary):
        return f"(not {expr_src(e.operand, rule)})" if e.op == "not" \
            else f"(-{expr_src(e.operand, rule)})"
    assert isinstance(e, EBin)
    return f"({expr_src(e.left, rule)} {e.op} {expr_src(e.right, rule)})"


def _type_src(t: tuple) -> str:
    kind, arg = t
    if kind == "const":
        return _TYPE_NAMES[arg]
    if kind == "var":
        return f"v_{arg}.type"
    if kind == "orig":
        return f"inst.results[{arg}].type"
    return f"_r{arg}.type"


def _tuple_src(items: list[str]) -> str:
    if not items:
        return "()"
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def _rhs_lines(rop: ROp | RUse, rule: Rule, out: list[str]) -> str:
    """Append the statements building ``rop``; return the source of its value."""
    if isinstance(rop, RUse):
        out.append(f"ctx.alias(v_{rop.name})")
        return ""
    args = []
    for a in rop.args:
        if isinstance(a, RUse):
            args.append(f"v_{a.name}")
        elif isinstance(a, RSplice):
            args.append(f"*v_{a.name}")
        else:
            args.append(_rhs_lines(a, rule, out))
    imms = _tuple_src([expr_src(e, rule) for e in rop.imms])
    if rop.tmp is None:
        out.append(f"ctx.top({rop.op!r}, {_tuple_src(args)}, {imms})")
        return ""
    assert rop.type is not None
    out.append(f"_r{rop.tmp} = ctx.value({rop.op!r}, {_tuple_src(args)}, {imms}, "
               f"{_type_src(rop.type)})")
    return f"_r{rop.tmp}"


class _Gen:
    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self.lines: list[str] = []

    def emit(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    def function(self, op: str, rows: list[Row], prefix: str) -> None:
        self.emit(0, "")
        self.emit(0, "")
        self.emit(0, f"def {prefix}_{op}(ctx, inst):")
        self.root = op
        body = [_Row(*r) for r in rows]
        if any(("def",) == k[:1] for r in body for k in r.tests):
            self.emit(1, "defs = ctx.defs")
        self.tree(body, {}, set(), 1)
        self.emit(1, "return False")

    def op_at(self, path: Path_, known: dict[tuple, object]) -> str:
        if not path:
            return self.root
        op = known[("def", path[:-1], path[-1])]
        assert isinstance(op, str)
        return op

    def available(self, occ: tuple, known: dict[tuple, object]) -> bool:
        path = occ[1]
        return not path or isinstance(known.get(("def", path[:-1], path[-1])), str)

    def compute(self, occ: tuple, known: dict[tuple, object], computed: set[tuple],
                depth: int) -> str:
        """Emit (once per path) the computation of ``occ``; return its local name."""
        kind, path = occ[0], occ[1]
        iv = _inst_var(path)
        if kind == "type":
            name = f"_t{_sfx(path)}"
            src = ctrl_type_src(self.op_at(path, known), iv)
        elif kind == "imm":
            name = f"_m{_sfx(path)}i{occ[2]}"
            src = f"{iv}.imm[{occ[2]}]"
        else:
            i = occ[2]
            sub = (*path, i)
            dv, ov = _inst_var(sub), f"_o{_sfx(sub)}"
            if occ not in computed:
                info = OPS[self.op_at(path, known)]
                get = f"defs.get({iv}.args[{i}])"
                if info.variadic and i >= fixed_arg_count(info):
                    get += f" if len({iv}.args) > {i} else None"
                self.emit(depth, f"{dv} = {get}")
                self.emit(depth, f"{ov} = {dv}.op if {dv} is not None else None")
                computed.add(occ)
            return ov
        if occ not in computed:
            self.emit(depth, f"{name} = {src}")
            computed.add(occ)
        return name

    def tree(self, rows: list[_Row], known: dict[tuple, object], computed: set[tuple],
             depth: int) -> None:
        for i, row in enumerate(rows):
            pending = [o for o in row.tests if o not in known]
            if pending:
                self.switch(rows[i:], pending, known, computed, depth)
                return
            if self.leaf(row, depth):
                return      # unconditional: later rows cannot be reached here

    def switch(self, rows: list[_Row], pending: list[tuple], known: dict[tuple, object],
               computed: set[tuple], depth: int) -> None:
        candidates = [o for o in pending if self.available(o, known)]
        order = {"type": 0, "imm": 1, "def": 2}
        occ = max(candidates, key=lambda o: (sum(o in r.tests for r in rows),
                                             -len(o[1]), -order[o[0]]))
        local = self.compute(occ, known, computed, depth)
        values = list(dict.fromkeys(r.tests[occ] for r in rows if occ in r.tests))
        for k, value in enumerate(values):
            if isinstance(value, Type):
                cond = f"{local} is {_TYPE_NAMES[value]}"
            else:
                cond = f"{local} == {value!r}"
            self.emit(depth, f"{'if' if k == 0 else 'elif'} {cond}:")
            sub = [r for r in rows if r.tests.get(occ, _NO) in (value, _NO)]
            self.tree(sub, {**known, occ: value}, set(computed), depth + 1)
            if self.lines[-1].endswith(":"):
                self.emit(depth + 1, "pass")
        rest = [r for r in rows if occ not in r.tests]
        if rest:
            self.emit(depth, "else:")
            self.tree(rest, {**known, occ: _NO}, set(computed), depth + 1)

    def leaf(self, row: _Row, depth: int) -> bool:
        """Emit one row's leaf; True if it always fires."""
        rule = row.rule
        ast = rule.ast
        self.emit(depth, f"# rule {rule.label}")
        shown = ast.pattern_text if row.variant == 0 else row.pat.show() + "  (commuted)"
        self.emit(depth, f"# match: {shown}")
        if ast.guard_text:
            self.emit(depth, f"# if:    {ast.guard_text}")
        self.emit(depth, f"# =>     {ast.rhs_text}")
        if row.arity:
            self.emit(depth, f"if {' and '.join(row.arity)}:")
            depth += 1
        for name, src in row.binds:
            self.emit(depth, f"v_{name} = {src}")
        conds = list(row.eqs)
        if rule.guard is not None:
            conds.append(expr_src(rule.guard, rule))
        if conds:
            self.emit(depth, f"if {' and '.join(conds)}:")
            depth += 1
        self.emit(depth, f"ctx.begin({rule.index})")
        body: list[str] = []
        _rhs_lines(rule.rhs, rule, body)
        for line in body:
            self.emit(depth, line)
        self.emit(depth, "return True")
        return not row.arity and not conds


_NO = object()      # "this row does not test the occurrence" / "none of the listed values"


def _preds_used(rules: list[Rule]) -> list[str]:
    names: set[str] = set()

    def walk(e: Expr | None) -> None:
        if isinstance(e, ECall):
            names.add(e.func)
            for a in e.args:
                walk(a)
        elif isinstance(e, EBin):
            walk(e.left)
            walk(e.right)
        elif isinstance(e, EUnary):
            walk(e.operand)

    def walk_rop(r: ROp | RUse) -> None:
        if isinstance(r, ROp):
            for e in r.imms:
                walk(e)
            for a in r.args:
                if isinstance(a, ROp):
                    walk_rop(a)

    for rule in rules:
        walk(rule.guard)
        walk_rop(rule.rhs)
    return sorted(names)


def generate(ruleset: RuleSet) -> str:
    """The Python source of ``ruleset``'s matchers."""
    files = ", ".join(f.display for f in ruleset.files)
    prefix = "lower" if ruleset.kind == "lower" else "rewrite"
    preds = _preds_used(ruleset.rules)
    g = _Gen(ruleset)
    g.lines += [
        f"# Generated from {files} (sha256 {ruleset.digest}). Do not edit.",
        (f'"""Matchers of the {ruleset.name} rules ({ruleset.kind}); see wasmlower/lower/'
        'matchgen.py."""'),
        "",
        "from wasmlower.ir.types import F32, F64, I32, I64  # noqa: F401",
        "",
        f"DIGEST = {ruleset.digest!r}",
        f"PREDICATES = {tuple(preds)!r}",
    ]
    for p in preds:
        g.lines.append(f"p_{p} = None")
    g.lines += [
        "",
        "",
        "def bind(preds):",
        '    """Bind the predicate functions the rules call (from the ISA\'s preds module)."""',
        "    g = globals()",
        "    for name in PREDICATES:",
        '        g["p_" + name] = getattr(preds, name)',
    ]
    rows = rows_by_op(ruleset.rules)
    for op in sorted(rows):
        g.function(op, rows[op], prefix)
    g.lines += ["", "", "MATCHERS = {"]
    g.lines += [f"    {op!r}: {prefix}_{op}," for op in sorted(rows)]
    g.lines += ["}", ""]
    return "\n".join(g.lines)


# ---------------------------------------------------------------------------
# Cache
# ---------------------------------------------------------------------------

def cache_dir() -> Path:
    """Where generated matchers are kept: ``$WASMLOWER_CACHE_DIR`` or ``~/.cache/wasmlower``."""
    env = os.environ.get("WASMLOWER_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "wasmlower"


_generator_digest: str | None = None


def generator_digest() -> str:
    """sha256 over the sources that shape generated code."""
    global _generator_digest
    if _generator_digest is None:
        h = hashlib.sha256()
        for p in GENERATOR_SOURCES:
            h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
        _generator_digest = h.hexdigest()
    return _generator_digest


def ruleset_digest(name: str, kind: str, files: list[tuple[str, str]]) -> str:
    """sha256 of the rule files ``(display path, text)`` and of the generator."""
    h = hashlib.sha256(f"{name}\0{kind}\0{generator_digest()}\0".encode())
    for display, text in files:
        h.update(display.encode() + b"\0" + text.encode() + b"\0")
    return h.hexdigest()


STATS = {"generated": 0, "cache_hits": 0}


def load_matchers(ruleset: RuleSet, preds: ModuleType | None,
                  cache: bool = True) -> tuple[ModuleType, bool]:
    """The compiled matcher module of ``ruleset`` and whether it came from the cache.

    ``cache=False`` regenerates the module even if the cache has it (and
    refreshes the cache file).
    """
    path = cache_dir() / "matchers" / f"{ruleset.name}-{ruleset.kind}-{ruleset.digest[:24]}.py"
    modname = f"_wasmlower_matchers_{ruleset.name}_{ruleset.kind}_{ruleset.digest[:16]}"
    hit = cache and path.exists()
    if hit:
        STATS["cache_hits"] += 1
    else:
        source = generate(ruleset)
        STATS["generated"] += 1
        if not _write(path, source):
            # No (writable) cache: a private directory for this process.
            path = Path(tempfile.mkdtemp(prefix="wasmlower-matchers-")) / path.name
            path.write_text(source)
    module = _import(modname, path)
    if preds is not None:
        module.bind(preds)
    return module, hit


def _write(path: Path, source: str) -> bool:
    """Write ``path`` atomically (concurrent test processes share the cache)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(source)
        os.replace(tmp, path)
    except OSError:
        return False
    return True


def _import(modname: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(modname, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------
# The interpreter
# ---------------------------------------------------------------------------

def _match(pat: Pat, inst: Inst, defs: dict, b: dict[str, Any]) -> bool:
    if pat.type is not None and ctrl_type(inst) is not pat.type:
        return False
    args = inst.args
    if OPS[pat.op].variadic and (len(args) < len(pat.args)
                                 or (pat.rest is None and len(args) != len(pat.args))):
        return False
    for s, value in zip(pat.imms, inst.imm):
        if not _slot(s, value, b, False):
            return False
    for a, value in zip(pat.args, args):
        if isinstance(a, Pat):
            d = defs.get(value)
            if d is None or d.op != a.op or not _match(a, d, defs, b):
                return False
        elif not _slot(a, value, b, True):
            return False
    if pat.rest is not None and pat.rest != "_":
        b[pat.rest] = args[len(pat.args):]
    return True


def _slot(s: object, value: object, b: dict[str, Any], is_value: bool) -> bool:
    if isinstance(s, Wild):
        return True
    if isinstance(s, Lit):
        return value == s.value
    assert isinstance(s, Var)
    if s.name in b:
        return b[s.name] is value if is_value else b[s.name] == value
    b[s.name] = value
    return True


_BINOPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


def eval_expr(e: Expr, b: dict[str, Any], preds: ModuleType | None) -> Any:
    """Evaluate a guard or immediate expression (unbound names are identifier literals)."""
    if isinstance(e, EInt):
        return e.value
    if isinstance(e, EName):
        return b.get(e.name, e.name)
    if isinstance(e, ECall):
        return getattr(preds, e.func)(*(eval_expr(a, b, preds) for a in e.args))
    if isinstance(e, EUnary):
        x = eval_expr(e.operand, b, preds)
        return (not x) if e.op == "not" else -x
    assert isinstance(e, EBin)
    if e.op == "and":
        return eval_expr(e.left, b, preds) and eval_expr(e.right, b, preds)
    if e.op == "or":
        return eval_expr(e.left, b, preds) or eval_expr(e.right, b, preds)
    return _BINOPS[e.op](eval_expr(e.left, b, preds), eval_expr(e.right, b, preds))


def _eval_type(t: tuple, b: dict[str, Any], inst: Inst, tmps: dict[int, Any]) -> Type:
    kind, arg = t
    if kind == "const":
        return arg
    if kind == "var":
        return b[arg].type
    if kind == "orig":
        return inst.results[arg].type
    return tmps[arg].type


def _build(rop: ROp | RUse, b: dict[str, Any], ctx: Any, inst: Inst, preds: ModuleType | None,
           tmps: dict[int, Any]) -> Any:
    if isinstance(rop, RUse):
        ctx.alias(b[rop.name])
        return None
    args: list[Any] = []
    for a in rop.args:
        if isinstance(a, RUse):
            args.append(b[a.name])
        elif isinstance(a, RSplice):
            args.extend(b[a.name])
        else:
            args.append(_build(a, b, ctx, inst, preds, tmps))
    imms = tuple(eval_expr(e, b, preds) for e in rop.imms)
    if rop.tmp is None:
        ctx.top(rop.op, tuple(args), imms)
        return None
    assert rop.type is not None
    v = ctx.value(rop.op, tuple(args), imms, _eval_type(rop.type, b, inst, tmps))
    tmps[rop.tmp] = v
    return v


def interpret(ruleset: RuleSet, ctx: Any, inst: Inst) -> bool:
    """Match ``inst`` against the rules one by one; on a match build the result via ``ctx``."""
    preds = ruleset.preds
    for rule, _, pat in ruleset.rows.get(inst.op, ()):
        b: dict[str, Any] = {}
        if not _match(pat, inst, ctx.defs, b):
            continue
        if rule.guard is not None and not eval_expr(rule.guard, b, preds):
            continue
        ctx.begin(rule.index)
        _build(rule.rhs, b, ctx, inst, preds, {})
        return True
    return False

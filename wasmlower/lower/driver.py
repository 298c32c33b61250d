"""The lowering driver: generic IR -> machine IR, and mid-end rewriting.

``lower_function`` walks every block in layout order and every instruction
in order, and hands each generic instruction to the ISA's compiled matcher.
The matcher builds the rule's result through a ``LowerContext``:

- ``value(op, args, imms, type)`` appends a nested op with a fresh result;
- ``top(op, args, imms)`` appends the top op, whose results ARE the original
  instruction's result values, so every later use stays valid; a ``branch``
  op (a terminator) takes the original instruction's targets;
- ``alias(value)`` (rewrites only) replaces every use of the result by
  ``value``.

Each new instruction records its rule (``Inst.rule``, ``file:line [name]``)
and the original's ``loc``.  Matching looks through an argument only to a
*pure* generic instruction (``ctx.defs``, a snapshot taken before lowering,
since lowering re-points ``Value.inst`` at machine ops).  Folded
instructions are lowered anyway; afterwards ``remove_dead`` deletes pure
machine ops whose results are unused, to a fixpoint.

``jump`` instructions without a rule stay generic: every emitter handles
them.  Any other instruction without a rule raises ``NoRuleError``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import CodegenError
from ..ir.function import Function, Inst, Value
from ..ir.ops import OPS
from ..ir.text import format_inst
from ..ir.types import Type
from .check import PASSTHROUGH, ctrl_type
from .isa import Isa, RuleSet, load_isa
from .matchgen import interpret


class NoRuleError(CodegenError):
    """No rule of ``isa`` lowers ``inst``."""

    def __init__(self, inst: Inst, isa: str, func: str | None = None) -> None:
        self.inst, self.isa, self.func = inst, isa, func
        self.type: Type | None = ctrl_type(inst)
        types = f" ({self.type})" if self.type is not None else ""
        super().__init__(f"no {isa} rule lowers `{format_inst(inst)}`{types}")


class LowerContext:
    """What a matcher builds results through (see the module docstring)."""

    __slots__ = (
        "created",
        "defs",
        "func",
        "inst",
        "labels",
        "out",
        "rule",
        "subst",
        "track_defs",
    )

    def __init__(self, func: Function, defs: dict[Value, Inst], labels: list[str],
                 track_defs: bool = False) -> None:
        self.func = func
        self.defs = defs
        self.labels = labels
        self.track_defs = track_defs     # rewrites: new pure generic ops become matchable
        self.out: list[Inst] = []
        self.inst: Inst | None = None
        self.rule: str | None = None
        self.subst: dict[Value, Value] = {}
        self.created = 0

    def begin(self, index: int) -> None:
        self.rule = self.labels[index]

    def value(self, op: str, args: tuple, imms: tuple, type: Type) -> Value:
        inst = self.inst
        assert inst is not None
        v = self.func.new_value(type)
        new = Inst(op, args, (v,), imms, (), inst.loc, self.rule)
        self.out.append(new)
        self.created += 1
        if self.track_defs and not new.info.effects and not new.info.dialect:
            self.defs[v] = new
        return v

    def top(self, op: str, args: tuple, imms: tuple) -> None:
        inst = self.inst
        assert inst is not None
        info = OPS[op]
        targets = inst.targets if info.is_terminator else ()
        new = Inst(op, args, inst.results, imms, targets, inst.loc, self.rule)
        self.out.append(new)
        self.created += 1
        if self.track_defs:
            for r in new.results:
                if not info.effects and not info.dialect:
                    self.defs[r] = new
                else:
                    self.defs.pop(r, None)

    def alias(self, value: Value) -> None:
        inst = self.inst
        assert inst is not None
        self.subst[inst.results[0]] = value


def _pure_generic_defs(func: Function) -> dict[Value, Inst]:
    defs: dict[Value, Inst] = {}
    for b in func.blocks:
        for inst in b.insts:
            info = inst.info
            if not info.effects and not info.dialect:
                for r in inst.results:
                    defs[r] = inst
    return defs


def lower_function(func: Function, isa: Isa | str, trace: list | None = None,
                   interpreted: bool = False) -> Function:
    """Lower every generic instruction of ``func`` to ``isa``'s machine ops, in place.

    ``trace`` (a list) receives ``(inst text before, [machine inst texts], rule)``
    per lowered instruction.  ``interpreted`` uses the rule interpreter
    instead of the compiled matchers (for tests).  Returns ``func``.
    """
    if isinstance(isa, str):
        isa = load_isa(isa)
    rs = isa.ruleset
    matchers = rs.matchers
    ctx = LowerContext(func, _pure_generic_defs(func), [r.label for r in rs.rules])
    for b in func.blocks:
        out: list[Inst] = []
        ctx.out = out
        for inst in b.insts:
            if inst.info.dialect:
                out.append(inst)
                continue
            start = len(out)
            before = format_inst(inst) if trace is not None else ""
            ctx.inst = inst
            if interpreted:
                ok = interpret(rs, ctx, inst)
            else:
                fn = matchers.get(inst.op)
                ok = fn is not None and fn(ctx, inst)
            if not ok:
                if inst.op in PASSTHROUGH:
                    out.append(inst)
                    continue
                raise NoRuleError(inst, isa.name, func.name)
            if trace is not None:
                trace.append((before, [format_inst(i) for i in out[start:]], ctx.rule))
        b.insts = out
    remove_dead(func, _pure_machine)
    func.meta["lowered"] = isa.name
    return func


def _pure_machine(inst: Inst) -> bool:
    decl = inst.info.decl
    return bool(inst.info.dialect) and decl is not None and decl.is_pure


def _pure_generic(inst: Inst) -> bool:
    return not inst.info.dialect and not inst.info.effects


def remove_dead(func: Function, removable: Callable[[Inst], bool]) -> int:
    """Delete instructions with results, all unused, for which ``removable`` holds; to a fixpoint.

    Returns how many were deleted.
    """
    uses: Counter[Value] = Counter()
    for b in func.blocks:
        for inst in b.insts:
            uses.update(inst.args)
            for t in inst.targets:
                uses.update(t.args)
    work = [inst for b in func.blocks for inst in b.insts
            if inst.results and removable(inst) and not any(uses[r] for r in inst.results)]
    dead: set[Inst] = set()
    while work:
        inst = work.pop()
        if inst in dead:
            continue
        dead.add(inst)
        for a in inst.args:
            uses[a] -= 1
            d = a.inst
            if (uses[a] == 0 and d is not None and d not in dead and d.results
                    and removable(d) and not any(uses[r] for r in d.results)):
                work.append(d)
    if dead:
        for b in func.blocks:
            b.insts = [i for i in b.insts if i not in dead]
    return len(dead)


def _resolve(v: Value, subst: dict[Value, Value]) -> Value:
    seen = 0
    while v in subst and seen < 1000:
        v = subst[v]
        seen += 1
    return v


def _apply_subst(insts: Iterable[Inst], subst: dict[Value, Value]) -> None:
    if not subst:
        return
    for inst in insts:
        if any(a in subst for a in inst.args):
            inst.args = [_resolve(a, subst) for a in inst.args]
        for t in inst.targets:
            if any(a in subst for a in t.args):
                t.args = [_resolve(a, subst) for a in t.args]


def rewrite_function(func: Function, rules: RuleSet, trace: list | None = None,
                     max_rounds: int = 16, dce: bool = True,
                     interpreted: bool = False) -> Function:
    """Apply generic -> generic rewrite ``rules`` to ``func`` in place, to a fixpoint.

    Each round visits every generic instruction once; rounds repeat while
    something changed, at most ``max_rounds`` times (a rule set that keeps
    rewriting stops there).  With ``dce``, pure generic instructions left
    unused are deleted.  Returns ``func``.
    """
    matchers = rules.matchers
    labels = [r.label for r in rules.rules]
    for _ in range(max_rounds):
        ctx = LowerContext(func, _pure_generic_defs(func), labels, track_defs=True)
        changed = False
        for b in func.blocks:
            out: list[Inst] = []
            ctx.out = out
            for inst in b.insts:
                _apply_subst((inst,), ctx.subst)
                if inst.info.dialect:
                    out.append(inst)
                    continue
                start = len(out)
                before = format_inst(inst) if trace is not None else ""
                ctx.inst = inst
                if interpreted:
                    ok = interpret(rules, ctx, inst)
                else:
                    fn = matchers.get(inst.op)
                    ok = fn is not None and fn(ctx, inst)
                if not ok:
                    out.append(inst)
                    continue
                changed = True
                if trace is not None:
                    trace.append((before, [format_inst(i) for i in out[start:]], ctx.rule))
            b.insts = out
        _apply_subst((i for b in func.blocks for i in b.insts), ctx.subst)
        if not changed:
            break
    if dce:
        remove_dead(func, _pure_generic)
    return func


def rule_counts(trace: Iterable[tuple[str, list[str], str | None]]) -> Counter[str]:
    """How often each rule fired in a ``trace``."""
    return Counter(rule for _, _, rule in trace if rule is not None)


# ---------------------------------------------------------------------------
# Micro-benchmark: compiled vs interpreted matching
# ---------------------------------------------------------------------------

class _NullContext:
    """A context that builds nothing (measures matching alone)."""

    __slots__ = ("_v", "defs")

    def __init__(self, defs: dict[Value, Inst]) -> None:
        self.defs = defs
        self._v = Value(0, Type.I64)

    def begin(self, index: int) -> None:
        pass

    def value(self, op: str, args: tuple, imms: tuple, type: Type) -> Value:
        return self._v

    def top(self, op: str, args: tuple, imms: tuple) -> None:
        pass

    def alias(self, value: Value) -> None:
        pass


def benchmark_matchers(ruleset: RuleSet | Isa, funcs: Iterable[Function],
                       min_time: float = 0.2, verbose: bool = True) -> dict[str, float]:
    """Rules matched per second by the compiled matchers and by the interpreter.

    Every generic instruction of ``funcs`` is matched (nothing is built)
    repeatedly for at least ``min_time`` seconds per matcher.  Returns
    ``{"compiled": rate, "interpreted": rate, "speedup": ratio}`` and prints
    it when ``verbose``.
    """
    rs = ruleset.ruleset if isinstance(ruleset, Isa) else ruleset
    work: list[tuple[_NullContext, Inst]] = []
    for f in funcs:
        ctx = _NullContext(_pure_generic_defs(f))
        work += [(ctx, i) for _, i in f.insts() if not i.info.dialect]
    matchers = rs.matchers

    def compiled(ctx: Any, inst: Inst) -> bool:
        fn = matchers.get(inst.op)
        return fn is not None and fn(ctx, inst)

    def interpreted(ctx: Any, inst: Inst) -> bool:
        return interpret(rs, ctx, inst)

    rates = {}
    for name, fn in (("compiled", compiled), ("interpreted", interpreted)):
        matched = 0
        start = time.perf_counter()
        elapsed = 0.0
        while elapsed < min_time:
            for ctx, inst in work:
                matched += fn(ctx, inst)
            elapsed = time.perf_counter() - start
        rates[name] = matched / elapsed if elapsed else 0.0
    rates["speedup"] = rates["compiled"] / rates["interpreted"] if rates["interpreted"] else 0.0
    if verbose:
        print(f"{rs.name}: {len(work)} instructions; compiled {rates['compiled']:,.0f} "
              f"matches/s, interpreted {rates['interpreted']:,.0f} matches/s "
              f"({rates['speedup']:.1f}x)")
    return rates

"""Machine-op declarations: what the register allocator and the emitter read.

An ISA declares each machine op once, in its ``ops.rules``::

    op add32_ri (a: gpr) [k: i32] -> gpr reuse a          "add {a:32}, {k}"
    op udiv32   (a: fixed(rax), b: gpr) -> fixed(rax) temp(hi: fixed(rdx)) \\
                clobber(flags) traps                       "xor edx, edx\\ndiv {b:32}"

``build_decl`` checks a parsed declaration against the ISA's register file
and turns it into a frozen ``MachineOpDecl``; ``register`` enters it into
``wasmlower.ir.OPS`` as ``<isa>.<name>`` so the IR printer, parser and
verifier handle machine ops like generic ones.

Invariants of a ``MachineOpDecl``: operand, immediate and temp names are
distinct; ``cls`` of a fixed operand is its register's class; ``reuse[i]``
indexes ``operands`` (the operand whose register result ``i`` shares);
every template placeholder names an operand, immediate, temp or result, or
is a built-in one (``then else targets L L1.. trap:CODE``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import RuleError
from ..ir.ops import CALL, READS, TERMINATOR, TRAP_MESSAGES, TRAPS, WRITES, OpInfo, register_op
from ..ir.types import F64, I64, Type
from .syntax import ClassAst, OpDeclAst, OperandAst, RuleFile

FLAGS = "flags"          # a clobber name (and pseudo register class) valid on every ISA
EFFECTS = ("reads", "writes", "traps", "call")
_EFFECT_OPS = {"reads": READS, "writes": WRITES, "traps": TRAPS, "call": CALL}
WIDTHS = ("8", "16", "32", "64")
BUILTIN_PLACEHOLDERS = ("then", "else", "targets", "L")
TYPE_NAMES = {t.value: t for t in Type}


@dataclass(frozen=True)
class OperandDecl:
    """An operand, result or temp: register class, fixed register, or ``any`` (reg or stack)."""
    name: str
    cls: str                   # register class; for a fixed register, that register's class
    fixed: str | None = None   # physical register name for ``fixed(REG)``
    any: bool = False          # ``any(CLASS)``: a register or a stack slot
    type: Type | None = None   # results only: the declared type (``gpr:i64``)


@dataclass(frozen=True)
class ImmDecl:
    name: str
    kind: str


@dataclass(frozen=True)
class MachineOpDecl:
    """One declared machine op (``op`` line of an ISA's rule files)."""
    isa: str
    name: str                            # "add32"
    qualname: str                        # "x64.add32", the name in OPS
    operands: tuple[OperandDecl, ...]
    imms: tuple[ImmDecl, ...]
    results: tuple[OperandDecl, ...]
    reuse: tuple[int | None, ...]        # per result: index of the operand it shares
    temps: tuple[OperandDecl, ...]
    clobbers: tuple[str, ...]
    effects: frozenset[str]              # subset of EFFECTS
    variadic: bool                       # ``(args...)``: operands come from the ABI
    branch: bool                         # a terminator taking the original targets
    template: str                        # ``\n`` separates instructions
    file: str
    line: int
    variadic_results: bool = False       # ``-> (results...)``
    col: int = 1

    @property
    def is_pure(self) -> bool:
        """No effects and not a branch: removable when its results are unused."""
        return not self.effects and not self.branch

    def result_type(self, index: int, float_classes: frozenset[str] | set[str]) -> Type:
        """The type of an intermediate value made by result ``index``."""
        r = self.results[index]
        if r.type is not None:
            return r.type
        return F64 if r.cls in float_classes else I64

    def signature(self) -> str:
        """``(add32 a b)``: how the op is written in a rule's result."""
        names = [o.name for o in self.operands]
        if self.variadic:
            names.append("args...")
        if self.imms:
            names.append("[" + ", ".join(i.name for i in self.imms) + "]")
        return "(" + " ".join([self.name, *names]) + ")"


def class_holds(cls: str, t: Type, float_classes: frozenset[str] | set[str]) -> bool:
    """Can a register of class ``cls`` hold a value of type ``t``?"""
    if cls == FLAGS:
        return False
    return t.is_float if cls in float_classes else t.is_int


def _near(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=3, cutoff=0.6)
    if not close:
        return ""
    quoted = [f"`{c}`" for c in close]
    return "did you mean " + (" or ".join(quoted) if len(quoted) < 3
                              else ", ".join(quoted[:-1]) + " or " + quoted[-1]) + "?"


class _DeclBuilder:
    def __init__(self, rf: RuleFile, isa: str, regs: Mapping[str, str],
                 float_classes: frozenset[str], extra: frozenset[str] = frozenset()) -> None:
        self.rf, self.isa, self.regs, self.float_classes = rf, isa, regs, float_classes
        self.extra = extra
        self.classes = sorted(set(regs.values()) | {FLAGS})

    def fail(self, message: str, line: int, col: int, hint: str | None = None) -> RuleError:
        return self.rf.error(message, line, col, hint)

    def cls(self, c: ClassAst) -> tuple[str, str | None]:
        if c.kind == "fixed":
            if c.name == FLAGS:
                return FLAGS, FLAGS
            if c.name not in self.regs:
                hint = _near(c.name, sorted(self.regs)) or (
                    f"{self.isa} has registers {', '.join(sorted(self.regs))}")
                raise self.fail(f"unknown register `{c.name}`", c.line, c.col + 6, hint)
            return self.regs[c.name], c.name
        if c.name not in self.classes:
            col = c.col + 4 if c.kind == "any" else c.col
            near = _near(c.name, self.classes)
            hint = (near + " " if near else "") + (
                f"{self.isa} has register classes {', '.join(self.classes)}")
            raise self.fail(f"unknown register class `{c.name}`", c.line, col, hint)
        return c.name, None

    def operand(self, o: OperandAst) -> OperandDecl:
        cls, fixed = self.cls(o.cls)
        type_ = None
        if o.type is not None:
            if o.type not in TYPE_NAMES:
                raise self.fail(f"unknown type `{o.type}`", o.line, o.col,
                                "types are i32, i64, f32 and f64")
            type_ = TYPE_NAMES[o.type]
            if not class_holds(cls, type_, self.float_classes):
                raise self.fail(f"type mismatch: class {cls} cannot hold {type_}",
                                o.line, o.col)
        return OperandDecl(o.name, cls, fixed, o.cls.kind == "any", type_)

    def build(self, d: OpDeclAst) -> MachineOpDecl:
        names: dict[str, str] = {}

        def claim(name: str, what: str, line: int, col: int) -> None:
            if name in names:
                raise self.fail(f"duplicate name `{name}` in the declaration of {d.name}",
                                line, col, f"`{name}` is already {names[name]}")
            names[name] = what

        for o in d.operands:
            claim(o.name, "an operand", o.line, o.col)
        if d.variadic:
            claim(d.variadic, "the variadic operands", d.line, d.col)
        for i in d.imms:
            claim(i.name, "an immediate", i.line, i.col)
        for t in d.temps:
            claim(t.name, "a temp", t.line, t.col)
        operands = tuple(self.operand(o) for o in d.operands)
        results = tuple(self.operand(OperandAst(f"out{k}" if len(d.results) > 1 else "out",
                                                r.cls, r.type, r.line, r.col))
                        for k, r in enumerate(d.results))
        temps = tuple(self.operand(t) for t in d.temps)
        reuse: list[int | None] = [None] * len(results)
        if len(d.reuse) > 1:
            r = d.reuse[1]
            raise self.fail(f"{d.name} has more than one `reuse`", r.line, r.col,
                            "`reuse NAME` makes the (first) result share operand NAME")
        for r in d.reuse:
            index = next((k for k, o in enumerate(operands) if o.name == r.name), None)
            if index is None:
                raise self.fail(f"reuse names `{r.name}`, which is not an operand of {d.name}",
                                r.line, r.col, _near(r.name, [o.name for o in operands]) or None)
            if not results:
                raise self.fail(f"{d.name} has no result to reuse `{r.name}`", r.line, r.col)
            if operands[index].cls != results[0].cls:
                raise self.fail(f"the result of {d.name} is {results[0].cls}, but the operand "
                                f"it reuses, `{r.name}`, is {operands[index].cls}",
                                r.line, r.col, "a reused operand and the result share a "
                                "register, so they need the same class")
            reuse[0] = index
        clobbers = []
        for c in d.clobbers:
            if c.name != FLAGS and c.name not in self.regs:
                hint = _near(c.name, sorted(self.regs)) or "clobber names registers, or flags"
                raise self.fail(f"unknown register `{c.name}`", c.line, c.col, hint)
            clobbers.append(c.name)
        effects = {e.name for e in d.effects if e.name != "branch"}
        branch = any(e.name == "branch" for e in d.effects)
        decl = MachineOpDecl(
            isa=self.isa, name=d.name, qualname=f"{self.isa}.{d.name}", operands=operands,
            imms=tuple(ImmDecl(i.name, i.cls.name) for i in d.imms), results=results,
            reuse=tuple(reuse), temps=temps, clobbers=tuple(clobbers),
            effects=frozenset(effects), variadic=d.variadic is not None, branch=branch,
            template=d.template, file=self.rf.display, line=d.line,
            variadic_results=d.variadic_results is not None, col=d.col)
        self.check_template(d, decl)
        return decl

    def check_template(self, d: OpDeclAst, decl: MachineOpDecl) -> None:
        regs = {o.name for o in decl.operands} | {t.name for t in decl.temps}
        if decl.results:
            regs.add("out")
            regs.update(f"out{k}" for k in range(len(decl.results)))
        if d.variadic:
            regs.add(d.variadic)
        if d.variadic_results:
            regs.add(d.variadic_results)
        imms = {i.name for i in decl.imms}
        raw = d.template_raw
        for m in re.finditer(r"\{\{|\}\}|\{([^{}]*)\}", raw):
            if m.group(1) is None:
                continue
            text = m.group(1)
            col = d.template_col + m.start()
            name, _, arg = text.partition(":")
            ok = False
            if text in self.extra or name in self.extra:
                ok = True
            elif name in regs:
                ok = not arg or arg in WIDTHS
                if not ok:
                    raise self.fail(f"bad register width in `{{{text}}}`", d.template_line, col,
                                    "widths are 8, 16, 32 and 64")
            elif name in imms or name in BUILTIN_PLACEHOLDERS or re.fullmatch(r"L\d+", name):
                ok = not arg
            elif name == "trap":
                ok = arg in TRAP_MESSAGES or arg in imms
            if not ok:
                known = sorted(regs | imms)
                hint = ("placeholders name operands, immediates, temps and results"
                        + (f" ({', '.join(known)})" if known else "")
                        + ", or are {then} {else} {targets} {L} {L1}... {trap:CODE}"
                        + (", or the ISA's TEMPLATE_PLACEHOLDERS" if self.extra else ""))
                raise self.fail(f"unknown placeholder `{{{text}}}` in the template of {d.name}",
                                d.template_line, col, hint)


def build_decls(rf: RuleFile, isa: str, regs: Mapping[str, str],
                float_classes: frozenset[str], known: dict[str, MachineOpDecl],
                errors: list[RuleError] | None = None,
                extra_placeholders: frozenset[str] = frozenset()) -> list[MachineOpDecl]:
    """Check and build the declarations of one file; ``known`` collects them by name.

    Raises the first ``RuleError``, or with ``errors`` given appends each one
    there and skips that declaration.  ``extra_placeholders`` are template
    placeholders the ISA's emitter expands itself (``TEMPLATE_PLACEHOLDERS``
    of its ``regs.py``).
    """
    b = _DeclBuilder(rf, isa, regs, float_classes, extra_placeholders)
    out = []
    for d in rf.decls:
        try:
            if d.name in known:
                first = known[d.name]
                raise rf.error(f"duplicate declaration of op `{d.name}`", d.line, d.name_col,
                               f"first declared at {first.file}:{first.line}")
            decl = b.build(d)
        except RuleError as e:
            if errors is None:
                raise
            errors.append(e)
            continue
        known[d.name] = decl
        out.append(decl)
    return out


def op_info(decl: MachineOpDecl) -> OpInfo:
    """The ``OPS`` entry of a machine op."""
    args: tuple[str, ...] = ("any", "*") if decl.variadic else ("any",) * len(decl.operands)
    result: str | tuple[str, ...]
    if decl.variadic_results:
        result = "ctrl"
    elif not decl.results:
        result = ()
    elif all(r.type is not None for r in decl.results):
        result = tuple(r.type.value for r in decl.results if r.type is not None)
    else:
        result = "ctrl"
    effects = {_EFFECT_OPS[e] for e in decl.effects}
    if decl.branch:
        effects.add(TERMINATOR)
    return OpInfo(name=decl.qualname, args=args, result=result,
                  imms=tuple(i.name for i in decl.imms), effects=frozenset(effects),
                  dialect=decl.isa, decl=decl)


def register(decl: MachineOpDecl) -> OpInfo:
    """Enter ``decl`` into ``wasmlower.ir.OPS`` (replacing an older entry of that name)."""
    return register_op(op_info(decl))

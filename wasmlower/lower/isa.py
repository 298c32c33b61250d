"""Loading an ISA (or a rewrite rule set): rule files, predicates, registers, matchers.

An ISA directory holds ``ops.rules`` (machine-op declarations), ``lower.rules``
(lowering rules), optionally more ``*.rules`` files, ``preds.py`` (the
functions rules call in guards and immediate expressions) and ``regs.py``
(``REGS``: register name -> class name; ``FLOAT_CLASSES``: the classes that
hold floats; optionally ``TEMPLATE_PLACEHOLDERS``: names such as
``epilogue`` that the ISA's emitter expands in templates itself).  ``load_isa("x64")`` loads ``wasmlower/isa/x64``;
``load_isa_dir`` loads any directory (test fixtures, out-of-tree ISAs).

Loading parses every file once with the shared LALR parser, registers the
machine ops in ``wasmlower.ir.OPS`` as ``<isa>.<op>``, resolves the rules and
imports the compiled matchers (generated on a cache miss).  Loaded ISAs are
kept per process.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from ..errors import CompileError, RuleError
from .check import Resolver, Rule
from .decl import MachineOpDecl, build_decls, register
from .matchgen import Row, load_matchers, rows_by_op, ruleset_digest
from .syntax import RuleFile, parse_text

PACKAGE_ROOT = Path(__file__).resolve().parent.parent      # .../wasmlower
ISA_ROOT = PACKAGE_ROOT / "isa"


def display_path(path: Path) -> str:
    """How a rule file is named in messages: relative to the package, else to the repository."""
    p = path.resolve()
    for root in (PACKAGE_ROOT, PACKAGE_ROOT.parent):
        try:
            return p.relative_to(root).as_posix()
        except ValueError:
            pass
    return p.as_posix()


@dataclass(eq=False)
class RuleSet:
    """Resolved rules of one ISA (``kind="lower"``) or one rewrite set (``kind="rewrite"``)."""
    name: str
    kind: str
    files: list[RuleFile]
    rules: list[Rule]
    decls: dict[str, MachineOpDecl]
    preds: ModuleType | None
    float_classes: frozenset[str]
    digest: str = ""
    warnings: list[RuleError] = field(default_factory=list)
    load_errors: list[RuleError] = field(default_factory=list)
    rows: dict[str, list[Row]] = field(default_factory=dict)
    module: ModuleType | None = None
    matchers: dict[str, Callable] = field(default_factory=dict)
    cached: bool = False       # the matcher module came from the cache

    def rule_at(self, index: int) -> Rule:
        return self.rules[index]


@dataclass(eq=False)
class Isa:
    """A loaded ISA: machine ops, lowering rules, registers, predicates, matchers."""
    name: str
    dir: Path
    decls: dict[str, MachineOpDecl]
    ruleset: RuleSet
    regs: dict[str, str]
    float_classes: frozenset[str]
    preds: ModuleType
    regs_module: ModuleType | None = None

    @property
    def rules(self) -> list[Rule]:
        return self.ruleset.rules

    @property
    def matchers(self) -> dict[str, Callable]:
        return self.ruleset.matchers

    @property
    def module(self) -> ModuleType | None:
        return self.ruleset.module


def build_ruleset(name: str, kind: str, files: Sequence[Path | tuple[str, str]],
                  preds: ModuleType | None, regs: Mapping[str, str] | None = None,
                  float_classes: frozenset[str] = frozenset(),
                  errors: list[RuleError] | None = None, cache: bool = True,
                  placeholders: frozenset[str] = frozenset()) -> RuleSet:
    """Parse, check and compile rule files.

    ``files`` are paths, or ``(display name, text)`` pairs.  With ``errors``
    given, problems are appended there and the broken rules skipped;
    otherwise the first one is raised.  ``placeholders`` are extra template
    placeholders the ISA's emitter expands.
    """
    def fail(e: RuleError) -> None:
        if errors is None:
            raise e
        errors.append(e)

    parsed: list[RuleFile] = []
    sources: list[tuple[str, str]] = []
    for f in files:
        if isinstance(f, tuple):
            display, text, path = f[0], f[1], f[0]
        else:
            display, text, path = display_path(f), Path(f).read_text(), str(f)
        sources.append((display, text))
        try:
            parsed.append(parse_text(text, path, display))
        except RuleError as e:
            fail(e)
    decls: dict[str, MachineOpDecl] = {}
    for rf in parsed:
        if kind != "lower" and rf.decls:
            d = rf.decls[0]
            fail(rf.error("op declarations belong in an ISA's rule files", d.line, d.col,
                          "rewrite rules produce generic ops"))
            continue
        if kind == "lower":
            build_decls(rf, name, regs or {}, float_classes, decls, errors, placeholders)
    for d in decls.values():
        register(d)
    label = None
    if preds is not None and getattr(preds, "__file__", None):
        label = display_path(Path(preds.__file__))
    resolver = Resolver(kind, name, decls, preds, float_classes, label)
    resolver.broken = frozenset(d.name for rf in parsed for d in rf.decls) - set(decls)
    rules: list[Rule] = []
    for rf in parsed:
        for ast in rf.rules:
            try:
                rules.append(resolver.rule(rf, ast, len(rules)))
            except RuleError as e:
                fail(e)
    rs = RuleSet(name, kind, parsed, rules, decls, preds, float_classes,
                 ruleset_digest(name, kind, sources), resolver.warnings,
                 list(errors) if errors else [])
    rs.rows = rows_by_op(rules)
    rs.module, rs.cached = load_matchers(rs, preds, cache)
    rs.matchers = dict(rs.module.MATCHERS)
    return rs


def _module_from(directory: Path, stem: str, package: str | None) -> ModuleType | None:
    path = directory / f"{stem}.py"
    if package is not None:
        try:
            return importlib.import_module(f"{package}.{stem}")
        except ModuleNotFoundError as e:
            if e.name != f"{package}.{stem}" and path.exists():
                raise
            return None
    if not path.exists():
        return None
    digest = hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:16]
    modname = f"_wasmlower_isa_{digest}_{stem}"
    if modname in sys.modules:
        return sys.modules[modname]
    spec = importlib.util.spec_from_file_location(modname, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module
    spec.loader.exec_module(module)
    return module


def rule_files(directory: Path) -> list[Path]:
    """``ops.rules``, ``lower.rules``, then the other ``*.rules`` files in name order."""
    first = [directory / "ops.rules", directory / "lower.rules"]
    others = sorted(p for p in directory.glob("*.rules") if p not in first)
    return [p for p in first if p.exists()] + others


_ISAS: dict[Path, Isa] = {}


def load_isa_dir(directory: str | Path, name: str | None = None,
                 errors: list[RuleError] | None = None, cache: bool = True) -> Isa:
    """Load the ISA in ``directory`` (cached per process unless ``errors`` is given).

    With ``errors``, load problems are collected there instead of raised
    (for ``wasmlower rules check``).
    """
    d = Path(directory).resolve()
    if errors is None and d in _ISAS:
        return _ISAS[d]
    if not d.is_dir():
        raise CompileError(f"no ISA at {d}")
    name = name or d.name
    package = None
    if d.parent == ISA_ROOT.resolve():
        package = f"wasmlower.isa.{d.name}"
    regs_mod = _module_from(d, "regs", package)
    preds = _module_from(d, "preds", package)
    if preds is None:
        preds = ModuleType(f"{name}_preds")
    regs: dict[str, str] = dict(getattr(regs_mod, "REGS", {}) or {})
    float_classes = frozenset(getattr(regs_mod, "FLOAT_CLASSES", ()) or ())
    files = rule_files(d)
    if not files:
        raise CompileError(f"no .rules files in {d}")
    placeholders = frozenset(getattr(regs_mod, "TEMPLATE_PLACEHOLDERS", ()) or ())
    ruleset = build_ruleset(name, "lower", files, preds, regs, float_classes, errors, cache,
                            placeholders)
    isa = Isa(name, d, ruleset.decls, ruleset, regs, float_classes, preds, regs_mod)
    if errors is None:
        _ISAS[d] = isa
    return isa


def load_isa(name: str) -> Isa:
    """Load ``wasmlower/isa/<name>`` (once per process)."""
    d = ISA_ROOT / name
    if not (d / "ops.rules").exists():
        known = sorted(p.name for p in ISA_ROOT.iterdir() if (p / "ops.rules").exists()) \
            if ISA_ROOT.exists() else []
        raise CompileError(f"unknown ISA `{name}`" + (f"; known: {', '.join(known)}"
                                                      if known else ""))
    return load_isa_dir(d, name)


def clear_cache() -> None:
    """Forget the ISAs loaded in this process (the next load re-reads the files)."""
    _ISAS.clear()


def load_rules(files: Sequence[str | Path], preds: ModuleType | str | Path | None = None,
               name: str | None = None, errors: list[RuleError] | None = None,
               cache: bool = True) -> RuleSet:
    """Load a set of mid-end rewrite rules (generic -> generic).

    ``preds`` is a module, a path to a ``.py`` file, or None (then a
    ``preds.py`` beside the first file is used if there is one).
    """
    paths = [Path(f) for f in files]
    if isinstance(preds, (str, Path)):
        p = Path(preds)
        preds = _module_from(p.parent, p.stem, None)
    elif preds is None and paths:
        preds = _module_from(paths[0].parent, "preds", None)
    name = name or (paths[0].stem if paths else "rules")
    return build_ruleset(name, "rewrite", paths, preds, None, frozenset(), errors, cache)

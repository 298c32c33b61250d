"""Run ``.wast`` scripts against an engine and count what passes.

An engine is reached through an :class:`EngineAdapter` (see below): the runner
turns each command of a script (:mod:`wasmlower.spec.wast`) into calls on the
adapter and classifies the outcome as passed, failed or skipped, per command
kind.  Text modules are converted to binary with ``wasmtime.wat2wasm`` (the
optional ``wasmtime`` package); the engine only ever sees binaries.

Scope: the test suite's ``MODULES.tsv`` gives the tier and features of every
module a script must accept.  Commands on a module outside the chosen tiers
(and actions whose values need such a tier, e.g. ``v128``) are skipped with
the features named.

Nothing an engine does stops a run: every command's exceptions are caught and
counted (protocol exceptions by their meaning, anything else as a failure with
the exception text), and a module that fails to load makes the later commands
on it fail with that reason.
"""

from __future__ import annotations

import csv
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from wasmlower.spec.sexpr import WastSyntaxError
from wasmlower.spec.wast import (
    Action,
    AssertException,
    AssertExhaustion,
    AssertInvalid,
    AssertMalformed,
    AssertReturn,
    AssertTrap,
    AssertUninstantiable,
    AssertUnlinkable,
    Command,
    Expected,
    ModuleCmd,
    ModuleInstance,
    Register,
    Unsupported,
    Value,
    match_value,
    parse_file,
    value_types,
)

__all__ = [
    "DEFAULT_TIERS",
    "KINDS",
    "TIERS",
    "CompileRejected",
    "EngineAdapter",
    "EngineError",
    "Exhausted",
    "Failure",
    "FileResult",
    "Imports",
    "LinkFailed",
    "TextRejected",
    "Trapped",
    "UnsupportedFeature",
    "find_spec_dir",
    "format_table",
    "load_manifest",
    "load_module_tiers",
    "run_file",
    "run_files",
    "scope_files",
    "to_json",
    "totals",
    "wat_to_wasm",
]

TIERS = ("mvp", "2.0-scalar", "simd", "3.0+")
DEFAULT_TIERS = ("mvp", "2.0-scalar")
#: command kinds that are always reported (others are added as they occur)
KINDS = ("assert_return", "assert_trap", "assert_invalid", "assert_malformed",
         "assert_exhaustion", "assert_unlinkable", "assert_uninstantiable", "module",
         "action", "register")
OUTCOMES = ("passed", "failed", "skipped")

#: the tier each feature of MODULES.tsv belongs to (anything else is 3.0+)
FEATURE_TIER = {
    "multi_value": "2.0-scalar", "sign_extension": "2.0-scalar",
    "saturating_float_to_int": "2.0-scalar", "bulk_memory": "2.0-scalar",
    "reference_types": "2.0-scalar", "mutable_globals": "2.0-scalar", "simd": "simd",
}
#: value type -> the feature it needs (types not listed need nothing beyond MVP)
TYPE_FEATURE = {
    "v128": "simd", "funcref": "reference_types", "externref": "reference_types",
    "ref": "reference_types",  # a bare (ref.null) result
    "exnref": "exceptions", "nullexnref": "exceptions",
}
_MVP_TYPES = frozenset({"i32", "i64", "f32", "f64"})


# --------------------------------------------------------------------------- protocol


class EngineError(Exception):
    """Base of the exceptions an adapter raises to report an outcome."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


class UnsupportedFeature(EngineError):
    """The engine does not support ``feature``: the command is skipped."""

    def __init__(self, feature: str) -> None:
        super().__init__(feature)
        self.feature = feature


class CompileRejected(EngineError):
    """The engine rejected the module; ``kind`` is ``"malformed"`` or ``"invalid"``."""

    def __init__(self, kind: str, message: str = "") -> None:
        super().__init__(message)
        self.kind = kind

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


class LinkFailed(EngineError):
    """Instantiation failed while resolving or checking imports."""


class Trapped(EngineError):
    """Execution trapped (also during instantiation, e.g. in a start function)."""


class Exhausted(EngineError):
    """The call stack was exhausted."""


class TextRejected(Exception):
    """The wat text could not be converted to a binary (by ``wasmtime.wat2wasm``)."""


#: ``imports(module_name, field_name)`` -> an extern object of the adapter, or None
Imports = Callable[[str, str], object | None]


@runtime_checkable
class EngineAdapter(Protocol):
    """What the runner needs from an engine.

    ``compile`` takes a binary module and returns an opaque compiled module,
    ``instantiate`` makes an instance, resolving each import with ``imports``
    (over the ``spectest`` externs and the exports of registered instances,
    which are objects this same adapter returned from :meth:`exports` or
    :meth:`spectest`).  Adapters raise :class:`UnsupportedFeature`,
    :class:`CompileRejected`, :class:`LinkFailed`, :class:`Trapped` and
    :class:`Exhausted`.

    Optional: a ``reset()`` method, if present, is called at the start of every
    file (e.g. to drop the previous file's instances and get a fresh ``spectest``).
    """

    name: str

    def compile(self, wasm: bytes) -> object: ...

    def instantiate(self, module: object, imports: Imports) -> object: ...

    def exports(self, instance: object) -> Mapping[str, object]: ...

    def invoke(self, instance: object, name: str, args: list[Value]) -> list[Value]: ...

    def get_global(self, instance: object, name: str) -> Value: ...

    def spectest(self) -> Mapping[str, object]: ...


# --------------------------------------------------------------------------- results


@dataclass
class Failure:
    file: str
    line: int
    kind: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.kind}: {self.message}"


def _empty_counts() -> dict[str, dict[str, int]]:
    return {kind: dict.fromkeys(OUTCOMES, 0) for kind in KINDS}


@dataclass
class FileResult:
    """The outcome of one script: ``counts[kind][outcome]``, failures, skip reasons."""

    file: str
    path: str = ""
    counts: dict[str, dict[str, int]] = field(default_factory=_empty_counts)
    failures: list[Failure] = field(default_factory=list)
    skip_reasons: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    error: str | None = None  # the script itself could not be read

    def count(self, kind: str, outcome: str, n: int = 1) -> None:
        bucket = self.counts.get(kind)
        if bucket is None:
            bucket = self.counts[kind] = dict.fromkeys(OUTCOMES, 0)
        bucket[outcome] += n

    def total(self, outcome: str) -> int:
        return sum(bucket[outcome] for bucket in self.counts.values())


def totals(results: Mapping[str, FileResult] | Iterable[FileResult]) -> dict[str, dict[str, int]]:
    """Counts per kind summed over files."""
    out = _empty_counts()
    for result in _file_results(results):
        for kind, bucket in result.counts.items():
            target = out.setdefault(kind, dict.fromkeys(OUTCOMES, 0))
            for outcome in OUTCOMES:
                target[outcome] += bucket[outcome]
    return out


def _file_results(results: Any) -> list[FileResult]:
    if isinstance(results, FileResult):
        return [results]
    if isinstance(results, Mapping):
        return list(results.values())
    return list(results)


def to_json(results: Mapping[str, FileResult] | Iterable[FileResult] | FileResult) -> dict:
    """``{"files": {name: counts}, "total": counts, "failures": [...], "skip_reasons":
    {...}, "notes": {...}, "seconds": ...}`` with ``counts = {kind: {"passed": N,
    "failed": N, "skipped": N}}``."""
    files = _file_results(results)
    skip_reasons: Counter[str] = Counter()
    notes: Counter[str] = Counter()
    for result in files:
        skip_reasons.update(result.skip_reasons)
        notes.update(result.notes)
    return {
        "files": {r.file: {k: dict(v) for k, v in r.counts.items()} for r in files},
        "total": totals(files),
        "failures": [
            {"file": f.file, "line": f.line, "kind": f.kind, "message": f.message}
            for r in files for f in r.failures
        ],
        "file_errors": {r.file: r.error for r in files if r.error},
        "skip_reasons": dict(skip_reasons.most_common()),
        "notes": dict(notes.most_common()),
        "seconds": round(sum(r.seconds for r in files), 3),
    }


_SHORT = {
    "assert_return": "return", "assert_trap": "trap", "assert_invalid": "invalid",
    "assert_malformed": "malformed", "assert_exhaustion": "exhaust",
    "assert_unlinkable": "unlink", "assert_uninstantiable": "uninst", "module": "module",
    "action": "action", "register": "register",
}


def format_table(results: Mapping[str, FileResult] | Iterable[FileResult] | FileResult) -> str:
    """A per-file table of passed/failed/skipped for each command kind, and a total line."""
    files = _file_results(results)
    total = totals(files)
    kinds = [k for k in total if sum(total[k].values())] or list(KINDS[:1])
    heads = [_SHORT.get(k, k) for k in kinds]
    name_width = max([len("file"), len("TOTAL")] + [len(r.file) for r in files])

    def cell(bucket: Mapping[str, int]) -> str:
        return f"{bucket['passed']}/{bucket['failed']}/{bucket['skipped']}"

    rows = [[r.file] + [cell(r.counts.get(k, dict.fromkeys(OUTCOMES, 0))) for k in kinds]
            + [f"{r.seconds:.2f}" + (" ERROR" if r.error else "")] for r in files]
    grand = ["TOTAL"] + [cell(total[k]) for k in kinds] + [f"{sum(r.seconds for r in files):.2f}"]
    header = ["file"] + heads + ["secs"]
    widths = [max(len(row[i]) for row in [header, grand, *rows]) for i in range(len(header))]
    widths[0] = name_width

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i])
                         for i, c in enumerate(row))

    rule = "-" * len(line(grand))
    out = [line(header) + "    (passed/failed/skipped)", rule]
    out += [line(row) for row in rows]
    out += [rule, line(grand)]
    return "\n".join(out)


# --------------------------------------------------------------------------- the suite


def find_spec_dir() -> Path | None:
    """``$WASMLOWER_SPEC_DIR`` if set, else ``<repo>/../shared/wasm-testsuite``; None if
    that directory does not exist."""
    env = os.environ.get("WASMLOWER_SPEC_DIR")
    if env:
        path = Path(env)
    else:
        repo = Path(__file__).resolve().parents[2]
        path = repo.parent / "shared" / "wasm-testsuite"
    return path if path.is_dir() else None


def _read_tsv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def load_manifest(spec_dir: str | Path) -> dict[str, dict[str, str]]:
    """MANIFEST.tsv rows by file name ({} if there is no manifest)."""
    path = Path(spec_dir) / "MANIFEST.tsv"
    if not path.is_file():
        return {}
    return {row["file"]: row for row in _read_tsv(path)}


_MODULE_TIERS_CACHE: dict[Path, dict[str, dict[int, tuple[str, str]]]] = {}


def load_module_tiers(spec_dir: str | Path) -> dict[str, dict[int, tuple[str, str]]]:
    """MODULES.tsv as ``{file: {line: (tier, features)}}`` ({} if absent)."""
    path = (Path(spec_dir) / "MODULES.tsv").resolve()
    cached = _MODULE_TIERS_CACHE.get(path)
    if cached is not None:
        return cached
    out: dict[str, dict[int, tuple[str, str]]] = {}
    if path.is_file():
        for row in _read_tsv(path):
            features = re.sub(r"\[.*?\]", "", row.get("features") or "").strip()
            if features == "-":
                features = ""
            out.setdefault(row["file"], {})[int(row["line"])] = (row["tier"], features)
    _MODULE_TIERS_CACHE[path] = out
    return out


def scope_files(spec_dir: str | Path, tiers: Iterable[str] | None = DEFAULT_TIERS) -> list[Path]:
    """The ``.wast`` files of the given tiers (all files if ``tiers`` is None), by name."""
    spec_dir = Path(spec_dir)
    manifest = load_manifest(spec_dir)
    wanted = None if tiers is None else set(tiers)
    if not manifest:
        return sorted(spec_dir.glob("*.wast")) if wanted is None else []
    return sorted(spec_dir / name for name, row in manifest.items()
                  if (wanted is None or row["tier"] in wanted) and (spec_dir / name).is_file())


# --------------------------------------------------------------------------- text -> binary

_wat2wasm: Callable[[str], bytes] | None = None
_STRING_LITERAL = re.compile(r'"(?:[^"\\\n]|\\.)*"')


def _escape_non_ascii_strings(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        return "".join(c if ord(c) < 0x80 else f"\\u{{{ord(c):x}}}" for c in m.group())
    return _STRING_LITERAL.sub(repl, text)


def _convert(converter: Callable[[str], bytes], text: str) -> bytes | Exception:
    try:
        return bytes(converter(text))
    except Exception as e:  # noqa: BLE001 - WasmtimeError, or anything a converter raises
        return e


def wat_to_wasm(text: str) -> bytes:
    """Convert wat text to a binary with ``wasmtime.wat2wasm``.

    Raises :class:`UnsupportedFeature` if the ``wasmtime`` package is missing and
    :class:`TextRejected` if the text is refused.  Non-ASCII characters in string
    literals are retried as ``\\u{...}`` escapes (wat2wasm refuses some of them
    as "confusing", e.g. bidi controls in ``names.wast``).
    """
    global _wat2wasm
    if _wat2wasm is None:
        try:
            from wasmtime import wat2wasm
        except ImportError:
            raise UnsupportedFeature("wat text needs the wasmtime package") from None
        _wat2wasm = wat2wasm
    result = _convert(_wat2wasm, text)
    if isinstance(result, Exception) and not text.isascii():
        retry = _convert(_wat2wasm, _escape_non_ascii_strings(text))
        if isinstance(retry, bytes):
            return retry
    if isinstance(result, bytes):
        return result
    first = result  # the original message is the more useful one
    message = str(first).strip().splitlines()
    raise TextRejected(message[0] if message else type(first).__name__)


# --------------------------------------------------------------------------- running


class _Skip(Exception):
    pass


class _Fail(Exception):
    pass


@dataclass
class _Slot:
    """What a module name refers to: an instance, or why there is none."""

    state: str  # "loaded" | "skipped" | "broken" | "defined"
    value: Any = None  # instance, compiled module, or reason
    line: int = 0


def _tier_reason(tier: str, features: str, tiers: frozenset[str]) -> str | None:
    if tier in tiers:
        return None
    names = [f for f in features.split(",") if f and FEATURE_TIER.get(f, "3.0+") not in tiers]
    return ",".join(names) if names else tier


def _format_results(values: list[Value]) -> str:
    return "[" + ", ".join(str(v) for v in values) + "]" if values else "[]"


def _format_expected(expected: list[Expected]) -> str:
    return "[" + ", ".join(str(e) for e in expected) + "]" if expected else "[]"


class _FileRun:
    def __init__(self, path: Path, adapter: EngineAdapter, tiers: frozenset[str] | None,
                 module_tiers: Mapping[int, tuple[str, str]], result: FileResult,
                 check_messages: bool = False) -> None:
        self.path = path
        self.check_messages = check_messages
        self.adapter = adapter
        self.tiers = tiers
        self.module_tiers = module_tiers
        self.result = result
        self.current: _Slot | None = None
        self.named: dict[str, _Slot] = {}
        self.registered: dict[str, _Slot] = {}
        self.definitions: dict[str | None, _Slot] = {}
        self.export_cache: dict[int, Mapping[str, object]] = {}
        self._spectest: Mapping[str, object] | None = None
        self._import_problems: list[_Slot] = []

    # -- helpers

    def spectest(self) -> Mapping[str, object]:
        if self._spectest is None:
            self._spectest = self.adapter.spectest()
        return self._spectest

    def imports(self, module_name: str, field_name: str) -> object | None:
        if module_name == "spectest":
            return self.spectest().get(field_name)
        slot = self.registered.get(module_name)
        if slot is None:
            return None
        if slot.state != "loaded":
            self._import_problems.append(slot)
            return None
        exports = self.export_cache.get(id(slot.value))
        if exports is None:
            exports = self.adapter.exports(slot.value)
            self.export_cache[id(slot.value)] = exports
        return exports.get(field_name)

    def module_scope(self, module: ModuleCmd) -> str | None:
        if self.tiers is None:
            return None
        entry = self.module_tiers.get(module.line)
        if entry is None:
            return None
        return _tier_reason(entry[0], entry[1], self.tiers)

    def value_scope(self, command: Command) -> str | None:
        if self.tiers is None:
            return None
        types = value_types(command) - _MVP_TYPES
        if not types:
            return None
        needed = sorted({TYPE_FEATURE.get(t, "gc") for t in types})
        names = [f for f in needed if FEATURE_TIER.get(f, "3.0+") not in self.tiers]
        return ",".join(names) if names else None

    def binary_of(self, module: ModuleCmd) -> bytes:
        if module.form == "binary":
            assert module.binary is not None
            return module.binary
        if module.form == "quote":
            if module.quote_error:
                raise TextRejected(module.quote_error)
            return wat_to_wasm(module.quote_text or "")
        return wat_to_wasm(module.text or "")

    def instantiate(self, compiled: object) -> object:
        self._import_problems = []
        try:
            return self.adapter.instantiate(compiled, self.imports)
        except LinkFailed:
            problems = self._import_problems
            for slot in problems:
                if slot.state == "skipped":
                    raise _Skip(slot.value) from None
            for slot in problems:
                raise _Fail(f"imports from a module that did not load: {slot.value}") from None
            raise

    def slot(self, module_id: str | None) -> _Slot:
        slot = self.named.get(module_id) if module_id else self.current
        if slot is None:
            raise _Fail(f"unknown module {module_id}" if module_id else "no current module")
        return slot

    def target(self, module_id: str | None) -> object:
        slot = self.slot(module_id)
        if slot.state == "skipped":
            raise _Skip(slot.value)
        if slot.state != "loaded":
            raise _Fail(slot.value if slot.state == "broken"
                        else f"module {module_id} is a definition, not an instance")
        return slot.value

    def perform(self, action: Action) -> list[Value]:
        instance = self.target(action.module)
        if action.op == "get":
            return [self.adapter.get_global(instance, action.name)]
        return list(self.adapter.invoke(instance, action.name, list(action.args)))

    def check_scope(self, command: Command, action: Action | None) -> None:
        if action is not None:
            slot = self.slot(action.module)
            if slot.state == "skipped":
                raise _Skip(slot.value)
        reason = self.value_scope(command)
        if reason:
            raise _Skip(reason)

    def check_message(self, what: str, expected: str, error: Exception) -> None:
        """With ``check_messages``, the engine's message must start with (or contain)
        the script's message, as the reference interpreter requires."""
        if not self.check_messages:
            return
        got = " ".join(str(getattr(error, "message", None) or error).split())
        if not (got.startswith(expected) or expected in got):
            raise _Fail(f"{what} message {got!r} does not match {expected!r}")

    def set_module(self, name: str | None, slot: _Slot) -> None:
        self.current = slot
        if name:
            self.named[name] = slot

    # -- commands

    def run(self, commands: list[Command]) -> None:
        result = self.result
        for command in commands:
            kind = command.kind
            try:
                self.dispatch(command)
            except _Skip as e:
                reason = str(e)
                result.count(kind, "skipped")
                result.skip_reasons[reason] += 1
            except UnsupportedFeature as e:
                result.count(kind, "skipped")
                result.skip_reasons[e.feature] += 1
            except _Fail as e:
                self.fail(command, str(e))
            except Exception as e:  # noqa: BLE001 - an engine bug: count it, carry on
                self.fail(command, f"unexpected {type(e).__name__}: {e}")
            else:
                result.count(kind, "passed")

    def fail(self, command: Command, message: str) -> None:
        self.result.count(command.kind, "failed")
        message = " ".join(message.split())
        if len(message) > 600:
            message = message[:597] + "..."
        self.result.failures.append(Failure(self.result.file, command.line, command.kind, message))

    def dispatch(self, command: Command) -> None:
        if isinstance(command, ModuleCmd):
            self.do_module(command)
        elif isinstance(command, ModuleInstance):
            self.do_module_instance(command)
        elif isinstance(command, Action):
            self.check_scope(command, command)
            try:
                self.perform(command)
            except (Trapped, Exhausted) as e:
                raise _Fail(f"action trapped: {e}") from None
        elif isinstance(command, AssertReturn):
            self.do_assert_return(command)
        elif isinstance(command, AssertTrap):
            if isinstance(command.action, ModuleCmd):
                self.do_module_trap(command.action, command.message)
            else:
                assert command.action is not None
                self.do_action_trap(command, command.action, command.message)
        elif isinstance(command, AssertExhaustion):
            assert command.action is not None
            self.do_exhaustion(command, command.action, command.message)
        elif isinstance(command, (AssertInvalid, AssertMalformed)):
            self.do_rejected(command)
        elif isinstance(command, AssertUnlinkable):
            assert command.module is not None
            self.do_unlinkable(command.module, command.message)
        elif isinstance(command, AssertUninstantiable):
            assert command.module is not None
            self.do_module_trap(command.module, command.message)
        elif isinstance(command, Register):
            self.do_register(command)
        elif isinstance(command, AssertException):
            raise _Skip("exceptions (assert_exception)")
        elif isinstance(command, Unsupported):
            if command.error:
                raise _Fail(command.error)
            raise _Skip(command.reason)
        else:
            raise _Skip(f"unknown command {type(command).__name__}")

    def do_module(self, module: ModuleCmd) -> None:
        reason = self.module_scope(module)
        slot = _Slot("broken", f"module at line {module.line} did not load", module.line)
        if module.definition:
            self.definitions[module.name] = slot
            self.definitions[None] = slot
        else:
            self.set_module(module.name, slot)
        if reason:
            slot.state, slot.value = "skipped", reason
            raise _Skip(reason)
        try:
            try:
                wasm = self.binary_of(module)
            except TextRejected as e:
                raise _Fail(f"the text parser rejected the module: {e}") from None
            try:
                compiled = self.adapter.compile(wasm)
            except CompileRejected as e:
                raise _Fail(f"module rejected ({e})") from None
            if module.definition:
                slot.state, slot.value = "defined", compiled
                return
            try:
                instance = self.instantiate(compiled)
            except LinkFailed as e:
                raise _Fail(f"link failed: {e}") from None
            except (Trapped, Exhausted) as e:
                raise _Fail(f"instantiation trapped: {e}") from None
        except _Fail as e:
            slot.value = f"module at line {module.line} did not load: {e}"
            raise
        except (_Skip, UnsupportedFeature) as e:
            slot.state = "skipped"
            slot.value = e.feature if isinstance(e, UnsupportedFeature) else str(e)
            raise
        except Exception as e:
            slot.value = f"module at line {module.line} did not load: {type(e).__name__}: {e}"
            raise
        slot.state, slot.value = "loaded", instance

    def do_module_instance(self, command: ModuleInstance) -> None:
        definition = self.definitions.get(command.module)
        slot = _Slot("broken", f"module instance at line {command.line} did not load",
                     command.line)
        self.set_module(command.instance, slot)
        if definition is None:
            raise _Fail(f"unknown module definition {command.module}")
        if definition.state == "skipped":
            slot.state, slot.value = "skipped", definition.value
            raise _Skip(definition.value)
        if definition.state != "defined":
            slot.value = definition.value
            raise _Fail(definition.value)
        try:
            instance = self.instantiate(definition.value)
        except (LinkFailed, Trapped, Exhausted) as e:
            slot.value = f"module instance at line {command.line} did not load: {e}"
            raise _Fail(slot.value) from None
        slot.state, slot.value = "loaded", instance

    def do_register(self, command: Register) -> None:
        slot = self.slot(command.module_id)
        self.registered[command.name] = slot
        if slot.state == "skipped":
            raise _Skip(slot.value)
        if slot.state != "loaded":
            raise _Fail(f"cannot register: {slot.value}")

    def do_assert_return(self, command: AssertReturn) -> None:
        action = command.action
        assert action is not None
        self.check_scope(command, action)
        expected = command.expected
        try:
            results = self.perform(action)
        except Trapped as e:
            raise _Fail(f"expected {_format_expected(expected)}, got trap: {e}") from None
        except Exhausted as e:
            raise _Fail(f"expected {_format_expected(expected)}, got exhaustion: {e}") from None
        if len(results) != len(expected) or not all(
                match_value(exp, got) for exp, got in zip(expected, results, strict=True)):
            raise _Fail(f"{action.name}: expected {_format_expected(expected)}, "
                        f"got {_format_results(results)}")

    def do_action_trap(self, command: Command, action: Action, message: str) -> None:
        self.check_scope(command, action)
        try:
            results = self.perform(action)
        except Trapped as e:
            self.check_message("trap", message, e)
            return
        except Exhausted as e:
            raise _Fail(f"expected trap {message!r}, got exhaustion: {e}") from None
        raise _Fail(f"{action.name}: expected trap {message!r}, got {_format_results(results)}")

    def do_exhaustion(self, command: Command, action: Action, message: str) -> None:
        self.check_scope(command, action)
        try:
            results = self.perform(action)
        except Exhausted as e:
            self.check_message("exhaustion", message, e)
            return
        except Trapped as e:
            raise _Fail(f"expected exhaustion {message!r}, got trap: {e}") from None
        raise _Fail(f"{action.name}: expected exhaustion {message!r}, "
                    f"got {_format_results(results)}")

    def compile_for_assert(self, module: ModuleCmd, expected: str) -> object:
        reason = self.module_scope(module)
        if reason:
            raise _Skip(reason)
        try:
            wasm = self.binary_of(module)
        except TextRejected as e:
            raise _Fail(f"the text parser rejected the module: {e}") from None
        try:
            return self.adapter.compile(wasm)
        except CompileRejected as e:
            raise _Fail(f"expected {expected}, module rejected ({e})") from None

    def do_module_trap(self, module: ModuleCmd, message: str) -> None:
        compiled = self.compile_for_assert(module, f"trap {message!r}")
        try:
            self.instantiate(compiled)
        except Trapped as e:
            self.check_message("trap", message, e)
            return
        except LinkFailed as e:
            raise _Fail(f"expected trap {message!r}, link failed: {e}") from None
        except Exhausted as e:
            raise _Fail(f"expected trap {message!r}, got exhaustion: {e}") from None
        raise _Fail(f"expected trap {message!r}, module instantiated")

    def do_unlinkable(self, module: ModuleCmd, message: str) -> None:
        compiled = self.compile_for_assert(module, f"link failure {message!r}")
        try:
            self.instantiate(compiled)
        except LinkFailed as e:
            self.check_message("link failure", message, e)
            return
        except (Trapped, Exhausted) as e:
            raise _Fail(f"expected link failure {message!r}, got trap: {e}") from None
        raise _Fail(f"expected link failure {message!r}, module instantiated")

    def do_rejected(self, command: AssertInvalid | AssertMalformed) -> None:
        module = command.module
        assert module is not None
        want = "malformed" if isinstance(command, AssertMalformed) else "invalid"
        try:
            wasm = self.binary_of(module)
        except TextRejected:
            if want == "malformed":
                self.result.notes["assert_malformed: rejected by the text parser"] += 1
                return
            raise _Skip("the text parser rejected an assert_invalid module") from None
        try:
            self.adapter.compile(wasm)
        except CompileRejected as e:
            if e.kind != want:
                self.result.notes[f"{command.kind}: engine said {e.kind}"] += 1
            self.check_message(want, command.message, e)
            return
        raise _Fail(f"module compiled, expected {want} ({command.message!r})")


def run_file(path: str | Path, adapter: EngineAdapter,
             tiers: Iterable[str] | None = DEFAULT_TIERS,
             spec_dir: str | Path | None = None, *, check_messages: bool = False) -> FileResult:
    """Run one script.  ``tiers`` limits the modules (and the commands on them) that
    are run, by MODULES.tsv (next to the file, or in ``spec_dir``); None runs all.

    By default only the *kind* of outcome is checked (a trap, a link failure, a
    rejection).  With ``check_messages`` the engine's message must also start with
    (or contain) the script's expected message."""
    path = Path(path)
    result = FileResult(file=path.name, path=str(path))
    start = time.perf_counter()
    module_tiers = load_module_tiers(spec_dir if spec_dir is not None else path.parent)
    tier_set = None if tiers is None else frozenset(tiers)
    try:
        commands = parse_file(path, strict=False)
    except (WastSyntaxError, OSError) as e:
        result.error = str(e)
        result.failures.append(Failure(result.file, getattr(e, "line", 0), "script", str(e)))
        result.seconds = time.perf_counter() - start
        return result
    reset = getattr(adapter, "reset", None)
    try:
        if callable(reset):
            reset()
    except Exception as e:  # noqa: BLE001 - keep going; the commands show the damage
        result.notes[f"adapter reset failed: {type(e).__name__}: {e}"] += 1
    run = _FileRun(path, adapter, tier_set, module_tiers.get(path.name, {}), result,
                   check_messages)
    run.run(commands)
    result.seconds = time.perf_counter() - start
    return result


def run_files(paths: Iterable[str | Path], adapter: EngineAdapter,
              tiers: Iterable[str] | None = DEFAULT_TIERS,
              spec_dir: str | Path | None = None,
              progress: Callable[[FileResult], None] | None = None, *,
              check_messages: bool = False) -> dict[str, FileResult]:
    """Run several scripts; returns ``{file name: FileResult}`` in the given order
    (use :func:`to_json`, :func:`totals` or :func:`format_table` on it)."""
    tier_list = None if tiers is None else tuple(tiers)
    out: dict[str, FileResult] = {}
    for path in paths:
        result = run_file(path, adapter, tier_list, spec_dir, check_messages=check_messages)
        if result.file in out:  # two files of the same name: tell them apart
            result.file = str(path)
        out[result.file] = result
        if progress is not None:
            progress(result)
    return out


# --------------------------------------------------------------------------- command line


def _load_adapter(spec: str) -> EngineAdapter:
    import importlib

    module_name, _, attr = spec.partition(":")
    factory = getattr(importlib.import_module(module_name), attr or "Adapter")
    return factory()


def main(argv: list[str] | None = None) -> int:
    """``python -m wasmlower.spec.runner [files...]``: run scripts, print a table."""
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m wasmlower.spec.runner",
                                     description="Run .wast spec scripts against an engine.")
    parser.add_argument("files", nargs="*", help="scripts (default: the in-scope suite files)")
    parser.add_argument("--engine", default="wasmlower.spec.wasmtime_engine:WasmtimeAdapter",
                        help="adapter factory as module:callable (default: %(default)s)")
    parser.add_argument("--tiers", default=",".join(DEFAULT_TIERS),
                        help="comma-separated tiers to run, or 'all' (default: %(default)s)")
    parser.add_argument("--json", metavar="PATH", help="also write to_json() output here")
    parser.add_argument("--check-messages", action="store_true",
                        help="also require the engine's trap/error messages to match")
    parser.add_argument("--failures", type=int, default=20, metavar="N",
                        help="print the first N failures (default: %(default)s)")
    args = parser.parse_args(argv)
    tiers = None if args.tiers == "all" else tuple(t for t in args.tiers.split(",") if t)
    if args.files:
        paths = [Path(f) for f in args.files]
    else:
        spec_dir = find_spec_dir()
        if spec_dir is None:
            parser.error("no test suite: set WASMLOWER_SPEC_DIR or give files")
        paths = scope_files(spec_dir, tiers)
    results = run_files(paths, _load_adapter(args.engine), tiers,
                        check_messages=args.check_messages)
    print(format_table(results))
    data = to_json(results)
    if data["skip_reasons"]:
        print("skipped by reason:", ", ".join(f"{k}: {v}" for k, v in data["skip_reasons"].items()))
    for failure in data["failures"][:args.failures]:
        print(f"{failure['file']}:{failure['line']}: {failure['kind']}: {failure['message']}")
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=1), encoding="utf-8")
    return 1 if data["failures"] or data["file_errors"] else 0


if __name__ == "__main__":
    # Run the copy importable as wasmlower.spec.runner: adapters raise *its* exceptions.
    from wasmlower.spec.runner import main as _main

    raise SystemExit(_main())

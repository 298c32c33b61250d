"""Filetests: IR input and expected output in one file (``tests/filetests/<stage>/<topic>.ir``).

A file starts with its commands and target, then holds IR functions, each
followed by its expected output as ``;`` comment lines::

    test lower
    target x64

    ; Small constants use the immediate form.      <- a description: before `func`
    func @add_imm(i32) -> i32 {
    block0(v0: i32):
        v1 = iconst.i32 [7]
        v2 = iadd v0, v1
        return v2
    }

    ; block0:                                      <- expected output: the `;` lines
    ;     v0 = x64.params.i32                         right after `}` (blank lines
    ;     v2 = x64.add32_ri.i32 v0 [7]  ; ...         between are allowed)
    ;     x64.ret v2                    ; ...

The expected block ends at the first line that does not start with ``;``.
Comment lines directly above a ``func`` line (no blank line between) are
that function's description, never an expected block; keep a blank line
between an expected block and the next description (blessing does).  A
bare ``;`` line is an empty output line.

Commands (one printing command per file, optionally with ``run``):

- ``lower``: the function after ``isolate_edge_args`` and ``pipeline.lower``,
  each machine op with its rule (``format_function(rules=True)``), the
  ``func``/``}`` lines left out.  A lowering error prints ``error: ...``.
- ``regalloc``: the allocation (``regalloc.format_allocation``: operand
  locations per instruction, moves, spill slots, callee-saved registers).
- ``emit``: the machine code: offset, bytes (keystone) and capstone's
  disassembly, with the labels.
- ``verify``: the verifier (or the IR parser) must report exactly the
  ``; error: <text>`` annotations, on the lines they annotate; ``<text>`` is
  a substring of the message.  A function without annotations must verify.
- ``run``: ``; run: @f(10) == 55`` lines (anywhere after the header) call a
  function natively: it is compiled with the x64 rules, wrapped into a
  one-function module with one page of zeroed memory and run by the real
  runtime.  ``== (a, b)`` for several results, ``traps KIND`` for a trap,
  nothing after the call to only run it.  Functions must not call others.

Every printing test also verifies the input and the lowered function, and
runs the allocation checker.

``pytest tests/filetests --bless`` (or ``WASMLOWER_BLESS=1``) rewrites the
expected blocks and ``; error:`` annotations with what the compiler does now;
``; run:`` lines are assertions and are never rewritten.  A failing filetest
shows a unified diff of the file and this hint.
"""

from __future__ import annotations

import difflib
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import pytest

FILETESTS = Path(__file__).parent / "filetests"
PRINTING = ("lower", "regalloc", "emit")
COMMANDS = (*PRINTING, "verify", "run")
BLESS_HINT = ("run `pytest tests/filetests --bless` (or set WASMLOWER_BLESS=1) to accept the "
              "new output, after checking the diff")
_RUN = re.compile(r"^;\s*run:\s*@([\w.$-]+)\((.*?)\)\s*(?:(==|traps)\s*(.*?))?\s*$")
_ERROR = re.compile(r";\s*error:\s*(.*?)\s*$")


class FiletestError(Exception):
    """The filetest itself is malformed (bad header, unknown command, bad run line)."""


# ---------------------------------------------------------------------------
# The file model
# ---------------------------------------------------------------------------

@dataclass
class Section:
    """One function of a filetest: its lines and where its expected block is."""
    name: str
    start: int                 # index of the `func` line
    end: int                   # index of the closing `}`
    exp_start: int             # expected block: lines[exp_start:exp_end]
    exp_end: int

    def source(self, lines: list[str]) -> str:
        return "\n".join(lines[self.start:self.end + 1])


@dataclass
class FileTest:
    path: Path
    text: str
    commands: list[str]
    target: str
    lines: list[str]
    sections: list[Section] = field(default_factory=list)
    runs: list[tuple[int, str]] = field(default_factory=list)     # (line index, line)

    @classmethod
    def parse(cls, path: Path, text: str | None = None) -> FileTest:
        text = path.read_text() if text is None else text
        lines = text.splitlines()
        commands: list[str] = []
        target = ""
        i = 0
        while i < len(lines) and not lines[i].startswith("func "):
            ln = lines[i].strip()
            if ln.startswith("test "):
                commands.append(ln.split(None, 1)[1].strip())
            elif ln.startswith("target "):
                target = ln.split(None, 1)[1].strip()
            elif ln and not ln.startswith(";"):
                raise FiletestError(f"{path}:{i + 1}: expected `test CMD`, `target ISA`, a "
                                    f"comment or a function, found {ln!r}")
            i += 1
        if not commands:
            raise FiletestError(f"{path}: no `test` line (commands: {', '.join(COMMANDS)})")
        for c in commands:
            if c not in COMMANDS:
                raise FiletestError(f"{path}: unknown command `test {c}` "
                                    f"(commands: {', '.join(COMMANDS)})")
        if sum(c in PRINTING for c in commands) > 1:
            raise FiletestError(f"{path}: at most one of {', '.join(PRINTING)} per file")
        if target not in ("x64", "x86_64"):
            raise FiletestError(f"{path}: `target x64` is required (found {target or 'none'!r})")
        ft = cls(path, text, commands, "x64", lines)
        while i < len(lines):
            ln = lines[i]
            if _RUN.match(ln.strip()):
                ft.runs.append((i, ln.strip()))
            if not ln.startswith("func "):
                i += 1
                continue
            m = re.match(r"func\s+@([\w.$-]+)", ln)
            name = m.group(1) if m else "?"
            end = i + 1
            while end < len(lines) and lines[end].split(";", 1)[0].strip() != "}":
                if _RUN.match(lines[end].strip()):
                    ft.runs.append((end, lines[end].strip()))
                end += 1
            if end == len(lines):
                raise FiletestError(f"{path}:{i + 1}: function @{name} has no closing `}}`")
            k = end + 1
            while k < len(lines) and not lines[k].strip():
                k += 1
            exp_start = k
            while (k < len(lines) and lines[k].startswith(";")
                   and not _RUN.match(lines[k].strip())):
                k += 1
            if k == exp_start or (k < len(lines) and lines[k].startswith("func ")):
                # No block, or comments right above the next function: its description.
                exp_start = k = end + 1
            ft.sections.append(Section(name, i, end, exp_start, k))
            i = k
        return ft


# ---------------------------------------------------------------------------
# Running one section
# ---------------------------------------------------------------------------

def _lower(src: str):
    from wasmlower import pipeline
    from wasmlower.ir import parse_function, verify
    from wasmlower.regalloc import isolate_edge_args

    func = parse_function(src)
    verify(func, "input")
    isolate_edge_args(func)
    pipeline.lower(func, "x86_64")
    verify(func, "lower")
    return func


def _body(text: str) -> list[str]:
    """A printed function without its `func ... {` and `}` lines."""
    return text.splitlines()[1:-1]


def output(command: str, src: str) -> list[str]:
    """The output of a printing ``command`` for the function ``src``."""
    from wasmlower.errors import CompileError
    from wasmlower.explain import compile_lowered
    from wasmlower.ir import format_function
    from wasmlower.isa.x64.regs import regfile
    from wasmlower.regalloc import format_allocation

    try:
        func = _lower(src)
        if command == "lower":
            return _body(format_function(func, rules=True))
        mc = compile_lowered(func, check=True)
        if command == "regalloc":
            return format_allocation(func, mc.alloc, regfile()).splitlines()
        out = []
        for mi in mc.insts:
            out += [f"{label}:" for label in mc.labels.get(mi.offset, ())]
            out.append(f"  {mi.offset:#06x}  {mi.data.hex(' '):<30} {mi.asm}")
        out += [f"{label}:" for label in mc.labels.get(len(mc.code), ())]
        return out
    except CompileError as e:
        return [f"error: {str(e).splitlines()[0]}"]


_VERIFIER_MESSAGE = re.compile(r"^(?:.*?: )?function @[\w.$-]+(?: in block(\d+))?: (.*)$")


def _norm(text: str) -> str:
    return " ".join(text.split(";", 1)[0].split())


def verify_error(src: str) -> tuple[int, str] | None:
    """``(line index within src, message)`` of the first parse/verify error, or None."""
    from wasmlower.ir import parse_function, verify
    from wasmlower.ir.text import IRParseError
    from wasmlower.ir.verify import VerifierError

    lines = src.splitlines()
    try:
        func = parse_function(src)
    except IRParseError as e:
        message = str(e).splitlines()[0].split(": ", 1)[-1]
        return e.line - 1, message
    try:
        verify(func)
    except VerifierError as e:
        first, *rest = str(e).splitlines()
        m = _VERIFIER_MESSAGE.match(first)
        block, message = (m.group(1), m.group(2)) if m else (None, first)
        inst = _norm(rest[0]) if rest else ""
        if inst:
            for k, ln in enumerate(lines):
                if _norm(ln) == inst:
                    return k, message
        if block is not None:
            for k, ln in enumerate(lines):
                if re.match(rf"\s*block{block}\b", ln):
                    return k, message
        return 0, message
    return None


# ---------------------------------------------------------------------------
# Native runs
# ---------------------------------------------------------------------------

def _leb(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _vec(items: list[bytes]) -> bytes:
    return _leb(len(items)) + b"".join(items)


def stub_module(params, results, pages: int = 1) -> bytes:
    """A wasm module exporting one function `f` of this signature (body: unreachable)."""
    vt = {"i32": 0x7F, "i64": 0x7E, "f32": 0x7D, "f64": 0x7C}

    def sec(n: int, payload: bytes) -> bytes:
        return bytes([n]) + _leb(len(payload)) + payload

    def name(s: str) -> bytes:
        return _leb(len(s)) + s.encode()

    ft = (b"\x60" + _vec([bytes([vt[str(t)]]) for t in params])
          + _vec([bytes([vt[str(t)]]) for t in results]))
    body = b"\x00\x00\x0b"
    return (b"\0asm\1\0\0\0" + sec(1, _vec([ft])) + sec(3, _vec([_leb(0)]))
            + sec(5, _vec([b"\x00" + _leb(pages)]))
            + sec(7, _vec([name("f") + b"\x00" + _leb(0), name("memory") + b"\x02" + _leb(0)]))
            + sec(10, _vec([_leb(len(body)) + body])))


def native_function(src: str):
    """Compile IR function ``src`` and instantiate it natively; return the callable export."""
    from wasmlower import pipeline
    from wasmlower.emit.compiled import CompiledFunction, CompiledModule
    from wasmlower.explain import compile_lowered
    from wasmlower.isa.x64.trampolines import build_trampolines
    from wasmlower.runtime import Instance
    from wasmlower.wasm import decode_module

    func = _lower(src)
    if any(i.op in ("x64.call", "x64.call_import", "x64.call_indirect") for _, i in func.insts()):
        raise FiletestError("run: functions that call other functions are not supported")
    wasm = stub_module(func.params, func.results)
    module = decode_module(wasm)
    info = pipeline.ModuleInfo(module)
    mc = compile_lowered(func, info, check=True)
    tramp, h2w, w2h, trap = build_trampolines([module.types[0]])
    text = bytearray(mc.code)
    text += b"\xcc" * (-len(text) % 16)
    base = len(text)
    text += tramp
    addrmap = [(mi.offset, mi.loc) for mi in mc.insts if mi.loc is not None]
    cf = CompiledFunction(0, func.name, 0, len(mc.code), addrmap, list(mc.traps))
    compiled = CompiledModule(module, bytes(text), [cf], [],
                              {k: v + base for k, v in h2w.items()},
                              {k: v + base for k, v in w2h.items()},
                              trap + base, info.libcall_names, "x86_64", wasm)
    return Instance(compiled).exports["f"], func


def _parse_value(text: str, t) -> int:
    """Bits of a literal of IR type ``t``: ints (any base, negative), floats, or 0x float bits."""
    text = text.strip()
    if t.is_int:
        return int(text, 0) & ((1 << t.bits) - 1)
    if text.lower().startswith(("0x", "-0x")) and "." not in text and "p" not in text.lower():
        return int(text, 0) & ((1 << t.bits) - 1)
    fmt = "<f" if t.bits == 32 else "<d"
    return int.from_bytes(struct.pack(fmt, float(text)), "little")


def check_run(line: str, functions: dict[str, str]) -> str | None:
    """Run one ``; run:`` line; None if it holds, else what happened."""
    from wasmlower.errors import Trap
    from wasmlower.runtime import to_bits
    from wasmlower.wasm.module import ValType

    m = _RUN.match(line)
    if m is None:
        raise FiletestError(f"bad run line: {line}")
    name, args_text, relation, expected_text = m.groups()
    if name not in functions:
        raise FiletestError(f"run: no function @{name} in this file")
    f, func = native_function(functions[name])
    args_list = [a for a in args_text.split(",") if a.strip()]
    if len(args_list) != len(func.params):
        raise FiletestError(f"run: @{name} takes {len(func.params)} argument(s)")
    from wasmlower.runtime import from_bits
    args = [from_bits(ValType(str(t)), _parse_value(a, t)) for a, t in zip(args_list, func.params)]
    try:
        result = f(*args)
    except Trap as e:
        if relation == "traps":
            return None if e.kind == expected_text.strip() else f"trapped with {e.kind}"
        return f"trapped with {e.kind}"
    if relation == "traps":
        return f"returned {result!r} instead of trapping"
    if relation is None:
        return None
    values = result if isinstance(result, tuple) else (() if result is None else (result,))
    got = [to_bits(ValType(str(t)), v) for t, v in zip(func.results, values)]
    want_text = expected_text.strip()
    if want_text.startswith("(") and want_text.endswith(")"):
        want_text = want_text[1:-1]
    wants = [w for w in want_text.split(",") if w.strip()]
    if len(wants) != len(func.results):
        raise FiletestError(f"run: @{name} returns {len(func.results)} value(s)")
    want = [_parse_value(w, t) for w, t in zip(wants, func.results)]
    if got != want:
        shown = ", ".join(repr(v) for v in values)
        return f"returned {shown} (bits {', '.join(hex(g) for g in got)})"
    return None


# ---------------------------------------------------------------------------
# A whole file
# ---------------------------------------------------------------------------

@dataclass
class Outcome:
    new_text: str                  # the file with the actual output (what --bless writes)
    run_failures: list[str]


def run_filetest(ft: FileTest) -> Outcome:
    lines = list(ft.lines)
    printing = next((c for c in ft.commands if c in PRINTING), None)
    replacements: list[tuple[int, int, list[str]]] = []
    for s in ft.sections:
        src = s.source(ft.lines)
        if "verify" in ft.commands:
            err = verify_error(src)
            for k in range(s.start, s.end + 1):          # drop old annotations
                m = _ERROR.search(lines[k])
                if m:
                    lines[k] = lines[k][:m.start()].rstrip()
            if err is not None:
                k = s.start + err[0]
                expected = _ERROR.search(ft.lines[k])
                if expected and expected.group(1) in err[1] and expected.group(1):
                    lines[k] = ft.lines[k]                # the annotation holds: keep it
                else:
                    lines[k] = f"{lines[k]:<39} ; error: {err[1]}"
        if printing is not None:
            out = output(printing, src)
            block = [f"; {ln}" if ln else ";" for ln in out]
            if s.exp_start == s.end + 1:
                block = ["", *block]
            if s.exp_end < len(lines) and lines[s.exp_end].strip():
                block.append("")                   # keep the next description apart
            replacements.append((s.exp_start, s.exp_end, block))
    for start, end, block in reversed(replacements):
        lines[start:end] = block
    new_text = "\n".join(lines) + ("\n" if ft.text.endswith("\n") or not ft.text else "")
    failures = []
    if "run" in ft.commands:
        functions = {s.name: s.source(ft.lines) for s in ft.sections}
        for index, line in ft.runs:
            problem = check_run(line, functions)
            if problem is not None:
                failures.append(f"{ft.path}:{index + 1}: {line}\n  {problem}")
    return Outcome(new_text, failures)


def blessing(config: pytest.Config | None = None) -> bool:
    if os.environ.get("WASMLOWER_BLESS", "") not in ("", "0"):
        return True
    return bool(config is not None and config.getoption("--bless", default=False))


class FiletestFailure(Exception):
    pass


def check_file(path: Path, bless: bool = False) -> None:
    """Run the filetest at ``path``; raise ``FiletestFailure`` with a diff if it fails."""
    ft = FileTest.parse(path)
    outcome = run_filetest(ft)
    problems = []
    if outcome.new_text != ft.text:
        if bless:
            path.write_text(outcome.new_text)
        else:
            diff = "".join(difflib.unified_diff(
                ft.text.splitlines(keepends=True), outcome.new_text.splitlines(keepends=True),
                f"{path} (expected)", f"{path} (actual)"))
            problems.append(f"{path}: the output differs from the expectation:\n{diff}"
                            f"hint: {BLESS_HINT}")
    problems += outcome.run_failures
    if problems:
        raise FiletestFailure("\n".join(problems))


class IrFile(pytest.File):
    def collect(self):
        yield IrItem.from_parent(self, name=self.path.name)


class IrItem(pytest.Item):
    def runtest(self) -> None:
        check_file(self.path, blessing(self.config))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, (FiletestFailure, FiletestError)):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, 0, f"filetest {self.path.relative_to(FILETESTS)}"


# ---------------------------------------------------------------------------
# Tests of the machinery itself
# ---------------------------------------------------------------------------

SAMPLE = """\
test lower
target x64

; iadd with a small constant
func @add_imm(i32) -> i32 {
block0(v0: i32):
    v1 = iconst.i32 [7]
    v2 = iadd v0, v1
    return v2
}
"""


def test_the_corpus_is_big_enough():
    files = sorted(FILETESTS.rglob("*.ir"))
    assert len(files) >= 12
    assert {p.parent.name for p in files} >= {"lower", "regalloc", "emit", "verify", "run"}


def test_bless_writes_the_output_then_the_file_passes(tmp_path):
    p = tmp_path / "t.ir"
    p.write_text(SAMPLE)
    with pytest.raises(FiletestFailure) as e:
        check_file(p)
    assert "+; block0:" in str(e.value) and "add32_ri" in str(e.value)
    assert "--bless" in str(e.value)
    check_file(p, bless=True)
    text = p.read_text()
    assert text.startswith(SAMPLE) and "x64.add32_ri.i32 v0 [7]" in text
    assert "isa/x64/lower.rules:" in text
    check_file(p)                       # blessed: passes, and blessing again changes nothing
    check_file(p, bless=True)
    assert p.read_text() == text


def test_a_wrong_expectation_fails_with_a_diff(tmp_path):
    p = tmp_path / "t.ir"
    p.write_text(SAMPLE)
    check_file(p, bless=True)
    p.write_text(p.read_text().replace("x64.add32_ri", "x64.sub32_ri"))
    with pytest.raises(FiletestFailure) as e:
        check_file(p)
    message = str(e.value)
    assert "-;     v2 = x64.sub32_ri" in message and "+;     v2 = x64.add32_ri" in message
    assert BLESS_HINT in message


def test_the_environment_variable_blesses(monkeypatch):
    monkeypatch.setenv("WASMLOWER_BLESS", "1")
    assert blessing(None)
    monkeypatch.setenv("WASMLOWER_BLESS", "0")
    assert not blessing(None)


def test_descriptions_and_several_functions_survive_blessing(tmp_path):
    two = SAMPLE + "\n; second one\nfunc @neg(i64) -> i64 {\nblock0(v0: i64):\n" \
        "    v1 = iconst.i64 [0]\n    v2 = isub v1, v0\n    return v2\n}\n"
    p = tmp_path / "t.ir"
    p.write_text(two)
    check_file(p, bless=True)
    text = p.read_text()
    assert text.count("; block0:") == 2 and "; second one\nfunc @neg" in text
    assert "; iadd with a small constant\nfunc @add_imm" in text
    check_file(p)


VERIFY = """\
test verify
target x64

func @bad(i32, i64) -> i32 {
block0(v0: i32, v1: i64):
    v2 = iadd v0, v1                    ; error: argument v1 has type i64
    return v2
}
"""


def test_verify_annotations_are_checked(tmp_path):
    p = tmp_path / "v.ir"
    p.write_text(VERIFY)
    check_file(p)
    p.write_text(VERIFY.replace("; error: argument v1 has type i64", ""))
    with pytest.raises(FiletestFailure) as e:
        check_file(p)
    assert "+    v2 = iadd v0, v1" in str(e.value) and "; error: argument v1" in str(e.value)
    p.write_text(VERIFY.replace("argument v1 has type i64", "something else"))
    with pytest.raises(FiletestFailure):
        check_file(p)


def test_run_lines_are_checked(tmp_path):
    p = tmp_path / "r.ir"
    body = "test run\ntarget x64\n\nfunc @f(i32) -> i32 {\nblock0(v0: i32):\n" \
           "    v1 = iconst.i32 [3]\n    v2 = imul v0, v1\n    return v2\n}\n"
    p.write_text(body + "; run: @f(5) == 15\n; run: @f(-1) == -3\n")
    check_file(p)
    p.write_text(body + "; run: @f(5) == 16\n")
    with pytest.raises(FiletestFailure) as e:
        check_file(p)
    assert "returned 15" in str(e.value)


def test_malformed_files_are_reported(tmp_path):
    p = tmp_path / "m.ir"
    p.write_text("test frobnicate\ntarget x64\n")
    with pytest.raises(FiletestError, match="unknown command"):
        check_file(p)
    p.write_text("test lower\n")
    with pytest.raises(FiletestError, match="target x64"):
        check_file(p)

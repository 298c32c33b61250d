"""Benchmarks against Wasmtime (and native C): ``wasmlower bench`` / ``python -m wasmlower.bench``.

A benchmark, never a timed test: it prints numbers and checks results, and
its exit status says only whether every result was correct.

Two parts, both measured in one process, side by side with Wasmtime:

- **programs** (``DIR/bench.json``): each program is compiled by wasmlower and
  by Wasmtime, instantiated, and its export called with the listed arguments
  (``--quick``: the small ``quick_args``); the best of ``--repeat`` calls is
  kept and every call's result is checked against ``expected`` (i32/i64
  compare as signed integers of their width).  If a C compiler is available
  (clang, else cc/gcc) the program's ``.c`` is also built natively with
  ``-O2`` and timed by a tiny C ``main`` in a separate translation unit.
- **compile speed** (``DIR/compile/compile.json``): larger modules, compiled
  once each; wasm KB/s, functions/s and time per pipeline stage, and the entry
  export run once to check its result.

Wasmtime compiles with ``parallel_compilation`` off, like wasmlower (which is
serial).  Before anything is timed, wasmlower compiles one small module as a
warm-up, so imports, rule loading and numba's cached kernels are paid once and
reported separately ("warm-up").  Cold versus warm numba (an empty
``__pycache__``) is not measured here.

Ratios are ours / Wasmtime (higher is slower); the summary is the geometric
mean of the run-time ratios over the programs both engines got right.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "STAGES", "CompileResult", "EngineRun", "ProgramResult", "Report", "WasmlowerBackend",
    "WasmtimeBackend", "count_functions", "find_bench_dir", "format_report", "geomean",
    "main", "measure", "measure_all", "normalize", "ratio", "run_bench", "stage_totals",
]

#: The compile stages reported by ``Module.stats``, in pipeline order.
STAGES = ("decode", "translate", "optimize", "lower", "regalloc", "encode", "object")


# -- small pure helpers (tested directly) ---------------------------------------------------

def normalize(value: Any, result_type: str | None) -> Any:
    """``value`` as a signed integer of the width of ``result_type`` (i32/i64)."""
    if result_type in ("i32", "i64") and isinstance(value, int) and not isinstance(value, bool):
        width = 32 if result_type == "i32" else 64
        value &= (1 << width) - 1
        return value - (1 << width) if value >> (width - 1) else value
    return value


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """``ours / theirs``, or None when either is missing or ``theirs`` is zero."""
    if ours is None or theirs is None or theirs <= 0:
        return None
    return ours / theirs


def geomean(values: Iterable[float | None]) -> float | None:
    """Geometric mean of the positive values (None and non-positive ones are ignored)."""
    logs = [math.log(v) for v in values if v is not None and v > 0]
    if not logs:
        return None
    return math.exp(sum(logs) / len(logs))


def stage_totals(stats: Iterable[dict[str, float] | None]) -> dict[str, float]:
    """Sum of per-stage seconds over several compiles; known stages first, in order."""
    total: dict[str, float] = dict.fromkeys(STAGES, 0.0)
    for s in stats:
        for k, v in (s or {}).items():
            total[k] = total.get(k, 0.0) + float(v)
    return total


def count_functions(wasm: bytes) -> int:
    """Number of functions defined (not imported) by a binary module."""
    from .wasm import decode_module
    return len(decode_module(wasm).funcs)


def find_bench_dir(explicit: str | None = None) -> Path | None:
    """The bench directory: ``explicit``, ``$WASMLOWER_BENCH_DIR``, or ``<repo>/../shared/bench``.

    The default is looked up next to this package's source tree and next to the
    current directory.  Returns None when none of the candidates exists.
    """
    if explicit:
        return Path(explicit)
    env = os.environ.get("WASMLOWER_BENCH_DIR")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parent.parent
    for base in (repo, Path.cwd(), Path.cwd().parent):
        cand = base.parent / "shared" / "bench"
        if (cand / "bench.json").is_file() or (cand / "compile" / "compile.json").is_file():
            return cand
    return None


def _progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# -- engines ------------------------------------------------------------------------------

class WasmlowerBackend:
    """wasmlower through its public API (``api`` is ``wasmlower.engine`` or a stand-in)."""

    name = "wasmlower"

    def __init__(self, api: Any = None, target: str = "x86_64", opt_level: int = 1,
                 workers: int | None = None) -> None:
        if api is None:
            from wasmlower import engine as api
        self.api = api
        if workers is None:
            self.engine = api.Engine(target=target, opt_level=opt_level)
        else:           # a fixed number of compiling processes (1: this one only)
            from wasmlower.compiler import CompilerBuilder
            builder = CompilerBuilder(target).set("opt_level", opt_level)
            builder.set("parallel_compilation", workers > 1).set("parallel_workers", workers)
            self.engine = api.Engine(builder=builder)

    def compile(self, wasm: bytes) -> tuple[Any, float, dict[str, float]]:
        t0 = time.perf_counter()
        module = self.api.Module(self.engine, wasm)
        seconds = time.perf_counter() - t0
        stats = {k: float(v) for k, v in (getattr(module, "stats", None) or {}).items()}
        return module, seconds, stats

    def function(self, module: Any, export: str) -> Callable[..., Any]:
        instance = self.api.Instance(module)
        return instance.exports[export]


class WasmtimeBackend:
    """The reference: the ``wasmtime`` package, serial compilation."""

    name = "wasmtime"

    def __init__(self) -> None:
        import wasmtime
        self.wasmtime = wasmtime
        config = wasmtime.Config()
        config.parallel_compilation = False
        self.engine = wasmtime.Engine(config)

    def compile(self, wasm: bytes) -> tuple[Any, float, dict[str, float]]:
        t0 = time.perf_counter()
        module = self.wasmtime.Module(self.engine, wasm)
        return module, time.perf_counter() - t0, {}

    def function(self, module: Any, export: str) -> Callable[..., Any]:
        store = self.wasmtime.Store(self.engine)
        instance = self.wasmtime.Instance(store, module, [])
        func = instance.exports(store)[export]
        return lambda *args: func(store, *args)

    def signature(self, module: Any, export: str) -> tuple[list[str], list[str]] | None:
        """(params, results) of a function export, as type names."""
        for exp in module.exports:
            if exp.name == export and isinstance(exp.type, self.wasmtime.FuncType):
                return [str(t) for t in exp.type.params], [str(t) for t in exp.type.results]
        return None


# -- results ------------------------------------------------------------------------------

@dataclass
class EngineRun:
    """One engine on one program: timings in seconds, and what it returned."""

    compile_s: float | None = None
    run_s: float | None = None          # best of the calls
    result: Any = None                  # normalized, from the last call
    ok: bool = False
    error: str | None = None
    stats: dict[str, float] = field(default_factory=dict)


@dataclass
class ProgramResult:
    name: str
    file: str
    export: str
    args: list[Any]
    result_type: str | None
    expected: Any
    ours: EngineRun = field(default_factory=EngineRun)
    wasmtime: EngineRun = field(default_factory=EngineRun)
    native_s: float | None = None
    native_note: str | None = None
    reference_wasmtime_ms: float | None = None   # bench.json's number (another machine)

    @property
    def compile_ratio(self) -> float | None:
        return ratio(self.ours.compile_s, self.wasmtime.compile_s)

    @property
    def run_ratio(self) -> float | None:
        if not (self.ours.ok and self.wasmtime.ok):
            return None
        return ratio(self.ours.run_s, self.wasmtime.run_s)


@dataclass
class CompileResult:
    name: str
    file: str
    wasm_bytes: int
    functions: int
    ours: EngineRun = field(default_factory=EngineRun)
    wasmtime: EngineRun = field(default_factory=EngineRun)
    export: str | None = None
    args: list[Any] = field(default_factory=list)
    expected: Any = None
    reference_wasmtime_compile_ms: float | None = None

    @property
    def kb_per_s(self) -> float | None:
        s = self.ours.compile_s
        return self.wasm_bytes / 1024 / s if s else None

    @property
    def functions_per_s(self) -> float | None:
        s = self.ours.compile_s
        return self.functions / s if s else None


@dataclass
class Report:
    bench_dir: str
    settings: dict[str, Any]
    programs: list[ProgramResult] = field(default_factory=list)
    compile: list[CompileResult] = field(default_factory=list)
    warmup_s: float | None = None
    native_compiler: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def run_geomean(self) -> float | None:
        return geomean(p.run_ratio for p in self.programs)

    @property
    def compile_geomean(self) -> float | None:
        return geomean(p.compile_ratio for p in self.programs)

    @property
    def failures(self) -> list[str]:
        """One line per wrong or missing result (ours or Wasmtime's)."""
        out = []
        for p in [*self.programs, *self.compile]:
            for who, run in (("wasmlower", p.ours), ("wasmtime", p.wasmtime)):
                if p.expected is not None and not run.ok:
                    what = run.error or f"returned {run.result!r}, expected {p.expected!r}"
                    out.append(f"{p.name}: {who}: {what}")
        return out

    def to_json(self) -> dict[str, Any]:
        def engine(run: EngineRun) -> dict[str, Any]:
            d = asdict(run)
            for k in ("compile_s", "run_s"):
                d[k.replace("_s", "_ms")] = None if d[k] is None else d[k] * 1e3
                del d[k]
            return d
        programs = []
        for p in self.programs:
            d = {k: getattr(p, k) for k in ("name", "file", "export", "args", "result_type",
                                              "expected", "native_note",
                                              "reference_wasmtime_ms")}
            d.update(ours=engine(p.ours), wasmtime=engine(p.wasmtime),
                     native_ms=None if p.native_s is None else p.native_s * 1e3,
                     compile_ratio=p.compile_ratio, run_ratio=p.run_ratio)
            programs.append(d)
        compiles = []
        for c in self.compile:
            d = {k: getattr(c, k) for k in ("name", "file", "wasm_bytes", "functions", "export",
                                              "args", "expected",
                                              "reference_wasmtime_compile_ms")}
            d.update(ours=engine(c.ours), wasmtime=engine(c.wasmtime), kb_per_s=c.kb_per_s,
                     functions_per_s=c.functions_per_s)
            compiles.append(d)
        return {
            "bench_dir": self.bench_dir, "settings": self.settings,
            "warmup_ms": None if self.warmup_s is None else self.warmup_s * 1e3,
            "native_compiler": self.native_compiler, "programs": programs,
            "run_ratio_geomean": self.run_geomean, "compile_ratio_geomean": self.compile_geomean,
            "program_stages_s": stage_totals(p.ours.stats for p in self.programs),
            "compile": compiles,
            "compile_stages_s": stage_totals(c.ours.stats for c in self.compile),
            "failures": self.failures, "notes": self.notes,
        }


# -- measuring ----------------------------------------------------------------------------

def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def prepare(backend: Any, wasm: bytes, export: str | None) -> tuple[EngineRun, Any]:
    """Compile (timed) and instantiate; returns the run record and the export (or None)."""
    run = EngineRun()
    try:
        module, run.compile_s, run.stats = backend.compile(wasm)
    except Exception as e:  # noqa: BLE001 - a failure is a result to report
        run.error = f"compile failed: {_describe(e)}"
        return run, None
    if export is None:
        return run, None
    try:
        return run, backend.function(module, export)
    except Exception as e:  # noqa: BLE001 - a failure is a result to report
        run.error = f"instantiation failed: {_describe(e)}"
        return run, None


def call_once(run: EngineRun, func: Any, args: Sequence[Any], expected: Any,
              result_type: str | None) -> None:
    """Time one call into ``run``: best time so far, last result, ok only if all were right."""
    t0 = time.perf_counter()
    try:
        value = func(*args)
    except Exception as e:  # noqa: BLE001 - a failure is a result to report
        run.error, run.ok = f"call failed: {_describe(e)}", False
        return
    seconds = time.perf_counter() - t0
    first = run.run_s is None
    run.run_s = seconds if first else min(run.run_s, seconds)
    run.result = normalize(value, result_type)
    right = expected is not None and run.result == normalize(expected, result_type)
    run.ok = right if first else run.ok and right


def measure(backend: Any, wasm: bytes, export: str | None, args: Sequence[Any],
            expected: Any, result_type: str | None, repeat: int) -> EngineRun:
    """Compile, instantiate and call ``export`` ``repeat`` times; check every result.

    With ``export`` None the module is only compiled.
    """
    return measure_all([backend], wasm, export, args, expected, result_type, repeat)[0]


def measure_all(backends: Sequence[Any], wasm: bytes, export: str | None, args: Sequence[Any],
                expected: Any, result_type: str | None, repeat: int) -> list[EngineRun]:
    """``measure`` for several engines, their calls interleaved.

    Round ``r`` calls each engine once, so a change in machine load during the
    measurement hits all engines alike and the ratios stay comparable.
    """
    prepared = [prepare(b, wasm, export) for b in backends]
    for _ in range(max(repeat, 1)):
        for run, func in prepared:
            if func is not None and run.error is None:
                call_once(run, func, args, expected, result_type)
    return [run for run, _ in prepared]


_WRAPPER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
extern %(ret)s run(%(params)s);
int main(int argc, char **argv) {
    int reps = atoi(argv[1]);
    long long best = -1, result = 0;
    if (argc != %(argc)d) return 2;
    for (int i = 0; i < reps; i++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        %(ret)s r = run(%(args)s);
        clock_gettime(CLOCK_MONOTONIC, &b);
        long long ns = (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
        if (best < 0 || ns < best) best = ns;
        result = (long long)r;
    }
    printf("%%lld %%lld\n", result, best);
    return 0;
}
"""

#: Flags of the native baseline build.
NATIVE_FLAGS = ("-O2", "-fno-math-errno")

_C_TYPES = {"i32": ("int", "atoi"), "i64": ("long long", "atoll"),
            "f32": ("float", "(float)atof"), "f64": ("double", "atof")}
_C_RESULTS = {"i32": "unsigned int", "i64": "long long"}


def find_c_compiler() -> list[str] | None:
    """clang if it runs, else cc or gcc; the command as a list, or None."""
    for name in ("clang", "cc", "gcc"):
        path = shutil.which(name)
        if not path:
            continue
        try:
            subprocess.run([path, "--version"], capture_output=True, check=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            continue
        return [path]
    return None


def native_time(cc: list[str], source: Path, export: str, params: Sequence[str],
                result_type: str | None, args: Sequence[Any], repeat: int,
                workdir: Path) -> tuple[float | None, Any, str | None]:
    """Build ``source`` with ``-O2`` and time ``run``: (best seconds, result, note)."""
    if export != "run":
        return None, None, f"export {export!r} is not the C function run"
    if result_type not in _C_RESULTS or any(p not in _C_TYPES for p in params):
        return None, None, "unsupported signature for the native wrapper"
    if len(params) != len(args):
        return None, None, "argument count does not match the signature"
    wrapper = _WRAPPER % {
        "ret": _C_RESULTS[result_type],
        "params": ", ".join(_C_TYPES[p][0] for p in params) or "void",
        "argc": len(args) + 2,
        "args": ", ".join(f"{_C_TYPES[p][1]}(argv[{i + 2}])" for i, p in enumerate(params)),
    }
    workdir = workdir.resolve()
    main_c = workdir / f"{source.stem}_main.c"
    main_c.write_text(wrapper)
    exe = workdir / f"{source.stem}.native"
    # Two translation units and no LTO, so the call cannot be hoisted out of the timing.
    # -fno-math-errno: no errno path around sqrt, as in the wasm build (a bare f32.sqrt);
    # it changes no result.  No -march=native: with FMA contraction nbody's result differs.
    cmd = [*cc, *NATIVE_FLAGS, "-w", "-o", str(exe), str(source), str(main_c), "-lm"]
    try:
        subprocess.run(cmd, capture_output=True, check=True, text=True, timeout=300)
    except subprocess.CalledProcessError as e:
        first = (e.stderr or "").strip().splitlines()
        return None, None, f"native build failed: {first[0] if first else e.returncode}"
    except (OSError, subprocess.SubprocessError) as e:
        return None, None, f"native build failed: {e}"
    try:
        out = subprocess.run([str(exe), str(max(repeat, 1)), *map(str, args)],
                             capture_output=True, check=True, text=True, timeout=600)
        result, ns = out.stdout.split()
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        return None, None, f"native run failed: {e}"
    return int(ns) / 1e9, normalize(int(result), result_type), None


def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _warm_up(backend: WasmlowerBackend, wasm: bytes) -> float:
    t0 = time.perf_counter()
    backend.compile(wasm)
    return time.perf_counter() - t0


def run_programs(report: Report, bench_dir: Path, ours: WasmlowerBackend | None,
                 wasmtime: WasmtimeBackend, *, quick: bool, repeat: int, native: bool,
                 only: Sequence[str] | None = None) -> None:
    specs = json.loads((bench_dir / "bench.json").read_text())
    if only:
        specs = [s for s in specs if Path(s["file"]).stem in only]
    cc = find_c_compiler() if native else None
    if native and cc is None:
        report.notes.append("native: no C compiler found (tried clang, cc, gcc); skipped")
    elif cc is not None:
        report.native_compiler = Path(cc[0]).name
        report.notes.append(f"native: {report.native_compiler} {' '.join(NATIVE_FLAGS)}"
                            + ("" if report.native_compiler == "clang" else
                               " (clang not found)"))
    with tempfile.TemporaryDirectory(prefix="wasmlower-bench-") as tmp:
        for n, spec in enumerate(specs, 1):
            name = Path(spec["file"]).stem
            args = list(spec["quick_args"] if quick else spec["args"])
            expected = spec["quick_expected"] if quick else spec["expected"]
            rtype = spec.get("result_type")
            p = ProgramResult(name, spec["file"], spec["export"], args, rtype, expected,
                              reference_wasmtime_ms=None if quick else spec.get("wasmtime_run_ms"))
            report.programs.append(p)
            wasm = (bench_dir / spec["file"]).read_bytes()
            _progress(f"[{n}/{len(specs)}] {name}: wasmlower and wasmtime, {repeat} round(s)")
            if ours is not None:
                p.ours, p.wasmtime = measure_all([ours, wasmtime], wasm, p.export, args,
                                                 expected, rtype, repeat)
            else:
                p.ours.error = "wasmlower engine not available"
                p.wasmtime = measure(wasmtime, wasm, p.export, args, expected, rtype, repeat)
            if cc is None:
                continue
            source = bench_dir / spec.get("source", f"{name}.c")
            if not source.is_file():
                p.native_note = f"no {source.name}"
                continue
            try:
                sig = wasmtime.signature(wasmtime.compile(wasm)[0], p.export)
            except Exception as e:  # noqa: BLE001 - a failure is a result to report
                sig = None
                p.native_note = f"signature unknown: {_describe(e)}"
            if sig is None:
                p.native_note = p.native_note or "signature unknown"
                continue
            _progress(f"[{n}/{len(specs)}] {name}: native ({report.native_compiler})")
            p.native_s, result, p.native_note = native_time(
                cc, source, p.export, sig[0], rtype, args, repeat, Path(tmp))
            if p.native_s is not None and result != normalize(expected, rtype):
                p.native_note = f"native result {result} differs from the expected {expected}"


def run_compile_speed(report: Report, compile_dir: Path, ours: WasmlowerBackend | None,
                      wasmtime: WasmtimeBackend, *, repeat: int,
                      only: Sequence[str] | None = None) -> None:
    specs = json.loads((compile_dir / "compile.json").read_text())
    if only:
        specs = [s for s in specs if Path(s["file"]).stem in only]
    for n, spec in enumerate(specs, 1):
        name = Path(spec["file"]).stem
        wasm = (compile_dir / spec["file"]).read_bytes()
        c = CompileResult(name, spec["file"], len(wasm), count_functions(wasm),
                          export=spec.get("export"), args=list(spec.get("args", [])),
                          expected=spec.get("expected"),
                          reference_wasmtime_compile_ms=spec.get("wasmtime_compile_ms_serial"))
        report.compile.append(c)
        export = c.export
        rtype = None
        try:
            module = wasmtime.compile(wasm)[0]
            sig = wasmtime.signature(module, export) if export else None
            rtype = sig[1][0] if sig and len(sig[1]) == 1 else None
        except Exception as e:  # noqa: BLE001 - a failure is a result to report
            c.wasmtime.error = f"compile failed: {_describe(e)}"
        if ours is not None:
            _progress(f"compile [{n}/{len(specs)}] {name}: wasmlower "
                      f"({c.wasm_bytes} bytes, {c.functions} functions)")
            c.ours = measure(ours, wasm, export, c.args, c.expected, rtype, 1)
        else:
            c.ours.error = "wasmlower engine not available"
        _progress(f"compile [{n}/{len(specs)}] {name}: wasmtime")
        c.wasmtime = measure(wasmtime, wasm, export, c.args, c.expected, rtype, 1)


def run_bench(bench_dir: Path, *, quick: bool = False, compile_only: bool = False,
              repeat: int = 3, opt_level: int = 1, target: str = "x86_64",
              engine_api: Any = None, native: bool = True, programs: bool = True,
              compile_speed: bool = True, only: Sequence[str] | None = None,
              workers: int | None = None) -> Report:
    """Measure everything and return a Report (nothing is printed on stdout).

    ``engine_api`` replaces ``wasmlower.engine`` (a stand-in for tests); if the
    engine cannot be created, the Wasmtime side still runs and every program
    records the error.
    """
    report = Report(str(bench_dir), {"quick": quick, "repeat": repeat, "opt_level": opt_level,
                                     "target": target, "compile_only": compile_only,
                                     "wasmtime_parallel_compilation": False,
                                     "wasmlower_workers": workers or "auto",
                                     "cpus": os.cpu_count(), "load_average": _load()})
    report.notes.append("numba cold vs warm start: not measured by this command")
    wasmtime = WasmtimeBackend()
    ours: WasmlowerBackend | None
    try:
        ours = WasmlowerBackend(engine_api, target=target, opt_level=opt_level,
                                workers=workers)
    except Exception as e:  # noqa: BLE001 - reported; Wasmtime still runs
        ours = None
        report.notes.append(f"wasmlower engine not available: {_describe(e)}")
    has_programs = (bench_dir / "bench.json").is_file()
    compile_dir = bench_dir / "compile"
    if not (compile_dir / "compile.json").is_file() and (bench_dir / "compile.json").is_file():
        compile_dir = bench_dir
    has_compile = (compile_dir / "compile.json").is_file()
    if ours is not None:
        warm = bench_dir / "fib.wasm"
        if not warm.is_file():
            warm = next(iter(sorted(bench_dir.glob("*.wasm"))), warm)
        if warm.is_file():
            _progress(f"warm-up: compiling {warm.name} once (imports, rules, numba cache)")
            try:
                report.warmup_s = _warm_up(ours, warm.read_bytes())
            except Exception as e:  # noqa: BLE001 - a failure is a result to report
                report.notes.append(f"warm-up compile of {warm.name} failed: {_describe(e)}")
    if programs and not compile_only:
        if has_programs:
            run_programs(report, bench_dir, ours, wasmtime, quick=quick, repeat=repeat,
                         native=native, only=only)
        else:
            report.notes.append(f"no bench.json in {bench_dir}: programs part skipped")
    if compile_speed and (compile_only or not quick):
        if has_compile:
            run_compile_speed(report, compile_dir, ours, wasmtime, repeat=repeat, only=only)
        else:
            report.notes.append(f"no compile/compile.json in {bench_dir}: compile part skipped")
    return report


# -- reporting ----------------------------------------------------------------------------

def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    ms = seconds * 1e3
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 1 else f"{ms:.3f}"


def _x(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}x" if value >= 100 else f"{value:.1f}x" if value >= 1 else f"{value:.2f}x"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    def line(r: Sequence[str]) -> str:
        cells = [str(c).ljust(w) if i == 0 else str(c).rjust(w)
                 for i, (c, w) in enumerate(zip(r, widths))]
        return "  ".join(cells).rstrip()
    return [line(header), "  ".join("-" * w for w in widths), *map(line, rows)]


def _stages_lines(total: dict[str, float], wall: float | None) -> list[str]:
    stage_sum = sum(total.values())
    rows = []
    for k, v in total.items():
        pct = f"{100 * v / stage_sum:.1f}%" if stage_sum > 0 else "-"
        rows.append([k, _ms(v), pct])
    rows.append(["(sum of stages)", _ms(stage_sum), "100.0%" if stage_sum > 0 else "-"])
    if wall is not None:
        rows.append(["(compile wall time)", _ms(wall), ""])
    return _table(["stage", "ms", "share"], rows)


def _status(run: EngineRun, expected: Any) -> str:
    if run.error:
        return "ERROR"
    if expected is None:
        return "?"
    return "OK" if run.ok else "WRONG"


def format_report(report: Report) -> str:
    s = report.settings
    mode = "quick args" if s.get("quick") else "full args"
    out = [f"wasmlower bench: {report.bench_dir}  (target {s.get('target')}, "
           + f"-O{s.get('opt_level')}, {mode}, best of {s.get('repeat')})"]
    if s.get("load_average") is not None:
        out.append(f"{s.get('cpus')} CPUs, load average {s['load_average']} at the start "
                   "(a busy machine makes every number noisier)")
    if report.warmup_s is not None:
        out.append(f"warm-up (first compile in this process): {_ms(report.warmup_s)} ms")
    if report.programs:
        native = report.native_compiler
        header = ["program", "result", "ours compile ms", "wasmtime compile ms", "compile x",
                  "ours run ms", "wasmtime run ms", "run x",
                  f"native ms ({native})" if native else "native ms"]
        rows = [[p.name, _status(p.ours, p.expected), _ms(p.ours.compile_s),
                 _ms(p.wasmtime.compile_s), _x(p.compile_ratio), _ms(p.ours.run_s),
                 _ms(p.wasmtime.run_s), _x(p.run_ratio), _ms(p.native_s)]
                for p in report.programs]
        out += ["", "programs (ratios are wasmlower / Wasmtime; higher is slower)"]
        out += _table(header, rows)
        gm = report.run_geomean
        n_ok = sum(1 for p in report.programs if p.run_ratio is not None)
        out.append("")
        out.append(f"geometric mean of run ratios: {_x(gm)} over {n_ok} of "
                   f"{len(report.programs)} programs")
        cg = report.compile_geomean
        if cg is not None:
            out.append(f"geometric mean of compile ratios: {_x(cg)}")
        for p in report.programs:
            if p.native_note:
                out.append(f"  {p.name}: native: {p.native_note}")
        stats = [p.ours.stats for p in report.programs if p.ours.stats]
        if stats:
            wall = sum(p.ours.compile_s or 0 for p in report.programs if p.ours.stats)
            out += ["", "wasmlower compile time per stage, summed over the programs"]
            out += _stages_lines(stage_totals(stats), wall)
    if report.compile:
        header = ["module", "bytes", "functions", "result", "ours compile ms", "KB/s", "funcs/s",
                  "wasmtime compile ms", "compile x"]
        rows = []
        for c in report.compile:
            rows.append([c.name, str(c.wasm_bytes), str(c.functions),
                         _status(c.ours, c.expected), _ms(c.ours.compile_s),
                         "-" if c.kb_per_s is None else f"{c.kb_per_s:.1f}",
                         "-" if c.functions_per_s is None else f"{c.functions_per_s:.1f}",
                         _ms(c.wasmtime.compile_s),
                         _x(ratio(c.ours.compile_s, c.wasmtime.compile_s))])
        workers = report.settings.get("wasmlower_workers", "auto")
        how = ("serial" if workers == 1 else
               f"{workers} processes for modules above parallel_threshold"
               if workers != "auto" else "processes: automatic (module size, idle CPUs)")
        out += ["", f"compile speed (wasmlower {how}; Wasmtime with parallel compilation off)"]
        out += _table(header, rows)
        total_bytes = sum(c.wasm_bytes for c in report.compile if c.ours.compile_s)
        total_funcs = sum(c.functions for c in report.compile if c.ours.compile_s)
        total_s = sum(c.ours.compile_s or 0 for c in report.compile)
        if total_s > 0:
            out.append(f"overall: {total_bytes / 1024 / total_s:.1f} KB/s, "
                       f"{total_funcs / total_s:.1f} functions/s")
        stats = [c.ours.stats for c in report.compile if c.ours.stats]
        if stats:
            wall = sum(c.ours.compile_s or 0 for c in report.compile if c.ours.stats)
            out += ["", "wasmlower compile time per stage, summed over the compile modules"]
            out += _stages_lines(stage_totals(stats), wall)
    failures = report.failures
    if failures:
        out += ["", f"{len(failures)} wrong or missing result(s):"]
        out += [f"  {f}" for f in failures]
    if report.notes:
        out += ["", "notes:"] + [f"  {n}" for n in report.notes]
    return "\n".join(out)


# -- command line -------------------------------------------------------------------------

def main(args: argparse.Namespace) -> int:
    """Entry of ``wasmlower bench``; returns 1 if any result is wrong, 2 on bad setup."""
    bench_dir = find_bench_dir(getattr(args, "dir", None))
    if bench_dir is None:
        print("error: no bench directory: pass DIR, set WASMLOWER_BENCH_DIR, or put the "
              "programs in <repo>/../shared/bench (none of these exists)", file=sys.stderr)
        return 2
    if not bench_dir.is_dir():
        print(f"error: bench directory {bench_dir} does not exist", file=sys.stderr)
        return 2
    if not ((bench_dir / "bench.json").is_file() or (bench_dir / "compile.json").is_file()
            or (bench_dir / "compile" / "compile.json").is_file()):
        print(f"error: {bench_dir} has neither bench.json nor compile/compile.json",
              file=sys.stderr)
        return 2
    try:
        import wasmtime  # noqa: F401
    except ImportError:
        print("error: the benchmark compares against Wasmtime: pip install wasmtime",
              file=sys.stderr)
        return 2
    report = run_bench(bench_dir, quick=bool(getattr(args, "quick", False)),
                       compile_only=bool(getattr(args, "compile_only", False)),
                       repeat=max(int(getattr(args, "repeat", 3) or 1), 1),
                       opt_level=int(getattr(args, "opt_level", 1)),
                       target=getattr(args, "target", "x86_64") or "x86_64",
                       native=not getattr(args, "no_native", False),
                       only=getattr(args, "only", None) or None,
                       workers=getattr(args, "workers", None))
    print(format_report(report))
    out = getattr(args, "json", None)
    if out:
        Path(out).write_text(json.dumps(report.to_json(), indent=1) + "\n")
        print(f"wrote {out}", file=sys.stderr)
    return 1 if report.failures else 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `wasmlower bench` (shared with `python -m wasmlower.bench`)."""
    from .cli import add_codegen_options
    p.add_argument("dir", nargs="?", metavar="DIR",
                   help="bench directory with bench.json (default: $WASMLOWER_BENCH_DIR or "
                        "<repo>/../shared/bench)")
    p.add_argument("--quick", action="store_true", help="use the small quick_args")
    p.add_argument("--compile-only", action="store_true", help="only the compile-speed part")
    p.add_argument("--repeat", type=int, default=3, help="runs per program (best is kept)")
    add_codegen_options(p)
    p.add_argument("--json", metavar="OUT", help="also write every number as JSON")
    p.add_argument("--no-native", action="store_true", help="skip the native C baseline")
    p.add_argument("--workers", type=int, metavar="N",
                   help="wasmlower compiles in N processes (default: automatic, by "
                        "module size and idle CPUs; 1: serial)")
    p.add_argument("--only", action="append", metavar="NAME",
                   help="only this program or compile module (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m wasmlower.bench",
                                description="Benchmark wasmlower against Wasmtime (and native "
                                            "C) on ../shared/bench; not a test.")
    add_arguments(p)
    return p


if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))

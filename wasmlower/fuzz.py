"""Differential fuzzing against Wasmtime: ``wasmlower fuzz --count 200``.

Random modules come from binaryen's ``wasm-opt -ttf`` ("translate to fuzz"),
which turns arbitrary bytes into a valid module.  Module ``k`` of a run with
``--seed S`` is made from ``size`` bytes of ``random.Random(S + k)``, so
``--seed S+k --count 1`` reproduces it alone.  The flags are
``--mvp-features`` (WebAssembly 1.0 only) and ``--denan`` (binaryen rewrites
float results that would be NaN, so NaN payloads, which wasm leaves partly
nondeterministic, rarely reach a comparison).

Each module is run the same way in both engines:

1. compile and instantiate; every import from ``"fuzzing-support"`` (the
   ``log-*`` functions) is a host function that appends its arguments to a log
   and returns zeros; a module with any other import is skipped;
2. for each exported function, in export order: call ``hangLimitInitializer``
   first if the module exports it (binaryen's loop/recursion budget), then the
   function with deterministic arguments — all zeros, then a few values drawn
   from ``random.Random("<seed>:args")`` per parameter type (edge values and
   random bit patterns; never NaN);
3. finally, compare the exported memory's bytes.

Outcomes are compared bit-exactly: integers by their bits, floats by their
IEEE bits (any NaN equals any NaN, and is counted), traps by "trapped or
not" only (the kinds are recorded, since engines word them differently), and
the host-call log of each call.  A module that Wasmtime cannot compile, or
that runs out of Wasmtime fuel (``Config.consume_fuel``; wasm-opt modules can
loop for a very long time), is skipped for both engines, because wasmlower
has no fuel: it only runs what Wasmtime finished within its budget.  A valid
module wasmlower fails to compile or instantiate counts as a mismatch.

``fuzz_one(seed)`` / ``check_module(wasm, seed)`` are the entry points for
tests; ``engine_api=None`` runs the Wasmtime side only (to check the harness).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "WASM_OPT_FLAGS",
    "FuzzReport",
    "Mismatch",
    "ModuleReport",
    "Outcome",
    "check_module",
    "format_report",
    "fuzz",
    "fuzz_one",
    "generate_module",
    "main",
    "plan_calls",
    "wasm_opt_path",
]

#: ``wasm-opt`` flags after ``-ttf SEEDFILE -o OUT`` (binaryen 108 spelling).
WASM_OPT_FLAGS = ("--denan", "--mvp-features")
DEFAULT_SIZE = 4096          # random input bytes per module
DEFAULT_FUEL = 20_000_000    # Wasmtime fuel per call (about one unit per wasm instruction)
RANDOM_CALLS = 3             # random argument tuples per export, after the all-zeros one
HANG_INIT = "hangLimitInitializer"
HOST_MODULE = "fuzzing-support"


class SkipModule(Exception):
    """The module cannot be used for a comparison (the reason is the message)."""


class RunsTooLong(SkipModule):
    """Wasmtime ran out of fuel."""


# -- modules ------------------------------------------------------------------------------

def wasm_opt_path() -> str | None:
    """The ``wasm-opt`` executable (``$WASM_OPT`` or on PATH), or None."""
    return os.environ.get("WASM_OPT") or shutil.which("wasm-opt")


def seed_bytes(seed: int, size: int = DEFAULT_SIZE) -> bytes:
    rng = random.Random(seed)
    return rng.randbytes(size)


def generate_module(seed: int, size: int = DEFAULT_SIZE, wasm_opt: str | None = None) -> bytes:
    """The module ``wasm-opt -ttf`` makes from ``size`` random bytes of ``Random(seed)``."""
    exe = wasm_opt or wasm_opt_path()
    if exe is None:
        raise FileNotFoundError("wasm-opt (binaryen) not found: apt-get install binaryen")
    with tempfile.TemporaryDirectory(prefix="wasmlower-fuzz-") as tmp:
        src, out = Path(tmp, "seed.bin"), Path(tmp, "out.wasm")
        src.write_bytes(seed_bytes(seed, size))
        proc = subprocess.run([exe, "-ttf", str(src), "-o", str(out), *WASM_OPT_FLAGS],
                              check=False, capture_output=True, text=True, timeout=120)
        # wasm-opt warns on stderr ("cannot de-nan outside of function context"): ignored.
        if proc.returncode != 0 or not out.is_file():
            lines = (proc.stderr or "").strip().splitlines()
            raise SkipModule(f"wasm-opt failed ({proc.returncode}): "
                             f"{lines[-1] if lines else 'no output'}")
        return out.read_bytes()


# -- values -------------------------------------------------------------------------------

_MASK = {"i32": (1 << 32) - 1, "i64": (1 << 64) - 1}
_F32_MAX = struct.unpack("<f", struct.pack("<I", 0x7F7FFFFF))[0]
_F32_MIN_SUB = struct.unpack("<f", struct.pack("<I", 1))[0]
_EDGES: dict[str, list[Any]] = {
    "i32": [0, 1, -1, 2, 7, 31, 32, 255, 256, 65535, 65536, 2**31 - 1, -2**31, -2**31 + 1],
    "i64": [0, 1, -1, 2, 63, 64, 2**31, 2**32, -2**32, 2**63 - 1, -2**63, -2**63 + 1],
    "f32": [0.0, -0.0, 1.0, -1.0, 0.5, -1.5, 2.0**31, -2.0**31, 2.0**32, 2.0**63, -2.0**64,
            math.inf, -math.inf, _F32_MAX, -_F32_MAX, _F32_MIN_SUB, 2.0**-126],
    "f64": [0.0, -0.0, 1.0, -1.0, 0.5, -1.5, 2.0**31, -2.0**31 - 1, 2.0**32, 2.0**63, -2.0**64,
            math.inf, -math.inf, 1.7976931348623157e308, 5e-324, 2.0**-1022, 1e10],
}


def _signed(bits: int, width: int) -> int:
    bits &= (1 << width) - 1
    return bits - (1 << width) if bits >> (width - 1) else bits


def random_value(rng: random.Random, ty: str) -> Any:
    """An argument of type ``ty``: an edge value, a small number or random bits (no NaN)."""
    roll = rng.random()
    if roll < 0.35:
        return rng.choice(_EDGES[ty])
    if ty in ("i32", "i64"):
        width = 32 if ty == "i32" else 64
        if roll < 0.6:
            return rng.randint(-1000, 1000)
        return _signed(rng.getrandbits(width), width)
    if roll < 0.6:  # (decimal fractions are rounded to f32 by plan_calls)
        return float(rng.randint(-1000, 1000)) / rng.choice((1, 2, 4, 8, 10))
    while True:
        if ty == "f32":
            value = struct.unpack("<f", struct.pack("<I", rng.getrandbits(32)))[0]
        else:
            value = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
        if not math.isnan(value):
            return value


def _exact_f32(value: float) -> float:
    return struct.unpack("<f", struct.pack("<f", value))[0]


def value_key(ty: str, value: Any) -> tuple[str, Any]:
    """A comparable form: (type, unsigned bits), or (type, "nan") for any NaN."""
    if ty in _MASK:
        return ty, int(value) & _MASK[ty]
    if ty in ("f32", "f64"):
        if isinstance(value, int) and not isinstance(value, bool):
            bits = int(value)            # F32Bits/F64Bits: already raw bits
            nan = (bits & 0x7FFFFFFF) > 0x7F800000 if ty == "f32" else \
                (bits & 0x7FFFFFFFFFFFFFFF) > 0x7FF0000000000000
            return (ty, "nan") if nan else (ty, bits)
        value = float(value)
        if math.isnan(value):
            return ty, "nan"
        if ty == "f32":
            return ty, struct.unpack("<I", struct.pack("<f", value))[0]
        return ty, struct.unpack("<Q", struct.pack("<d", value))[0]
    return ty, repr(value)


def _show(key: tuple[str, Any]) -> str:
    ty, bits = key
    if bits == "nan" or not isinstance(bits, int):
        return f"{ty}:{bits}"
    if ty == "f32":
        return f"f32:{struct.unpack('<f', struct.pack('<I', bits))[0]!r}({bits:#010x})"
    if ty == "f64":
        return f"f64:{struct.unpack('<d', struct.pack('<Q', bits))[0]!r}({bits:#018x})"
    return f"{ty}:{_signed(bits, 32 if ty == 'i32' else 64)}"


def zero(ty: str) -> Any:
    return 0.0 if ty in ("f32", "f64") else 0


# -- outcomes -----------------------------------------------------------------------------

LogEntry = tuple[str, tuple[tuple[str, Any], ...]]


@dataclass(frozen=True)
class Outcome:
    """What one call (or the instantiation) did."""

    trapped: bool = False
    values: tuple[tuple[str, Any], ...] = ()
    trap_kind: str | None = None
    log: tuple[LogEntry, ...] = ()
    error: str | None = None            # neither a result nor a trap: a harness or host error

    def describe(self) -> str:
        if self.error is not None:
            what = f"error: {self.error}"
        elif self.trapped:
            what = f"trap ({self.trap_kind})"
        elif not self.values:
            what = "returns nothing"
        else:
            what = "returns " + ", ".join(_show(v) for v in self.values)
        if self.log:
            shown = [f"{name}({', '.join(_show(a) for a in args)})"
                     for name, args in self.log[:6]]
            more = f" +{len(self.log) - 6} more" if len(self.log) > 6 else ""
            what += f"; log: {' '.join(shown)}{more}"
        return what

    @property
    def nans(self) -> int:
        n = sum(1 for _, b in self.values if b == "nan")
        return n + sum(1 for _, args in self.log for _, b in args if b == "nan")


def differs(ours: Outcome, theirs: Outcome) -> str | None:
    """Why two outcomes differ, or None when they agree."""
    if ours.error is not None:
        return "wasmlower raised an unexpected error"
    if ours.trapped != theirs.trapped:
        return "only one engine trapped"
    if not ours.trapped and ours.values != theirs.values:
        return "results differ"
    if ours.log != theirs.log:
        return "host-call logs differ"
    return None


@dataclass
class Mismatch:
    seed: int
    export: str
    args: tuple[Any, ...]
    ours: str
    wasmtime: str
    what: str

    def describe(self) -> str:
        args = ", ".join(repr(a) for a in self.args)
        return (f"seed {self.seed}: {self.export}({args}): {self.what}\n"
                f"    wasmlower: {self.ours}\n    wasmtime:  {self.wasmtime}")


@dataclass
class ModuleReport:
    seed: int
    wasm_bytes: int = 0
    status: str = "ok"                  # ok | mismatch | skipped
    reason: str | None = None           # why skipped
    compiled_both: bool = False
    calls: int = 0                      # export calls compared (or run, Wasmtime-only)
    exports: int = 0                    # exported functions called
    mismatches: list[Mismatch] = field(default_factory=list)
    nans: int = 0
    traps: Counter = field(default_factory=Counter)   # (wasmlower kind, wasmtime kind)
    seconds: float = 0.0


# -- the two engines ----------------------------------------------------------------------

class _Log:
    def __init__(self) -> None:
        self.entries: list[LogEntry] = []

    def host(self, name: str, params: Sequence[str], results: Sequence[str]) -> Callable:
        entries = self.entries

        def host_fn(*args: Any) -> Any:
            entries.append((name, tuple(value_key(t, a) for t, a in zip(params, args))))
            if not results:
                return None
            values = tuple(zero(t) for t in results)
            return values[0] if len(values) == 1 else values
        host_fn.__name__ = name.replace("-", "_")
        return host_fn

    def take(self) -> tuple[LogEntry, ...]:
        out = tuple(self.entries)
        self.entries.clear()
        return out


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


class WasmtimeSide:
    """The reference run, with fuel."""

    def __init__(self, wasm: bytes, fuel: int | None = DEFAULT_FUEL) -> None:
        import wasmtime
        self.wt = wasmtime
        config = wasmtime.Config()
        if fuel is not None:
            config.consume_fuel = True
        self.fuel = fuel
        self.engine = wasmtime.Engine(config)
        try:
            self.module = wasmtime.Module(self.engine, wasm)
        except wasmtime.WasmtimeError as e:
            raise SkipModule(f"Wasmtime rejected the module: {_first_line(e)}") from None
        self.imports: list[tuple[str, str, list[str], list[str]]] = []
        for imp in self.module.imports:
            if not isinstance(imp.type, wasmtime.FuncType) or imp.module != HOST_MODULE:
                raise SkipModule(f"unsupported import {imp.module}.{imp.name}")
            self.imports.append((imp.module, imp.name, [str(t) for t in imp.type.params],
                                 [str(t) for t in imp.type.results]))
        self.functions: list[tuple[str, list[str], list[str]]] = [
            (e.name, [str(t) for t in e.type.params], [str(t) for t in e.type.results])
            for e in self.module.exports if isinstance(e.type, wasmtime.FuncType)]
        self.has_memory = any(isinstance(e.type, wasmtime.MemoryType)
                              for e in self.module.exports)
        self.log = _Log()

    def instantiate(self) -> Outcome:
        wt = self.wt
        self.store = wt.Store(self.engine)
        funcs = [wt.Func(self.store, imp.type, self.log.host(imp.name, p, r))
                 for imp, (_, _, p, r) in zip(self.module.imports, self.imports)]
        return self._run(lambda: setattr(self, "instance",
                                         wt.Instance(self.store, self.module, funcs)), [])

    def call(self, name: str, args: Sequence[Any], results: Sequence[str]) -> Outcome:
        func = self.instance.exports(self.store)[name]
        return self._run(lambda: func(self.store, *args), results)

    def _run(self, thunk: Callable[[], Any], results: Sequence[str]) -> Outcome:
        wt = self.wt
        if self.fuel is not None:
            self.store.set_fuel(self.fuel)
        try:
            value = thunk()
        except wt.Trap as e:
            if e.trap_code == wt.TrapCode.OUT_OF_FUEL:
                raise RunsTooLong(f"runs too long (more than {self.fuel} fuel)") from None
            kind = e.trap_code.name.lower() if e.trap_code is not None else "trap"
            return Outcome(trapped=True, trap_kind=kind, log=self.log.take())
        except wt.WasmtimeError as e:
            raise SkipModule(f"Wasmtime error: {_first_line(e)}") from None
        return Outcome(values=_keys(results, value), log=self.log.take())

    def memory_digest(self) -> str | None:
        mem = self.instance.exports(self.store).get("memory")
        if not isinstance(mem, self.wt.Memory):
            return None
        return hashlib.sha256(bytes(mem.read(self.store, 0, mem.data_len(self.store)))).hexdigest()


def _keys(results: Sequence[str], value: Any) -> tuple[tuple[str, Any], ...]:
    if not results:
        return ()
    values = value if len(results) > 1 else (value,)
    return tuple(value_key(t, v) for t, v in zip(results, values))


class OursSide:
    """wasmlower through its public API (``api``: ``wasmlower.engine`` or a stand-in)."""

    def __init__(self, api: Any, wasm: bytes, imports: Sequence[tuple[str, str, list[str],
                 list[str]]], target: str = "x86_64", opt_level: int = 1) -> None:
        from wasmlower.errors import Trap
        self.api, self.trap_type = api, Trap
        self.engine = api.Engine(target=target, opt_level=opt_level)
        self.module = api.Module(self.engine, wasm)
        self.log = _Log()
        self.imports = {(m, n): self.log.host(n, p, r) for m, n, p, r in imports}

    def instantiate(self) -> Outcome:
        def make() -> None:
            self.instance = self.api.Instance(self.module, imports=self.imports)
        return self._run(make, [])

    def call(self, name: str, args: Sequence[Any], results: Sequence[str]) -> Outcome:
        func = self.instance.exports[name]
        return self._run(lambda: func(*args), results)

    def _run(self, thunk: Callable[[], Any], results: Sequence[str]) -> Outcome:
        try:
            value = thunk()
        except self.trap_type as e:
            return Outcome(trapped=True, trap_kind=str(getattr(e, "kind", "trap")),
                           log=self.log.take())
        except Exception as e:  # noqa: BLE001 - any other exception is a finding to report
            return Outcome(error=_first_line(e), log=self.log.take())
        try:
            return Outcome(values=_keys(results, value), log=self.log.take())
        except (TypeError, ValueError) as e:
            return Outcome(error=f"bad result {value!r}: {e}", log=self.log.take())

    def memory_digest(self) -> str | None:
        mem = self.instance.exports.get("memory")
        if mem is None:
            return None
        try:
            if hasattr(mem, "read") and hasattr(mem, "data_len"):
                n = mem.data_len() if callable(mem.data_len) else mem.data_len
                data = bytes(mem.read(0, n))
            else:
                data = bytes(mem.buffer())
        except Exception:  # noqa: BLE001 - an unknown memory API: no memory comparison
            return None
        return hashlib.sha256(data).hexdigest()


# -- one module ---------------------------------------------------------------------------

def plan_calls(seed: int, functions: Sequence[tuple[str, list[str], list[str]]],
               random_calls: int = RANDOM_CALLS) -> list[tuple[str, tuple[Any, ...]]]:
    """The calls made on a module: (export, args), in order; deterministic in ``seed``."""
    rng = random.Random(f"{seed}:args")
    plan = []
    for name, params, _ in functions:
        if name == HANG_INIT:
            continue
        plan.append((name, tuple(zero(t) for t in params)))
        if params:
            for _ in range(random_calls):
                args = tuple(random_value(rng, t) for t in params)
                plan.append((name, tuple(_exact_f32(a) if t == "f32" else a
                                         for t, a in zip(params, args))))
    return plan


def _calls(side: Any, plan: Sequence[tuple[str, tuple[Any, ...]]],
           results: dict[str, list[str]], hang_init: bool) -> list[tuple[Outcome, Outcome | None]]:
    """Run ``plan`` on one engine: per call (its outcome, hangLimitInitializer's outcome)."""
    out = []
    for name, args in plan:
        init = side.call(HANG_INIT, (), []) if hang_init else None
        out.append((side.call(name, args, results[name]), init))
    return out


def check_module(wasm: bytes, seed: int, *, engine_api: Any = None, target: str = "x86_64",
                 opt_level: int = 1, fuel: int | None = DEFAULT_FUEL,
                 random_calls: int = RANDOM_CALLS) -> ModuleReport:
    """Run ``wasm`` in Wasmtime and (if ``engine_api`` is given) wasmlower; compare."""
    t0 = time.perf_counter()
    rep = ModuleReport(seed, wasm_bytes=len(wasm))
    try:
        _check(rep, wasm, seed, engine_api, target, opt_level, fuel, random_calls)
    except SkipModule as e:
        rep.status, rep.reason = "skipped", str(e)
    if rep.mismatches:
        rep.status = "mismatch"
    rep.seconds = time.perf_counter() - t0
    return rep


def _check(rep: ModuleReport, wasm: bytes, seed: int, engine_api: Any, target: str,
           opt_level: int, fuel: int | None, random_calls: int) -> None:
    theirs = WasmtimeSide(wasm, fuel)
    plan = plan_calls(seed, theirs.functions, random_calls)
    results = {name: r for name, _, r in theirs.functions}
    hang_init = any(name == HANG_INIT for name, p, r in theirs.functions if not p and not r)
    # Wasmtime first, all of it: a module that runs out of fuel anywhere is skipped.
    t_inst = theirs.instantiate()
    t_calls = [] if t_inst.trapped else _calls(theirs, plan, results, hang_init)
    t_mem = None if t_inst.trapped else theirs.memory_digest()
    rep.exports = len({name for name, _ in plan})
    rep.nans = t_inst.nans + sum(o.nans for o, _ in t_calls)
    if engine_api is None:
        rep.calls = len(t_calls)
        rep.traps.update(("-", o.trap_kind) for o, _ in t_calls if o.trapped)
        return

    def mismatch(export: str, args: tuple[Any, ...], ours: Outcome | str, wt: Outcome | str,
                 what: str) -> None:
        rep.mismatches.append(Mismatch(seed, export, args,
                                       ours if isinstance(ours, str) else ours.describe(),
                                       wt if isinstance(wt, str) else wt.describe(), what))

    try:
        ours = OursSide(engine_api, wasm, theirs.imports, target, opt_level)
    except Exception as e:  # noqa: BLE001 - a valid module must compile: a finding
        mismatch("<compile>", (), f"compile failed: {_first_line(e)}", "compiled",
                 "wasmlower failed to compile a module Wasmtime accepts")
        return
    rep.compiled_both = True
    o_inst = ours.instantiate()
    why = differs(o_inst, t_inst)
    if why or t_inst.trapped:
        if why:
            mismatch("<instantiate>", (), o_inst, t_inst, why)
        return
    for (name, args), (t_out, t_init) in zip(plan, t_calls):
        o_init = ours.call(HANG_INIT, (), []) if hang_init else None
        if o_init is not None and t_init is not None:
            why = differs(o_init, t_init)
            if why:
                mismatch(HANG_INIT, (), o_init, t_init, why)
                return
        o_out = ours.call(name, args, results[name])
        rep.calls += 1
        rep.nans += o_out.nans
        if o_out.trapped or t_out.trapped:
            rep.traps[(o_out.trap_kind or "-", t_out.trap_kind or "-")] += 1
        why = differs(o_out, t_out)
        if why:
            mismatch(name, args, o_out, t_out, why)
            if o_out.error is not None:
                return   # the instance may be unusable after an unexpected error
    o_mem = ours.memory_digest()
    if t_mem is not None and o_mem is not None and o_mem != t_mem:
        mismatch("<memory>", (), f"sha256 {o_mem[:16]}...", f"sha256 {t_mem[:16]}...",
                 "final memory contents differ")


def fuzz_one(seed: int, *, size: int = DEFAULT_SIZE, engine_api: Any = None,
             target: str = "x86_64", opt_level: int = 1, fuel: int | None = DEFAULT_FUEL,
             wasm_opt: str | None = None) -> tuple[ModuleReport, bytes | None]:
    """Generate module ``seed`` and check it; returns the report and the module bytes."""
    try:
        wasm = generate_module(seed, size, wasm_opt)
    except SkipModule as e:
        return ModuleReport(seed, status="skipped", reason=str(e)), None
    return check_module(wasm, seed, engine_api=engine_api, target=target,
                        opt_level=opt_level, fuel=fuel), wasm


# -- many modules -------------------------------------------------------------------------

@dataclass
class FuzzReport:
    modules: list[ModuleReport] = field(default_factory=list)
    wasmtime_only: bool = False

    @property
    def generated(self) -> int:
        return sum(1 for m in self.modules if m.wasm_bytes)

    @property
    def compiled_both(self) -> int:
        return sum(1 for m in self.modules if m.compiled_both)

    @property
    def calls(self) -> int:
        return sum(m.calls for m in self.modules)

    @property
    def mismatches(self) -> list[Mismatch]:
        return [x for m in self.modules for x in m.mismatches]

    @property
    def skipped(self) -> Counter:
        return Counter(_reason_class(m.reason) for m in self.modules if m.status == "skipped")


def _reason_class(reason: str | None) -> str:
    text = reason or "?"
    if text.startswith("runs too long"):
        return "runs too long (Wasmtime fuel exhausted)"
    return text if len(text) < 90 else text[:87] + "..."


class _Watchdog:
    """Ends the process if one module takes longer than ``seconds`` (wasmlower has no fuel).

    The wasm call releases the GIL (ctypes), so a timer thread still runs.
    """

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.timer: threading.Timer | None = None

    def arm(self, seed: int, wasm: bytes, keep: Path | None) -> None:
        if not self.seconds:
            return

        def fire() -> None:
            msg = (f"fuzz: seed {seed}: no result after {self.seconds:.0f} s although Wasmtime "
                   f"finished within its fuel: wasmlower probably hangs")
            if keep is not None:
                keep.mkdir(parents=True, exist_ok=True)
                (keep / f"seed-{seed}.wasm").write_bytes(wasm)
                msg += f" (module kept as {keep / f'seed-{seed}.wasm'})"
            print(msg, file=sys.stderr, flush=True)
            os._exit(3)
        self.timer = threading.Timer(self.seconds, fire)
        self.timer.daemon = True
        self.timer.start()

    def disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def fuzz(count: int, seed: int = 0, *, size: int = DEFAULT_SIZE, engine_api: Any = None,
         target: str = "x86_64", opt_level: int = 1, fuel: int | None = DEFAULT_FUEL,
         keep: str | Path | None = None, timeout: float | None = None,
         progress: bool = False) -> FuzzReport:
    """Check modules ``seed .. seed+count-1``; mismatching ones are saved under ``keep``."""
    report = FuzzReport(wasmtime_only=engine_api is None)
    keep_dir = Path(keep) if keep else None
    watchdog = _Watchdog(timeout)
    exe = wasm_opt_path()
    for k in range(count):
        s = seed + k
        try:
            wasm = generate_module(s, size, exe)
        except SkipModule as e:
            report.modules.append(ModuleReport(s, status="skipped", reason=str(e)))
            continue
        watchdog.arm(s, wasm, keep_dir)
        try:
            rep = check_module(wasm, s, engine_api=engine_api, target=target,
                               opt_level=opt_level, fuel=fuel)
        finally:
            watchdog.disarm()
        report.modules.append(rep)
        if rep.mismatches and keep_dir is not None:
            keep_dir.mkdir(parents=True, exist_ok=True)
            (keep_dir / f"seed-{s}.wasm").write_bytes(wasm)
            (keep_dir / f"seed-{s}.txt").write_text(
                "\n".join(m.describe() for m in rep.mismatches) + "\n")
        if progress:
            bad = len(report.mismatches)
            print(f"fuzz: [{k + 1}/{count}] seed {s}: {rep.status}"
                  f"{' (' + rep.reason + ')' if rep.reason else ''}; {bad} mismatch(es) so far",
                  file=sys.stderr, flush=True)
    return report


def format_report(report: FuzzReport, *, limit: int = 20) -> str:
    mods = report.modules
    out: list[str] = []

    def row(label: str, value: Any) -> None:
        out.append(f"{label + ':':<26}{value}")

    row("modules generated", f"{report.generated} of {len(mods)}")
    if report.wasmtime_only:
        ran = sum(1 for m in mods if m.status == "ok")
        row("run in Wasmtime alone", f"{ran} (no wasmlower engine: nothing compared)")
    else:
        row("compiled by both engines", report.compiled_both)
    row("exported functions", sum(m.exports for m in mods if m.status != "skipped"))
    row("export calls run" if report.wasmtime_only else "export calls compared", report.calls)
    traps: Counter = Counter()
    for m in mods:
        traps.update(m.traps)
    if traps:
        if report.wasmtime_only:
            row("traps (kind: n)", ", ".join(f"{t}: {n}" for (_, t), n in traps.most_common()))
        else:
            row("traps (ours/wasmtime: n)",
                ", ".join(f"{o}/{t}: {n}" for (o, t), n in traps.most_common()))
    nans = sum(m.nans for m in mods)
    if nans:
        row("NaNs (equal to any NaN)", nans)
    skipped = report.skipped
    row("skipped", sum(skipped.values()))
    for reason, n in skipped.most_common():
        out.append(f"  {n:4d}  {reason}")
    mism = report.mismatches
    if not report.wasmtime_only:
        bad_mods = sum(1 for m in mods if m.mismatches)
        compile_fail = sum(1 for x in mism if x.export == "<compile>")
        extra = f" ({compile_fail} failed to compile)" if compile_fail else ""
        row("mismatches", f"{len(mism)} in {bad_mods} module(s){extra}")
        for x in mism[:limit]:
            out.append("  " + x.describe().replace("\n", "\n  "))
        if len(mism) > limit:
            out.append(f"  ... and {len(mism) - limit} more")
    return "\n".join(out)


def main(args: argparse.Namespace) -> int:
    """Entry of ``wasmlower fuzz``: exit 1 on any mismatch, 2 when it cannot run."""
    if wasm_opt_path() is None:
        print("error: wasm-opt (binaryen) not found: apt-get install binaryen", file=sys.stderr)
        return 2
    try:
        import wasmtime  # noqa: F401
    except ImportError:
        print("error: fuzzing compares against Wasmtime: pip install wasmtime", file=sys.stderr)
        return 2
    engine_api = None
    if not getattr(args, "wasmtime_only", False):
        try:
            from wasmlower import engine as engine_api
        except ImportError as e:
            print(f"error: wasmlower.engine cannot be imported: {e}", file=sys.stderr)
            return 2
    count, seed = int(getattr(args, "count", 100)), int(getattr(args, "seed", 0))
    size = int(getattr(args, "size", None) or DEFAULT_SIZE)
    report = fuzz(count, seed, size=size,
                  engine_api=engine_api, target=getattr(args, "target", "x86_64") or "x86_64",
                  opt_level=int(getattr(args, "opt_level", 1)),
                  fuel=int(getattr(args, "fuel", None) or DEFAULT_FUEL),
                  keep=getattr(args, "keep", None),
                  timeout=float(getattr(args, "timeout", None) or 300),
                  progress=sys.stderr.isatty() or bool(getattr(args, "verbose", False)))
    print(f"wasmlower fuzz: seeds {seed}..{seed + count - 1}, {size} random bytes "
          f"each, wasm-opt -ttf {' '.join(WASM_OPT_FLAGS)}")
    print(format_report(report))
    if report.mismatches and getattr(args, "keep", None):
        print(f"mismatching modules saved in {args.keep}")
    return 1 if report.mismatches else 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `wasmlower fuzz` (shared with `python -m wasmlower.fuzz`)."""
    from .cli import add_codegen_options
    p.add_argument("--count", type=int, default=100, help="number of modules")
    p.add_argument("--seed", type=int, default=0, help="seed of the first module")
    p.add_argument("--keep", metavar="DIR", help="keep mismatching modules here")
    add_codegen_options(p)
    p.add_argument("--size", type=int, default=DEFAULT_SIZE,
                   help=f"random input bytes per module (default {DEFAULT_SIZE})")
    p.add_argument("--fuel", type=int, default=DEFAULT_FUEL,
                   help=f"Wasmtime fuel per call (default {DEFAULT_FUEL})")
    p.add_argument("--timeout", type=float, default=300,
                   help="seconds per module before wasmlower is declared hung (default 300)")
    p.add_argument("--wasmtime-only", action="store_true",
                   help="run the modules in Wasmtime alone (checks the harness)")
    p.add_argument("-v", "--verbose", action="store_true", help="one progress line per module")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m wasmlower.fuzz",
                                description="Differential fuzzing of wasmlower against Wasmtime "
                                            "on wasm-opt -ttf modules.")
    add_arguments(p)
    return p


if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))

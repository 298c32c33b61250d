"""The compiler interface: ``CompilerBuilder`` configures, ``Compiler`` compiles.

    >>> from wasmlower.compiler import CompilerBuilder
    >>> builder = CompilerBuilder("x86_64").set("opt_level", 2)
    >>> compiler = builder.build()
    >>> compiled = compiler.compile_module(open("examples/fib.wasm", "rb").read())

A builder holds a target triple and named settings (``settings()`` lists them
with their kind, allowed values and description); ``build()`` checks the
combination and returns a ``Compiler``.  The compiler's pieces can be used
one by one (docs/compiler.md): ``translate`` (decode + validate),
``compile_function`` (one function, with its trap sites and address map),
``compile_host_to_wasm_trampoline``/``compile_wasm_to_host_trampoline`` (one
per signature), ``object`` (an artifact builder), ``append_code`` (lay
functions of one or several modules out in one text section and resolve
their calls); ``compile_module`` runs them all, with the incremental cache
and parallel compilation when enabled.
"""

from __future__ import annotations

import difflib
import gc
import hashlib
import importlib.util
import json
import os
import struct
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from .emit.compiled import CompiledFunction, CompiledModule
from .emit.object import ArtifactBuilder, CompiledComponent, fingerprint
from .emit.relocs import call_reloc, resolve
from .errors import CodegenError, UnsupportedError
from .pipeline import FunctionCode, ModuleInfo, Options, Timer, compile_functions, decode

__all__ = ["Compiler", "CompilerBuilder", "FunctionInfo", "FunctionLoc", "ModuleTranslation",
           "Setting", "SettingError", "UnsupportedError", "settings_main", "shutdown_workers"]

#: wasm features every module may use (part of an artifact's fingerprint)
FEATURES = ("bulk-memory", "multi-value", "mutable-global", "nontrapping-float-to-int",
            "reference-types", "sign-extension")

_TRIPLES = {
    "x86_64": "x86_64-unknown-linux-gnu", "x64": "x86_64-unknown-linux-gnu",
    "x86_64-unknown-linux-gnu": "x86_64-unknown-linux-gnu",
    "x86_64-linux-gnu": "x86_64-unknown-linux-gnu",
    "aarch64": "aarch64-unknown-linux-gnu", "arm64": "aarch64-unknown-linux-gnu",
    "aarch64-unknown-linux-gnu": "aarch64-unknown-linux-gnu",
    "aarch64-linux-gnu": "aarch64-unknown-linux-gnu",
}
#: the back end package of each architecture
_BACKENDS = {"x86_64": "wasmlower.isa.x64", "aarch64": "wasmlower.isa.aarch64"}


class SettingError(ValueError):
    """An unknown setting or target, or a bad value for a setting."""


@dataclass(frozen=True)
class Setting:
    name: str
    kind: str                   # "enum" | "number" | "bool" | "preset"
    default: Any
    description: str
    values: tuple = ()          # enum: allowed values; preset: the settings it sets
    affects_code: bool = True   # part of an artifact's fingerprint
    isa: bool = False           # an ISA flag (``Compiler.isa_flags``)

    def info(self) -> dict[str, Any]:
        d = {"name": self.name, "kind": self.kind, "description": self.description,
             "default": self.default, "isa": self.isa}
        if self.kind == "enum":
            d["values"] = list(self.values)
        elif self.kind == "bool":
            d["values"] = [False, True]
        elif self.kind == "number":
            d["values"] = "integer >= 0"
        else:
            d["values"] = dict(self.values)
            d["default"] = None
        return d


_SHARED = (
    Setting("opt_level", "enum", 1, "optimization level (0: none, 1: default, 2: more)",
            (0, 1, 2)),
    Setting("regalloc_stress", "bool", False,
            "allocate with only 3 registers per class (tests the spilling paths)"),
    Setting("regalloc_checker", "bool", False,
            "check every register allocation with the symbolic checker", affects_code=False),
    Setting("verify_ir", "bool", False, "run the IR verifier between stages", affects_code=False),
    Setting("parallel_compilation", "bool", True,
            "compile functions in worker processes (modules above parallel_threshold)",
            affects_code=False),
    Setting("parallel_threshold", "number", 131072,
            "code-section bytes above which compilation runs in parallel", affects_code=False),
    Setting("parallel_workers", "number", 0,
            "processes compiling in parallel, this one included (0: one per idle CPU)",
            affects_code=False),
)

_X64_FLAGS = (
    Setting("has_sse41", "bool", True, "SSE4.1 (roundss/roundsd for float rounding)", isa=True),
    Setting("has_popcnt", "bool", True, "POPCNT (i32/i64.popcnt)", isa=True),
    Setting("has_lzcnt", "bool", True, "LZCNT (i32/i64.clz)", isa=True),
    Setting("has_bmi1", "bool", True, "BMI1: TZCNT (i32/i64.ctz), ANDN", isa=True),
)
_X64_PRESETS = (
    Setting("x86-64-v2", "preset", None, "x86-64-v2 micro-architecture level",
            (("has_sse41", True), ("has_popcnt", True), ("has_lzcnt", False),
             ("has_bmi1", False)), isa=True),
    Setting("x86-64-v3", "preset", None, "x86-64-v3 micro-architecture level (Haswell+)",
            (("has_sse41", True), ("has_popcnt", True), ("has_lzcnt", True),
             ("has_bmi1", True)), isa=True),
)
_AARCH64_FLAGS = (
    Setting("has_lse", "bool", False, "Large System Extensions (atomics)", isa=True),
)
#: ISA flags the x64 rules require (set to false: not supported yet).  Without
#: LZCNT, TZCNT or POPCNT the bit counts are expanded (ir.legalize.legalize_isa).
_X64_REQUIRED = ("has_sse41",)


def _arch(triple: str) -> str:
    return triple.split("-", 1)[0]


def normalize_triple(target: str) -> str:
    """The full triple of ``target`` (``x86_64``, ``aarch64`` or a triple)."""
    if not isinstance(target, str) or target not in _TRIPLES:
        close = difflib.get_close_matches(str(target), list(_TRIPLES), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise SettingError(f"unknown target {target!r} (known: x86_64-unknown-linux-gnu, "
                           f"aarch64-unknown-linux-gnu){hint}")
    return _TRIPLES[target]


def settings_for(triple: str) -> dict[str, Setting]:
    arch = _arch(triple)
    isa = _X64_FLAGS + _X64_PRESETS if arch == "x86_64" else _AARCH64_FLAGS
    return {s.name: s for s in (*_SHARED, *isa)}


def _host_triple() -> str:
    import platform
    machine = platform.machine().lower()
    return _TRIPLES.get(machine, "x86_64-unknown-linux-gnu")


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


class CompilerBuilder:
    """Configure a ``Compiler``: target, settings, incremental cache."""

    def __init__(self, target: str | None = None) -> None:
        self._triple = normalize_triple(target) if target is not None else _host_triple()
        self._values = {s.name: s.default for s in settings_for(self._triple).values()
                        if s.kind != "preset"}
        self._cache: Any = None

    # -- target ---------------------------------------------------------------------------

    def target(self, triple: str) -> CompilerBuilder:
        """Change the target; settings of the old target's ISA are reset to defaults."""
        new = normalize_triple(triple)
        if new != self._triple:
            old = self._values
            self._triple = new
            self._values = {s.name: (old[s.name] if not s.isa and s.name in old else s.default)
                            for s in settings_for(new).values() if s.kind != "preset"}
        return self

    def triple(self) -> str:
        return self._triple

    # -- settings -------------------------------------------------------------------------

    def _setting(self, name: str) -> Setting:
        table = settings_for(self._triple)
        if not isinstance(name, str) or name not in table:
            close = difflib.get_close_matches(str(name), list(table), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else \
                f"; known settings: {', '.join(table)}"
            raise SettingError(f"unknown setting {name!r} for {self._triple}{hint}")
        return table[name]

    def set(self, name: str, value: Any) -> CompilerBuilder:
        """Set ``name`` to ``value`` (strings are parsed: ``"true"``, ``"2"``, ...)."""
        s = self._setting(name)
        if s.kind == "preset":
            if _coerce_bool(s, value):
                return self.enable(name)
            raise SettingError(f"preset {name!r} can only be enabled")
        self._values[name] = _coerce(s, value)
        return self

    def enable(self, name: str) -> CompilerBuilder:
        """Set a bool setting to true, or apply a preset."""
        s = self._setting(name)
        if s.kind == "preset":
            for flag, value in s.values:
                self._values[flag] = value
        elif s.kind == "bool":
            self._values[name] = True
        else:
            raise SettingError(f"setting {name!r} is a {s.kind}, not a bool: use "
                               f"set({name!r}, value) (allowed: {s.info()['values']})")
        return self

    def settings(self) -> list[dict[str, Any]]:
        """Every setting of this target: name, kind, description, values, default, current."""
        out = []
        for s in settings_for(self._triple).values():
            d = s.info()
            d["value"] = self._values.get(s.name)
            out.append(d)
        return out

    def values(self) -> dict[str, Any]:
        """The current value of every (non-preset) setting."""
        return dict(self._values)

    def enable_incremental_compilation(self, cache_store: Any) -> CompilerBuilder:
        """Serve unchanged functions from ``cache_store`` (a ``cache.CacheStore``)."""
        if not (callable(getattr(cache_store, "get", None))
                and callable(getattr(cache_store, "insert", None))):
            raise TypeError("a cache store needs get(key) and insert(key, value)")
        self._cache = cache_store
        return self

    # -- build ----------------------------------------------------------------------------

    def build(self) -> Compiler:
        arch = _arch(self._triple)
        if importlib.util.find_spec(_BACKENDS[arch]) is None:
            raise UnsupportedError(f"target {self._triple} is known but not supported yet: "
                                   f"there is no {arch} back end ({_BACKENDS[arch]}); "
                                   f"supported: x86_64-unknown-linux-gnu")
        if arch == "x86_64":
            off = [f for f in _X64_REQUIRED if not self._values[f]]
            if off:
                raise UnsupportedError(
                    f"{', '.join(f + '=false' for f in off)} is not supported yet: the x64 "
                    f"lowering rules use ROUNDSS/ROUNDSD for float rounding unconditionally")
        return Compiler(self._triple, dict(self._values), self._cache)


#: /proc/cpuinfo flag of each x64 ISA setting (LZCNT is reported as "abm")
_CPUINFO_FLAGS = {"has_sse41": "sse4_1", "has_popcnt": "popcnt", "has_lzcnt": "abm",
                  "has_bmi1": "bmi1"}


def host_cpu_flags() -> set[str] | None:
    """The host CPU's flags from /proc/cpuinfo (None if unknown)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def check_host(compiler: Compiler) -> None:
    """Raise ``UnsupportedError`` if code of ``compiler`` cannot run on this CPU."""
    import platform
    host = platform.machine()
    if compiler.arch != _arch(_TRIPLES.get(host.lower(), host.lower())):
        raise UnsupportedError(f"code for {compiler.triple()} cannot run on this {host} host")
    flags = host_cpu_flags()
    if flags is None or compiler.arch != "x86_64":
        return
    missing = [name for name, flag in _CPUINFO_FLAGS.items()
               if compiler.isa_flags().get(name) and flag not in flags]
    if missing:
        raise UnsupportedError(f"this CPU lacks {', '.join(missing)} (CPU flags "
                               f"{', '.join(_CPUINFO_FLAGS[m] for m in missing)}), which "
                               f"the compiler settings use")


def _coerce_bool(s: Setting, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise SettingError(f"setting {s.name!r} is a bool: expected true or false, got {value!r}")


def _coerce(s: Setting, value: Any) -> Any:
    if s.kind == "bool":
        return _coerce_bool(s, value)
    if s.kind == "number":
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise SettingError(f"setting {s.name!r} is a number: expected an integer >= 0, "
                               f"got {value!r}")
        return value
    # enum
    for allowed in s.values:
        if value == allowed or (isinstance(value, str) and value == str(allowed)):
            return allowed
    raise SettingError(f"setting {s.name!r} must be one of "
                       f"{', '.join(str(v) for v in s.values)}; got {value!r}")


# --- compilation units ---------------------------------------------------------------------


@dataclass
class ModuleTranslation:
    """A decoded and validated module plus what compilation and the cache need."""

    module: Any
    wasm: bytes
    bodies: list[bytes]                     # raw bytes of each function body
    context_hash: bytes                     # hash of the module without its code section

    @property
    def num_defined_funcs(self) -> int:
        return len(self.module.codes)


@dataclass
class FunctionInfo:
    """One compiled function: its code and what the runtime needs about it."""

    code: FunctionCode
    start_srcloc: int | None                 # wasm offset of the body
    stack_maps: list = field(default_factory=list)   # (room for GC stack maps)
    cached: bool = False

    @property
    def traps(self) -> list[tuple[int, str]]:
        return self.code.traps

    @property
    def address_map(self) -> list[tuple[int, int]]:
        return self.code.addrmap


@dataclass(frozen=True)
class FunctionLoc:
    start: int
    length: int


def _split_code_section(wasm: bytes) -> tuple[bytes, list[bytes]]:
    """(the module's bytes without its code section, the raw bytes of each body)."""
    from .wasm.decode import read_uleb
    pos, context, bodies = 8, bytearray(wasm[:8]), []
    while pos < len(wasm):
        start = pos
        sid = wasm[pos]
        size, body_start = read_uleb(wasm, pos + 1)
        end = body_start + size
        if sid == 10:
            count, p = read_uleb(wasm, body_start)
            for _ in range(count):
                n, q = read_uleb(wasm, p)
                bodies.append(bytes(wasm[p:q + n]))
                p = q + n
        else:
            context += wasm[start:end]
        pos = end
    return bytes(context), bodies


# --- the cache's value encoding --------------------------------------------------------------

_CACHE_MAGIC = b"WLFC\x02"


def _encode_cached(fc: FunctionCode, base: int) -> bytes:
    """magic, sha256 of the rest, u32 JSON length, JSON (name, traps, calls, address map
    relative to the body at ``base``), machine code."""
    meta = json.dumps({"name": fc.name, "traps": fc.traps, "calls": fc.calls,
                       "addrmap": [(a, w - base) for a, w in fc.addrmap]},
                      separators=(",", ":")).encode()
    payload = struct.pack("<I", len(meta)) + meta + fc.code
    return _CACHE_MAGIC + hashlib.sha256(payload).digest() + payload


def _decode_cached(data: bytes, index: int, base: int) -> FunctionCode | None:
    """The cached function, or None if the entry is damaged or not ours (a miss)."""
    from .ir.ops import TRAP_CODES
    try:
        head = len(_CACHE_MAGIC)
        payload = data[head + 32:]
        if not data.startswith(_CACHE_MAGIC) or \
                hashlib.sha256(payload).digest() != data[head:head + 32]:
            return None
        (n,) = struct.unpack_from("<I", payload, 0)
        meta = json.loads(payload[4:4 + n])
        code = bytes(payload[4 + n:])
        traps = [(int(o), str(k)) for o, k in meta["traps"]]
        calls = [(int(o), int(c)) for o, c in meta["calls"]]
        addrmap = [(int(a), int(w) + base) for a, w in meta["addrmap"]]
        if any(not 0 <= o <= len(code) for o, _ in traps + addrmap) or \
                any(not 0 <= o <= len(code) - 4 for o, _ in calls) or \
                any(k not in TRAP_CODES for _, k in traps):
            return None
        return FunctionCode(index, str(meta["name"]), code, addrmap, traps, calls)
    except (ValueError, KeyError, TypeError, struct.error):
        return None


# --- parallel workers (spawn-safe: top-level functions, picklable arguments) -------------------

# A minimal module ((i32) -> i32, x + 1): compiling it in a new worker loads the numba
# kernels and the rules before real work arrives.
_WARMUP_WASM = bytes.fromhex("0061736d01000000" "01060160017f017f" "03020100"
                             "0a09010700200041016a0b")
_WORKER_MODULES: dict[bytes, Any] = {}      # in a worker: sha256 of wasm -> decoded module
_POOLS: dict[int, Any] = {}                 # in the parent: processes -> ProcessPoolExecutor


def _worker_warm() -> None:
    gc.disable()
    compile_functions(decode(_WARMUP_WASM), [0], Options())


def _worker_compile(key: bytes, wasm: bytes, options: dict[str, Any], indices: list[int]
                    ) -> tuple[list[FunctionCode], dict[str, float]]:
    module = _WORKER_MODULES.get(key)
    if module is None:
        _WORKER_MODULES.clear()             # one module at a time
        module = _WORKER_MODULES[key] = decode(wasm)
    timer = Timer()
    codes = compile_functions(module, indices, Options(**options), timer)
    return codes, timer.seconds


def _worker_pool(processes: int) -> Any:
    """A pool of ``processes`` warmed-up worker processes, kept for later compilations
    (starting one costs seconds: importing numba and loading the rules)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    pool = _POOLS.get(processes)
    if pool is None:
        pool = _POOLS[processes] = ProcessPoolExecutor(
            processes, mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_warm)
    return pool


def shutdown_workers() -> None:
    """Stop the worker processes of parallel compilation (they are started again when
    needed; at exit they stop by themselves)."""
    while _POOLS:
        _, pool = _POOLS.popitem()
        pool.shutdown(wait=True, cancel_futures=True)


def _idle_cpus() -> int:
    """CPUs this process may use that are not busy (1-minute load average, this process
    counted as one): more workers than idle CPUs only slow compilation down."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        busy = max(0.0, os.getloadavg()[0] - 1.0)
    except OSError:
        busy = 0.0
    return max(1, int(cpus - busy + 0.5))


def _spawn_safe() -> bool:
    """Whether spawned workers can start: they re-import ``__main__`` from its file."""
    import sys
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return path is None or os.path.isfile(path)


BATCH = 48          # functions per keystone call / per parallel task


class Compiler:
    """Compiles modules for one target with one set of settings (see ``CompilerBuilder``)."""

    def __init__(self, triple: str, values: dict[str, Any], cache: Any = None) -> None:
        self._triple = triple
        self._values = values
        self.cache = cache
        self.stats: dict[str, int] = {"functions_compiled": 0, "cache_hits": 0,
                                      "cache_misses": 0, "parallel_batches": 0}

    # -- description ------------------------------------------------------------------------

    def triple(self) -> str:
        return self._triple

    @property
    def arch(self) -> str:
        return _arch(self._triple)

    def page_size_align(self) -> int:
        """Alignment the text must have when mapped (the target's page size)."""
        return 0x1000 if self.arch == "x86_64" else 0x10000

    def flags(self) -> dict[str, Any]:
        """Target-independent settings."""
        table = settings_for(self._triple)
        return {k: v for k, v in self._values.items() if not table[k].isa}

    def isa_flags(self) -> dict[str, Any]:
        table = settings_for(self._triple)
        return {k: v for k, v in self._values.items() if table[k].isa}

    def code_settings(self) -> dict[str, Any]:
        """The settings that change generated code (an artifact's fingerprint holds them)."""
        table = settings_for(self._triple)
        return {k: v for k, v in sorted(self._values.items()) if table[k].affects_code}

    def fingerprint(self) -> dict:
        return fingerprint(self._triple, self.code_settings(), list(FEATURES))

    def options(self, **kw: Any) -> Options:
        v = self._values
        off = frozenset(k for k, on in self.isa_flags().items() if on is False)
        kw.setdefault("isa_off", off)
        return Options(target=self.arch, opt_level=v["opt_level"], stress=v["regalloc_stress"],
                       check=v["regalloc_checker"] or v["verify_ir"], **kw)

    # -- pieces -----------------------------------------------------------------------------

    def translate(self, wasm: bytes, timer: Timer | None = None) -> ModuleTranslation:
        """Decode and validate ``wasm``."""
        wasm = bytes(wasm)
        timer = timer or Timer()
        with timer.stage("decode"):
            module = decode(wasm)
            context, bodies = _split_code_section(wasm)
        if len(bodies) != len(module.codes):
            raise CodegenError(f"found {len(bodies)} bodies, the decoder {len(module.codes)}")
        return ModuleTranslation(module, wasm, bodies, hashlib.sha256(context).digest())

    def compile_function(self, translation: ModuleTranslation, index: int) -> FunctionInfo:
        """Compile defined function ``index`` (0 = the first non-imported function)."""
        return self.compile_functions(translation, [index])[0]

    def compile_functions(self, translation: ModuleTranslation, indices: Iterable[int],
                          timer: Timer | None = None) -> list[FunctionInfo]:
        """Compile defined functions ``indices``: cached ones from the cache, the rest
        serially or in worker processes; results in the order of ``indices``."""
        indices = list(indices)
        timer = timer or Timer()
        module = translation.module
        n = len(module.codes)
        for i in indices:
            if not 0 <= i < n:
                raise IndexError(f"no defined function {i} (the module defines {n})")
        out: dict[int, FunctionInfo] = {}
        keys: dict[int, bytes] = {}
        if self.cache is not None:
            for i in indices:
                keys[i] = self._cache_key(translation, i)
                data = self.cache.get(keys[i])
                fc = _decode_cached(data, module.num_imported_funcs + i,
                                    module.codes[i].offset) if data else None
                if fc is not None:
                    out[i] = FunctionInfo(fc, module.codes[i].offset, cached=True)
            self.stats["cache_hits"] += len(out)
            self.stats["cache_misses"] += len(indices) - len(out)
        todo = [i for i in indices if i not in out]
        for fc, i in zip(self._compile_codes(translation, todo, timer), todo):
            out[i] = FunctionInfo(fc, module.codes[i].offset)
            if self.cache is not None:
                try:
                    self.cache.insert(keys[i], _encode_cached(fc, module.codes[i].offset))
                except OSError:
                    pass            # a cache that cannot be written is no cache
        self.stats["functions_compiled"] += len(todo)
        return [out[i] for i in indices]

    def _use_parallel(self, translation: ModuleTranslation, todo: Sequence[int]) -> int:
        """Number of workers to use (0: compile here)."""
        v = self._values
        if not v["parallel_compilation"] or len(todo) < 2 * BATCH:
            return 0
        size = sum(len(translation.bodies[i]) for i in todo)
        if size < v["parallel_threshold"]:
            return 0
        workers = v["parallel_workers"] or _idle_cpus()
        if workers < 2 or not _spawn_safe():
            return 0
        return min(workers, (len(todo) + BATCH - 1) // BATCH)

    def _compile_codes(self, translation: ModuleTranslation, todo: list[int],
                       timer: Timer) -> list[FunctionCode]:
        if not todo:
            return []
        batches = [todo[k:k + BATCH] for k in range(0, len(todo), BATCH)]
        workers = self._use_parallel(translation, todo)
        codes: list[FunctionCode] = []
        if workers:
            try:
                return self._compile_parallel(translation, batches, workers, timer)
            except (BrokenProcessPool, OSError):
                pass            # workers could not start (e.g. spawn cannot re-import main)
        opts = self.options()
        for batch in batches:
            codes += compile_functions(translation.module, batch, opts, timer)
        return codes

    def _compile_parallel(self, translation: ModuleTranslation, batches: list[list[int]],
                          workers: int, timer: Timer) -> list[FunctionCode]:
        """``workers - 1`` spawned processes take batches from the front, this process
        from the back (it needs no start-up); results are put back in batch order."""
        from collections import deque
        from concurrent.futures import FIRST_COMPLETED, wait
        opts = self.options()
        kw = {"target": opts.target, "opt_level": opts.opt_level, "stress": opts.stress,
              "check": opts.check, "isa_off": opts.isa_off}
        key = hashlib.sha256(translation.wasm).digest()
        results: dict[int, list[FunctionCode]] = {}
        seconds: list[dict[str, float]] = []
        pending = deque(range(len(batches)))
        remote = 0
        pool = _worker_pool(workers - 1)
        try:
            inflight: dict[Any, int] = {}
            while pending or inflight:
                while pending and len(inflight) < 2 * (workers - 1):
                    k = pending.popleft()
                    inflight[pool.submit(_worker_compile, key, translation.wasm, kw,
                                         batches[k])] = k
                if pending:
                    k = pending.pop()
                    results[k] = compile_functions(translation.module, batches[k], opts, timer)
                    done = [f for f in inflight if f.done()]
                else:
                    done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                for f in done:
                    k = inflight.pop(f)
                    results[k], secs = f.result()
                    seconds.append(secs)
                    remote += 1
        except BrokenProcessPool:
            _POOLS.pop(workers - 1, None)
            raise
        for secs in seconds:
            for name, t in secs.items():
                timer.seconds[name] = timer.seconds.get(name, 0.0) + t
        self.stats["parallel_batches"] += remote
        return [fc for k in range(len(batches)) for fc in results[k]]

    def _cache_key(self, translation: ModuleTranslation, index: int) -> bytes:
        h = hashlib.sha256()
        h.update(json.dumps(self.fingerprint(), sort_keys=True).encode())
        h.update(translation.context_hash)
        h.update(struct.pack("<Q", index))
        h.update(translation.bodies[index])
        return h.digest()

    def compile_host_to_wasm_trampoline(self, func_type: Any) -> bytes:
        """Machine code of the host-to-wasm trampoline of ``func_type`` (docs/ABI.md)."""
        return self._assemble(self._trampolines_of_isa().host_to_wasm_asm(func_type, "h2w"))

    def compile_wasm_to_host_trampoline(self, func_type: Any) -> bytes:
        return self._assemble(self._trampolines_of_isa().wasm_to_host_asm(func_type, "w2h"))

    def compile_trap_routine(self) -> bytes:
        return self._assemble(self._trampolines_of_isa().trap_routine_asm("wl_trap"))

    def _trampolines_of_isa(self) -> Any:
        return importlib.import_module(f"{_BACKENDS[self.arch]}.trampolines")

    def _assemble(self, asm: str) -> bytes:
        from .emit.assemble import assemble
        return assemble(asm, self.arch)

    def object(self, kind: str = "module") -> ArtifactBuilder:
        """A new artifact builder for a ``"module"`` or a ``"component"``."""
        return ArtifactBuilder(self.arch, kind)

    def append_code(self, obj: ArtifactBuilder, funcs: Sequence[tuple[str, FunctionCode]],
                    resolve_reloc: Callable[[int, int], int | None]
                    ) -> list[tuple[str, FunctionLoc]]:
        """Lay ``funcs`` out in ``obj``'s text (16-byte aligned) and resolve their calls.

        ``funcs`` may come from several modules; ``resolve_reloc(i, callee)`` maps a call
        of ``funcs[i]`` to wasm function ``callee`` to the position in ``funcs`` of the
        target (None: unresolved, an error).  Returns ``(symbol, location)`` per function.
        """
        locs = []
        for name, fc in funcs:
            start = obj.append_text(fc.code, 16)
            obj.add_symbol(name, start, len(fc.code))
            locs.append((name, FunctionLoc(start, len(fc.code))))
        text = obj.text
        for i, (name, fc) in enumerate(funcs):
            base = locs[i][1].start
            for off, callee in fc.calls:
                j = resolve_reloc(i, callee)
                if j is None or not 0 <= j < len(funcs):
                    raise CodegenError(f"{name} calls function {callee}, which was not compiled")
                reloc = call_reloc(self.arch, base + off, locs[j][1].start)
                resolve(text, reloc)
                obj.relocs.append(reloc)
        return locs

    # -- everything -----------------------------------------------------------------------------

    def compile_module(self, wasm: bytes) -> CompiledModule:
        """Compile a binary module: functions (cache, workers), trampolines, layout."""
        enabled = gc.isenabled()
        gc.disable()
        try:
            return self._compile_module(wasm)
        finally:
            if enabled:
                gc.enable()

    def _compile_module(self, wasm: bytes) -> CompiledModule:
        timer = Timer()
        translation = self.translate(wasm, timer)
        module = translation.module
        infos = self.compile_functions(translation, range(len(module.codes)), timer)
        with timer.stage("object"):
            obj = self.object("module")
            where = {info.code.index: k for k, info in enumerate(infos)}
            locs = self.append_code(obj, [(info.code.name, info.code) for info in infos],
                                    lambda _i, callee: where.get(callee))
            functions = []
            for info, (_, loc) in zip(infos, locs):
                fc = info.code
                functions.append(CompiledFunction(
                    fc.index, fc.name, loc.start, loc.length,
                    [(loc.start + o, w) for o, w in fc.addrmap],
                    [(loc.start + o, k) for o, k in fc.traps]))
            h2w, w2h = self._trampolines(obj, self.signatures(module))
            trap = obj.append_text(self.compile_trap_routine(), 16)
        compiled = CompiledModule(module, bytes(obj.text), functions, list(obj.relocs), h2w, w2h,
                                  trap, ModuleInfo(module).libcall_names, self.arch, b"")
        compiled.stats = dict(timer.seconds)
        return compiled

    def compile_component(self, wasm: bytes) -> CompiledComponent:
        """Compile every core module of a component binary into one text section.

        Functions of all modules are laid out together (calls resolved within
        each module), followed by one trampoline pair per distinct signature of
        the whole component.  The component's other sections are kept raw; nested
        components are not supported yet.
        """
        enabled = gc.isenabled()
        gc.disable()
        try:
            return self._compile_component(bytes(wasm))
        finally:
            if enabled:
                gc.enable()

    def _compile_component(self, wasm: bytes) -> CompiledComponent:
        from .component.decode import decode_component, split_sections
        cores, others = split_sections(wasm)
        timer = Timer()
        translations = [self.translate(core, timer) for core in cores]
        decode_component(others, [t.module for t in translations])     # check it first
        infos = [self.compile_functions(t, range(len(t.module.codes)), timer)
                 for t in translations]
        with timer.stage("object"):
            obj = self.object("component")
            funcs, owner = [], []
            for k, module_infos in enumerate(infos):
                for info in module_infos:
                    funcs.append((f"m{k}_{info.code.name}_{info.code.index}", info.code))
                    owner.append(k)
            where = {(o, fc.index): i for i, (o, (_, fc)) in enumerate(zip(owner, funcs))}
            locs = self.append_code(obj, funcs, lambda i, callee: where.get((owner[i], callee)))
            sigs = [ft for t in translations for ft in self.signatures(t.module)]
            h2w, w2h = self._trampolines(obj, sigs)
            trap = obj.append_text(self.compile_trap_routine(), 16)
        text = bytes(obj.text)
        modules = []
        for k, t in enumerate(translations):
            functions = []
            for i, (_, fc) in enumerate(funcs):
                if owner[i] != k:
                    continue
                loc = locs[i][1]
                functions.append(CompiledFunction(
                    fc.index, fc.name, loc.start, loc.length,
                    [(loc.start + o, w) for o, w in fc.addrmap],
                    [(loc.start + o, kind) for o, kind in fc.traps]))
            cm = CompiledModule(t.module, text, functions, list(obj.relocs), h2w, w2h, trap,
                                ModuleInfo(t.module).libcall_names, self.arch, b"")
            cm.stats = dict(timer.seconds)
            modules.append(cm)
        return CompiledComponent(modules, [(sid, raw) for sid, raw, _ in others], self.arch)

    @staticmethod
    def signatures(module: Any) -> list[Any]:
        """The distinct signatures of ``module`` (one trampoline pair each)."""
        imported = [module.types[imp.desc] for imp in module.imports if imp.kind == "func"]
        return list(dict.fromkeys([*module.types, *imported]))

    def _trampolines(self, obj: ArtifactBuilder, sigs: Iterable[Any]) -> tuple[dict, dict]:
        h2w, w2h = {}, {}
        for ft in dict.fromkeys(sigs):
            h2w[ft] = obj.append_text(self.compile_host_to_wasm_trampoline(ft), 16)
            w2h[ft] = obj.append_text(self.compile_wasm_to_host_trampoline(ft), 16)
        return h2w, w2h

    def __repr__(self) -> str:
        return f"<Compiler {self._triple} {self._values}>"


# --- CLI: ``wasmlower settings [--target T]`` ------------------------------------------------


def settings_main(args: Any) -> int:
    """Print every setting of ``args.target`` (default: the host) with kind and values."""
    import sys
    try:
        builder = CompilerBuilder(getattr(args, "target", None))
    except SettingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"settings for {builder.triple()}:")
    rows = builder.settings()
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        if r["kind"] == "preset":
            values = ", ".join(f"{k}={'true' if v else 'false'}" for k, v in r["values"].items())
            line = f"  {r['name']:<{width}}  preset   sets {values}"
        else:
            vals = r["values"]
            vals = "|".join(str(v).lower() if isinstance(v, bool) else str(v) for v in vals) \
                if isinstance(vals, list) else vals
            default = str(r["default"]).lower() if isinstance(r["default"], bool) \
                else r["default"]
            line = f"  {r['name']:<{width}}  {r['kind']:<7}  {vals} (default {default})"
        print(f"{line}\n  {'':<{width}}  {r['description']}")
    try:
        builder.build()
    except UnsupportedError as e:
        print(f"note: {e}")
    return 0

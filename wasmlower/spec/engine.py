"""The spec-test adapter for wasmlower itself, and the `wasmlower spec` command."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import CodegenError, ExhaustionError, LinkError, MalformedError, Trap, WasmError
from .runner import (
    CompileRejected,
    Exhausted,
    Imports,
    LinkFailed,
    Trapped,
    UnsupportedFeature,
)
from .wast import Value

_REF_TYPES = ("funcref", "externref")


class WasmlowerAdapter:
    """Runs spec modules through the whole wasmlower pipeline, natively."""

    name = "wasmlower"

    def __init__(self, target: str = "x86_64", opt_level: int = 1, *, check: bool = False,
                 stress: bool = False) -> None:
        from ..engine import Engine
        self.engine = Engine(target=target, opt_level=opt_level, check=check, stress=stress)
        self.reset()

    def reset(self) -> None:
        from ..runtime import Store
        self.store = Store()
        self._spectest: dict[str, Any] | None = None

    def compile(self, wasm: bytes) -> object:
        from ..engine import Module
        try:
            return Module(self.engine, wasm)
        except WasmError as e:
            # A module using a feature beyond 2.0 is not a valid 2.0 module: it
            # is rejected (the runner has already skipped commands whose module
            # MODULES.tsv puts in a later tier).
            kind = "malformed" if isinstance(e, MalformedError) else "invalid"
            raise CompileRejected(kind, str(e)) from None
        except CodegenError as e:
            if "unsupported" in str(e):
                raise UnsupportedFeature(str(e)) from None
            raise

    def instantiate(self, module: object, imports: Imports) -> object:
        from ..runtime import Instance
        mod = module.module                               # type: ignore[attr-defined]

        def resolve(module_name: str, field: str) -> Any:
            return imports(module_name, field)
        del mod
        try:
            return Instance(module.compiled, resolve, self.store)  # type: ignore[attr-defined]
        except ExhaustionError as e:
            raise Exhausted(str(e)) from None
        except Trap as e:
            raise Trapped(e.message) from None
        except LinkError as e:
            raise LinkFailed(str(e)) from None

    def exports(self, instance: object) -> Mapping[str, object]:
        return instance.exports                           # type: ignore[attr-defined]

    def invoke(self, instance: object, name: str, args: list[Value]) -> list[Value]:
        func = instance.exports[name]                     # type: ignore[attr-defined]
        ft = func.type
        bits = [self._to_bits(a) for a in args]
        try:
            out = func.call_raw(bits)
        except ExhaustionError as e:
            raise Exhausted(str(e)) from None
        except Trap as e:
            raise Trapped(e.message) from None
        return [self._from_bits(t.value, b) for t, b in zip(ft.results, out)]

    def get_global(self, instance: object, name: str) -> Value:
        g = instance.exports[name]                        # type: ignore[attr-defined]
        return self._from_bits(g.type.value, g.get_raw())

    def spectest(self) -> Mapping[str, object]:
        if self._spectest is None:
            self._spectest = self._make_spectest()
        return self._spectest

    # -- values ---------------------------------------------------------------
    def _to_bits(self, v: Value) -> int:
        if v.type == "v128":
            raise UnsupportedFeature("simd")
        if v.type in _REF_TYPES:
            if v.bits is None:
                return 0
            if v.type == "externref":
                return self.store.to_bits(_valtype("externref"), _Extern(v.bits))
            raise UnsupportedFeature("non-null funcref arguments")
        return int(v.bits or 0)

    def _from_bits(self, t: str, bits: int) -> Value:
        if t in _REF_TYPES:
            if bits == 0:
                return Value(t, None)
            if t == "externref":
                obj = self.store.from_bits(_valtype("externref"), bits)
                return Value(t, obj.n if isinstance(obj, _Extern) else bits)
            return Value(t, bits)
        return Value(t, bits)

    def _make_spectest(self) -> dict[str, Any]:
        from ..runtime import Func, Global, Memory, Table
        from ..wasm.module import FuncType, GlobalType, Limits, MemoryType, TableType, ValType
        s = self.store
        i32, i64, f32, f64 = ValType.I32, ValType.I64, ValType.F32, ValType.F64

        def func(*params: ValType) -> Any:
            return Func(s, FuncType(tuple(params), ()), lambda *a: None)
        return {
            "print": func(), "print_i32": func(i32), "print_i64": func(i64),
            "print_f32": func(f32), "print_f64": func(f64),
            "print_i32_f32": func(i32, f32), "print_f64_f64": func(f64, f64),
            "global_i32": Global(s, GlobalType(i32, False), 666),
            "global_i64": Global(s, GlobalType(i64, False), 666),
            "global_f32": Global(s, GlobalType(f32, False), 666.6),
            "global_f64": Global(s, GlobalType(f64, False), 666.6),
            "table": Table(s, TableType(ValType.FUNCREF, Limits(10, 20))),
            "memory": Memory(s, MemoryType(Limits(1, 2))),
        }


class _Extern:
    """An externref host object standing for the script's ``ref.extern N``."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Extern) and other.n == self.n

    def __hash__(self) -> int:
        return hash(("extern", self.n))


def _valtype(name: str):
    from ..wasm.module import ValType
    return ValType(name)


def run_spec(args: Any) -> int:
    """`wasmlower spec`: run .wast files, print a table, optionally write JSON."""
    from .runner import find_spec_dir, format_table, run_files, scope_files, to_json
    tiers = None if args.all_tiers else ("mvp", "2.0-scalar")
    paths: list[Path] = []
    spec_dir = find_spec_dir()
    for p in args.paths or []:
        path = Path(p)
        paths += scope_files(path, tiers) if path.is_dir() else [path]
    if not args.paths:
        if spec_dir is None:
            print("error: the spec test suite was not found (set WASMLOWER_SPEC_DIR or put it "
                  "at ../shared/wasm-testsuite)", file=sys.stderr)
            return 2
        paths = scope_files(spec_dir, tiers)
    adapter = WasmlowerAdapter(target=args.target, opt_level=args.opt_level)

    def progress(result: Any) -> None:
        if not args.quiet:
            c = result.counts
            passed = sum(k["passed"] for k in c.values())
            failed = sum(k["failed"] for k in c.values())
            print(f"  {result.file}: {passed} passed, {failed} failed", file=sys.stderr)
    results = run_files(paths, adapter, tiers, spec_dir, progress)
    print(format_table(results))
    if args.failures:
        for r in results.values():
            for f in r.failures:
                print(f"{r.file}: {f}")
    if args.json:
        Path(args.json).write_text(json.dumps(to_json(results), indent=1))
    return 0

"""An :class:`~wasmlower.spec.runner.EngineAdapter` over the ``wasmtime`` PyPI package.

It serves as a reference engine (to test the runner itself, and to compare
against) and needs the optional ``wasmtime`` package.

Values cross the boundary bit-exactly: arguments and results are moved through
the raw ``wasmtime_val_t`` union (the public ``Val`` API would convert ``f32``
through a Python float, which can quieten signalling NaNs).  If the private
``wasmtime._ffi`` layer is not available the adapter falls back to the public
API, with that NaN-payload limitation.
"""

from __future__ import annotations

import contextlib
import ctypes
import struct
from collections.abc import Mapping
from typing import Any

import wasmtime

from wasmlower.spec.runner import (
    CompileRejected,
    Exhausted,
    Imports,
    LinkFailed,
    Trapped,
    UnsupportedFeature,
)
from wasmlower.spec.wast import Value

try:  # the raw C-API layer, for bit-exact values
    from wasmtime import _ffi as ffi
    from wasmtime._error import WasmtimeError as _WasmtimeError

    _RAW = all(hasattr(ffi, n) for n in (
        "wasmtime_val_t", "wasmtime_func_call", "wasmtime_global_get",
        "wasmtime_wasm_valtype_equal", "wasmtime_wasm_valtype_v128", "wasm_trap_t",
        "wasmtime_val_unroot"))
except ImportError:  # pragma: no cover - depends on the wasmtime version
    ffi = None
    _RAW = False

__all__ = ["WasmtimeAdapter", "default_config"]

_VAL_KIND_NAME = {0: "i32", 1: "i64", 2: "f32", 3: "f64", 4: "v128", 5: "funcref",
                  6: "externref", 7: "anyref", 8: "exnref"}

_MALFORMED_HINTS = (
    "magic", "unexpected end", "end of file", "eof", "leb", "malformed", "too large",
    "section", "unknown binary version", "invalid utf-8", "utf-8", "integer representation",
    "integer too", "out of order", "illegal opcode", "unknown opcode", "zero byte expected",
    "reserved byte", "length out of bounds", "junk", "trailing", "unexpected content",
    "invalid var_u", "invalid var_i", "malformed mutability", "invalid table resizable",
)


def default_config() -> wasmtime.Config:
    """A config with the proposals of the 3.0 core test suite switched on."""
    config = wasmtime.Config()
    for setter, value in (
        ("wasm_simd", True), ("wasm_relaxed_simd", True),
        ("wasm_relaxed_simd_deterministic", True), ("wasm_bulk_memory", True),
        ("wasm_reference_types", True), ("wasm_multi_value", True),
        ("wasm_multi_memory", True), ("wasm_tail_call", True), ("wasm_memory64", True),
        ("wasm_function_references", True), ("wasm_gc", True), ("wasm_exceptions", True),
    ):
        with contextlib.suppress(AttributeError, wasmtime.WasmtimeError):
            setattr(config, setter, value)
    return config


def _signed(bits: int, width: int) -> int:
    bits &= (1 << width) - 1
    return bits - (1 << width) if bits >> (width - 1) else bits


def _classify_compile_error(message: str) -> str:
    low = message.lower()
    return "malformed" if any(h in low for h in _MALFORMED_HINTS) else "invalid"


#: Wasmtime trap codes -> the spec test suite's wording
_TRAP_WORDING = {
    "STACK_OVERFLOW": "call stack exhausted",
    "MEMORY_OUT_OF_BOUNDS": "out of bounds memory access",
    "HEAP_MISALIGNED": "unaligned atomic",
    "TABLE_OUT_OF_BOUNDS": "out of bounds table access",
    "INDIRECT_CALL_TO_NULL": "uninitialized element",
    "BAD_SIGNATURE": "indirect call type mismatch",
    "INTEGER_OVERFLOW": "integer overflow",
    "INTEGER_DIVISION_BY_ZERO": "integer divide by zero",
    "BAD_CONVERSION_TO_INTEGER": "invalid conversion to integer",
    "UNREACHABLE": "unreachable",
    "NULL_REFERENCE": "null reference",
    "ARRAY_OUT_OF_BOUNDS": "out of bounds array access",
    "ALLOCATION_TOO_LARGE": "allocation too large",
    "CAST_FAILURE": "cast failure",
    "UNCAUGHT_EXCEPTION": "uncaught exception",
}


def _last_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class WasmtimeAdapter:
    """Runs modules in Wasmtime.  One ``Store`` holds a file's instances; ``reset()``
    (called by the runner at the start of each file) starts a fresh one."""

    name = "wasmtime"

    def __init__(self, config: wasmtime.Config | None = None) -> None:
        self._engine = wasmtime.Engine(config if config is not None else default_config())
        self._store = wasmtime.Store(self._engine)
        self._spectest: dict[str, Any] | None = None
        self.raw_values = _RAW
        self._known_types: list[tuple[wasmtime.ValType, tuple[str, int]]] | None = None
        self._v128: Any = None

    def reset(self) -> None:
        self._store = wasmtime.Store(self._engine)
        self._spectest = None

    # -- protocol

    def compile(self, wasm: bytes) -> object:
        try:
            return wasmtime.Module(self._engine, wasm)
        except wasmtime.WasmtimeError as e:
            message = str(e)
            raise CompileRejected(_classify_compile_error(message), message) from None

    def instantiate(self, module: object, imports: Imports) -> object:
        assert isinstance(module, wasmtime.Module)
        externs = []
        for imp in module.imports:
            ext = imports(imp.module, imp.name or "")
            if ext is None:
                raise LinkFailed(f"unknown import {imp.module}.{imp.name}")
            externs.append(ext)
        try:
            return wasmtime.Instance(self._store, module, externs)
        except wasmtime.Trap as trap:
            raise self._trap(trap) from None
        except wasmtime.WasmtimeError as e:
            message = str(e)
            low = message.lower()
            if "incompatible import" in low or "unknown import" in low or "import" in low \
                    and "type" in low:
                raise LinkFailed(_first_line(e)) from None
            # Wasmtime reports instantiation-time traps (segments out of bounds, start
            # function traps) either as a Trap or as an error with a wasm backtrace.
            if "wasm trap" in low or "out of bounds" in low or "backtrace" in low:
                raise Trapped(message) from None
            raise LinkFailed(message) from None

    def exports(self, instance: object) -> Mapping[str, object]:
        assert isinstance(instance, wasmtime.Instance)
        return dict(instance.exports(self._store).items())

    def invoke(self, instance: object, name: str, args: list[Value]) -> list[Value]:
        func = self._export(instance, name)
        if not isinstance(func, wasmtime.Func):
            raise TypeError(f"export {name!r} is not a function")
        if _RAW:
            return self._invoke_raw(func, args)
        return self._invoke_public(func, args)  # pragma: no cover

    def get_global(self, instance: object, name: str) -> Value:
        glob = self._export(instance, name)
        if not isinstance(glob, wasmtime.Global):
            raise TypeError(f"export {name!r} is not a global")
        if _RAW:
            raw = ffi.wasmtime_val_t()
            ffi.wasmtime_global_get(self._store._context(), ctypes.byref(glob._global),
                                    ctypes.byref(raw))
            return self._from_raw(raw)
        return self._from_python(str(glob.type(self._store).content),  # pragma: no cover
                                 glob.value(self._store))

    def spectest(self) -> Mapping[str, object]:
        if self._spectest is None:
            self._spectest = self._make_spectest()
        return self._spectest

    # -- internals

    def _export(self, instance: object, name: str) -> object:
        assert isinstance(instance, wasmtime.Instance)
        ext = instance.exports(self._store).get(name)
        if ext is None:
            raise ValueError(f"no export named {name!r}")
        return ext

    def _make_spectest(self) -> dict[str, Any]:
        store = self._store
        i32, i64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
        f32, f64 = wasmtime.ValType.f32(), wasmtime.ValType.f64()

        def func(*params: wasmtime.ValType) -> wasmtime.Func:
            return wasmtime.Func(store, wasmtime.FuncType(list(params), []), lambda *a: None)

        externs: dict[str, Any] = {
            "print": func(),
            "print_i32": func(i32),
            "print_i64": func(i64),
            "print_f32": func(f32),
            "print_f64": func(f64),
            "print_i32_f32": func(i32, f32),
            "print_f64_f64": func(f64, f64),
            "global_i32": wasmtime.Global(store, wasmtime.GlobalType(i32, False), 666),
            "global_i64": wasmtime.Global(store, wasmtime.GlobalType(i64, False), 666),
            "global_f32": wasmtime.Global(store, wasmtime.GlobalType(f32, False), 666.6),
            "global_f64": wasmtime.Global(store, wasmtime.GlobalType(f64, False), 666.6),
            "table": wasmtime.Table(
                store, wasmtime.TableType(wasmtime.ValType.funcref(), wasmtime.Limits(10, 20)),
                None),
            "memory": wasmtime.Memory(store, wasmtime.MemoryType(wasmtime.Limits(1, 2))),
        }
        # table64 (memory64 proposal): wasmtime-py cannot build a 64-bit table type,
        # so take one from a tiny module.
        with contextlib.suppress(wasmtime.WasmtimeError):
            holder = wasmtime.Module(self._engine, wasmtime.wat2wasm(
                '(module (table (export "table64") i64 10 20 funcref))'))
            externs["table64"] = wasmtime.Instance(store, holder, []).exports(store)["table64"]
        return externs

    def _trap(self, trap: wasmtime.Trap) -> Exception:
        try:
            code = trap.trap_code
        except (AttributeError, ValueError):  # pragma: no cover - unknown trap code
            code = None
        detail = _last_line(trap)
        wording = _TRAP_WORDING.get(code.name if code is not None else "")
        message = f"{wording} ({detail})" if wording else detail
        if code == wasmtime.TrapCode.STACK_OVERFLOW or "stack overflow" in detail.lower():
            return Exhausted(message)
        return Trapped(message)

    def _invoke_raw(self, func: wasmtime.Func, args: list[Value]) -> list[Value]:
        store = self._store
        ty = func.type(store)
        params = ty.params
        n_results = len(ty.results)
        if len(args) != len(params):
            raise ValueError(f"{len(params)} arguments expected, {len(args)} given")
        raw_args = (ffi.wasmtime_val_t * len(args))()
        rooted = []
        for i, (arg, param) in enumerate(zip(args, params, strict=True)):
            type_name, val_kind = self._valtype(param)
            if arg.type != type_name and not (val_kind >= 5 and arg.bits is None):
                raise ValueError(f"argument {i}: {type_name} expected, got {arg.type}")
            if val_kind == 6:  # externref: wasmtime keeps the Python object
                raw_args[i] = wasmtime.Val.externref(arg.bits)._new_raw(store)
                rooted.append(i)
                continue
            raw = raw_args[i]
            raw.kind = val_kind
            bits = arg.bits
            if val_kind in (0, 2):
                raw.of.i32 = _signed(bits or 0, 32)
            elif val_kind in (1, 3):
                raw.of.i64 = _signed(bits or 0, 64)
            elif val_kind == 4:
                ctypes.memmove(ctypes.addressof(raw.of.v128),
                               (bits or 0).to_bytes(16, "little"), 16)
            elif bits is not None:  # funcref
                raise UnsupportedFeature("non-null funcref arguments")
        raw_results = (ffi.wasmtime_val_t * n_results)()
        trap = ctypes.POINTER(ffi.wasm_trap_t)()
        try:
            error = ffi.wasmtime_func_call(store._context(), ctypes.byref(func._func), raw_args,
                                           len(args), raw_results, n_results,
                                           ctypes.byref(trap))
        finally:
            for i in rooted:
                ffi.wasmtime_val_unroot(ctypes.byref(raw_args[i]))
        if trap:
            raise self._trap(wasmtime.Trap._from_ptr(trap))
        if error:
            err = _WasmtimeError._from_ptr(error)
            raise Trapped(_first_line(err))
        return [self._from_raw(raw_results[i]) for i in range(n_results)]

    def _valtype(self, valtype: wasmtime.ValType) -> tuple[str, int]:
        """(type name, wasmtime_val_t kind) of a parameter type.  Compares against the
        known types: ``wasm_valtype_kind`` aborts the process on GC reference types."""
        known = self._known_types
        if known is None:
            known = self._known_types = [
                (wasmtime.ValType.i32(), ("i32", 0)), (wasmtime.ValType.i64(), ("i64", 1)),
                (wasmtime.ValType.f32(), ("f32", 2)), (wasmtime.ValType.f64(), ("f64", 3)),
                (wasmtime.ValType.externref(), ("externref", 6)),
                (wasmtime.ValType.funcref(), ("funcref", 5)),
            ]
        ptr = valtype.ptr()
        for candidate, entry in known:
            if ffi.wasmtime_wasm_valtype_equal(ptr, candidate.ptr()):
                return entry
        if self._v128 is None:
            self._v128 = ffi.wasmtime_wasm_valtype_v128()  # kept for the adapter's lifetime
        if ffi.wasmtime_wasm_valtype_equal(ptr, self._v128):
            return "v128", 4
        raise UnsupportedFeature("wasmtime-py: GC/typed reference parameters")

    def _from_raw(self, raw: Any) -> Value:
        kind = raw.kind
        if kind == 0:
            return Value("i32", raw.of.i32 & 0xFFFFFFFF)
        if kind == 1:
            return Value("i64", raw.of.i64 & 0xFFFFFFFFFFFFFFFF)
        if kind == 2:
            return Value("f32", raw.of.i32 & 0xFFFFFFFF)
        if kind == 3:
            return Value("f64", raw.of.i64 & 0xFFFFFFFFFFFFFFFF)
        if kind == 4:
            return Value("v128", int.from_bytes(bytes(raw.of.v128), "little"))
        if kind == 5:
            func = raw.of.funcref
            if func.store_id == 0:
                return Value("funcref", None)
            private = getattr(func, "__private", None) or 0
            return Value("funcref", private or 1)
        if kind == 6:
            non_null = raw.of.externref.store_id != 0
            obj = wasmtime.Val._from_raw(self._store, raw).value  # also unroots
            if obj is None:
                # A non-null externref without host data (e.g. extern.convert_any of an
                # i31) comes back as None from wasmtime-py: report it as an opaque -1.
                return Value("externref", -1 if non_null else None)
            return Value("externref", obj if isinstance(obj, int) else id(obj))
        name = _VAL_KIND_NAME.get(kind, f"kind{kind}")
        raise UnsupportedFeature(f"wasmtime-py: {name} results")

    # -- fallback over the public API (NaN payloads of f32 may not survive)

    def _invoke_public(self, func: wasmtime.Func, args: list[Value]) -> list[Value]:  # pragma: no cover
        store = self._store
        ty = func.type(store)
        py_args: list[Any] = []
        for arg in args:
            if arg.type == "f32":
                py_args.append(struct.unpack("<f", struct.pack("<I", arg.bits or 0))[0])
            elif arg.type == "f64":
                py_args.append(struct.unpack("<d", struct.pack("<Q", arg.bits or 0))[0])
            elif arg.type in ("i32", "i64"):
                py_args.append(_signed(arg.bits or 0, 32 if arg.type == "i32" else 64))
            elif arg.type == "externref":
                py_args.append(arg.bits)
            elif arg.type == "funcref" and arg.bits is None:
                py_args.append(None)
            else:
                raise UnsupportedFeature(f"wasmtime-py: {arg.type} arguments")
        try:
            out = func(store, *py_args)
        except wasmtime.Trap as trap:
            raise self._trap(trap) from None
        except wasmtime.WasmtimeError as e:
            raise Trapped(_first_line(e)) from None
        types = [str(t) for t in ty.results]
        values = [] if not types else [out] if len(types) == 1 else list(out)
        return [self._from_python(t, v) for t, v in zip(types, values, strict=True)]

    @staticmethod
    def _from_python(type_name: str, value: Any) -> Value:  # pragma: no cover
        if type_name == "i32":
            return Value("i32", value & 0xFFFFFFFF)
        if type_name == "i64":
            return Value("i64", value & 0xFFFFFFFFFFFFFFFF)
        if type_name == "f32":
            return Value("f32", struct.unpack("<I", struct.pack("<f", value))[0])
        if type_name == "f64":
            return Value("f64", struct.unpack("<Q", struct.pack("<d", value))[0])
        if type_name in ("externref", "anyref"):
            if value is None or isinstance(value, wasmtime.Val):
                return Value("externref", None)
            return Value("externref", value if isinstance(value, int) else id(value))
        if type_name == "funcref":
            return Value("funcref", None if value is None or isinstance(value, wasmtime.Val)
                         else 1)
        raise UnsupportedFeature(f"wasmtime-py: {type_name} results")

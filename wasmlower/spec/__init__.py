"""The WebAssembly spec test harness of wasmlower.

* :mod:`wasmlower.spec.sexpr` -- a fast s-expression reader (wat/wast syntax);
* :mod:`wasmlower.spec.wast` -- ``.wast`` scripts -> command dataclasses, exact constants;
* :mod:`wasmlower.spec.runner` -- runs commands against an :class:`EngineAdapter` and
  counts passed/failed/skipped per command kind;
* :mod:`wasmlower.spec.wasmtime_engine` -- a reference adapter over the optional
  ``wasmtime`` package (import it explicitly; it is not imported here).

Typical use::

    from wasmlower.spec import find_spec_dir, scope_files, run_files, format_table
    from wasmlower.spec.wasmtime_engine import WasmtimeAdapter

    results = run_files(scope_files(find_spec_dir()), WasmtimeAdapter())
    print(format_table(results))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wasmlower.spec.runner import (
        DEFAULT_TIERS,
        KINDS,
        TIERS,
        CompileRejected,
        EngineAdapter,
        EngineError,
        Exhausted,
        Failure,
        FileResult,
        Imports,
        LinkFailed,
        TextRejected,
        Trapped,
        UnsupportedFeature,
        find_spec_dir,
        format_table,
        load_manifest,
        load_module_tiers,
        run_file,
        run_files,
        scope_files,
        to_json,
        totals,
        wat_to_wasm,
    )
    from wasmlower.spec.sexpr import Atom, Node, Opaque, SList, String, WastSyntaxError, parse
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
        float_bits,
        int_bits,
        match_value,
        parse_file,
        parse_script,
        v128_bits,
    )

__all__ = [
    "DEFAULT_TIERS",
    "KINDS",
    "TIERS",
    "Action",
    "AssertException",
    "AssertExhaustion",
    "AssertInvalid",
    "AssertMalformed",
    "AssertReturn",
    "AssertTrap",
    "AssertUninstantiable",
    "AssertUnlinkable",
    "Atom",
    "Command",
    "CompileRejected",
    "EngineAdapter",
    "EngineError",
    "Exhausted",
    "Expected",
    "Failure",
    "FileResult",
    "Imports",
    "LinkFailed",
    "ModuleCmd",
    "ModuleInstance",
    "Node",
    "Opaque",
    "Register",
    "SList",
    "String",
    "TextRejected",
    "Trapped",
    "Unsupported",
    "UnsupportedFeature",
    "Value",
    "WastSyntaxError",
    "find_spec_dir",
    "float_bits",
    "format_table",
    "int_bits",
    "load_manifest",
    "load_module_tiers",
    "match_value",
    "parse",
    "parse_file",
    "parse_script",
    "run_file",
    "run_files",
    "scope_files",
    "to_json",
    "totals",
    "v128_bits",
    "wat_to_wasm",
]

# The submodules are imported on first use, so that ``python -m wasmlower.spec.runner``
# does not find the runner already imported by this package.
_SUBMODULE = {}
for _module, _names in (
    ("runner", (
        "DEFAULT_TIERS", "KINDS", "TIERS", "CompileRejected", "EngineAdapter", "EngineError",
        "Exhausted", "Failure", "FileResult", "Imports", "LinkFailed", "TextRejected",
        "Trapped", "UnsupportedFeature", "find_spec_dir", "format_table", "load_manifest",
        "load_module_tiers", "run_file", "run_files", "scope_files", "to_json", "totals",
        "wat_to_wasm")),
    ("sexpr", ("Atom", "Node", "Opaque", "SList", "String", "WastSyntaxError", "parse")),
    ("wast", (
        "Action", "AssertException", "AssertExhaustion", "AssertInvalid", "AssertMalformed",
        "AssertReturn", "AssertTrap", "AssertUninstantiable", "AssertUnlinkable", "Command",
        "Expected", "ModuleCmd", "ModuleInstance", "Register", "Unsupported", "Value",
        "float_bits", "int_bits", "match_value", "parse_file", "parse_script", "v128_bits")),
):
    for _name in _names:
        _SUBMODULE[_name] = _module


def __getattr__(name: str) -> Any:
    module = _SUBMODULE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

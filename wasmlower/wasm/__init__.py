"""The wasm frontend: binary decoder, validator (and, later, the translator to IR).

``decode_module(bytes) -> Module`` reads a binary, ``validate(Module)``
checks it; both raise ``wasmlower.errors.MalformedError``/``ValidationError``
with the byte offset of the problem and nothing else.
"""

from wasmlower.wasm.decode import decode_module
from wasmlower.wasm.module import (
    DataSegment,
    ElemSegment,
    Export,
    FunctionBody,
    FuncType,
    Global,
    GlobalType,
    Import,
    Instr,
    Limits,
    MemoryType,
    Module,
    TableType,
    ValType,
)
from wasmlower.wasm.validate import validate, validate_function

__all__ = [
    "DataSegment",
    "ElemSegment",
    "Export",
    "FuncType",
    "FunctionBody",
    "Global",
    "GlobalType",
    "Import",
    "Instr",
    "Limits",
    "MemoryType",
    "Module",
    "TableType",
    "ValType",
    "decode_module",
    "validate",
    "validate_function",
]

"""The SSA IR: types, ops, functions, builder, text format, verifier, CFG."""

from .builder import Builder
from .cfg import CFG
from .function import Block, BlockCall, Function, Inst, Value
from .ops import OPS, OpInfo, register_op
from .text import format_function, parse_function, parse_functions
from .types import F32, F64, I32, I64, Type
from .verify import VerifierError, verify

__all__ = [
    "CFG",
    "F32",
    "F64",
    "I32",
    "I64",
    "OPS",
    "Block",
    "BlockCall",
    "Builder",
    "Function",
    "Inst",
    "OpInfo",
    "Type",
    "Value",
    "VerifierError",
    "format_function",
    "parse_function",
    "parse_functions",
    "register_op",
    "verify",
]

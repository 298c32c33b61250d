"""The x86-64 calling convention of wasm functions, and operand constraints.

See docs/ABI.md.  The registers are x64's; placing a signature's values and
reading constraints from op declarations is shared (``wasmlower/isa/abi.py``).
``arg_locations``/``result_locations`` place a signature's values;
``Constraints`` turns one lowered instruction into the allocator's
``InstConstraints``.
"""

from __future__ import annotations

from wasmlower.isa import abi

from . import regs
from .regs import NUM

_INT_ARGS = tuple(NUM[r] for r in ("rdi", "rsi", "rdx", "rcx", "r8", "r9"))
_FLOAT_ARGS = tuple(NUM[f"xmm{i}"] for i in range(8))

CONV = abi.CallingConvention(
    int_args=_INT_ARGS,
    float_args=_FLOAT_ARGS,
    int_results=tuple(NUM[r] for r in ("rax", "rdx", "rcx", "rsi", "rdi", "r8", "r9", "r10")),
    float_results=_FLOAT_ARGS,
    libcall_args=_INT_ARGS[1:],          # rdi carries the VMContext
    libcall_result=NUM["rax"],
    caller_saved=regs.CALLER_SAVED,
)
arg_locations = CONV.arg_locations
result_locations = CONV.result_locations
stack_arg_count = CONV.stack_arg_count


class Constraints(abi.Constraints):
    isa = "x64"
    conv = CONV
    regs = regs

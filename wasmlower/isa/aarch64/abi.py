"""The AArch64 calling convention of wasm functions, and operand constraints.

See docs/ABI.md and docs/AARCH64.md.  The registers are AArch64's; placing a
signature's values and reading constraints from op declarations is shared
(``wasmlower/isa/abi.py``).  ``arg_locations``/``result_locations`` place a
signature's values; ``Constraints`` turns one lowered instruction into the
allocator's ``InstConstraints``.
"""

from __future__ import annotations

from wasmlower.isa import abi

from . import regs
from .regs import NUM

# AAPCS64-like: x0-x7 and v0-v7 for arguments and results, the rest on the
# stack in order; x28 (the VMContext) is passed implicitly.
_XREGS = tuple(NUM[f"x{i}"] for i in range(8))
_VREGS = tuple(NUM[f"v{i}"] for i in range(8))

CONV = abi.CallingConvention(
    int_args=_XREGS, float_args=_VREGS, int_results=_XREGS, float_results=_VREGS,
    libcall_args=_XREGS[1:6],            # x0 carries the VMContext
    libcall_result=NUM["x0"],
    caller_saved=regs.CALLER_SAVED,
)
arg_locations = CONV.arg_locations
result_locations = CONV.result_locations
stack_arg_count = CONV.stack_arg_count


class Constraints(abi.Constraints):
    isa = "aarch64"
    conv = CONV
    regs = regs

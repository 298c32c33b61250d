"""Register allocation: constraints, liveness, linear scan, parallel moves, checker.

    alloc = allocate(func, constraints, regfile, stress=False, check=True)

``func`` is lowered IR whose only branch passing block arguments is ``jump``
(``isolate_edge_args`` runs before lowering).  ``constraints(inst)`` gives
each instruction's operands; the result says where every operand lives and
which moves to emit.  Importing this package stays cheap: numba and numpy
are loaded by the first ``allocate`` call.
"""

from .alloc import Allocation, allocate, block_order, format_allocation
from .checker import AllocationError, check_allocation
from .constraints import (
                          ANY,
                          FIXED,
                          REG,
                          REUSE,
                          STACK_ARG,
                          STACK_PARAM,
                          ConstraintFn,
                          InstConstraints,
                          Move,
                          Operand,
                          RegFile,
                          decode_stack_loc,
                          in_param_loc,
                          out_arg_loc,
                          spill_loc,
)
from .moves import MoveResolver, ParallelMoveError
from .prepare import isolate_edge_args

__all__ = [
                          "ANY",
                          "FIXED",
                          "REG",
                          "REUSE",
                          "STACK_ARG",
                          "STACK_PARAM",
                          "Allocation",
                          "AllocationError",
                          "ConstraintFn",
                          "InstConstraints",
                          "Move",
                          "MoveResolver",
                          "Operand",
                          "ParallelMoveError",
                          "RegFile",
                          "allocate",
                          "block_order",
                          "check_allocation",
                          "decode_stack_loc",
                          "format_allocation",
                          "in_param_loc",
                          "isolate_edge_args",
                          "out_arg_loc",
                          "spill_loc",
]

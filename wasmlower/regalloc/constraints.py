"""The allocator's vocabulary: operand constraints in, locations and moves out.

The ISA describes each machine instruction's register needs with an
``InstConstraints``: one ``Operand`` per value the instruction reads (uses),
writes (defs) or needs as scratch space (temps), each with a policy:

=============  =====================================================================
``REG``        any register of the operand's class
``FIXED``      the physical register ``preg``
``REUSE``      (defs) the location of use operand number ``reuse`` (two-address form)
``ANY``        a register of the class or a stack slot
``STACK_ARG``  (uses) outgoing stack argument slot ``slot`` (``[outgoing area + 8*slot]``)
``STACK_PARAM`` (defs) incoming stack parameter slot ``slot`` (in the caller's frame)
=============  =====================================================================

Uses are read at the instruction's early point, defs are written at its late
point (``early=True`` defs at the early point, so they conflict with the
uses), temps live from early to late.  ``clobbers`` are physical registers the
instruction destroys: nothing may live in them across it.

A location is one ``int``:

==============================  ==============================================
``loc >= 0``                    physical register ``loc`` (``RegFile.names[loc]``)
``-(1<<20) < loc <= -1``        spill slot ``-1 - loc`` (8 bytes each)
``-(2<<20) < loc <= -(1<<20)``  outgoing stack argument slot ``-(1<<20) - loc``
``-(3<<20) < loc <= -(2<<20)``  incoming stack parameter slot ``-(2<<20) - loc``
==============================  ==============================================

A ``Move`` is ``(src_loc, dst_loc, cls)``.  Moves handed to the emitter never
go from memory to memory: those are split through the class's scratch
register.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..ir.function import Inst, Value

# Operand policies.
REG, FIXED, REUSE, ANY, STACK_ARG, STACK_PARAM = range(6)
POLICY_NAMES = ("reg", "fixed", "reuse", "any", "stack_arg", "stack_param")
KINDS = ("use", "def", "temp")


@dataclass(frozen=True, slots=True)
class Operand:
    """One operand of an instruction; see the module docstring for the policies."""

    value: Value          # the vreg (temps: a fresh Value used nowhere else)
    kind: str             # "use" | "def" | "temp"
    policy: int
    cls: int              # register class index (0 = gpr, 1 = float/vector)
    preg: int = -1        # FIXED
    reuse: int = -1       # REUSE: index of the use operand in this instruction's operands
    slot: int = -1        # STACK_ARG / STACK_PARAM
    early: bool = False   # defs: written at the early point

    def describe(self) -> str:
        pol = POLICY_NAMES[self.policy] if 0 <= self.policy < len(POLICY_NAMES) else "?"
        extra = {FIXED: f"({self.preg})", REUSE: f"({self.reuse})",
                 STACK_ARG: f"({self.slot})", STACK_PARAM: f"({self.slot})"}.get(self.policy, "")
        early = " early" if self.early else ""
        return f"{self.kind} v{self.value.id} {pol}{extra}{early} cls{self.cls}"


@dataclass(frozen=True, slots=True)
class InstConstraints:
    """The operands of one instruction (uses, then defs, then temps) and its clobbers."""

    operands: tuple[Operand, ...]
    clobbers: frozenset[int] = frozenset()


@dataclass(frozen=True)
class RegFile:
    """The register file as the allocator sees it."""

    names: tuple[str, ...]                 # preg number -> name
    classes: tuple[tuple[int, ...], ...]   # per class: allocatable pregs in preference order
    callee_saved: frozenset[int]           # a used one costs a save/restore in the prologue
    scratch: tuple[int, ...]               # per class: never allocated; the move resolver's

    def name(self, loc: int) -> str:
        """A location as text: ``rax``, ``spill3``, ``arg1``, ``param0``."""
        if loc >= 0:
            return self.names[loc] if loc < len(self.names) else f"r{loc}"
        kind, n = decode_stack_loc(loc)
        return f"{kind}{n}"


ConstraintFn = Callable[[Inst], InstConstraints]
Move = tuple[int, int, int]   # (src_loc, dst_loc, cls)

# -- locations ------------------------------------------------------------------

STACK_RANGE = 1 << 20
OUT_ARG_BASE = -STACK_RANGE          # outgoing argument slot n: OUT_ARG_BASE - n
IN_PARAM_BASE = -2 * STACK_RANGE     # incoming parameter slot n: IN_PARAM_BASE - n


def spill_loc(n: int) -> int:
    return -1 - n


def out_arg_loc(n: int) -> int:
    return OUT_ARG_BASE - n


def in_param_loc(n: int) -> int:
    return IN_PARAM_BASE - n


def decode_stack_loc(loc: int) -> tuple[str, int]:
    """``("spill" | "arg" | "param", slot)`` for a stack location (``loc < 0``)."""
    if loc > OUT_ARG_BASE:
        return "spill", -1 - loc
    if loc > IN_PARAM_BASE:
        return "arg", OUT_ARG_BASE - loc
    return "param", IN_PARAM_BASE - loc


def is_reg(loc: int) -> bool:
    return loc >= 0

"""The AArch64 calling convention of wasm functions, and operand constraints.

See docs/ABI.md and docs/AARCH64.md.  ``arg_locations``/``result_locations`` place a signature's
values; ``constraints`` turns one lowered instruction into the allocator's
``InstConstraints``: from the op's declaration for ordinary machine ops, from
the calling convention for the variadic ones (params, ret, calls).
"""

from __future__ import annotations

from functools import cache

from ...errors import CodegenError
from ...ir.function import Inst, Value
from ...ir.types import Type
from .regs import CALLER_SAVED, CLASS_INDEX, FLOAT_BASE, NUM

# AAPCS64-like: x0-x7 and v0-v7 for arguments and results, the rest on the
# stack in order; x28 (the VMContext) is passed implicitly.
INT_ARGS = tuple(NUM[f"x{i}"] for i in range(8))
FLOAT_ARGS = tuple(NUM[f"v{i}"] for i in range(8))
INT_RESULTS = INT_ARGS
FLOAT_RESULTS = FLOAT_ARGS
LIBCALL_ARGS = INT_ARGS[1:6]         # x0 carries the VMContext
LIBCALL_RESULT = NUM["x0"]


def arg_locations(types: tuple[Type, ...]) -> list[tuple[str, int]]:
    """Where each argument goes: ("reg", preg) or ("stack", slot)."""
    out: list[tuple[str, int]] = []
    ni = nf = ns = 0
    for t in types:
        if t.is_float and nf < len(FLOAT_ARGS):
            out.append(("reg", FLOAT_ARGS[nf]))
            nf += 1
        elif not t.is_float and ni < len(INT_ARGS):
            out.append(("reg", INT_ARGS[ni]))
            ni += 1
        else:
            out.append(("stack", ns))
            ns += 1
    return out


def result_locations(types: tuple[Type, ...]) -> list[int]:
    out = []
    ni = nf = 0
    for t in types:
        if t.is_float:
            if nf >= len(FLOAT_RESULTS):
                raise ValueError("too many float results")
            out.append(FLOAT_RESULTS[nf])
            nf += 1
        else:
            if ni >= len(INT_RESULTS):
                raise ValueError("too many integer results")
            out.append(INT_RESULTS[ni])
            ni += 1
    return out


def _cls(t: Type) -> int:
    return 1 if t.is_float else 0


class Constraints:
    """The constraint callback for one function (it owns the temps it creates)."""

    def __init__(self, func) -> None:
        from ...regalloc import constraints as rc
        self.rc = rc
        self.func = func
        self.cache: dict[Inst, object] = {}

    def __call__(self, inst: Inst):
        c = self.cache.get(inst)
        if c is None:
            c = self.cache[inst] = self._build(inst)
        return c

    def _build(self, inst: Inst):
        rc = self.rc
        Op = rc.Operand
        decl = inst.info.decl
        ops: list = []
        clobbers: frozenset[int] = frozenset()
        name = inst.op
        if name == "jump":
            return rc.InstConstraints(())
        if decl is None:
            raise CodegenError(f"{name} is not an aarch64 machine op")
        if decl.variadic or decl.variadic_results:
            short = decl.name
            if short == "params":
                for v, (kind, where) in zip(inst.results, arg_locations(
                        tuple(r.type for r in inst.results))):
                    if kind == "reg":
                        ops.append(Op(v, "def", rc.FIXED, _cls(v.type), preg=where))
                    else:
                        ops.append(Op(v, "def", rc.STACK_PARAM, _cls(v.type), slot=where))
            elif short == "ret":
                for v, preg in zip(inst.args, result_locations(tuple(a.type for a in inst.args))):
                    ops.append(Op(v, "use", rc.FIXED, _cls(v.type), preg=preg))
            elif short in ("call", "call_import", "call_indirect"):
                args = inst.args
                if short == "call_indirect":
                    ops.append(Op(args[0], "use", rc.REG, 0))
                    args = args[1:]
                for v, (kind, where) in zip(args, arg_locations(tuple(a.type for a in args))):
                    if kind == "reg":
                        ops.append(Op(v, "use", rc.FIXED, _cls(v.type), preg=where))
                    else:
                        ops.append(Op(v, "use", rc.STACK_ARG, _cls(v.type), slot=where))
                for v, preg in zip(inst.results,
                                   result_locations(tuple(r.type for r in inst.results))):
                    ops.append(Op(v, "def", rc.FIXED, _cls(v.type), preg=preg))
                clobbers = CALLER_SAVED
            elif short == "libcall":
                for v, preg in zip(inst.args, LIBCALL_ARGS):
                    ops.append(Op(v, "use", rc.FIXED, 0, preg=preg))
                for v in inst.results:
                    ops.append(Op(v, "def", rc.FIXED, 0, preg=LIBCALL_RESULT))
                clobbers = CALLER_SAVED
            else:
                raise CodegenError(f"no calling convention for variadic op {name}")
            return rc.InstConstraints(tuple(ops), clobbers)
        for od, v in zip(decl.operands, inst.args):
            ops.append(self._operand(od, v, "use"))
        for i, (od, v) in enumerate(zip(decl.results, inst.results)):
            r = decl.reuse[i] if decl.reuse else None
            if r is not None:
                ops.append(Op(v, "def", rc.REUSE, _cls(v.type), reuse=r))
            else:
                ops.append(self._operand(od, v, "def"))
        for od in decl.temps:
            t = self.func.new_value(Type.F64 if od.cls == "fpr" else Type.I64)
            ops.append(self._operand(od, t, "temp"))
        clob = {NUM[r] for r in decl.clobbers if r in NUM}
        if "call" in decl.effects:
            clob |= CALLER_SAVED
        return rc.InstConstraints(tuple(ops), frozenset(clob))

    def _operand(self, od, v: Value, kind: str):
        rc = self.rc
        if od.fixed:
            preg = NUM[od.fixed]
            return rc.Operand(v, kind, rc.FIXED, 1 if preg >= FLOAT_BASE else 0, preg=preg)
        cls = CLASS_INDEX[od.cls]
        if getattr(od, "any", False) and kind == "use":
            return rc.Operand(v, kind, rc.ANY, cls)
        return rc.Operand(v, kind, rc.REG, cls)


@cache
def stack_arg_count(types: tuple[Type, ...]) -> int:
    return sum(1 for kind, _ in arg_locations(types) if kind == "stack")

"""What every ISA's calling convention and operand constraints have in common.

Problem.  The register allocator asks, per lowered instruction, where each
operand must be (``regalloc.constraints.InstConstraints``).  For ordinary
machine ops the answer is written in the op's declaration (``ops.rules``:
register class, ``fixed(REG)``, ``any(CLASS)``, ``reuse``, ``temp``,
``clobber``); for the variadic ones (``params``, ``ret``, the calls and
libcalls) it is the calling convention.  Both readings are the same on every
ISA; only register numbers differ.

Mechanism.  ``CallingConvention`` holds an ISA's argument/result registers
and places a signature's values (integers and floats each in their own
register sequence, the rest on the stack in order).  ``Constraints`` turns
one instruction into ``InstConstraints``; an ISA's ``abi.py`` subclasses it
with its name, convention and ``regs`` module (``NUM``, ``CLASS_INDEX``,
``FLOAT_CLASSES``, ``FLOAT_BASE``) and keeps the name ``Constraints``, which
the pipeline looks up.

Invariant: register class 0 holds integers and class 1 floats, and every
physical register number ``>= float_base`` is a float register.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from types import ModuleType

from wasmlower.errors import CodegenError
from wasmlower.ir.function import Inst, Value
from wasmlower.ir.types import Type

GPR_CLASS, FLOAT_CLASS = 0, 1


def value_class(t: Type) -> int:
    """The register class (index) of a value of type ``t``."""
    return FLOAT_CLASS if t.is_float else GPR_CLASS


@dataclass(frozen=True)
class CallingConvention:
    """Wasm-to-wasm and libcall registers of one ISA (physical register numbers)."""
    int_args: tuple[int, ...]
    float_args: tuple[int, ...]
    int_results: tuple[int, ...]
    float_results: tuple[int, ...]
    libcall_args: tuple[int, ...]        # after the VMContext, which the ISA passes itself
    libcall_result: int
    caller_saved: frozenset[int]         # clobbered by every call

    def arg_locations(self, types: tuple[Type, ...]) -> list[tuple[str, int]]:
        """Where each argument goes: ("reg", preg) or ("stack", slot)."""
        out: list[tuple[str, int]] = []
        ni = nf = ns = 0
        for t in types:
            if t.is_float and nf < len(self.float_args):
                out.append(("reg", self.float_args[nf]))
                nf += 1
            elif not t.is_float and ni < len(self.int_args):
                out.append(("reg", self.int_args[ni]))
                ni += 1
            else:
                out.append(("stack", ns))
                ns += 1
        return out

    def result_locations(self, types: tuple[Type, ...]) -> list[int]:
        """The register of each result (results never go on the stack)."""
        out = []
        ni = nf = 0
        for t in types:
            if t.is_float:
                if nf >= len(self.float_results):
                    raise ValueError("too many float results")
                out.append(self.float_results[nf])
                nf += 1
            else:
                if ni >= len(self.int_results):
                    raise ValueError("too many integer results")
                out.append(self.int_results[ni])
                ni += 1
        return out

    def stack_arg_count(self, types: tuple[Type, ...]) -> int:
        return _stack_arg_count(self, types)


@cache
def _stack_arg_count(conv: CallingConvention, types: tuple[Type, ...]) -> int:
    return sum(1 for kind, _ in conv.arg_locations(types) if kind == "stack")


class Constraints:
    """The constraint callback for one function (it owns the temps it creates).

    Subclasses set ``isa``, ``conv`` and ``regs`` (the ISA's ``regs`` module).
    """

    isa: str
    conv: CallingConvention
    regs: ModuleType        # the ISA's regs.py: NUM, CLASS_INDEX, FLOAT_CLASSES, FLOAT_BASE

    def __init__(self, func) -> None:
        from wasmlower.regalloc import constraints as rc
        self.rc = rc
        self.func = func
        self.cache: dict[Inst, object] = {}
        self.num: dict[str, int] = self.regs.NUM                 # register name -> number
        self.class_index: dict[str, int] = self.regs.CLASS_INDEX
        self.float_classes: set[str] = self.regs.FLOAT_CLASSES   # classes that hold floats
        self.float_base: int = self.regs.FLOAT_BASE              # first float register

    def __call__(self, inst: Inst):
        c = self.cache.get(inst)
        if c is None:
            c = self.cache[inst] = self._build(inst)
        return c

    def _build(self, inst: Inst):
        rc = self.rc
        decl = inst.info.decl
        if inst.op == "jump":
            return rc.InstConstraints(())
        if decl is None:
            raise CodegenError(f"{inst.op} is not an {self.isa} machine op")
        if decl.variadic or decl.variadic_results:
            return self._convention(inst, decl.name)
        ops: list = [self._operand(od, v, "use") for od, v in zip(decl.operands, inst.args)]
        for i, (od, v) in enumerate(zip(decl.results, inst.results)):
            r = decl.reuse[i] if decl.reuse else None
            if r is not None:
                ops.append(rc.Operand(v, "def", rc.REUSE, value_class(v.type), reuse=r))
            else:
                ops.append(self._operand(od, v, "def"))
        for od in decl.temps:
            t = self.func.new_value(Type.F64 if od.cls in self.float_classes else Type.I64)
            ops.append(self._operand(od, t, "temp"))
        clob = {self.num[r] for r in decl.clobbers if r in self.num}
        if "call" in decl.effects:
            clob |= self.conv.caller_saved
        return rc.InstConstraints(tuple(ops), frozenset(clob))

    def _convention(self, inst: Inst, short: str):
        """Constraints of a variadic op, placed by the calling convention."""
        rc, conv = self.rc, self.conv
        Op = rc.Operand
        ops: list = []
        clobbers: frozenset[int] = frozenset()

        def fixed_results(kind: str, values) -> None:
            for v, preg in zip(values, conv.result_locations(tuple(x.type for x in values))):
                ops.append(Op(v, kind, rc.FIXED, value_class(v.type), preg=preg))

        if short == "params":
            for v, (kind, where) in zip(inst.results, conv.arg_locations(
                    tuple(r.type for r in inst.results))):
                if kind == "reg":
                    ops.append(Op(v, "def", rc.FIXED, value_class(v.type), preg=where))
                else:
                    ops.append(Op(v, "def", rc.STACK_PARAM, value_class(v.type), slot=where))
        elif short == "ret":
            fixed_results("use", inst.args)
        elif short in ("call", "call_import", "call_indirect"):
            args = inst.args
            if short == "call_indirect":
                ops.append(Op(args[0], "use", rc.REG, GPR_CLASS))
                args = args[1:]
            for v, (kind, where) in zip(args, conv.arg_locations(tuple(a.type for a in args))):
                if kind == "reg":
                    ops.append(Op(v, "use", rc.FIXED, value_class(v.type), preg=where))
                else:
                    ops.append(Op(v, "use", rc.STACK_ARG, value_class(v.type), slot=where))
            fixed_results("def", inst.results)
            clobbers = conv.caller_saved
        elif short == "libcall":
            for v, preg in zip(inst.args, conv.libcall_args):
                ops.append(Op(v, "use", rc.FIXED, GPR_CLASS, preg=preg))
            for v in inst.results:
                ops.append(Op(v, "def", rc.FIXED, GPR_CLASS, preg=conv.libcall_result))
            clobbers = conv.caller_saved
        else:
            raise CodegenError(f"no calling convention for variadic op {inst.op}")
        return rc.InstConstraints(tuple(ops), clobbers)

    def _operand(self, od, v: Value, kind: str):
        rc = self.rc
        if od.fixed:
            preg = self.num[od.fixed]
            cls = FLOAT_CLASS if preg >= self.float_base else GPR_CLASS
            return rc.Operand(v, kind, rc.FIXED, cls, preg=preg)
        cls = self.class_index[od.cls]
        if getattr(od, "any", False) and kind == "use":
            return rc.Operand(v, kind, rc.ANY, cls)
        return rc.Operand(v, kind, rc.REG, cls)

"""Make module-level references explicit: globals and imported calls.

``global_get``/``global_set`` become loads and stores at their VMContext
slot (docs/ABI.md: slot ``i`` at ``0x40 + 8i``); an imported global's slot
holds a pointer to the exporter's slot, so its access goes through it.
Calls of imported functions become ``call_import``, which switches to the
callee's instance.  After this pass the lowering rules need no module
knowledge.
"""

from __future__ import annotations

from .function import Function, Inst
from .types import Type

VM_GLOBALS = 0x40


def global_offset(index: int) -> int:
    return VM_GLOBALS + 8 * index


def legalize_module_refs(func: Function, num_imported_globals: int,
                         num_imported_funcs: int) -> None:
    for b in func.blocks:
        out: list[Inst] = []
        for inst in b.insts:
            op = inst.op
            if op == "global_get":
                (index,) = inst.imm
                if index < num_imported_globals:
                    p = func.new_value(Type.I64)
                    out.append(Inst("vmctx_load", (), [p], (global_offset(index),), loc=inst.loc))
                    out.append(Inst("ptr_load", [p], inst.results, (0,), loc=inst.loc))
                else:
                    out.append(Inst("vmctx_load", (), inst.results, (global_offset(index),),
                                    loc=inst.loc))
                continue
            if op == "global_set":
                (index,) = inst.imm
                if index < num_imported_globals:
                    p = func.new_value(Type.I64)
                    out.append(Inst("vmctx_load", (), [p], (global_offset(index),), loc=inst.loc))
                    out.append(Inst("ptr_store", [p, inst.args[0]], (), (0,), loc=inst.loc))
                else:
                    out.append(Inst("vmctx_store", inst.args, (), (global_offset(index),),
                                    loc=inst.loc))
                continue
            if op == "call" and inst.imm[0] < num_imported_funcs:
                out.append(Inst("call_import", inst.args, inst.results, inst.imm, loc=inst.loc))
                continue
            out.append(inst)
        b.insts = out


# --- instructions the target lacks ------------------------------------------------------

#: the ISA flag each bit-counting op needs (x86-64: LZCNT, TZCNT from BMI1, POPCNT)
NEEDS = {"clz": "has_lzcnt", "ctz": "has_bmi1", "popcnt": "has_popcnt"}
_M55, _M33, _M0F, _M01 = (0x5555555555555555, 0x3333333333333333, 0x0F0F0F0F0F0F0F0F,
                          0x0101010101010101)


def legalize_isa(func: Function, off: frozenset[str] | set[str]) -> None:
    """Expand ``clz``/``ctz``/``popcnt`` into shifts, masks and adds where the ISA
    flag they need (``NEEDS``) is in ``off`` (for example ``x86-64-v2`` has no
    LZCNT or TZCNT).  ``clz x = popcnt(~smear(x))``, ``ctz x = popcnt(~x & (x-1))``
    and ``popcnt`` is the SWAR sum of bit fields; each value is computed once."""
    if not off or not any(NEEDS[op] in off for op in NEEDS):
        return
    for b in func.blocks:
        out: list[Inst] = []
        for inst in b.insts:
            need = NEEDS.get(inst.op)
            if need is None or need not in off:
                out.append(inst)
                continue
            e = _Emitter(func, out, inst)
            x, result = inst.args[0], inst.results[0]
            if inst.op == "clz":
                s = x
                for k in (1, 2, 4, 8, 16, 32)[:6 if e.bits == 64 else 5]:
                    s = e.op("bor", s, e.op("ushr", s, e.const(k)))
                e.popcnt(e.op("bxor", s, e.const(-1)), "has_popcnt" in off, result)
            elif inst.op == "ctz":
                below = e.op("band", e.op("bxor", x, e.const(-1)), e.op("isub", x, e.const(1)))
                e.popcnt(below, "has_popcnt" in off, result)
            else:
                e.popcnt(x, True, result)
        b.insts = out


class _Emitter:
    """Appends generic ops of ``inst``'s type (and wasm offset) to ``out``."""

    def __init__(self, func: Function, out: list[Inst], inst: Inst) -> None:
        self.func, self.out, self.loc = func, out, inst.loc
        self.type: Type = inst.results[0].type
        self.bits = 64 if self.type is Type.I64 else 32

    def op(self, name: str, *args, imm: tuple = (), result=None):
        v = result if result is not None else self.func.new_value(self.type)
        self.out.append(Inst(name, args, [v], imm, loc=self.loc))
        return v

    def const(self, k: int):
        mask = (1 << self.bits) - 1
        k &= mask
        return self.op("iconst", imm=(k - (1 << self.bits) if k >> (self.bits - 1) else k,))

    def popcnt(self, x, expand: bool, result) -> None:
        if not expand:
            self.op("popcnt", x, result=result)
            return
        x = self.op("isub", x, self.op("band", self.op("ushr", x, self.const(1)),
                                       self.const(_M55)))
        x = self.op("iadd", self.op("band", x, self.const(_M33)),
                    self.op("band", self.op("ushr", x, self.const(2)), self.const(_M33)))
        x = self.op("band", self.op("iadd", x, self.op("ushr", x, self.const(4))),
                    self.const(_M0F))
        self.op("ushr", self.op("imul", x, self.const(_M01)), self.const(self.bits - 8),
                result=result)

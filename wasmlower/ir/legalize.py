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

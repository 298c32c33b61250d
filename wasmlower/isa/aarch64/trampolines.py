"""Trampolines between the host and AArch64 wasm code, and the trap routine.

Assembly text generated per signature and assembled by keystone; the layout
of the Store block is docs/ABI.md, the frames docs/AARCH64.md.  The runtime
enters the host-to-wasm trampoline under emulation (runtime/emulated.py)
with the C-like signature ``u64 entry(x0 = vmctx, x1 = code, x2 = values)``.
Its frame (fp-relative)::

    fp+8, fp      return address, caller's fp
    fp-16         the store's previous stack_limit (restored on exit: nesting)
    fp-16-8       ... and previous trap_sp (pair at [fp-16], trap_sp first)
    fp-96..fp-24  saved x19..x28; trap_sp points at fp-96, so a trap's
                  fp = trap_sp + 96

The trap routine resets sp to the innermost trap_sp and runs the same exit
sequence as a normal return, so every callee-saved register is restored.
"""

from __future__ import annotations

from ...ir.ops import TRAP_CODES
from .abi import arg_locations, result_locations
from .emit import load_imm, mem_operand
from .regs import reg_name

STACK_BUDGET = 0x80000        # bytes of stack wasm may use below the outermost entry
SAVE_AREA = 96                # x19..x28 and the store's previous trap_sp/stack_limit

ST_TRAP_SP, ST_LIMIT, ST_CODE, ST_PC, ST_FP, ST_PENDING = 0x00, 0x08, 0x10, 0x18, 0x20, 0x28
VM_TRAP_FN = 0x38
HOST_CALLBACK = 0x08

_EXIT = [
    "ldp x10, x11, [x29, #-16]",
    "str x10, [x9]",
    "str x11, [x9, #8]",
    f"sub sp, x29, #{SAVE_AREA}",
    "ldp x19, x20, [sp]",
    "ldp x21, x22, [sp, #16]",
    "ldp x23, x24, [sp, #32]",
    "ldp x25, x26, [sp, #48]",
    "ldp x27, x28, [sp, #64]",
    "mov sp, x29",
    "ldp x29, x30, [sp], #16",
    "ret",
]


def _ir_types(vts) -> tuple:
    from ...ir.types import Type
    return tuple(Type.F32 if v.value == "f32" else Type.F64 if v.value == "f64"
                 else Type.I64 for v in vts)


def _access(op: str, preg: int, base: str, off: int) -> list[str]:
    setup, addr = mem_operand(base, off, "x17")
    return [*setup, f"{op} {reg_name(preg)}, {addr}"]


def _sub_sp(n: int) -> list[str]:
    if n < 4096:
        return [f"sub sp, sp, #{n}"]
    return [*load_imm("x17", n), "sub sp, sp, x17"]


def host_to_wasm_asm(ft, label: str) -> str:
    params, results = _ir_types(ft.params), _ir_types(ft.results)
    locs = arg_locations(params)
    nstack = sum(1 for k, _ in locs if k == "stack")
    lines = [f"{label}:", "stp x29, x30, [sp, #-16]!", "mov x29, sp",
             f"sub sp, sp, #{SAVE_AREA}", "stp x19, x20, [sp]", "stp x21, x22, [sp, #16]",
             "stp x23, x24, [sp, #32]", "stp x25, x26, [sp, #48]", "stp x27, x28, [sp, #64]",
             "mov x28, x0", "mov x19, x2", "mov x20, x1", "ldr x21, [x28]",
             "ldr x10, [x21]", "ldr x11, [x21, #8]", "stp x10, x11, [sp, #80]",
             "mov x10, sp", "str x10, [x21]", f"cbnz x11, {label}_go",
             *load_imm("x12", STACK_BUDGET), "sub x10, x10, x12", "str x10, [x21, #8]",
             f"{label}_go:"]
    if nstack:
        lines += _sub_sp((8 * nstack + 15) & ~15)
    for i, (kind, where) in enumerate(locs):
        if kind == "stack":
            lines += _access("ldr", 10, "x19", 8 * i)
            lines += _access("str", 10, "sp", 8 * where)
    for i, (kind, where) in enumerate(locs):
        if kind == "reg":
            lines += _access("ldr", where, "x19", 8 * i)
    lines.append("blr x20")
    for i, preg in enumerate(result_locations(results)):
        lines += _access("str", preg, "x19", 8 * i)
    lines += ["mov x0, xzr", "mov x9, x21", *_EXIT]
    return "\n".join(lines)


def wasm_to_host_asm(ft, label: str) -> str:
    """Spill the args to an array, call the host callback ``cb(hostctx, values)``."""
    params, results = _ir_types(ft.params), _ir_types(ft.results)
    n = max(len(params), len(results), 1)
    area = 16 + ((8 * n + 15) & ~15)
    lines = [f"{label}:", "stp x29, x30, [sp, #-16]!", "mov x29, sp", *_sub_sp(area),
             "stur x28, [x29, #-8]"]
    for i, (kind, where) in enumerate(arg_locations(params)):
        if kind == "reg":
            lines += _access("str", where, "sp", 8 * i)
        else:
            lines += _access("ldr", 16, "x29", 16 + 8 * where)
            lines += _access("str", 16, "sp", 8 * i)
    lines += ["mov x0, x28", "mov x1, sp", f"ldr x16, [x28, #{HOST_CALLBACK}]", "blr x16",
              f"cbnz x0, {label}_trap"]
    for i, preg in enumerate(result_locations(results)):
        lines += _access("ldr", preg, "sp", 8 * i)
    lines += ["ldur x28, [x29, #-8]", "mov sp, x29", "ldp x29, x30, [sp], #16", "ret",
              # The trap routine of the calling instance: its VMContext is the
              # one the calling wasm frame saved at [fp-8].
              f"{label}_trap:", "ldr x16, [x29]", "ldur x28, [x16, #-8]",
              f"mov w1, #{TRAP_CODES['host']}", f"ldr x16, [x28, #{VM_TRAP_FN}]", "blr x16"]
    return "\n".join(lines)


def trap_routine_asm(label: str) -> str:
    """Entered by ``blr`` with the trap code in w1 and x28 a VMContext of the store."""
    return "\n".join([
        f"{label}:",
        "ldr x9, [x28]",
        f"str x1, [x9, #{ST_CODE}]",
        f"str x30, [x9, #{ST_PC}]",
        f"str x29, [x9, #{ST_FP}]",
        f"ldr x10, [x9, #{ST_TRAP_SP}]",
        "mov sp, x10",
        f"add x29, sp, #{SAVE_AREA}",
        "mov w0, w1",
        *_EXIT,
    ])


def build_trampolines(functypes) -> tuple[bytes, dict, dict, int]:
    """Assemble trampolines for ``functypes`` plus the trap routine, as one blob.

    Returns ``(text, host_to_wasm, wasm_to_host, trap_routine)`` with the
    offsets of each trampoline by signature and of the trap routine.
    """
    from ...emit.assemble import assemble_labeled
    sigs = list(dict.fromkeys(functypes))
    chunks, labels = [], []
    for i, ft in enumerate(sigs):
        chunks.append(host_to_wasm_asm(ft, f"h2w_{i}"))
        chunks.append(wasm_to_host_asm(ft, f"w2h_{i}"))
        labels += [f"h2w_{i}", f"w2h_{i}"]
    chunks.append(trap_routine_asm("wl_trap"))
    labels.append("wl_trap")
    text, offsets = assemble_labeled("\n".join(chunks), labels, arch="aarch64", align=4)
    h2w = {ft: offsets[f"h2w_{i}"] for i, ft in enumerate(sigs)}
    w2h = {ft: offsets[f"w2h_{i}"] for i, ft in enumerate(sigs)}
    return text, h2w, w2h, offsets["wl_trap"]



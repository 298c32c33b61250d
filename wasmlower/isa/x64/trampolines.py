"""Trampolines between Python (C ABI) and wasm code, and the trap routine.

Assembly text generated per signature and assembled by keystone; the layout
of frames and of the Store block is docs/ABI.md.  The host-to-wasm
trampoline's frame (rbp-relative):

    rbp-8 .. rbp-40   saved rbx r12 r13 r14 r15
    rbp-48            the store's previous trap_sp (restored on exit: nesting)
    rbp-56            the store's previous stack_limit
    rbp-64            padding; trap_sp points here, so a trap's rbp = trap_sp + 64

The trap routine resets rsp to the innermost trap_sp and runs the same exit
sequence as a normal return, so every callee-saved register is restored.
"""

from __future__ import annotations

from ...ir.ops import TRAP_CODES
from .abi import arg_locations, result_locations
from .regs import reg_name

STACK_BUDGET = 0x80000        # bytes of native stack wasm may use below the outermost entry

ST_TRAP_SP, ST_LIMIT, ST_CODE, ST_PC, ST_FP, ST_PENDING = 0x00, 0x08, 0x10, 0x18, 0x20, 0x28
VM_TRAP_FN = 0x38
HOST_CALLBACK = 0x08

_EXIT = """\
    mov rdx, qword ptr [rbp-48]
    mov qword ptr [rcx], rdx
    mov rdx, qword ptr [rbp-56]
    mov qword ptr [rcx+8], rdx
    lea rsp, [rbp-40]
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret"""


def _ir_types(vts) -> tuple:
    from ...ir.types import Type
    return tuple(Type.F32 if v.value == "f32" else Type.F64 if v.value == "f64"
                 else Type.I64 for v in vts)


def _load(preg: int, mem: str) -> str:
    if preg >= 16:
        return f"movq {reg_name(preg)}, qword ptr {mem}"
    return f"mov {reg_name(preg)}, qword ptr {mem}"


def _store(preg: int, mem: str) -> str:
    if preg >= 16:
        return f"movq qword ptr {mem}, {reg_name(preg)}"
    return f"mov qword ptr {mem}, {reg_name(preg)}"


def host_to_wasm_asm(ft, label: str) -> str:
    params, results = _ir_types(ft.params), _ir_types(ft.results)
    locs = arg_locations(params)
    nstack = sum(1 for k, _ in locs if k == "stack")
    lines = [f"{label}:", "push rbp", "mov rbp, rsp", "push rbx", "push r12", "push r13",
             "push r14", "push r15", "mov r15, rdi", "mov r12, rdx", "mov r11, rsi",
             "mov rax, qword ptr [r15]", "push qword ptr [rax]", "push qword ptr [rax+8]",
             "sub rsp, 8", "mov qword ptr [rax], rsp", "cmp qword ptr [rax+8], 0",
             f"jne {label}_go", f"lea rcx, [rsp - {STACK_BUDGET:#x}]",
             "mov qword ptr [rax+8], rcx", f"{label}_go:"]
    if nstack:
        lines.append(f"sub rsp, {(8 * nstack + 15) & ~15}")
    for i, (kind, where) in enumerate(locs):
        if kind == "stack":
            lines += [f"mov rax, qword ptr [r12+{8 * i}]", f"mov qword ptr [rsp+{8 * where}], rax"]
    for i, (kind, where) in enumerate(locs):
        if kind == "reg":
            lines.append(_load(where, f"[r12+{8 * i}]"))
    lines.append("call r11")
    for i, preg in enumerate(result_locations(results)):
        lines.append(_store(preg, f"[r12+{8 * i}]"))
    lines += ["xor eax, eax", "mov rcx, qword ptr [r15]", _EXIT]
    return "\n".join(lines)


def wasm_to_host_asm(ft, label: str) -> str:
    params, results = _ir_types(ft.params), _ir_types(ft.results)
    n = max(len(params), len(results), 1)
    area = ((8 * n + 15) & ~15) + 8          # keeps rsp 16-aligned at the call
    lines = [f"{label}:", "push rbp", "mov rbp, rsp", "push r15", f"sub rsp, {area}"]
    for i, (kind, where) in enumerate(arg_locations(params)):
        if kind == "reg":
            lines.append(_store(where, f"[rsp+{8 * i}]"))
        else:
            lines += [f"mov rax, qword ptr [rbp+{16 + 8 * where}]",
                      f"mov qword ptr [rsp+{8 * i}], rax"]
    lines += ["mov rdi, r15", "mov rsi, rsp", f"call qword ptr [r15+{HOST_CALLBACK}]",
              "test rax, rax", f"jnz {label}_trap"]
    for i, preg in enumerate(result_locations(results)):
        lines.append(_load(preg, f"[rsp+{8 * i}]"))
    lines += ["mov r15, qword ptr [rbp-8]", "mov rsp, rbp", "pop rbp", "ret",
              f"{label}_trap:", "mov r15, qword ptr [rbp-8]", f"mov esi, {TRAP_CODES['host']}",
              f"call qword ptr [r15+{VM_TRAP_FN}]"]
    return "\n".join(lines)


def trap_routine_asm(label: str) -> str:
    return "\n".join([
        f"{label}:",
        "mov rax, qword ptr [r15]",
        f"mov qword ptr [rax+{ST_CODE}], rsi",
        "pop rcx",
        f"mov qword ptr [rax+{ST_PC}], rcx",
        f"mov qword ptr [rax+{ST_FP}], rbp",
        f"mov rsp, qword ptr [rax+{ST_TRAP_SP}]",
        "lea rbp, [rsp+64]",
        "mov rcx, rax",
        f"mov rax, qword ptr [rcx+{ST_CODE}]",
        _EXIT,
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
    text, offsets = assemble_labeled("\n".join(chunks), labels)
    h2w = {ft: offsets[f"h2w_{i}"] for i, ft in enumerate(sigs)}
    w2h = {ft: offsets[f"w2h_{i}"] for i, ft in enumerate(sigs)}
    return text, h2w, w2h, offsets["wl_trap"]



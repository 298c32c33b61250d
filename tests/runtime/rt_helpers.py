"""Hand-assembled stand-ins for compiled wasm functions, for runtime tests.

``build(wat, bodies)`` decodes the module structure from WAT (function bodies
in the WAT are ignored) and pairs it with machine code written here, following
docs/ABI.md: frame ``push rbp; mov rbp, rsp; push r15``, r15 = VMContext.
The trampolines come from the back end's ``build_trampolines``.

A body is a list of pieces, each assembled on its own:
``(asm_text, wasm_offset_or_None)`` or ``("call", callee_function_index,
wasm_offset)`` which emits ``call rel32`` with a relocation.
"""

from __future__ import annotations

import wasmtime
from keystone import KS_ARCH_X86, KS_MODE_64, Ks

from wasmlower.emit.compiled import CompiledFunction, CompiledModule
from wasmlower.ir.ops import TRAP_CODES
from wasmlower.isa.x64 import trampolines as _tramp
from wasmlower.wasm import decode_module

_KS = Ks(KS_ARCH_X86, KS_MODE_64)
_ORIGINAL_BUILD = _tramp.build_trampolines
LIBCALL_NAMES = ("memory_grow", "memory_fill", "memory_copy", "memory_init", "data_drop",
                 "table_get", "table_set", "table_size", "table_grow", "table_fill",
                 "table_copy", "table_init", "elem_drop")

PROLOGUE = "push rbp; mov rbp, rsp; push r15; sub rsp, 8"
EPILOGUE = "mov rsp, rbp; pop rbp; ret"


def asm(text: str) -> bytes:
    enc, _ = _KS.asm(text.encode(), 0)
    return bytes(enc or b"")


def trap(kind: str) -> str:
    """Asm that traps with ``kind`` (through the VMContext's trap routine)."""
    return f"mov esi, {TRAP_CODES[kind]}; call qword ptr [r15+0x38]"


def assembler_is_sound() -> bool:
    """False while the back end's ``assemble`` reads decimal numbers as hex.

    (keystone with a ``sym_resolver`` set parses ``16`` as ``0x16``.)
    """
    from wasmlower.emit.assemble import assemble
    return assemble("sub rsp, 16") == asm("sub rsp, 16")


def build_trampolines(functypes) -> tuple[bytes, dict, dict, int]:
    """The back end's trampolines, assembled with a plain keystone instance."""
    if assembler_is_sound():
        return _ORIGINAL_BUILD(functypes)
    sigs = list(dict.fromkeys(functypes))
    text = bytearray()
    h2w: dict = {}
    w2h: dict = {}

    def put(code: str) -> int:
        text.extend(b"\xcc" * (-len(text) % 16))
        start = len(text)
        text.extend(asm(code))
        return start

    for i, ft in enumerate(sigs):
        h2w[ft] = put(_tramp.host_to_wasm_asm(ft, f"h2w_{i}"))
        w2h[ft] = put(_tramp.wasm_to_host_asm(ft, f"w2h_{i}"))
    trap_off = put(_tramp.trap_routine_asm("wl_trap"))
    return bytes(text), h2w, w2h, trap_off


def body(code: str, wasm_offset: int | None = None) -> list:
    """A whole function: prologue, ``code``, epilogue (one piece)."""
    return [(f"{PROLOGUE}; {code}; {EPILOGUE}", wasm_offset)]


def build(wat: str, bodies: dict[int, list], libcall_names: tuple[str, ...] = LIBCALL_NAMES,
          extra_sigs: tuple = ()) -> CompiledModule:
    module = decode_module(bytes(wasmtime.wat2wasm(wat)))
    nimp = module.num_imported_funcs
    text = bytearray()
    functions: list[CompiledFunction] = []
    pending_calls: list[tuple[int, int]] = []
    for k in range(len(module.funcs)):
        idx = nimp + k
        text += b"\xcc" * (-len(text) % 16)
        start = len(text)
        cf = CompiledFunction(idx, module.func_names.get(idx, f"f{idx}"), start, 0)
        for piece in bodies.get(idx, body(trap("unreachable"))):
            if piece[0] == "call":
                _, callee, woff = piece
                if woff is not None:
                    cf.addrmap.append((len(text), woff))
                text += b"\xe8"
                pending_calls.append((len(text), callee))
                text += b"\0\0\0\0"
                continue
            code, woff = piece
            if woff is not None:
                cf.addrmap.append((len(text), woff))
            text += asm(code)
        cf.size = len(text) - start
        functions.append(cf)
    sigs = list(module.types) + list(extra_sigs)
    tramp, h2w, w2h, trap_off = build_trampolines(list(dict.fromkeys(sigs)))
    text += b"\xcc" * (-len(text) % 16)
    base = len(text)
    text += tramp
    offsets = {f.index: f.offset for f in functions}
    relocs = [(off, "R_X86_64_PLT32", offsets[callee], -4) for off, callee in pending_calls]
    return CompiledModule(module, bytes(text), functions, relocs,
                          {k: v + base for k, v in h2w.items()},
                          {k: v + base for k, v in w2h.items()},
                          trap_off + base, libcall_names)


def trap_kind(*kinds: str) -> str:
    """The first of ``kinds`` the trap code table knows (names evolve with the compiler)."""
    return next(k for k in kinds if k in TRAP_CODES)


def call_import(i: int) -> str:
    """Asm calling function ``i`` through this instance's func record (args already placed)."""
    return (f"mov rax, qword ptr [r15+0x20]; add rax, {32 * i}; mov r15, qword ptr [rax+8]; "
            "call qword ptr [rax]; mov r15, qword ptr [rbp-8]")


def libcall(name: str, nargs: int, names: tuple[str, ...] = LIBCALL_NAMES) -> str:
    """Asm calling libcall ``name`` with the function's first ``nargs`` integer params."""
    regs = ["rdi", "rsi", "rdx", "rcx", "r8", "r9"]
    moves = [f"mov {regs[k + 1]}, {regs[k]}" for k in reversed(range(nargs))]
    return "; ".join([*moves, "mov rdi, r15", "mov rax, qword ptr [r15+0x30]",
                      f"call qword ptr [rax+{8 * names.index(name)}]",
                      "mov rcx, qword ptr [r15]", "mov rsi, qword ptr [rcx+0x28]",
                      "test rsi, rsi", "jz lc_ok", "call qword ptr [r15+0x38]", "lc_ok:"])

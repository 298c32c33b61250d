"""Render an allocated x86-64 function as assembly text for keystone.

The block walk, template filling, labels and trap stubs are shared
(``wasmlower/isa/emit.py``); this module gives them x86-64's instruction text:
frame, moves, operands (a register or a stack slot), trap stubs, and the
builtins ``{targets}``, ``{call_indirect}`` and ``{callee}``.  Every rendered
line is one machine instruction or one label, so the n-th instruction line
is the n-th instruction keystone encodes — the emitter relies on that to
recover offsets (``emit.assemble.boundaries``).

Frame (docs/ABI.md): ``[rbp-8]`` saved r15, then the callee-saved registers
the allocation uses, then spill slots; outgoing stack arguments at
``[rsp+8k]``; incoming stack parameters at ``[rbp+16+8k]``.  rsp stays
16-byte aligned at calls.
"""

from __future__ import annotations

from wasmlower.ir.function import Function, Inst
from wasmlower.ir.ops import TRAP_CODES
from wasmlower.isa import emit as shared
from wasmlower.isa.emit import Rendered

from .regs import FLOAT_BASE, reg_name

__all__ = ["Emitter", "FrameLayout", "Rendered", "render_function"]


class FrameLayout:
    def __init__(self, alloc, saved: list[int]) -> None:
        self.saved = saved
        self.spill_base = 16 + 8 * len(saved)       # slot s at [rbp - spill_base - 8s]
        self.outgoing = alloc.max_outgoing_args
        size = 8 * len(saved) + 8 * alloc.num_spill_slots + 8 * self.outgoing
        size += (8 - size) % 16                      # push rbp; push r15; sub -> aligned
        self.size = size

    def slot(self, s: int) -> tuple[str, int]:
        return "rbp", -(self.spill_base + 8 * s)


class Emitter(shared.Emitter):
    FrameLayout = FrameLayout
    JUMP = "jmp"
    SP, FP = "rsp", "rbp"
    STACK_OPERANDS = True

    def __init__(self, func: Function, alloc, constraints, module_info) -> None:
        super().__init__(func, alloc, constraints, module_info)
        # (slot loc, register) of a spill store that is the last line emitted
        self.stored: tuple[int, int] | None = None

    def line(self, text: str, kind: str = "inst", payload: object = None) -> None:
        super().line(text, kind, payload)
        self.stored = None

    # -- locations ---------------------------------------------------------
    def operand(self, loc: int, width: int = 64) -> str:
        if loc >= 0:
            return reg_name(loc, width)
        return self.mem(loc)

    def mem(self, loc: int) -> str:
        base, off = self.stack_addr(loc)
        return f"qword ptr [{base}{'-' if off < 0 else '+'}{abs(off)}]"

    def copy(self, dst: int, src: int) -> None:
        if src >= FLOAT_BASE and dst >= FLOAT_BASE:
            self.line(f"movaps {reg_name(dst)}, {reg_name(src)}")
        elif src >= FLOAT_BASE or dst >= FLOAT_BASE:
            self.line(f"movq {reg_name(dst)}, {reg_name(src)}")
        else:
            self.line(f"mov {reg_name(dst)}, {reg_name(src)}")

    def store(self, src: int, loc: int) -> None:
        op = "movsd" if src >= FLOAT_BASE else "mov"
        self.line(f"{op} {self.mem(loc)}, {reg_name(src)}")
        self.stored = (loc, src)

    def load(self, dst: int, loc: int) -> None:
        if self.stored is not None and self.stored[0] == loc:
            # The slot was written from a register by the line just before
            # (no label in between, so no other path reaches here): that
            # register still holds the value.
            self.move(self.stored[1], dst, 0)
            return
        op = "movsd" if dst >= FLOAT_BASE else "mov"
        self.line(f"{op} {reg_name(dst)}, {self.mem(loc)}")

    # -- frame and traps -----------------------------------------------------
    def prologue(self) -> None:
        self.loc = None
        self.line("push rbp")
        self.line("mov rbp, rsp")
        self.line("push r15")
        if self.frame.size:
            self.line(f"sub rsp, {self.frame.size}")
        self.line("mov r11, qword ptr [r15]")
        self.line("cmp rsp, qword ptr [r11+8]")
        self.line(f"jb {self.trap_label('stack_overflow')}")
        for i, r in enumerate(self.frame.saved):
            self.line(f"mov qword ptr [rbp-{16 + 8 * i}], {reg_name(r)}")

    def epilogue(self) -> list[str]:
        out = [f"mov {reg_name(r)}, qword ptr [rbp-{16 + 8 * i}]"
               for i, r in enumerate(self.frame.saved)]
        return out + ["leave", "ret"]

    def trap_stub(self, kind: str) -> None:
        if kind != "pending":
            self.line(f"mov esi, {TRAP_CODES[kind]}")
        self.line("call qword ptr [r15+56]", "trap", kind)

    # -- x64's own placeholders ------------------------------------------------
    def placeholder(self, name: str, arg: str | None, inst: Inst) -> str | None:
        if name == "callee":
            return f"func_{inst.imm[0]}"
        return None

    def template_line(self, text: str) -> None:
        if text.startswith("call func_"):
            self.line(text, "call", int(text[len("call func_"):]))
        else:
            self.line(text)

    def builtin(self, text: str, inst: Inst, locs, nxt, regs, env) -> list[str] | None:
        if text == "{targets}":
            idx = reg_name(locs[0], 32)
            *table, default = inst.targets
            out = []
            for k, t in enumerate(table):
                out += [f"cmp {idx}, {k}", f"je {self.block_label(t.block)}"]
            if default.block is not nxt:
                out.append(self.jump(self.block_label(default.block)))
            return out
        if text == "{call_indirect}":
            ty, table = inst.imm
            idx = reg_name(locs[0], 32)
            type_id_off = 8 * ty
            return [
                f"mov r10d, {idx}",
                "mov r11, qword ptr [r15+24]",
                f"cmp r10, qword ptr [r11+{16 * table + 8}]",
                f"jae {self.trap_label('indirect_oob')}",
                f"mov r11, qword ptr [r11+{16 * table}]",
                "mov r11, qword ptr [r11+r10*8]",
                "test r11, r11",
                f"jz {self.trap_label('indirect_null')}",
                "mov r10, qword ptr [r15+40]",
                f"mov r10, qword ptr [r10+{type_id_off}]",
                "cmp r10, qword ptr [r11+16]",
                f"jne {self.trap_label('bad_sig')}",
                "mov r15, qword ptr [r11+8]",
                "call qword ptr [r11]",
                "mov r15, qword ptr [rbp-8]",
            ]
        return super().builtin(text, inst, locs, nxt, regs, env)


def render_function(func: Function, alloc, constraints, module_info) -> Rendered:
    return Emitter(func, alloc, constraints, module_info).run()

"""Render an allocated AArch64 function as assembly text for keystone.

The block walk, template filling, labels and trap stubs are shared
(``wasmlower/isa/emit.py``); this module gives them AArch64's instruction
text: frame, moves (through ``mem_operand`` when an offset does not fit),
trap stubs, and the builtins ``{li:REG:IMM}`` (``load_imm``), ``{call}``,
``{targets}`` and ``{call_indirect}``.  Every rendered line is one machine
instruction or one label, and since every AArch64 instruction is 4 bytes the
emitter knows each line's offset before assembling: ``relax`` uses that to
keep conditional branches in range.

Frame (docs/AARCH64.md)::

    [fp+16+8k]   incoming stack parameter k (the caller's outgoing area)
    [fp+8]       return address (x30)      [fp] caller's fp (x29)
    [fp-8]       this function's x28 (VMContext), restored after calls
    [fp-16-8i]   callee-saved register i the allocation uses
    [sp+8*nout+8s]  spill slot s
    [sp+8k]      outgoing stack argument k
    sp = fp - size, 16-byte aligned; sp never moves inside the body.
"""

from __future__ import annotations

import re

from wasmlower.ir.function import Function, Inst
from wasmlower.ir.ops import TRAP_CODES
from wasmlower.isa import emit as shared
from wasmlower.isa.emit import Rendered

from .regs import FLOAT_BASE, reg_name

__all__ = ["COND_RANGE", "TEST_RANGE", "Emitter", "FrameLayout", "Rendered", "load_imm",
           "mem_operand", "relax", "render_function"]

_LI = re.compile(r"^\{li:(\w+):(\w+)\}$")

# Reach of the conditional branches in bytes (b.cond/cbz/cbnz: imm19 << 2;
# tbz/tbnz: imm14 << 2), minus nothing: offsets are exact.  Tests lower them
# to exercise the rewriting on small functions.
COND_RANGE = 1 << 20
TEST_RANGE = 1 << 15
_INVERT = {"eq": "ne", "ne": "eq", "hs": "lo", "lo": "hs", "cs": "cc", "cc": "cs", "mi": "pl",
           "pl": "mi", "vs": "vc", "vc": "vs", "hi": "ls", "ls": "hi", "ge": "lt", "lt": "ge",
           "gt": "le", "le": "gt"}


def load_imm(reg: str, value: int) -> list[str]:
    """movz/movn + movk lines that put the 64-bit ``value`` in x register ``reg``."""
    v = value & ((1 << 64) - 1)
    chunks = [(v >> (16 * i)) & 0xFFFF for i in range(4)]
    if v == 0:
        return [f"mov {reg}, xzr"]
    ones = chunks.count(0xFFFF)
    zeros = chunks.count(0)
    out: list[str] = []
    if ones > zeros:
        for i, c in enumerate(chunks):
            if c == 0xFFFF:
                continue
            if not out:
                out.append(f"movn {reg}, #{(~c) & 0xFFFF:#x}, lsl #{16 * i}")
            else:
                out.append(f"movk {reg}, #{c:#x}, lsl #{16 * i}")
        if not out:                                   # all ones
            out.append(f"movn {reg}, #0x0")
        return out
    for i, c in enumerate(chunks):
        if c == 0:
            continue
        op = "movz" if not out else "movk"
        out.append(f"{op} {reg}, #{c:#x}, lsl #{16 * i}")
    return out


def mem_operand(base: str, off: int, scratch: str = "x17") -> tuple[list[str], str]:
    """``(setup lines, "[base, ...]")`` addressing ``base + off`` for an 8-byte access."""
    if 0 <= off < 32768 and off % 8 == 0:
        return [], f"[{base}, #{off}]"
    if -256 <= off < 256:
        return [], f"[{base}, #{off}]"          # ldur/stur
    return load_imm(scratch, off), f"[{base}, {scratch}]"


class FrameLayout:
    def __init__(self, alloc, saved: list[int]) -> None:
        self.saved = saved
        self.outgoing = alloc.max_outgoing_args
        self.spill_base = 8 * self.outgoing              # slot s at [sp + spill_base + 8s]
        size = 8 + 8 * len(saved) + 8 * alloc.num_spill_slots + 8 * self.outgoing
        size += -size % 16
        self.size = size

    def slot(self, s: int) -> tuple[str, int]:
        return "sp", self.spill_base + 8 * s


class Emitter(shared.Emitter):
    FrameLayout = FrameLayout
    JUMP = "b"
    SP, FP = "sp", "x29"
    STACK_OPERANDS = False              # load/store architecture: operands are registers

    # -- locations ---------------------------------------------------------
    def operand(self, loc: int, width: int = 64) -> str:
        return reg_name(loc, width)

    def copy(self, dst: int, src: int) -> None:
        if src >= FLOAT_BASE or dst >= FLOAT_BASE:
            self.line(f"fmov {reg_name(dst)}, {reg_name(src)}")
        else:
            self.line(f"mov {reg_name(dst)}, {reg_name(src)}")

    def store(self, src: int, loc: int) -> None:
        self.access("str", src, loc)

    def load(self, dst: int, loc: int) -> None:
        self.access("ldr", dst, loc)

    def access(self, op: str, reg: int, loc: int) -> None:
        setup, addr = mem_operand(*self.stack_addr(loc))
        for ln in setup:
            self.line(ln)
        self.line(f"{op} {reg_name(reg)}, {addr}")

    # -- frame and traps -----------------------------------------------------
    def prologue(self) -> None:
        self.loc = None
        self.line("stp x29, x30, [sp, #-16]!")
        self.line("mov x29, sp")
        size = self.frame.size
        if size < 4096:
            self.line(f"sub sp, sp, #{size}")
        else:
            for ln in load_imm("x16", size):
                self.line(ln)
            self.line("sub sp, sp, x16")
        self.line("stur x28, [x29, #-8]")
        self.line("ldr x16, [x28]")
        self.line("ldr x16, [x16, #8]")
        self.line("cmp sp, x16")
        self.line(f"b.lo {self.trap_label('stack_overflow')}")
        for i, r in enumerate(self.frame.saved):
            self.line(f"stur {reg_name(r)}, [x29, #-{16 + 8 * i}]")

    def epilogue(self) -> list[str]:
        out = [f"ldur {reg_name(r)}, [x29, #-{16 + 8 * i}]"
               for i, r in enumerate(self.frame.saved)]
        return out + ["mov sp, x29", "ldp x29, x30, [sp], #16", "ret"]

    def trap_stub(self, kind: str) -> None:
        if kind != "pending":
            self.line(f"mov w1, #{TRAP_CODES[kind]}")
        self.line("ldr x16, [x28, #56]")
        self.line("blr x16", "trap", kind)

    def finish(self) -> None:
        relax(self.out, self.tag)

    # -- AArch64's own builtins ------------------------------------------------
    def builtin(self, text: str, inst: Inst, locs, nxt, regs, env) -> list[str] | None:
        m = _LI.match(text)
        if m:
            reg, imm = m.group(1), m.group(2)
            reg = reg_name(regs[reg]) if reg in regs else reg
            return load_imm(reg, int(env[imm]))
        if text == "{call}":
            # A branch to itself, patched when the functions are laid out
            # (keystone cannot leave a relocation, and an unresolved symbol
            # could be out of bl's range).
            label = self.fresh()
            self.label(label)
            self.line(f"bl {label}", "call", int(inst.imm[0]))
            return []
        if text == "{targets}":
            idx = reg_name(locs[0], 32)
            *table, default = inst.targets
            n = len(table)
            out = []
            if n < 4096:
                out.append(f"cmp {idx}, #{n}")
            else:
                out += load_imm("x17", n)
                out.append(f"cmp {idx}, w17")
            out.append(f"b.hs {self.block_label(default.block)}")
            tab = self.fresh()
            out += [f"adr x16, {tab}", f"add x16, x16, {idx}, uxtw #2", "br x16", f"{tab}:"]
            out += [self.jump(self.block_label(t.block)) for t in table]
            return out
        if text == "{call_indirect}":
            ty, table = inst.imm
            idx = reg_name(locs[0], 64)
            s1, size_at = mem_operand("x17", 16 * table + 8, "x16")
            s2, base_at = mem_operand("x17", 16 * table, "x16")
            s3, type_at = mem_operand("x16", 8 * ty, "x16")
            return [
                "ldr x17, [x28, #24]",
                *s1, f"ldr x16, {size_at}",
                f"cmp {idx}, x16",
                f"b.hs {self.trap_label('indirect_oob')}",
                *s2, f"ldr x17, {base_at}",
                f"ldr x17, [x17, {idx}, lsl #3]",
                f"cbz x17, {self.trap_label('indirect_null')}",
                "ldr x16, [x28, #40]",
                *s3, f"ldr x16, {type_at}",
                "ldr x30, [x17, #16]",
                "cmp x16, x30",
                f"b.ne {self.trap_label('bad_sig')}",
                "ldr x28, [x17, #8]",
                "ldr x16, [x17]",
                "blr x16",
                "ldur x28, [x29, #-8]",
            ]
        return super().builtin(text, inst, locs, nxt, regs, env)


def relax(out: Rendered, tag: str = "", cond_range: int | None = None,
          test_range: int | None = None) -> int:
    """Rewrite conditional branches whose label is out of reach; return how many.

    ``b.cc L`` becomes ``b.!cc skip; b L; skip:`` (cbz <-> cbnz, tbz <-> tbnz
    likewise); the three lines share the original's ``info`` wasm offset and
    its ``notes`` entry.  Preserves semantics: the pair branches to L exactly when the
    original did and falls through otherwise.  Each rewrite moves later code
    by 4 bytes, which can push other branches out of range, so it repeats
    until nothing changes (it terminates: branches are only ever rewritten
    once, into an unconditional b that reaches +-128 MiB).
    """
    cond_range = COND_RANGE if cond_range is None else cond_range
    test_range = TEST_RANGE if test_range is None else test_range
    total = 0
    while True:
        pos: dict[str, int] = {}
        at = 0
        offsets = []
        for text, (kind, _p, _l) in zip(out.lines, out.info):
            offsets.append(at)
            if kind == "label":
                pos[text[:-1]] = at
            else:
                at += 4
        todo = []
        for i, text in enumerate(out.lines):
            if out.info[i][0] == "label" or text.startswith("b ") or not text.startswith(
                    ("b.", "cbz", "cbnz", "tbz", "tbnz")):
                continue
            target = text.rsplit(" ", 1)[-1]
            if target not in pos or target.startswith(".Lr"):    # already rewritten
                continue
            reach = test_range if text.startswith("tb") else cond_range
            if not -reach <= pos[target] - offsets[i] < reach:
                todo.append(i)
        if not todo:
            return total
        for i in reversed(todo):
            text = out.lines[i]
            kind, payload, loc = out.info[i]
            target = text.rsplit(" ", 1)[-1]
            head = text[:len(text) - len(target)].rstrip().rstrip(",")
            mnem, _, rest = head.partition(" ")
            if mnem.startswith("b."):
                inv = f"b.{_INVERT[mnem[2:]]}"
            else:
                inv = {"cbz": "cbnz", "cbnz": "cbz", "tbz": "tbnz", "tbnz": "tbz"}[mnem]
            skip = f".Lr{tag}{i}_{total}"
            new = f"{inv} {rest}, {skip}" if rest else f"{inv} {skip}"
            out.lines[i:i + 1] = [new, f"b {target}", f"{skip}:"]
            out.info[i:i + 1] = [(kind, payload, loc), ("inst", None, loc), ("label", skip, loc)]
            if out.notes is not None:
                out.notes[i:i + 1] = [out.notes[i]] * 3
            total += 1


def render_function(func: Function, alloc, constraints, module_info) -> Rendered:
    return Emitter(func, alloc, constraints, module_info).run()

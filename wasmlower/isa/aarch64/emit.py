"""Render an allocated AArch64 function as assembly text for keystone.

The block walk, template filling, labels and trap stubs are shared
(``wasmlower/isa/emit.py``); this module gives them AArch64's instruction
text: frame, moves (through ``mem_operand`` when an offset does not fit),
trap stubs, and the builtins ``{li:REG:IMM}`` (``load_imm``), ``{call}``,
``{targets}`` and ``{call_indirect}``.  Every rendered line is one machine
instruction, one label or one 4-byte data word of the literal pool, and
since every AArch64 instruction is 4 bytes the emitter knows each line's
offset before assembling: ``relax`` uses that to keep conditional branches
and literal loads in range.

Literal pool: ``{lit32:REG:IMM}``/``{lit64:REG:IMM}`` become ``ldr sN/dN,
.LpTAG_n``; the function's distinct constants follow its last line (the trap
stubs) as ``.word`` lines, 8-byte ones first and 8-byte aligned (relative to
the function's start, which the layout aligns to 16).  A load the pool is out
of reach of (``ldr`` literal reaches +-1 MiB) is rewritten by ``relax`` into
movz/movk + fmov.  Data words are only emitted if the assembler back end can
step over them when it recovers instruction boundaries (``data_in_code``);
otherwise every literal load takes the movz/movk + fmov route.

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

from wasmlower.errors import CodegenError
from wasmlower.ir.function import Function, Inst
from wasmlower.ir.ops import TRAP_CODES
from wasmlower.isa import emit as shared
from wasmlower.isa.emit import Rendered

from . import preds
from .regs import FLOAT_BASE, reg_name

__all__ = ["COND_RANGE", "LITERAL_RANGE", "TEST_RANGE", "Emitter", "FrameLayout", "Rendered",
           "data_in_code", "literal_route", "load_imm", "mem_operand", "pool_layout", "relax",
           "render_function"]

_LI = re.compile(r"^\{li:(\w+):(\w+)\}$")
_LIT = re.compile(r"^\{(lit|fk)(32|64):(\w+):(\w+)\}$")
_LIT_LOAD = re.compile(r"^ldr ([sd]\d+), (\.Lp\S+)$")

# Reach of the conditional branches in bytes (b.cond/cbz/cbnz: imm19 << 2;
# tbz/tbnz: imm14 << 2), minus nothing: offsets are exact.  Tests lower them
# to exercise the rewriting on small functions.
COND_RANGE = 1 << 20
TEST_RANGE = 1 << 15
LITERAL_RANGE = 1 << 20          # ldr (literal): imm19 << 2, forward up to 1 MiB - 4
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


def literal_route(reg: str, bits: int) -> list[str]:
    """movz/movk + fmov lines that put the float pattern ``bits`` in ``reg`` (sN or dN)."""
    return load_imm("x16", bits) + [f"fmov {reg}, {'w16' if reg[0] == 's' else 'x16'}"]


def data_in_code() -> bool:
    """Whether the assembler back end steps over data words among the instructions.

    ``emit.assemble.boundaries`` recovers instruction offsets by disassembling
    with capstone, which stops at a word that is not an instruction unless its
    ``skipdata`` mode is on; pool constants are such words.  Asked per
    function (one 4-byte disassembly), so turning it on takes effect at once.
    """
    from wasmlower.emit.assemble import boundaries
    try:
        return boundaries(b"\xff\xff\xff\xff", "aarch64") == [(0, 4)]
    except CodegenError:
        return False


def pool_layout(end: int, literals: dict[str, tuple[int, int]],
                used) -> tuple[int, dict[str, int]]:
    """Where the pool starts and each used label's offset, the code ending at ``end``.

    8-byte constants come first, from an 8-byte aligned start (when there are
    any), then 4-byte ones, so no padding is needed between them.
    """
    order = sorted((lab for lab in literals if lab in used), key=lambda lab: -literals[lab][1])
    start = end + (-end % 8 if order and literals[order[0]][1] == 64 else 0)
    at, pos = start, {}
    for lab in order:
        pos[lab] = at
        at += literals[lab][1] // 8
    return start, pos


def mem_operand(base: str, off: int, scratch: str = "x17") -> tuple[list[str], str]:
    """``(setup lines, "[base, ...]")`` addressing ``base + off`` for an 8-byte access."""
    if 0 <= off < 32768 and off % 8 == 0:
        return [], f"[{base}, #{off}]"
    if -256 <= off < 256:
        return [], f"[{base}, #{off}]"          # ldur/stur
    return load_imm(scratch, off), f"[{base}, {scratch}]"


def pair_slots(pair: str, single: str, slots: list[tuple[int, str]]) -> list[str]:
    """stp/ldp (``pair``) two by two, stur/ldur (``single``) the odd one, for 8-byte slots
    at [fp - distance] given top down, each 8 below the previous one."""
    out = []
    for k in range(0, len(slots), 2):
        if k + 1 < len(slots):
            (_, high), (below, low) = slots[k], slots[k + 1]
            out.append(f"{pair} {low}, {high}, [x29, #-{below}]")
        else:
            below, reg = slots[k]
            out.append(f"{single} {reg}, [x29, #-{below}]")
    return out


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

    def __init__(self, func: Function, alloc, constraints, module_info) -> None:
        super().__init__(func, alloc, constraints, module_info)
        self.literals: dict[str, tuple[int, int]] = {}     # label -> (bits, width)
        self.literal_labels: dict[tuple[int, int], str] = {}
        self.pool = data_in_code()

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
        # x28 and the callee-saved registers, in pairs (they sit just below fp,
        # which the caller's own check kept above the limit).
        for ln in pair_slots("stp", "stur", [(8, "x28")] + self.saved_slots()):
            self.line(ln)
        self.line("ldr x16, [x28]")
        self.line("ldr x16, [x16, #8]")
        self.line("cmp sp, x16")
        self.line(f"b.lo {self.trap_label('stack_overflow')}")

    def saved_slots(self) -> list[tuple[int, str]]:
        """(distance below fp, register) of each callee-saved register the allocation uses."""
        return [(16 + 8 * i, reg_name(r)) for i, r in enumerate(self.frame.saved)]

    def epilogue(self) -> list[str]:
        return pair_slots("ldp", "ldur", self.saved_slots()) + [
            "mov sp, x29", "ldp x29, x30, [sp], #16", "ret"]

    def trap_stub(self, kind: str) -> None:
        if kind != "pending":
            self.line(f"mov w1, #{TRAP_CODES[kind]}")
        self.line("ldr x16, [x28, #56]")
        self.line("blr x16", "trap", kind)

    def finish(self) -> None:
        relax(self.out, self.tag, literals=self.literals)
        self.emit_pool()

    # -- the literal pool --------------------------------------------------------
    def literal(self, reg: str, bits: int, width: int) -> list[str]:
        """``ldr reg, <pool label>`` for the float pattern ``bits`` (one entry per value)."""
        bits &= (1 << width) - 1
        if not self.pool:
            return literal_route(reg, bits)
        key = (bits, width)
        label = self.literal_labels.get(key)
        if label is None:
            label = self.literal_labels[key] = f".Lp{self.tag}{len(self.literals)}"
            self.literals[label] = key
        return [f"ldr {reg}, {label}"]

    def float_constant(self, reg: str, bits: int, width: int) -> list[str]:
        """``{fk32:REG:IMM}``/``{fk64:...}``: the float pattern ``bits`` in ``reg`` as the
        rules would load it (movi, fmov #imm, literal pool, or movz/movk + fmov)."""
        if bits == 0:
            return [f"movi d{reg[1:]}, #0"]
        if preds.fimm8(bits, width):
            return [f"fmov {reg}, #{preds.fimm8_code(bits, width):#x}"]
        if preds.literal(bits, width):
            return self.literal(reg, bits, width)
        return literal_route(reg, bits)

    def emit_pool(self) -> None:
        """The used constants after the last line: labels and .word lines (kind "data")."""
        used = {m.group(2) for m in map(_LIT_LOAD.match, self.out.lines) if m}
        if not used:
            return
        end = sum(4 for kind, _, _ in self.out.info if kind != "label")
        start, pos = pool_layout(end, self.literals, used)
        self.loc = None
        if start > end:
            self.data_word(0)                       # alignment padding
        for label in pos:
            bits, width = self.literals[label]
            self.label(label)
            self.note_pool()
            for half in range(width // 32):
                self.data_word((bits >> (32 * half)) & 0xFFFFFFFF)

    def data_word(self, value: int) -> None:
        self.line(f".word {value:#010x}", "data")
        self.note_pool()

    def note_pool(self) -> None:
        # explain's note for the line just added: it belongs to no instruction.
        if self.out.notes is not None and len(self.out.notes) == len(self.out.lines):
            self.out.notes[-1] = ("literal pool", None, "")

    # -- AArch64's own builtins ------------------------------------------------
    def placeholder(self, name: str, arg: str | None, inst: Inst) -> str | None:
        if name == "hex" and arg is not None:        # {hex:IMM}
            names = [d.name for d in inst.info.decl.imms]
            return hex(int(inst.imm[names.index(arg)]))
        return None

    def builtin(self, text: str, inst: Inst, locs, nxt, regs, env) -> list[str] | None:
        m = _LI.match(text)
        if m:
            reg, imm = m.group(1), m.group(2)
            reg = reg_name(regs[reg]) if reg in regs else reg
            return load_imm(reg, int(env[imm]))
        m = _LIT.match(text)
        if m:
            kind, width, reg, imm = m.group(1), int(m.group(2)), m.group(3), m.group(4)
            reg = reg_name(regs[reg], width) if reg in regs else reg
            bits = int(env[imm]) & ((1 << width) - 1)
            if kind == "lit":
                return self.literal(reg, bits, width)
            return self.float_constant(reg, bits, width)
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
          test_range: int | None = None, literals: dict[str, tuple[int, int]] | None = None,
          literal_range: int | None = None) -> int:
    """Rewrite branches and literal loads whose label is out of reach; return how many.

    ``b.cc L`` becomes ``b.!cc skip; b L; skip:`` (cbz <-> cbnz, tbz <-> tbnz
    likewise); the three lines share the original's ``info`` wasm offset and
    its ``notes`` entry.  Preserves semantics: the pair branches to L exactly when the
    original did and falls through otherwise.  A literal load ``ldr sN/dN,
    .Lp..`` whose constant (``literals``: label -> (bits, width), laid out after
    the last line by ``pool_layout``) is too far becomes movz/movk + fmov of the
    same bits, through x16 (template scratch, free wherever a template loads a
    literal: the ``fconst`` ops' whole template, the conversions' bounds).
    Each rewrite moves later code (and the pool) by 4 bytes or more, which can
    push other branches and loads out of range, so it repeats until nothing
    changes (it terminates: each line is rewritten at most once, and the
    unconditional b reaches +-128 MiB).
    """
    cond_range = COND_RANGE if cond_range is None else cond_range
    test_range = TEST_RANGE if test_range is None else test_range
    literal_range = LITERAL_RANGE if literal_range is None else literal_range
    literals = literals or {}
    total = 0
    while True:
        pos: dict[str, int] = {}
        at = 0
        offsets = []
        loads = {}
        for i, (text, (kind, _p, _l)) in enumerate(zip(out.lines, out.info)):
            offsets.append(at)
            if kind == "label":
                pos[text[:-1]] = at
            else:
                at += 4
                m = _LIT_LOAD.match(text) if literals else None
                if m and m.group(2) in literals:
                    loads[i] = m
        pos.update(pool_layout(at, literals, {m.group(2) for m in loads.values()})[1])
        todo = []
        for i, text in enumerate(out.lines):
            if i in loads:
                if not 0 <= pos[loads[i].group(2)] - offsets[i] < literal_range:
                    todo.append(i)
                continue
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
            if i in loads:
                reg, label = loads[i].groups()
                new = literal_route(reg, literals[label][0])
                out.lines[i:i + 1] = new
                out.info[i:i + 1] = [(kind, payload, loc)] * len(new)
                if out.notes is not None:
                    out.notes[i:i + 1] = [out.notes[i]] * len(new)
                total += 1
                continue
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

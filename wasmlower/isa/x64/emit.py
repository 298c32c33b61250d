"""Render an allocated x86-64 function as assembly text for keystone.

Each machine instruction's template is filled in with the locations the
allocator gave its operands; moves the allocator asked for are rendered
around it; trap sites branch to out-of-line stubs at the end of the
function.  Every rendered line is one machine instruction or one label, so
the n-th instruction line is the n-th instruction keystone encodes — the
emitter relies on that to recover offsets (``emit.assemble.boundaries``).

Frame (docs/ABI.md): ``[rbp-8]`` saved r15, then the callee-saved registers
the allocation uses, then spill slots; outgoing stack arguments at
``[rsp+8k]``; incoming stack parameters at ``[rbp+16+8k]``.  rsp stays
16-byte aligned at calls.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ...errors import CodegenError
from ...ir.function import Function, Inst
from ...ir.ops import TRAP_CODES
from .regs import reg_name

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][\w]*)(?::([\w]+))?\}")


@dataclass
class Rendered:
    """The assembly of one function and what each line came from."""
    lines: list[str] = field(default_factory=list)
    # per line: (kind, payload, wasm offset); kind "inst", "label", "call" (payload:
    # callee index) or "trap" (payload: trap kind)
    info: list[tuple[str, object, int | None]] = field(default_factory=list)


class FrameLayout:
    def __init__(self, alloc, saved: list[int]) -> None:
        self.saved = saved
        self.spill_base = 16 + 8 * len(saved)       # slot s at [rbp - spill_base - 8s]
        self.outgoing = alloc.max_outgoing_args
        size = 8 * len(saved) + 8 * alloc.num_spill_slots + 8 * self.outgoing
        size += (8 - size) % 16                      # push rbp; push r15; sub -> aligned
        self.size = size

    def slot(self, s: int) -> str:
        return f"qword ptr [rbp-{self.spill_base + 8 * s}]"


class Emitter:
    def __init__(self, func: Function, alloc, constraints, module_info) -> None:
        from ...regalloc import constraints as rc
        self.rc = rc
        self.func = func
        self.alloc = alloc
        self.constraints = constraints
        self.info = module_info          # num_imported_funcs, libcall slot by name
        saved = sorted(alloc.used_callee_saved)
        self.frame = FrameLayout(alloc, saved)
        self.out = Rendered()
        self.stubs: list[tuple[str, str, int | None]] = []   # (label, trap kind, loc)
        self.nlabel = 0
        self.loc: int | None = None
        # (slot loc, register) of a spill store that is the last line emitted
        self.stored: tuple[int, int] | None = None
        # Labels carry the function index, so many functions can share one
        # keystone call (emit.assemble) without their labels colliding.
        self.tag = f"{func.meta.get('wasm_index', 0)}_"

    # -- output helpers ----------------------------------------------------
    def line(self, text: str, kind: str = "inst", payload: object = None) -> None:
        self.out.lines.append(text)
        self.out.info.append((kind, payload, self.loc))
        self.stored = None

    def label(self, name: str) -> None:
        self.line(f"{name}:", "label", name)

    def fresh(self) -> str:
        self.nlabel += 1
        return f".Ll{self.tag}{self.nlabel}"

    def trap_label(self, kind: str) -> str:
        label = f".Lt{self.tag}{len(self.stubs)}"
        self.stubs.append((label, kind, self.loc))
        return label

    # -- locations ---------------------------------------------------------
    def operand(self, loc: int, width: int = 64) -> str:
        if loc >= 0:
            return reg_name(loc, width)
        return self.mem(loc)

    def mem(self, loc: int) -> str:
        kind, n = self.rc.decode_stack_loc(loc)
        if kind == "spill":
            return self.frame.slot(n)
        if kind == "arg":
            return f"qword ptr [rsp+{8 * n}]"
        return f"qword ptr [rbp+{16 + 8 * n}]"           # incoming parameter

    def move(self, src: int, dst: int, cls: int) -> None:
        if src == dst:
            return
        if src >= 0 and dst >= 0:
            if src >= 16 or dst >= 16:
                if src >= 16 and dst >= 16:
                    self.line(f"movaps {reg_name(dst)}, {reg_name(src)}")
                else:
                    self.line(f"movq {reg_name(dst)}, {reg_name(src)}")
            else:
                self.line(f"mov {reg_name(dst)}, {reg_name(src)}")
        elif src >= 0:
            op = "movsd" if src >= 16 else "mov"
            self.line(f"{op} {self.mem(dst)}, {reg_name(src)}")
            self.stored = (dst, src)
        elif dst >= 0:
            if self.stored is not None and self.stored[0] == src:
                # The slot was written from a register by the line just before
                # (no label in between, so no other path reaches here): that
                # register still holds the value.
                self.move(self.stored[1], dst, cls)
                return
            op = "movsd" if dst >= 16 else "mov"
            self.line(f"{op} {reg_name(dst)}, {self.mem(src)}")
        else:
            raise CodegenError("stack-to-stack move reached the emitter")

    def moves(self, moves) -> None:
        for src, dst, cls in moves or ():
            self.move(src, dst, cls)

    # -- the function --------------------------------------------------------
    def run(self) -> Rendered:
        f = self.func
        order = getattr(self.alloc, "order", None) or f.blocks
        self.label(f"func_{f.meta.get('wasm_index', 0)}")
        self.prologue()
        for i, b in enumerate(order):
            nxt = order[i + 1] if i + 1 < len(order) else None
            self.label(f".Lb{self.tag}{b.id}")
            for inst in b.insts:
                self.loc = inst.loc
                self.moves(self.alloc.before.get(inst))
                if inst.op == "jump":
                    self.moves(self.alloc.edge_moves.get(b))
                    if inst.targets[0].block is not nxt:
                        self.line(f"jmp .Lb{self.tag}{inst.targets[0].block.id}")
                    continue
                self.render(inst, nxt)
                self.moves(self.alloc.after.get(inst))
        for label, kind, loc in self.stubs:
            self.loc = loc
            self.line(label + ":", "label", label)
            if kind != "pending":
                self.line(f"mov esi, {TRAP_CODES[kind]}")
            self.line("call qword ptr [r15+56]", "trap", kind)
        return self.out

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

    # -- one instruction -------------------------------------------------------
    def render(self, inst: Inst, nxt) -> None:
        decl = inst.info.decl
        if decl is None:
            raise CodegenError(f"no machine op for `{inst!r}` reached the emitter")
        locs = self.alloc.operand_locs.get(inst, ())
        env: dict[str, str | int] = {}
        widths: dict[str, int] = {}
        if not (decl.variadic or decl.variadic_results):
            names = [o.name for o in decl.operands]
            names += ["out" if len(decl.results) == 1 else f"out{i}"
                      for i in range(len(decl.results))]
            names += [t.name for t in decl.temps]
            for name, loc in zip(names, locs):
                widths[name] = loc
        for d, v in zip(decl.imms, inst.imm):
            env[d.name] = v
        labels: dict[str, str] = {}
        text = decl.template
        lines: list[str] = []
        for raw in text.split("\n"):
            special = self.builtin(raw.strip(), inst, locs, nxt)
            if special is not None:
                lines.extend(special)
                continue

            def sub(m: re.Match) -> str:
                name, arg = m.group(1), m.group(2)
                if name in widths:
                    return self.operand(widths[name], int(arg) if arg else 64)
                if name == "trap":
                    kind = env.get(arg, arg)
                    return self.trap_label(str(kind))
                if name in env:
                    return str(env[name])
                if name.startswith("L"):
                    if name not in labels:
                        labels[name] = self.fresh()
                    return labels[name]
                if name == "then":
                    return f".Lb{self.tag}{inst.targets[0].block.id}"
                if name == "else":
                    return f".Lb{self.tag}{inst.targets[1].block.id}"
                if name == "callee":
                    return f"func_{inst.imm[0]}"
                if name == "slot":
                    return str(8 * self.info.libcall_slot(inst.imm[0]))
                raise CodegenError(f"template of {inst.op} has unknown placeholder {{{name}}}")
            lines.append(_PLACEHOLDER.sub(sub, raw))
        # Fall through instead of jumping to the next block.
        if (decl.branch and lines and nxt is not None and len(inst.targets) == 2
                and lines[-1] == f"jmp .Lb{self.tag}{nxt.id}"):
            lines.pop()
        for ln in lines:
            if ln.endswith(":"):
                self.label(ln[:-1])
            elif ln.startswith("call func_"):
                self.line(ln, "call", int(ln[len("call func_"):]))
            else:
                self.line(ln)

    def builtin(self, text: str, inst: Inst, locs, nxt) -> list[str] | None:
        if text == "{nothing}":
            return []
        if text == "{epilogue}":
            return self.epilogue()
        if text == "{targets}":
            idx = reg_name(locs[0], 32)
            *table, default = inst.targets
            out = []
            for k, t in enumerate(table):
                out += [f"cmp {idx}, {k}", f"je .Lb{self.tag}{t.block.id}"]
            if default.block is not nxt:
                out.append(f"jmp .Lb{self.tag}{default.block.id}")
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
        return None


def render_function(func: Function, alloc, constraints, module_info) -> Rendered:
    return Emitter(func, alloc, constraints, module_info).run()

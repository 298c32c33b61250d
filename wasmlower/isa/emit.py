"""Render an allocated function as assembly text: the part every ISA shares.

Problem.  After register allocation each machine instruction's template
(``ops.rules``) is filled in with the locations its operands were given, the
allocator's moves are rendered around it, blocks get labels, jumps to the
next block are dropped, and trap sites branch to out-of-line stubs at the
end of the function.  Only the instruction text differs between ISAs.

Mechanism.  ``Emitter`` walks the blocks in layout order and renders
templates: placeholders ``{a}``/``{a:32}`` (operands and results),
immediates, ``{L}``/``{L1}`` (local labels), ``{then}``/``{else}``,
``{trap:CODE}``, ``{slot}`` (a libcall's slot), and whole-line builtins
(``{nothing}``, ``{epilogue}``, plus the ISA's own).  An ISA's emitter
subclasses it and supplies the instruction text: ``FrameLayout`` (where
spill slots are), ``prologue``, ``epilogue``, the moves (``copy``, ``load``,
``store``), ``operand``, ``JUMP``, ``trap_stub`` and its extra builtins and
placeholders (``builtin``, ``placeholder``).

Invariants of ``Rendered``: ``lines[i]`` is one machine instruction or one
label (``NAME:``) (or, on AArch64, one 4-byte data word of a literal pool,
kind ``data``, emitted only when ``boundaries`` steps over such words as one
unit each: ``isa.aarch64.emit.data_in_code``), ``info[i]``
says what it came from, and ``notes[i]`` (if kept) is the caller's note on
it.  So the n-th non-label line is the n-th instruction the assembler
encodes; the pipeline (``pipeline._place``) and ``explain`` rely on that to
recover offsets.
Labels carry the function index (``tag``), so many functions can share one
assembler call without their labels colliding.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from wasmlower.errors import CodegenError
from wasmlower.ir.function import Function, Inst

# {name}, {name:arg} or {name:arg:arg2} (AArch64's {li:REG:IMM}).
PLACEHOLDER = re.compile(r"\{([A-Za-z_][\w]*)(?::([\w]+))?(?::([\w]+))?\}")


@dataclass
class Rendered:
    """The assembly of one function and what each line came from."""
    lines: list[str] = field(default_factory=list)
    # per line: (kind, payload, wasm offset); kind "inst", "label", "call" (payload:
    # callee index), "trap" (payload: trap kind) or "data" (a literal-pool word)
    info: list[tuple[str, object, int | None]] = field(default_factory=list)
    # per line, if not None: what a caller attaches (explain: where the line came
    # from); every rewrite of ``lines`` (AArch64's ``relax``) keeps it parallel
    notes: list | None = None


class Emitter(ABC):
    """Renders one allocated function; an ISA subclass supplies the instruction text."""

    FrameLayout: type                   # (alloc, saved callee-saved regs); .slot(s) -> (base, off)
    SP: str                             # the stack pointer: outgoing arguments at [SP+8k]
    FP: str                             # the frame pointer: incoming ones at [FP+16+8k]
    JUMP: str                           # the mnemonic of an unconditional jump
    STACK_OPERANDS = True               # templates may address a stack slot ({a} on any(...))

    def __init__(self, func: Function, alloc, constraints, module_info) -> None:
        from wasmlower.regalloc import constraints as rc
        self.rc = rc
        self.func = func
        self.alloc = alloc
        self.constraints = constraints
        self.info = module_info          # num_imported_funcs, libcall slot by name
        self.frame = self.FrameLayout(alloc, sorted(alloc.used_callee_saved))
        self.out = Rendered()
        self.stubs: list[tuple[str, str, int | None]] = []   # (label, trap kind, loc)
        self.nlabel = 0
        self.loc: int | None = None
        self.tag = f"{func.meta.get('wasm_index', 0)}_"

    # -- output helpers ----------------------------------------------------
    def line(self, text: str, kind: str = "inst", payload: object = None) -> None:
        self.out.lines.append(text)
        self.out.info.append((kind, payload, self.loc))

    def label(self, name: str) -> None:
        self.line(f"{name}:", "label", name)

    def fresh(self) -> str:
        self.nlabel += 1
        return f".Ll{self.tag}{self.nlabel}"

    def block_label(self, block) -> str:
        return f".Lb{self.tag}{block.id}"

    def trap_label(self, kind: str) -> str:
        label = f".Lt{self.tag}{len(self.stubs)}"
        self.stubs.append((label, kind, self.loc))
        return label

    def jump(self, label: str) -> str:
        return f"{self.JUMP} {label}"

    # -- locations and moves -------------------------------------------------
    def stack_addr(self, loc: int) -> tuple[str, int]:
        """``(base register, offset)`` of the stack location ``loc`` (< 0)."""
        kind, n = self.rc.decode_stack_loc(loc)
        if kind == "spill":
            return self.frame.slot(n)
        if kind == "arg":
            return self.SP, 8 * n                    # outgoing argument
        return self.FP, 16 + 8 * n                   # incoming: above saved fp, return address

    def moves(self, moves) -> None:
        for src, dst, cls in moves or ():
            self.move(src, dst, cls)

    def move(self, src: int, dst: int, cls: int) -> None:
        """Render one allocator move (locations: registers >= 0, stack < 0)."""
        if src == dst:
            return
        if src >= 0 and dst >= 0:
            self.copy(dst, src)
        elif src >= 0:
            self.store(src, dst)
        elif dst >= 0:
            self.load(dst, src)
        else:
            raise CodegenError("stack-to-stack move reached the emitter")

    # -- what an ISA supplies ----------------------------------------------
    @abstractmethod
    def prologue(self) -> None:
        ...

    @abstractmethod
    def epilogue(self) -> list[str]:
        ...

    @abstractmethod
    def copy(self, dst: int, src: int) -> None:
        """Register to register (either may be a float register)."""
        ...

    @abstractmethod
    def store(self, src: int, loc: int) -> None:
        """Register ``src`` to stack location ``loc``."""
        ...

    @abstractmethod
    def load(self, dst: int, loc: int) -> None:
        """Stack location ``loc`` to register ``dst``."""
        ...

    @abstractmethod
    def operand(self, loc: int, width: int = 64) -> str:
        """The text of an operand at ``loc`` (a register or stack location) at ``width`` bits."""
        ...

    @abstractmethod
    def trap_stub(self, kind: str) -> None:
        """The lines after a trap stub's label: call the trap routine with ``kind``."""
        ...

    def placeholder(self, name: str, arg: str | None, inst: Inst) -> str | None:
        """An ISA's own ``{name}``/``{name:arg}`` placeholder, or None if unknown."""
        return None

    def finish(self) -> None:
        """Called once the whole function is rendered (AArch64 relaxes branches here)."""

    # -- the function --------------------------------------------------------
    def run(self) -> Rendered:
        f = self.func
        order = getattr(self.alloc, "order", None) or f.blocks
        self.label(f"func_{f.meta.get('wasm_index', 0)}")
        self.prologue()
        for i, b in enumerate(order):
            nxt = order[i + 1] if i + 1 < len(order) else None
            self.label(self.block_label(b))
            for inst in b.insts:
                self.loc = inst.loc
                self.moves(self.alloc.before.get(inst))
                if inst.op == "jump":
                    self.moves(self.alloc.edge_moves.get(b))
                    if inst.targets[0].block is not nxt:
                        self.line(self.jump(self.block_label(inst.targets[0].block)))
                    continue
                self.render(inst, nxt)
                self.moves(self.alloc.after.get(inst))
        for label, kind, loc in self.stubs:
            self.loc = loc
            self.line(label + ":", "label", label)
            self.trap_stub(kind)
        self.finish()
        return self.out

    # -- one instruction -------------------------------------------------------
    def render(self, inst: Inst, nxt) -> None:
        decl = inst.info.decl
        if decl is None:
            raise CodegenError(f"no machine op for `{inst!r}` reached the emitter")
        locs = self.alloc.operand_locs.get(inst, ())
        regs: dict[str, int] = {}          # operand, result and temp name -> location
        if not (decl.variadic or decl.variadic_results):
            names = [o.name for o in decl.operands]
            names += ["out" if len(decl.results) == 1 else f"out{i}"
                      for i in range(len(decl.results))]
            names += [t.name for t in decl.temps]
            for name, loc in zip(names, locs):
                if loc < 0 and not self.STACK_OPERANDS:
                    raise CodegenError(f"{inst.op}: operand {name} was not given a register")
                regs[name] = loc
        env: dict[str, str | int] = {d.name: v for d, v in zip(decl.imms, inst.imm)}
        labels: dict[str, str] = {}
        lines: list[str] = []
        for raw in decl.template.split("\n"):
            special = self.builtin(raw.strip(), inst, locs, nxt, regs, env)
            if special is not None:
                lines.extend(special)
                continue

            def sub(m: re.Match) -> str:
                name, arg = m.group(1), m.group(2)
                if name in regs:
                    return self.operand(regs[name], int(arg) if arg else 64)
                if name == "trap":
                    return self.trap_label(str(env.get(arg, arg)))
                if name in env:
                    return str(env[name])
                if name.startswith("L"):
                    if name not in labels:
                        labels[name] = self.fresh()
                    return labels[name]
                if name == "then":
                    return self.block_label(inst.targets[0].block)
                if name == "else":
                    return self.block_label(inst.targets[1].block)
                if name == "slot":
                    return str(8 * self.info.libcall_slot(inst.imm[0]))
                text = self.placeholder(name, arg, inst)
                if text is None:
                    raise CodegenError(
                        f"template of {inst.op} has unknown placeholder {{{name}}}")
                return text
            lines.append(PLACEHOLDER.sub(sub, raw))
        # Fall through instead of jumping to the next block.  Preserves
        # semantics: a jump to the very next instruction is a no-op.  (Not in a
        # jump table, whose entries must all be there.)
        if (decl.branch and decl.name != "br_table" and lines and nxt is not None
                and len(inst.targets) == 2 and lines[-1] == self.jump(self.block_label(nxt))):
            lines.pop()
        for ln in lines:
            if ln.endswith(":"):
                self.label(ln[:-1])
            else:
                self.template_line(ln)

    def template_line(self, text: str) -> None:
        """Emit one rendered template line (x64 marks direct calls here)."""
        self.line(text)

    def builtin(self, text: str, inst: Inst, locs, nxt, regs: dict[str, int],
                env: dict[str, str | int]) -> list[str] | None:
        """The lines a whole-line placeholder expands to, or None for an ordinary line.

        ``regs``/``env`` are the instruction's operand locations and immediates
        by name.  ISAs extend this with their own (``{targets}``, ...).
        """
        if text == "{nothing}":
            return []
        if text == "{epilogue}":
            return self.epilogue()
        return None

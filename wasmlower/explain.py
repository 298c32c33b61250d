"""`wasmlower explain`: one function through every stage, and where each instruction came from.

Problem.  A rule author who sees a bad instruction in the output needs to know
which rule produced it, from which IR instruction and which wasm operator.  The
pipeline keeps that information in pieces: ``Inst.loc`` (the wasm offset),
``Inst.rule`` (the rule's ``file:line``), the allocator's moves and the
emitter's rendered lines.

Mechanism.  ``explain`` runs the pipeline's stage functions itself
(``pipeline.decode``, ``translate``, ``optimize``, ``lower``, ``allocate``)
on one function and prints the IR after each.  ``compile_lowered`` renders the
allocated function with a subclass of the target's emitter (x86-64 or
AArch64, ``isa/<isa>/emit.py``) that records, for every rendered line, what
it came from: the prologue, a machine op (whose ``rule`` and ``loc`` the IR
carries), a register-allocator move, a block-layout jump or an out-of-line
trap stub.  The records are the ``notes`` of the emitter's ``Rendered``, which
every rewrite of the lines keeps parallel to them (AArch64's branch
relaxation turns one branch into three lines, all noted as the original).
The rendered lines are then matched one to one with the instructions
keystone encoded (the emitter's invariant, also used by ``pipeline._place``:
every non-label line is exactly one instruction), and capstone disassembles
each in the target's mode.

Invariant of ``MachineCode.insts``: the i-th entry is the i-th encoded
instruction; ``offset``/``size`` come from capstone's decoding of the bytes,
``origin`` and ``inst`` from the emitter line it was rendered from.

``trace_rules`` counts rule firings over a corpus, for researchers comparing
rule sets.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from .errors import CodegenError, CompileError
from .ir.function import Function, Inst
from .ir.text import format_function, format_inst

__all__ = ["MachineCode", "MachineInst", "compile_lowered", "explain", "format_operator",
           "trace_rules"]


# ---------------------------------------------------------------------------
# Machine code with provenance
# ---------------------------------------------------------------------------

@dataclass
class MachineInst:
    """One encoded instruction and what produced it."""
    offset: int                 # from the start of the function's code
    size: int
    data: bytes
    asm: str                    # capstone's disassembly
    text: str                   # the line the emitter rendered
    kind: str                   # "inst", "call" (payload: callee index) or "trap" (payload: kind)
    payload: object
    loc: int | None             # wasm byte offset
    origin: str                 # "prologue", "inst", "move", "jump" or "stub"
    inst: Inst | None = None    # the machine op ("inst"), or the op a move sits next to
    detail: str = ""            # moves: "before", "after" or "edge"; stubs: the trap kind

    @property
    def rule(self) -> str | None:
        return self.inst.rule if self.inst is not None and self.origin == "inst" else None


@dataclass
class MachineCode:
    """An allocated, rendered and encoded function."""
    func: Function
    alloc: object
    lines: list[str]                          # the assembly given to keystone
    code: bytes
    insts: list[MachineInst]
    labels: dict[int, list[str]] = field(default_factory=dict)   # offset -> labels bound there
    traps: list[tuple[int, str]] = field(default_factory=list)   # (offset after the call, kind)
    calls: list[tuple[int, int]] = field(default_factory=list)   # (offset of the rel32, callee)


class _DefaultInfo:
    """Module facts the emitter asks for, for a function compiled without a module."""

    num_imported_funcs = 0

    def libcall_slot(self, name: str) -> int:
        from .wasm.translate import LIBCALLS
        return list(LIBCALLS).index(name)


def _tracing_emitter(func: Function, alloc, constraints, info, target: str = "x86_64"):
    """The target's ``Emitter``, recording the origin of every rendered line in ``out.notes``."""
    from .pipeline import _backend

    class TracingEmitter(_backend(target, "emit").Emitter):
        def __init__(self) -> None:
            super().__init__(func, alloc, constraints, info)
            self.out.notes = []         # per line: (origin, inst, detail)
            self.owner: tuple[str, Inst | None, str] = ("prologue", None, "")
            # Move lists are identified by object: the emitter is handed the very
            # lists stored in the allocation.
            self.move_owner: dict[int, tuple[Inst | None, str]] = {}
            for role, table in (("before", alloc.before), ("after", alloc.after)):
                for inst, mv in table.items():
                    self.move_owner[id(mv)] = (inst, role)
            for block, mv in alloc.edge_moves.items():
                self.move_owner[id(mv)] = (block.insts[-1] if block.insts else None, "edge")

        def line(self, text: str, kind: str = "inst", payload: object = None) -> None:
            owner = self.owner
            stub = next((s for s in self.stubs if s[0] == payload), None) \
                if kind == "label" else None
            if stub is not None:
                owner = self.owner = ("stub", None, str(stub[1]))
            elif owner[0] == "body":
                # A line rendered by the block loop itself: a layout jump.
                owner = ("jump", None, "")
            super().line(text, kind, payload)
            self.out.notes.append(owner)

        def prologue(self) -> None:
            self.owner = ("prologue", None, "")
            super().prologue()
            self.owner = ("body", None, "")

        def moves(self, moves) -> None:
            if not moves:
                return
            saved = self.owner
            inst, role = self.move_owner.get(id(moves), (None, ""))
            self.owner = ("move", inst, role)
            super().moves(moves)
            self.owner = saved

        def render(self, inst: Inst, nxt) -> None:
            self.owner = ("inst", inst, "")
            super().render(inst, nxt)
            self.owner = ("body", None, "")

    return TracingEmitter()


def compile_lowered(func: Function, module_info=None, *, stress: bool = False,
                    check: bool = False, target: str = "x86_64") -> MachineCode:
    """Allocate, render and assemble a lowered function; keep each instruction's origin.

    ``func`` must have been through ``pipeline.lower`` for ``target`` (or
    ``lower_function`` plus the ``<isa>.params`` pseudo-op).  ``module_info``
    answers the emitter's questions about the module (libcall slots); without
    one, the translator's libcall table is used.
    """
    from . import pipeline
    from .emit.assemble import assemble, boundaries, disassemble

    arch = pipeline._arch(target)
    alloc, constraints = pipeline.allocate(func, target, stress=stress, check=check)
    em = _tracing_emitter(func, alloc, constraints, module_info or _DefaultInfo(), target)
    rendered = em.run()
    code = assemble("\n".join(rendered.lines), arch)
    bounds = boundaries(code, arch)
    asm = disassemble(code, arch)
    # The field a call's relocation patches: x86-64's rel32 after the opcode
    # byte, AArch64's whole bl (as pipeline._place).
    call_field = 0 if arch == "aarch64" else 1
    out = MachineCode(func, alloc, list(rendered.lines), code, [])
    k = 0
    pending_labels: list[str] = []
    for (kind, payload, loc), text, (origin, inst, detail) in zip(
            rendered.info, rendered.lines, rendered.notes):
        if kind == "label":
            pending_labels.append(str(payload))
            continue
        if k >= len(bounds):
            raise CodegenError(f"{func.name}: fewer instructions encoded than rendered")
        off, size = bounds[k]
        if pending_labels:
            out.labels.setdefault(off, []).extend(pending_labels)
            pending_labels = []
        out.insts.append(MachineInst(off, size, code[off:off + size], asm[k][1], text, kind,
                                     payload, loc, origin, inst, detail))
        if kind == "call":
            out.calls.append((off + call_field, int(payload)))   # type: ignore[call-overload]
        elif kind == "trap":
            out.traps.append((off + size, str(payload)))
        k += 1
    if k != len(bounds):
        raise CodegenError(f"{func.name}: {len(bounds)} instructions encoded, {k} rendered")
    if pending_labels:
        out.labels.setdefault(len(code), []).extend(pending_labels)
    return out


# ---------------------------------------------------------------------------
# Wasm operators
# ---------------------------------------------------------------------------

def format_operator(op: str, imm: object) -> str:
    """A wasm operator and its immediates, as in the text format."""
    from .wasm.module import ValType

    if imm is None:
        return op
    if op in ("block", "loop", "if"):
        if isinstance(imm, ValType):
            return f"{op} (result {imm})"
        return f"{op} (type {imm})"
    if op == "br_table":
        depths, default = imm                                  # type: ignore[misc]
        return " ".join([op, *map(str, depths), str(default)])
    if op in ("f32.const", "f64.const"):
        import struct
        fmt = "<I" if op == "f32.const" else "<Q"
        value = struct.unpack("<f" if op == "f32.const" else "<d",
                              struct.pack(fmt, imm))[0]         # type: ignore[arg-type]
        return f"{op} {value!r} (bits {imm:#x})"
    if op == "call_indirect":
        ty, table = imm                                        # type: ignore[misc]
        return f"{op} {table} (type {ty})"
    if op == "select" and isinstance(imm, tuple):
        return f"select (result {' '.join(map(str, imm))})"
    if isinstance(imm, tuple) and (".load" in op or ".store" in op):
        align, offset = imm[0], imm[1]
        parts = [op] + ([f"offset={offset}"] if offset else []) + [f"align={1 << align}"]
        return " ".join(parts)
    if isinstance(imm, ValType):
        return f"{op} {imm}"
    if isinstance(imm, tuple):
        return " ".join([op, *map(str, imm)])
    return f"{op} {imm}"


def _operator_lines(body) -> list[str]:
    lines = []
    depth = 1
    for ins in body:
        if ins.op in ("end", "else"):
            depth = max(depth - 1, 0)
        lines.append(f"  {ins.offset:#06x}  {'  ' * depth}{format_operator(ins.op, ins.imm)}")
        if ins.op in ("block", "loop", "if", "else"):
            depth += 1
    return lines


# ---------------------------------------------------------------------------
# explain
# ---------------------------------------------------------------------------

_ISAS = ("x64", "aarch64")


def _isa_for(target: str) -> str:
    from .pipeline import _isa_name
    isa = _isa_name(target)
    if isa not in _ISAS:
        raise CompileError(f"explain supports the x86_64 and aarch64 targets, not {target!r}")
    return isa


def _check_index(module, func: int) -> int:
    """The defined-function index of function-space index ``func``, or a clear error."""
    nimp = module.num_imported_funcs
    total = module.num_funcs
    if not 0 <= func < total:
        defined = f"{nimp}..{total - 1}" if total > nimp else "none"
        raise CompileError(f"function index {func} is out of range: the module has {total} "
                           f"function(s), {nimp} imported and {total - nimp} defined "
                           f"(defined function indices: {defined})")
    if func < nimp:
        imp = [i for i in module.imports if i.kind == "func"][func]
        defined = f"{nimp}..{total - 1}" if total > nimp else "none"
        raise CompileError(f"function {func} is the import {imp.module}.{imp.name}: it has no "
                           f"code to explain (defined function indices: {defined})")
    return func - nimp


def _title(text: str) -> str:
    return f"\n-- {text} " + "-" * max(0, 74 - len(text))


def _rule_sources(isa) -> dict[str, str]:
    out = {}
    for r in isa.rules:
        guard = f" if {r.ast.guard_text}" if r.ast.guard_text else ""
        mods = (f"prio {r.prio} " if r.prio else "") + ("commutative " if r.ast.commutative
                                                        else "")
        out[r.label] = f"{mods}{r.ast.pattern_text}{guard} => {r.ast.rhs_text}"
    return out


def _origin_text(mi: MachineInst) -> str:
    if mi.origin == "inst" and mi.inst is not None:
        return f"{mi.inst.op}  {mi.inst.rule or '(no rule)'}"
    if mi.origin == "move":
        near = f" {mi.detail} {mi.inst.op}" if mi.inst is not None else ""
        return f"regalloc move{near}"
    if mi.origin == "stub":
        return f"trap stub ({mi.detail})"
    if mi.origin == "jump":
        return "block layout jump"
    return mi.origin


def _group_header(mi: MachineInst, operators: dict[int, str]) -> str:
    if mi.origin == "inst" and mi.inst is not None:
        head = format_inst(mi.inst)
    elif mi.origin == "move" and mi.inst is not None:
        where = {"before": "before", "after": "after", "edge": "on the edge of"}.get(
            mi.detail, "for")
        head = f"regalloc moves {where}: {format_inst(mi.inst)}"
    elif mi.origin == "move":
        head = "moves"
    else:
        head = {"prologue": "prologue: frame, stack-limit check, callee-saved registers",
                "stub": f"out-of-line trap stub: {mi.detail}",
                "jump": "jump to the next block in layout"}.get(mi.origin, mi.origin)
    if mi.loc is not None:
        head += f"    <- wasm {mi.loc:#x} {operators.get(mi.loc, '')}".rstrip()
    return head


def explain(wasm: bytes, func: int, target: str = "x86_64", opt_level: int = 1) -> str:
    """Function ``func`` (function index space) through every stage, as text.

    Sections: the wasm operators (offset, mnemonic, immediates); the IR after
    translation, after the mid-end, after lowering (each machine op with the
    rule that produced it) and after register allocation; the rules that
    fired; the machine code disassembled with capstone, every instruction
    tagged with the machine op and rule it came from and its wasm offset.
    """
    from . import pipeline
    from .lower.driver import rule_counts
    from .lower.isa import load_isa
    from .regalloc import format_allocation

    isa_name = _isa_for(target)
    regfile = pipeline._backend(target, "regs").regfile
    module = pipeline.decode(wasm)
    index = _check_index(module, func)
    body = module.codes[index]
    ftype = module.func_type(func)
    name = module.func_names.get(func)
    exports = [e.name for e in module.exports if e.kind == "func" and e.index == func]
    operators = {ins.offset: ins.op for ins in body.body}

    out = [f"function {func}" + (f" ({name})" if name else "") + f": {ftype}"
           + (f", exported as {', '.join(map(repr, exports))}" if exports else "")
           + f"; {len(body.locals)} local(s); target {target}, -O{opt_level}"]

    out.append(_title("wasm operators (byte offset, operator)"))
    out += _operator_lines(body.body)

    ir = pipeline.translate(module, index)
    out.append(_title("IR after translate"))
    out.append(format_function(ir))

    pipeline.optimize(ir, module, opt_level)
    out.append(_title(f"IR after optimize (-O{opt_level})"))
    out.append(format_function(ir))

    trace: list = []
    pipeline.lower(ir, target, trace)
    out.append(_title("IR after lower (the rule of each machine op)"))
    out.append(format_function(ir, rules=True))

    isa = load_isa(isa_name)
    sources = _rule_sources(isa)
    counts = rule_counts(trace)
    kept = Counter(i.rule for _, i in ir.insts() if i.rule)
    out.append(_title("rules fired (times fired, machine ops kept, rule)"))
    for label, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        note = "  (all folded into users or dead)" if not kept[label] else ""
        out.append(f"  {n:3} {kept[label]:3}  {label}{note}")
        if label in sources:
            out.append(f"             {sources[label]}")

    mc = compile_lowered(ir, pipeline.ModuleInfo(module), target=target)
    out.append(_title("IR after register allocation (operand locations, moves)"))
    out.append(format_allocation(ir, mc.alloc, regfile()))

    out.append(_title(f"machine code ({len(mc.code)} bytes, {len(mc.insts)} instructions)"))
    out.append(f"  {'offset':<8}{'bytes':<24}{'instruction':<36}{'wasm':<8}origin")
    last = None
    for mi in mc.insts:
        for label in mc.labels.get(mi.offset, ()):
            out.append(f"  {label}:")
        key = (mi.origin, id(mi.inst), mi.detail)
        if key != last:
            out.append(f"  ; {_group_header(mi, operators)}")
            last = key
        hexbytes = mi.data.hex(" ")
        if len(hexbytes) > 22:
            hexbytes = hexbytes[:20] + ".."
        asm = mi.asm
        if mi.kind == "call":
            asm += f"  ; func {mi.payload}"
        wasm_at = f"{mi.loc:#x}" if mi.loc is not None else "-"
        out.append(f"  {mi.offset:#06x}  {hexbytes:<24}{asm:<36}{wasm_at:<8}"
                   f"{_origin_text(mi)}")
    for label in mc.labels.get(len(mc.code), ()):
        out.append(f"  {label}:")
    return "\n".join(out)


# ---------------------------------------------------------------------------
# Rule statistics over a corpus
# ---------------------------------------------------------------------------

def trace_rules(wasm_modules: Iterable[bytes], target: str = "x86_64",
                opt_level: int = 1) -> Counter[str]:
    """How often each lowering rule fired compiling every module of ``wasm_modules``.

    Each module goes through ``pipeline.compile_module`` with a lowering
    trace (``Options(trace=...)``), so the counts are those of a real compile.
    """
    from .lower.driver import rule_counts
    from .pipeline import Options, compile_module

    total: Counter[str] = Counter()
    for wasm in wasm_modules:
        trace: list = []
        compile_module(bytes(wasm), Options(target=target, opt_level=opt_level, trace=trace))
        total.update(rule_counts(trace))
    return total

"""The allocation checker: symbolic execution of an allocated function.

Abstract state: which vreg each location (register, spill slot, stack
argument or parameter slot) holds, as ``dict[loc, Value]``; a location
missing from the dict holds nothing usable.  The checker runs a forward
dataflow over the CFG:

* each move copies its source's vreg to its destination (or clears it);
* at an instruction, after its "before" moves, every use must find its vreg
  in its location; then temps and clobbered registers lose their contents,
  and each def writes its location (and is removed from every other
  location: in a loop, a stale copy from an earlier iteration is not the
  new value); then the "after" moves run;
* at the end of a block that jumps, the edge moves run, each target
  parameter's home must then hold the jump's argument, and the target
  starts with the home relabelled as the parameter;
* at a join, the states meet by intersection.  States entering a block
  keep only values live there (the checker's own liveness over the IR and
  the constraints): knowledge of a dead value cannot decide any later use.

It also checks each operand's location against its policy (REG: a register
of the class; FIXED: that register; REUSE: the reused use's location; the
stack slots of STACK_ARG/STACK_PARAM), that early defs and temps share no
location with a use, and that no move goes memory to memory.  It trusts
nothing else of the allocator: a wrong allocation fails a use somewhere.
Unreachable blocks are not checked (they never run).
"""

from __future__ import annotations

from collections import deque

from ..errors import CodegenError
from ..ir.function import Block, Function, Inst, Value
from .alloc import Allocation
from .constraints import (
    ANY,
    FIXED,
    REG,
    REUSE,
    STACK_ARG,
    STACK_PARAM,
    InstConstraints,
    RegFile,
    decode_stack_loc,
    in_param_loc,
    out_arg_loc,
)

_EMPTY = InstConstraints(())


class AllocationError(CodegenError):
    """An allocation breaks the program: names the function, block, instruction, operand."""

    def __init__(self, message: str, func: str, block: Block | None = None,
                 inst: Inst | None = None, operand: int | None = None) -> None:
        self.message, self.func, self.block, self.inst, self.operand = (
            message, func, block, inst, operand)
        where = f"function @{func}"
        if block is not None:
            where += f", {block}"
        if inst is not None:
            where += f": `{inst!r}`"
        if operand is not None:
            where += f", operand {operand}"
        super().__init__(f"{where}: {message}")


def check_allocation(func: Function, alloc: Allocation, regs: RegFile) -> None:
    """Raise ``AllocationError`` unless ``alloc`` is a correct allocation of ``func``."""
    _Checker(func, alloc, regs).run()


class _Checker:
    def __init__(self, func: Function, alloc: Allocation, regs: RegFile) -> None:
        self.func = func
        self.alloc = alloc
        self.regs = regs
        self.class_regs = [frozenset(c) for c in regs.classes]
        self.n_pregs = max([len(regs.names), *(r + 1 for c in regs.classes for r in c),
                            *(r + 1 for r in regs.scratch)])

    def error(self, msg: str, block: Block | None = None, inst: Inst | None = None,
              operand: int | None = None) -> AllocationError:
        return AllocationError(msg, self.func.name, block, inst, operand)

    def name(self, loc: int) -> str:
        return self.regs.name(loc)

    def held(self, state: dict[int, Value], loc: int) -> str:
        v = state.get(loc)
        return "nothing" if v is None else f"v{v.id}"

    # -- dataflow ----------------------------------------------------------------
    def liveness(self) -> dict[Block, set[Value]]:
        """Values live on entry to each block (its parameters included), from the IR
        and the recorded constraints alone."""
        gen: dict[Block, set[Value]] = {}
        kill: dict[Block, set[Value]] = {}
        for b in self.func.blocks:
            g: set[Value] = set()
            d: set[Value] = set(b.params)
            for inst in b.insts:
                c = self.alloc.constraints.get(inst, _EMPTY)
                used = [o.value for o in c.operands if o.kind == "use"]
                if inst.op == "jump":
                    used = inst.targets[0].args
                g.update(u for u in used if u not in d)
                d.update(o.value for o in c.operands if o.kind != "use")
            gen[b], kill[b] = g, d
        live = {b: set(gen[b]) for b in self.func.blocks}
        changed = True
        while changed:
            changed = False
            for b in reversed(self.func.blocks):
                out: set[Value] = set()
                for s in b.successors():
                    out |= live[s]
                new = gen[b] | (out - kill[b])
                if len(new) != len(live[b]):
                    live[b] = new
                    changed = True
        for b in self.func.blocks:
            live[b] |= set(b.params)
        return live

    def run(self) -> None:
        entry = self.func.entry
        # Knowledge about values dead on entry to a block cannot matter to any use
        # from there on; dropping it keeps the states small.
        live = self.liveness()
        states: dict[Block, dict[int, Value]] = {entry: {}}
        work = deque([entry])
        queued = {entry}
        for b, term in ((b, b.insts[-1]) for b in self.func.blocks if b.insts):
            if term.op != "jump" and b in self.alloc.edge_moves:
                raise self.error("edge moves at a block that does not end in jump", b)
        while work:
            b = work.popleft()
            queued.discard(b)
            for succ, out in self.block(b, dict(states[b])):
                keep = live[succ]
                out = {loc: v for loc, v in out.items() if v in keep}
                old = states.get(succ)
                if old is not None:
                    new = {loc: v for loc, v in old.items() if out.get(loc) is v}
                    if len(new) == len(old):
                        continue                  # the meet only shrinks: unchanged
                    out = new
                states[succ] = out
                if succ not in queued:
                    queued.add(succ)
                    work.append(succ)

    def block(self, b: Block, st: dict[int, Value]) -> list[tuple[Block, dict[int, Value]]]:
        if not b.insts:
            raise self.error("block without instructions", b)
        for inst in b.insts:
            self.inst(b, inst, st)
        term = b.insts[-1]
        if term.op != "jump":
            for t in term.targets:
                if t.args or t.block.params:
                    raise self.error("a branch other than jump passes block arguments", b, term)
            return [(t.block, st) for t in term.targets]
        tgt = term.targets[0]
        for mv in self.alloc.edge_moves.get(b, ()):
            self.move(st, mv, b, term)
        out = dict(st)
        params = []
        for i, (a, p) in enumerate(zip(tgt.args, tgt.block.params)):
            loc = self.alloc.param_locs.get(p)
            if loc is None:
                continue                            # unused parameter
            if st.get(loc) is not a:
                raise self.error(f"block argument {i}: {tgt.block}'s parameter v{p.id} lives "
                                 f"in {self.name(loc)}, which holds {self.held(st, loc)} "
                                 f"instead of v{a.id} after the edge moves", b, term)
            params.append((p, loc))
        for p, loc in params:
            self._write(out, loc, p)
        return [(tgt.block, out)]

    # -- one instruction ----------------------------------------------------------
    def inst(self, b: Block, inst: Inst, st: dict[int, Value]) -> None:
        alloc = self.alloc
        c = _EMPTY if inst.op == "jump" else alloc.constraints.get(inst)
        if c is None:
            raise self.error("no constraints recorded for the instruction", b, inst)
        locs = alloc.operand_locs.get(inst)
        if locs is None or len(locs) != len(c.operands):
            raise self.error(f"has {len(c.operands)} operands but "
                             f"{'no' if locs is None else len(locs)} locations", b, inst)
        self.structure(b, inst, c, locs)
        for mv in alloc.before.get(inst, ()):
            self.move(st, mv, b, inst)
        for i, o in enumerate(c.operands):
            if o.kind == "use" and st.get(locs[i]) is not o.value:
                raise self.error(f"{o.describe()} expects v{o.value.id} in "
                                 f"{self.name(locs[i])}, which holds {self.held(st, locs[i])}",
                                 b, inst, i)
        for i, o in enumerate(c.operands):
            if o.kind == "temp":
                st.pop(locs[i], None)
        for r in c.clobbers:
            st.pop(r, None)
        for i, o in enumerate(c.operands):
            if o.kind == "def":
                self._write(st, locs[i], o.value)
        after = alloc.after.get(inst, ())
        if after and inst.is_terminator:
            raise self.error("moves after a terminator never run", b, inst)
        for mv in after:
            self.move(st, mv, b, inst)

    @staticmethod
    def _write(st: dict[int, Value], loc: int, v: Value) -> None:
        """A new instance of ``v`` goes to ``loc``; older copies are not ``v`` any more."""
        for other in [lc for lc, x in st.items() if x is v]:
            del st[other]
        st[loc] = v

    def move(self, st: dict[int, Value], mv: tuple[int, int, int], b: Block, inst: Inst) -> None:
        src, dst, _ = mv
        for loc in (src, dst):
            if loc >= self.n_pregs:
                raise self.error(f"move {mv} names a register that does not exist", b, inst)
        if src < 0 and dst < 0:
            raise self.error(f"move {self.name(src)} -> {self.name(dst)} goes memory to memory",
                             b, inst)
        if dst < 0 and decode_stack_loc(dst)[0] == "param":
            raise self.error(f"move writes the incoming parameter slot {self.name(dst)}", b, inst)
        v = st.get(src)
        if v is None:
            st.pop(dst, None)
        else:
            st[dst] = v

    def structure(self, b: Block, inst: Inst, c: InstConstraints, locs: tuple[int, ...]) -> None:
        uses = set()
        for i, o in enumerate(c.operands):
            loc = locs[i]
            pol = o.policy
            ok = True
            if pol == REG:
                ok = loc in self.class_regs[o.cls]
            elif pol == FIXED:
                ok = loc == o.preg
            elif pol == REUSE:
                ok = 0 <= o.reuse < len(locs) and loc == locs[o.reuse] and loc >= 0
            elif pol == ANY:
                ok = loc in self.class_regs[o.cls] or (
                    loc < 0 and decode_stack_loc(loc)[0] in ("spill", "param"))
            elif pol == STACK_ARG:
                ok = loc == out_arg_loc(o.slot)
            elif pol == STACK_PARAM:
                ok = loc == in_param_loc(o.slot)
            if not ok:
                raise self.error(f"{o.describe()} got location {self.name(loc)}", b, inst, i)
            if o.kind == "use":
                uses.add(loc)
        seen: set[int] = set()
        for i, o in enumerate(c.operands):
            if o.kind == "use":
                continue
            loc = locs[i]
            if loc in seen:
                raise self.error(f"{o.describe()} shares {self.name(loc)} with another def "
                                 "or temp", b, inst, i)
            seen.add(loc)
            if (o.kind == "temp" or o.early) and loc in uses:
                raise self.error(f"{o.describe()} shares {self.name(loc)} with a use", b, inst, i)

"""The register allocator's driver: IR -> flat arrays -> numba kernels -> ``Allocation``.

Steps, for a lowered function whose branches other than ``jump`` pass no
block arguments (``prepare.isolate_edge_args``):

1. Lay the blocks out (reverse postorder, unreachable blocks last) and
   number instructions in that order.
2. Ask the ISA for each instruction's constraints and flatten them into
   arrays (layout in ``liveness.py``).  ``jump`` is not asked: its block
   arguments are read at the jump and moved to the target's parameters.
3. Kernels: validate the operands, liveness, intervals, the linear scan,
   spill slots, operand locations and moves (``liveness.py``,
   ``linear_scan.py``).
4. Sequentialize each parallel move (``moves.py``) and build the
   ``Allocation``; optionally check it (``checker.py``).
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import accumulate, chain, pairwise
from operator import attrgetter
from time import perf_counter

from ..errors import CodegenError
from ..ir.function import Block, Function, Inst, Value
from .constraints import (
    FIXED,
    REUSE,
    STACK_ARG,
    ConstraintFn,
    InstConstraints,
    Move,
    RegFile,
    in_param_loc,
    spill_loc,
)
from .moves import MoveResolver


@dataclass
class Allocation:
    """Where every operand lives and which moves to emit (locations: see ``constraints``).

    Move lists are already sequential, and never memory to memory.
    ``before``/``after``/``edge_moves`` hold only instructions and blocks that
    have moves.
    """

    operand_locs: dict[Inst, tuple[int, ...]]   # every inst; operands in constraint order
    before: dict[Inst, list[Move]]              # just before the inst
    after: dict[Inst, list[Move]]               # just after it (never after a terminator)
    edge_moves: dict[Block, list[Move]]         # just before the jump ending the block
    num_spill_slots: int                        # 8-byte slots, spill_loc(0 .. n-1)
    used_callee_saved: frozenset[int]           # written somewhere: save in the prologue
    max_outgoing_args: int                      # outgoing stack argument slots needed
    order: list[Block] = field(default_factory=list)         # the block layout assumed
    param_locs: dict[Value, int] = field(default_factory=dict)   # used non-entry params
    constraints: dict[Inst, InstConstraints] = field(default_factory=dict)  # as given
    stats: dict[str, int] = field(default_factory=dict)      # counts; us_* phase times


_EMPTY = InstConstraints(())
_FIELDS = tuple(map(attrgetter, ("value", "kind", "policy", "cls", "preg", "reuse", "slot",
                                  "early")))


class _Kinds(dict):
    def __missing__(self, key: object) -> int:
        return 3                                   # rejected by the validate kernel


_KIND = _Kinds({"use": 0, "def": 1, "temp": 2})

_ERRORS = {
    1: "has an unknown operand kind",
    2: "has a policy its kind cannot take",
    3: "has an unknown register class",
    4: "names a physical register that does not exist",
    5: "is FIXED to a scratch register (reserved for the move resolver)",
    6: "reuses an operand that is not a use of the same class (or is an early def)",
    7: "reuses a use that another def already reuses",
    8: "has a stack slot out of range",
    9: "gives its value a register class that another operand contradicts",
    10: "needs a FIXED register that another value needs at the same time",
    11: "cannot get a register: the instruction needs more registers than the class has",
    12: "needs a register of a class that has none",
}


def _cfg_arrays(func: Function):
    """Successor CSR over ``func.blocks`` (entry = 0)."""
    import numpy as np
    index = {b: i for i, b in enumerate(func.blocks)}
    succ: list[int] = []
    succ_ptr = [0]
    for b in func.blocks:
        if b.insts:
            for t in b.insts[-1].targets:
                i = index.get(t.block)
                if i is None:
                    raise CodegenError(f"function @{func.name}: {b} branches to {t.block}, "
                                       "which is not in the function")
                succ.append(i)
        succ_ptr.append(len(succ))
    return np.array(succ_ptr, np.int64), np.array(succ, np.int64)


def _layout(func: Function, layout: str):
    """``(order, depth, succ_ptr, succ)``: block indices in layout order, loop depth
    per block index, and the successor CSR over block indices."""
    import numpy as np

    from .liveness import cfg_layout
    if layout not in ("rpo", "func"):
        raise ValueError(f"unknown block layout {layout!r}")
    succ_ptr, succ = _cfg_arrays(func)
    n = len(func.blocks)
    rpo, depth = cfg_layout(n, succ_ptr, succ)
    if layout == "func":
        return np.arange(n), depth, succ_ptr, succ
    seen = np.zeros(n, np.bool_)
    seen[rpo] = True
    return np.concatenate([rpo, np.nonzero(~seen)[0]]), depth, succ_ptr, succ


def block_order(func: Function, layout: str = "rpo") -> list[Block]:
    """The block layout: ``"rpo"`` (reachable blocks in reverse postorder, then the
    rest in function order) or ``"func"`` (the function's order)."""
    order = _layout(func, layout)[0]
    return [func.blocks[i] for i in order.tolist()]


def loop_depths(func: Function) -> dict[Block, int]:
    """Loop nesting depth of each block (0 outside loops; one loop per header).

    The same quantity as ``CFG.loop_depths()``, computed on arrays: that one
    needs networkx (tens of ms on a function with a thousand blocks) and,
    with networkx >= 3.5, fails (``immediate_dominators`` leaves out the
    entry, and ``CFG.dominates`` raises ``KeyError`` walking up to it).
    """
    depth = _layout(func, "func")[1]
    return dict(zip(func.blocks, depth.tolist()))


@lru_cache(maxsize=32)
def _regfile_arrays(regs: RegFile, stress: bool):
    import numpy as np
    if len(regs.scratch) < len(regs.classes):
        raise CodegenError("RegFile: every register class needs a scratch register")
    every = [r for cls in regs.classes for r in cls] + list(regs.scratch)
    if any(r < 0 for r in every):
        raise CodegenError("RegFile: negative register number")
    n_pregs = max([len(regs.names), *(r + 1 for r in every)])
    scratch = set(regs.scratch)
    allowed = np.zeros((len(regs.classes), n_pregs), np.bool_)
    cls_ptr = [0]
    cls_regs: list[int] = []
    for c, members in enumerate(regs.classes):
        members = members[:3] if stress else members
        if scratch & set(members):
            raise CodegenError(f"RegFile: class {c} allocates its scratch register")
        cls_regs.extend(members)
        cls_ptr.append(len(cls_regs))
        allowed[c, list(members)] = True
    is_scratch = np.zeros(n_pregs, np.bool_)
    is_scratch[list(scratch)] = True
    cls_count = np.diff(np.array(cls_ptr, np.int64))
    return (n_pregs, allowed, np.array(cls_ptr, np.int64), np.array(cls_regs, np.int64),
            is_scratch, cls_count)


def allocate(func: Function, constraints: ConstraintFn, regs: RegFile, *, stress: bool = False,
             check: bool = False, layout: str = "rpo") -> Allocation:
    """Allocate registers for the lowered ``func``; see the module docstring.

    ``stress`` restricts every class to its first three registers (fixed
    registers stay usable), so spill paths run.  ``check`` runs the checker.
    ``layout`` is ``"rpo"`` or ``"func"`` (see ``block_order``).  Raises
    ``CodegenError`` for constraints no allocation can meet.
    """
    # The cyclic garbage collector is paused meanwhile: allocating creates many
    # short-lived lists and tuples, and the full collections they trigger over
    # a large heap cost about a quarter of the allocation time.
    paused = gc.isenabled()
    gc.disable()
    try:
        alloc = _allocate(func, constraints, regs, stress, layout)
    finally:
        if paused:
            gc.enable()
    if check:
        from .checker import check_allocation
        check_allocation(func, alloc, regs)
    return alloc


def _allocate(func: Function, constraints: ConstraintFn, regs: RegFile, stress: bool,
              layout: str) -> Allocation:
    import numpy as np

    from . import linear_scan as ls
    from .liveness import intervals, liveness

    n_pregs, allowed, cls_ptr, cls_regs, is_scratch, cls_count = _regfile_arrays(regs, stress)
    t0 = perf_counter()
    order_idx, depth, fsucc_ptr, fsucc = _layout(func, layout)
    blocks = func.blocks
    order = [blocks[i] for i in order_idx.tolist()]
    if not order:
        raise CodegenError(f"function @{func.name} has no blocks")
    if order[0].params:
        raise CodegenError(f"function @{func.name}: the entry block has parameters; after "
                           "lowering a params instruction defines them")
    i64 = np.int64
    # Successors in layout order: pos maps a block index to its layout position.
    pos = np.empty(len(order_idx), i64)
    pos[order_idx] = np.arange(len(order_idx))
    lens = np.diff(fsucc_ptr)[order_idx]
    succ_ptr = np.zeros(len(order_idx) + 1, i64)
    np.cumsum(lens, out=succ_ptr[1:])
    gather = np.repeat(fsucc_ptr[:-1][order_idx] - succ_ptr[:-1], lens) + np.arange(succ_ptr[-1])
    succ = pos[fsucc[gather]]
    blk_depth = depth[order_idx]
    t1 = perf_counter()

    # -- flatten ------------------------------------------------------------------
    insts: list[Inst] = []
    blk_first = [0]
    for b in order:
        if not b.insts or not b.insts[-1].is_terminator:
            raise CodegenError(f"function @{func.name}: {b} does not end with a terminator")
        insts.extend(b.insts)
        blk_first.append(len(insts))
    n_inst = len(insts)
    cons = [_EMPTY if inst.op == "jump" else constraints(inst) for inst in insts]
    ops = list(chain.from_iterable([c.operands for c in cons]))
    op_start = [0, *accumulate([len(c.operands) for c in cons])]
    par_vals: list[Value] = []
    par_ptr = [0]
    jumps: list[tuple[Block, int, int]] = []   # (block, start, end) in jump_args/jump_pars
    jump_k: list[int] = []                     # instruction index of each such jump
    jump_args: list[Value] = []
    jump_pars: list[Value] = []
    for i, b in enumerate(order):
        par_vals.extend(b.params)
        par_ptr.append(len(par_vals))
        term = b.insts[-1]
        if term.op == "jump":
            tgt = term.targets[0]
            n = min(len(tgt.args), len(tgt.block.params))
            if n:
                jumps.append((b, len(jump_args), len(jump_args) + n))
                jump_k.append(blk_first[i + 1] - 1)
                jump_args.extend(tgt.args[:n])
                jump_pars.extend(tgt.block.params[:n])
        else:
            for t in term.targets:
                if t.args or t.block.params:
                    raise CodegenError(
                        f"function @{func.name}, {b}: `{term!r}` passes block arguments; "
                        "only jump may (run isolate_edge_args before lowering)")
    # Operand fields, transposed; vregs numbered in order of first appearance.
    op_vals, op_kinds, op_pols, op_cls, op_preg, op_reuse, op_slot, op_early = [
        list(map(getter, ops)) for getter in _FIELDS]
    values = list(dict.fromkeys(chain(par_vals, op_vals, jump_args, jump_pars)))
    n_vregs = len(values)
    index = dict(zip(values, range(n_vregs)))
    get = index.__getitem__
    a_op_v = np.array(list(map(get, op_vals)), i64)
    kind = np.array(list(map(_KIND.__getitem__, op_kinds)), i64)
    pol = np.array(op_pols, i64)
    ocls = np.array(op_cls, i64)
    early = np.array(op_early, i64)
    # FIXED: preg, REUSE: operand index, STACK_*: slot
    a_aux = np.where(pol == FIXED, np.array(op_preg, i64),
                     np.where(pol == REUSE, np.array(op_reuse, i64), np.array(op_slot, i64)))
    a_op_start = np.array(op_start, i64)
    clob_k: list[int] = []
    clob_r: list[int] = []
    checked: set[int] = set()
    for k, c in enumerate(cons):
        if c.clobbers:
            if id(c.clobbers) not in checked:
                if any(not 0 <= r < n_pregs for r in c.clobbers):
                    raise CodegenError(f"function @{func.name}: `{insts[k]!r}` clobbers a "
                                       "register that does not exist")
                checked.add(id(c.clobbers))
            clob_r.extend(c.clobbers)
            clob_k.extend([k] * len(c.clobbers))
    ep_arg = list(map(get, jump_args))
    ep_par = list(map(get, jump_pars))
    a_ep_arg = np.array(ep_arg, i64)
    a_ep_par = np.array(ep_par, i64)
    a_jump_k = np.array(jump_k, i64)
    a_ex_start = np.zeros(n_inst + 1, i64)      # jump arguments per instruction
    a_ex_start[a_jump_k + 1] = [j1 - j0 for _, j0, j1 in jumps]
    np.cumsum(a_ex_start, out=a_ex_start)
    a_par_v = np.array(list(map(get, par_vals)), i64)
    t2 = perf_counter()

    vcls = np.full(n_vregs, -1, i64)           # set from the operands by validate

    def fail(code_: int, o: int) -> CodegenError:
        k = int(np.searchsorted(a_op_start, o, side="right")) - 1
        inst = insts[k]
        c = cons[k]
        j = o - op_start[k]
        what = c.operands[j].describe() if 0 <= j < len(c.operands) else "?"
        b = order[int(np.searchsorted(blk_first, k, side="right")) - 1]
        return CodegenError(f"function @{func.name}, {b}: `{inst!r}`: operand {j} ({what}) "
                            f"{_ERRORS[code_]}")

    err, bad = ls.validate(n_vregs, len(regs.classes), n_pregs, is_scratch, cls_count,
                           a_op_start, a_op_v, pol, kind, early, ocls, a_aux, vcls)
    if err:
        raise fail(int(err), int(bad))
    float_cls = 1 if len(regs.classes) > 1 else 0
    for v in np.flatnonzero(vcls < 0).tolist():   # only passed between blocks: by type
        vcls[v] = float_cls if values[v].type.is_float else 0
    (conflict, eff_pol, eff_preg, reuse_of, reuser, has_reuse, use_count, hint, partner,
     param_slot, fb_ptr, fb_s, fb_e, fb_own) = ls.analyze(
        n_vregs, n_pregs, a_op_start, a_op_v, pol, kind, early, a_aux, a_ep_arg,
        a_ep_arg, a_ep_par, np.array(clob_r, i64), np.array(clob_k, i64))
    if conflict >= 0:
        raise fail(ls.E_FIXED_CONFLICT, int(conflict))
    a_blk_first = np.array(blk_first, i64)
    a_par_ptr = np.array(par_ptr, i64)
    live_in, live_out = liveness(n_vregs, a_blk_first, succ_ptr, succ, a_op_start, a_op_v, kind,
                                 a_ex_start, a_ep_arg, a_par_ptr, a_par_v)
    lo, hi, cost = intervals(n_vregs, live_in, live_out, a_blk_first, blk_depth, a_par_ptr,
                             a_par_v, a_op_start, a_op_v, kind, pol, early, reuser >= 0,
                             has_reuse, a_ex_start, a_ep_arg, use_count)
    length = (hi - lo).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = cost / (1.0 + length / 4.0)
    weight[a_op_v[kind == 2]] = np.inf              # temps have no home but their register
    ts, te, thint, vt_ptr, vt_ops = ls.tiny_ranges(a_op_start, a_op_v, kind, early, eff_pol,
                                                   reuse_of, reuser, has_reuse, n_vregs)
    have = np.nonzero(hi >= 0)[0]
    by_start = have[np.argsort(lo[have], kind="stable")]
    err, bad_iv, bad_pos, home, tiny, n_spilled = ls.scan(
        n_vregs, by_start, lo, hi, vcls, weight, hint, partner, a_op_v, ts, te, thint,
        vt_ptr, vt_ops, fb_ptr, fb_s, fb_e, fb_own, cls_ptr, cls_regs, allowed)
    if err:
        k = min(int(bad_pos) // 4, n_inst - 1)
        b = order[int(np.searchsorted(blk_first, k, side="right")) - 1]
        what = (f"operand {int(bad_iv) - n_vregs - op_start[k]}" if bad_iv >= n_vregs
                else f"v{values[int(bad_iv)].id}")
        raise CodegenError(f"function @{func.name}, {b}: `{insts[k]!r}` ({what}) "
                           f"{_ERRORS[int(err)]}" + (" (stress mode: 3 registers)"
                                                     if stress else ""))
    slot, n_slots = ls.assign_slots(by_start, home, lo, hi, param_slot)
    jump_ptr = np.array([0, *(j1 for _, _, j1 in jumps)], i64)
    loc, mv_k, mv_after, mv_src, mv_dst, mv_cls, n_moves = ls.locate(
        a_op_start, a_op_v, kind, ocls, a_aux, eff_pol, eff_preg, reuser, home, tiny, slot,
        param_slot, use_count, vcls, a_jump_k, jump_ptr, a_ep_arg, a_ep_par)
    t3 = perf_counter()

    # -- results --------------------------------------------------------------------
    n_slots = int(n_slots)
    resolver = MoveResolver(regs.scratch, spill_loc(n_slots))
    resolve = resolver.resolve
    locs = loc.tolist()
    operand_locs = dict(zip(insts, [tuple(locs[a:b]) for a, b in pairwise(op_start)]))
    # Group the moves per (instruction, before/after): each group is one parallel move.
    n_moves = int(n_moves)
    key = mv_k[:n_moves] * 2 + mv_after[:n_moves]
    perm = np.argsort(key, kind="stable")
    key = key[perm]
    src = mv_src[:n_moves][perm]
    dst = mv_dst[:n_moves][perm]
    moves = list(zip(src.tolist(), dst.tolist(), mv_cls[:n_moves][perm].tolist()))
    first = np.flatnonzero(np.diff(key, prepend=-1))           # group starts
    size = np.diff(first, append=n_moves)
    gk = key[first]
    if (gk & 1).any():
        term_k = a_blk_first[1:] - 1
        bad = np.intersect1d(gk[(gk & 1) == 1] >> 1, term_k)
        if len(bad):
            raise CodegenError(f"function @{func.name}: terminator `{insts[int(bad[0])]!r}` "
                               "defines a value that needs a move after it")
    # The kernel emits no move onto itself, so one move needs resolving only
    # when it goes memory to memory; groups of several go through the resolver.
    simple = (size == 1) & ((src[first] >= 0) | (dst[first] >= 0))
    jump_block = dict(zip(jump_k, [b for b, _, _ in jumps]))
    before: dict[Inst, list[Move]] = {}
    after: dict[Inst, list[Move]] = {}
    edge_moves: dict[Block, list[Move]] = {}
    for g, a, n, easy in zip(gk.tolist(), first.tolist(), size.tolist(), simple.tolist()):
        seq = [moves[a]] if easy else resolve(moves[a:a + n])
        if not seq:
            continue
        k = g >> 1
        if g & 1:
            after[insts[k]] = seq
        elif k in jump_block:
            edge_moves[jump_block[k]] = seq
        else:
            before[insts[k]] = seq
    # Home location of every used block parameter (see linear_scan._home_loc).
    pv = a_par_v[use_count[a_par_v] > 0]
    hl = np.where(home[pv] >= 0, home[pv], np.where(param_slot[pv] >= 0,
                                                    in_param_loc(param_slot[pv]),
                                                    spill_loc(slot[pv])))
    param_locs = dict(zip([values[v] for v in pv.tolist()], hl.tolist()))

    written = set(home[home >= 0].tolist()) | set(tiny[tiny >= 0].tolist())
    written |= set(eff_preg[eff_pol == FIXED].tolist()) | set(clob_r) | resolver.used_scratch
    stack_args = a_aux[pol == STACK_ARG]
    alloc = Allocation(
        operand_locs=operand_locs, before=before, after=after, edge_moves=edge_moves,
        num_spill_slots=n_slots + (1 if resolver.used_cycle_loc else 0),
        used_callee_saved=frozenset(written & regs.callee_saved),
        max_outgoing_args=int(stack_args.max()) + 1 if len(stack_args) else 0,
        order=order, param_locs=param_locs, constraints=dict(zip(insts, cons)),
        stats={"insts": len(insts), "vregs": n_vregs, "spilled": int(n_spilled),
               "moves": sum(map(len, before.values())) + sum(map(len, after.values()))
               + sum(map(len, edge_moves.values())),
               "us_layout": int(1e6 * (t1 - t0)), "us_flatten": int(1e6 * (t2 - t1)),
               "us_kernels": int(1e6 * (t3 - t2)),
               "us_results": int(1e6 * (perf_counter() - t3))})
    return alloc


def format_allocation(func: Function, alloc: Allocation, regs: RegFile) -> str:
    """The function in allocation order with operand locations and moves, for people."""
    name = regs.name

    def moves(mv: list[Move]) -> str:
        return ", ".join(f"{name(s)} -> {name(d)}" for s, d, _ in mv)

    saved = sorted(name(r) for r in alloc.used_callee_saved)
    lines = [f"func @{func.name}: {alloc.num_spill_slots} spill slot(s), callee-saved {saved}"]
    for b in alloc.order:
        params = ", ".join(f"v{p.id}@{name(alloc.param_locs[p])}" if p in alloc.param_locs
                           else f"v{p.id}@-" for p in b.params)
        lines.append(f"{b}" + (f"({params})" if params else "") + ":")
        for inst in b.insts:
            if inst in alloc.before:
                lines.append(f"    ; before: {moves(alloc.before[inst])}")
            if inst.op == "jump" and b in alloc.edge_moves:
                lines.append(f"    ; edge: {moves(alloc.edge_moves[b])}")
            c = alloc.constraints.get(inst)
            locs = alloc.operand_locs.get(inst, ())
            ops = ""
            if c is not None and c.operands:
                ops = "  ; " + ", ".join(f"{o.kind[0]}:v{o.value.id}@{name(loc)}"
                                         for o, loc in zip(c.operands, locs))
            lines.append(f"    {inst!r}{ops}")
            if inst in alloc.after:
                lines.append(f"    ; after: {moves(alloc.after[inst])}")
    return "\n".join(lines)

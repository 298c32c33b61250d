"""The checker accepts correct allocations and catches injected bugs."""

from __future__ import annotations

import copy
import random

import pytest
import regalloc_fakes as fakes
from regalloc_cases import CASES, NESTED_CALLS, SWAP_LOOP, build
from regalloc_fakes import REGS, FakeISA, R

from wasmlower.errors import CodegenError
from wasmlower.regalloc import (
    Allocation,
    AllocationError,
    allocate,
    check_allocation,
    format_allocation,
    isolate_edge_args,
)


def alloc(text: str, stress: bool) -> tuple:
    f = build(text)
    a = allocate(f, FakeISA(), REGS, stress=stress)
    check_allocation(f, a, REGS)
    return f, a


def fresh(a: Allocation) -> Allocation:
    b = copy.copy(a)
    b.operand_locs = dict(a.operand_locs)
    b.before = {k: list(v) for k, v in a.before.items()}
    b.after = {k: list(v) for k, v in a.after.items()}
    b.edge_moves = {k: list(v) for k, v in a.edge_moves.items()}
    b.param_locs = dict(a.param_locs)
    return b


def test_error_names_function_block_instruction_operand():
    f, a = alloc(CASES["line"], False)
    bad = fresh(a)
    sub = next(i for i in f.entry.insts if i.op == "ra.sub3")
    locs = list(bad.operand_locs[sub])
    locs[1] = R["r15"]                     # a register nobody wrote v0 into
    bad.operand_locs[sub] = tuple(locs)
    with pytest.raises(AllocationError) as info:
        check_allocation(f, bad, REGS)
    e = info.value
    assert isinstance(e, CodegenError)
    assert e.func == "line" and e.block is f.entry and e.inst is sub and e.operand == 1
    assert "@line" in str(e) and "block0" in str(e) and "ra.sub3" in str(e)
    assert "r15" in str(e)


@pytest.mark.parametrize("stress", [False, True])
@pytest.mark.parametrize("name", sorted(CASES))
def test_corrupted_use_location(name, stress):
    f, a = alloc(CASES[name], stress)
    rng = random.Random(name)
    used = mentioned(a)
    caught = 0
    uses = [(i, k) for b in f.blocks for i in b.insts for k, o in
            enumerate(a.constraints.get(i, fakes.InstConstraints(())).operands)
            if o.kind == "use"]
    for inst, k in rng.sample(uses, min(6, len(uses))):
        bad = fresh(a)
        locs = list(bad.operand_locs[inst])
        o = a.constraints[inst].operands[k]
        # A register of the class or a slot that the allocation never uses.
        choices = [r for r in REGS.classes[o.cls] if r not in used] + [-1 - a.num_spill_slots]
        locs[k] = rng.choice(choices)
        bad.operand_locs[inst] = tuple(locs)
        with pytest.raises(AllocationError):
            check_allocation(f, bad, REGS)
        caught += 1
    assert caught


@pytest.mark.parametrize("name", sorted(CASES))
def test_dropped_moves(name):
    f, a = alloc(CASES[name], True)
    sites = ([("before", i, n) for i, mv in a.before.items() for n in range(len(mv))]
             + [("after", i, n) for i, mv in a.after.items() for n in range(len(mv))]
             + [("edge", b, n) for b, mv in a.edge_moves.items() for n in range(len(mv))])
    caught = 0
    for where, key, n in sites:
        bad = fresh(a)
        table = {"before": bad.before, "after": bad.after, "edge": bad.edge_moves}[where]
        table[key].pop(n)
        try:
            check_allocation(f, bad, REGS)
        except AllocationError:
            caught += 1
    # A dropped move may be harmless (a store of a value never reloaded on the
    # path, a copy into a location nobody reads), but most are not.
    assert caught >= len(sites) // 2


def test_reversed_swap_is_caught():
    f, a = alloc(SWAP_LOOP, False)
    (b, mv), = [(b, mv) for b, mv in a.edge_moves.items() if len(mv) >= 3]
    bad = fresh(a)
    bad.edge_moves[b] = mv[::-1]
    with pytest.raises(AllocationError):
        check_allocation(f, bad, REGS)


def mentioned(a: Allocation) -> set[int]:
    used = set()
    for locs in a.operand_locs.values():
        used |= set(locs)
    for mv in [*a.before.values(), *a.after.values(), *a.edge_moves.values()]:
        used |= {x for m in mv for x in m[:2]}
    return used


def test_value_in_a_clobbered_register_is_caught():
    # Move every callee-saved register the allocation uses to an unused caller-saved one:
    # the values living across calls get clobbered.
    f, a = alloc(NESTED_CALLS, False)
    used = mentioned(a)
    free = [r for r in (R["r8"], R["r9"], R["r10"], R["rsi"]) if r not in used]
    ren = dict(zip(sorted(a.used_callee_saved), free))
    assert ren

    def rn(x: int) -> int:
        return ren.get(x, x)
    bad = fresh(a)
    bad.operand_locs = {i: tuple(map(rn, locs)) for i, locs in a.operand_locs.items()}
    for table in (bad.before, bad.after, bad.edge_moves):
        for k, mv in table.items():
            table[k] = [(rn(s), rn(d), c) for s, d, c in mv]
    bad.param_locs = {p: rn(loc) for p, loc in a.param_locs.items()}
    with pytest.raises(AllocationError, match="holds nothing|holds v"):
        check_allocation(f, bad, REGS)


def test_structural_errors():
    f, a = alloc(CASES["temps"], False)
    early = next(i for i in f.entry.insts if i.op == "ra.early")
    bad = fresh(a)
    u0, u1, d = bad.operand_locs[early]
    bad.operand_locs[early] = (u0, u1, u0)          # early def on top of a use
    with pytest.raises(AllocationError, match="shares"):
        check_allocation(f, bad, REGS)
    f, a = alloc(CASES["reuse"], False)
    add = next(i for i in f.entry.insts if i.op == "ra.add")
    bad = fresh(a)
    u0, u1, d = bad.operand_locs[add]
    bad.operand_locs[add] = (u0, u1, R["r14"] if d != R["r14"] else R["r13"])
    with pytest.raises(AllocationError, match="reuse"):
        check_allocation(f, bad, REGS)
    f, a = alloc(CASES["divshift"], True)
    div = next(i for i in f.entry.insts if i.op == "ra.div")
    bad = fresh(a)
    locs = list(bad.operand_locs[div])
    locs[0] = R["rbx"]                               # FIXED rax
    bad.operand_locs[div] = tuple(locs)
    with pytest.raises(AllocationError, match="fixed"):
        check_allocation(f, bad, REGS)


def test_memory_to_memory_move_is_rejected():
    f, a = alloc(CASES["line"], False)
    bad = fresh(a)
    first = f.entry.insts[1]
    bad.before[first] = [*bad.before.get(first, []), (-1, -2, 0)]
    with pytest.raises(AllocationError, match="memory to memory"):
        check_allocation(f, bad, REGS)


def test_format_allocation_mentions_every_block():
    f, a = alloc(NESTED_CALLS, True)
    text = format_allocation(f, a, REGS)
    for b in f.blocks:
        assert f"{b}" in text
    assert "spill" in text


@pytest.mark.parametrize("seed", range(20))
def test_random_corruption_is_caught_or_harmless(seed):
    """Whatever a corruption does, the checker's verdict agrees with execution:
    when the checker accepts, running the corrupted program gives the same result."""
    rng = random.Random(seed)
    f, inputs = fakes.ProgramGen(rng, 30).function()
    isolate_edge_args(f)
    a = allocate(f, FakeISA(), REGS, stress=True)
    want = fakes.run_ir(f, inputs)
    for _ in range(10):
        bad = fresh(a)
        inst = rng.choice([i for i in bad.operand_locs if bad.operand_locs[i]])
        locs = list(bad.operand_locs[inst])
        k = rng.randrange(len(locs))
        locs[k] = rng.choice([*REGS.classes[0][:4], -1, -2])
        bad.operand_locs[inst] = tuple(locs)
        try:
            check_allocation(f, bad, REGS)
        except AllocationError:
            continue
        for s in range(3):
            got = fakes.run_allocated(f, bad, inputs, seed=s)
            assert (got.out, got.ret) == (want.out, want.ret)

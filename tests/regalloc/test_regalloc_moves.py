"""Parallel-move resolution: sequences must equal the parallel semantics."""

from __future__ import annotations

import random

import pytest

from wasmlower.regalloc import MoveResolver, ParallelMoveError, spill_loc

SCRATCH = (11, 31)          # class 0: r11, class 1: xmm15
CYCLE = spill_loc(100)


def parallel(state: dict[int, object], moves) -> dict[int, object]:
    out = dict(state)
    for src, dst, _ in moves:
        out[dst] = state[src]
    return out


def sequential(state: dict[int, object], seq) -> dict[int, object]:
    out = dict(state)
    for src, dst, _ in seq:
        assert not (src < 0 and dst < 0), "memory-to-memory move in the output"
        out[dst] = out[src]
    return out


def check(moves, resolver: MoveResolver | None = None) -> list:
    r = resolver or MoveResolver(SCRATCH, CYCLE)
    locs = {loc for s, d, _ in moves for loc in (s, d)}
    state = {loc: f"init{loc}" for loc in locs}
    seq = r.resolve(moves)
    want = parallel(state, moves)
    got = sequential(state, seq)
    for loc in locs:                                   # scratch and cycle slot may differ
        assert got[loc] == want[loc], (moves, seq)
    return seq


def test_empty_and_self_moves():
    assert check([]) == []
    assert check([(3, 3, 0)]) == []


def test_chain_is_ordered():
    # 1 -> 2 -> 3: 3 must be written before 2, 2 before 1 is overwritten...
    seq = check([(1, 2, 0), (2, 3, 0), (3, 6, 0)])
    assert len(seq) == 3


def test_swap_uses_scratch():
    seq = check([(0, 1, 0), (1, 0, 0)])
    assert len(seq) == 3
    assert any(11 in (s, d) for s, d, _ in seq)


@pytest.mark.parametrize("n", [2, 3, 5, 9])
def test_register_rotation(n):
    check([(i, (i + 1) % n, 0) for i in range(n)])


def test_fan_out_and_duplicates():
    check([(0, 1, 0), (0, 2, 0), (0, 2, 0), (1, 0, 0)])


def test_conflicting_destinations():
    with pytest.raises(ParallelMoveError):
        MoveResolver(SCRATCH, CYCLE).resolve([(0, 2, 0), (1, 2, 0)])


def test_scratch_is_reserved():
    with pytest.raises(ParallelMoveError):
        MoveResolver(SCRATCH, CYCLE).resolve([(11, 2, 0), (2, 3, 0)])


def test_stack_to_stack_goes_through_scratch():
    r = MoveResolver(SCRATCH, CYCLE)
    seq = check([(spill_loc(0), spill_loc(1), 0)], r)
    assert seq == [(spill_loc(0), 11, 0), (11, spill_loc(1), 0)]
    assert r.used_scratch == {11}
    seq = check([(spill_loc(0), spill_loc(1), 1)])
    assert seq == [(spill_loc(0), 31, 1), (31, spill_loc(1), 1)]


def test_slot_swap_needs_the_cycle_slot():
    # Two memory-to-memory moves of one class in one cycle: scratch alone cannot.
    r = MoveResolver(SCRATCH, CYCLE)
    check([(spill_loc(0), spill_loc(1), 0), (spill_loc(1), spill_loc(0), 0)], r)
    assert r.used_cycle_loc


def test_mixed_cycle_with_one_memory_move_uses_scratch():
    r = MoveResolver(SCRATCH, CYCLE)
    check([(spill_loc(0), spill_loc(1), 0), (spill_loc(1), 3, 0), (3, spill_loc(0), 0)], r)
    assert not r.used_cycle_loc


def test_cycle_of_two_classes():
    # A slot shared over time by an int and a float value: a cycle across classes.
    r = MoveResolver(SCRATCH, CYCLE)
    check([(spill_loc(0), 20, 1), (20, spill_loc(1), 1), (spill_loc(1), 2, 0),
           (2, spill_loc(0), 0)], r)


@pytest.mark.parametrize("seed", range(300))
def test_random_parallel_moves(seed):
    rng = random.Random(seed)
    pool = list(range(8)) + [spill_loc(i) for i in range(6)]
    n = rng.randint(1, 12)
    dsts = rng.sample(pool, min(n, len(pool)))
    moves = []
    for d in dsts:
        s = rng.choice(pool) if rng.random() < 0.3 else rng.choice(dsts)
        moves.append((s, d, rng.randint(0, 1)))
    check(moves)

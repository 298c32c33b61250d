"""The allocator on hand-written machine-like functions, in normal and stress mode.

Every allocation runs the checker, and the allocated program is executed
(registers, slots, moves, clobbered registers filled with garbage) and
compared with the program run on vregs.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time

import networkx as nx
import pytest
import regalloc_fakes as fakes
from regalloc_cases import (
    CALL8,
    CASES,
    DIAMOND,
    DIV_SHIFT,
    FLOAT_CALL,
    LINE,
    NESTED_CALLS,
    REUSE_LIVE,
    SWAP_LOOP,
    build,
    pressure,
)
from regalloc_fakes import REGS, FakeISA, R

from wasmlower.errors import CodegenError
from wasmlower.ir import Function, parse_function
from wasmlower.regalloc import (
    FIXED,
    REG,
    REUSE,
    STACK_ARG,
    Allocation,
    InstConstraints,
    Operand,
    allocate,
    block_order,
    in_param_loc,
    isolate_edge_args,
    out_arg_loc,
)
from wasmlower.regalloc.alloc import loop_depths

MODES = [False, True]


def run_both(f: Function, stress: bool, n_inputs: int = 6, layout: str = "rpo",
             isa=None) -> Allocation:
    isa = isa or FakeISA()
    a = allocate(f, isa, REGS, stress=stress, check=True, layout=layout)
    n_params = len(f.entry.insts[0].results) if f.entry.insts[0].op == "ra.params" else 0
    rng = random.Random(5)
    for i in range(n_inputs):
        inputs = [rng.getrandbits(64) if i % 2 else rng.randint(0, 20) for _ in range(n_params)]
        want = fakes.run_ir(f, inputs)
        got = fakes.run_allocated(f, a, inputs, seed=i)
        assert (got.out, got.ret) == (want.out, want.ret), f"inputs {inputs}"
    return a


def locs_of(a: Allocation, f: Function, op: str) -> tuple[int, ...]:
    return next(a.operand_locs[i] for b in f.blocks for i in b.insts if i.op == op)


@pytest.mark.parametrize("stress", MODES)
@pytest.mark.parametrize("name", sorted(CASES))
def test_cases(name, stress):
    run_both(build(CASES[name]), stress)


@pytest.mark.parametrize("name", sorted(CASES))
def test_cases_in_function_layout(name):
    run_both(build(CASES[name]), True, layout="func")


def test_straight_line_needs_no_spill_and_few_moves():
    f = build(LINE)
    a = run_both(f, False)
    assert a.stats["spilled"] == 0 and a.num_spill_slots == 0
    # params arrive in rdi/rsi; the add is two-address, ret wants rax: a few moves at most.
    assert a.stats["moves"] <= 3
    assert a.used_callee_saved == frozenset()
    assert a.order == f.blocks


def test_two_address_copies_a_live_source():
    f = build(REUSE_LIVE)
    a = run_both(f, False)
    adds = [i for i in f.entry.insts if i.op == "ra.add"]
    for inst in adds:
        u0, _, d = a.operand_locs[inst]
        assert u0 == d                                     # REUSE: same location
    # v0 lives on after the first add: its home is not the add's result register.
    first = adds[0]
    assert a.before.get(first), "the live source must be copied first"


def test_fixed_registers():
    f = build(DIV_SHIFT)
    for stress in MODES:
        a = run_both(f, stress)
        for inst in f.entry.insts:
            locs = a.operand_locs[inst]
            if inst.op == "ra.div":
                assert locs[0] == R["rax"] and locs[2] == R["rax"] and locs[3] == R["rdx"]
                assert locs[1] not in (R["rax"], R["rdx"])
            if inst.op == "ra.shl":
                assert locs[1] == R["rcx"] and locs[0] == locs[2] != R["rcx"]


def test_stack_arguments_and_parameters():
    f = build(CALL8)
    for stress in MODES:
        a = run_both(f, stress)
        assert a.max_outgoing_args == 2
        params = a.operand_locs[f.entry.insts[0]]
        assert params[6] == in_param_loc(0) and params[7] == in_param_loc(1)
        call = a.operand_locs[f.entry.insts[1]]
        assert call[6] == out_arg_loc(0) and call[7] == out_arg_loc(1)


def test_values_across_calls_use_callee_saved_registers():
    f = build(NESTED_CALLS)
    a = run_both(f, False)
    assert a.used_callee_saved and a.used_callee_saved <= fakes.CALLEE_SAVED
    a = run_both(f, True)                  # only rax, rcx, rdx: everything spills
    assert a.used_callee_saved == frozenset() and a.num_spill_slots > 0


def test_floats_across_a_call_are_spilled():
    f = build(FLOAT_CALL)
    a = run_both(f, False)
    assert a.num_spill_slots >= 1          # no callee-saved xmm register


def test_swap_edge_uses_the_scratch_register():
    f = build(SWAP_LOOP)
    a = run_both(f, False)
    edge = [m for b, mv in a.edge_moves.items() for m in mv]
    assert edge


def test_pressure_spills_in_normal_mode():
    a = run_both(build(pressure(30)), False)
    assert a.stats["spilled"] > 0


def test_dead_values_and_params():
    f = build("""
    func @dead() -> i64 {
    block0:
        v0, v1 = ra.params.i64.i64
        v2, v3 = ra.div.i64.i64 v0, v1
        v4 = ra.imm.i64 [5]
        jump block1(v2, v4)
    block1(v5: i64, v6: i64):
        ra.ret v5
    }""")
    for stress in MODES:
        a = run_both(f, stress)
        v6 = f.blocks[1].params[1]
        assert v6 not in a.param_locs      # unused parameter: no home, no edge move
        assert all(len(mv) <= 1 for mv in a.edge_moves.values())


def test_unreachable_block_is_laid_out_last():
    f = build("""
    func @unreach() -> i64 {
    block0:
        v0 = ra.params.i64
        jump block2(v0)
    block1:
        v1 = ra.imm.i64 [1]
        ra.ret v1
    block2(v2: i64):
        ra.ret v2
    }""")
    a = run_both(f, True)
    assert [b.id for b in a.order] == [0, 2, 1]
    assert [b.id for b in block_order(f, "func")] == [0, 1, 2]


def test_loop_depths_match_a_networkx_reference():
    for seed in range(30):
        f, _ = fakes.ProgramGen(random.Random(seed), 50).function()
        isolate_edge_args(f)
        g = nx.DiGraph()
        g.add_nodes_from(f.blocks)
        g.add_edges_from((b, s) for b in f.blocks for s in b.successors())
        dom = nx.immediate_dominators(g, f.entry)
        dom[f.entry] = f.entry

        def dominates(a, b, dom=dom):
            while True:
                if a is b:
                    return True
                if dom[b] is b:
                    return False
                b = dom[b]
        want = dict.fromkeys(f.blocks, 0)
        headers: dict = {}
        for t, h in g.edges:
            if t in dom and dominates(h, t):
                headers.setdefault(h, set()).add(t)
        for h, tails in headers.items():
            body = {h}
            work = list(tails)
            while work:
                n = work.pop()
                if n not in body:
                    body.add(n)
                    work.extend(p for p in g.predecessors(n) if p in dom)
            for n in body:
                want[n] += 1
        assert loop_depths(f) == want


# -- impossible constraints -------------------------------------------------------------

class BrokenISA(FakeISA):
    """The fake ISA with one op's constraints replaced."""

    def __init__(self, op: str, make) -> None:
        super().__init__()
        self.op, self.make = op, make

    def build(self, inst):
        if inst.op == self.op:
            return self.make(inst)
        return super().build(inst)


def _u(v, pol=REG, **kw):
    return Operand(v, "use", pol, 0, **kw)


def _d(v, pol=REG, **kw):
    return Operand(v, "def", pol, 0, **kw)


BROKEN = {
    "two values in one fixed register": lambda i: InstConstraints(
        (_u(i.args[0], FIXED, preg=R["rcx"]), _u(i.args[1], FIXED, preg=R["rcx"]),
         _d(i.results[0]))),
    "reuse of a def": lambda i: InstConstraints(
        (_u(i.args[0]), _u(i.args[1]), _d(i.results[0], REUSE, reuse=2))),
    "stack argument def": lambda i: InstConstraints(
        (_u(i.args[0]), _u(i.args[1]), _d(i.results[0], STACK_ARG, slot=0))),
    "fixed scratch": lambda i: InstConstraints(
        (_u(i.args[0], FIXED, preg=R["r11"]), _u(i.args[1]), _d(i.results[0]))),
    "unknown register": lambda i: InstConstraints(
        (_u(i.args[0], FIXED, preg=99), _u(i.args[1]), _d(i.results[0]))),
    "class mismatch": lambda i: InstConstraints(
        (Operand(i.args[0], "use", REG, 1), _u(i.args[1]), _d(i.results[0]))),
    "unknown kind": lambda i: InstConstraints(
        (Operand(i.args[0], "read", REG, 0), _u(i.args[1]), _d(i.results[0]))),
    "bad policy": lambda i: InstConstraints((_u(i.args[0], 17), _u(i.args[1]), _d(i.results[0]))),
    "reuse twice": lambda i: InstConstraints(
        (_u(i.args[0]), _u(i.args[1]), _d(i.results[0], REUSE, reuse=0),
         Operand(fakes.Value(-1, fakes.I64), "def", REUSE, 0, reuse=0))),
    "clobber of a missing register": lambda i: InstConstraints(
        (_u(i.args[0]), _u(i.args[1]), _d(i.results[0])), frozenset({200})),
}


@pytest.mark.parametrize("what", sorted(BROKEN))
def test_impossible_constraints_raise(what):
    f = build(LINE)
    with pytest.raises(CodegenError) as info:
        allocate(f, BrokenISA("ra.sub3", BROKEN[what]), REGS)
    text = str(info.value)
    assert "@line" in text and "ra.sub3" in text


def test_too_many_registers_at_one_instruction():
    # Four REG uses plus a REG def at once: stress mode has three registers.
    def four(i):
        return InstConstraints(tuple(_u(a) for a in i.args) + (_d(i.results[0]),))
    f = build("""
    func @four() -> i64 {
    block0:
        v0, v1, v2, v3 = ra.params.i64.i64.i64.i64
        v4 = ra.tmpop.i64 v0, v1, v2, v3
        ra.ret v4
    }""")
    isa = BrokenISA("ra.tmpop", four)
    allocate(f, isa, REGS, check=True)
    with pytest.raises(CodegenError, match="cannot get a register"):
        allocate(f, isa, REGS, stress=True)


def test_branch_arguments_must_be_isolated():
    f = parse_function(DIAMOND.replace("ra.brif v0, block1, block2",
                                       "ra.brif v0, block1, block3(v0, v1)"))
    f.meta["lowered"] = True
    with pytest.raises(CodegenError, match="isolate_edge_args"):
        allocate(f, FakeISA(), REGS)


def test_entry_parameters_are_rejected():
    f = parse_function("""
    func @p(i64) -> i64 {
    block0(v0: i64):
        ra.ret v0
    }""")
    with pytest.raises(CodegenError, match="entry block has parameters"):
        allocate(f, FakeISA(), REGS)


# -- cost -----------------------------------------------------------------------------------

def test_import_is_cheap():
    code = ("import sys, wasmlower.regalloc; "
            "print('numba' in sys.modules, 'numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]


def test_performance_5000_instructions(capsys):
    f, _ = fakes.ProgramGen(random.Random(42), 3300).function("big")
    isolate_edge_args(f)
    n = sum(len(b.insts) for b in f.blocks)
    isa = FakeISA()
    lines = []
    for stress in MODES:
        allocate(f, isa, REGS, stress=stress)            # compile or load the kernels
        best = None
        for _ in range(5):
            t = time.perf_counter()
            a = allocate(f, isa, REGS, stress=stress)
            dt = time.perf_counter() - t
            if best is None or dt < best[0]:
                best = (dt, a.stats)
        dt, stats = best
        phases = ", ".join(f"{k[3:]} {v / 1000:.1f}" for k, v in stats.items()
                           if k.startswith("us_"))
        lines.append(f"regalloc {'stress' if stress else 'normal'}: {n} insts, "
                     f"{len(f.blocks)} blocks in {dt * 1e3:.1f} ms "
                     f"({dt * 1e6 / n:.1f} us/inst; {phases} ms); "
                     f"{stats['spilled']} spilled, {stats['moves']} moves")
    with capsys.disabled():
        print("\n" + "\n".join(lines))

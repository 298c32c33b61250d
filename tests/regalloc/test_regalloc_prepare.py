"""isolate_edge_args: only jump passes block arguments afterwards."""

from __future__ import annotations

import random

import pytest
import regalloc_fakes as fakes

from wasmlower.ir import I32, Builder, Function, parse_function, verify
from wasmlower.ir.function import BlockCall
from wasmlower.regalloc import isolate_edge_args


def only_jumps_pass_args(f: Function) -> bool:
    for b in f.blocks:
        term = b.insts[-1]
        if term.op != "jump":
            for t in term.targets:
                if t.args or t.block.params:
                    return False
    return True


def test_brif_with_arguments():
    f = parse_function("""
    func @f(i32, i32) -> i32 {
    block0(v0: i32, v1: i32):
        brif v0, block1(v1), block2
    block1(v2: i32):
        return v2
    block2:
        jump block1(v0)
    }""")
    isolate_edge_args(f)
    verify(f)
    assert only_jumps_pass_args(f)
    b0, edge = f.blocks[0], f.blocks[1]
    assert [t.block for t in b0.insts[-1].targets] == [edge, f.blocks[3]]
    assert edge.insts[-1].op == "jump" and len(edge.insts) == 1
    assert edge.insts[-1].targets[0].block is f.blocks[2]
    assert len(f.blocks) == 4                      # block2 needed nothing
    before = str(f)
    isolate_edge_args(f)                           # idempotent
    assert str(f) == before


def test_target_with_params_but_no_args_and_shared_edges():
    f = Function("g", [I32], [I32])
    b = Builder(f)
    entry = b.block([I32])
    x = entry.params[0]
    one = b.block([])
    join = b.block([I32])
    b.br_table(x, BlockCall(one), [BlockCall(join, [x]), BlockCall(join, [x]),
                                   BlockCall(one)])
    b.switch_to(one)
    b.jump(join, [x])
    b.switch_to(join)
    b.ret(join.params[0])
    isolate_edge_args(f)
    verify(f)
    assert only_jumps_pass_args(f)
    targets = [t.block for t in entry.insts[-1].targets]
    # The two identical edges to join share one new block; edges to `one` stay.
    assert targets[0] is targets[1] and targets[0] not in (one, join)
    assert targets[2] is one and targets[3] is one
    assert f.blocks.index(targets[0]) == 1         # placed right after its source


@pytest.mark.parametrize("seed", range(40))
def test_semantics_preserved(seed):
    rng = random.Random(seed)
    f, inputs = fakes.ProgramGen(rng, 40).function()
    want = fakes.run_ir(f, inputs)
    isolate_edge_args(f)
    verify(f)
    assert only_jumps_pass_args(f)
    got = fakes.run_ir(f, inputs)
    assert (got.out, got.ret) == (want.out, want.ret)

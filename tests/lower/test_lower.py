"""The lowering driver on the toy ISA: printed results with the rule of every machine op."""

from __future__ import annotations

import textwrap

import pytest

from wasmlower.ir import I32, OPS, Builder, Function, format_function, parse_function, verify
from wasmlower.lower import NoRuleError, lower_function, rule_counts
from wasmlower.lower.decl import ImmDecl, OperandDecl

R = "tests/lower/fixtures/toy/lower.rules"


def lowered(toy, text: str, **kw) -> str:
    f = parse_function(textwrap.dedent(text))
    lower_function(f, toy, **kw)
    verify(f)
    return format_function(f, rules=True)


ADD_SHIFT = """
    func @f(i32, i32) -> i32 {
    block0(v0: i32, v1: i32):
        v2 = iconst.i32 [7]
        v3 = iadd v2, v0
        v4 = iconst.i32 [2]
        v5 = ishl v1, v4
        v6 = iadd v5, v3
        v7 = imul v6, v1
        v8 = iconst.i32 [8]
        v9 = imul v7, v8
        v10 = icmp v7, v1 [slt]
        brif v10, block1, block2
    block1:
        v11 = iconst.i32 [0]
        v12 = icmp v9, v11 [eq]
        return v12
    block2:
        trap [unreachable]
    }
"""


def test_lower_folds_constants_shifts_and_compares(toy) -> None:
    # Commuted immediates, lea from a nested shift, multiply by 8 as a shift, a fused
    # compare-and-branch, x == 0 as test+sete; folded constants become dead and go.
    assert lowered(toy, ADD_SHIFT) == textwrap.dedent(f"""\
        func @f(i32, i32) -> i32 {{
        block0(v0: i32, v1: i32):
            v3 = toy.add32_ri.i32 v0 [7]            ; {R}:7 add_imm
            v6 = toy.lea32.i32 v3, v1 [2]           ; {R}:4
            v7 = toy.mul32.i32 v6, v1               ; {R}:14
            v9 = toy.shl32_ri.i32 v7 [3]            ; {R}:13
            toy.jcc_cmp32 v7, v1, block1, block2 [slt] ; {R}:27
        block1:
            v13 = toy.test32.i64 v9, v9             ; {R}:23
            v12 = toy.sete32.i32 v13                ; {R}:23
            toy.ret v12                             ; {R}:38
        block2:
            toy.ud2 [unreachable]                   ; {R}:39
        }}""")


def test_lower_memory_calls_and_jumps(toy) -> None:
    text = """
        func @g(i32, i32) -> i32 {
        block0(v0: i32, v1: i32):
            v2 = load.i32 v0 [i32, 16]
            store v0, v2 [i8, 4]
            v3 = call.i32 v2, v1 [7]
            jump block1(v3)
        block1(v4: i32):
            v5 = iconst.i32 [100]
            v6 = icmp v4, v5 [ult]
            return v6
        }
    """
    assert lowered(toy, text) == textwrap.dedent(f"""\
        func @g(i32, i32) -> i32 {{
        block0(v0: i32, v1: i32):
            v2 = toy.load32.i32 v0 [16]             ; {R}:30
            toy.store8 v0, v2 [4]                   ; {R}:34
            v3 = toy.call.i32 v2, v1 [7]            ; {R}:37
            jump block1(v3)
        block1(v4: i32):
            v5 = toy.mov32_ri.i32 [100]             ; {R}:19
            v6 = toy.setcc32.i32 v4, v5 [ult]       ; {R}:24
            toy.ret v6                              ; {R}:38
        }}""")


def test_interpreted_lowering_gives_the_same_function(toy) -> None:
    assert lowered(toy, ADD_SHIFT, interpreted=True) == lowered(toy, ADD_SHIFT)


def test_results_keep_their_values_and_locations(toy) -> None:
    f = Function("h", [I32], [I32])
    b = Builder(f)
    entry = b.block(params=[I32])
    b.loc = 0x42
    x = b.op("iadd", entry.params[0], b.iconst(I32, 3))
    b.loc = 0x44
    b.ret(x)
    add = entry.insts[1]
    lower_function(f, toy)
    [mach, ret] = f.entry.insts
    assert mach.results[0] is x and x.inst is mach and ret.args == [x]
    assert (mach.op, mach.imm, mach.loc, mach.rule) == ("toy.add32_ri", (3,), 0x42,
                                                        f"{R}:7 add_imm")
    assert ret.loc == 0x44 and add.op == "iadd"          # the generic inst is left alone
    assert f.meta["lowered"] == "toy"


def test_trace_and_rule_counts(toy) -> None:
    trace: list = []
    lowered(toy, ADD_SHIFT, trace=trace)
    assert trace[1] == ("v3 = iadd v2, v0", ["v3 = toy.add32_ri.i32 v0 [7]"], f"{R}:7 add_imm")
    assert trace[-3] == ("v12 = icmp v9, v11 [eq]",
                         ["v13 = toy.test32.i64 v9, v9", "v12 = toy.sete32.i32 v13"], f"{R}:23")
    counts = rule_counts(trace)
    assert counts[f"{R}:19"] == 4 and counts[f"{R}:7 add_imm"] == 1
    assert sum(counts.values()) == len(trace) == 14


def test_no_rule_is_a_codegen_error(toy) -> None:
    text = """
        func @m(f32, f32) -> f32 {
        block0(v1: f32, v2: f32):
            v3 = fmin v1, v2
            return v3
        }
    """
    with pytest.raises(NoRuleError) as info:
        lowered(toy, text)
    assert str(info.value) == "no toy rule lowers `v3 = fmin v1, v2` (f32)"
    assert info.value.inst.op == "fmin" and info.value.isa == "toy"


def test_machine_ops_are_registered(toy) -> None:
    info = OPS["toy.udiv32"]
    assert info.dialect == "toy" and info.args == ("any", "any") and info.result == "ctrl"
    assert info.effects == frozenset({"traps"})
    d = info.decl
    assert d == toy.decls["udiv32"]
    assert (d.isa, d.name, d.qualname) == ("toy", "udiv32", "toy.udiv32")
    assert d.operands == (OperandDecl("a", "gpr", "r0"), OperandDecl("b", "gpr"))
    assert d.results == (OperandDecl("out", "gpr", "r0"),)
    assert d.temps == (OperandDecl("hi", "gpr", "r2"),)
    assert (d.clobbers, d.reuse, d.variadic, d.branch) == (("flags",), (None,), False, False)
    assert d.template == "xor {hi:32}, {hi:32}\ndiv {b:32}"
    assert (d.file, d.line) == ("tests/lower/fixtures/toy/ops.rules", 13)
    assert toy.decls["add32_ri"].reuse == (0,)
    assert toy.decls["add32_ri"].imms == (ImmDecl("k", "i32"),)
    assert OPS["toy.call"].args == ("any", "*") and toy.decls["call"].variadic_results
    assert OPS["toy.jcc_cmp32"].is_terminator and toy.decls["jcc_cmp32"].branch
    assert OPS["toy.spill64"].result == ("i64",)
    assert toy.decls["ret"].template == "{epilogue}"      # a TEMPLATE_PLACEHOLDERS name
    divmod = toy.decls["divmod32"]
    assert [r.fixed for r in divmod.results] == ["r0", "r2"]
    assert OPS["toy.divmod32"].result == "ctrl"

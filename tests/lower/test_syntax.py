"""Parsing rule files into AST nodes with locations."""

from __future__ import annotations

from wasmlower.lower.syntax import (
    EBin,
    ECall,
    EName,
    PInt,
    PName,
    PNode,
    PRest,
    PWild,
    RImms,
    RName,
    RNode,
    RRest,
    parse_file,
    parse_text,
)

from .helpers import TOY

SOURCE = r'''# comment line

op add32   (a: gpr, b: gpr) -> gpr reuse a   "add {a:32}, {b:32}"   # trailing comment
op udiv32  (a: fixed(r0), b: any(gpr)) -> (fixed(r0), fixed(r2):i32) temp(hi: gpr) \
           clobber(flags, r2) traps "xor {hi:32}, {hi:32}\ndiv {b:32}"
op call    (args...) [f: func] -> (results...) call "call {f}"
add_imm: prio 1 commutative (iadd i32 x (iconst k)) if simm32(k) and k != 0 \
    => (add32_ri x [k + 1])
(call f args...)   => (call [f] args...)
(iadd i32 _ (commutative (imul y (iconst -3)))) => y
prio -2 (return _...) => (ret)
'''


def test_declarations() -> None:
    rf = parse_text(SOURCE, "x.rules")
    add, udiv, call = rf.decls
    assert (add.name, add.line, add.col, add.name_col) == ("add32", 3, 1, 4)
    assert [(o.name, o.cls.kind, o.cls.name) for o in add.operands] == [
        ("a", "class", "gpr"), ("b", "class", "gpr")]
    assert [r.name for r in add.reuse] == ["a"]
    assert add.template == "add {a:32}, {b:32}"
    assert [(o.cls.kind, o.cls.name) for o in udiv.operands] == [("fixed", "r0"), ("any", "gpr")]
    assert [(r.cls.name, r.type) for r in udiv.results] == [("r0", None), ("r2", "i32")]
    assert [t.name for t in udiv.temps] == ["hi"]
    assert [c.name for c in udiv.clobbers] == ["flags", "r2"]
    assert [e.name for e in udiv.effects] == ["traps"]
    assert udiv.template == "xor {hi:32}, {hi:32}\ndiv {b:32}"       # \n unescaped
    assert udiv.template_raw == r"xor {hi:32}, {hi:32}\ndiv {b:32}"
    assert (call.variadic, call.variadic_results) == ("args", "results")
    assert [(i.name, i.cls.name) for i in call.imms] == [("f", "func")]
    assert [e.name for e in call.effects] == ["call"]     # `call` is a keyword only here


def test_rules() -> None:
    rf = parse_text(SOURCE, "x.rules")
    r1, r2, r3, r4 = rf.rules
    assert (r1.name, r1.prio, r1.commutative, r1.line, r1.col) == ("add_imm", 1, True, 7, 1)
    assert r1.pattern == PNode("iadd", (
        PName("i32", 7, 35), PName("x", 7, 39),
        PNode("iconst", (PName("k", 7, 49),), False, 7, 41, 7, 42)), False, 7, 29, 7, 30)
    assert isinstance(r1.guard, EBin) and r1.guard.op == "and"
    assert isinstance(r1.guard.left, ECall) and r1.guard.left.func == "simm32"
    assert isinstance(r1.rhs, RNode) and r1.rhs.op == "add32_ri"
    imms = r1.rhs.items[1]
    assert isinstance(imms, RImms) and isinstance(imms.exprs[0], EBin)
    # Texts quoted in generated matchers: continuation folded.
    assert r1.pattern_text == "(iadd i32 x (iconst k))"
    assert r1.guard_text == "simm32(k) and k != 0"
    assert r1.rhs_text == "(add32_ri x [k + 1])"
    assert isinstance(r2.pattern.items[1], PRest) and r2.pattern.items[1].name == "args"
    assert isinstance(r2.rhs, RNode)
    assert isinstance(r2.rhs.items[0], RImms) and isinstance(r2.rhs.items[1], RRest)
    nested = r3.pattern.items[2]
    assert isinstance(r3.pattern.items[1], PWild)
    assert isinstance(nested, PNode) and nested.commutative and nested.op == "imul"
    assert nested.items[1] == PNode("iconst", (PInt(-3, 10, 42),), False, 10, 34, 10, 35)
    assert r3.rhs == RName("y", 10, 52)
    assert r4.prio == -2 and r4.pattern.items == (PRest("_", 11, 17),)


def test_keywords_are_names_where_no_keyword_fits() -> None:
    rf = parse_text("(call any temp reuse...) => (call [any] reuse...)\n")
    items = rf.rules[0].pattern.items
    assert [type(i) for i in items] == [PName, PName, PRest]
    assert rf.rules[0].guard is None
    assert EName  # imported for the type checker


def test_toy_files_parse() -> None:
    ops = parse_file(TOY / "ops.rules")
    lower = parse_file(TOY / "lower.rules")
    assert len(ops.decls) > 20 and not ops.rules
    assert len(lower.rules) > 20 and not lower.decls
    assert ops.source_line(3) == ops.text.splitlines()[2]

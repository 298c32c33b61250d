"""Every kind of rule-file error, each from a broken fixture, with its exact message.

The fixtures are ``fixtures/broken/<name>.rules``, loaded after the toy
ISA's ``ops.rules``.  A message is ``file:line:col: message``, the source
line, a caret under the column, and ``hint: ...``.
"""

from __future__ import annotations

import pytest

from wasmlower.errors import RuleError

from .helpers import BROKEN, load_toy_with

# name: (line, col, message, hint)
ERRORS = {
    "not_a_branch": (1, 36,
        "brif ends a block, but add32_ri is not a branch",
        "declare add32_ri with the `branch` flag"),
    "syntax": (2, 15,
        ("syntax error: expected a name, an integer, `_`, `(`, `)`, `...` or "
        "`-`, found `=>`"),
        ("a rule reads: [NAME:] [prio N] [commutative] (OP [TYPE] IMM* ARG*) "
        "[if GUARD] => RESULT")),
    "syntax_eol": (2, 18,
        "syntax error: expected a name or `(`, found end of line",
        "one rule or declaration per line; end a line with `\\` to continue it"),
    "unknown_generic_op": (1, 2,
        "unknown generic op `iad`",
        "did you mean `iadd`?"),
    "unknown_machine_op": (1, 36,
        "unknown machine op `add33`",
        "did you mean `add32`, `add32_ri` or `add64`?"),
    "unknown_class": (1, 14,
        "unknown register class `gp`",
        "did you mean `gpr`? toy has register classes flags, fpr, gpr"),
    "unknown_register": (1, 28,
        "unknown register `r9`",
        "toy has registers f0, f1, f2, f3, r0, r1, r2, r3, r4, r5, r6, r7"),
    "arity": (1, 1,
        "iadd takes 2 arguments: (iadd T x y)",
        ("found 4 after the op name; the type, if written, comes first, then "
        "immediates, then arguments")),
    "rhs_arity": (1, 35,
        "add32 takes 2 operands: (add32 a b)",
        "found 1"),
    "imm_count": (1, 35,
        "add32_ri takes 1 immediate: [k: i32]",
        "found 2"),
    "imm_none": (1, 35,
        "add32 takes no immediates",
        "found 1"),
    "imm_as_value": (1, 45,
        "`k` is an immediate, not a value",
        "pass immediates in [...]: (add32_ri a [k])"),
    "type_pattern": (1, 7,
        "type mismatch: fadd does not take i32 (it takes f32 or f64)",
        "write (fadd f32 ...)"),
    "type_result": (1, 36,
        ("type mismatch: movq_gf returns fpr, which cannot hold the i32 result "
        "of iadd"),
        "use an op whose result class holds i32"),
    "type_operand": (1, 42,
        "type mismatch: operand a of add32 takes gpr, but `x` is f64",
        "use an op whose operand class holds f64"),
    "unbound_rhs": (1, 44,
        "unbound variable `z`",
        "the pattern binds: x, y"),
    "unbound_guard": (1, 35,
        "unbound variable `j`",
        "the pattern binds: k, x"),
    "unknown_pred": (1, 28,
        "unknown predicate `simm33`",
        ("did you mean `simm32` or `simm8`? predicates are the functions of "
        "tests/lower/fixtures/toy/preds.py")),
    "unknown_placeholder": (1, 47,
        "unknown placeholder `{b}` in the template of neg32",
        ("placeholders name operands, immediates, temps and results (a, out, "
        "out0), or are {then} {else} {targets} {L} {L1}... {trap:CODE}, or the "
        "ISA's TEMPLATE_PLACEHOLDERS")),
    "duplicate_op": (2, 4,
        "duplicate declaration of op `add32`",
        "first declared at tests/lower/fixtures/toy/ops.rules:5"),
    "not_commutative": (1, 13,
        "`isub` is not commutative",
        "`commutative` swaps the two arguments of a commutative op only"),
    "bare_var": (1, 35,
        "a bare variable result is only allowed in rewrite rules",
        "lower the value with a machine op"),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_error_message(name: str) -> None:
    line, col, message, hint = ERRORS[name]
    path = BROKEN / f"{name}.rules"
    with pytest.raises(RuleError) as info:
        load_toy_with(path)
    source = path.read_text().splitlines()[line - 1]
    expected = (f"tests/lower/fixtures/broken/{name}.rules:{line}:{col}: {message}\n"
                f"  {source}\n  {' ' * (col - 1)}^\n  hint: {hint}")
    assert str(info.value) == expected
    e = info.value
    assert (e.file, e.line, e.col, e.message, e.hint) == (
        f"tests/lower/fixtures/broken/{name}.rules", line, col, message, hint)


def test_every_fixture_has_an_expectation() -> None:
    checked = set(ERRORS) | {"overlap", "overlap_guards", "shadow", "never"}
    assert {p.stem for p in BROKEN.glob("*.rules")} == checked


def test_errors_are_collected_when_asked() -> None:
    errors: list[RuleError] = []
    load_toy_with(BROKEN / "unbound_rhs.rules", BROKEN / "arity.rules", errors=errors)
    assert [e.message for e in errors] == ["unbound variable `z`",
                                           "iadd takes 2 arguments: (iadd T x y)"]

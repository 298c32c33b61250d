"""The rule checker: overlap, shadowing, never-firing rules, unused ops, coverage."""

from __future__ import annotations

from wasmlower.ir import F32, F64, I32, I64
from wasmlower.lower import FRONTEND_COVERAGE, check_isa, check_rules, check_targets
from wasmlower.lower.check import Pat, Var, Wild, expand, overlap, subsumes

from .helpers import BROKEN, FIXTURES, TOY, load_toy_with

B = "tests/lower/fixtures/broken"


def test_toy_isa_has_no_errors(toy) -> None:
    report = check_isa(toy, [])
    assert report.errors == []
    assert [w.message for w in report.warnings] == [
        "machine op `divmod32` is never used by a rule",
        "machine op `spill64` is never used by a rule",
    ]


def test_injected_overlap() -> None:
    report = check_rules(load_toy_with(BROKEN / "overlap.rules"))
    [e] = report.errors
    assert (e.file, e.line, e.col) == (f"{B}/overlap.rules", 3, 1)
    assert e.message == (f"rules {B}/overlap.rules:2 and {B}/overlap.rules:3 overlap: "
                         "both match (iadd i32 x (iconst k))")
    assert e.hint == "give one a higher priority (`prio N`), or make the patterns disjoint"


def test_guards_count_as_possibly_true() -> None:
    [e] = check_rules(load_toy_with(BROKEN / "overlap_guards.rules")).errors
    assert e.message == (f"rules {B}/overlap_guards.rules:2 and {B}/overlap_guards.rules:3 "
                         "overlap: both match (imul i32 x (iconst k))")


def test_injected_shadowed_rule() -> None:
    [e] = check_rules(load_toy_with(BROKEN / "shadow.rules")).errors
    assert str(e) == (
        f"{B}/shadow.rules:3:1: rule can never fire: every input it matches is taken first by "
        f"{B}/shadow.rules:2\n"
        "  (iadd i32 x (iconst 0))        => (add32_ri x [0])\n"
        "  ^\n"
        "  hint: give it a higher priority, or narrow the earlier rule")


def test_rules_that_can_never_fire_are_warnings() -> None:
    report = check_rules(load_toy_with(BROKEN / "never.rules"))
    assert report.errors == []           # never-firing rules are left out of the overlap check
    never = [w for w in report.warnings if "never fire" in w.message]
    assert [(w.line, w.col, w.message) for w in never] == [
        (2, 13, ("rule can never fire: the matcher does not look through `load` "
                "(it has effects: reads, traps)")),
        (3, 20, ("rule can never fire: (iconst i64 ...) has type i64, but the argument "
                "here is i32")),
    ]


def test_commutative_variants_of_one_rule_do_not_overlap(toy) -> None:
    add_imm = next(r for r in toy.rules if r.ast.name == "add_imm")
    assert [v.show() for v in add_imm.variants] == [
        "(iadd i32 x (iconst k))", "(iadd i32 (iconst k) x)"]
    assert check_isa(toy, []).errors == []


def test_nested_commutative_expansion() -> None:
    inner = Pat("imul", None, (), (Var("y"), Pat("iconst", None, (Var("k"),), ())), None, True)
    outer = Pat("iadd", I32, (), (Var("x"), inner), None, True)
    assert [p.show() for p in expand(outer)] == [
        "(iadd i32 x (imul y (iconst k)))", "(iadd i32 (imul y (iconst k)) x)",
        "(iadd i32 x (imul (iconst k) y))", "(iadd i32 (imul (iconst k) y) x)"]


def test_unification_and_subsumption() -> None:
    x, y = Var("x"), Var("y")
    k = Pat("iconst", None, (Var("k"),), ())
    xx = Pat("isub", I32, (), (x, x))
    xk = Pat("isub", I32, (), (x, k))
    ky = Pat("isub", I32, (), (k, y))
    assert overlap(xk, ky) == "(isub i32 (iconst k) (iconst k))"
    assert overlap(Pat("isub", I64, (), (x, y)), xk) is None     # types differ
    assert overlap(xx, Pat("isub", None, (), (k, Pat("iadd", None, (), (x, y))))) is None
    assert subsumes(Pat("isub", None, (), (x, y)), xk)
    assert not subsumes(xk, Pat("isub", None, (), (x, y)))
    assert not subsumes(xx, Pat("isub", I32, (), (x, y)))         # non-linear is narrower
    assert subsumes(Pat("isub", I32, (), (x, Wild())), xx)


def test_coverage_holes(toy) -> None:
    pairs = [("iadd", I32), ("iadd", I64), ("imul", I64), ("brif", I32), ("brif", I64),
             ("jump", None), ("load", I32), ("store", I32), ("store", I64), ("trap", None),
             ("call", None), ("call", F64), ("return", None), ("fadd", F32)]
    holes = check_isa(toy, pairs).holes
    assert [(h.op, h.type, h.partial) for h in holes] == [
        ("imul", I64, ()),
        ("brif", I64, ("tests/lower/fixtures/toy/lower.rules:27",)),
        # Only the i32 kind: i8s, i8u, i16s and i16u loads are not lowered.
        ("load", I32, ("tests/lower/fixtures/toy/lower.rules:30",)),
        # store i32 is covered by the union of the kinds i32, i16 and i8; i64 is not.
        ("store", I64, ()),
        ("fadd", F32, ()),
    ]
    assert holes[1].format() == (
        "toy: coverage hole: no rule lowers every (brif i64 ...)\n"
        "  only guarded or narrower rules: tests/lower/fixtures/toy/lower.rules:27\n"
        "  hint: add a rule without a guard whose pattern is (brif i64 ...)")


def test_frontend_coverage_pairs() -> None:
    pairs = set(FRONTEND_COVERAGE)
    assert {("iadd", I32), ("iadd", I64), ("fadd", F32), ("icmp", I64), ("fcmp", F64),
            ("load", F32), ("store", F64), ("sextend", I64), ("ireduce", I32),
            ("fcvt_to_sint", I64), ("select", F32), ("copy", I64), ("jump", None),
            ("trap", None), ("call", None), ("call", I32), ("return", None),
            ("memory_size", I32), ("func_ref", I64)} <= pairs
    assert ("iadd", F32) not in pairs and ("sextend", I32) not in pairs
    assert ("fadd", I64) not in pairs and ("jump", I32) not in pairs


def test_report_format(toy) -> None:
    report = check_rules(load_toy_with(BROKEN / "shadow.rules"), [("iadd", I64)])
    text = report.format()
    assert text.startswith(f"{B}/shadow.rules:3:1: rule can never fire")
    assert "tests/lower/fixtures/toy/ops.rules:3:1: warning: machine op `mov32_ri` is never " \
        "used by a rule" in text
    assert "toy: coverage hole: no rule lowers every (iadd i64 ...)" in text
    assert text.endswith("toy: 1 error, 25 warnings, 1 coverage hole")


def test_check_targets_reports_instead_of_raising() -> None:
    report = check_targets([str(TOY), str(BROKEN / "syntax.rules"),
                            str(FIXTURES / "opt" / "opt.rules")], [("fmin", F32)])
    assert [e.message[:22] for e in report.errors] == ["syntax error: expected"]
    assert [(h.isa, h.op) for h in report.holes] == [("toy", "fmin")]
    assert not report.ok


def test_cli_entry_point(capsys, tmp_path) -> None:
    from wasmlower.lower.check import main

    rules = tmp_path / "mid.rules"
    rules.write_text("prio 1 (iadd x y) => x\n(iadd x (iconst 0)) => x\n")
    assert main([str(rules)]) == 1
    out = capsys.readouterr().out
    assert "mid.rules:2:1: rule can never fire" in out
    assert out.rstrip().endswith("1 error, 0 warnings, 0 coverage holes")
    assert main([str(FIXTURES / "opt" / "opt.rules")]) == 0

"""Mid-end rewrite rules (generic -> generic) applied to a fixpoint."""

from __future__ import annotations

import textwrap

from wasmlower.ir import format_function, parse_function, verify
from wasmlower.lower import check_rules, load_rules, rewrite_function, rule_counts

from .helpers import FIXTURES

OPT = FIXTURES / "opt" / "opt.rules"
O = "tests/lower/fixtures/opt/opt.rules"


def rewrite(text: str, **kw) -> str:
    f = parse_function(textwrap.dedent(text))
    rewrite_function(f, load_rules([OPT]), **kw)
    verify(f)
    return format_function(f, rules=True)


def test_rule_set_checks_clean() -> None:
    rs = load_rules([OPT])
    assert rs.kind == "rewrite" and rs.name == "opt"
    report = check_rules(rs)
    assert report.errors == [] and report.warnings == [] and report.holes == []


def test_identities_strength_reduction_and_folding() -> None:
    text = """
        func @f(i32, i32) -> i32 {
        block0(v0: i32, v1: i32):
            v2 = iconst.i32 [0]
            v3 = iadd v2, v0
            v4 = iconst.i32 [8]
            v5 = imul v3, v4
            v6 = isub v1, v1
            v7 = iconst.i32 [2147483647]
            v8 = iconst.i32 [1]
            v9 = iadd v7, v8
            v10 = iadd v5, v6
            v11 = iadd v10, v9
            return v11
        }
    """
    # v3 -> v0; v5 -> v0 << 3; v6 -> 0, so v10 = v5 + 0 -> v5 in the next round;
    # 0x7fffffff + 1 folds and wraps.
    assert rewrite(text) == textwrap.dedent(f"""\
        func @f(i32, i32) -> i32 {{
        block0(v0: i32, v1: i32):
            v12 = iconst.i32 [3]                    ; {O}:11
            v5 = ishl v0, v12                       ; {O}:11
            v9 = iconst.i32 [-2147483648]           ; {O}:4 fold_add
            v11 = iadd v5, v9
            return v11
        }}""")


def test_trace_counts_rewrites() -> None:
    text = """
        func @g(i64) -> i64 {
        block0(v0: i64):
            v1 = iconst.i64 [1]
            v2 = imul v1, v0
            v3 = iconst.i64 [0]
            v4 = iadd v2, v3
            return v4
        }
    """
    trace: list = []
    assert rewrite(text, trace=trace).splitlines()[2:4] == ["    return v0", "}"]
    assert rule_counts(trace) == {f"{O}:8": 1, f"{O}:7": 1}
    assert trace[0] == ("v2 = imul v1, v0", [], f"{O}:8")


def test_rewriting_stops_at_the_round_bound(tmp_path) -> None:
    swap = tmp_path / "swap.rules"
    swap.write_text("(isub i32 x y) => (isub y x)\n")
    f = parse_function(textwrap.dedent("""
        func @s(i32, i32) -> i32 {
        block0(v0: i32, v1: i32):
            v2 = isub v0, v1
            return v2
        }
    """))
    trace: list = []
    rewrite_function(f, load_rules([swap]), trace=trace, max_rounds=3)
    assert len(trace) == 3 and str(f).splitlines()[2] == "    v2 = isub v1, v0"

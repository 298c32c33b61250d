"""The mid-end rewrite rules (wasmlower/ir/rules/opt.rules) on small functions."""

from __future__ import annotations

from wasmlower.ir import parse_function, verify
from wasmlower.lower.check import check_rules
from wasmlower.lower.driver import rewrite_function
from wasmlower.pipeline import midend_rules

SRC = """
func @f(i32, i64) -> i32 {
block0(v0: i32, v1: i64):
    v2 = iconst.i32 [2147483647]
    v3 = iconst.i32 [1]
    v4 = iadd v2, v3
    v5 = iconst.i32 [0]
    v6 = iadd v0, v5
    v7 = imul v3, v6
    v8 = bxor v7, v4
    v9 = iconst.i64 [-1]
    v10 = band v1, v9
    v11 = ireduce.i32 v10
    v12 = iadd v8, v11
    return v12
}
"""


def test_folds_wrapping_constants_and_drops_identities() -> None:
    f = parse_function(SRC)
    rewrite_function(f, midend_rules())
    verify(f)
    text = str(f)
    assert "iconst.i32 [-2147483648]" in text          # 2^31 - 1 + 1 wraps
    for gone in ("imul", "band", "iconst.i32 [0]"):
        assert gone not in text, text
    assert "bxor v0," in text and "ireduce.i32 v1" in text


def test_the_shipped_midend_rules_check_clean() -> None:
    report = check_rules(midend_rules())
    assert not report.errors and not report.warnings, report.format()

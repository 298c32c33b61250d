"""The spec test suite through the whole wasmlower pipeline, natively.

Every in-scope file (tiers mvp and 2.0-scalar) runs with the IR verifier
after each stage and the register-allocation checker on every compiled
function; a subset runs again with the allocator restricted to three
registers per class, so spill paths are exercised everywhere.
"""

from __future__ import annotations

import pytest

from wasmlower.spec.runner import find_spec_dir, run_files, scope_files, totals

SPEC = find_spec_dir()
needs_spec = pytest.mark.skipif(SPEC is None, reason="the spec test suite was not found "
                                "(set WASMLOWER_SPEC_DIR or put it at ../shared/wasm-testsuite)")

STRESS_FILES = ["i32.wast", "i64.wast", "conversions.wast", "call.wast", "call_indirect.wast",
                "left-to-right.wast", "loop.wast", "block.wast", "br_if.wast", "func.wast",
                "fac.wast", "memory_trap.wast", "select.wast", "float_exprs.wast",
                "unwind.wast", "stack.wast", "switch.wast"]


def _run(paths, **kw):
    from wasmlower.spec.engine import WasmlowerAdapter
    results = run_files(paths, WasmlowerAdapter(**kw), ("mvp", "2.0-scalar"), SPEC)
    failures = [f"{r.file}:{f}" for r in results.values() for f in r.failures]
    return totals(results), failures


@needs_spec
def test_in_scope_spec_files_pass_with_checks() -> None:
    total, failures = _run(scope_files(SPEC, ("mvp", "2.0-scalar")), check=True)
    assert failures == [], "\n".join(map(str, failures[:20]))
    for kind in ("assert_return", "assert_trap", "assert_exhaustion", "assert_invalid",
                 "assert_malformed"):
        assert total[kind]["passed"] > 0, kind


@needs_spec
def test_spec_files_pass_with_three_registers() -> None:
    total, failures = _run([SPEC / f for f in STRESS_FILES], check=True, stress=True)
    assert failures == [], "\n".join(map(str, failures[:20]))
    assert total["assert_return"]["passed"] > 0 and total["assert_trap"]["passed"] > 0

"""A subset of the spec suite on AArch64 under emulation (the full run: `wasmlower spec
--target aarch64`, see docs/AARCH64.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

SPEC = Path(__file__).resolve().parents[3] / "shared" / "wasm-testsuite"
FILES = ["i32.wast", "i64.wast", "f32.wast", "f64.wast", "conversions.wast", "float_misc.wast",
         "call_indirect.wast", "memory_trap.wast", "br_table.wast", "left-to-right.wast",
         "traps.wast", "memory_grow-core.wast", "bulk.wast", "skip-stack-guard-page.wast",
         "int_exprs.wast", "float_exprs.wast"]


@pytest.fixture(scope="module")
def adapter():
    from wasmlower.spec.engine import WasmlowerAdapter
    return WasmlowerAdapter(target="aarch64")


@pytest.mark.skipif(not SPEC.exists(), reason="no ../shared/wasm-testsuite")
@pytest.mark.parametrize("name", FILES)
def test_spec_file(name, adapter):
    from wasmlower.spec.runner import DEFAULT_TIERS, run_file
    path = SPEC / name
    if not path.exists():
        pytest.skip(f"{name} is not in this copy of the suite")
    result = run_file(path, adapter, DEFAULT_TIERS, SPEC)
    assert result.error is None
    assert result.failures == [], "\n".join(map(str, result.failures[:10]))
    assert result.total("passed") > 0

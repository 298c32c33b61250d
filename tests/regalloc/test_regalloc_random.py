"""Property test: random programs, allocated, checked and executed.

Random structured programs (diamonds and switches with block parameters,
counted loops whose back edges permute their parameters, calls with stack
arguments, two-address ops, fixed registers, early defs, temps) are run on
vregs and, after allocation, on registers and slots with the moves executed
and clobbered registers filled with garbage.  Outputs must agree, and the
checker must accept the allocation.
"""

from __future__ import annotations

import random

import pytest
import regalloc_fakes as fakes
from hypothesis import given, settings
from hypothesis import strategies as st

from wasmlower.ir import verify
from wasmlower.regalloc import allocate, isolate_edge_args


def roundtrip(seed: int, size: int, stress: bool, layout: str = "rpo", calls: bool = True,
              runs: int = 2) -> None:
    rng = random.Random(seed)
    f, inputs = fakes.ProgramGen(rng, size, calls=calls).function(f"rand{seed}")
    isolate_edge_args(f)
    verify(f)
    a = allocate(f, fakes.FakeISA(), fakes.REGS, stress=stress, check=True, layout=layout)
    for run in range(runs):
        args = inputs if run == 0 else [rng.getrandbits(64) for _ in inputs]
        want = fakes.run_ir(f, args)
        got = fakes.run_allocated(f, a, args, seed=run)
        assert (got.out, got.ret) == (want.out, want.ret), f"seed {seed}, stress {stress}"


@pytest.mark.parametrize("stress", [False, True], ids=["normal", "stress"])
@pytest.mark.parametrize("seed", range(120))
def test_random_programs(seed, stress):
    roundtrip(seed, 20 + seed % 60, stress)


@pytest.mark.parametrize("seed", range(1000, 1030))
def test_random_programs_function_layout(seed):
    roundtrip(seed, 40, True, layout="func")


@pytest.mark.parametrize("seed", range(2000, 2020))
def test_random_programs_without_calls(seed):
    # Without calls fewer values spill in normal mode: other paths of the scan.
    roundtrip(seed, 60, False, calls=False)
    roundtrip(seed, 60, True, calls=False)


@pytest.mark.parametrize("seed", range(3000, 3004))
def test_large_random_programs(seed):
    roundtrip(seed, 400, seed % 2 == 1, runs=1)


@settings(max_examples=60, deadline=None, database=None)
@given(seed=st.integers(0, 2**32), size=st.integers(1, 120), stress=st.booleans(),
       calls=st.booleans())
def test_hypothesis_programs(seed, size, stress, calls):
    roundtrip(seed, size, stress, calls=calls, runs=1)

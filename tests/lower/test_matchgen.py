"""Generated matchers: readable source, the cache, agreement with the interpreter, speed."""

from __future__ import annotations

import re

import pytest

from wasmlower.lower import (
    benchmark_matchers,
    clear_cache,
    generate,
    interpret,
    load_isa_dir,
    load_rules,
)
from wasmlower.lower.matchgen import STATS, cache_dir

from .helpers import FIXTURES, TOY, Recorder, corpus, pure_defs


def test_generated_source_is_readable(toy) -> None:
    src = generate(toy.ruleset)
    first = src.splitlines()[0]
    assert re.fullmatch(r"# Generated from tests/lower/fixtures/toy/ops\.rules, "
                        r"tests/lower/fixtures/toy/lower\.rules \(sha256 [0-9a-f]{64}\)\. "
                        r"Do not edit\.", first)
    assert "def lower_iadd(ctx, inst):" in src
    stripped = "\n".join(line.strip() for line in src.splitlines())
    assert ("# rule tests/lower/fixtures/toy/lower.rules:7 add_imm\n"
            "# match: (iadd i32 (iconst k) x)  (commuted)\n"
            "# if:    simm32(k)\n"
            "# =>     (add32_ri x [k])\n"
            "v_k = _d_0.imm[0]\n") in stripped
    assert src == toy.module.__loader__.get_data(toy.module.__file__).decode()
    compile(src, "<matchers>", "exec")


def test_each_test_is_computed_once_per_path(toy) -> None:
    """Along any path through a matcher, no occurrence is computed twice."""
    for line_no, scope_error in _recomputations(generate(toy.ruleset)):
        pytest.fail(f"line {line_no}: {scope_error}")


def _recomputations(src: str):
    stack: list[tuple[int, str]] = []
    for no, line in enumerate(src.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        stack = [(i, n) for i, n in stack if i <= indent]
        m = re.match(r"\s*(_[dotm][\w]*) = ", line)
        if m:
            if any(n == m.group(1) for _, n in stack):
                yield no, f"{m.group(1)} computed again"
            stack.append((indent, m.group(1)))


def test_cache_hit_on_second_load(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("WASMLOWER_CACHE_DIR", str(tmp_path))
    clear_cache()
    try:
        generated = STATS["generated"]
        first = load_isa_dir(TOY)
        assert not first.ruleset.cached and STATS["generated"] == generated + 1
        [path] = (tmp_path / "matchers").glob("toy-lower-*.py")
        assert cache_dir() == tmp_path and path.read_text().startswith("# Generated from")
        clear_cache()
        hits = STATS["cache_hits"]
        second = load_isa_dir(TOY)
        assert second is not first and second.ruleset.cached
        assert STATS["generated"] == generated + 1 and STATS["cache_hits"] == hits + 1
        assert load_isa_dir(TOY) is second            # per-process cache
    finally:
        clear_cache()


def test_changed_rules_change_the_digest(tmp_path, toy) -> None:
    for name in ("ops.rules", "lower.rules", "regs.py", "preds.py"):
        (tmp_path / name).write_text((TOY / name).read_text())
    assert load_isa_dir(tmp_path, "toy").ruleset.digest != toy.ruleset.digest  # other path
    lower = tmp_path / "lower.rules"
    before = load_isa_dir(tmp_path, "toy", errors=[]).ruleset.digest
    lower.write_text(lower.read_text() + "\n# a comment\n")
    assert load_isa_dir(tmp_path, "toy", errors=[]).ruleset.digest != before


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_compiled_and_interpreted_agree(toy, seed) -> None:
    n = 0
    for f in corpus(30, seed):
        defs = pure_defs(f)
        for _, inst in f.insts():
            compiled, interpreted = Recorder(defs), Recorder(defs)
            fn = toy.matchers.get(inst.op)
            ok = fn is not None and fn(compiled, inst)
            assert ok == interpret(toy.ruleset, interpreted, inst), inst
            assert compiled.log == interpreted.log, inst
            n += ok
    assert n > 1000


def test_compiled_and_interpreted_agree_on_rewrites() -> None:
    rs = load_rules([FIXTURES / "opt" / "opt.rules"])
    fired = 0
    for f in corpus(30, 7):
        defs = pure_defs(f)
        for _, inst in f.insts():
            compiled, interpreted = Recorder(defs), Recorder(defs)
            fn = rs.matchers.get(inst.op)
            ok = fn is not None and fn(compiled, inst)
            assert ok == interpret(rs, interpreted, inst), inst
            assert compiled.log == interpreted.log, inst
            fired += ok
    assert fired > 10


def test_benchmark_matchers(toy, capsys) -> None:
    rates = benchmark_matchers(toy, corpus(20, 5), min_time=0.05, verbose=False)
    with capsys.disabled():
        print(f"\n  toy matchers: compiled {rates['compiled']:,.0f} rules matched/s, "
              f"interpreted {rates['interpreted']:,.0f}/s ({rates['speedup']:.1f}x)")
    assert rates["compiled"] > 0 and rates["interpreted"] > 0

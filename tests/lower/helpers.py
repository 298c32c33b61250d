"""Helpers of the wasmlower.lower tests: loading broken fixtures, a random IR corpus."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from wasmlower.ir import I32, Builder, Function, Value
from wasmlower.ir.function import Inst
from wasmlower.lower.isa import RuleSet, _module_from, build_ruleset

FIXTURES = Path(__file__).parent / "fixtures"
TOY = FIXTURES / "toy"
BROKEN = FIXTURES / "broken"


def toy_modules() -> tuple[Any, Any]:
    regs = _module_from(TOY, "regs", None)
    preds = _module_from(TOY, "preds", None)
    return regs, preds


def load_toy_with(*rule_files: Path, errors: list | None = None) -> RuleSet:
    """The toy ISA's op declarations plus ``rule_files`` (not toy/lower.rules)."""
    regs, preds = toy_modules()
    return build_ruleset("toy", "lower", [TOY / "ops.rules", *rule_files], preds, regs.REGS,
                         frozenset(regs.FLOAT_CLASSES), errors,
                         placeholders=frozenset(regs.TEMPLATE_PLACEHOLDERS))


def random_function(rng: random.Random, n: int = 30, name: str = "f") -> Function:
    """A straight-line function of toy-lowerable i32 ops with shared, nested operands."""
    f = Function(name, [I32, I32], [I32])
    b = Builder(f)
    entry = b.block(params=[I32, I32])
    vals: list[Value] = list(entry.params)
    consts = [0, 1, 2, 3, 4, 7, 8, 16, -1, 1 << 31, (1 << 31) - 1, 5]
    for _ in range(n):
        r = rng.random()
        if r < 0.3:
            vals.append(b.iconst(I32, rng.choice(consts)))
            continue
        x, y = rng.choice(vals), rng.choice(vals)
        op = rng.choice(["iadd", "iadd", "imul", "ishl", "isub", "icmp"])
        if op == "icmp":
            vals.append(b.op("icmp", x, y, imm=(rng.choice(["eq", "ne", "slt", "ult"]),)))
        else:
            vals.append(b.op(op, x, y))
    last = vals[-1]
    then, other = f.new_block(), f.new_block()
    b.brif(last, then, [], other, [])
    b.switch_to(then)
    b.ret(rng.choice(vals))
    b.switch_to(other)
    b.ret(b.op("iadd", rng.choice(vals), b.iconst(I32, 1)))
    return f


def corpus(count: int = 40, seed: int = 1) -> list[Function]:
    rng = random.Random(seed)
    return [random_function(rng, 30, f"f{i}") for i in range(count)]


class Recorder:
    """A matcher context that records what a matcher builds, and builds nothing."""

    def __init__(self, defs: dict[Value, Inst]) -> None:
        self.defs = defs
        self.log: list[tuple] = []
        self.next_id = 10_000

    def _name(self, v: Any) -> Any:
        return f"v{v.id}" if isinstance(v, Value) else v

    def begin(self, index: int) -> None:
        self.log.append(("begin", index))

    def value(self, op: str, args: tuple, imms: tuple, type: Any) -> Value:
        v = Value(self.next_id, type)
        self.next_id += 1
        self.log.append(("value", op, tuple(map(self._name, args)), imms, type, v.id))
        return v

    def top(self, op: str, args: tuple, imms: tuple) -> None:
        self.log.append(("top", op, tuple(map(self._name, args)), imms))

    def alias(self, value: Value) -> None:
        self.log.append(("alias", value.id))


def pure_defs(f: Function) -> dict[Value, Inst]:
    return {r: i for _, i in f.insts() if not i.info.effects and not i.info.dialect
            for r in i.results}



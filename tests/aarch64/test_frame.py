"""AArch64 frames: x28 and the callee-saved registers are saved with stp, restored with ldp."""

from __future__ import annotations

import random

import pytest
from a64_helpers import instance

from wasmlower.isa.aarch64.emit import pair_slots


def test_pair_slots():
    assert pair_slots("stp", "stur", [(8, "x28")]) == ["stur x28, [x29, #-8]"]
    assert pair_slots("stp", "stur", [(8, "x28"), (16, "x19"), (24, "x20")]) == [
        "stp x19, x28, [x29, #-16]", "stur x20, [x29, #-24]"]
    assert pair_slots("ldp", "ldur", [(16, "x19"), (24, "x20")]) == ["ldp x20, x19, [x29, #-24]"]
    assert pair_slots("ldp", "ldur", []) == []


def _chain(n: int, seed: int) -> str:
    """n locals, all live across a call, combined after it (callee-saved registers)."""
    rng = random.Random(seed)
    sets = "".join(f"(local.set {i + 1} (i64.add (local.get 0) (i64.const {rng.getrandbits(20)})))"
                   for i in range(n))
    use = "(local.get 1)"
    for i in range(2, n + 1):
        use = f"(i64.xor (i64.rotl {use} (i64.const {i})) (local.get {i}))"
    return f"(local i64{' i64' * (n - 1)}) {sets} (drop (call $leaf (local.get 0))) {use}"


def _module() -> str:
    funcs = ['(func $leaf (param i64) (result i64) (i64.mul (local.get 0) (i64.const 3)))']
    for n in range(1, 12):
        inner = _chain(n, n).replace("(call $leaf", "(call $leaf")
        funcs.append(f'(func $f{n} (export "f{n}") (param i64) (result i64) {inner})')
    # Callers that keep their own values across calls of the functions above.
    for n in (1, 2, 5, 9):
        body = _chain(n, 100 + n).replace("(call $leaf", f"(call $f{12 - n}")
        funcs.append(f'(func (export "g{n}") (param i64) (result i64) {body})')
    return "(module " + "\n".join(funcs) + ")"


@pytest.mark.parametrize("stress", [False, True])
def test_callee_saved_registers_survive_calls(stress):
    wasmtime = pytest.importorskip("wasmtime")
    wat = _module()
    store = wasmtime.Store()
    ref = wasmtime.Instance(store, wasmtime.Module(store.engine, wat), [])
    inst = instance(wat, stress=stress)
    for name in [f"f{n}" for n in range(1, 12)] + ["g1", "g2", "g5", "g9"]:
        for a in (0, 1, -1, 0x123456789ABCDEF, -(1 << 63)):
            assert inst.exports[name](a) == ref.exports(store)[name](store, a), (name, a)


def test_prologue_pairs_the_saves():
    """f11 uses all nine callee-saved registers: x28 + 9 in 5 stp; 9 restored in 4 ldp + ldur."""
    import wasmtime

    from wasmlower.explain import explain
    text = explain(bytes(wasmtime.wat2wasm(_module())), 11, target="aarch64")
    insts = [ln.split()[5:7] + [""] for ln in text.splitlines() if ln.startswith("  0x")]
    saves = [i for i in insts if i[0] in ("stp", "stur") and i[1] != "x29,"]
    restores = [i for i in insts if i[0] in ("ldp", "ldur") and i[1] not in ("x29,", "x28,")]
    assert [i[0] for i in saves] == ["stp"] * 5
    assert [i[0] for i in restores] == ["ldp"] * 4 + ["ldur"]

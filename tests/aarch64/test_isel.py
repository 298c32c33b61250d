"""AArch64 instruction selection: logical immediates, shifted-register operands,
madd/msub and tbz/tbnz.

Every rule is checked three ways: it fires on the IR it is meant for (and a
near miss falls back to the general form); the lowered function, run under
unicorn on edge inputs with junk in the other registers, agrees with the
reference interpreter of generic IR (``lower.semantics.evaluate``) and leaves
an i32 result zero-extended (ops.rules' invariant), with the normal and the
stress (3 registers) allocation; and whole modules agree with Wasmtime.
"""

from __future__ import annotations

import itertools
import random

import pytest
from a64_helpers import instance

from wasmlower import pipeline
from wasmlower.explain import compile_lowered
from wasmlower.ir import parse_function
from wasmlower.isa.aarch64 import emit
from wasmlower.isa.aarch64.preds import bit_index, logimm, single_bit
from wasmlower.lower.semantics import Memory, evaluate

MASK = {"i32": (1 << 32) - 1, "i64": (1 << 64) - 1}
BITS = {"i32": 32, "i64": 64}
EDGES = {"i32": [0, 1, 2, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x12345678, 0xDEADBEEF, 0xFF00FF00],
         "i64": [0, 1, 2, (1 << 63) - 1, 1 << 63, (1 << 64) - 1, 0x123456789ABCDEF0,
                 0xDEADBEEF00000001, 0xFFFFFFFF, 1 << 32]}


# ---------------------------------------------------------------------------
# The predicates
# ---------------------------------------------------------------------------

def _encodable_logical_immediates(sf: int) -> set[int]:
    """Every immediate of `and` (32 or 64 bits), from capstone decoding all encodings."""
    import capstone
    md = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    out = set()
    for n, immr, imms in itertools.product((0, 1) if sf else (0,), range(64), range(64)):
        word = (0x92000000 if sf else 0x12000000) | n << 22 | immr << 16 | imms << 10 | 1 << 5
        for insn in md.disasm(word.to_bytes(4, "little"), 0):      # invalid ones decode to nothing
            out.add(int(insn.op_str.rsplit("#", 1)[1], 16))
    return out


@pytest.mark.parametrize("bits", [32, 64])
def test_logimm_is_exactly_the_encodable_set(bits):
    valid = _encodable_logical_immediates(bits == 64)
    assert len(valid) == {32: 1302, 64: 5334}[bits]
    assert all(logimm(v, bits) for v in valid)
    rng = random.Random(bits)
    others = [rng.getrandbits(bits) for _ in range(50000)]
    others += [(1 << i) - 1 for i in range(bits + 1)] + [(1 << i) + 1 for i in range(bits)]
    assert [v for v in others if logimm(v, bits) != (v in valid)] == []
    # IR constants are signed: -16 is 0xff..f0.
    assert logimm(-16, bits) and not logimm(-1, bits) and not logimm(0, bits)


def test_single_bit():
    assert single_bit(-(1 << 31), 32) and bit_index(-(1 << 31), 32) == 31
    assert single_bit(-(1 << 63), 64) and bit_index(-(1 << 63), 64) == 63
    assert single_bit(1 << 32, 64) and not single_bit(1 << 32, 32)
    assert not single_bit(0, 32) and not single_bit(3, 64) and bit_index(8, 32) == 3


def test_new_32_bit_ops_write_w_registers():
    """i32 results stay zero-extended: every new 32-bit op writes {out:32}."""
    from wasmlower.lower.isa import load_isa
    decls = load_isa("aarch64").decls
    names = [f"{m}32_{s}" for m in ("add", "sub", "and", "orr", "eor")
             for s in ("lsl", "lsr", "asr")]
    names += ["and32_ri", "orr32_ri", "eor32_ri", "madd32", "msub32"]
    for name in names:
        assert decls[name].template.split()[1] == "{out:32},", name


# ---------------------------------------------------------------------------
# IR functions lowered, compiled and run under unicorn
# ---------------------------------------------------------------------------

CODE, STACK, VMCTX, EXIT = 0x10000, 0x800000, 0x900000, 0xA00000


def _signed(v: int, ty: str) -> int:
    v &= MASK[ty]
    return v - (1 << BITS[ty]) if v >> (BITS[ty] - 1) else v


def run_a64(func, args, stress=False):
    """Run lowered ``func`` (no calls, no memory) under unicorn; the x0 it returns."""
    import unicorn
    from unicorn import arm64_const as A
    mc = compile_lowered(func, check=True, stress=stress, target="aarch64")
    uc = unicorn.Uc(unicorn.UC_ARCH_ARM64, unicorn.UC_MODE_ARM)
    uc.mem_map(CODE, (len(mc.code) + 0xFFF) & ~0xFFF)
    uc.mem_write(CODE, mc.code)
    uc.mem_map(STACK, 0x10000)
    uc.mem_map(VMCTX, 0x1000)                  # [vmctx] = the store; its stack_limit = 0
    uc.mem_write(VMCTX, (VMCTX + 0x100).to_bytes(8, "little"))
    for i in range(28):                        # junk, in the upper halves too
        uc.reg_write(A.UC_ARM64_REG_X0 + i, 0xBAD0_0000_0000_0000 | (i * 0x1111_1111))
    for i, a in enumerate(args):
        uc.reg_write(A.UC_ARM64_REG_X0 + i, a)
    uc.reg_write(A.UC_ARM64_REG_X28, VMCTX)
    uc.reg_write(A.UC_ARM64_REG_X30, EXIT)
    uc.reg_write(A.UC_ARM64_REG_SP, STACK + 0x10000)
    uc.emu_start(CODE, EXIT, count=100000)
    assert uc.reg_read(A.UC_ARM64_REG_PC) == EXIT, "did not return"
    return uc.reg_read(A.UC_ARM64_REG_X0)


def check(text: str, inputs, expect_op: str | None, stress_too: bool = True):
    """Lower ``text``; ``expect_op`` (or no new op) fires; results match ``evaluate``."""
    ref = parse_function(text)
    low = parse_function(text)
    pipeline.lower(low, "aarch64")
    ops = [i.op.split(".", 1)[1] for _, i in low.insts() if i.op.startswith("aarch64.")]
    if expect_op is not None:
        assert expect_op in ops, (expect_op, ops, text)
    width = 32 if _result_is_i32(text) else 64
    for args in inputs:
        kind, values = evaluate(ref, args, Memory(0))
        assert kind == "return"
        want = values[0]
        for stress in ((False, True) if stress_too else (False,)):
            got = run_a64(parse_and_lower(text), args, stress)
            assert got >> width == 0, f"i32 result not zero-extended: {got:#x}"
            assert got == want, (text, [hex(a) for a in args], hex(got), hex(want), stress)
    return ops


def parse_and_lower(text: str):
    f = parse_function(text)
    pipeline.lower(f, "aarch64")
    return f


def _result_is_i32(text: str) -> bool:
    return text.split("\n", 1)[0].rstrip(" {").endswith("-> i32")


def _pairs(ty: str, n: int, seed: int):
    rng = random.Random(seed)
    edges = EDGES[ty]
    out = [(a, b) for a, b in zip(edges, reversed(edges))]
    out += [(rng.choice(edges), rng.getrandbits(BITS[ty])) for _ in range(n)]
    return out


SHIFT_KINDS = {"ishl": "lsl", "ushr": "lsr", "sshr": "asr"}
MNEMONIC = {"iadd": "add", "isub": "sub", "band": "and", "bor": "orr", "bxor": "eor"}


@pytest.mark.parametrize("ty", ["i32", "i64"])
@pytest.mark.parametrize("op", list(MNEMONIC))
@pytest.mark.parametrize("shift", list(SHIFT_KINDS))
def test_shifted_register_operands(op, shift, ty):
    w = BITS[ty]
    for k, left in itertools.product((0, 1, 7, w - 1, w, w + 1, -1), (False, True)):
        a, b = ("v3", "v0") if left else ("v0", "v3")
        text = (f"func @f({ty}, {ty}) -> {ty} {{\nblock0(v0: {ty}, v1: {ty}):\n"
                f"    v2 = iconst.{ty} [{k}]\n    v3 = {shift} v1, v2\n"
                f"    v4 = {op} {a}, {b}\n    return v4\n}}")
        fires = not (left and op == "isub")           # x - (y << k) only
        expect = f"{MNEMONIC[op]}{w}_{SHIFT_KINDS[shift]}" if fires else None
        ops = check(text, _pairs(ty, 3, k), expect, stress_too=k == w + 1)
        if not fires:
            assert not any(o.endswith(("_lsl", "_lsr", "_asr")) for o in ops), ops


@pytest.mark.parametrize("ty", ["i32", "i64"])
def test_madd_msub(ty):
    w = BITS[ty]
    forms = [("iadd v3, v2", f"madd{w}"), ("iadd v2, v3", f"madd{w}"),
             ("isub v2, v3", f"msub{w}"), ("isub v3, v2", None)]
    for body, expect in forms:
        text = (f"func @f({ty}, {ty}, {ty}) -> {ty} {{\nblock0(v0: {ty}, v1: {ty}, v2: {ty}):\n"
                f"    v3 = imul v0, v1\n    v4 = {body}\n    return v4\n}}")
        inputs = [(a, b, c) for (a, b), c in zip(_pairs(ty, 4, w), reversed(EDGES[ty]))]
        ops = check(text, inputs, expect)
        if expect is None:
            assert not any(o.startswith(("madd", "msub")) for o in ops), ops
    # Beside a shifted operand or an immediate, each form is still right.
    for other, expect in (("v5 = ishl v2, v6", f"madd{w}"), (f"v5 = iconst.{ty} [7]", None)):
        text = (f"func @f({ty}, {ty}, {ty}) -> {ty} {{\nblock0(v0: {ty}, v1: {ty}, v2: {ty}):\n"
                f"    v6 = iconst.{ty} [3]\n    v3 = imul v0, v1\n    {other}\n"
                f"    v4 = iadd v3, v5\n    return v4\n}}")
        check(text, [(3, 5, 7), (EDGES[ty][4], 3, 1)], expect)


LOGIMM_CASES = {
    "i32": [1, 3, 0x80000000, 0xFFFFFFF0, 0x55555555, 0x0FF00FF0, 0x7FFFFFFF, 0xFFFFFFFE,
            0x00FF00FF, 0, 0xFFFFFFFF, 0x12345, 5],
    "i64": [1, 0x5555555555555555, 0xFFFF0000FFFF0000, 1 << 63, 0xFFFFFFFF,
            0xFFFFFFFFFFFFFFF0, 0x7FFFFFFFFFFFFFFE, 0x0F0F0F0F0F0F0F0F, 0x0000FFFF0000FFFE,
            0, (1 << 64) - 1, 0x123456789, 1 << 32],
}


@pytest.mark.parametrize("ty", ["i32", "i64"])
@pytest.mark.parametrize("op", ["band", "bor", "bxor"])
def test_logical_immediates(op, ty):
    w = BITS[ty]
    for k, left in itertools.product(LOGIMM_CASES[ty], (False, True)):
        a, b = ("v1", "v0") if left else ("v0", "v1")
        text = (f"func @f({ty}) -> {ty} {{\nblock0(v0: {ty}):\n"
                f"    v1 = iconst.{ty} [{_signed(k, ty)}]\n    v2 = {op} {a}, {b}\n"
                f"    return v2\n}}")
        expect = f"{MNEMONIC[op]}{w}_ri" if logimm(k, w) else f"{MNEMONIC[op]}{w}"
        ops = check(text, [(v,) for v in EDGES[ty]], expect, stress_too=not left)
        assert (f"{MNEMONIC[op]}{w}_ri" in ops) == logimm(k, w)


@pytest.mark.parametrize("ty", ["i32", "i64"])
@pytest.mark.parametrize("form", ["eq", "ne", "plain"])
def test_test_bit_and_branch(form, ty):
    w = BITS[ty]
    bits = [0, 5, 31] + ([32, 63] if ty == "i64" else [])
    for k, left in itertools.product([1 << b for b in bits] + [3, 0x30], (False, True)):
        a, b = ("v1", "v0") if left else ("v0", "v1")
        if form == "plain":
            test = "    brif v2, block1, block2\n"
        else:
            test = (f"    v3 = iconst.{ty} [0]\n    v4 = icmp v2, v3 [{form}]\n"
                    "    brif v4, block1, block2\n")
        text = (f"func @f({ty}) -> i32 {{\nblock0(v0: {ty}):\n"
                f"    v1 = iconst.{ty} [{_signed(k, ty)}]\n    v2 = band {a}, {b}\n{test}"
                f"block1:\n    v5 = iconst.i32 [1]\n    return v5\n"
                f"block2:\n    v6 = iconst.i32 [2]\n    return v6\n}}")
        mn = "tbz" if form == "eq" else "tbnz"
        expect = f"{mn}{w}" if single_bit(k, w) else None
        inputs = [(v,) for v in EDGES[ty]] + [(k,), (~k & MASK[ty],)]
        ops = check(text, inputs, expect, stress_too=not left)
        if expect is None:
            assert not any(o.startswith("tb") for o in ops), ops
        else:
            lowered = parse_and_lower(text)
            (br,) = [i for _, i in lowered.insts() if i.op == f"aarch64.{expect}"]
            assert br.imm == (bit_index(k, w),)


def test_tbz_out_of_range_is_relaxed(monkeypatch):
    """With a tiny tbz reach, the branch is rewritten around a b, and still right."""
    monkeypatch.setattr(emit, "TEST_RANGE", 8)
    text = ("func @f(i64) -> i32 {\nblock0(v0: i64):\n    v1 = iconst.i64 [4294967296]\n"
            "    v2 = band v0, v1\n    v3 = iconst.i64 [0]\n    v4 = icmp v2, v3 [eq]\n"
            "    brif v4, block1, block2\nblock1:\n    v5 = iconst.i32 [1]\n    return v5\n"
            "block2:\n    v6 = iconst.i32 [2]\n    return v6\n}")
    mc = compile_lowered(parse_and_lower(text), target="aarch64")
    assert any(mi.text.startswith("tbnz") for mi in mc.insts)          # inverted around a b
    check(text, [(0,), (1 << 32,), ((1 << 64) - 1,), ((1 << 32) - 1,)], "tbz64")


# ---------------------------------------------------------------------------
# Whole modules against Wasmtime
# ---------------------------------------------------------------------------

WAT = """(module
  (func (export "add_shl") (param i32 i32) (result i32)
    (i32.add (local.get 0) (i32.shl (local.get 1) (i32.const 35))))
  (func (export "sub_shr_s") (param i64 i64) (result i64)
    (i64.sub (local.get 0) (i64.shr_s (local.get 1) (i64.const 7))))
  (func (export "or_shr_u") (param i32 i32) (result i32)
    (i32.or (i32.shr_u (local.get 1) (i32.const 31)) (local.get 0)))
  (func (export "xor_shl") (param i64 i64) (result i64)
    (i64.xor (local.get 0) (i64.shl (local.get 1) (i64.const 63))))
  (func (export "madd") (param i32 i32 i32) (result i32)
    (i32.add (local.get 2) (i32.mul (local.get 0) (local.get 1))))
  (func (export "msub") (param i64 i64 i64) (result i64)
    (i64.sub (local.get 2) (i64.mul (local.get 0) (local.get 1))))
  (func (export "and_k") (param i32) (result i32) (i32.and (local.get 0) (i32.const -16)))
  (func (export "or_k") (param i64) (result i64)
    (i64.or (local.get 0) (i64.const 0x5555555555555555)))
  (func (export "xor_k") (param i32) (result i32) (i32.xor (i32.const 0x80000000) (local.get 0)))
  (func (export "and_nok") (param i64) (result i64) (i64.and (local.get 0) (i64.const 0x123456789)))
  (func (export "tb") (param i32) (result i32)
    (if (result i32) (i32.and (local.get 0) (i32.const 0x80000000))
      (then (i32.const 7)) (else (i32.const 9))))
  (func (export "tbz") (param i64) (result i32)
    (if (result i32) (i64.eqz (i64.and (local.get 0) (i64.const 0x100000000)))
      (then (i32.const 1)) (else (i32.const 2))))
  (func (export "tbnz") (param i64) (result i32)
    (if (result i32) (i64.ne (i64.and (i64.const 0x8000000000000000) (local.get 0)) (i64.const 0))
      (then (i32.const 3)) (else (i32.const 4))))
  (func (export "loop") (param i32) (result i32) (local i32)
    (block (loop
      (br_if 1 (i32.and (local.get 0) (i32.const 0x400)))
      (local.set 1 (i32.add (local.get 1) (i32.shl (local.get 0) (i32.const 2))))
      (local.set 0 (i32.add (local.get 0) (i32.const 1)))
      (br 0)))
    (local.get 1)))"""


@pytest.mark.parametrize("stress", [False, True])
def test_modules_agree_with_wasmtime(stress):
    wasmtime = pytest.importorskip("wasmtime")
    store = wasmtime.Store()
    ref = wasmtime.Instance(store, wasmtime.Module(store.engine, WAT), [])
    ex = instance(WAT, stress=stress).exports
    rng = random.Random(7)
    for name in ("add_shl", "sub_shr_s", "or_shr_u", "xor_shl", "madd", "msub", "and_k",
                 "or_k", "xor_k", "and_nok", "tb", "tbz", "tbnz", "loop"):
        fn = ref.exports(store)[name]
        params = fn.type(store).params
        for _ in range(12):
            args = []
            for p in params:
                bits = 64 if str(p) == "i64" else 32
                v = rng.choice(EDGES[f"i{bits}"] + [rng.getrandbits(bits)])
                args.append(v - (1 << bits) if v >> (bits - 1) else v)
            if name == "loop":
                args = [args[0] % 2048]
            assert ex[name](*args) == fn(store, *args), (name, args)

"""AArch64 float constants: movi for +0.0, fmov's 8-bit immediate, the literal pool.

The predicate ``fimm8`` is checked against every fmov immediate capstone
decodes and keystone encodes; each rule fires where meant (and a near miss
takes the next form); constants come out bit-exact (NaN payloads, -0.0,
denormals, infinities) under unicorn, with the normal and the stress
(3 registers) allocation, with and without the literal pool; pool entries are
aligned; a load out of ldr's +-1 MiB reach falls back to movz/movk + fmov.

The literal pool needs the assembler back end to step over data words
(``emit.data_in_code``: capstone's skipdata mode in ``emit.assemble``); the
``pool`` fixture (conftest.py) turns that on for a test, ``no_pool`` off.
"""

from __future__ import annotations

import random
import re
import struct

import pytest
from a64_helpers import compile_a64, instance

from wasmlower import pipeline
from wasmlower.emit import assemble
from wasmlower.ir import parse_function
from wasmlower.isa.aarch64 import emit
from wasmlower.isa.aarch64.preds import fimm8, fimm8_code, literal, mov_count


def f32(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def f64(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


# ---------------------------------------------------------------------------
# The predicate against capstone and keystone
# ---------------------------------------------------------------------------

def _fmov_immediates(width: int) -> dict[int, int]:
    """bits -> imm8 for every `fmov sN/dN, #imm` capstone decodes (256 each)."""
    import capstone
    md = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    out = {}
    for imm8 in range(256):
        word = (0x1E201000 if width == 32 else 0x1E601000) | imm8 << 13
        (insn,) = md.disasm(word.to_bytes(4, "little"), 0)
        assert insn.mnemonic == "fmov"
        value = float(insn.op_str.rsplit("#", 1)[1])
        bits = f32(value) if width == 32 else f64(value)
        out[bits] = imm8
    return out


@pytest.mark.parametrize("width", [32, 64])
def test_fimm8_is_exactly_the_encodable_set(width):
    valid = _fmov_immediates(width)
    assert len(valid) == 256
    for bits, imm8 in valid.items():
        assert fimm8(bits, width) and fimm8_code(bits, width) == imm8, hex(bits)
    # Near misses: one more fraction bit, exponents just out of range, zero,
    # denormals, infinities, NaNs, and random patterns.
    one_ulp = 1 << (19 if width == 32 else 48)
    near = [b ^ one_ulp >> 1 for b in valid] + [b + one_ulp for b in valid]
    pack = f32 if width == 32 else f64
    near += [pack(x) for x in (0.0, -0.0, 32.0, 0.0625, 0.123046875, 33.0, 1e-40 if width == 32
                               else 1e-310, float("inf"), float("-inf"), float("nan"), 0.1)]
    rng = random.Random(width)
    near += [rng.getrandbits(width) for _ in range(50000)]
    assert [hex(b) for b in near if fimm8(b, width) != (b in valid)] == []


@pytest.mark.parametrize("width", [32, 64])
def test_keystone_encodes_each_imm8_written_in_hex(width):
    """`fmov sN, #0xNN` (what {hex:imm8} renders) is the encoded immediate, through assemble()."""
    reg = "s7" if width == 32 else "d7"
    text = "\n".join(f"fmov {reg}, #{imm8:#x}" for imm8 in range(256))
    code = assemble.assemble(text, "aarch64")
    base = 0x1E201007 if width == 32 else 0x1E601007
    words = [int.from_bytes(code[i:i + 4], "little") for i in range(0, len(code), 4)]
    assert words == [base | imm8 << 13 for imm8 in range(256)]


def test_literal_and_mov_count_agree_with_load_imm():
    rng = random.Random(5)
    values = [0, 1, -1, 0xFFFF0000FFFFFFFF, 0x8000000000000000, 0x3FB999999999999A, 0x7FC00000]
    values += [rng.getrandbits(64) & rng.choice([0xFFFF, 0xFFFF0000FFFF, -1, 0xFFFF00000000FFFF])
               for _ in range(3000)]
    for v in values:
        assert mov_count(v) == len(emit.load_imm("x16", v)), hex(v)
    # f32: pooled with two non-zero halves; f64: with three or four movs.
    assert literal(f32(0.1), 32) and not literal(f32(-0.0), 32) and not literal(0x7F800000, 32)
    assert literal(f64(0.1), 64) and not literal(f64(100.0), 64)
    assert not literal(0xC1E0000000200000, 64) and literal(0xC1E0000000200001, 64)


# ---------------------------------------------------------------------------
# Rules: which form each constant takes
# ---------------------------------------------------------------------------

F32 = {"zero": (0, "fzero"), "neg_zero": (0x80000000, "fconst32"), "one": (f32(1.0), "fmovi32"),
       "m31": (f32(-31.0), "fmovi32"), "eighth": (f32(0.125), "fmovi32"),
       "m1_0625": (f32(-1.0625), "fmovi32"), "thirty_two": (f32(32.0), "fconst32"),
       "tenth": (f32(0.1), "flit32"), "inf": (0x7F800000, "fconst32"),
       "ninf": (0xFF800000, "fconst32"), "nan": (0x7FC00000, "fconst32"),
       "snan": (0x7FA00001, "flit32"), "nan_neg": (0xFFC12345, "flit32"),
       "denorm_min": (1, "fconst32"), "denorm_max": (0x007FFFFF, "flit32"),
       "normal_min": (0x00800000, "fconst32"), "max": (0x7F7FFFFF, "flit32"),
       "pi": (f32(3.14159265), "flit32"), "near_fmov": (f32(1.03125), "fconst32")}
F64 = {"zero": (0, "fzero"), "neg_zero": (1 << 63, "fconst64"), "one": (f64(1.0), "fmovi64"),
       "m31": (f64(-31.0), "fmovi64"), "eighth": (f64(0.125), "fmovi64"),
       "m2": (f64(-2.0), "fmovi64"), "hundred": (f64(100.0), "fconst64"),
       "tenth": (f64(0.1), "flit64"), "inf": (0x7FF0000000000000, "fconst64"),
       "ninf": (0xFFF0000000000000, "fconst64"), "nan": (0x7FF8000000000000, "fconst64"),
       "snan": (0x7FF0000000000001, "fconst64"), "nan_payload": (0xFFF8DEADBEEF0001, "flit64"),
       "denorm_min": (1, "fconst64"), "denorm_max": (0x000FFFFFFFFFFFFF, "fconst64"),
       "normal_min": (0x0010000000000000, "fconst64"), "max": (0x7FEFFFFFFFFFFFFF, "fconst64"),
       "three_movs": (0x7FEF0000FFFFFFFE, "flit64"), "two_movs": (0x7FEFFFFFFFFFFFFE, "fconst64"),
       "pi": (f64(3.141592653589793), "flit64"), "near_fmov": (f64(1.0) + 1, "fconst64"),
       "two_halves": (0xC1E0000000200000, "fconst64")}


def _lowered_op(ty: str, bits: int) -> str:
    f = parse_function(f"func @f() -> {ty} {{\nblock0:\n    v0 = fconst.{ty} [{bits:#x}]\n"
                       "    return v0\n}")
    pipeline.lower(f, "aarch64")
    (op,) = [i.op.split(".", 1)[1] for _, i in f.insts() if i.op not in
             ("aarch64.params", "aarch64.ret")]
    return op


@pytest.mark.parametrize("ty,table", [("f32", F32), ("f64", F64)])
def test_each_constant_takes_its_form(ty, table):
    for name, (bits, op) in table.items():
        assert _lowered_op(ty, bits) == op, (name, hex(bits))


# ---------------------------------------------------------------------------
# Values under unicorn
# ---------------------------------------------------------------------------

def wat_literal(ty: str, bits: int) -> str:
    """The text-format constant with exactly the IEEE pattern ``bits``."""
    w, fb, eb = (32, 23, 8) if ty == "f32" else (64, 52, 11)
    sign = "-" if bits >> (w - 1) else ""
    exp, frac = (bits >> fb) & ((1 << eb) - 1), bits & ((1 << fb) - 1)
    if exp == (1 << eb) - 1:
        return f"{sign}inf" if frac == 0 else f"{sign}nan:{frac:#x}"
    return struct.unpack("<f" if w == 32 else "<d", bits.to_bytes(w // 8, "little"))[0].hex()


MIXED = """(func $id (param f64) (result f64) (local.get 0))
  (func (export "mixed") (param f32 f64) (result f64)
    (f64.add
      (f64.add (f64.promote_f32 (f32.add (local.get 0) (f32.const 0.1)))
               (f64.mul (local.get 1) (f64.const 0.1)))
      (f64.add (call $id (f64.const 0.1))
               (f64.promote_f32 (f32.mul (f32.const 0.1) (f32.const 3.3))))))"""


def _module() -> str:
    funcs = [f'(func (export "{ty}_{name}") (result {ty}) ({ty}.const {wat_literal(ty, bits)}))'
             for ty, table in (("f32", F32), ("f64", F64)) for name, (bits, _) in table.items()]
    # Constants used twice, f32 and f64 mixed (pool alignment), live across a call.
    return "(module " + "\n".join(funcs + [MIXED]) + ")"


def _check_values(stress: bool) -> None:
    wasmtime = pytest.importorskip("wasmtime")
    ex = instance(_module(), stress=stress).exports
    for ty, table in (("f32", F32), ("f64", F64)):
        for name, (bits, _) in table.items():
            assert ex[f"{ty}_{name}"].call_raw([]) == [bits], (ty, name)
    store = wasmtime.Store()
    ref = wasmtime.Instance(store, wasmtime.Module(store.engine, _module()), [])
    for a, b in ((1.5, 2.25), (-0.0, 1e300), (3.0e-39, -7.0), (float("inf"), 0.5)):
        assert ex["mixed"](a, b) == ref.exports(store)["mixed"](store, a, b)


@pytest.mark.parametrize("stress", [False, True])
def test_values_with_literal_pool(pool, stress):
    _check_values(stress)


@pytest.mark.parametrize("stress", [False, True])
def test_values_without_literal_pool(no_pool, stress):
    _check_values(stress)


def _literal_loads(compiled) -> list[tuple[str, int, int]]:
    """(register, load offset, constant offset) of every ldr (literal) in the text."""
    import capstone
    md = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    md.skipdata = True
    out = []
    for f in compiled.functions:
        code = compiled.text[f.offset:f.offset + f.size]
        for insn in md.disasm(code, f.offset):
            m = re.fullmatch(r"([sd]\d+), #(0x[0-9a-f]+)", insn.op_str)
            if insn.mnemonic == "ldr" and m:
                out.append((m.group(1), insn.address, int(m.group(2), 16)))
    return out


def test_pool_is_after_the_code_aligned_and_shared(pool):
    compiled = compile_a64(_module())
    loads = _literal_loads(compiled)
    assert loads, "no literal loads"
    def owner(at):
        return next(f for f in compiled.functions if f.offset <= at < f.offset + f.size)

    for reg, at, target in loads:
        assert target % (8 if reg[0] == "d" else 4) == 0, (reg, hex(target))
        assert owner(target) is owner(at) and target > at         # the function's own pool
    # "mixed" (the last function) loads 0.1 as f64 twice and as f32 twice, and 3.3 as
    # f32: three entries (the f64 first, so the f32 ones need no padding).
    mixed = compiled.functions[-1]
    mine = [(r[0], t) for r, a, t in loads if owner(a) is mixed]
    assert len(mine) == 5 and len(set(mine)) == 3
    (d,) = {t for r, t in mine if r == "d"}
    assert sorted({t for r, t in mine if r == "s"}) == [d + 8, d + 12]
    assert all(f.offset % 16 == 0 for f in compiled.functions)


def test_no_pool_means_no_data(no_pool):
    compiled = compile_a64(_module())
    assert _literal_loads(compiled) == []


# ---------------------------------------------------------------------------
# Reach: ldr (literal) is +-1 MiB
# ---------------------------------------------------------------------------

def test_relax_rewrites_far_literal_loads():
    r = emit.Rendered()
    lines = ["ldr d3, .Lp0", "ldr s4, .Lp1", "nop", "nop", "nop", "ldr d5, .Lp0", "ret"]
    for ln in lines:
        r.lines.append(ln)
        r.info.append(("inst", None, 9))
    r.notes = [("inst", None, str(i)) for i in range(len(lines))]
    literals = {".Lp0": (f64(0.1), 64), ".Lp1": (f32(0.1), 32)}
    # Code is 28 bytes, the pool starts at 32: d at 32, s at 40.
    assert emit.pool_layout(28, literals, set(literals)) == (32, {".Lp0": 32, ".Lp1": 40})
    n = emit.relax(r, "t_", literals=literals, literal_range=32)
    assert n == 2
    assert r.lines[:5] == emit.load_imm("x16", f64(0.1)) + ["fmov d3, x16"]
    assert r.lines[5:8] == emit.load_imm("x16", f32(0.1)) + ["fmov s4, w16"]
    assert "ldr d5, .Lp0" in r.lines                  # near enough: kept
    assert len(r.lines) == len(r.info) == len(r.notes)
    assert r.notes[:5] == [("inst", None, "0")] * 5


def test_far_literal_loads_run_correctly(pool, monkeypatch):
    """With ldr's reach lowered to 64 bytes, most loads take movz/movk + fmov; still exact."""
    monkeypatch.setattr(emit, "LITERAL_RANGE", 64)
    _check_values(False)
    compiled = compile_a64(_module())
    loads = _literal_loads(compiled)
    assert loads and all(target - at < 64 for _, at, target in loads)


# ---------------------------------------------------------------------------
# Template constants: the bounds of the trapping float -> int conversions
# ---------------------------------------------------------------------------

CONVERSIONS = [f"i{w}.trunc_f{f}_{s}" for w in (32, 64) for f in (32, 64) for s in "su"]


def _conversion_inputs(src: str) -> list[float]:
    """Around each bound: the float and its neighbours (bit patterns -1, 0, +1)."""
    pack, unpack, width = ("<f", "<I", 32) if src == "f32" else ("<d", "<Q", 64)
    out = []
    for x in (0.0, -0.0, 0.5, -0.5, -0.9999, -1.0, 1.0, 2.0 ** 31, 2.0 ** 32, 2.0 ** 63, 2.0 ** 64,
              -(2.0 ** 31), -(2.0 ** 63), float("inf"), float("-inf"), float("nan"), 1e30):
        bits = struct.unpack(unpack, struct.pack(pack, x))[0]
        for d in (-1, 0, 1):
            out.append(struct.unpack(pack, struct.pack(unpack, (bits + d) % (1 << width)))[0])
    return out


def test_float_constant_routes(pool):
    em = emit.Emitter.__new__(emit.Emitter)
    em.literals, em.literal_labels, em.pool, em.tag = {}, {}, True, "t_"
    assert em.float_constant("s31", 0, 32) == ["movi d31, #0"]
    assert em.float_constant("s31", f32(-1.0), 32) == ["fmov s31, #0xf0"]
    assert em.float_constant("s31", 0xCF000001, 32) == ["ldr s31, .Lpt_0"]
    assert em.float_constant("d31", 0x41E0000000000000, 64) == emit.literal_route(
        "d31", 0x41E0000000000000)
    em.pool = False
    assert em.float_constant("s31", 0xCF000001, 32) == emit.literal_route("s31", 0xCF000001)


@pytest.mark.parametrize("use_pool,stress", [(True, False), (False, False), (True, True)])
def test_conversion_bounds_agree_with_wasmtime(use_pool, stress, request):
    wasmtime = pytest.importorskip("wasmtime")
    request.getfixturevalue("pool" if use_pool else "no_pool")
    from wasmlower.errors import Trap
    wat = "(module " + " ".join(
        f'(func (export "{c}") (param f{c[11:13]}) (result i{c[1:3]}) ({c} (local.get 0)))'
        for c in CONVERSIONS) + ")"
    ex = instance(wat, stress=stress).exports
    store = wasmtime.Store()
    ref = wasmtime.Instance(store, wasmtime.Module(store.engine, wat), []).exports(store)
    for c in CONVERSIONS:
        for x in _conversion_inputs(f"f{c[11:13]}"):
            try:
                want = ref[c](store, x)
            except wasmtime.Trap:
                want = "trap"
            try:
                got = ex[c](x)
            except Trap:
                got = "trap"
            assert got == want, (c, x)

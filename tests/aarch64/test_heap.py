"""AArch64 heap accesses: register-offset addressing [mem_base, p] for offset 0.

Each access keeps its bounds check (p + offset + size <= memory size, 64-bit);
with offset 0 the address is the register-offset form (no add), with a large
offset the 64-bit address heap_addr_big computes is used the same way.  The
rules fire where meant; every load and store kind, at boundary indices and
offsets, agrees with Wasmtime (values, traps, every byte of memory), with the
normal and the stress (3 registers) allocation.
"""

from __future__ import annotations

import random

import pytest
from a64_helpers import instance

from wasmlower import pipeline
from wasmlower.errors import Trap
from wasmlower.ir import parse_function

# (wasm op, IR kind, result type, size, machine op)
LOADS = [("i32.load", "i32 i32", 4, "load32"), ("i64.load", "i64 i64", 8, "load64"),
         ("f32.load", "f32 f32", 4, "loadf32"), ("f64.load", "f64 f64", 8, "loadf64"),
         ("i32.load8_s", "i32 i8s", 1, "load8s32"), ("i32.load8_u", "i32 i8u", 1, "load8u"),
         ("i32.load16_s", "i32 i16s", 2, "load16s32"), ("i32.load16_u", "i32 i16u", 2, "load16u"),
         ("i64.load8_s", "i64 i8s", 1, "load8s64"), ("i64.load8_u", "i64 i8u", 1, "load8u"),
         ("i64.load16_s", "i64 i16s", 2, "load16s64"), ("i64.load16_u", "i64 i16u", 2, "load16u"),
         ("i64.load32_s", "i64 i32s", 4, "load32s64"), ("i64.load32_u", "i64 i32u", 4, "load32")]
STORES = [("i32.store", "i32", 4, "store32"), ("i64.store", "i64", 8, "store64"),
          ("f32.store", "f32", 4, "storef32"), ("f64.store", "f64", 8, "storef64"),
          ("i32.store8", "i8", 1, "store8"), ("i32.store16", "i16", 2, "store16"),
          ("i64.store8", "i8", 1, "store8"), ("i64.store16", "i16", 2, "store16"),
          ("i64.store32", "i32", 4, "store32")]
OFFSETS = [0, 1, 3, 8, 4080, 4096, 65528, 65535, 65536, 0x7FFFFFFF, 0xFFFFFFFF]


def _ops(text: str) -> list[str]:
    f = parse_function(text)
    pipeline.lower(f, "aarch64")
    return [i.op.split(".", 1)[1] for _, i in f.insts() if i.op.startswith("aarch64.")]


def _expected(op: str, size: int, off: int, ops: list[str]) -> None:
    small = off + size < 4096 and (off % size == 0 or off < 256)       # preds.memimm
    want = f"{op}_rr" if off == 0 or not small else op
    assert want in ops and ("heap_addr_big" in ops) == (not small), (off, ops)
    assert sum(o.startswith(("load", "store")) for o in ops) == 1, ops


@pytest.mark.parametrize("kind,size,op", [(k, s, o) for _, k, s, o in LOADS])
def test_load_rules(kind, size, op):
    ty, k = kind.split()
    for off in OFFSETS:
        _expected(op, size, off, _ops(f"func @f(i32) -> {ty} {{\nblock0(v0: i32):\n"
                                      f"    v1 = load.{ty} v0 [{k}, {off}]\n    return v1\n}}"))


@pytest.mark.parametrize("kind,size,op", [(k, s, o) for _, k, s, o in STORES])
def test_store_rules(kind, size, op):
    ty = {"i8": "i32", "i16": "i32"}.get(kind, kind)
    for off in OFFSETS:
        text = (f"func @f(i32, {ty}) {{\nblock0(v0: i32, v1: {ty}):\n"
                f"    store v0, v1 [{kind}, {off}]\n    return\n}}")
        _expected(op, size, off, _ops(text))


def test_rr_ops_keep_the_bounds_check():
    """The _rr templates are the others' check followed by one register-offset access."""
    from wasmlower.lower.isa import load_isa
    decls = load_isa("aarch64").decls
    for _, _, _, op in LOADS + STORES:
        lines = decls[f"{op}_rr"].template.split("\n")
        base = decls[op].template.split("\n")
        assert lines[:5] == [ln.replace("{off}", "0") for ln in base[:5]], op
        assert base[5] == "add x16, x16, {p}" and len(lines) == 6, op
        assert lines[5].endswith(", [x16, {p}]"), op
        assert lines[5].split()[0] == base[6].split()[0], op


# ---------------------------------------------------------------------------
# Whole modules against Wasmtime
# ---------------------------------------------------------------------------

def _module(pages: str = "1") -> tuple[str, list[tuple[str, str, int, int]]]:
    funcs, names = [], []
    for wop, kind, size, _ in LOADS:
        ty = kind.split()[0]
        for off in OFFSETS:
            name = f"ld_{wop}_{off}"
            body = f"({wop} offset={off} (local.get 0))"
            if ty == "f32":
                body = f"(i32.reinterpret_f32 {body})"
            elif ty == "f64":
                body = f"(i64.reinterpret_f64 {body})"
            rt = {"f32": "i32", "f64": "i64"}.get(ty, ty)
            funcs.append(f'(func (export "{name}") (param i32) (result {rt}) {body})')
            names.append((name, "load", size, off))
    for wop, _, size, _ in STORES:
        ty = wop.split(".")[0]
        for off in OFFSETS:
            name = f"st_{wop}_{off}"
            val = {"i32": "(i32.wrap_i64 (local.get 1))", "i64": "(local.get 1)",
                   "f32": "(f32.reinterpret_i32 (i32.wrap_i64 (local.get 1)))",
                   "f64": "(f64.reinterpret_i64 (local.get 1))"}[ty]
            funcs.append(f'(func (export "{name}") (param i32 i64) '
                         f'({wop} offset={off} (local.get 0) {val}))')
            names.append((name, "store", size, off))
    pattern = "".join(f"\\{(i * 37 + 11) & 0xFF:02x}" for i in range(64))
    data = f'(data (i32.const 0) "{pattern}") (data (i32.const 65472) "{pattern}")'
    grow = '(func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))'
    return f"(module (memory {pages}) {data} {grow} {' '.join(funcs)})", names


def _addresses(size: int, off: int, mem: int) -> list[int]:
    end = mem - size - off                # the last address in bounds, if >= 0
    out = [0, 1, 7, 8, 60, 65472, 65535, 65536, 0x7FFFFFFF, 0x80000000, 0xFFFFFFF8,
           0xFFFFFFFF, 0xFFFFFFFF - off & 0xFFFFFFFF]
    for d in (-8, -1, 0, 1, 2, 8):
        if 0 <= end + d < 1 << 32:
            out.append(end + d)
    return sorted(set(out))


@pytest.mark.parametrize("stress", [False, True])
def test_accesses_agree_with_wasmtime(stress):
    wasmtime = pytest.importorskip("wasmtime")
    wat, names = _module()
    store = wasmtime.Store()
    ref = wasmtime.Instance(store, wasmtime.Module(store.engine, wat), [])
    rex = ref.exports(store)
    ex = instance(wat, stress=stress).exports
    rng = random.Random(stress)
    for pages in (1, 2):
        if pages == 2:
            assert ex["grow"](1) == 1 and rex["grow"](store, 1) == 1
        mem = 65536 * pages
        for name, kind, size, off in names:
            for p in _addresses(size, off, mem):
                args = [p] if kind == "load" else [p, rng.getrandbits(64)]
                sargs = list(args)
                if kind == "store":
                    sargs[1] = args[1] - (1 << 64) if args[1] >> 63 else args[1]
                try:
                    want = ("ok", rex[name](store, *sargs))
                except wasmtime.Trap as e:
                    assert "out of bounds" in str(e), e
                    want = ("trap", "heap_oob")
                try:
                    got = ("ok", ex[name](*sargs))
                except Trap as e:
                    got = ("trap", e.kind)
                assert got == want, (name, hex(p), pages)
                if kind == "store" and want[0] == "ok":
                    # Read the bytes around p + off back through both engines' loads.
                    for q in range(max(0, p + off - 8), min(mem - 8, p + off + 8) + 1, 4):
                        assert ex["ld_i64.load_0"](q) == rex["ld_i64.load_0"](store, q), \
                            (name, hex(p), hex(q))


def test_memory_bytes_after_stores():
    """Every byte of memory after stores at the edges matches Wasmtime's."""
    wasmtime = pytest.importorskip("wasmtime")
    wat, names = _module()
    wat = wat.replace("(memory 1)", '(memory (export "mem") 1)')
    store = wasmtime.Store()
    ref = wasmtime.Instance(store, wasmtime.Module(store.engine, wat), [])
    rex = ref.exports(store)
    ours = instance(wat)
    ex = ours.exports
    rng = random.Random(3)
    for name, kind, size, off in names:
        if kind != "store":
            continue
        for p in _addresses(size, off, 65536):
            v = rng.getrandbits(64)
            v = v - (1 << 64) if v >> 63 else v
            for fn, pre in ((ex[name], ()), (rex[name], (store,))):
                try:
                    fn(*pre, p, v)
                except (Trap, wasmtime.Trap):
                    pass
    assert ours.memory.read(0, 65536) == bytes(rex["mem"].read(store, 0, 65536))

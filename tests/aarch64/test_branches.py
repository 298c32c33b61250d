"""Conditional branches out of range (b.cond/cbz/cbnz reach +-1 MiB) are rewritten."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from a64_helpers import instance

from wasmlower.errors import Trap
from wasmlower.isa.aarch64 import emit
from wasmlower.isa.aarch64.emit import Rendered, relax

BENCH = Path(__file__).resolve().parents[3] / "shared" / "bench"


def _rendered(lines):
    r = Rendered()
    for ln in lines:
        r.lines.append(ln)
        r.info.append(("label" if ln.endswith(":") else "inst", ln[:-1] if ln.endswith(":")
                       else None, 7))
    return r


def test_relax_inverts_and_keeps_info_aligned():
    r = _rendered(["b.lo .La", "cbz w3, .La", "tbnz x1, #3, .La", "nop", "nop", "nop", "nop", ".La:", "ret"])
    n = relax(r, "t_", cond_range=16, test_range=16)
    assert n == 3
    assert r.lines[:3] == ["b.hs .Lrt_0_2", "b .La", ".Lrt_0_2:"]
    assert r.lines[3:6] == ["cbnz w3, .Lrt_1_1", "b .La", ".Lrt_1_1:"]
    assert r.lines[6:9] == ["tbz x1, #3, .Lrt_2_0", "b .La", ".Lrt_2_0:"]
    assert len(r.lines) == len(r.info)
    assert [k for k, _, _ in r.info].count("label") == 4


def test_relaxed_branches_run_correctly(monkeypatch):
    """With a tiny reach, nearly every conditional branch is rewritten; programs still work."""
    monkeypatch.setattr(emit, "COND_RANGE", 16)
    for b in json.loads((BENCH / "bench.json").read_text()) if BENCH.exists() else []:
        if b["file"] in ("sha256.wasm", "qsort.wasm", "interp.wasm"):
            inst = instance((BENCH / b["file"]).read_bytes())
            assert inst.exports[b["export"]](*b["quick_args"]) == b["quick_expected"]
    ex = instance("""(module (memory 1)
      (func (export "f") (param i32) (result i32)
        (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 5))
          (else (i32.load (local.get 0))))))""").exports
    assert ex["f"](0) == 5 and ex["f"](4) == 0
    with pytest.raises(Trap):
        ex["f"](65535)


def test_function_larger_than_a_conditional_branch_reaches(pool):
    """A real function of more than 1 MiB: its early bounds checks reach the trap stubs,
    and its early float constants, which the literal pool at its end is out of ldr's
    reach for, are loaded with movz/movk + fmov instead (the late ones from the pool)."""
    import capstone
    n = 15000
    body = "(i32.store (local.get 0) (i32.add (i32.load (local.get 0)) (i32.const 1)))\n" * n
    wat = f"""(module (memory 1)
      (func (export "f") (param i32) (result i32)
        (f64.store (i32.const 16) (f64.const 0.1))
        (f32.store (i32.const 24) (f32.const 0.1))
        {body}
        (f64.store (i32.const 32) (f64.add (f64.load (i32.const 16)) (f64.const 0.1)))
        (f32.store (i32.const 40) (f32.add (f32.load (i32.const 24)) (f32.const 0.1)))
        (i32.load (local.get 0)))
      (func (export "d") (param i32) (result f64) (f64.load (local.get 0)))
      (func (export "s") (param i32) (result f32) (f32.load (local.get 0))))"""
    inst = instance(wat)
    f = inst.compiled.functions[0]
    assert f.size > (1 << 20)
    ex = inst.exports
    assert ex["f"](8) == n
    assert ex["d"](16) == 0.1 and ex["d"](32) == 0.2
    tenth = struct.unpack("<f", struct.pack("<f", 0.1))[0]
    assert ex["s"](24) == tenth
    assert ex["s"](40) == struct.unpack("<f", struct.pack("<f", tenth + tenth))[0]
    with pytest.raises(Trap) as e:
        ex["f"](65534)                     # the first load traps: its branch was rewritten
    assert e.value.kind == "heap_oob"
    md = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    md.skipdata = True
    code = inst.compiled.text[f.offset:f.offset + f.size]
    insns = [(i.address, i.mnemonic, i.op_str) for i in md.disasm(code, 0)]
    head = " ; ".join(f"{m} {o}" for _, m, o in insns[:40])
    assert "movk x16, #0x3fb9, lsl #48 ; fmov d" in head and "fmov s" in head
    literal = [(a, int(o.rsplit("#", 1)[1], 16)) for a, m, o in insns
               if m == "ldr" and o[0] in "sd" and ", #0x" in o]
    assert len(literal) == 2 and all(0 < t - a < (1 << 20) < t for a, t in literal)

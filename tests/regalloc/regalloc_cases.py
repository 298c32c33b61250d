"""Hand-written machine-like functions for the allocator's tests (ops of regalloc_fakes)."""

from __future__ import annotations

import regalloc_fakes  # noqa: F401  (registers the ra.* ops the texts use)

from wasmlower.ir import Function, parse_function, verify
from wasmlower.regalloc import isolate_edge_args


def build(text: str) -> Function:
    f = parse_function(text)
    f.meta["lowered"] = True
    isolate_edge_args(f)
    verify(f)
    return f


LINE = """
func @line() -> i64 {
block0:
    v0, v1 = ra.params.i64.i64
    v2 = ra.add.i64 v0, v1
    v3 = ra.sub3.i64 v2, v0
    v4 = ra.mul.i64 v3, v3
    ra.ret v4
}"""

DIAMOND = """
func @diamond() -> i64 {
block0:
    v0, v1 = ra.params.i64.i64
    ra.brif v0, block1, block2
block1:
    v2 = ra.add.i64 v0, v1
    jump block3(v2, v1)
block2:
    v3 = ra.sub3.i64 v1, v0
    jump block3(v0, v3)
block3(v4: i64, v5: i64):
    v6 = ra.add.i64 v4, v5
    ra.ret v6
}"""

SWAP_LOOP = """
func @swap() -> i64 {
block0:
    v0, v1 = ra.params.i64.i64
    v3 = ra.imm.i64 [3]
    jump block1(v3, v0, v1)
block1(v4: i64, v5: i64, v6: i64):
    v7 = ra.shl.i64 v5, v6
    ra.out v7
    v8 = ra.dec.i64 v4
    v9 = ra.nz.i64 v8
    ra.brif v9, block1(v8, v6, v5), block2
block2:
    v10 = ra.sub3.i64 v5, v6
    ra.ret v10
}"""

ROTATE = """
func @rotate() -> i64 {
block0:
    v0, v1, v2 = ra.params.i64.i64.i64
    v3 = ra.imm.i64 [4]
    jump block1(v3, v0, v1, v2)
block1(v4: i64, v5: i64, v6: i64, v7: i64):
    v8 = ra.sub3.i64 v5, v7
    ra.out v8
    v9 = ra.dec.i64 v4
    v10 = ra.nz.i64 v9
    ra.brif v10, block1(v9, v7, v5, v6), block2
block2:
    v11 = ra.mul.i64 v6, v8
    ra.ret v11
}"""

NESTED_CALLS = """
func @nested() -> i64 {
block0:
    v0, v1 = ra.params.i64.i64
    v2 = ra.imm.i64 [2]
    jump block1(v2, v0)
block1(v3: i64, v4: i64):
    v5 = ra.imm.i64 [3]
    jump block2(v5, v4)
block2(v6: i64, v7: i64):
    v8 = ra.call.i64 v7, v1, v3
    v9 = ra.add.i64 v8, v3
    ra.out v9
    v10 = ra.dec.i64 v6
    v11 = ra.nz.i64 v10
    ra.brif v11, block2(v10, v9), block3
block3:
    v12 = ra.call.i64 v9
    v13 = ra.dec.i64 v3
    v14 = ra.nz.i64 v13
    ra.brif v14, block1(v13, v12), block4
block4:
    v15 = ra.add.i64 v12, v1
    ra.ret v15
}"""

DIV_SHIFT = """
func @divshift() -> i64 {
block0:
    v0, v1, v2 = ra.params.i64.i64.i64
    v3, v4 = ra.div.i64.i64 v0, v1
    v5 = ra.shl.i64 v3, v4
    v6 = ra.shl.i64 v5, v2
    v7, v8 = ra.div.i64.i64 v6, v2
    v9 = ra.add.i64 v7, v8
    v10 = ra.add.i64 v9, v0
    ra.ret v10
}"""

CALL8 = """
func @call8() -> i64 {
block0:
    v0, v1, v2, v3, v4, v5, v6, v7 = ra.params.i64.i64.i64.i64.i64.i64.i64.i64
    v8 = ra.call.i64 v7, v6, v5, v4, v3, v2, v1, v0
    v9 = ra.add.i64 v8, v7
    v10 = ra.add.i64 v9, v6
    ra.ret v10
}"""

FLOAT_CALL = """
func @floats() -> i64 {
block0:
    v0, v1 = ra.params.f64.i64
    v2 = ra.fcall.f64 v0, v1
    v3 = ra.fadd.f64 v2, v0
    v4 = ra.cvt.i64 v3
    v5 = ra.add.i64 v4, v1
    ra.ret v5
}"""

REUSE_LIVE = """
func @reuse() -> i64 {
block0:
    v0, v1 = ra.params.i64.i64
    v2 = ra.add.i64 v0, v1
    v3 = ra.add.i64 v0, v0
    v4 = ra.mul.i64 v2, v3
    v5 = ra.add.i64 v4, v0
    ra.ret v5
}"""

TEMPS = """
func @temps() -> i64 {
block0:
    v0, v1 = ra.params.i64.i64
    v2 = ra.tmpop.i64 v0, v1
    v3 = ra.early.i64 v2, v0
    v4 = ra.fixtemp.i64 v3
    v5 = ra.anydef.i64 v4
    v6 = ra.early.i64 v5, v5
    v7 = ra.add.i64 v6, v1
    ra.ret v7
}"""


def pressure(n: int = 24) -> str:
    lines = ["func @pressure() -> i64 {", "block0:", "    v0, v1 = ra.params.i64.i64"]
    for i in range(n):
        lines.append(f"    v{i + 2} = ra.add.i64 v{i % 2}, v{i + 1}")
    acc = n + 1
    for i in range(n):
        lines.append(f"    v{n + 2 + i} = ra.add.i64 v{acc}, v{i + 2}")
        acc = n + 2 + i
    lines += [f"    ra.ret v{acc}", "}"]
    return "\n".join(lines)


CASES = {"line": LINE, "diamond": DIAMOND, "swap": SWAP_LOOP, "rotate": ROTATE,
         "nested": NESTED_CALLS, "divshift": DIV_SHIFT, "call8": CALL8, "floats": FLOAT_CALL,
         "reuse": REUSE_LIVE, "temps": TEMPS, "pressure": pressure()}

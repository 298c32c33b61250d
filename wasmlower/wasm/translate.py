"""Translate decoded wasm functions into the SSA IR (generic ops).

Problem.  Wasm is a stack machine with structured control flow and mutable
locals; the IR is SSA with block parameters.  The translator walks one
function body once, front to back, and builds IR as it goes.

Mechanism.

- The wasm operand stack is a Python list of IR ``Value``s: an instruction
  pops its operands and pushes the values it defines.  Nothing is emitted for
  ``local.*``, ``drop`` or ``nop``.
- Control frames (``_Frame``) mirror wasm's control stack.  A ``block``/``if``
  has a *next* block (created when first needed) whose parameters are the
  frame's results: branches to the label and the fallthrough at ``end`` pass
  the result values to it.  A ``loop`` has a *header* block whose parameters
  are the loop's params; branches to its label jump back there, and its
  results fall through in the current block (nothing can branch to the end of
  a loop).  The function body is a block frame whose label returns.
- Locals are SSA variables, built on the fly after Braun et al. 2013, "Simple
  and Efficient Construction of SSA Form", with block parameters in place of
  phis.  Each IR block has a ``_BB`` record: the last definition of each local
  in it (``defs``), its incoming edges (``edges``: predecessor and the
  ``BlockCall`` on that predecessor's terminator) and whether it is *sealed*
  (all predecessors known).  Reading a local that has no definition in the
  current block looks it up in the predecessors (``read_var``), adding a
  block parameter where several definitions meet; in a block that is not yet
  sealed (a loop header before the loop's ``end``) the parameter is
  "incomplete" and gets its incoming arguments when the block is sealed.  A
  parameter whose incoming values are all the same value (or itself) is
  trivial: it is removed and recorded in an alias map; ``remove_trivial_
  block_params`` resolves the aliases in every use and removes the trivial
  parameters that only became trivial later, at the end.
- Unreachable code (after ``br``, ``br_table``, ``return``, ``unreachable``,
  or after an ``end`` nothing branches to) is skipped up to the matching
  ``else``/``end`` while counting the nesting depth; no IR is emitted for it.
  A block is appended to the function only when the translator starts
  filling it, which happens only for blocks with a predecessor in emitted
  code, so every emitted block is reachable from the entry.
- No block is made where none is needed: a ``block``/``if`` end reached only
  by falling through continues in the current block, and one reached only by
  a single unconditional ``jump`` reopens that jump's block instead.

The cleanups ``remove_trivial_block_params``, ``remove_unreachable_blocks``
and ``renumber`` work on any IR function, so a pass manager can run them.

Invariants.

- ``_BB.edges`` lists every ``BlockCall`` that targets the block; the i-th
  argument of each of them goes to the block's i-th parameter.  Parameters of
  a sealed block get their arguments appended to every edge when they are
  created; parameters added to an unsealed block get them all at sealing.
- A block is sealed before anything is read from it as a predecessor that
  could still gain predecessors: then/else/br_if-continuation blocks are
  sealed when created (one predecessor), *next* blocks when their frame ends
  (every branch to a label lies inside its frame), loop headers at the
  loop's ``end``.
- Zero-initialised locals read before any write use one shared ``iconst 0``
  / ``fconst 0`` per type, placed at the top of the entry block.

Types: i32/i64/f32/f64 map to the IR types of the same name; funcref and
externref values are pointer-sized handles (``i64``, null = 0).
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from ..errors import CodegenError, WasmError
from ..ir.function import Block, BlockCall, Function, Inst, Value
from ..ir.types import F32, F64, I32, I64, Type

__all__ = [
    "LIBCALLS",
    "SUPPORTED_OPS",
    "remove_trivial_block_params",
    "remove_unreachable_blocks",
    "renumber",
    "translate_function",
    "translate_module",
    "wasm_type",
]

_WASM_TYPES: dict[str, Type] = {
    "i32": I32, "i64": I64, "f32": F32, "f64": F64, "funcref": I64, "externref": I64,
}


def wasm_type(vt: object) -> Type:
    """The IR type of a wasm value type (a ``ValType`` or its text name)."""
    return _WASM_TYPES[getattr(vt, "value", vt)]


# Runtime helpers called through ``libcall [name]``: name -> (argument types,
# result types).  Every index (segment, table) is passed as an i32 argument;
# references are i64 handles.  The memory index is always 0 (no multi-memory).
LIBCALLS: dict[str, tuple[tuple[Type, ...], tuple[Type, ...]]] = {
    "memory_grow": ((I32,), (I32,)),                     # (delta) -> old pages or -1
    "memory_fill": ((I32, I32, I32), ()),                # (dst, byte value, len)
    "memory_copy": ((I32, I32, I32), ()),                # (dst, src, len)
    "memory_init": ((I32, I32, I32, I32), ()),           # (data seg, dst, src, len)
    "data_drop": ((I32,), ()),                           # (data seg)
    "table_get": ((I32, I32), (I64,)),                   # (table, index) -> ref
    "table_set": ((I32, I32, I64), ()),                  # (table, index, ref)
    "table_size": ((I32,), (I32,)),                      # (table) -> size
    "table_grow": ((I32, I64, I32), (I32,)),             # (table, init ref, delta) -> old or -1
    "table_fill": ((I32, I32, I64, I32), ()),            # (table, index, ref, len)
    "table_copy": ((I32, I32, I32, I32, I32), ()),       # (dst table, src table, dst, src, len)
    "table_init": ((I32, I32, I32, I32, I32), ()),       # (table, elem seg, dst, src, len)
    "elem_drop": ((I32,), ()),                           # (elem seg)
}

# --- op tables ------------------------------------------------------------------
# Each maps a wasm mnemonic to the data its handler needs.

_BINARY: dict[str, str] = {}        # -> IR op; result type = operand type
_ICMP: dict[str, str] = {}          # -> condition code
_FCMP: dict[str, str] = {}
_UNARY: dict[str, str] = {}         # -> IR op; result type = operand type
_CONVERT: dict[str, tuple[str, Type]] = {}   # -> (IR op, result type)
_DIVREM: dict[str, str] = {}
for _t in ("i32", "i64"):
    for _w, _ir in (("add", "iadd"), ("sub", "isub"), ("mul", "imul"), ("and", "band"),
                    ("or", "bor"), ("xor", "bxor"), ("shl", "ishl"), ("shr_s", "sshr"),
                    ("shr_u", "ushr"), ("rotl", "rotl"), ("rotr", "rotr")):
        _BINARY[f"{_t}.{_w}"] = _ir
    for _w, _cc in (("eq", "eq"), ("ne", "ne"), ("lt_s", "slt"), ("lt_u", "ult"),
                    ("gt_s", "sgt"), ("gt_u", "ugt"), ("le_s", "sle"), ("le_u", "ule"),
                    ("ge_s", "sge"), ("ge_u", "uge")):
        _ICMP[f"{_t}.{_w}"] = _cc
    for _w in ("clz", "ctz", "popcnt"):
        _UNARY[f"{_t}.{_w}"] = _w
    for _w, _ir in (("div_s", "sdiv"), ("div_u", "udiv"), ("rem_s", "srem"),
                    ("rem_u", "urem")):
        _DIVREM[f"{_t}.{_w}"] = _ir
for _t in ("f32", "f64"):
    for _w in ("add", "sub", "mul", "div", "min", "max", "copysign"):
        _BINARY[f"{_t}.{_w}"] = "f" + _w
    for _w in ("eq", "ne", "lt", "gt", "le", "ge"):
        _FCMP[f"{_t}.{_w}"] = _w
    for _w in ("abs", "neg", "ceil", "floor", "trunc", "nearest", "sqrt"):
        _UNARY[f"{_t}.{_w}"] = "f" + _w

_CONVERT.update({
    "i32.wrap_i64": ("ireduce", I32),
    "i64.extend_i32_s": ("sextend", I64),
    "i64.extend_i32_u": ("uextend", I64),
    "f32.demote_f64": ("fdemote", F32),
    "f64.promote_f32": ("fpromote", F64),
    "i32.reinterpret_f32": ("bitcast", I32),
    "i64.reinterpret_f64": ("bitcast", I64),
    "f32.reinterpret_i32": ("bitcast", F32),
    "f64.reinterpret_i64": ("bitcast", F64),
})
for _r in ("i32", "i64"):
    for _s in ("f32", "f64"):
        for _sign, _word in (("s", "sint"), ("u", "uint")):
            _CONVERT[f"{_r}.trunc_{_s}_{_sign}"] = (f"fcvt_to_{_word}", _WASM_TYPES[_r])
            _CONVERT[f"{_r}.trunc_sat_{_s}_{_sign}"] = (f"fcvt_to_{_word}_sat", _WASM_TYPES[_r])
            _CONVERT[f"{_s}.convert_{_r}_{_sign}"] = (f"fcvt_from_{_word}", _WASM_TYPES[_s])

_SEXT_IN = {"i32.extend8_s": 8, "i32.extend16_s": 16, "i64.extend8_s": 8,
            "i64.extend16_s": 16, "i64.extend32_s": 32}

# loads: mnemonic -> (kind, result type); stores: mnemonic -> kind
_LOADS: dict[str, tuple[str, Type]] = {
    "i32.load": ("i32", I32), "i64.load": ("i64", I64), "f32.load": ("f32", F32),
    "f64.load": ("f64", F64),
    "i32.load8_s": ("i8s", I32), "i32.load8_u": ("i8u", I32),
    "i32.load16_s": ("i16s", I32), "i32.load16_u": ("i16u", I32),
    "i64.load8_s": ("i8s", I64), "i64.load8_u": ("i8u", I64),
    "i64.load16_s": ("i16s", I64), "i64.load16_u": ("i16u", I64),
    "i64.load32_s": ("i32s", I64), "i64.load32_u": ("i32u", I64),
}
_STORES: dict[str, str] = {
    "i32.store": "i32", "i64.store": "i64", "f32.store": "f32", "f64.store": "f64",
    "i32.store8": "i8", "i32.store16": "i16", "i64.store8": "i8", "i64.store16": "i16",
    "i64.store32": "i32",
}

_MIN_INT = {I32: -(1 << 31), I64: -(1 << 63)}

# Frame kinds.
_BLOCK, _LOOP, _IF, _FUNC = 0, 1, 2, 3
# Tasks of the iterative variable lookup.
_USE, _SET, _PARAM = 0, 1, 2


class _BB:
    """Construction state of one IR block (see the module docstring)."""

    __slots__ = ("blk", "defs", "edges", "incomplete", "sealed")

    def __init__(self, blk: Block, sealed: bool) -> None:
        self.blk = blk
        self.defs: dict[int, Value] = {}
        self.edges: list[tuple[_BB, BlockCall]] = []
        self.sealed = sealed
        self.incomplete: list[tuple[int, Value]] = []


class _Frame:
    __slots__ = (
        "else_call",
        "height",
        "if_bb",
        "if_params",
        "kind",
        "params",
        "results",
        "target",
    )

    def __init__(self, kind: int, params: list[Type], results: list[Type], height: int) -> None:
        self.kind = kind
        self.params = params
        self.results = results
        self.height = height            # operand stack height below the frame's params
        self.target: _BB | None = None  # loop: header; others: next block (lazy)
        self.if_params: list[Value] = []
        self.else_call: BlockCall | None = None   # if: the brif edge taken on false
        self.if_bb: _BB | None = None             # if: the block holding that brif


def _fail(msg: str, offset: int | None) -> CodegenError:
    where = f" at offset {offset:#x}" if offset is not None else ""
    return CodegenError(f"{msg}{where}")


class _Translator:
    def __init__(self, module: object, index: int) -> None:
        self.module = module
        nimp = int(module.num_imported_funcs)
        self.funcidx = funcidx = nimp + index
        if not 0 <= index < len(module.codes):
            raise CodegenError(f"no defined function {index}")
        ftype = module.func_type(funcidx)
        self.params = [wasm_type(t) for t in ftype.params]
        self.results = [wasm_type(t) for t in ftype.results]
        self.code = module.codes[index]
        name = module.func_names.get(funcidx) or f"f{funcidx}"
        self.func = Function(name, self.params, self.results)
        self.func.meta["wasm_index"] = funcidx
        self.local_types = self.params + [wasm_type(t) for t in self.code.locals]
        self.nv = 0                       # next value id
        self.nb = 0                       # next block id
        self.loc: int | None = self.code.offset
        self.stack: list[Value] = []
        self.frames: list[_Frame] = []
        self.alias: dict[Value, Value] = {}
        self.zeros: dict[Type, Value] = {}
        self.zero_insts: list[Inst] = []
        self.dead = False
        self.cur: _BB
        self.defs: dict[int, Value]
        self.insts: list[Inst]

    # -- blocks and values ----------------------------------------------------

    def new_bb(self, params: Iterable[Type] = (), sealed: bool = False) -> _BB:
        blk = Block(self.nb)
        self.nb += 1
        for t in params:
            self.new_param(blk, t)
        return _BB(blk, sealed)

    def new_param(self, blk: Block, t: Type) -> Value:
        v = Value(self.nv, t)
        self.nv += 1
        v.block = blk
        blk.params.append(v)
        return v

    def switch_to(self, bb: _BB) -> None:
        self.cur = bb
        self.defs = bb.defs
        self.insts = bb.blk.insts
        self.func.blocks.append(bb.blk)
        self.dead = False

    def emit(self, op: str, args: list[Value], t: Type, imm: tuple = ()) -> Value:
        """Append a one-result instruction to the current block."""
        v = Value(self.nv, t)
        self.nv += 1
        self.insts.append(Inst(op, args, (v,), imm, (), self.loc))
        return v

    def emit_multi(self, op: str, args: list[Value], types: list[Type], imm: tuple) -> list[Value]:
        results = []
        for t in types:
            results.append(Value(self.nv, t))
            self.nv += 1
        self.insts.append(Inst(op, args, results, imm, (), self.loc))
        return results

    def emit_void(self, op: str, args: list[Value], imm: tuple = ()) -> None:
        self.insts.append(Inst(op, args, (), imm, (), self.loc))

    def iconst(self, t: Type, value: int) -> Value:
        bits = t.bits
        value &= (1 << bits) - 1
        if value >> (bits - 1):
            value -= 1 << bits
        return self.emit("iconst", [], t, (value,))

    def call_to(self, bb: _BB, args: list[Value]) -> BlockCall:
        """A branch edge from the current block to ``bb``, registered as its predecessor."""
        if bb.sealed:
            raise _fail("internal error: branch to a sealed block", self.loc)
        call = BlockCall(bb.blk, args)
        bb.edges.append((self.cur, call))
        return call

    def terminate(self, op: str, args: list[Value], calls: list[BlockCall]) -> None:
        self.insts.append(Inst(op, args, (), (), calls, self.loc))

    def jump(self, bb: _BB, args: list[Value]) -> None:
        self.terminate("jump", [], [self.call_to(bb, args)])

    # -- SSA variables (Braun et al.) -------------------------------------------

    def zero(self, t: Type) -> Value:
        v = self.zeros.get(t)
        if v is None:
            v = Value(self.nv, t)
            self.nv += 1
            op = "iconst" if t.is_int else "fconst"
            self.zero_insts.append(Inst(op, (), (v,), (0,), (), self.code.offset))
            self.zeros[t] = v
        return v

    def read_var(self, var: int, bb: _BB) -> Value:
        """The value of local ``var`` at the end of ``bb`` (at the current point if current).

        Iterative rather than recursive: chains of single-predecessor blocks
        (one per ``br_if``) can be thousands long.  ``tasks`` is a stack of
        pending lookups; ``vals`` collects their results in order.
        """
        v = bb.defs.get(var)
        if v is not None:
            return v
        t = self.local_types[var]
        tasks: list[tuple[int, _BB, Value | None]] = [(_USE, bb, None)]
        vals: list[Value] = []
        while tasks:
            kind, b, p = tasks.pop()
            if kind == _USE:
                v = b.defs.get(var)
                if v is not None:
                    vals.append(v)
                    continue
                if not b.sealed:
                    # Incomplete parameter: its arguments come when b is sealed.
                    p = self.new_param(b.blk, t)
                    b.incomplete.append((var, p))
                    b.defs[var] = p
                    vals.append(p)
                    continue
                edges = b.edges
                if len(edges) == 1:
                    tasks.append((_SET, b, None))
                    tasks.append((_USE, edges[0][0], None))
                elif not edges:
                    # The entry block: locals start at zero (params are always defined).
                    v = self.zero(t)
                    b.defs[var] = v
                    vals.append(v)
                else:
                    # Define the parameter first: a loop back to b then finds it.
                    p = self.new_param(b.blk, t)
                    b.defs[var] = p
                    tasks.append((_PARAM, b, p))
                    for e in reversed(edges):
                        tasks.append((_USE, e[0], None))
            elif kind == _SET:
                b.defs[var] = vals[-1]
            else:
                edges = b.edges
                n = len(edges)
                ins = vals[-n:]
                del vals[-n:]
                same = self.trivial(p, ins)
                if same is not None:
                    # p is still b's last parameter: lookups of this variable never add
                    # another parameter to b (b.defs[var] is set), others add none.
                    b.blk.params.pop()
                    self.alias[p] = same
                    b.defs[var] = same
                    vals.append(same)
                else:
                    for (_, call), a in zip(edges, ins):
                        call.args.append(a)
                    vals.append(p)
        return vals[0]

    def trivial(self, p: Value, ins: list[Value]) -> Value | None:
        """The one value other than ``p`` among ``ins`` (aliases resolved), else None."""
        alias = self.alias
        same = None
        for a in ins:
            while a in alias:
                a = alias[a]
            if a is p or a is same:
                continue
            if same is not None:
                return None
            same = a
        return same

    def seal(self, bb: _BB) -> None:
        inc = bb.incomplete
        if not inc:
            bb.sealed = True
            return
        edges = bb.edges
        all_ins = []
        for var, _p in inc:
            ins = [self.read_var(var, pred) for pred, _ in edges]
            for (_, call), a in zip(edges, ins):
                call.args.append(a)
            all_ins.append(ins)
        bb.sealed = True
        bb.incomplete = []
        alias = self.alias
        removed = changed = False
        while True:
            changed = False
            for (var, p), ins in zip(inc, all_ins):
                if p in alias:
                    continue
                same = self.trivial(p, ins)
                if same is not None:
                    alias[p] = same
                    changed = removed = True
                    if bb.defs.get(var) is p:
                        bb.defs[var] = same
            if not changed:
                break
        if removed:
            params = bb.blk.params
            keep = [i for i, q in enumerate(params) if q not in alias]
            bb.blk.params = [params[i] for i in keep]
            for _, call in edges:
                args = call.args
                call.args = [args[i] for i in keep]

    # -- control ------------------------------------------------------------------

    def block_type(self, bt: object) -> tuple[list[Type], list[Type]]:
        if bt is None:
            return [], []
        if isinstance(bt, int):
            ft = self.module.types[bt]
            return [wasm_type(t) for t in ft.params], [wasm_type(t) for t in ft.results]
        return [], [wasm_type(bt)]

    def label(self, depth: int) -> tuple[_BB, int]:
        """The block a branch to label ``depth`` goes to, and how many values it takes."""
        frames = self.frames
        if not 0 <= depth < len(frames):
            raise _fail(f"branch depth {depth} out of range", self.loc)
        f = frames[-1 - depth]
        if f.kind == _LOOP:
            return f.target, len(f.params)
        if f.target is None:
            f.target = self.new_bb(f.results)
        return f.target, len(f.results)

    def top(self, n: int) -> list[Value]:
        if n == 0:
            return []
        stack = self.stack
        if len(stack) < n:
            raise _fail("operand stack underflow", self.loc)
        return stack[-n:]

    def pop(self, n: int) -> list[Value]:
        if n == 0:
            return []
        stack = self.stack
        if len(stack) < n:
            raise _fail("operand stack underflow", self.loc)
        vals = stack[-n:]
        del stack[-n:]
        return vals

    def do_block(self, imm: object) -> None:
        params, results = self.block_type(imm)
        self.frames.append(_Frame(_BLOCK, params, results, len(self.stack) - len(params)))

    def do_loop(self, imm: object) -> None:
        params, results = self.block_type(imm)
        args = self.pop(len(params))
        f = _Frame(_LOOP, params, results, len(self.stack))
        header = f.target = self.new_bb(params)
        self.jump(header, args)
        self.switch_to(header)
        self.stack.extend(header.blk.params)
        self.frames.append(f)

    def do_if(self, imm: object) -> None:
        cond = self.pop(1)[0]
        params, results = self.block_type(imm)
        f = _Frame(_IF, params, results, len(self.stack) - len(params))
        f.if_params = self.top(len(params))
        then = self.new_bb(sealed=False)
        nxt = f.target = self.new_bb(results)
        then_call = self.call_to(then, [])
        # Without an else, false goes straight to the end with the params as results;
        # ``do_else`` retargets this edge to a new else block.
        f.else_call = self.call_to(nxt, list(f.if_params))
        f.if_bb = self.cur
        self.terminate("brif", [cond], [then_call, f.else_call])
        then.sealed = True
        self.switch_to(then)
        self.frames.append(f)

    def do_else(self) -> None:
        f = self.frames[-1] if self.frames else None
        if f is None or f.kind != _IF or f.else_call is None or f.if_bb is None:
            raise _fail("else without if", self.loc)
        nxt = f.target
        assert nxt is not None
        if not self.dead:
            self.jump(nxt, self.top(len(f.results)))
        call = f.else_call
        nxt.edges = [e for e in nxt.edges if e[1] is not call]
        els = self.new_bb()
        call.block = els.blk
        call.args = []
        els.edges.append((f.if_bb, call))
        els.sealed = True
        f.else_call = None
        del self.stack[f.height:]
        self.stack.extend(f.if_params)
        self.switch_to(els)

    def do_end(self) -> None:
        if not self.frames:
            raise _fail("unbalanced end", self.loc)
        f = self.frames.pop()
        stack = self.stack
        nres = len(f.results)
        if f.kind == _LOOP:
            self.seal(f.target)
            if not self.dead and len(stack) != f.height + nres:
                raise _fail("operand stack height mismatch at end", self.loc)
            return
        nxt = f.target
        if not self.dead:
            if len(stack) != f.height + nres:
                raise _fail("operand stack height mismatch at end", self.loc)
            if nxt is None or not nxt.edges:
                # Only the fallthrough reaches the end: keep going in this block.
                if f.kind == _FUNC:
                    self.terminate("return", self.top(nres), [])
                    self.dead = True
                return
            self.jump(nxt, self.top(nres))
        elif nxt is None or not nxt.edges:
            return                          # still unreachable
        del stack[f.height:]
        if len(nxt.edges) == 1 and nxt.edges[0][0].blk.insts[-1].op == "jump":
            # One way in, an unconditional jump: drop the jump and go on filling its
            # block, with the jump's arguments as the results.  Same semantics; the
            # source's ``defs`` are the values at the point where ``nxt`` would start.
            src, call = nxt.edges[0]
            src.blk.insts.pop()
            self.cur, self.defs, self.insts = src, src.defs, src.blk.insts
            self.dead = False
            stack.extend(call.args)
        else:
            self.seal(nxt)
            self.switch_to(nxt)
            stack.extend(nxt.blk.params)
        if f.kind == _FUNC:
            self.terminate("return", self.top(nres), [])
            self.dead = True

    def do_br(self, depth: int) -> None:
        if depth == len(self.frames) - 1:
            self.do_return()
            return
        target, n = self.label(depth)
        self.jump(target, self.top(n))
        self.dead = True

    def do_br_if(self, depth: int) -> None:
        cond = self.pop(1)[0]
        target, n = self.label(depth)
        cont = self.new_bb()
        calls = [self.call_to(target, self.top(n)), self.call_to(cont, [])]
        self.terminate("brif", [cond], calls)
        cont.sealed = True
        self.switch_to(cont)

    def do_br_table(self, imm: tuple) -> None:
        depths, default = imm
        index = self.pop(1)[0]
        calls = []
        for d in (*depths, default):
            target, n = self.label(d)
            calls.append(self.call_to(target, self.top(n)))
        self.terminate("br_table", [index], calls)   # the default is the last target
        self.dead = True

    def do_return(self) -> None:
        self.terminate("return", self.top(len(self.results)), [])
        self.dead = True

    # -- the main loop ---------------------------------------------------------------

    def run(self) -> Function:
        entry = self.new_bb(self.params, sealed=True)
        for i, p in enumerate(entry.blk.params):
            entry.defs[i] = p
        self.switch_to(entry)
        self.frames.append(_Frame(_FUNC, [], self.results, 0))
        handlers = _HANDLERS
        depth = 0                   # nesting depth inside unreachable code
        op = "<none>"
        off: int | None = None
        try:
            for op, imm, off in self.code.body:
                if self.dead:
                    if op == "end":
                        if depth:
                            depth -= 1
                            continue
                        self.loc = off
                        self.do_end()
                    elif op == "else":
                        if not depth:
                            self.loc = off
                            self.do_else()
                    elif op == "block" or op == "loop" or op == "if":
                        depth += 1
                    if not self.frames:
                        break
                    continue
                self.loc = off
                h = handlers.get(op)
                if h is not None:
                    h[0](self, h[1], imm)
                    continue
                if op == "end":
                    self.do_end()
                    if not self.frames:
                        break
                elif op == "block":
                    self.do_block(imm)
                elif op == "loop":
                    self.do_loop(imm)
                elif op == "if":
                    self.do_if(imm)
                elif op == "else":
                    self.do_else()
                elif op == "br":
                    self.do_br(imm)
                elif op == "br_if":
                    self.do_br_if(imm)
                elif op == "br_table":
                    self.do_br_table(imm)
                elif op == "return":
                    self.do_return()
                else:
                    raise _fail(f"unsupported instruction {op}", off)
        except CodegenError:
            raise
        except (WasmError, IndexError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise _fail(f"cannot translate {op} ({type(e).__name__}: {e})", off) from e
        if self.frames:
            raise _fail("function body ends inside a block", off)
        body = self.code.body
        if off != body[-1][2]:
            raise _fail("instructions after the end of the function body", off)
        func = self.func
        if self.zero_insts:
            entry.blk.insts[0:0] = self.zero_insts
        func._next_value = self.nv
        func._next_block = self.nb
        remove_trivial_block_params(func, self.alias)
        renumber(func)
        return func


# --- handlers of the non-control instructions ---------------------------------
# Each is ``handler(translator, data, imm)``; ``data`` comes from _HANDLERS.

def _h_binary(t: _Translator, op: str, _imm: object) -> None:
    stack = t.stack
    b = stack.pop()
    a = stack.pop()
    stack.append(t.emit(op, [a, b], a.type))


def _h_unary(t: _Translator, op: str, _imm: object) -> None:
    stack = t.stack
    a = stack.pop()
    stack.append(t.emit(op, [a], a.type))


def _h_icmp(t: _Translator, cc: str, _imm: object) -> None:
    stack = t.stack
    b = stack.pop()
    a = stack.pop()
    stack.append(t.emit("icmp", [a, b], I32, (cc,)))


def _h_fcmp(t: _Translator, cc: str, _imm: object) -> None:
    stack = t.stack
    b = stack.pop()
    a = stack.pop()
    stack.append(t.emit("fcmp", [a, b], I32, (cc,)))


def _h_eqz(t: _Translator, ty: Type, _imm: object) -> None:
    stack = t.stack
    a = stack.pop()
    stack.append(t.emit("icmp", [a, t.iconst(ty, 0)], I32, ("eq",)))


def _const_value(v: Value) -> int | None:
    inst = v.inst
    if inst is not None and inst.op == "iconst":
        return inst.imm[0]
    return None


def _h_divrem(t: _Translator, op: str, _imm: object) -> None:
    stack = t.stack
    b = stack.pop()
    a = stack.pop()
    ty = a.type
    k = _const_value(b)
    # Trap checks in wasm order: divide by zero first, then signed overflow.
    # A constant divisor proves them unnecessary (k != 0; k != -1 for sdiv).
    if k is None or k == 0:
        t.emit_void("trapz", [b], ("int_divz",))
    if op == "sdiv" and (k is None or k == -1):
        is_min = t.emit("icmp", [a, t.iconst(ty, _MIN_INT[ty])], I32, ("eq",))
        is_m1 = t.emit("icmp", [b, t.iconst(ty, -1)], I32, ("eq",))
        t.emit_void("trapnz", [t.emit("band", [is_min, is_m1], I32)], ("int_ovf",))
    # srem of MIN by -1 is 0 in the IR (no trap), as in wasm.
    stack.append(t.emit(op, [a, b], ty))


def _h_convert(t: _Translator, data: tuple[str, Type], _imm: object) -> None:
    stack = t.stack
    stack.append(t.emit(data[0], [stack.pop()], data[1]))


def _h_sext_in(t: _Translator, bits: int, _imm: object) -> None:
    stack = t.stack
    a = stack.pop()
    stack.append(t.emit("sext_in", [a], a.type, (bits,)))


def _h_iconst(t: _Translator, ty: Type, imm: int) -> None:
    t.stack.append(t.iconst(ty, imm))


def _h_fconst(t: _Translator, ty: Type, imm: int) -> None:
    t.stack.append(t.emit("fconst", [], ty, (imm,)))


def _h_local_get(t: _Translator, _: object, idx: int) -> None:
    v = t.defs.get(idx)
    if v is None:
        if not 0 <= idx < len(t.local_types):
            raise _fail(f"unknown local {idx}", t.loc)
        v = t.read_var(idx, t.cur)
    t.stack.append(v)


def _h_local_set(t: _Translator, _: object, idx: int) -> None:
    if not 0 <= idx < len(t.local_types):
        raise _fail(f"unknown local {idx}", t.loc)
    t.defs[idx] = t.stack.pop()


def _h_local_tee(t: _Translator, _: object, idx: int) -> None:
    if not 0 <= idx < len(t.local_types):
        raise _fail(f"unknown local {idx}", t.loc)
    t.defs[idx] = t.stack[-1]


def _h_global_get(t: _Translator, _: object, idx: int) -> None:
    ty = wasm_type(t.module.global_type(idx).type)
    t.stack.append(t.emit("global_get", [], ty, (idx,)))


def _h_global_set(t: _Translator, _: object, idx: int) -> None:
    t.emit_void("global_set", [t.stack.pop()], (idx,))


def _memarg_offset(t: _Translator, imm: tuple) -> int:
    if len(imm) > 2 and imm[2] != 0:
        raise _fail("multiple memories are not supported", t.loc)
    return imm[1]


def _h_load(t: _Translator, data: tuple[str, Type], imm: tuple) -> None:
    stack = t.stack
    offset = imm[1] if len(imm) == 2 else _memarg_offset(t, imm)
    stack.append(t.emit("load", [stack.pop()], data[1], (data[0], offset)))


def _h_store(t: _Translator, kind: str, imm: tuple) -> None:
    stack = t.stack
    offset = imm[1] if len(imm) == 2 else _memarg_offset(t, imm)
    v = stack.pop()
    addr = stack.pop()
    t.emit_void("store", [addr, v], (kind, offset))


def _h_drop(t: _Translator, _: object, _imm: object) -> None:
    t.stack.pop()


def _h_nop(t: _Translator, _: object, _imm: object) -> None:
    pass


def _h_select(t: _Translator, _: object, imm: object) -> None:
    stack = t.stack
    c = stack.pop()
    b = stack.pop()
    a = stack.pop()
    stack.append(t.emit("select", [c, a, b], b.type))


def _h_unreachable(t: _Translator, _: object, _imm: object) -> None:
    t.insts.append(Inst("trap", (), (), ("unreachable",), (), t.loc))
    t.dead = True


def _h_call(t: _Translator, _: object, funcidx: int) -> None:
    ft = t.module.func_type(funcidx)
    args = t.pop(len(ft.params))
    results = t.emit_multi("call", args, [wasm_type(r) for r in ft.results], (funcidx,))
    t.stack.extend(results)


def _h_call_indirect(t: _Translator, _: object, imm: tuple) -> None:
    typeidx, tableidx = imm
    ft = t.module.types[typeidx]
    index = t.stack.pop()
    args = t.pop(len(ft.params))
    results = t.emit_multi("call_indirect", [index, *args], [wasm_type(r) for r in ft.results],
                           (typeidx, tableidx))
    t.stack.extend(results)


def _memidx0(t: _Translator, *indices: int) -> None:
    if any(indices):
        raise _fail("multiple memories are not supported", t.loc)


def _h_memory_size(t: _Translator, _: object, imm: int) -> None:
    _memidx0(t, imm or 0)
    t.stack.append(t.emit("memory_size", [], I32))


def _libcall(t: _Translator, name: str, args: list[Value]) -> None:
    results = LIBCALLS[name][1]
    vals = t.emit_multi("libcall", args, list(results), (name,))
    t.stack.extend(vals)


def _h_memory_grow(t: _Translator, _: object, imm: int) -> None:
    _memidx0(t, imm or 0)
    _libcall(t, "memory_grow", t.pop(1))


def _h_memory_fill(t: _Translator, _: object, imm: int) -> None:
    _memidx0(t, imm or 0)
    _libcall(t, "memory_fill", t.pop(3))


def _h_memory_copy(t: _Translator, _: object, imm: tuple) -> None:
    _memidx0(t, *imm)
    _libcall(t, "memory_copy", t.pop(3))


def _h_memory_init(t: _Translator, _: object, imm: tuple) -> None:
    seg, mem = imm
    _memidx0(t, mem)
    args = t.pop(3)
    _libcall(t, "memory_init", [t.iconst(I32, seg), *args])


def _h_data_drop(t: _Translator, _: object, seg: int) -> None:
    _libcall(t, "data_drop", [t.iconst(I32, seg)])


def _h_table_get(t: _Translator, _: object, table: int) -> None:
    args = t.pop(1)
    _libcall(t, "table_get", [t.iconst(I32, table), *args])


def _h_table_set(t: _Translator, _: object, table: int) -> None:
    args = t.pop(2)
    _libcall(t, "table_set", [t.iconst(I32, table), *args])


def _h_table_size(t: _Translator, _: object, table: int) -> None:
    _libcall(t, "table_size", [t.iconst(I32, table)])


def _h_table_grow(t: _Translator, _: object, table: int) -> None:
    args = t.pop(2)
    _libcall(t, "table_grow", [t.iconst(I32, table), *args])


def _h_table_fill(t: _Translator, _: object, table: int) -> None:
    args = t.pop(3)
    _libcall(t, "table_fill", [t.iconst(I32, table), *args])


def _h_table_copy(t: _Translator, _: object, imm: tuple) -> None:
    dst, src = imm
    args = t.pop(3)
    _libcall(t, "table_copy", [t.iconst(I32, dst), t.iconst(I32, src), *args])


def _h_table_init(t: _Translator, _: object, imm: tuple) -> None:
    seg, table = imm
    args = t.pop(3)
    _libcall(t, "table_init", [t.iconst(I32, table), t.iconst(I32, seg), *args])


def _h_elem_drop(t: _Translator, _: object, seg: int) -> None:
    _libcall(t, "elem_drop", [t.iconst(I32, seg)])


def _h_ref_null(t: _Translator, _: object, _imm: object) -> None:
    t.stack.append(t.iconst(I64, 0))


def _h_ref_is_null(t: _Translator, _: object, _imm: object) -> None:
    stack = t.stack
    a = stack.pop()
    stack.append(t.emit("icmp", [a, t.iconst(a.type, 0)], I32, ("eq",)))


def _h_ref_func(t: _Translator, _: object, funcidx: int) -> None:
    t.stack.append(t.emit("func_ref", [], I64, (funcidx,)))


_HANDLERS: dict[str, tuple] = {}
for _name, _ir in _BINARY.items():
    _HANDLERS[_name] = (_h_binary, _ir)
for _name, _ir in _UNARY.items():
    _HANDLERS[_name] = (_h_unary, _ir)
for _name, _cc in _ICMP.items():
    _HANDLERS[_name] = (_h_icmp, _cc)
for _name, _cc in _FCMP.items():
    _HANDLERS[_name] = (_h_fcmp, _cc)
for _name, _ir in _DIVREM.items():
    _HANDLERS[_name] = (_h_divrem, _ir)
for _name, _data in _CONVERT.items():
    _HANDLERS[_name] = (_h_convert, _data)
for _name, _bits in _SEXT_IN.items():
    _HANDLERS[_name] = (_h_sext_in, _bits)
for _name, _data in _LOADS.items():
    _HANDLERS[_name] = (_h_load, _data)
for _name, _kind in _STORES.items():
    _HANDLERS[_name] = (_h_store, _kind)
_HANDLERS.update({
    "i32.eqz": (_h_eqz, I32), "i64.eqz": (_h_eqz, I64),
    "i32.const": (_h_iconst, I32), "i64.const": (_h_iconst, I64),
    "f32.const": (_h_fconst, F32), "f64.const": (_h_fconst, F64),
    "local.get": (_h_local_get, None), "local.set": (_h_local_set, None),
    "local.tee": (_h_local_tee, None),
    "global.get": (_h_global_get, None), "global.set": (_h_global_set, None),
    "drop": (_h_drop, None), "nop": (_h_nop, None), "select": (_h_select, None),
    "unreachable": (_h_unreachable, None),
    "call": (_h_call, None), "call_indirect": (_h_call_indirect, None),
    "memory.size": (_h_memory_size, None), "memory.grow": (_h_memory_grow, None),
    "memory.fill": (_h_memory_fill, None), "memory.copy": (_h_memory_copy, None),
    "memory.init": (_h_memory_init, None), "data.drop": (_h_data_drop, None),
    "table.get": (_h_table_get, None), "table.set": (_h_table_set, None),
    "table.size": (_h_table_size, None), "table.grow": (_h_table_grow, None),
    "table.fill": (_h_table_fill, None), "table.copy": (_h_table_copy, None),
    "table.init": (_h_table_init, None), "elem.drop": (_h_elem_drop, None),
    "ref.null": (_h_ref_null, None), "ref.is_null": (_h_ref_is_null, None),
    "ref.func": (_h_ref_func, None),
})

# Every wasm mnemonic the translator accepts (the control ops are in ``run``).
SUPPORTED_OPS = frozenset(_HANDLERS) | {
    "block", "loop", "if", "else", "end", "br", "br_if", "br_table", "return",
}


# --- the public entry points -------------------------------------------------------

@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector (restoring its previous state after).

    Translation allocates several container objects per instruction and frees
    none of them, the worst case for CPython's generational collector: on
    many1500.wasm its collections took 70% of the time (1.1 s vs 0.33 s).
    Reference counting still frees everything acyclic meanwhile.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def translate_function(module: object, index: int) -> Function:
    """Translate defined function ``index`` (0-based among the module's own functions).

    Its function-space index is ``module.num_imported_funcs + index``.  The
    module must have passed validation; anything a valid module cannot
    contain raises ``CodegenError`` with the wasm offset.
    """
    with _no_cyclic_gc():
        return _Translator(module, index).run()


def translate_module(module: object) -> list[Function]:
    """Translate every defined function of ``module``, in index order."""
    with _no_cyclic_gc():
        return [_Translator(module, i).run() for i in range(len(module.codes))]


# --- cleanups (callable as passes) ----------------------------------------------------

def _resolve(alias: dict[Value, Value], v: Value) -> Value:
    r = v
    while r in alias:
        r = alias[r]
    if r is not v:
        while v in alias:              # path compression
            alias[v], v = r, alias[v]
    return r


def remove_trivial_block_params(func: Function,
                                alias: dict[Value, Value] | None = None) -> Function:
    """Remove block parameters whose incoming arguments are all one value (or the parameter).

    ``alias`` maps values already replaced (params removed during SSA
    construction) to their replacements; the map is extended here and every
    use in the function is rewritten through it.  Correct because a value
    reaching a block on every incoming edge dominates the block (the entry
    has no incoming edges, so its params are never touched); iterated to a
    fixed point because removing one parameter can make another trivial.
    """
    alias = {} if alias is None else alias
    edges: dict[Block, list[BlockCall]] = {}
    for b in func.blocks:
        if b.insts:
            for call in b.insts[-1].targets:
                edges.setdefault(call.block, []).append(call)
    entry = func.blocks[0] if func.blocks else None
    candidates = [b for b in func.blocks if b.params and b is not entry and b in edges]
    changed = True
    while changed:
        changed = False
        for b in candidates:
            calls = edges[b]
            for i, p in enumerate(b.params):
                if p in alias:
                    continue
                same = None
                for call in calls:
                    a = call.args[i]
                    if a in alias:
                        a = _resolve(alias, a)
                    if a is p or a is same:
                        continue
                    if same is not None:
                        break
                    same = a
                else:
                    if same is not None:
                        alias[p] = same
                        changed = True
    if not alias:
        return func
    for b in candidates:
        params = b.params
        if any(p in alias for p in params):
            keep = [i for i, p in enumerate(params) if p not in alias]
            b.params = [params[i] for i in keep]
            for call in edges[b]:
                args = call.args
                call.args = [args[i] for i in keep]
    for b in func.blocks:
        for inst in b.insts:
            args = inst.args
            for i, a in enumerate(args):
                if a in alias:
                    args[i] = _resolve(alias, a)
            for call in inst.targets:
                args = call.args
                for i, a in enumerate(args):
                    if a in alias:
                        args[i] = _resolve(alias, a)
    return func


def remove_unreachable_blocks(func: Function) -> Function:
    """Drop the blocks that cannot be reached from the entry (keeping the block order)."""
    if not func.blocks:
        return func
    seen = {func.blocks[0]}
    work = [func.blocks[0]]
    while work:
        for s in work.pop().successors():
            if s not in seen:
                seen.add(s)
                work.append(s)
    if len(seen) != len(func.blocks):
        func.blocks = [b for b in func.blocks if b in seen]
    return func


def renumber(func: Function) -> Function:
    """Number blocks in layout order and values in definition order (stable golden text)."""
    nv = 0
    for nb, b in enumerate(func.blocks):
        b.id = nb
        for p in b.params:
            p.id = nv
            nv += 1
        for inst in b.insts:
            for r in inst.results:
                r.id = nv
                nv += 1
    func._next_block = len(func.blocks)
    func._next_value = nv
    return func

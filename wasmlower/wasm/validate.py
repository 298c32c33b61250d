"""Module validation, following the spec's validation algorithm (appendix
"Validation Algorithm" of the WebAssembly 2.0 core spec).

Function bodies are checked with an operand stack and a control stack.  The
operand stack holds ``ValType``s, or ``None`` for the spec's ``Unknown`` type,
which only arises from popping the polymorphic stack of unreachable code.
Each control frame is a list ``[kind, params, results, height, unreachable]``:
``height`` is the operand-stack height at entry, below which the frame may
not pop; ``unreachable`` makes popping an empty frame yield ``Unknown``.

Choices where WebAssembly 2.0 and the 3.0 test suite differ:

- A module with more than one memory is rejected with "unsupported feature:
  multi-memory (multiple memories)".  2.0 calls it invalid ("multiple
  memories"); 3.0 made it valid.  The 3.0 test suite in ``shared`` no longer
  has any "multiple memories" assertion (``exports.wast`` keeps them commented
  out), and every two-memory module in it belongs to the multi-memory tests,
  so the message names the missing feature first and keeps the 2.0 wording.
- ``global.get`` in a constant expression must name an imported immutable
  global (2.0).  Naming an earlier, immutable, module-defined global is valid
  in 3.0; that is reported as "unsupported feature: gc ...".  A later or
  missing global is "unknown global", a mutable one "constant expression
  required".  ``i32/i64.add/sub/mul`` in constant expressions (3.0's
  extended-const) are "unsupported feature: extended-const".
- Memarg offsets and limits are decoded as u64 (3.0); offsets of 2^32 or more
  are "offset out of range", memory limits above 65536 pages "memory size must
  be at most 65536 pages (4GiB)", table limits above 2^32-1 "table size must
  be at most 2^32-1".
"""

from __future__ import annotations

from wasmlower.errors import ValidationError
from wasmlower.wasm.module import (
    FuncType,
    GlobalType,
    Instr,
    Limits,
    MemoryType,
    Module,
    TableType,
    ValType,
)
from wasmlower.wasm.opcodes import EXTENDED_CONST, MEMOPS, SIMPLE_SIGS

__all__ = ["validate", "validate_function"]

I32, I64, F32, F64 = ValType.I32, ValType.I64, ValType.F32, ValType.F64
FUNCREF, EXTERNREF = ValType.FUNCREF, ValType.EXTERNREF
_REFS = (FUNCREF, EXTERNREF)

MAX_PAGES = 65536
MAX_TABLE = (1 << 32) - 1

# Control frame kinds.
_FUNC, _BLOCK, _LOOP, _IF, _ELSE = range(5)

# Instruction codes of everything that is not a fixed signature.
(C_UNREACHABLE, C_NOP, C_BLOCK, C_LOOP, C_IF, C_ELSE, C_END, C_BR, C_BR_IF, C_BR_TABLE,
 C_RETURN, C_CALL, C_CALL_INDIRECT, C_DROP, C_SELECT, C_LOCAL_GET, C_LOCAL_SET, C_LOCAL_TEE,
 C_GLOBAL_GET, C_GLOBAL_SET, C_TABLE_GET, C_TABLE_SET, C_LOAD, C_STORE, C_MEMORY_SIZE,
 C_MEMORY_GROW, C_I32_CONST, C_I64_CONST, C_F32_CONST, C_F64_CONST, C_REF_NULL, C_REF_IS_NULL,
 C_REF_FUNC, C_MEMORY_INIT, C_DATA_DROP, C_MEMORY_COPY, C_MEMORY_FILL, C_TABLE_INIT,
 C_ELEM_DROP, C_TABLE_COPY, C_TABLE_GROW, C_TABLE_SIZE, C_TABLE_FILL) = range(43)

# Fixed signatures are stored flat: (p, r) or (p0, p1, r); every one has one result.
_DISPATCH: dict[str, object] = {op: (*ps, rs[0]) for op, (ps, rs) in SIMPLE_SIGS.items()}
_DISPATCH.update({
    "unreachable": C_UNREACHABLE, "nop": C_NOP, "block": C_BLOCK, "loop": C_LOOP, "if": C_IF,
    "else": C_ELSE, "end": C_END, "br": C_BR, "br_if": C_BR_IF, "br_table": C_BR_TABLE,
    "return": C_RETURN, "call": C_CALL, "call_indirect": C_CALL_INDIRECT, "drop": C_DROP,
    "select": C_SELECT, "local.get": C_LOCAL_GET, "local.set": C_LOCAL_SET,
    "local.tee": C_LOCAL_TEE, "global.get": C_GLOBAL_GET, "global.set": C_GLOBAL_SET,
    "table.get": C_TABLE_GET, "table.set": C_TABLE_SET, "memory.size": C_MEMORY_SIZE,
    "memory.grow": C_MEMORY_GROW, "i32.const": C_I32_CONST, "i64.const": C_I64_CONST,
    "f32.const": C_F32_CONST, "f64.const": C_F64_CONST, "ref.null": C_REF_NULL,
    "ref.is_null": C_REF_IS_NULL, "ref.func": C_REF_FUNC, "memory.init": C_MEMORY_INIT,
    "data.drop": C_DATA_DROP, "memory.copy": C_MEMORY_COPY, "memory.fill": C_MEMORY_FILL,
    "table.init": C_TABLE_INIT, "elem.drop": C_ELEM_DROP, "table.copy": C_TABLE_COPY,
    "table.grow": C_TABLE_GROW, "table.size": C_TABLE_SIZE, "table.fill": C_TABLE_FILL,
})
for _name, (_t, _align, _is_store) in MEMOPS.items():
    _DISPATCH[_name] = C_STORE if _is_store else C_LOAD

_CONST_TYPES = {"i32.const": I32, "i64.const": I64, "f32.const": F32, "f64.const": F64}


def validate(module: Module) -> None:
    """Check that ``module`` is valid; raise ``ValidationError`` (with the byte
    offset of the offending instruction or definition, where known) if not."""
    v = _Validator(module)
    v.check_module()
    for i in range(len(module.codes)):
        v.check_function(v.nimported_funcs + i)


def validate_function(module: Module, index: int) -> None:
    """Validate one defined function; ``index`` is its index in the function
    index space (imported functions first).  The module-level definitions it
    refers to are assumed valid."""
    v = _Validator(module)
    if not v.nimported_funcs <= index < v.nimported_funcs + len(module.codes):
        raise ValidationError(f"unknown function {index}")
    v.check_function(index)


def _offset(expr: list[Instr], default: int | None = None) -> int | None:
    return expr[0].offset if expr else default


def _tname(t: ValType | None) -> str:
    return "unknown" if t is None else t.value


def _mismatch(expected: object, actual: object, offset: int | None) -> ValidationError:
    return ValidationError(f"type mismatch: expected {expected}, found {actual}", offset)


def _pop(stack: list, frame: list, expect: ValType | None, offset: int) -> ValType | None:
    """Pop one operand (of type ``expect``, or any type if None)."""
    if len(stack) == frame[3]:
        if frame[4]:
            return None  # Unknown, even when a type was expected (spec: pop_val)
        want = "a value" if expect is None else expect.value
        raise ValidationError(f"type mismatch: expected {want}, but the stack is empty", offset)
    actual = stack.pop()
    if actual is not expect and actual is not None and expect is not None:
        raise _mismatch(expect.value, actual.value, offset)
    return actual


def _pop_vals(stack: list, frame: list, types: tuple, offset: int) -> list:
    out = [None] * len(types)
    for i in range(len(types) - 1, -1, -1):
        out[i] = _pop(stack, frame, types[i], offset)
    return out


def _pop_ref(stack: list, frame: list, offset: int) -> ValType | None:
    t = _pop(stack, frame, None, offset)
    if t is not None and t not in _REFS:
        raise _mismatch("a reference", t.value, offset)
    return t


class _Validator:
    def __init__(self, m: Module) -> None:
        self.m = m
        self.types = m.types
        imp_funcs: list[int] = []
        self.tables: list[TableType] = []
        self.memories: list[MemoryType] = []
        self.globals: list[GlobalType] = []
        for imp in m.imports:
            if imp.kind == "func":
                imp_funcs.append(imp.desc)
            elif imp.kind == "table":
                self.tables.append(imp.desc)
            elif imp.kind == "memory":
                self.memories.append(imp.desc)
            else:
                self.globals.append(imp.desc)
        self.nimported_funcs = len(imp_funcs)
        self.nimported_globals = len(self.globals)
        self.func_type_idx = imp_funcs + list(m.funcs)
        self.tables += m.tables
        self.memories += m.memories
        self.globals += [g.type for g in m.globals]
        self.elem_types = [e.type for e in m.elems]
        self.ndatas = len(m.datas)
        self._refs: set[int] | None = None

    # -- helpers ---------------------------------------------------------------

    def type_at(self, idx: int, offset: int | None) -> FuncType:
        if 0 <= idx < len(self.types):
            return self.types[idx]
        raise ValidationError(f"unknown type {idx}", offset)

    def func_type(self, idx: int, offset: int | None) -> FuncType:
        if not 0 <= idx < len(self.func_type_idx):
            raise ValidationError(f"unknown function {idx}", offset)
        return self.type_at(self.func_type_idx[idx], offset)

    def table(self, idx: int, offset: int | None) -> TableType:
        if 0 <= idx < len(self.tables):
            return self.tables[idx]
        raise ValidationError(f"unknown table {idx}", offset)

    def memory(self, idx: int, offset: int | None) -> None:
        if not 0 <= idx < len(self.memories):
            raise ValidationError(f"unknown memory {idx}", offset)

    def elem_type(self, idx: int, offset: int | None) -> ValType:
        if 0 <= idx < len(self.elem_types):
            return self.elem_types[idx]
        raise ValidationError(f"unknown elem segment {idx}", offset)

    def data(self, idx: int, offset: int | None) -> None:
        if not 0 <= idx < self.ndatas:
            raise ValidationError(f"unknown data segment {idx}", offset)

    def global_type(self, idx: int, offset: int | None) -> GlobalType:
        if 0 <= idx < len(self.globals):
            return self.globals[idx]
        raise ValidationError(f"unknown global {idx}", offset)

    @property
    def refs(self) -> set[int]:
        """C.refs: the functions a ``ref.func`` in code may name (spec 2.0,
        section 3.4.10): those referenced from globals, element segments and
        exports."""
        if self._refs is None:
            refs: set[int] = set()
            m = self.m
            exprs = [g.init for g in m.globals]
            for e in m.elems:
                exprs.extend(e.init)
            for expr in exprs:
                for ins in expr:
                    if ins.op == "ref.func":
                        refs.add(ins.imm)
            refs.update(e.index for e in m.exports if e.kind == "func")
            self._refs = refs
        return self._refs

    # -- module-level checks ------------------------------------------------------

    def check_limits(self, limits: Limits, bound: int, what: str, offset: int | None) -> None:
        lo, hi = limits.min, limits.max
        if lo > bound or (hi is not None and hi > bound):
            if what == "memory":
                msg = f"memory size must be at most {MAX_PAGES} pages (4GiB)"
            else:
                msg = "table size must be at most 2^32-1"
            raise ValidationError(msg, offset)
        if hi is not None and lo > hi:
            raise ValidationError("size minimum must not be greater than maximum", offset)

    def check_const(self, expr: list[Instr], expected: ValType, offset: int | None,
                    global_index: int | None = None) -> None:
        """A constant expression producing one ``expected`` value.
        ``global_index`` is the index of the global being initialised, if any."""
        stack: list[ValType] = []
        for ins in expr:
            op = ins.op
            t = _CONST_TYPES.get(op)
            if t is not None:
                stack.append(t)
            elif op == "ref.null":
                stack.append(ins.imm)
            elif op == "ref.func":
                self.func_type(ins.imm, ins.offset)
                stack.append(FUNCREF)
            elif op == "global.get":
                idx = ins.imm
                gt = self.global_type(idx, ins.offset)
                if idx >= self.nimported_globals:
                    if gt.mutable or (global_index is not None and idx >= global_index):
                        raise ValidationError(f"unknown global {idx}", ins.offset)
                    raise ValidationError(
                        "unsupported feature: gc (global.get of module-defined global "
                        f"{idx} in a constant expression)", ins.offset)
                if gt.mutable:
                    raise ValidationError("constant expression required", ins.offset)
                stack.append(gt.type)
            elif op in EXTENDED_CONST:
                raise ValidationError(f"unsupported feature: extended-const ({op})", ins.offset)
            else:
                raise ValidationError("constant expression required", ins.offset)
        if len(stack) != 1 or stack[0] is not expected:
            found = " ".join(t.value for t in stack) or "nothing"
            raise _mismatch(expected.value, found, offset)

    def at(self, key: str, index: int) -> int | None:
        """The byte offset of entry ``index`` of section ``key``, if the decoder recorded it."""
        offsets = self.m.offsets.get(key)
        return offsets[index] if offsets is not None and 0 <= index < len(offsets) else None

    def check_module(self) -> None:
        m = self.m
        at = self.at
        memory_imports = []
        for i, imp in enumerate(m.imports):
            if imp.kind == "func":
                self.type_at(imp.desc, at("imports", i))
            elif imp.kind == "table":
                self.check_limits(imp.desc.limits, MAX_TABLE, "table", at("imports", i))
            elif imp.kind == "memory":
                self.check_limits(imp.desc.limits, MAX_PAGES, "memory", at("imports", i))
                memory_imports.append(i)
        for i, t in enumerate(m.funcs):
            self.type_at(t, at("funcs", i))
        for i, tt in enumerate(m.tables):
            self.check_limits(tt.limits, MAX_TABLE, "table", at("tables", i))
        for i, mt in enumerate(m.memories):
            self.check_limits(mt.limits, MAX_PAGES, "memory", at("memories", i))
        if len(self.memories) > 1:
            second = (at("imports", memory_imports[1]) if len(memory_imports) > 1
                      else at("memories", 1 - len(memory_imports)))
            raise ValidationError("unsupported feature: multi-memory (multiple memories)", second)
        for i, g in enumerate(m.globals):
            self.check_const(g.init, g.type.type, _offset(g.init, at("globals", i)),
                             self.nimported_globals + i)
        for i, e in enumerate(m.elems):
            where = _offset(e.offset or [], at("elems", i))
            for init in e.init:
                self.check_const(init, e.type, _offset(init, where))
            if e.mode == "active":
                tt = self.table(e.table, where)
                if tt.elem is not e.type:
                    raise _mismatch(tt.elem.value, e.type.value, where)
                self.check_const(e.offset or [], I32, where)
        for i, d in enumerate(m.datas):
            if d.mode == "active":
                where = _offset(d.offset or [], at("datas", i))
                self.memory(d.memory, where)
                self.check_const(d.offset or [], I32, where)
        if m.start is not None:
            ft = self.func_type(m.start, at("start", 0))
            if ft.params or ft.results:
                raise ValidationError(f"start function must have type [] -> [], not {ft}",
                                      at("start", 0))
        names: set[str] = set()
        for i, ex in enumerate(m.exports):
            where = at("exports", i)
            if ex.kind == "func":
                self.func_type(ex.index, where)
            elif ex.kind == "table":
                self.table(ex.index, where)
            elif ex.kind == "memory":
                self.memory(ex.index, where)
            else:
                self.global_type(ex.index, where)
            if ex.name in names:
                raise ValidationError(f"duplicate export name {ex.name!r}", where)
            names.add(ex.name)

    # -- function bodies ------------------------------------------------------------

    def check_function(self, funcidx: int) -> None:
        """Validate the body of defined function ``funcidx`` (function index space)."""
        m = self.m
        code = m.codes[funcidx - self.nimported_funcs]
        ftype = self.func_type(funcidx, code.offset)
        locals_ = list(ftype.params) + list(code.locals)
        nlocals = len(locals_)
        globals_ = self.globals
        memories = self.memories
        func_type_idx = self.func_type_idx
        dispatch = _DISPATCH
        memops = MEMOPS

        # The frequent instruction codes as locals (cheaper than globals).
        LOCAL_GET, I32_CONST, LOCAL_SET, LOCAL_TEE = (C_LOCAL_GET, C_I32_CONST, C_LOCAL_SET,
                                                      C_LOCAL_TEE)
        LOAD, STORE, END, BR_IF, BLOCK, LOOP, IF = (C_LOAD, C_STORE, C_END, C_BR_IF, C_BLOCK,
                                                    C_LOOP, C_IF)
        BR, CALL, GLOBAL_GET, GLOBAL_SET, DROP = C_BR, C_CALL, C_GLOBAL_GET, C_GLOBAL_SET, C_DROP

        stack: list[ValType | None] = []
        push = stack.append
        frame: list = [_FUNC, (), ftype.results, 0, False]
        ctrls: list[list] = [frame]
        height = 0
        body = code.body

        for op, imm, at in body:
            e = dispatch.get(op)
            if e.__class__ is tuple:
                # Fixed signature [p] -> [r] or [p0 p1] -> [r]: fast path when
                # the operands are present and of the right type (or Unknown).
                n = len(stack) - height
                if len(e) == 3:
                    if n >= 2:
                        a = stack[-2]
                        b = stack[-1]
                        if (a is e[0] or a is None) and (b is e[1] or b is None):
                            del stack[-1]
                            stack[-1] = e[2]
                            continue
                    _pop_vals(stack, frame, e[:2], at)
                else:
                    if n >= 1:
                        a = stack[-1]
                        if a is e[0] or a is None:
                            stack[-1] = e[1]
                            continue
                    _pop(stack, frame, e[0], at)
                push(e[-1])
                continue

            if e == LOCAL_GET:
                if imm >= nlocals:
                    raise ValidationError(f"unknown local {imm}", at)
                push(locals_[imm])
            elif e == I32_CONST:
                push(I32)
            elif e == LOCAL_SET or e == LOCAL_TEE:
                if imm >= nlocals:
                    raise ValidationError(f"unknown local {imm}", at)
                t = locals_[imm]
                if len(stack) > height and stack[-1] is t:
                    if e == C_LOCAL_SET:
                        stack.pop()
                else:
                    _pop(stack, frame, t, at)
                    if e == C_LOCAL_TEE:
                        push(t)
            elif e == LOAD or e == STORE:
                t, natural, _ = memops[op]
                if len(imm) > 2:
                    raise ValidationError(f"unknown memory {imm[2]}", at)
                if not memories:
                    raise ValidationError("unknown memory 0", at)
                if imm[0] > natural:
                    raise ValidationError("alignment must not be larger than natural", at)
                if imm[1] >= 1 << 32:
                    raise ValidationError("offset out of range", at)
                if e == C_LOAD:
                    _pop(stack, frame, I32, at)
                    push(t)
                else:
                    _pop(stack, frame, t, at)
                    _pop(stack, frame, I32, at)
            elif e == END:
                _pop_vals(stack, frame, frame[2], at)
                if len(stack) != frame[3]:
                    raise ValidationError("type mismatch: values remain on the stack at end "
                                          "of block", at)
                ctrls.pop()
                if frame[0] == _IF and frame[1] != frame[2]:
                    raise ValidationError("type mismatch: if without else must leave its "
                                          "parameters unchanged", at)
                stack.extend(frame[2])
                if ctrls:
                    frame = ctrls[-1]
                    height = frame[3]
                elif body[-1].offset != at:
                    raise ValidationError("operators remaining after end of function", at)
            elif e == BR_IF:
                if imm >= len(ctrls):
                    raise ValidationError("unknown label", at)
                _pop(stack, frame, I32, at)
                target = ctrls[-1 - imm]
                lt = target[1] if target[0] == _LOOP else target[2]
                _pop_vals(stack, frame, lt, at)
                stack.extend(lt)
            elif e == BLOCK or e == LOOP or e == IF:
                if imm is None:
                    params, results = (), ()
                elif imm.__class__ is int:
                    ft = self.type_at(imm, at)
                    params, results = ft.params, ft.results
                else:
                    params, results = (), (imm,)
                if e == C_IF:
                    _pop(stack, frame, I32, at)
                _pop_vals(stack, frame, params, at)
                kind = _BLOCK if e == C_BLOCK else _LOOP if e == C_LOOP else _IF
                frame = [kind, params, results, len(stack), False]
                ctrls.append(frame)
                height = frame[3]
                stack.extend(params)
            elif e == BR:
                if imm >= len(ctrls):
                    raise ValidationError("unknown label", at)
                target = ctrls[-1 - imm]
                _pop_vals(stack, frame, target[1] if target[0] == _LOOP else target[2], at)
                del stack[height:]
                frame[4] = True
            elif e == CALL:
                if not 0 <= imm < len(func_type_idx):
                    raise ValidationError(f"unknown function {imm}", at)
                ft = self.type_at(func_type_idx[imm], at)
                _pop_vals(stack, frame, ft.params, at)
                stack.extend(ft.results)
            elif e == GLOBAL_GET:
                if not 0 <= imm < len(globals_):
                    raise ValidationError(f"unknown global {imm}", at)
                push(globals_[imm].type)
            elif e == GLOBAL_SET:
                if not 0 <= imm < len(globals_):
                    raise ValidationError(f"unknown global {imm}", at)
                gt = globals_[imm]
                if not gt.mutable:
                    raise ValidationError(f"immutable global {imm} cannot be set "
                                          "(global is immutable)", at)
                _pop(stack, frame, gt.type, at)
            elif e == DROP:
                _pop(stack, frame, None, at)
            elif e == C_I64_CONST:
                push(I64)
            elif e == C_F32_CONST:
                push(F32)
            elif e == C_F64_CONST:
                push(F64)
            elif e == C_ELSE:
                if frame[0] != _IF:
                    raise ValidationError("else without matching if", at)
                _pop_vals(stack, frame, frame[2], at)
                if len(stack) != frame[3]:
                    raise ValidationError("type mismatch: values remain on the stack at end "
                                          "of then branch", at)
                frame = [_ELSE, frame[1], frame[2], frame[3], False]
                ctrls[-1] = frame
                stack.extend(frame[1])
            elif e == C_SELECT:
                _pop(stack, frame, I32, at)
                if imm is None:
                    t1 = _pop(stack, frame, None, at)
                    t2 = _pop(stack, frame, None, at)
                    if t1 in _REFS or t2 in _REFS:
                        raise ValidationError("type mismatch: select without a type "
                                              "immediate needs numeric operands", at)
                    if t1 is not t2 and t1 is not None and t2 is not None:
                        raise _mismatch(_tname(t1), _tname(t2), at)
                    push(t2 if t1 is None else t1)
                else:
                    if len(imm) != 1:
                        raise ValidationError("invalid result arity", at)
                    t = imm[0]
                    _pop(stack, frame, t, at)
                    _pop(stack, frame, t, at)
                    push(t)
            elif e == C_UNREACHABLE:
                del stack[height:]
                frame[4] = True
            elif e == C_NOP:
                pass
            elif e == C_RETURN:
                _pop_vals(stack, frame, ftype.results, at)
                del stack[height:]
                frame[4] = True
            elif e == C_BR_TABLE:
                depths, default = imm
                _pop(stack, frame, I32, at)
                if default >= len(ctrls):
                    raise ValidationError("unknown label", at)
                target = ctrls[-1 - default]
                default_types = target[1] if target[0] == _LOOP else target[2]
                arity = len(default_types)
                for d in depths:
                    if d >= len(ctrls):
                        raise ValidationError("unknown label", at)
                    target = ctrls[-1 - d]
                    lt = target[1] if target[0] == _LOOP else target[2]
                    if len(lt) != arity:
                        raise ValidationError("type mismatch: br_table targets have "
                                              "different arities", at)
                    stack.extend(_pop_vals(stack, frame, lt, at))
                _pop_vals(stack, frame, default_types, at)
                del stack[height:]
                frame[4] = True
            elif e == C_CALL_INDIRECT:
                typeidx, tableidx = imm
                tt = self.table(tableidx, at)
                if tt.elem is not FUNCREF:
                    raise ValidationError("type mismatch: call_indirect needs a funcref table",
                                          at)
                ft = self.type_at(typeidx, at)
                _pop(stack, frame, I32, at)
                _pop_vals(stack, frame, ft.params, at)
                stack.extend(ft.results)
            elif e == C_MEMORY_SIZE:
                self.memory(imm, at)
                push(I32)
            elif e == C_MEMORY_GROW:
                self.memory(imm, at)
                _pop(stack, frame, I32, at)
                push(I32)
            elif e == C_MEMORY_FILL:
                self.memory(imm, at)
                _pop_vals(stack, frame, (I32, I32, I32), at)
            elif e == C_MEMORY_COPY:
                self.memory(imm[0], at)
                self.memory(imm[1], at)
                _pop_vals(stack, frame, (I32, I32, I32), at)
            elif e == C_MEMORY_INIT:
                self.memory(imm[1], at)
                self.data(imm[0], at)
                _pop_vals(stack, frame, (I32, I32, I32), at)
            elif e == C_DATA_DROP:
                self.data(imm, at)
            elif e == C_REF_NULL:
                push(imm)
            elif e == C_REF_IS_NULL:
                _pop_ref(stack, frame, at)
                push(I32)
            elif e == C_REF_FUNC:
                self.func_type(imm, at)
                if imm not in self.refs:
                    raise ValidationError(f"undeclared function reference {imm}", at)
                push(FUNCREF)
            elif e == C_TABLE_GET:
                tt = self.table(imm, at)
                _pop(stack, frame, I32, at)
                push(tt.elem)
            elif e == C_TABLE_SET:
                tt = self.table(imm, at)
                _pop(stack, frame, tt.elem, at)
                _pop(stack, frame, I32, at)
            elif e == C_TABLE_SIZE:
                self.table(imm, at)
                push(I32)
            elif e == C_TABLE_GROW:
                tt = self.table(imm, at)
                _pop(stack, frame, I32, at)
                _pop(stack, frame, tt.elem, at)
                push(I32)
            elif e == C_TABLE_FILL:
                tt = self.table(imm, at)
                _pop(stack, frame, I32, at)
                _pop(stack, frame, tt.elem, at)
                _pop(stack, frame, I32, at)
            elif e == C_TABLE_COPY:
                dst = self.table(imm[0], at)
                src = self.table(imm[1], at)
                if dst.elem is not src.elem:
                    raise _mismatch(dst.elem.value, src.elem.value, at)
                _pop_vals(stack, frame, (I32, I32, I32), at)
            elif e == C_TABLE_INIT:
                elemidx, tableidx = imm
                tt = self.table(tableidx, at)
                et = self.elem_type(elemidx, at)
                if tt.elem is not et:
                    raise _mismatch(tt.elem.value, et.value, at)
                _pop_vals(stack, frame, (I32, I32, I32), at)
            elif e == C_ELEM_DROP:
                self.elem_type(imm, at)
            else:
                raise ValidationError(f"unknown instruction {op!r}", at)
        if ctrls:
            raise ValidationError("END opcode expected", code.offset)

"""A small reference interpreter of the generic IR, for tests.

It runs the functions the translator produces, so that tests can compare
their results with Wasmtime running the same module.  Clarity over speed:
one ``dict`` of values per call, one Python function per op.

Value representation: every value is a non-negative Python int, the
value's bit pattern: integers are kept modulo 2**bits (unsigned), floats as
their IEEE bits.  Float arithmetic goes through Python floats (doubles); f32
results are rounded to single precision, which is exact for + - * / sqrt
(a double holds more than 2*24+2 bits).  NaN payloads are not modelled
exactly (wasm leaves most of them nondeterministic anyway).

Instance state: one linear memory (a ``bytearray``), globals, tables of
handles (0 is null; a funcref is an index into the ``Store``'s function list,
plus one), the passive data and element segments.  Memories, tables, globals
and functions are objects that imports share between instances.  Traps raise
``wasmlower.errors.Trap`` with the IR's trap code.

``IRAdapter`` plugs the translator plus this interpreter into the spec test
runner (``wasmlower.spec.runner``) as an engine.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence

from wasmlower.errors import ExhaustionError, Trap
from wasmlower.ir.function import Function, Inst
from wasmlower.ir.ops import TRAP_MESSAGES
from wasmlower.ir.types import F32, F64, I32, I64, Type

PAGE = 65536
MASK32 = (1 << 32) - 1
MASK64 = (1 << 64) - 1
_MASK = {I32: MASK32, I64: MASK64, F32: MASK32, F64: MASK64}


def trap(kind: str) -> Trap:
    return Trap(kind, TRAP_MESSAGES[kind])


def signed(x: int, bits: int) -> int:
    return x - (1 << bits) if x >> (bits - 1) else x


# --- float encoding -------------------------------------------------------------

def f32_value(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def f64_value(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


def f32_bits(x: float) -> int:
    try:
        return struct.unpack("<I", struct.pack("<f", x))[0]
    except OverflowError:                 # rounds to infinity
        return 0xFF800000 if x < 0 else 0x7F800000


def f64_bits(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def fvalue(t: Type, bits: int) -> float:
    return f32_value(bits) if t is F32 else f64_value(bits)


def fbits(t: Type, x: float) -> int:
    return f32_bits(x) if t is F32 else f64_bits(x)


def int_to_f32(n: int) -> float:
    """``n`` rounded to the nearest f32 (ties to even), as a double; no double rounding."""
    m = abs(n)
    if m.bit_length() > 24:
        shift = m.bit_length() - 24
        q, r = divmod(m, 1 << shift)
        half = 1 << (shift - 1)
        if r > half or (r == half and q & 1):
            q += 1
        m = q << shift
    return float(-m if n < 0 else m)


# --- value conversion for callers ----------------------------------------------------

def to_bits(t: Type, v: float) -> int:
    if t.is_int:
        return int(v) & _MASK[t]
    return fbits(t, float(v))


def from_bits(t: Type, v: int) -> int | float:
    if t.is_int:
        return signed(v, t.bits)
    return fvalue(t, v)


# --- the ops -----------------------------------------------------------------------

def _rint(x: float, fn: Callable[[float], int]) -> float:
    if math.isnan(x) or math.isinf(x) or x == 0:
        return x
    r = float(fn(x))
    return math.copysign(0.0, x) if r == 0 else r


def _fmin(a: float, b: float) -> float:
    if math.isnan(a) or math.isnan(b):
        return math.nan
    if a == b == 0:
        return a if math.copysign(1, a) < 0 else b
    return min(a, b)


def _fmax(a: float, b: float) -> float:
    if math.isnan(a) or math.isnan(b):
        return math.nan
    if a == b == 0:
        return a if math.copysign(1, a) > 0 else b
    return max(a, b)


def _fdiv(a: float, b: float) -> float:
    if b == 0:
        if a == 0 or math.isnan(a):
            return math.nan
        neg = (math.copysign(1, a) < 0) != (math.copysign(1, b) < 0)
        return -math.inf if neg else math.inf
    return a / b


def _fsqrt(a: float) -> float:
    if math.isnan(a) or a < 0:
        return math.nan
    return math.sqrt(a)


_FBIN: dict[str, Callable[[float, float], float]] = {
    "fadd": lambda a, b: a + b, "fsub": lambda a, b: a - b, "fmul": lambda a, b: a * b,
    "fdiv": _fdiv, "fmin": _fmin, "fmax": _fmax,
}
_FUN: dict[str, Callable[[float], float]] = {
    "fsqrt": _fsqrt,
    "fceil": lambda x: _rint(x, math.ceil), "ffloor": lambda x: _rint(x, math.floor),
    "ftrunc": lambda x: _rint(x, math.trunc), "fnearest": lambda x: _rint(x, round),
}
_FCMP = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b, "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b,
}
_ICMP_U = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "ult": lambda a, b: a < b,
    "ule": lambda a, b: a <= b, "ugt": lambda a, b: a > b, "uge": lambda a, b: a >= b,
}
_ICMP_S = {"slt": lambda a, b: a < b, "sle": lambda a, b: a <= b,
           "sgt": lambda a, b: a > b, "sge": lambda a, b: a >= b}

_LOAD = {"i32": ("<I", 4), "i64": ("<Q", 8), "f32": ("<I", 4), "f64": ("<Q", 8),
         "i8s": ("<b", 1), "i8u": ("<B", 1), "i16s": ("<h", 2), "i16u": ("<H", 2),
         "i32s": ("<i", 4), "i32u": ("<I", 4)}
_STORE = {"i32": ("<I", 4), "i64": ("<Q", 8), "f32": ("<I", 4), "f64": ("<Q", 8),
          "i8": ("<B", 1), "i16": ("<H", 2)}


def _fcvt_to_int(x: float, bits: int, is_signed: bool, sat: bool) -> int:
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if is_signed else (0, (1 << bits) - 1)
    if math.isnan(x):
        if sat:
            return 0
        raise trap("bad_conv")
    if math.isinf(x):
        if sat:
            return lo if x < 0 else hi
        raise trap("int_ovf")
    t = math.trunc(x)
    if t < lo or t > hi:
        if sat:
            return lo if t < lo else hi
        raise trap("int_ovf")
    return t


class Memory:
    """A linear memory (shareable through imports)."""

    def __init__(self, pages: int, max_pages: int | None) -> None:
        self.data = bytearray(pages * PAGE)
        self.max = 65536 if max_pages is None else max_pages


class Table:
    """A table of function/extern handles (0 is null)."""

    def __init__(self, elem: str, size: int, max_size: int | None) -> None:
        self.elem = elem
        self.elems = [0] * size
        self.max = max_size


class Global:
    def __init__(self, valtype: object, mutable: bool, value: int) -> None:
        self.valtype = valtype
        self.mutable = mutable
        self.value = value


class HostFunc:
    """A Python function callable from wasm: takes and returns bit patterns."""

    def __init__(self, type: object, fn: Callable[..., Sequence[int] | None]) -> None:
        self.type = type
        self.fn = fn


class FuncRef:
    """Function ``index`` of ``instance`` (a defined function)."""

    def __init__(self, instance: Instance, index: int) -> None:
        self.instance = instance
        self.index = index

    @property
    def type(self) -> object:
        return self.instance.module.func_type(self.index)


class Store:
    """What instances share: function handles (``funcref`` values) and the call depth."""

    max_depth = 400

    def __init__(self) -> None:
        self.targets: list[FuncRef | HostFunc] = []
        self.handles: dict[object, int] = {}
        self.depth = 0
        self.plans: dict[object, tuple] = {}      # Block -> plan_block(block)

    def handle(self, target: FuncRef | HostFunc) -> int:
        key = (id(target.instance), target.index) if isinstance(target, FuncRef) else id(target)
        h = self.handles.get(key)
        if h is None:
            self.targets.append(target)
            h = self.handles[key] = len(self.targets)
        return h

    def target(self, handle: int) -> FuncRef | HostFunc:
        return self.targets[handle - 1]

    def call(self, target: FuncRef | HostFunc, args: list[int]) -> list[int]:
        if isinstance(target, HostFunc):
            return list(target.fn(*args) or [])
        if self.depth >= self.max_depth:
            raise ExhaustionError("stack_overflow", TRAP_MESSAGES["stack_overflow"])
        self.depth += 1
        try:
            inst = target.instance
            return inst.run(inst.funcs[target.index - inst.nimp], args)
        finally:
            self.depth -= 1


def _same_type(a: object, b: object) -> bool:
    return tuple(a.params) == tuple(b.params) and tuple(a.results) == tuple(b.results)


def _limits_match(actual_min: int, actual_max: int | None, limits: object) -> bool:
    if actual_min < limits.min:
        return False
    return limits.max is None or (actual_max is not None and actual_max <= limits.max)


class Instance:
    """A module instance whose defined functions run as translated IR.

    ``funcs`` are the translated functions of the module's defined functions,
    in order.  ``imports`` maps ``(module, name)`` (a dict, or a function of the
    two) to a ``HostFunc``/``FuncRef``/``Memory``/``Table``/``Global``; a plain
    Python callable is taken as a host function.  Instantiation follows the
    2.0 spec: imports are type-checked (``LinkError``), then active element and
    data segments are written in order (a trap leaves the earlier writes), then
    the start function runs.
    """

    def __init__(self, module: object, funcs: Sequence[Function],
                 imports: object = None, store: Store | None = None) -> None:
        self.module = module
        self.store = store or Store()
        self.funcs = list(funcs)
        self.func_imports: list[FuncRef | HostFunc] = []
        self.memories: list[Memory] = []
        self.tables: list[Table] = []
        self.globals: list[Global] = []
        self._refs: dict[int, FuncRef] = {}
        resolve = imports if callable(imports) else (imports or {}).get
        for imp in module.imports:
            ext = resolve((imp.module, imp.name)) if not callable(imports) \
                else resolve(imp.module, imp.name)
            self._link(imp, ext)
        self.nimp = len(self.func_imports)
        for mt in module.memories:
            self.memories.append(Memory(mt.limits.min, mt.limits.max))
        for tt in module.tables:
            self.tables.append(Table(tt.elem.value, tt.limits.min, tt.limits.max))
        for g in module.globals:
            self.globals.append(Global(g.type.type, g.type.mutable, self.const_expr(g.init)))
        self.mem = self.memories[0].data if self.memories else bytearray()
        self.datas = [d.data for d in module.datas]
        self.elems = [[self.const_expr(e) for e in seg.init] for seg in module.elems]
        for i, seg in enumerate(module.elems):
            if seg.mode == "active":
                off = self.const_expr(seg.offset)
                self.libcall("table_init", [seg.table, i, off, 0, len(self.elems[i])])
            if seg.mode != "passive":
                self.elems[i] = []
        for i, d in enumerate(module.datas):
            if d.mode == "active":
                off = self.const_expr(d.offset)
                self.libcall("memory_init", [i, off, 0, len(d.data)])
                self.datas[i] = b""
        if module.start is not None:
            self.call(module.start, [])

    def _link(self, imp: object, ext: object) -> None:
        from wasmlower.errors import LinkError
        where = f"{imp.module}.{imp.name}"
        if ext is None:
            raise LinkError(f"unknown import {where}")
        kind, desc = imp.kind, imp.desc
        if kind == "func":
            want = self.module.types[desc]
            if callable(ext) and not isinstance(ext, (HostFunc, FuncRef)):
                ext = HostFunc(want, ext)
            if not isinstance(ext, (HostFunc, FuncRef)) or not _same_type(ext.type, want):
                raise LinkError(f"incompatible import type for {where}")
            self.func_imports.append(ext)
        elif kind == "memory":
            if not isinstance(ext, Memory) or not _limits_match(
                    len(ext.data) // PAGE, ext.max if ext.max != 65536 else None, desc.limits):
                raise LinkError(f"incompatible import type for {where}")
            self.memories.append(ext)
        elif kind == "table":
            if not isinstance(ext, Table) or ext.elem != desc.elem.value or not _limits_match(
                    len(ext.elems), ext.max, desc.limits):
                raise LinkError(f"incompatible import type for {where}")
            self.tables.append(ext)
        elif kind == "global":
            if not isinstance(ext, Global) or ext.valtype != desc.type \
                    or ext.mutable != desc.mutable:
                raise LinkError(f"incompatible import type for {where}")
            self.globals.append(ext)
        else:
            raise LinkError(f"cannot import a {kind}")

    def const_expr(self, instrs: list) -> int:
        op, imm, _ = instrs[0]
        if op in ("i32.const", "i64.const"):
            return imm & (MASK32 if op[1:3] == "32" else MASK64)
        if op in ("f32.const", "f64.const"):
            return imm
        if op == "ref.null":
            return 0
        if op == "ref.func":
            return self.func_ref(imm)
        if op == "global.get":
            return self.globals[imm].value
        raise NotImplementedError(f"constant expression {op}")

    # -- functions ----------------------------------------------------------------

    def func_target(self, funcidx: int) -> FuncRef | HostFunc:
        if funcidx < self.nimp:
            return self.func_imports[funcidx]
        ref = self._refs.get(funcidx)
        if ref is None:
            ref = self._refs[funcidx] = FuncRef(self, funcidx)
        return ref

    def func_ref(self, funcidx: int) -> int:
        return self.store.handle(self.func_target(funcidx))

    def export(self, name: str) -> int:
        for e in self.module.exports:
            if e.name == name and e.kind == "func":
                return e.index
        raise KeyError(name)

    def export_extern(self, name: str) -> object:
        for e in self.module.exports:
            if e.name == name:
                if e.kind == "func":
                    return self.func_target(e.index)
                return {"memory": self.memories, "table": self.tables,
                        "global": self.globals}[e.kind][e.index]
        raise KeyError(name)

    def invoke(self, name: str, *args: float) -> list[int | float]:
        """Call export ``name`` with Python numbers; results as Python numbers."""
        funcidx = self.export(name)
        ft = self.module.func_type(funcidx)
        from wasmlower.wasm.translate import wasm_type
        ptypes = [wasm_type(t) for t in ft.params]
        rtypes = [wasm_type(t) for t in ft.results]
        res = self.call(funcidx, [to_bits(t, a) for t, a in zip(ptypes, args)])
        return [from_bits(t, r) for t, r in zip(rtypes, res)]

    def call(self, funcidx: int, args: list[int]) -> list[int]:
        return self.store.call(self.func_target(funcidx), args)

    def run(self, f: Function, args: list[int]) -> list[int]:
        plans = self.store.plans
        env: dict = {}
        block = f.blocks[0]
        bargs = args
        while True:
            plan = plans.get(block)
            if plan is None:
                plan = plans[block] = plan_block(block)
            params, steps, kind, term = plan
            for p, a in zip(params, bargs):
                env[p] = a
            for run, argv, res, nres in steps:
                out = run(self, [env[x] for x in argv])
                if nres == 1:
                    env[res] = out
                elif nres:
                    for r, v in zip(res, out):
                        env[r] = v
            if kind == _JUMP:
                t = term.targets[0]
            elif kind == _BRIF:
                t = term.targets[0] if env[term.args[0]] else term.targets[1]
            elif kind == _BR_TABLE:
                i = env[term.args[0]]
                targets = term.targets
                t = targets[i] if i < len(targets) - 1 else targets[-1]
            elif kind == _RETURN:
                return [env[a] for a in term.args]
            else:
                raise trap(term.imm[0])
            block = t.block
            bargs = [env[a] for a in t.args]

    # -- memory and tables ---------------------------------------------------------

    def check(self, ea: int, n: int) -> None:
        if ea + n > len(self.mem):
            raise trap("heap_oob")

    def libcall(self, name: str, a: list[int]) -> list[int]:
        mem = self.mem
        if name == "memory_grow":
            old = len(mem) // PAGE
            if old + a[0] > self.memories[0].max:
                return [MASK32]
            mem.extend(bytes(a[0] * PAGE))
            return [old]
        if name == "memory_fill":
            d, v, n = a
            self.check(d, n)
            mem[d:d + n] = bytes([v & 0xFF]) * n
            return []
        if name == "memory_copy":
            d, s, n = a
            self.check(d, n)
            self.check(s, n)
            mem[d:d + n] = mem[s:s + n]
            return []
        if name == "memory_init":
            seg, d, s, n = a
            data = self.datas[seg]
            if s + n > len(data):
                raise trap("heap_oob")
            self.check(d, n)
            mem[d:d + n] = data[s:s + n]
            return []
        if name == "data_drop":
            self.datas[a[0]] = b""
            return []
        if name == "elem_drop":
            self.elems[a[0]] = []
            return []
        tab = self.tables[a[0]]
        table = tab.elems
        if name == "table_get":
            if a[1] >= len(table):
                raise trap("table_oob")
            return [table[a[1]]]
        if name == "table_set":
            if a[1] >= len(table):
                raise trap("table_oob")
            table[a[1]] = a[2]
            return []
        if name == "table_size":
            return [len(table)]
        if name == "table_grow":
            _, init, n = a
            if len(table) + n > (MASK32 if tab.max is None else tab.max):
                return [MASK32]
            old = len(table)
            table.extend([init] * n)
            return [old]
        if name == "table_fill":
            _, i, v, n = a
            if i + n > len(table):
                raise trap("table_oob")
            table[i:i + n] = [v] * n
            return []
        if name == "table_copy":
            _, st, d, s, n = a
            src = self.tables[st].elems
            if d + n > len(table) or s + n > len(src):
                raise trap("table_oob")
            table[d:d + n] = src[s:s + n]
            return []
        if name == "table_init":
            _, seg, d, s, n = a
            elems = self.elems[seg]
            if d + n > len(table) or s + n > len(elems):
                raise trap("table_oob")
            table[d:d + n] = elems[s:s + n]
            return []
        raise NotImplementedError(name)


# --- op implementations -----------------------------------------------------------------
# ``_MAKE[op](inst)`` returns ``run(instance, argument values) -> result`` (a list for
# the ops in ``_MULTI``), with the instruction's types and immediates bound once.

def _mask_of(inst: Inst) -> tuple[int, int]:
    bits = inst.results[0].type.bits
    return bits, (1 << bits) - 1


def _ibin(fn: Callable[[int, int, int], int]) -> Callable:
    def make(inst: Inst) -> Callable:
        bits, mask = _mask_of(inst)
        return lambda vm, a: fn(a[0], a[1], bits) & mask
    return make


def _sdiv(a: int, b: int, bits: int) -> int:
    x, y = signed(a, bits), signed(b, bits)
    if y == 0:
        raise trap("int_divz")
    q = abs(x) // abs(y)
    return q if (x < 0) == (y < 0) else -q


def _srem(a: int, b: int, bits: int) -> int:
    x, y = signed(a, bits), signed(b, bits)
    if y == 0:
        raise trap("int_divz")
    r = abs(x) % abs(y)
    return -r if x < 0 else r


def _udiv(a: int, b: int, bits: int) -> int:
    if b == 0:
        raise trap("int_divz")
    return a // b


def _urem(a: int, b: int, bits: int) -> int:
    if b == 0:
        raise trap("int_divz")
    return a % b


def _rotl(a: int, b: int, bits: int) -> int:
    k = b % bits
    return (a << k) | (a >> (bits - k)) if k else a


def _rotr(a: int, b: int, bits: int) -> int:
    k = b % bits
    return (a >> k) | (a << (bits - k)) if k else a


def _quiet(t: Type, bits: int) -> int:
    """Arithmetic ops return quiet NaNs: set the quiet bit of a NaN result."""
    if t is F32:
        return bits | 0x400000 if bits & 0x7F800000 == 0x7F800000 and bits & 0x7FFFFF else bits
    if bits & 0x7FF0000000000000 == 0x7FF0000000000000 and bits & 0xFFFFFFFFFFFFF:
        return bits | 0x8000000000000
    return bits


def _fconv(t: Type) -> tuple[Callable[[int], float], Callable[[float], int]]:
    return (f32_value, f32_bits) if t is F32 else (f64_value, f64_bits)


def _fbin(name: str) -> Callable:
    fn = _FBIN[name]

    def make(inst: Inst) -> Callable:
        t = inst.results[0].type
        val, enc = _fconv(t)
        return lambda vm, a: _quiet(t, enc(fn(val(a[0]), val(a[1]))))
    return make


def _fun(name: str) -> Callable:
    fn = _FUN[name]

    def make(inst: Inst) -> Callable:
        t = inst.results[0].type
        val, enc = _fconv(t)
        return lambda vm, a: _quiet(t, enc(fn(val(a[0]))))
    return make


def _make_icmp(inst: Inst) -> Callable:
    cc = inst.imm[0]
    if cc == "eq":
        return lambda vm, a: 1 if a[0] == a[1] else 0
    if cc == "ne":
        return lambda vm, a: 1 if a[0] != a[1] else 0
    if cc in _ICMP_U:
        f = _ICMP_U[cc]
        return lambda vm, a: 1 if f(a[0], a[1]) else 0
    bits = inst.args[0].type.bits
    g = _ICMP_S[cc]
    return lambda vm, a: 1 if g(signed(a[0], bits), signed(a[1], bits)) else 0


def _make_fcmp(inst: Inst) -> Callable:
    f = _FCMP[inst.imm[0]]
    val = _fconv(inst.args[0].type)[0]
    return lambda vm, a: 1 if f(val(a[0]), val(a[1])) else 0


def _make_clz(inst: Inst) -> Callable:
    bits = inst.results[0].type.bits
    return lambda vm, a: bits - a[0].bit_length()


def _make_ctz(inst: Inst) -> Callable:
    bits = inst.results[0].type.bits
    return lambda vm, a: bits if a[0] == 0 else (a[0] & -a[0]).bit_length() - 1


def _fcvt_to(is_signed: bool, sat: bool) -> Callable:
    def make(inst: Inst) -> Callable:
        bits, mask = _mask_of(inst)
        val = _fconv(inst.args[0].type)[0]
        return lambda vm, a: _fcvt_to_int(val(a[0]), bits, is_signed, sat) & mask
    return make


def _fcvt_from(is_signed: bool) -> Callable:
    def make(inst: Inst) -> Callable:
        t = inst.results[0].type
        src_bits = inst.args[0].type.bits

        def run(vm: Instance, a: list[int]) -> int:
            n = signed(a[0], src_bits) if is_signed else a[0]
            return f32_bits(int_to_f32(n)) if t is F32 else f64_bits(float(n))
        return run
    return make


def _make_load(inst: Inst) -> Callable:
    kind, offset = inst.imm
    fmt, n = _LOAD[kind]
    mask = _mask_of(inst)[1]
    unpack = struct.Struct(fmt).unpack_from

    def run(vm: Instance, a: list[int]) -> int:
        ea = a[0] + offset
        mem = vm.mem
        if ea + n > len(mem):
            raise trap("heap_oob")
        return unpack(mem, ea)[0] & mask
    return run


def _make_store(inst: Inst) -> Callable:
    kind, offset = inst.imm
    fmt, n = _STORE[kind]
    mask = (1 << (8 * n)) - 1
    pack = struct.Struct(fmt).pack_into

    def run(vm: Instance, a: list[int]) -> None:
        ea = a[0] + offset
        mem = vm.mem
        if ea + n > len(mem):
            raise trap("heap_oob")
        pack(mem, ea, a[1] & mask)
    return run


# call_indirect past the end of the table ("undefined element"); older op tables
# had only table_oob for it.
_INDIRECT_OOB = "indirect_oob" if "indirect_oob" in TRAP_MESSAGES else "table_oob"


def _make_call_indirect(inst: Inst) -> Callable:
    typeidx, tableidx = inst.imm

    def run(vm: Instance, a: list[int]) -> list[int]:
        table = vm.tables[tableidx].elems
        i = a[0]
        if i >= len(table):
            raise trap(_INDIRECT_OOB)
        h = table[i]
        if h == 0:
            raise trap("indirect_null")
        target = vm.store.target(h)
        if not _same_type(target.type, vm.module.types[typeidx]):
            raise trap("bad_sig")
        return vm.store.call(target, a[1:])
    return run


def _make_trap_if(zero: bool) -> Callable:
    def make(inst: Inst) -> Callable:
        code = inst.imm[0]

        def run(vm: Instance, a: list[int]) -> None:
            if (a[0] == 0) == zero:
                raise trap(code)
        return run
    return make


def _make_global_set(inst: Inst) -> Callable:
    idx = inst.imm[0]

    def run(vm: Instance, a: list[int]) -> None:
        vm.globals[idx].value = a[0]
    return run


def _make_sext_in(inst: Inst) -> Callable:
    n = inst.imm[0]
    mask = _mask_of(inst)[1]
    return lambda vm, a: signed(a[0] & ((1 << n) - 1), n) & mask


def _make_sign_op(op: str) -> Callable:
    def make(inst: Inst) -> Callable:
        s = 1 << (inst.results[0].type.bits - 1)
        if op == "fneg":
            return lambda vm, a: a[0] ^ s
        if op == "fabs":
            return lambda vm, a: a[0] & ~s
        return lambda vm, a: (a[0] & ~s) | (a[1] & s)
    return make


def _make_iconst(inst: Inst) -> Callable:
    v = inst.imm[0] & _mask_of(inst)[1]
    return lambda vm, a: v


_MULTI = frozenset({"call", "call_indirect", "libcall"})   # ops returning a list
_MAKE: dict[str, Callable[[Inst], Callable]] = {
    "iconst": _make_iconst,
    "fconst": lambda inst: (lambda vm, a, v=inst.imm[0]: v),
    "iadd": _ibin(lambda a, b, n: a + b),
    "isub": _ibin(lambda a, b, n: a - b),
    "imul": _ibin(lambda a, b, n: a * b),
    "band": _ibin(lambda a, b, n: a & b),
    "bor": _ibin(lambda a, b, n: a | b),
    "bxor": _ibin(lambda a, b, n: a ^ b),
    "ishl": _ibin(lambda a, b, n: a << (b % n)),
    "ushr": _ibin(lambda a, b, n: a >> (b % n)),
    "sshr": _ibin(lambda a, b, n: signed(a, n) >> (b % n)),
    "rotl": _ibin(_rotl),
    "rotr": _ibin(_rotr),
    "udiv": _ibin(_udiv), "sdiv": _ibin(_sdiv),
    "urem": _ibin(_urem), "srem": _ibin(_srem),
    "clz": _make_clz, "ctz": _make_ctz,
    "popcnt": lambda inst: (lambda vm, a: a[0].bit_count()),
    "sext_in": _make_sext_in,
    "sextend": lambda inst: (lambda vm, a: signed(a[0], 32) & MASK64),
    "uextend": lambda inst: (lambda vm, a: a[0]),
    "ireduce": lambda inst: (lambda vm, a: a[0] & MASK32),
    "icmp": _make_icmp,
    "fcmp": _make_fcmp,
    "fneg": _make_sign_op("fneg"), "fabs": _make_sign_op("fabs"),
    "fcopysign": _make_sign_op("fcopysign"),
    "fpromote": lambda inst: (lambda vm, a: _quiet(F64, f64_bits(f32_value(a[0])))),
    "fdemote": lambda inst: (lambda vm, a: _quiet(F32, f32_bits(f64_value(a[0])))),
    "fcvt_to_sint": _fcvt_to(True, False), "fcvt_to_uint": _fcvt_to(False, False),
    "fcvt_to_sint_sat": _fcvt_to(True, True), "fcvt_to_uint_sat": _fcvt_to(False, True),
    "fcvt_from_sint": _fcvt_from(True), "fcvt_from_uint": _fcvt_from(False),
    "bitcast": lambda inst: (lambda vm, a: a[0]),
    "select": lambda inst: (lambda vm, a: a[1] if a[0] else a[2]),
    "copy": lambda inst: (lambda vm, a: a[0]),
    "load": _make_load,
    "store": _make_store,
    "global_get": lambda inst: (lambda vm, a, i=inst.imm[0]: vm.globals[i].value),
    "global_set": _make_global_set,
    "memory_size": lambda inst: (lambda vm, a: len(vm.mem) // PAGE),
    "call": lambda inst: (lambda vm, a, f=inst.imm[0]: vm.call(f, a)),
    "call_indirect": _make_call_indirect,
    "libcall": lambda inst: (lambda vm, a, name=inst.imm[0]: vm.libcall(name, a)),
    "func_ref": lambda inst: (lambda vm, a, f=inst.imm[0]: vm.func_ref(f)),
    "trapz": _make_trap_if(True),
    "trapnz": _make_trap_if(False),
}
for _name in _FBIN:
    _MAKE[_name] = _fbin(_name)
for _name in _FUN:
    _MAKE[_name] = _fun(_name)

# Terminator kinds in a block plan.
_JUMP, _BRIF, _BR_TABLE, _RETURN, _TRAP = range(5)
_TERMS = {"jump": _JUMP, "brif": _BRIF, "br_table": _BR_TABLE, "return": _RETURN,
          "trap": _TRAP}


def plan_block(block: object) -> tuple:
    """(params, steps, terminator kind, terminator) of a block, ready to run."""
    steps = []
    for inst in block.insts[:-1]:
        run = _MAKE[inst.op](inst)
        if inst.op in _MULTI:
            steps.append((run, tuple(inst.args), tuple(inst.results), 2))
        elif inst.results:
            steps.append((run, tuple(inst.args), inst.results[0], 1))
        else:
            steps.append((run, tuple(inst.args), None, 0))
    term = block.insts[-1]
    return tuple(block.params), steps, _TERMS[term.op], term


# --- the spec-runner engine ------------------------------------------------------------

class IRAdapter:
    """An ``EngineAdapter`` for ``wasmlower.spec.runner``: decode, validate, translate
    (optionally verify) and run the IR in this interpreter."""

    name = "ir-interp"

    def __init__(self, verify: bool = False) -> None:
        self.verify = verify
        self.reset()

    def reset(self) -> None:
        self.store = Store()
        self._spectest: dict[str, object] | None = None

    def compile(self, wasm: bytes) -> object:
        from wasmlower.errors import MalformedError, ValidationError
        from wasmlower.spec.runner import CompileRejected, UnsupportedFeature
        from wasmlower.wasm import decode_module, validate
        from wasmlower.wasm.translate import translate_module
        try:
            module = decode_module(wasm)
            validate(module)
        except (MalformedError, ValidationError) as e:
            if "unsupported feature" in str(e):
                raise UnsupportedFeature(str(e)) from None
            kind = "malformed" if isinstance(e, MalformedError) else "invalid"
            raise CompileRejected(kind, str(e)) from None
        funcs = translate_module(module)
        if self.verify:
            from wasmlower.ir import verify
            for f in funcs:
                verify(f)
        return module, funcs

    def instantiate(self, compiled: object, imports: Callable) -> object:
        from wasmlower.errors import LinkError
        from wasmlower.spec.runner import Exhausted, LinkFailed, Trapped
        module, funcs = compiled
        try:
            return Instance(module, funcs, imports, self.store)
        except LinkError as e:
            raise LinkFailed(str(e)) from None
        except ExhaustionError as e:
            raise Exhausted(e.message) from None
        except Trap as e:
            raise Trapped(e.message) from None

    def exports(self, instance: Instance) -> dict[str, object]:
        return {e.name: instance.export_extern(e.name) for e in instance.module.exports}

    def invoke(self, instance: Instance, name: str, args: list) -> list:
        from wasmlower.spec.runner import Exhausted, Trapped
        target = instance.export_extern(name)
        if not isinstance(target, (FuncRef, HostFunc)):
            raise TypeError(f"export {name!r} is not a function")
        ft = target.type
        bits = [self._to_bits(t, v) for t, v in zip(ft.params, args)]
        try:
            out = self.store.call(target, bits)
        except ExhaustionError as e:
            raise Exhausted(e.message) from None
        except RecursionError:
            raise Exhausted("Python recursion limit") from None
        except Trap as e:
            raise Trapped(e.message) from None
        return [self._value(t, b) for t, b in zip(ft.results, out)]

    def get_global(self, instance: Instance, name: str) -> object:
        g = instance.export_extern(name)
        return self._value(g.valtype, g.value)

    def spectest(self) -> dict[str, object]:
        if self._spectest is None:
            from wasmlower.wasm import FuncType, ValType
            i32, i64, f32, f64 = ValType.I32, ValType.I64, ValType.F32, ValType.F64

            def printer(*params: object) -> HostFunc:
                return HostFunc(FuncType(tuple(params), ()), lambda *a: None)

            self._spectest = {
                "print": printer(), "print_i32": printer(i32), "print_i64": printer(i64),
                "print_f32": printer(f32), "print_f64": printer(f64),
                "print_i32_f32": printer(i32, f32), "print_f64_f64": printer(f64, f64),
                "global_i32": Global(i32, False, 666), "global_i64": Global(i64, False, 666),
                "global_f32": Global(f32, False, f32_bits(666.6)),
                "global_f64": Global(f64, False, f64_bits(666.6)),
                "table": Table("funcref", 10, 20),
                "memory": Memory(1, 2),
            }
        return self._spectest

    # Reference values: the runner's null is None; externref N is handle N + 1 here.
    @staticmethod
    def _to_bits(t: object, v: object) -> int:
        value = getattr(t, "value", t)
        if value == "externref":
            return 0 if v.bits is None else v.bits + 1
        if value == "funcref":
            return v.bits or 0
        return v.bits

    @staticmethod
    def _value(t: object, bits: int) -> object:
        from wasmlower.spec.wast import Value
        value = getattr(t, "value", t)
        if value == "externref":
            return Value(value, None if bits == 0 else bits - 1)
        if value == "funcref":
            return Value(value, None if bits == 0 else bits)
        return Value(value, bits)

"""Instances, functions and globals: linking a ``CompiledModule`` and running it.

``Instance(compiled, imports, store)`` maps the module's code (live instances
of one ``CompiledModule`` share the mapping), builds the VMContext of
docs/ABI.md, checks and wires the imports, and then follows the spec's
(2.0) instantiation order: active element segments, then active data
segments, each bounds-checked and applied in order (a failing one traps
after the earlier ones were written), then the start function.

Owned native data, all ctypes u64 arrays kept alive by the instance (and the
instance by its store, because tables and globals anywhere in the store may
hold its func records):

- ``_vmctx``: the fixed 8 words of the VMContext, then one slot per global;
- ``_funcrefs``: 4 words per function index (``code, vmctx, type_id,
  index``); an imported function's record is a copy of the exporter's;
- ``_table_descs``: a ``{base, size}`` descriptor per table, kept current by the
  tables themselves; ``_type_ids``: a canonical signature id per type index.

A ``Func`` is either a wasm function (called through a host-to-wasm
trampoline via ``native.call_wasm``) or a host function (a Python callable
behind a func record whose code is a wasm-to-host trampoline and whose vmctx
is a HostContext).  Trap handling: a nonzero trampoline result is a trap code;
``host`` re-raises the exception the host function (or libcall) stashed in the
store; any other code becomes ``Trap``/``ExhaustionError`` with a backtrace
symbolized from the trap pc and the frame chain the shim captured.
"""

from __future__ import annotations

import ctypes
import itertools
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from wasmlower.errors import ArtifactError, ExhaustionError, LinkError, Trap
from wasmlower.ir.ops import TRAP_CODES, TRAP_MESSAGES
from wasmlower.runtime import libcalls, native
from wasmlower.runtime import values as _values
from wasmlower.runtime.memory import Memory
from wasmlower.runtime.store import Store, signature_id
from wasmlower.runtime.table import MAX_ELEMENTS, Table
from wasmlower.runtime.values import MASK32, MASK64
from wasmlower.wasm.module import FuncType, GlobalType, Limits, MemoryType, TableType, ValType

__all__ = ["Extern", "Func", "Global", "Instance"]

# VMContext words (docs/ABI.md).
VM_STORE, VM_MEM_BASE, VM_MEM_SIZE, VM_TABLES, VM_FUNCREFS, VM_TYPE_IDS, VM_LIBCALLS, \
    VM_TRAP_FN = range(8)
VM_GLOBALS = 8
# HostContext words: the VMContext prefix with the callback and the host function id.
HC_STORE, HC_CALLBACK, HC_ID, HC_TRAP_FN = 0, 1, 2, 7
HOSTCTX_WORDS = 8
# Func record words.
REC_CODE, REC_VMCTX, REC_TYPE_ID, REC_INDEX = range(4)
RECORD_WORDS = 4
RECORD_SIZE = 8 * RECORD_WORDS
BLOCK_VALUES = native.BLOCK_VALUES


def _mask(vt: ValType) -> int:
    return MASK32 if vt is ValType.I32 or vt is ValType.F32 else MASK64


def _check_raw(vt: ValType, bits: int) -> int:
    if not isinstance(bits, int) or not 0 <= bits <= _mask(vt):
        raise ValueError(f"raw {vt.value} value out of range: {bits!r}")
    return bits


# --- traps ------------------------------------------------------------------------


def raise_trap(store: Store, code: int, bt: Any) -> None:
    """Turn trap ``code`` of a finished wasm call into the Python exception; resets the store."""
    exc = store.pending_exception
    store.pending_exception = None
    pc = store.trap_pc
    addresses = native.backtrace_addresses(bt)
    store.clear_trap()
    kind = next((k for k, v in TRAP_CODES.items() if v == code), None)
    if kind == "host" and exc is not None:
        raise exc
    frames: list[tuple[int, str | None, int | None]] = []
    # trap_pc is the return address of the trap routine call: pc-1 is in the trap site.
    inner = native.symbolize(pc - 1) if pc else None
    if inner is not None:
        frames.append(inner)
    for ra in addresses:
        frame = native.symbolize(ra - 1)
        if frame is None:       # the host-to-wasm trampoline: the end of the wasm frames
            break
        frames.append(frame)
    if kind is None:
        raise Trap("unknown", f"unknown trap code {code}", frames)
    cls = ExhaustionError if kind == "stack_overflow" else Trap
    raise cls(kind, TRAP_MESSAGES[kind], frames)


# --- host functions' callback -------------------------------------------------------

_HOST_BY_CTX: dict[int, weakref.ref] = {}
_host_ids = itertools.count(1)


def _host_entry(hostctx: int, values: int) -> int:
    ref = _HOST_BY_CTX.get(hostctx)
    func = ref() if ref is not None else None
    if func is None:            # cannot happen: a live record keeps its Func alive
        return 1
    try:
        ft = func.type
        n = max(len(ft.params), len(ft.results), 1)
        arr = (ctypes.c_uint64 * n).from_address(values)
        args = [int(arr[i]) & _mask(t) for i, t in enumerate(ft.params)]
        for i, bits in enumerate(func._call_host_raw(args)):
            arr[i] = bits
        return 0
    except BaseException as e:  # noqa: BLE001 - nothing may escape a C callback
        func.store.pending_exception = e
        return 1


_HOST_CB_PROTO = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint64)
_HOST_CB = _HOST_CB_PROTO(_host_entry)
_HOST_CB_ADDRESS: int = ctypes.cast(_HOST_CB, ctypes.c_void_p).value or 0


# --- externs -------------------------------------------------------------------------


def _in_i32(v: Any) -> int:
    if type(v) is int and -0x80000000 <= v <= 0xFFFFFFFF:
        return v & MASK32
    return _values.to_bits(ValType.I32, v)


def _in_i64(v: Any) -> int:
    if type(v) is int and -(1 << 63) <= v <= MASK64:
        return v & MASK64
    return _values.to_bits(ValType.I64, v)


def _in_f32(v: Any) -> int:
    return _values.to_bits(ValType.F32, v)


def _in_f64(v: Any) -> int:
    if type(v) is float:
        return _values.f64_to_bits(v)
    return _values.to_bits(ValType.F64, v)


def _out_i32(b: int) -> int:
    b &= MASK32
    return b - 0x100000000 if b & 0x80000000 else b


def _out_i64(b: int) -> int:
    return b - (1 << 64) if b >> 63 else b


_IN = {ValType.I32: _in_i32, ValType.I64: _in_i64, ValType.F32: _in_f32, ValType.F64: _in_f64}
_OUT = {ValType.I32: _out_i32, ValType.I64: _out_i64, ValType.F32: _values.bits_to_f32,
        ValType.F64: _values.bits_to_f64}


class _Sig:
    """Per-signature call data: masks, reference params, value converters."""

    __slots__ = (
        "ins",
        "nparams",
        "nresults",
        "outs",
        "pmasks",
        "refs",
        "rins",
        "rmasks",
        "routs",
    )

    def __init__(self, ft: FuncType) -> None:
        self.nparams = len(ft.params)
        self.nresults = len(ft.results)
        self.pmasks = tuple(_mask(t) for t in ft.params)
        self.rmasks = tuple(_mask(t) for t in ft.results)
        self.refs = tuple((k, t) for k, t in enumerate(ft.params) if t.is_ref)
        # Converters (None: a reference type, converted through the store).
        self.ins = tuple(_IN.get(t) for t in ft.params)        # param value -> bits
        self.outs = tuple(_OUT.get(t) for t in ft.results)     # result bits -> value
        self.rins = tuple(_IN.get(t) for t in ft.results)      # host result value -> bits
        self.routs = tuple(_OUT.get(t) for t in ft.params)     # host param bits -> value


def _convert(fns: tuple, types: tuple, vals: Sequence[Any], store: Store, to_bits: bool) -> list:
    out = []
    for f, t, v in zip(fns, types, vals):
        if f is not None:
            out.append(f(v))
        elif to_bits:
            out.append(store.to_bits(t, v))
        else:
            out.append(store.from_bits(t, v))
    return out


class Func:
    """A function: exported from wasm, or a host function made from a Python callable.

    ``Func(store, functype, fn)`` makes a host function; ``fn`` receives Python
    values (signed ints, floats, Func/objects/None for references) and returns
    None, one value, or a tuple for several results.  With ``raw=True`` it
    receives and returns lists of raw bits instead.
    """

    store: Store
    type: FuncType
    _emulated: Callable[[Any], int] | None = None     # call_wasm of an emulated target

    def __init__(self, store: Store, functype: FuncType, fn: Callable[..., Any], *,
                 raw: bool = False) -> None:
        if not callable(fn):
            raise TypeError("a host function needs a callable")
        self.store = store
        self.type = functype
        self._fn: Callable[..., Any] | None = fn
        self._raw = raw
        self._sig: _Sig | None = None
        self._block: Any = None
        self._instance: Instance | None = None
        self._index = next(_host_ids)
        entry, trap_fn, keep = native.TRAMPOLINES.wasm_to_host(functype)
        self._keep = keep
        self._hostctx = (ctypes.c_uint64 * HOSTCTX_WORDS)()
        self._hostctx[HC_STORE] = store.address
        self._hostctx[HC_CALLBACK] = _HOST_CB_ADDRESS
        self._hostctx[HC_ID] = self._index
        self._hostctx[HC_TRAP_FN] = trap_fn
        ctx = ctypes.addressof(self._hostctx)
        self._rec = (ctypes.c_uint64 * RECORD_WORDS)(entry, ctx, signature_id(functype),
                                                     self._index)
        self._rec_index = 0
        self.record: int = ctypes.addressof(self._rec)
        _HOST_BY_CTX[ctx] = weakref.ref(self)
        weakref.finalize(self, _HOST_BY_CTX.pop, ctx, None)
        store.register_record(self.record, self)
        store.host_funcs.append(self)

    @classmethod
    def _of_instance(cls, instance: Instance, index: int) -> Func:
        self = cls.__new__(cls)
        self.store = instance.store
        self.type = instance.module.func_type(index)
        self._fn = None
        self._raw = False
        self._sig = None
        self._block = None
        self._instance = instance
        self._index = index
        self._rec = instance._funcrefs
        self._rec_index = RECORD_WORDS * index
        self.record = ctypes.addressof(instance._funcrefs) + RECORD_SIZE * index
        rec = instance._funcrefs              # records never change once linked
        self._code_addr = rec[self._rec_index + REC_CODE]
        self._vmctx_addr = rec[self._rec_index + REC_VMCTX]
        compiled = instance.compiled
        off = compiled.host_to_wasm.get(self.type)
        if off is not None:
            self._entry = instance._mapping.address(off)
            self._keep = instance._mapping
        else:
            self._entry, self._keep = native.TRAMPOLINES.host_to_wasm(self.type)
        if _is_emulated(compiled):      # AArch64 code runs under unicorn (runtime/emulated.py)
            from wasmlower.runtime import emulated
            self._emulated = emulated.call_wasm
        return self

    @property
    def is_host(self) -> bool:
        return self._fn is not None

    @property
    def name(self) -> str | None:
        if self._instance is None:
            return getattr(self._fn, "__name__", None)
        return self._instance.module.func_names.get(self._index)

    # -- calls ----------------------------------------------------------------------

    def __call__(self, *args: Any) -> Any:
        """Call with Python values; returns None, one value, or a tuple."""
        sig = self._sig or self._make_sig()
        if len(args) != sig.nparams:
            raise TypeError(f"{self!r} takes {sig.nparams} arguments, got {len(args)}")
        ft = self.type
        store = self.store
        bits = _convert(sig.ins, ft.params, args, store, True)
        out = _convert(sig.outs, ft.results, self._invoke(sig, bits), store, False)
        if not out:
            return None
        return out[0] if len(out) == 1 else tuple(out)

    def call_raw(self, args: Sequence[int]) -> list[int]:
        """Call with raw bits (unsigned, i32/f32 < 2**32); return the results' raw bits."""
        sig = self._sig or self._make_sig()
        if len(args) != sig.nparams:
            raise TypeError(f"{self!r} takes {sig.nparams} arguments, got {len(args)}")
        for b, m in zip(args, sig.pmasks):
            if not (isinstance(b, int) and 0 <= b <= m):
                raise ValueError(f"raw argument out of range: {b!r} (max {m:#x})")
        for k, t in sig.refs:
            self.store.check_ref_bits(t, args[k])
        return self._invoke(sig, [int(b) for b in args])

    def _make_sig(self) -> _Sig:
        self._sig = _Sig(self.type)
        return self._sig

    def _invoke(self, sig: _Sig, bits: list[int]) -> list[int]:
        # bits: validated raw arguments.
        if self._fn is not None:
            return self._call_host_raw(bits)
        block = self._block
        store = self.store
        if block is None:
            bt = store._bt if store._bt is not None else store.backtrace_buffer()
            block = self._block = native.new_call_block(
                self._entry, self._vmctx_addr, self._code_addr, store.address, bt,
                max(sig.nparams, sig.nresults))
        if bits:
            block[BLOCK_VALUES:BLOCK_VALUES + len(bits)] = bits
        code = native.call_wasm(block) if self._emulated is None else self._emulated(block)
        if code:
            raise_trap(store, code, block._bt)
        values = block[BLOCK_VALUES:BLOCK_VALUES + sig.nresults]
        return [v & m for v, m in zip(values, sig.rmasks)]

    def _call_host_raw(self, bits: list[int]) -> list[int]:
        ft = self.type
        fn = self._fn
        assert fn is not None
        sig = self._sig or self._make_sig()
        if self._raw:
            out = fn(list(bits))
            out = [] if out is None else list(out)
            if len(out) != sig.nresults:
                raise TypeError(f"host function returned {len(out)} raw results, "
                                f"expected {sig.nresults}")
            return [_check_raw(t, b) for t, b in zip(ft.results, out)]
        store = self.store
        result = fn(*_convert(sig.routs, ft.params, bits, store, False))
        if sig.nresults == 0:
            return []
        if sig.nresults == 1:
            values = [result]
        else:
            if not isinstance(result, (tuple, list)) or len(result) != sig.nresults:
                raise TypeError(f"host function must return {sig.nresults} results")
            values = list(result)
        return _convert(sig.rins, ft.results, values, store, True)

    def __repr__(self) -> str:
        what = "host" if self._fn is not None else f"func[{self._index}]"
        name = self.name
        return f"<Func {what}{' ' + name if name else ''} {self.type}>"


class Global:
    """A global over a u64 cell: ``.type`` (ValType), ``.mutable``, ``.value``.

    ``Global(store, GlobalType(...), value)`` makes a standalone (host) global
    with its own cell; an instance's defined globals live in its VMContext.
    """

    def __init__(self, store: Store, type: GlobalType | ValType, value: Any = None, *,
                 mutable: bool = False) -> None:
        gt = type if isinstance(type, GlobalType) else GlobalType(type, mutable)
        self.store = store
        self.global_type = gt
        self._cells: Any = (ctypes.c_uint64 * 1)()
        self._index = 0
        if value is None and gt.type.is_num:
            value = 0
        self.set_raw(store.to_bits(gt.type, value))

    @classmethod
    def _at(cls, store: Store, gt: GlobalType, cells: Any, index: int) -> Global:
        self = cls.__new__(cls)
        self.store = store
        self.global_type = gt
        self._cells = cells
        self._index = index
        return self

    @property
    def type(self) -> ValType:
        return self.global_type.type

    @property
    def mutable(self) -> bool:
        return self.global_type.mutable

    @property
    def address(self) -> int:
        """Address of the value cell (what an importer's VMContext slot points to)."""
        return ctypes.addressof(self._cells) + 8 * self._index

    def get_raw(self) -> int:
        return int(self._cells[self._index]) & _mask(self.type)

    def set_raw(self, bits: int) -> None:
        self._cells[self._index] = _check_raw(self.type, bits)

    @property
    def value(self) -> Any:
        return self.store.from_bits(self.type, self.get_raw())

    @value.setter
    def value(self, v: Any) -> None:
        if not self.mutable:
            raise AttributeError("cannot set an immutable global")
        self.set_raw(self.store.to_bits(self.type, v))

    def __repr__(self) -> str:
        mut = "mut " if self.mutable else ""
        return f"<Global {mut}{self.type.value} = {self.value!r}>"


Extern = Func | Table | Memory | Global
ImportResolver = Callable[[str, str], Any]


# --- code mappings per compiled module -------------------------------------------------

_CODE_CACHE: dict[int, tuple[weakref.ref, weakref.ref]] = {}


def _is_emulated(compiled: Any) -> bool:
    return str(getattr(compiled, "target", "x86_64")).split("-", 1)[0] in ("aarch64", "arm64")


def code_mapping(compiled: Any) -> native.CodeMapping:
    """The executable mapping of ``compiled``'s text, shared by all its live instances
    (and by all modules of a component).

    The cache holds both sides weakly (the mapping refers to ``compiled``), so
    the code is unmapped once no instance or function uses it.
    """
    # The core modules of a component share its text: one mapping for all of them,
    # whose symbol table names every module's functions.
    compiled = getattr(compiled, "shared", None) or compiled
    if _is_emulated(compiled):          # AArch64 code runs under unicorn (runtime/emulated.py)
        from wasmlower.runtime import emulated
        return emulated.code_mapping(compiled)
    key = id(compiled)
    entry = _CODE_CACHE.get(key)
    if entry is not None and entry[0]() is compiled:
        mapping = entry[1]()
        if mapping is not None:
            return mapping
    mapping = native.CodeMapping(compiled.text, compiled.relocs, compiled,
                                 getattr(compiled, "file_text", None))
    native.TRAMPOLINES.add(mapping, compiled.host_to_wasm, compiled.wasm_to_host,
                           compiled.trap_routine)
    try:
        ref = weakref.ref(compiled, lambda _r, k=key: _CODE_CACHE.pop(k, None))
    except TypeError:           # not weak-referenceable: no sharing
        return mapping
    _CODE_CACHE[key] = (ref, weakref.ref(mapping))
    return mapping


# --- linking helpers -------------------------------------------------------------------


def _lim(lo: int, hi: int | None) -> str:
    return f"{lo}..{'' if hi is None else hi}"


def _limits_match(actual_min: int, actual_max: int | None, expected: Limits) -> bool:
    if actual_min < expected.min:
        return False
    if expected.max is None:
        return True
    return actual_max is not None and actual_max <= expected.max


def _describe(ext: Any) -> str:
    if isinstance(ext, Func):
        return f"func {ext.type}"
    if isinstance(ext, Table):
        return f"table {ext.elem.value} {_lim(ext.size, ext.max)}"
    if isinstance(ext, Memory):
        return f"memory {_lim(ext.size, ext.max)}"
    if isinstance(ext, Global):
        return f"global {'mut ' if ext.mutable else ''}{ext.type.value}"
    return type(ext).__name__


def _describe_desc(module: Any, imp: Any) -> str:
    d = imp.desc
    if imp.kind == "func":
        return f"func {module.types[d]}" if 0 <= d < len(module.types) else "func"
    if imp.kind == "table":
        return f"table {d.elem.value} {_lim(d.limits.min, d.limits.max)}"
    if imp.kind == "memory":
        return f"memory {_lim(d.limits.min, d.limits.max)}"
    return f"global {'mut ' if d.mutable else ''}{d.type.value}"


_MASKS = {"i32.": MASK32, "i64.": MASK64}
_BINOPS = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b}


class Instance:
    """An instantiated module.  ``exports`` maps export names to Func/Table/Memory/Global.

    ``imports`` is a mapping ``(module, name) -> extern`` or a callable
    ``(module, name) -> extern | None``; a plain Python callable is accepted
    for a function import (wrapped as a host function of the expected type)
    and a plain number for an immutable numeric global.  Raises ``LinkError``
    for unknown or mismatched imports and ``Trap`` when a segment is out of
    bounds or the start function traps.
    """

    def __init__(self, compiled: Any, imports: Mapping[tuple[str, str], Any] | ImportResolver
                 | None = None, store: Store | None = None) -> None:
        module = compiled.module
        self.compiled = compiled
        self.module = module
        externs = self._lookup_imports(module, imports)
        if store is None:
            store = next((e.store for e in externs if getattr(e, "store", None) is not None),
                         None) or Store()
        self.store = store
        externs = self._check_imports(module, externs, store)

        self._mapping = code_mapping(compiled)
        imp_funcs = [e for e, i in zip(externs, module.imports) if i.kind == "func"]
        imp_tables = [e for e, i in zip(externs, module.imports) if i.kind == "table"]
        imp_mems = [e for e, i in zip(externs, module.imports) if i.kind == "memory"]
        imp_globals = [e for e, i in zip(externs, module.imports) if i.kind == "global"]

        nglobals = len(imp_globals) + len(module.globals)
        self._vmctx = (ctypes.c_uint64 * (VM_GLOBALS + nglobals))()
        self.vmctx: int = ctypes.addressof(self._vmctx)
        vm = self._vmctx
        vm[VM_STORE] = store.address

        # Func records: copies of the imported ones, then this module's functions.
        nfuncs = module.num_funcs
        self._funcrefs = (ctypes.c_uint64 * (RECORD_WORDS * max(nfuncs, 1)))()
        fr = self._funcrefs
        self._funcrefs_address = ctypes.addressof(fr)
        self._funcs: list[Func | None] = [*imp_funcs, *[None] * len(module.funcs)]
        for i, f in enumerate(imp_funcs):
            src = f._rec
            for w in range(RECORD_WORDS):
                fr[RECORD_WORDS * i + w] = src[f._rec_index + w]
        by_index = {cf.index: cf for cf in compiled.functions}
        for k, tidx in enumerate(module.funcs):
            idx = len(imp_funcs) + k
            cf = by_index.get(idx)
            if cf is None:
                raise ArtifactError(f"the compiled module has no code for function {idx}")
            base = RECORD_WORDS * idx
            fr[base + REC_CODE] = self._mapping.address(cf.offset)
            fr[base + REC_VMCTX] = self.vmctx
            fr[base + REC_TYPE_ID] = signature_id(module.types[tidx])
            fr[base + REC_INDEX] = idx
        vm[VM_FUNCREFS] = self._funcrefs_address

        self._type_ids = (ctypes.c_uint64 * max(len(module.types), 1))(
            *[signature_id(t) for t in module.types])
        vm[VM_TYPE_IDS] = ctypes.addressof(self._type_ids)

        # Tables and memory.
        self.tables: list[Table] = list(imp_tables)
        for tt in module.tables:
            if tt.limits.min > MAX_ELEMENTS:
                raise LinkError(f"table of {tt.limits.min} elements exceeds the runtime limit")
            self.tables.append(Table(store, tt))
        self._table_descs = (ctypes.c_uint64 * max(2 * len(self.tables), 1))()
        for i, t in enumerate(self.tables):
            t.attach(self._table_descs, 2 * i)
        vm[VM_TABLES] = ctypes.addressof(self._table_descs)

        self.memories: list[Memory] = list(imp_mems)
        for mt in module.memories:
            try:
                self.memories.append(Memory(store, mt))
            except MemoryError as e:
                raise LinkError(f"cannot allocate memory: {e}") from None
        if len(self.memories) > 1:
            raise LinkError("multiple memories are not supported")
        self.memory: Memory | None = self.memories[0] if self.memories else None
        if self.memory is not None:
            vm[VM_MEM_BASE] = self.memory.base
            self.memory.attach(vm, VM_MEM_SIZE)

        vm[VM_LIBCALLS] = ctypes.addressof(libcalls.libcall_table(compiled.libcall_names))
        vm[VM_TRAP_FN] = self._mapping.address(compiled.trap_routine)

        # Globals: imported slots point at the exporter's cell; defined ones hold values.
        self.globals: list[Global] = []
        for i, g in enumerate(imp_globals):
            vm[VM_GLOBALS + i] = g.address
            self.globals.append(g)
        for k, gdef in enumerate(module.globals):
            slot = VM_GLOBALS + len(imp_globals) + k
            g = Global._at(store, gdef.type, vm, slot)
            g.set_raw(self._eval_const(gdef.init, gdef.type.type))
            self.globals.append(g)

        # Linked: from here on the store keeps the instance (its records may be shared).
        for idx in range(nfuncs):
            store.register_record(self._funcrefs_address + RECORD_SIZE * idx, (self, idx))
        libcalls.register_vmctx(self.vmctx, self)
        store.instances.append(self)

        self.exports: dict[str, Any] = {}
        for ex in module.exports:
            self.exports[ex.name] = self._extern(ex.kind, ex.index)

        # Segments are evaluated now (2.0: element instances hold references).
        self._elems: list[list[int]] = [
            [self._eval_const(e, seg.type) for e in seg.init] for seg in module.elems]
        self._datas: list[bytes] = [seg.data for seg in module.datas]

        for i, seg in enumerate(module.elems):
            if seg.mode == "active":
                if not 0 <= seg.table < len(self.tables):
                    raise ArtifactError(f"element segment {i} names unknown table {seg.table}")
                offset = self._eval_const(seg.offset or [], ValType.I32)
                refs = self._elems[i]
                self.tables[seg.table].init_raw(offset, refs, 0, len(refs))
            if seg.mode in ("active", "declarative"):
                self._elems[i] = []
        for i, seg in enumerate(module.datas):
            if seg.mode == "active":
                if self.memory is None or seg.memory != 0:
                    raise ArtifactError(f"data segment {i} names unknown memory {seg.memory}")
                offset = self._eval_const(seg.offset or [], ValType.I32)
                self.memory.init(offset, seg.data, 0, len(seg.data))
                self._datas[i] = b""
        if module.start is not None:
            self.func(module.start)()

    # -- imports ------------------------------------------------------------------------

    @staticmethod
    def _lookup_imports(module: Any, imports: Any) -> list[Any]:
        externs = []
        for imp in module.imports:
            if imports is None:
                ext = None
            elif isinstance(imports, Mapping):
                ext = imports.get((imp.module, imp.name))
            else:
                ext = imports(imp.module, imp.name)
            if ext is None:
                raise LinkError(f'unknown import "{imp.module}" "{imp.name}"')
            externs.append(ext)
        return externs

    @staticmethod
    def _check_imports(module: Any, externs: list[Any], store: Store) -> list[Any]:
        out = []
        for imp, ext in zip(module.imports, externs):
            d = imp.desc
            ok = False
            if imp.kind == "func":
                ft = module.types[d]
                if not isinstance(ext, (Func, Table, Memory, Global)) and callable(ext):
                    ext = Func(store, ft, ext)
                ok = isinstance(ext, Func) and ext.type == ft
            elif imp.kind == "table":
                ok = isinstance(ext, Table) and isinstance(d, TableType) and ext.elem == d.elem \
                    and _limits_match(ext.size, ext.max, d.limits)
            elif imp.kind == "memory":
                ok = isinstance(ext, Memory) and isinstance(d, MemoryType) \
                    and _limits_match(ext.size, ext.max, d.limits)
            elif imp.kind == "global":
                if isinstance(ext, (int, float)) and isinstance(d, GlobalType) \
                        and d.type.is_num and not d.mutable:
                    ext = Global(store, d, ext)
                ok = isinstance(ext, Global) and ext.global_type == d
            if not ok:
                raise LinkError(f'incompatible import type for "{imp.module}" "{imp.name}": '
                                f"expected {_describe_desc(module, imp)}, got {_describe(ext)}")
            owner = getattr(ext, "store", None)
            if owner is not None and owner is not store:
                raise LinkError(f'import "{imp.module}" "{imp.name}" belongs to another store')
            out.append(ext)
        return out

    # -- index spaces -------------------------------------------------------------------

    def func(self, index: int) -> Func:
        """The ``Func`` of function ``index`` (imports first)."""
        if not 0 <= index < len(self._funcs):
            raise IndexError(f"no function {index}")
        f = self._funcs[index]
        if f is None:
            f = self._funcs[index] = Func._of_instance(self, index)
        return f

    def _extern(self, kind: str, index: int) -> Any:
        if kind == "func":
            return self.func(index)
        if kind == "table":
            return self.tables[index]
        if kind == "memory":
            return self.memories[index]
        if kind == "global":
            return self.globals[index]
        raise ArtifactError(f"unknown export kind {kind!r}")

    # -- constant expressions ---------------------------------------------------------------

    def _eval_const(self, expr: list[Any], vt: ValType) -> int:
        stack: list[int] = []
        for ins in expr:
            op, imm = ins.op, ins.imm
            if op == "i32.const":
                stack.append(imm & MASK32)
            elif op == "i64.const":
                stack.append(imm & MASK64)
            elif op in ("f32.const", "f64.const"):
                stack.append(imm)
            elif op == "ref.null":
                stack.append(0)
            elif op == "ref.func":
                if not 0 <= imm < len(self._funcs):
                    raise ArtifactError(f"ref.func of unknown function {imm}")
                stack.append(self._funcrefs_address + RECORD_SIZE * imm)
            elif op == "global.get":
                if not 0 <= imm < len(self.globals):
                    raise ArtifactError(f"global.get of unknown or later global {imm}")
                stack.append(self.globals[imm].get_raw())
            elif op[:4] in _MASKS and op[4:] in _BINOPS and len(stack) >= 2:
                b, a = stack.pop(), stack.pop()
                stack.append(_BINOPS[op[4:]](a, b) & _MASKS[op[:4]])
            else:
                raise ArtifactError(f"unsupported constant instruction {op}")
        if len(stack) != 1:
            raise ArtifactError("malformed constant expression")
        return stack[0] & _mask(vt)

    # -- segments (used by the libcalls) ------------------------------------------------------

    def data_segment(self, index: int) -> bytes:
        """Data segment ``index``'s bytes (empty once dropped)."""
        if not 0 <= index < len(self._datas):
            raise Trap("heap_oob", TRAP_MESSAGES["heap_oob"])
        return self._datas[index]

    def drop_data(self, index: int) -> None:
        if 0 <= index < len(self._datas):
            self._datas[index] = b""

    def elem_segment(self, index: int) -> list[int]:
        """Element segment ``index``'s reference bits (empty once dropped)."""
        if not 0 <= index < len(self._elems):
            raise Trap("table_oob", TRAP_MESSAGES["table_oob"])
        return self._elems[index]

    def drop_elem(self, index: int) -> None:
        if 0 <= index < len(self._elems):
            self._elems[index] = []

    def __repr__(self) -> str:
        return f"<Instance exports={list(self.exports)}>"

"""Binary decoder: wasm bytes -> ``Module``.

Mechanism.  One ``bytes`` object and an integer cursor; every reader takes a
position and returns ``(value, new_position)``.  The instruction loop of
``_Decoder._expr`` is the hot path: a table lookup gives each opcode byte its
mnemonic and immediate kind, and one-byte LEB128 immediates are read inline.

Error behaviour follows the spec's reference interpreter, so that the spec
test suite's expected messages come out:

- Reads are bounded by the end of the whole binary, not by the end of the
  current section or function body; a section or body whose content does not
  end exactly at its declared size fails afterwards with "section size
  mismatch".  Reading past the end of the binary is "unexpected end of
  section or function".
- A length (section size, vector count, name or data size) larger than the
  bytes that remain after the position where the length starts is "length out
  of bounds".
- LEB128: a byte beyond ceil(N/7) is "integer representation too long"; unused
  bits of the last byte that are not a zero/sign extension are "integer too
  large".

Encodings follow the WebAssembly 3.0 binary format where it is a superset of
2.0 and the 3.0 test suite relies on it: limits and memarg offsets are read as
u64 (the validator bounds them), the memarg flags may carry a memory index,
and the immediates of ``memory.size``/``memory.grow``/``memory.fill``/
``memory.copy``/``memory.init`` are u32 memory indices rather than 2.0's
"zero byte".  A non-zero memory index is left for the validator, which
reports it as an unknown memory (a module with two memories is already
rejected, see ``validate.py``).

Encodings of unsupported proposals (SIMD, tail calls, exceptions, typed
function references, GC, memory64, threads) raise
``MalformedError("unsupported feature: <name> (...)")``.  Where the encoding
is simple to step over (an opcode with index immediates, a reference or
vector type, 64-bit limits, a tag), decoding goes on and the first such error
is raised only once the rest of the binary has been found well-formed: a
malformed binary is reported as malformed even if it also happens to contain
the bytes of a later proposal.  Prefixed opcode spaces (0xFB, 0xFD, 0xFE),
``try_table`` and GC type definitions stop decoding at once.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

from wasmlower.errors import MalformedError, ValidationError, WasmError
from wasmlower.wasm.module import (
    DataSegment,
    ElemSegment,
    Export,
    FunctionBody,
    FuncType,
    Global,
    GlobalType,
    Import,
    Instr,
    Limits,
    MemoryType,
    Module,
    TableType,
    ValType,
)
from wasmlower.wasm.opcodes import (
    FC_KINDS,
    FC_NAMES,
    K_IDX,
    K_NONE,
    K_PREFIX_FC,
    K_REF_NULL,
    K_SELECT_T,
    K_UNSUPPORTED,
    KINDS,
    NAMES,
    REFTYPE_BYTES,
    UNSUPPORTED,
    UNSUPPORTED_TYPE_BYTES,
    VALTYPE_BYTES,
)

__all__ = ["MAX_LOCALS", "decode_module"]

MAGIC = b"\x00asm"
VERSION = b"\x01\x00\x00\x00"

#: Implementation limit on the declared locals of one function (Wasmtime uses
#: the same number).  The spec allows up to 2^32-1; expanding that many into a
#: list is not possible, so more than this is rejected as a ValidationError.
MAX_LOCALS = 50_000

# Rank of each known section id in the required order (custom sections, id 0,
# may appear anywhere).  13 is 3.0's tag section.
_ORDER = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13}
_EXTERN_KINDS = ("func", "table", "memory", "global")
# Abstract heap types of the GC and exception proposals (single-byte s33).
_UNSUPPORTED_HEAP = {0x6E: "gc", 0x6D: "gc", 0x6C: "gc", 0x6B: "gc", 0x6A: "gc",
                     0x71: "gc", 0x72: "gc", 0x73: "gc", 0x69: "exceptions",
                     0x74: "exceptions"}
_UNEXPECTED_END = "unexpected end of section or function"
# Unsupported opcodes that can be stepped over: opcode -> number of u32 immediates.
_SKIPPABLE = {0x08: 1, 0x0A: 0, 0x12: 1, 0x13: 2, 0x14: 1, 0x15: 1, 0xD3: 0, 0xD4: 0,
              0xD5: 1, 0xD6: 1}

_new = tuple.__new__


def decode_module(data: bytes | bytearray | memoryview) -> Module:
    """Decode a wasm binary into a ``Module``.

    Raises ``MalformedError`` (with the byte offset) if the bytes are not a
    well-formed module of the supported feature set; a message starting with
    ``unsupported feature:`` marks an encoding of a proposal that is not
    supported.  Checks that the binary format itself imposes (section order,
    function/code and data-count consistency, "too many locals", UTF-8 names)
    are made here; everything else is left to ``validate``.  The one
    ``ValidationError`` raised here is the implementation limit of
    ``MAX_LOCALS`` declared locals per function.
    """
    # The decoder allocates one small tuple per instruction and no cycles; the
    # cyclic GC would rescan the growing heap over and over (half the time
    # for a 1 MB module), so it is paused while decoding.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _Decoder(bytes(data)).module()
    finally:
        if gc_was_enabled:
            gc.enable()


def _eof(n: int) -> MalformedError:
    return MalformedError(_UNEXPECTED_END, n)


def _uleb(data: bytes, pos: int, bits: int) -> tuple[int, int]:
    """Read an unsigned LEB128 of at most ``bits`` bits."""
    n = len(data)
    result = shift = 0
    left = bits
    while True:
        if left <= 0:
            raise MalformedError("integer representation too long", pos)
        if pos >= n:
            raise _eof(n)
        b = data[pos]
        if left < 7 and (b & 0x7F) >= (1 << left):
            raise MalformedError("integer too large", pos)
        result |= (b & 0x7F) << shift
        pos += 1
        if b < 0x80:
            return result, pos
        shift += 7
        left -= 7


def read_uleb(data: bytes, pos: int, bits: int = 32) -> tuple[int, int]:
    """Read an unsigned LEB128 at ``pos``; returns ``(value, next position)``."""
    return _uleb(data, pos, bits)


def _sleb(data: bytes, pos: int, bits: int) -> tuple[int, int]:
    """Read a signed LEB128 of at most ``bits`` bits."""
    n = len(data)
    result = shift = 0
    left = bits
    while True:
        if left <= 0:
            raise MalformedError("integer representation too long", pos)
        if pos >= n:
            raise _eof(n)
        b = data[pos]
        if left < 7:
            # The unused high bits must all copy the sign bit.
            mask = (-1 << (left - 1)) & 0x7F
            if (b & mask) not in (0, mask):
                raise MalformedError("integer too large", pos)
        result |= (b & 0x7F) << shift
        pos += 1
        shift += 7
        if b < 0x80:
            if b & 0x40:
                result -= 1 << shift
            return result, pos
        left -= 7


def _unsupported(feature: str, what: str, offset: int) -> MalformedError:
    return MalformedError(f"unsupported feature: {feature} ({what})", offset)


class _Decoder:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.n = len(data)
        self.m = Module()
        # Offset of the first memory.init/data.drop in a function body: they
        # need a data count section.
        self.data_count_use: int | None = None
        self.in_body = False
        # The first error that waits until the binary is known to be well-formed:
        # an unsupported feature, or an implementation limit.
        self.deferred: WasmError | None = None

    def _defer(self, feature: str, what: str, pos: int) -> None:
        if self.deferred is None:
            self.deferred = _unsupported(feature, what, pos)

    # -- primitive readers ---------------------------------------------------

    def _u32(self, pos: int) -> tuple[int, int]:
        data = self.data
        if pos < self.n and data[pos] < 0x80:
            return data[pos], pos + 1
        return _uleb(data, pos, 32)

    def _byte(self, pos: int) -> int:
        if pos >= self.n:
            raise _eof(self.n)
        return self.data[pos]

    def _len32(self, pos: int) -> tuple[int, int]:
        # As in the reference interpreter, the bound is the bytes remaining
        # from where the length itself starts.
        value, p = self._u32(pos)
        if value > self.n - pos:
            raise MalformedError("length out of bounds", pos)
        return value, p

    def _bytes(self, pos: int) -> tuple[bytes, int]:
        size, p = self._len32(pos)
        end = p + size
        if end > self.n:
            raise _eof(self.n)
        return self.data[p:end], end

    def _name(self, pos: int) -> tuple[str, int]:
        raw, p = self._bytes(pos)
        try:
            return raw.decode("utf-8"), p
        except UnicodeDecodeError:
            raise MalformedError("malformed UTF-8 encoding", pos) from None

    def _other_type(self, pos: int, what: str, ref_only: bool) -> tuple[ValType, int]:
        """A type code other than the six supported ones: a deferred
        unsupported-feature error (and a placeholder type), or malformed."""
        b = self.data[pos]
        if b == 0x63 or b == 0x64:  # (ref null? heaptype)
            self._defer("function-references", f"type 0x{b:02x}", pos)
            return self._heaptype(pos + 1)
        feature = UNSUPPORTED_TYPE_BYTES.get(b)
        if feature is not None and not (ref_only and b == 0x7B):
            self._defer(feature, f"type 0x{b:02x}", pos)
            return ValType.FUNCREF, pos + 1
        if b & 0x80:
            raise MalformedError("integer representation too long", pos + 1)
        raise MalformedError(f"malformed {what} type", pos)

    def _valtype(self, pos: int) -> tuple[ValType, int]:
        t = VALTYPE_BYTES.get(self._byte(pos))
        if t is None:
            return self._other_type(pos, "value", False)
        return t, pos + 1

    def _reftype(self, pos: int) -> tuple[ValType, int]:
        t = REFTYPE_BYTES.get(self._byte(pos))
        if t is None:
            return self._other_type(pos, "reference", True)
        return t, pos + 1

    def _heaptype(self, pos: int) -> tuple[ValType, int]:
        b = self._byte(pos)
        t = REFTYPE_BYTES.get(b)
        if t is not None:
            return t, pos + 1
        if b in _UNSUPPORTED_HEAP:
            self._defer(_UNSUPPORTED_HEAP[b], f"heap type 0x{b:02x}", pos)
            return ValType.FUNCREF, pos + 1
        value, p = _sleb(self.data, pos, 33)
        if value >= 0:
            self._defer("function-references", "typed reference", pos)
            return ValType.FUNCREF, p
        raise MalformedError("malformed heap type", pos)

    def _blocktype(self, pos: int) -> tuple[ValType | int | None, int]:
        b = self._byte(pos)
        if b == 0x40:
            return None, pos + 1
        t = VALTYPE_BYTES.get(b)
        if t is not None:
            return t, pos + 1
        if 0x40 <= b < 0x80:  # a negative one-byte s33: some other type code
            return self._other_type(pos, "block", False)
        value, p = _sleb(self.data, pos, 33)
        if value < 0:
            raise MalformedError("malformed block type", pos)
        return value, p

    def _limits(self, pos: int) -> tuple[Limits, int]:
        flags = self._byte(pos)
        if flags > 7:
            raise MalformedError("malformed limits flags", pos)
        if flags & 2:  # shared memory (threads proposal); 3.0 calls it malformed
            self._defer("threads", "shared memory", pos)
        if flags & 4:
            self._defer("memory64", "64-bit limits", pos)
        lo, p = _uleb(self.data, pos + 1, 64)
        hi = None
        if flags & 1:
            hi, p = _uleb(self.data, p, 64)
        return Limits(lo, hi), p

    def _tabletype(self, pos: int) -> tuple[TableType, int]:
        t, p = self._reftype(pos)
        limits, p = self._limits(p)
        return TableType(t, limits), p

    def _globaltype(self, pos: int) -> tuple[GlobalType, int]:
        t, p = self._valtype(pos)
        mut = self._byte(p)
        if mut > 1:
            raise MalformedError("malformed mutability", p)
        return GlobalType(t, mut == 1), p + 1

    def _const(self, pos: int) -> tuple[list[Instr], int]:
        """A constant expression; returned without its final ``end``."""
        instrs, p = self._expr(pos)
        instrs.pop()
        return instrs, p

    # -- instructions -----------------------------------------------------------

    def _expr(self, pos: int) -> tuple[list[Instr], int]:
        """Decode instructions up to and including the ``end`` that closes the
        expression.  ``frames`` holds one flag per open block: True while it
        is an ``if`` that may still see its ``else``.

        Hot loop: immediate kinds are compared as literals (see opcodes.K_*),
        and reading past the end of the binary surfaces as IndexError.
        """
        data = self.data
        n = self.n
        names = NAMES
        kinds = KINDS
        new = _new
        instr = Instr
        out: list[Instr] = []
        append = out.append
        frames: list[bool] = []
        try:
            while True:
                start = pos
                b = data[pos]
                pos += 1
                k = kinds[b]
                if k == 2:  # K_IDX
                    v = data[pos]
                    if v < 0x80:
                        pos += 1
                    else:
                        v, pos = _uleb(data, pos, 32)
                    append(new(instr, (names[b], v, start)))
                elif k == 1:  # K_NONE
                    append(new(instr, (names[b], None, start)))
                elif k == 6:  # K_I32
                    v = data[pos]
                    if v < 0x40:
                        pos += 1
                    elif v < 0x80:
                        v -= 0x80
                        pos += 1
                    else:
                        v, pos = _sleb(data, pos, 32)
                    append(new(instr, ("i32.const", v, start)))
                elif k == 10:  # K_MEMARG
                    flags = data[pos]
                    if flags < 0x80:
                        pos += 1
                    else:
                        flags, pos = _uleb(data, pos, 32)
                        if flags >= 0x80:
                            raise MalformedError("malformed memop flags", start + 1)
                    memidx = 0
                    if flags & 0x40:
                        memidx, pos = self._u32(pos)
                    offset = data[pos]
                    if offset < 0x80:
                        pos += 1
                    else:
                        offset, pos = _uleb(data, pos, 64)
                    if memidx == 0:
                        imm = (flags & 0x3F, offset)
                    else:
                        imm = (flags & 0x3F, offset, memidx)
                    append(new(instr, (names[b], imm, start)))
                elif k == 4:  # K_END
                    append(new(instr, ("end", None, start)))
                    if not frames:
                        return out, pos
                    frames.pop()
                elif k == 3:  # K_BLOCK
                    bt, pos = self._blocktype(pos)
                    frames.append(b == 0x04)
                    append(new(instr, (names[b], bt, start)))
                elif k == 5:  # K_ELSE
                    if not frames or not frames[-1]:
                        # The binary grammar allows `else` only once, inside an `if`.
                        raise MalformedError("END opcode expected", start)
                    frames[-1] = False
                    append(new(instr, ("else", None, start)))
                elif k == 7:  # K_I64
                    v = data[pos]
                    if v < 0x40:
                        pos += 1
                    elif v < 0x80:
                        v -= 0x80
                        pos += 1
                    else:
                        v, pos = _sleb(data, pos, 64)
                    append(new(instr, ("i64.const", v, start)))
                elif k == 8:  # K_F32
                    if pos + 4 > n:
                        raise _eof(n)
                    v = int.from_bytes(data[pos:pos + 4], "little")
                    pos += 4
                    append(new(instr, ("f32.const", v, start)))
                elif k == 9:  # K_F64
                    if pos + 8 > n:
                        raise _eof(n)
                    v = int.from_bytes(data[pos:pos + 8], "little")
                    pos += 8
                    append(new(instr, ("f64.const", v, start)))
                elif k == 11:  # K_BR_TABLE
                    count, pos = self._len32(pos)
                    targets = []
                    for _ in range(count):
                        v, pos = self._u32(pos)
                        targets.append(v)
                    v, pos = self._u32(pos)
                    append(new(instr, ("br_table", (tuple(targets), v), start)))
                elif k == 12:  # K_IDX2
                    x, pos = self._u32(pos)
                    y, pos = self._u32(pos)
                    append(new(instr, (names[b], (x, y), start)))
                else:
                    pos = self._rare(b, k, start, pos, append)
        except IndexError:
            raise _eof(n) from None

    def _rare(self, b: int, k: int, start: int, pos: int, append: Callable[[Instr], None]) -> int:
        """The less frequent opcodes of ``_expr``; returns the new position."""
        if k == K_PREFIX_FC:
            sub, pos = _uleb(self.data, pos, 32)
            sk = FC_KINDS.get(sub)
            if sk is None:
                raise MalformedError(f"illegal opcode fc {sub:02x}", start)
            if sk == K_NONE:
                imm = None
            elif sk == K_IDX:
                imm, pos = self._u32(pos)
            else:
                x, pos = self._u32(pos)
                y, pos = self._u32(pos)
                imm = (x, y)
            if (sub == 8 or sub == 9) and self.in_body and self.data_count_use is None:
                self.data_count_use = start
            append(Instr(FC_NAMES[sub], imm, start))
        elif k == K_SELECT_T:
            count, pos = self._len32(pos)
            types = []
            for _ in range(count):
                t, pos = self._valtype(pos)
                types.append(t)
            append(Instr("select", tuple(types), start))
        elif k == K_REF_NULL:
            t, pos = self._heaptype(pos)
            append(Instr("ref.null", t, start))
        elif k == K_UNSUPPORTED:
            nimm = _SKIPPABLE.get(b)
            if nimm is None:
                raise _unsupported(UNSUPPORTED[b], f"opcode 0x{b:02x}", start)
            self._defer(UNSUPPORTED[b], f"opcode 0x{b:02x}", start)
            for _ in range(nimm):
                _, pos = self._u32(pos)
        else:
            raise MalformedError(f"illegal opcode {b:02x}", start)
        return pos

    # -- sections -------------------------------------------------------------------

    def module(self) -> Module:
        data, n = self.data, self.n
        if n < 4:
            raise MalformedError("unexpected end", n)
        if data[:4] != MAGIC:
            raise MalformedError("magic header not detected", 0)
        if n < 8:
            raise MalformedError("unexpected end", n)
        if data[4:8] != VERSION:
            raise MalformedError("unknown binary version", 4)
        handlers = {
            1: self._type_section, 2: self._import_section, 3: self._function_section,
            4: self._table_section, 5: self._memory_section, 6: self._global_section,
            7: self._export_section, 8: self._start_section, 9: self._elem_section,
            10: self._code_section, 11: self._data_section, 12: self._datacount_section,
            13: self._tag_section,
        }
        m = self.m
        pos = 8
        last = 0
        while pos < n:
            sid = data[pos]
            if sid > 13:
                raise MalformedError("malformed section id", pos)
            if sid:
                rank = _ORDER[sid]
                if rank <= last:
                    # Duplicate or out of order.
                    raise MalformedError("unexpected content after last section", pos)
                last = rank
                if sid == 13:
                    self._defer("exceptions", "tag section", pos)
            size, p = self._len32(pos + 1)
            if sid == 0:
                p = self._custom_section(p, size)
            else:
                start = p
                p = handlers[sid](p)
                if p != start + size:
                    raise MalformedError("section size mismatch", start)
            pos = p
        if len(m.funcs) != len(m.codes):
            raise MalformedError("function and code section have inconsistent lengths", n)
        if m.data_count is not None and m.data_count != len(m.datas):
            raise MalformedError("data count and data section have inconsistent lengths", n)
        if m.data_count is None and self.data_count_use is not None:
            raise MalformedError("data count section required", self.data_count_use)
        if self.deferred is not None:
            raise self.deferred
        return m

    def _vec(self, pos: int, item: Callable[[int], tuple[Any, int]],
             key: str | None = None) -> tuple[list, int]:
        """A vector of ``item``s; with ``key``, the offset of each item is
        recorded in ``Module.offsets[key]``."""
        count, pos = self._len32(pos)
        out = []
        starts: list[int] = []
        for _ in range(count):
            starts.append(pos)
            x, pos = item(pos)
            out.append(x)
        if key is not None:
            self.m.offsets[key] = starts
        return out, pos

    def _custom_section(self, pos: int, size: int) -> int:
        start = pos
        name, p = self._name(pos)
        end = start + size
        if end < p or end > self.n:
            raise _eof(self.n)
        content = self.data[p:end]
        self.m.customs.append((name, content))
        if name == "name":
            names = _parse_func_names(content)
            if names is not None:
                self.m.func_names = names
        return end

    def _type_section(self, pos: int) -> int:
        def functype(p: int) -> tuple[FuncType, int]:
            b = self._byte(p)
            if b != 0x60:
                if b in (0x5E, 0x5F, 0x50, 0x4F, 0x4E):
                    raise _unsupported("gc", f"type form 0x{b:02x}", p)
                if b & 0x80:
                    raise MalformedError("integer representation too long", p + 1)
                raise MalformedError("malformed function type", p)
            params, p = self._vec(p + 1, self._valtype)
            results, p = self._vec(p, self._valtype)
            return FuncType(tuple(params), tuple(results)), p

        self.m.types, pos = self._vec(pos, functype, "types")
        return pos

    def _import_section(self, pos: int) -> int:
        def entry(p: int) -> tuple[Import, int]:
            module, p = self._name(p)
            name, p = self._name(p)
            kind = self._byte(p)
            desc: int | TableType | MemoryType | GlobalType
            if kind == 0:
                desc, p = self._u32(p + 1)
            elif kind == 1:
                desc, p = self._tabletype(p + 1)
            elif kind == 2:
                limits, p = self._limits(p + 1)
                desc = MemoryType(limits)
            elif kind == 3:
                desc, p = self._globaltype(p + 1)
            elif kind == 4:
                self._defer("exceptions", "tag import", p)
                desc, p = self._tagtype(p + 1)
                kind = 0  # placeholder: the module is never returned
            else:
                raise MalformedError("malformed import kind", p)
            return Import(module, name, _EXTERN_KINDS[kind], desc), p

        self.m.imports, pos = self._vec(pos, entry, "imports")
        return pos

    def _function_section(self, pos: int) -> int:
        self.m.funcs, pos = self._vec(pos, self._u32, "funcs")
        return pos

    def _table_section(self, pos: int) -> int:
        def entry(p: int) -> tuple[TableType, int]:
            if self._byte(p) == 0x40:
                self._defer("function-references", "table with initializer", p)
                if self._byte(p + 1) != 0:
                    raise MalformedError("zero byte expected", p + 1)
                tt, p = self._tabletype(p + 2)
                _, p = self._const(p)
                return tt, p
            return self._tabletype(p)

        self.m.tables, pos = self._vec(pos, entry, "tables")
        return pos

    def _memory_section(self, pos: int) -> int:
        def entry(p: int) -> tuple[MemoryType, int]:
            limits, p = self._limits(p)
            return MemoryType(limits), p

        self.m.memories, pos = self._vec(pos, entry, "memories")
        return pos

    def _global_section(self, pos: int) -> int:
        def entry(p: int) -> tuple[Global, int]:
            gt, p = self._globaltype(p)
            init, p = self._const(p)
            return Global(gt, init), p

        self.m.globals, pos = self._vec(pos, entry, "globals")
        return pos

    def _export_section(self, pos: int) -> int:
        def entry(p: int) -> tuple[Export, int]:
            name, p = self._name(p)
            kind = self._byte(p)
            if kind > 3:
                if kind != 4:
                    raise MalformedError("malformed export kind", p)
                self._defer("exceptions", "tag export", p)
                kind = 0  # placeholder: the module is never returned
            index, p = self._u32(p + 1)
            return Export(name, _EXTERN_KINDS[kind], index), p

        self.m.exports, pos = self._vec(pos, entry, "exports")
        return pos

    def _tagtype(self, pos: int) -> tuple[int, int]:
        if self._byte(pos) != 0:
            raise MalformedError("zero byte expected", pos)
        return self._u32(pos + 1)

    def _tag_section(self, pos: int) -> int:
        _, pos = self._vec(pos, self._tagtype)
        return pos

    def _start_section(self, pos: int) -> int:
        self.m.offsets["start"] = [pos]
        self.m.start, pos = self._u32(pos)
        return pos

    def _elem_section(self, pos: int) -> int:
        def func_index(p: int) -> tuple[list[Instr], int]:
            x, q = self._u32(p)
            return [Instr("ref.func", x, p)], q

        def elem_kind(p: int) -> int:
            if self._byte(p) != 0x00:
                raise MalformedError("malformed element kind", p)
            return p + 1

        def entry(p: int) -> tuple[ElemSegment, int]:
            flags_at = p
            flags, p = self._u32(p)
            if flags > 7:
                raise MalformedError("malformed elements segment kind", flags_at)
            table = 0
            offset = None
            if flags & 1:
                mode = "declarative" if flags & 2 else "passive"
            else:
                mode = "active"
                if flags & 2:
                    table, p = self._u32(p)
                offset, p = self._const(p)
            if flags & 4:  # elements are expressions
                etype = ValType.FUNCREF
                if flags & 3:
                    etype, p = self._reftype(p)
                init, p = self._vec(p, self._const)
            else:  # elements are function indices
                etype = ValType.FUNCREF
                if flags & 3:
                    p = elem_kind(p)
                init, p = self._vec(p, func_index)
            return ElemSegment(mode, etype, table, offset, init), p

        self.m.elems, pos = self._vec(pos, entry, "elems")
        return pos

    def _datacount_section(self, pos: int) -> int:
        self.m.data_count, pos = self._u32(pos)
        return pos

    def _code_section(self, pos: int) -> int:
        self.m.codes, pos = self._vec(pos, self._code)
        return pos

    def _code(self, pos: int) -> tuple[FunctionBody, int]:
        size, p = self._len32(pos)
        start = p
        count, p = self._len32(p)
        decls = []
        total = 0
        for _ in range(count):
            k, p = self._u32(p)
            t, p = self._valtype(p)
            total += k
            decls.append((k, t))
        if total >= 1 << 32:
            raise MalformedError("too many locals", start)
        local_types: list[ValType] = []
        if total > MAX_LOCALS:
            if self.deferred is None:
                self.deferred = ValidationError(
                    f"too many locals: {total} exceeds this implementation's limit of "
                    f"{MAX_LOCALS}", start)
        else:
            for k, t in decls:
                local_types.extend([t] * k)
        self.in_body = True
        body, p = self._expr(p)
        self.in_body = False
        if p != start + size:
            raise MalformedError("section size mismatch (function body)", start)
        return FunctionBody(local_types, body, pos), p

    def _data_section(self, pos: int) -> int:
        def entry(p: int) -> tuple[DataSegment, int]:
            flags_at = p
            flags, p = self._u32(p)
            if flags == 1:
                data, p = self._bytes(p)
                return DataSegment("passive", 0, None, data), p
            if flags == 0 or flags == 2:
                memory = 0
                if flags == 2:
                    memory, p = self._u32(p)
                offset, p = self._const(p)
                data, p = self._bytes(p)
                return DataSegment("active", memory, offset, data), p
            raise MalformedError("malformed data segment kind", flags_at)

        self.m.datas, pos = self._vec(pos, entry, "datas")
        return pos


def _parse_func_names(content: bytes) -> dict[int, str] | None:
    """The function names of a "name" section, or None if it is malformed.

    A broken name section never makes a module malformed, so every error here
    is swallowed.
    """
    d = _Decoder(content)
    pos, n = 0, len(content)
    names: dict[int, str] = {}
    try:
        while pos < n:
            sub = content[pos]
            size, p = d._len32(pos + 1)
            end = p + size
            if end > n:
                return None
            if sub == 1:
                count, p = d._len32(p)
                for _ in range(count):
                    idx, p = d._u32(p)
                    names[idx], p = d._name(p)
                if p != end:
                    return None
            pos = end
    except MalformedError:
        return None
    return names

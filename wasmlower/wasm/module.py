"""The in-memory form of a decoded WebAssembly module.

``decode_module`` fills these classes from a binary; ``validate`` checks them;
the translator reads them.  The shapes follow the spec's abstract syntax with
three conveniences: instructions are flat ``Instr`` tuples named by their
text-format mnemonic, function locals are expanded one per local, and the
index spaces (imports first, then definitions) are reachable through the
helper methods of ``Module``.

Instruction immediates (``Instr.imm``), by mnemonic:

- no immediate: ``None``
- ``i32.const``/``i64.const``: the signed Python int as encoded;
  ``f32.const``/``f64.const``: the raw IEEE bit pattern as an unsigned int
- ``block``/``loop``/``if``: ``None`` (no result), a ``ValType`` (one result)
  or an ``int`` type index
- ``br``/``br_if``: label depth; ``br_table``: ``(depths_tuple, default)``
- ``call``: function index; ``call_indirect``: ``(type index, table index)``
- ``local.*``/``global.*``: the index
- loads and stores: ``(align_log2, offset)``; a memory index other than 0
  (multi-memory encoding) makes it ``(align_log2, offset, memidx)``, which the
  validator always rejects
- ``memory.size``/``memory.grow``/``memory.fill``: memory index;
  ``memory.copy``: ``(dst, src)``; ``memory.init``: ``(dataidx, memidx)``;
  ``data.drop``: data index
- ``table.get/set/size/grow/fill``: table index; ``table.copy``:
  ``(dst, src)``; ``table.init``: ``(elemidx, tableidx)``; ``elem.drop``:
  element segment index
- ``ref.null``: a ``ValType``; ``ref.func``: function index
- ``select``: ``None`` (0x1B) or a tuple of ``ValType`` (0x1C)
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from wasmlower.errors import ValidationError


class ValType(str, enum.Enum):
    """A wasm value type (numbers and the two 2.0 reference types)."""

    I32 = "i32"
    I64 = "i64"
    F32 = "f32"
    F64 = "f64"
    FUNCREF = "funcref"
    EXTERNREF = "externref"

    def __str__(self) -> str:
        return self.value

    @property
    def is_ref(self) -> bool:
        return self is ValType.FUNCREF or self is ValType.EXTERNREF

    @property
    def is_num(self) -> bool:
        return not self.is_ref


class Instr(NamedTuple):
    """One instruction: text-format mnemonic, immediate, byte offset of the opcode."""

    op: str
    imm: object
    offset: int


@dataclass(frozen=True)
class FuncType:
    params: tuple[ValType, ...]
    results: tuple[ValType, ...]

    def __str__(self) -> str:
        ps = " ".join(t.value for t in self.params)
        rs = " ".join(t.value for t in self.results)
        return f"[{ps}] -> [{rs}]"


@dataclass(frozen=True)
class Limits:
    min: int
    max: int | None


@dataclass(frozen=True)
class TableType:
    elem: ValType
    limits: Limits


@dataclass(frozen=True)
class MemoryType:
    limits: Limits


@dataclass(frozen=True)
class GlobalType:
    type: ValType
    mutable: bool


@dataclass
class Import:
    module: str
    name: str
    kind: str  # "func" | "table" | "memory" | "global"
    desc: int | TableType | MemoryType | GlobalType  # int: type index of a function


@dataclass
class Export:
    name: str
    kind: str  # "func" | "table" | "memory" | "global"
    index: int


@dataclass
class Global:
    type: GlobalType
    init: list[Instr]  # constant expression without its final ``end``


@dataclass
class ElemSegment:
    mode: str  # "active" | "passive" | "declarative"
    type: ValType
    table: int
    offset: list[Instr] | None  # active segments only; without the final ``end``
    init: list[list[Instr]]  # one constant expression per element, without ``end``


@dataclass
class DataSegment:
    mode: str  # "active" | "passive"
    memory: int
    offset: list[Instr] | None  # active segments only; without the final ``end``
    data: bytes


@dataclass
class FunctionBody:
    locals: list[ValType]  # declared locals, expanded one per local; params excluded
    body: list[Instr]  # including the final ``end``
    offset: int  # byte offset of the body's size field in the binary


class _Count(int):
    """An int that can also be called: ``m.num_imported_funcs`` and
    ``m.num_imported_funcs()`` both give the count."""

    def __call__(self) -> int:
        return int(self)


_KINDS = ("func", "table", "memory", "global")


@dataclass
class Module:
    """A decoded module.  Index spaces put imports before definitions.

    The index-space helpers cache the imports by kind; they notice the
    ``imports`` list being replaced or changing length, not in-place edits of
    an ``Import``.  Types are compared by identity: use ``ValType`` members.
    """

    types: list[FuncType] = field(default_factory=list)
    imports: list[Import] = field(default_factory=list)
    funcs: list[int] = field(default_factory=list)  # type index of each defined function
    tables: list[TableType] = field(default_factory=list)
    memories: list[MemoryType] = field(default_factory=list)
    globals: list[Global] = field(default_factory=list)
    exports: list[Export] = field(default_factory=list)
    start: int | None = None
    elems: list[ElemSegment] = field(default_factory=list)
    datas: list[DataSegment] = field(default_factory=list)
    data_count: int | None = None
    codes: list[FunctionBody] = field(default_factory=list)
    func_names: dict[int, str] = field(default_factory=dict)
    customs: list[tuple[str, bytes]] = field(default_factory=list)
    # Byte offset of each entry, by section: "types", "imports", "funcs",
    # "tables", "memories", "globals", "exports", "start", "elems", "datas".
    # Filled by the decoder (validation errors use it); may be empty.
    offsets: dict[str, list[int]] = field(default_factory=dict, repr=False, compare=False)

    # -- index spaces ----------------------------------------------------------

    def _imported(self) -> dict[str, list]:
        # Cached per imports list; rebuilt when the list object or its length changes.
        key = (id(self.imports), len(self.imports))
        cache = self.__dict__.get("_imp_cache")
        if cache is None or cache[0] != key:
            by_kind: dict[str, list] = {k: [] for k in _KINDS}
            for imp in self.imports:
                by_kind.setdefault(imp.kind, []).append(imp.desc)
            cache = (key, by_kind)
            self.__dict__["_imp_cache"] = cache
        return cache[1]

    @property
    def num_imported_funcs(self) -> _Count:
        return _Count(len(self._imported()["func"]))

    @property
    def num_imported_tables(self) -> _Count:
        return _Count(len(self._imported()["table"]))

    @property
    def num_imported_memories(self) -> _Count:
        return _Count(len(self._imported()["memory"]))

    @property
    def num_imported_globals(self) -> _Count:
        return _Count(len(self._imported()["global"]))

    @property
    def num_funcs(self) -> int:
        """Size of the function index space."""
        return len(self._imported()["func"]) + len(self.funcs)

    def func_type_index(self, funcidx: int) -> int:
        """The type index of function ``funcidx`` (imports first)."""
        imported = self._imported()["func"]
        if 0 <= funcidx < len(imported):
            return imported[funcidx]
        i = funcidx - len(imported)
        if 0 <= funcidx and i < len(self.funcs):
            return self.funcs[i]
        raise ValidationError(f"unknown function {funcidx}")

    def func_type(self, funcidx: int) -> FuncType:
        """The type of function ``funcidx`` over the whole function index space."""
        t = self.func_type_index(funcidx)
        if 0 <= t < len(self.types):
            return self.types[t]
        raise ValidationError(f"unknown type {t}")

    def table_type(self, idx: int) -> TableType:
        """The type of table ``idx`` (imports first)."""
        return self._lookup("table", self.tables, idx, lambda t: t)

    def memory_type(self, idx: int) -> MemoryType:
        """The type of memory ``idx`` (imports first)."""
        return self._lookup("memory", self.memories, idx, lambda m: m)

    def global_type(self, idx: int) -> GlobalType:
        """The type of global ``idx`` (imports first)."""
        return self._lookup("global", self.globals, idx, lambda g: g.type)

    def all_tables(self) -> list[TableType]:
        """Every table type of the table index space."""
        return list(self._imported()["table"]) + list(self.tables)

    def all_memories(self) -> list[MemoryType]:
        """Every memory type of the memory index space."""
        return list(self._imported()["memory"]) + list(self.memories)

    def all_globals(self) -> list[GlobalType]:
        """Every global type of the global index space."""
        return list(self._imported()["global"]) + [g.type for g in self.globals]

    def _lookup(self, kind: str, defined: list, idx: int, get: Callable[[Any], Any]) -> Any:
        imported = self._imported()[kind]
        if 0 <= idx < len(imported):
            return imported[idx]
        i = idx - len(imported)
        if 0 <= idx and i < len(defined):
            return get(defined[i])
        raise ValidationError(f"unknown {kind} {idx}")

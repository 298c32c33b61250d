"""Component-model types and their Canonical ABI layout.

A value type is a primitive name (``"u32"``, ``"string"``, ...) or one of the
frozen dataclasses below.  ``flatten`` gives the core value types a value
occupies in registers, ``size``/``alignment`` its layout in linear memory
(the Canonical ABI's definitions, CanonicalABI.md "Flattening" and "Element
Size/Alignment").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..wasm.module import ValType

PRIMITIVES: dict[int, str] = {
    0x7F: "bool", 0x7E: "s8", 0x7D: "u8", 0x7C: "s16", 0x7B: "u16", 0x7A: "s32",
    0x79: "u32", 0x78: "s64", 0x77: "u64", 0x76: "f32", 0x75: "f64", 0x74: "char",
    0x73: "string",
}
INT_BITS = {"s8": 8, "u8": 8, "s16": 16, "u16": 16, "s32": 32, "u32": 32, "s64": 64, "u64": 64}
MAX_FLAT_PARAMS = 16
MAX_FLAT_RESULTS = 1


@dataclass(frozen=True)
class Record:
    fields: tuple[tuple[str, ValueType], ...]

    def __str__(self) -> str:
        return "record { " + ", ".join(f"{n}: {type_name(t)}" for n, t in self.fields) + " }"


@dataclass(frozen=True)
class Tuple:
    types: tuple[ValueType, ...]

    def __str__(self) -> str:
        return f"tuple<{', '.join(type_name(t) for t in self.types)}>"


@dataclass(frozen=True)
class List:
    elem: ValueType

    def __str__(self) -> str:
        return f"list<{type_name(self.elem)}>"


@dataclass(frozen=True)
class Variant:
    cases: tuple[tuple[str, ValueType | None], ...]

    def __str__(self) -> str:
        return "variant { " + ", ".join(
            n if t is None else f"{n}({type_name(t)})" for n, t in self.cases) + " }"


@dataclass(frozen=True)
class Enum:
    labels: tuple[str, ...]

    def __str__(self) -> str:
        return f"enum {{ {', '.join(self.labels)} }}"


@dataclass(frozen=True)
class Flags:
    labels: tuple[str, ...]

    def __str__(self) -> str:
        return f"flags {{ {', '.join(self.labels)} }}"


@dataclass(frozen=True)
class Option:
    type: ValueType

    def __str__(self) -> str:
        return f"option<{type_name(self.type)}>"


@dataclass(frozen=True)
class Result:
    ok: ValueType | None
    error: ValueType | None

    def __str__(self) -> str:
        return f"result<{type_name(self.ok)}, {type_name(self.error)}>"


ValueType = str | Record | Tuple | List | Variant | Enum | Flags | Option | Result


def type_name(t: Any) -> str:
    return "_" if t is None else str(t)


@dataclass(frozen=True)
class FuncType:
    """A component function type: named parameters and at most one result."""

    params: tuple[tuple[str, ValueType], ...]
    result: ValueType | None

    def __str__(self) -> str:
        ps = ", ".join(f"{n}: {type_name(t)}" for n, t in self.params)
        return f"func({ps})" + ("" if self.result is None else f" -> {type_name(self.result)}")


@dataclass(frozen=True)
class InstanceType:
    """An instance type: its exports, name -> ``Extern``."""

    exports: tuple[tuple[str, Extern], ...]

    def export(self, name: str) -> Extern | None:
        return dict(self.exports).get(name)

    def __str__(self) -> str:
        return "instance { " + ", ".join(f"{n}: {e}" for n, e in self.exports) + " }"


@dataclass(frozen=True)
class Extern:
    """What an import, export or index refers to: ``sort`` (``"func"``, ``"type"``,
    ``"instance"``, ``"module"``, ``"component"``, ``"value"``) and its type."""

    sort: str
    type: Any

    def __str__(self) -> str:
        return f"{self.sort} {self.type}" if self.type is not None else self.sort


# --- the Canonical ABI's view of types ------------------------------------------------------


def despecialize(t: ValueType) -> ValueType:
    """tuple/enum/option/result as the record/variant they stand for."""
    if isinstance(t, Tuple):
        return Record(tuple((str(i), u) for i, u in enumerate(t.types)))
    if isinstance(t, Enum):
        return Variant(tuple((label, None) for label in t.labels))
    if isinstance(t, Option):
        return Variant((("none", None), ("some", t.type)))
    if isinstance(t, Result):
        return Variant((("ok", t.ok), ("error", t.error)))
    return t


def align_to(ptr: int, alignment: int) -> int:
    return -(-ptr // alignment) * alignment


_PRIM_SIZE = {"bool": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "s32": 4, "u32": 4, "s64": 8,
              "u64": 8, "f32": 4, "f64": 8, "char": 4}


def discriminant_size(n: int) -> int:
    return 1 if n <= 1 << 8 else 2 if n <= 1 << 16 else 4


def _flags_size(n: int) -> int:
    return 0 if n == 0 else 1 if n <= 8 else 2 if n <= 16 else 4


def alignment(t: ValueType) -> int:
    t = despecialize(t)
    if isinstance(t, str):
        return 4 if t == "string" else _PRIM_SIZE[t]
    if isinstance(t, List):
        return 4
    if isinstance(t, Record):
        return max((alignment(u) for _, u in t.fields), default=1)
    if isinstance(t, Variant):
        return max([discriminant_size(len(t.cases)),
                    *(alignment(u) for _, u in t.cases if u is not None)])
    if isinstance(t, Flags):
        return max(_flags_size(len(t.labels)), 1)
    raise TypeError(f"no layout for {t!r}")


def size(t: ValueType) -> int:
    t = despecialize(t)
    if isinstance(t, str):
        return 8 if t == "string" else _PRIM_SIZE[t]
    if isinstance(t, List):
        return 8
    if isinstance(t, Record):
        s = 0
        for _, u in t.fields:
            s = align_to(s, alignment(u)) + size(u)
        return align_to(s, alignment(t))
    if isinstance(t, Variant):
        s = align_to(discriminant_size(len(t.cases)), max_case_alignment(t))
        s += max((size(u) for _, u in t.cases if u is not None), default=0)
        return align_to(s, alignment(t))
    if isinstance(t, Flags):
        return _flags_size(len(t.labels))
    raise TypeError(f"no layout for {t!r}")


def max_case_alignment(t: Variant) -> int:
    return max((alignment(u) for _, u in t.cases if u is not None), default=1)


_I32, _I64, _F32, _F64 = ValType.I32, ValType.I64, ValType.F32, ValType.F64


def flatten(t: ValueType) -> list[ValType]:
    """The core value types ``t`` occupies when passed in registers."""
    t = despecialize(t)
    if isinstance(t, str):
        if t in ("s64", "u64"):
            return [_I64]
        if t == "f32":
            return [_F32]
        if t == "f64":
            return [_F64]
        return [_I32, _I32] if t == "string" else [_I32]
    if isinstance(t, List):
        return [_I32, _I32]
    if isinstance(t, Record):
        return [v for _, u in t.fields for v in flatten(u)]
    if isinstance(t, Variant):
        flat: list[ValType] = []
        for _, u in t.cases:
            if u is not None:
                for i, ft in enumerate(flatten(u)):
                    if i < len(flat):
                        flat[i] = join(flat[i], ft)
                    else:
                        flat.append(ft)
        return [_I32, *flat]
    if isinstance(t, Flags):
        return [_I32] if t.labels else []
    raise TypeError(f"cannot flatten {t!r}")


def join(a: ValType, b: ValType) -> ValType:
    if a == b:
        return a
    if {a, b} == {_I32, _F32}:
        return _I32
    return _I64


def flatten_params(ft: FuncType) -> list[ValType]:
    flat = [v for _, t in ft.params for v in flatten(t)]
    return flat if len(flat) <= MAX_FLAT_PARAMS else [_I32]


def flatten_results(ft: FuncType) -> list[ValType]:
    flat = flatten(ft.result) if ft.result is not None else []
    return flat if len(flat) <= MAX_FLAT_RESULTS else [_I32]


def params_record(ft: FuncType) -> Record:
    """The parameters as one record (how they are laid out when passed in memory)."""
    return Record(tuple(ft.params))

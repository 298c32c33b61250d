"""The Canonical ABI: component values to core values and memory, and back.

Core values are raw bits (unsigned; f32/f64 as their IEEE bit patterns), the
form ``runtime.Func.call_raw`` takes.  Python values: ``bool``, ``int``,
``float``, a one-character ``str`` for ``char``, ``str``, ``list``, ``dict``
for records, ``tuple`` for tuples, ``None``/value for options, a label for
enums, a ``set`` of labels for flags and ``VariantValue`` for variants and
results.  Bad Python input raises ``TypeError``/``ValueError``; bad guest
data (a pointer out of bounds, an invalid ``char`` or UTF-8) traps.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import Trap
from ..wasm.module import ValType
from .types import (
    INT_BITS,
    MAX_FLAT_PARAMS,
    MAX_FLAT_RESULTS,
    Flags,
    FuncType,
    List,
    Record,
    ValueType,
    Variant,
    align_to,
    alignment,
    despecialize,
    discriminant_size,
    flatten,
    max_case_alignment,
    size,
)

UTF16_TAG = 1 << 31
MAX_STRING_BYTE_LENGTH = (1 << 31) - 1
TRAP_KIND = "canonical_abi"
_CANON_NAN32 = 0x7FC00000
_CANON_NAN64 = 0x7FF8000000000000


def trap(message: str) -> Trap:
    return Trap(TRAP_KIND, message)


@dataclass(frozen=True)
class VariantValue:
    """A variant or result value: the case's label and its payload (or None)."""

    case: str
    value: Any = None

    def __str__(self) -> str:
        return self.case if self.value is None else f"{self.case}({self.value!r})"


@dataclass
class Options:
    """A ``canon lift``/``lower``'s options, bound to one component instance's core items."""

    memory: Any = None                   # runtime Memory
    realloc: Any = None                  # runtime Func (i32 i32 i32 i32) -> i32
    post_return: Any = None              # runtime Func
    encoding: str = "utf8"               # "utf8" | "utf16" | "latin1+utf16"


class Context:
    """One lift or lower: the options and the memory they name."""

    def __init__(self, opts: Options) -> None:
        self.opts = opts

    @property
    def memory(self) -> Any:
        if self.opts.memory is None:
            raise trap("this canonical function has no memory option")
        return self.opts.memory

    def read(self, ptr: int, n: int) -> bytes:
        mem = self.memory
        if ptr + n > mem.data_len:
            raise trap(f"pointer {ptr:#x} + {n} bytes is out of bounds of memory "
                       f"({mem.data_len} bytes)")
        return mem.read(ptr, n)

    def write(self, ptr: int, data: bytes) -> None:
        mem = self.memory
        if ptr + len(data) > mem.data_len:
            raise trap(f"pointer {ptr:#x} + {len(data)} bytes is out of bounds of memory "
                       f"({mem.data_len} bytes)")
        mem.write(ptr, data)

    def realloc(self, old: int, old_size: int, align: int, new_size: int) -> int:
        if self.opts.realloc is None:
            raise trap("this canonical function has no realloc option")
        (ptr,) = self.opts.realloc.call_raw([old, old_size, align, new_size])
        if ptr != align_to(ptr, align):
            raise trap(f"realloc returned pointer {ptr:#x}, not aligned to {align}")
        if ptr + new_size > self.memory.data_len:
            raise trap(f"realloc returned pointer {ptr:#x}: {new_size} bytes there are out "
                       "of bounds of memory")
        return ptr


# --- scalars ------------------------------------------------------------------------


def _check_int(v: Any, t: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"expected an int for {t}, got {type(v).__name__}")
    bits = INT_BITS[t]
    lo, hi = (-(1 << (bits - 1)), 1 << (bits - 1)) if t[0] == "s" else (0, 1 << bits)
    if not lo <= v < hi:
        raise ValueError(f"{v} is out of range for {t}")
    return v


def _lift_int(bits: int, t: str) -> int:
    n = INT_BITS[t]
    v = bits & ((1 << n) - 1)
    if t[0] == "s" and v >= 1 << (n - 1):
        v -= 1 << n
    return v


def _char(code: int) -> str:
    if code >= 0x110000 or 0xD800 <= code <= 0xDFFF:
        raise trap(f"invalid char: {code:#x} is not a Unicode scalar value")
    return chr(code)


def _check_char(v: Any) -> int:
    if not isinstance(v, str) or len(v) != 1:
        raise TypeError(f"expected a one-character str for char, got {v!r}")
    code = ord(v)
    if 0xD800 <= code <= 0xDFFF:
        raise ValueError(f"char {code:#x} is a surrogate, not a Unicode scalar value")
    return code


def _f32_bits(v: Any) -> int:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        raise TypeError(f"expected a float for f32, got {type(v).__name__}")
    if math.isnan(v):
        return _CANON_NAN32
    return struct.unpack("<I", struct.pack("<f", v))[0]


def _f64_bits(v: Any) -> int:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        raise TypeError(f"expected a float for f64, got {type(v).__name__}")
    if math.isnan(v):
        return _CANON_NAN64
    return struct.unpack("<Q", struct.pack("<d", float(v)))[0]


def _f32(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits & 0xFFFFFFFF))[0]


def _f64(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits & (2**64 - 1)))[0]


# --- strings -----------------------------------------------------------------------


def load_string_from_range(cx: Context, ptr: int, tagged: int) -> str:
    enc = cx.opts.encoding
    if enc == "utf8":
        align, nbytes, codec = 1, tagged, "utf-8"
    elif enc == "utf16":
        align, nbytes, codec = 2, 2 * tagged, "utf-16-le"
    elif tagged & UTF16_TAG:
        align, nbytes, codec = 2, 2 * (tagged ^ UTF16_TAG), "utf-16-le"
    else:
        align, nbytes, codec = 2, tagged, "latin-1"
    if ptr != align_to(ptr, align):
        raise trap(f"string pointer {ptr:#x} is not aligned to {align}")
    data = cx.read(ptr, nbytes)
    try:
        return data.decode(codec)
    except UnicodeDecodeError as e:
        raise trap(f"invalid {codec} string at {ptr:#x}: {e.reason}") from None


def store_string(cx: Context, s: Any) -> tuple[int, int]:
    """Copy ``s`` into guest memory (allocated by realloc): ``(ptr, tagged length)``."""
    if not isinstance(s, str):
        raise TypeError(f"expected a str for string, got {type(s).__name__}")
    enc = cx.opts.encoding
    if enc == "latin1+utf16" and all(ord(c) < 256 for c in s):
        data, align, units, tag = s.encode("latin-1"), 2, len(s), 0
    elif enc == "utf8":
        data, align, tag = _utf8(s), 1, 0
        units = len(data)
    else:
        data, align = _utf16(s), 2
        units, tag = len(data) // 2, UTF16_TAG if enc == "latin1+utf16" else 0
    if len(data) > MAX_STRING_BYTE_LENGTH:
        raise ValueError(f"string of {len(data)} bytes is too long for the Canonical ABI")
    ptr = cx.realloc(0, 0, align, len(data))
    cx.write(ptr, data)
    return ptr, units | tag


def _utf8(s: str) -> bytes:
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("string holds a lone surrogate; it has no UTF-8 form") from None


def _utf16(s: str) -> bytes:
    try:
        return s.encode("utf-16-le")
    except UnicodeEncodeError:
        raise ValueError("string holds a lone surrogate; it has no UTF-16 form") from None


# --- memory -----------------------------------------------------------------------

_UNPACK = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}


def _load_uint(cx: Context, ptr: int, n: int) -> int:
    return struct.unpack(_UNPACK[n], cx.read(ptr, n))[0]


def _store_uint(cx: Context, v: int, ptr: int, n: int) -> None:
    cx.write(ptr, struct.pack(_UNPACK[n], v & ((1 << (8 * n)) - 1)))


def load(cx: Context, ptr: int, t: ValueType) -> Any:
    """The value of type ``t`` stored at ``ptr`` (which must be aligned)."""
    if ptr != align_to(ptr, alignment(t)):
        raise trap(f"pointer {ptr:#x} is not aligned to {alignment(t)} for {t}")
    t = despecialize(t)
    if isinstance(t, str):
        if t == "string":
            return load_string_from_range(cx, _load_uint(cx, ptr, 4), _load_uint(cx, ptr + 4, 4))
        raw = _load_uint(cx, ptr, size(t))
        return _lift_scalar(raw, t)
    if isinstance(t, List):
        return _load_list(cx, _load_uint(cx, ptr, 4), _load_uint(cx, ptr + 4, 4), t.elem)
    if isinstance(t, Record):
        out = {}
        for name, u in t.fields:
            ptr = align_to(ptr, alignment(u))
            out[name] = load(cx, ptr, u)
            ptr += size(u)
        return out
    if isinstance(t, Variant):
        n = discriminant_size(len(t.cases))
        case = _load_uint(cx, ptr, n)
        if case >= len(t.cases):
            raise trap(f"variant case {case} out of range ({len(t.cases)} cases)")
        label, u = t.cases[case]
        ptr = align_to(ptr + n, max_case_alignment(t))
        return label, (None if u is None else load(cx, ptr, u))
    if isinstance(t, Flags):
        return _unpack_flags(t, _load_uint(cx, ptr, size(t)) if t.labels else 0)
    raise TypeError(f"cannot load {t!r}")


def _load_list(cx: Context, ptr: int, length: int, elem: ValueType) -> list[Any]:
    a, s = alignment(elem), size(elem)
    if ptr != align_to(ptr, a):
        raise trap(f"list pointer {ptr:#x} is not aligned to {a}")
    cx.read(ptr, length * s)                     # bounds check of the whole list first
    return [load(cx, ptr + i * s, elem) for i in range(length)]


def store(cx: Context, v: Any, t: ValueType, ptr: int) -> None:
    """Store ``v`` of type ``t`` at ``ptr``."""
    if ptr != align_to(ptr, alignment(t)):
        raise trap(f"pointer {ptr:#x} is not aligned to {alignment(t)} for {t}")
    orig, t = t, despecialize(t)
    if isinstance(t, str):
        if t == "string":
            p, n = store_string(cx, v)
            _store_uint(cx, p, ptr, 4)
            _store_uint(cx, n, ptr + 4, 4)
        else:
            _store_uint(cx, _lower_scalar(v, t), ptr, size(t))
        return
    if isinstance(t, List):
        p, n = _store_list(cx, v, t.elem)
        _store_uint(cx, p, ptr, 4)
        _store_uint(cx, n, ptr + 4, 4)
    elif isinstance(t, Record):
        for (name, u), x in zip(t.fields, _record_items(v, orig, t)):
            ptr = align_to(ptr, alignment(u))
            store(cx, x, u, ptr)
            ptr += size(u)
    elif isinstance(t, Variant):
        case, payload, u = _variant_case(v, orig, t)
        n = discriminant_size(len(t.cases))
        _store_uint(cx, case, ptr, n)
        if u is not None:
            store(cx, payload, u, align_to(ptr + n, max_case_alignment(t)))
    elif isinstance(t, Flags):
        if t.labels:
            _store_uint(cx, _pack_flags(v, t), ptr, size(t))
    else:
        raise TypeError(f"cannot store {t!r}")


def _store_list(cx: Context, v: Any, elem: ValueType) -> tuple[int, int]:
    if isinstance(v, (bytes, bytearray)) and elem in ("u8", "s8"):
        v = list(v) if elem == "u8" else [_lift_int(b, "s8") for b in v]
    if not isinstance(v, (list, tuple)):
        raise TypeError(f"expected a list for list<{elem}>, got {type(v).__name__}")
    s = size(elem)
    ptr = cx.realloc(0, 0, alignment(elem), s * len(v))
    for i, x in enumerate(v):
        store(cx, x, elem, ptr + i * s)
    return ptr, len(v)


# --- flat values ------------------------------------------------------------------------


def _lift_scalar(bits: int, t: str) -> Any:
    if t == "bool":
        return bits != 0
    if t in INT_BITS:
        return _lift_int(bits, t)
    if t == "char":
        return _char(bits)
    if t == "f32":
        return _f32(bits)
    return _f64(bits)


def _lower_scalar(v: Any, t: str) -> int:
    if t == "bool":
        if not isinstance(v, bool):
            raise TypeError(f"expected a bool, got {type(v).__name__}")
        return int(v)
    if t in INT_BITS:
        return _check_int(v, t) & ((1 << (64 if INT_BITS[t] == 64 else 32)) - 1)
    if t == "char":
        return _check_char(v)
    return _f32_bits(v) if t == "f32" else _f64_bits(v)


class _Flat:
    """An iterator over flat core values, with the core type each was passed as."""

    def __init__(self, values: Sequence[int], types: Sequence[ValType]) -> None:
        self._it: Iterator[tuple[int, ValType]] = iter(zip(values, types))

    def next(self, want: ValType) -> int:
        bits, have = next(self._it)
        if have == want:
            return bits
        # A variant case narrower than the joined slot: undo ``join``.
        if want == ValType.F32:
            return bits & 0xFFFFFFFF
        if want == ValType.I32:
            return bits & 0xFFFFFFFF
        return bits


def lift_flat(cx: Context, vi: _Flat, t: ValueType) -> Any:
    t = despecialize(t)
    if isinstance(t, str):
        if t == "string":
            ptr = vi.next(ValType.I32)
            return load_string_from_range(cx, ptr, vi.next(ValType.I32))
        core = flatten(t)[0]
        return _lift_scalar(vi.next(core), t)
    if isinstance(t, List):
        ptr = vi.next(ValType.I32)
        return _load_list(cx, ptr, vi.next(ValType.I32), t.elem)
    if isinstance(t, Record):
        return {name: lift_flat(cx, vi, u) for name, u in t.fields}
    if isinstance(t, Variant):
        flat = flatten(t)
        case = vi.next(ValType.I32)
        if case >= len(t.cases):
            raise trap(f"variant case {case} out of range ({len(t.cases)} cases)")
        label, u = t.cases[case]
        payload = None if u is None else lift_flat(cx, vi, u)
        used = 1 + (0 if u is None else len(flatten(u)))
        for ft in flat[used:]:
            vi.next(ft)
        return label, payload
    if isinstance(t, Flags):
        return _unpack_flags(t, vi.next(ValType.I32) if t.labels else 0)
    raise TypeError(f"cannot lift {t!r}")


def lower_flat(cx: Context, v: Any, t: ValueType) -> list[int]:
    orig, t = t, despecialize(t)
    if isinstance(t, str):
        if t == "string":
            return list(store_string(cx, v))
        return [_lower_scalar(v, t)]
    if isinstance(t, List):
        return list(_store_list(cx, v, t.elem))
    if isinstance(t, Record):
        return [b for (_, u), x in zip(t.fields, _record_items(v, orig, t))
                for b in lower_flat(cx, x, u)]
    if isinstance(t, Variant):
        case, payload, u = _variant_case(v, orig, t)
        flat = flatten(t)
        out = [case]
        if u is not None:
            for bits, have, want in zip(lower_flat(cx, payload, u), flatten(u), flat[1:]):
                out.append(bits & 0xFFFFFFFF if want == ValType.I32 and have != want else bits)
        out += [0] * (len(flat) - len(out))
        return out
    if isinstance(t, Flags):
        return [_pack_flags(v, t)] if t.labels else []
    raise TypeError(f"cannot lower {t!r}")


# --- Python forms of records, variants and flags -------------------------------------------


def _record_items(v: Any, orig: ValueType, t: Record) -> list[Any]:
    names = [n for n, _ in t.fields]
    if not isinstance(orig, Record):                  # a tuple
        if not isinstance(v, (tuple, list)) or len(v) != len(names):
            raise TypeError(f"expected a tuple of {len(names)} values for {orig}")
        return list(v)
    if not isinstance(v, dict) or set(v) != set(names):
        raise TypeError(f"expected a dict with keys {names} for {orig}, got {v!r}")
    return [v[n] for n in names]


def _variant_case(v: Any, orig: ValueType, t: Variant) -> tuple[int, Any, ValueType | None]:
    from .types import Enum, Option, Result
    labels = [n for n, _ in t.cases]
    if isinstance(orig, Option):
        label, payload = ("none", None) if v is None else ("some", v)
    elif isinstance(orig, Enum):
        label, payload = v, None
    elif isinstance(v, VariantValue):
        label, payload = v.case, v.value
    elif isinstance(orig, Result) or not isinstance(v, tuple) or len(v) != 2:
        raise TypeError(f"expected a VariantValue for {orig}, got {v!r}")
    else:
        label, payload = v
    if label not in labels:
        raise ValueError(f"{label!r} is not a case of {orig}")
    case = labels.index(label)
    return case, payload, t.cases[case][1]


def _pack_flags(v: Any, t: Flags) -> int:
    if not isinstance(v, (set, frozenset, list, tuple)):
        raise TypeError(f"expected a set of labels for {t}, got {v!r}")
    bits = 0
    for label in v:
        if label not in t.labels:
            raise ValueError(f"{label!r} is not a flag of {t}")
        bits |= 1 << t.labels.index(label)
    return bits


def _unpack_flags(t: Flags, bits: int) -> set[str]:
    return {label for i, label in enumerate(t.labels) if bits >> i & 1}


def python_value(t: ValueType, v: Any) -> Any:
    """The user-facing form of a lifted value: option -> value or None, enum -> label,
    variant/result -> VariantValue (``lift_flat``/``load`` give (label, payload) pairs)."""
    from .types import Enum, Option, Result, Tuple
    if isinstance(t, Option):
        return None if v[0] == "none" else python_value(t.type, v[1])
    if isinstance(t, Enum):
        return v[0]
    if isinstance(t, Result):
        u = t.ok if v[0] == "ok" else t.error
        return VariantValue(v[0], None if u is None else python_value(u, v[1]))
    if isinstance(t, Variant):
        u = dict(t.cases)[v[0]]
        return VariantValue(v[0], None if u is None else python_value(u, v[1]))
    if isinstance(t, Tuple):
        return tuple(python_value(u, v[str(i)]) for i, u in enumerate(t.types))
    if isinstance(t, Record):
        return {n: python_value(u, v[n]) for n, u in t.fields}
    if isinstance(t, List):
        return [python_value(t.elem, x) for x in v]
    return v


# --- whole calls ------------------------------------------------------------------------


def core_signature(ft: FuncType, context: str) -> tuple[list[ValType], list[ValType]]:
    """The core (params, results) of ``ft`` lifted (``"lift"``) or lowered (``"lower"``)."""
    params = [v for _, t in ft.params for v in flatten(t)]
    if len(params) > MAX_FLAT_PARAMS:
        params = [ValType.I32]
    results = flatten(ft.result) if ft.result is not None else []
    if len(results) > MAX_FLAT_RESULTS:
        if context == "lift":
            results = [ValType.I32]
        else:
            params, results = [*params, ValType.I32], []
    return params, results


def lower_args(cx: Context, ft: FuncType, args: Sequence[Any]) -> list[int]:
    """Python arguments -> the flat core arguments of a lifted function."""
    flat = [v for _, t in ft.params for v in flatten(t)]
    if len(flat) <= MAX_FLAT_PARAMS:
        return [b for (_, t), a in zip(ft.params, args) for b in lower_flat(cx, a, t)]
    rec = Record(tuple(ft.params))
    ptr = cx.realloc(0, 0, alignment(rec), size(rec))
    store(cx, {n: a for (n, _), a in zip(ft.params, args)}, rec, ptr)
    return [ptr]


def lift_results(cx: Context, ft: FuncType, bits: Sequence[int]) -> Any:
    """The core results of a lifted function -> its Python result (or None)."""
    if ft.result is None:
        return None
    flat = flatten(ft.result)
    if len(flat) <= MAX_FLAT_RESULTS:
        v = lift_flat(cx, _Flat(bits, flat), ft.result)
    else:
        v = load(cx, bits[0], ft.result)
    return python_value(ft.result, v)


def lift_args(cx: Context, ft: FuncType, bits: Sequence[int]) -> list[Any]:
    """The core arguments of a lowered function -> Python arguments."""
    flat = [v for _, t in ft.params for v in flatten(t)]
    if len(flat) <= MAX_FLAT_PARAMS:
        vi = _Flat(bits, flat)
        return [python_value(t, lift_flat(cx, vi, t)) for _, t in ft.params]
    rec = Record(tuple(ft.params))
    values = load(cx, bits[0], rec)
    return [python_value(t, values[n]) for n, t in ft.params]


def lower_results(cx: Context, ft: FuncType, value: Any, bits: Sequence[int]) -> list[int]:
    """A lowered function's Python result -> its core results (stored through the
    return pointer, the last core argument, when they do not fit in registers)."""
    if ft.result is None:
        return []
    flat = flatten(ft.result)
    if len(flat) <= MAX_FLAT_RESULTS:
        return lower_flat(cx, value, ft.result)
    store(cx, value, ft.result, bits[-1])
    return []


"""Decode and check a component binary's definitions (everything but its core modules).

``decode_component(sections, modules)`` reads the component-model sections in
order, keeps the index spaces with each item's type, checks every reference
and every ``canon lift``/``lower`` against its core function's type, and
returns a ``ComponentInfo``: the definitions as steps the instantiation runs
(``wasmlower.component.instance``), the component's imports and its exports.

Supported: core instances (instantiate and inline exports), aliases (export,
core export, outer types), value/function/instance types, imports and exports
of functions, instances and types, ``canon lift``/``lower``.  Nested
components, resources, async, values and ``start`` raise ``UnsupportedError``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import MalformedError, UnsupportedError, ValidationError
from ..wasm.module import FuncType as CoreFuncType
from ..wasm.module import ValType
from .canon import core_signature
from .types import (
    PRIMITIVES,
    Enum,
    Extern,
    Flags,
    FuncType,
    InstanceType,
    List,
    Option,
    Record,
    Result,
    Tuple,
    Variant,
    flatten,
)

PREAMBLE = b"\0asm\x0d\x00\x01\x00"
CORE_SORTS = {0x00: "func", 0x01: "table", 0x02: "memory", 0x03: "global", 0x04: "tag",
              0x10: "type", 0x11: "module", 0x12: "instance"}
SORTS = {0x01: "func", 0x02: "value", 0x03: "type", 0x04: "component", 0x05: "instance"}
_CORE_VALTYPES = {0x7F: ValType.I32, 0x7E: ValType.I64, 0x7D: ValType.F32, 0x7C: ValType.F64,
                  0x70: ValType.FUNCREF, 0x6F: ValType.EXTERNREF}
ENCODINGS = {0x00: "utf8", 0x01: "utf16", 0x02: "latin1+utf16"}


# --- what instantiation runs ----------------------------------------------------------------


@dataclass(frozen=True)
class CanonOpts:
    encoding: str = "utf8"
    memory: int | None = None            # core memory index
    realloc: int | None = None           # core func index
    post_return: int | None = None       # core func index


@dataclass(frozen=True)
class Step:
    """One definition: ``op`` and its operands; it appends one item to ``space``
    (``"core func"``, ``"func"``, ``"instance"``, ...) unless ``space`` is None."""

    op: str        # instantiate | core_inline | core_alias | import | lift | lower
    #                alias | inline | export
    space: str | None
    args: tuple


@dataclass
class ComponentInfo:
    steps: list[Step]
    imports: list[tuple[str, Extern]]
    exports: list[tuple[str, Extern]]
    modules_exported: list[int] = field(default_factory=list)   # core modules it exports


# --- the reader -------------------------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes, base: int) -> None:
        self.data, self.pos, self.base = data, 0, base

    @property
    def offset(self) -> int:
        return self.base + self.pos

    def malformed(self, message: str) -> MalformedError:
        return MalformedError(message, self.offset)

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise self.malformed("unexpected end of section")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def _leb(self, signed: bool) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
            if shift >= 35:
                raise self.malformed("integer representation too long")
        if signed and b & 0x40:
            result -= 1 << shift
        return result

    def u32(self) -> int:
        result = self._leb(False)
        if result >= 1 << 32:
            raise self.malformed("integer too large")
        return result

    def s33(self) -> int:
        return self._leb(True)

    def name(self) -> str:
        n = self.u32()
        if self.pos + n > len(self.data):
            raise self.malformed("name runs past the end of the section")
        raw = self.data[self.pos:self.pos + n]
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.malformed("malformed UTF-8 encoding in a name") from None

    def vec(self, item: Callable[[], Any]) -> list[Any]:
        return [item() for _ in range(self.u32())]

    def optional(self, item: Callable[[], Any]) -> Any:
        flag = self.byte()
        if flag == 0:
            return None
        if flag != 1:
            raise self.malformed(f"expected 0x00 or 0x01 for an optional, got {flag:#04x}")
        return item()

    def end(self) -> None:
        if self.pos != len(self.data):
            raise self.malformed("section size mismatch: bytes left over")


# --- the decoder -------------------------------------------------------------------------


class _Scope:
    """The type index space of a component, component type or instance type."""

    def __init__(self, parent: _Scope | None) -> None:
        self.parent = parent
        self.types: list[Any] = []

    def type(self, idx: int, r: _Reader) -> Any:
        if idx >= len(self.types):
            raise ValidationError(f"unknown type {idx}", r.offset)
        return self.types[idx]

    def outer(self, count: int, r: _Reader) -> _Scope:
        scope: _Scope | None = self
        for _ in range(count):
            scope = scope.parent if scope is not None else None
        if scope is None:
            raise ValidationError(f"outer alias count {count} reaches past the outermost "
                                  "component", r.offset)
        return scope


class _Decoder:
    def __init__(self, modules: list[Any]) -> None:
        self.modules = modules                          # core Module descriptions
        self.scope = _Scope(None)
        self.space: dict[str, list[Any]] = {
            k: [] for k in ("core func", "core table", "core memory", "core global",
                            "core type", "core module", "core instance",
                            "func", "value", "component", "instance")}
        self.space["core module"] = list(modules)
        self.steps: list[Step] = []
        self.imports: list[tuple[str, Extern]] = []
        self.exports: list[tuple[str, Extern]] = []
        self.export_names: set[str] = set()
        self.modules_exported: list[int] = []

    def _get(self, space: str, idx: int, r: _Reader) -> Any:
        items = self.types_of(space)
        if idx >= len(items):
            raise ValidationError(f"unknown {space} {idx} (the component defines "
                                  f"{len(items)} so far)", r.offset)
        return items[idx]

    def types_of(self, space: str) -> list[Any]:
        return self.scope.types if space == "type" else self.space[space]

    def _add(self, space: str, item: Any, step: Step | None) -> None:
        self.types_of(space).append(item)
        if step is not None:
            self.steps.append(step)

    # -- sections ----------------------------------------------------------------------

    def section(self, sid: int, r: _Reader) -> None:
        handler = {2: self.core_instances, 3: self.core_types, 5: self.instances,
                   6: self.aliases, 7: self.types, 8: self.canons, 10: self.imports_,
                   11: self.exports_}.get(sid)
        if sid == 0:
            r.name()            # custom section: the name, then anything
            return
        if sid == 4:
            raise UnsupportedError("nested components are not supported yet")
        if sid in (9, 12):
            raise UnsupportedError("component start functions and values are not "
                                   "supported yet")
        if handler is None:
            raise r.malformed(f"unknown component section id {sid}")
        for _ in range(r.u32()):
            handler(r)
        r.end()

    # core:instance
    def core_instances(self, r: _Reader) -> None:
        kind = r.byte()
        if kind == 0x00:
            midx = r.u32()
            module = self._get("core module", midx, r)
            args = r.vec(lambda: (r.name(), self._instantiate_arg(r)))
            given = dict(args)
            for imp in module.imports:
                inst = given.get(imp.module)
                if inst is None:
                    raise ValidationError(f"core module {midx} imports \"{imp.module}\" "
                                          f"\"{imp.name}\" but no instance named "
                                          f"\"{imp.module}\" is given", r.offset)
                have = self.space["core instance"][inst].get(imp.name)
                if have is None or have[0] != imp.kind:
                    raise ValidationError(f"core module {midx} imports {imp.kind} "
                                          f"\"{imp.module}\" \"{imp.name}\", which core "
                                          f"instance {inst} does not export", r.offset)
                if imp.kind == "func" and have[1] is not None \
                        and have[1] != module.types[imp.desc]:
                    raise ValidationError(
                        f"core module {midx} imports \"{imp.module}\" \"{imp.name}\" as "
                        f"{module.types[imp.desc]}, but it is {have[1]}", r.offset)
            exports = {}
            for ex in module.exports:
                exports[ex.name] = (ex.kind, module.func_type(ex.index)
                                    if ex.kind == "func" else None)
            self._add("core instance", exports, Step("instantiate", "core instance",
                                                     (midx, tuple(args))))
        elif kind == 0x01:
            items = r.vec(lambda: (r.name(), *self._core_sortidx(r)))
            exports = {n: (sort, self._get("core " + sort, idx, r)) for n, sort, idx in items}
            self._add("core instance", exports, Step("core_inline", "core instance",
                                                     tuple(items)))
        else:
            raise r.malformed(f"unknown core instance kind {kind:#04x}")

    def _instantiate_arg(self, r: _Reader) -> int:
        sort = r.byte()
        if sort != 0x12:
            raise r.malformed(f"core instantiate arguments must be instances, got sort "
                              f"{sort:#04x}")
        idx = r.u32()
        self._get("core instance", idx, r)
        return idx

    def _core_sortidx(self, r: _Reader) -> tuple[str, int]:
        code = r.byte()
        sort = CORE_SORTS.get(code)
        if sort is None:
            raise r.malformed(f"unknown core sort {code:#04x}")
        if sort not in ("func", "table", "memory", "global"):
            raise UnsupportedError(f"core {sort} items in core instances are not supported")
        return sort, r.u32()

    # core:type
    def core_types(self, r: _Reader) -> None:
        self._add("core type", self._core_type(r), None)

    def _core_type(self, r: _Reader) -> Any:
        form = r.byte()
        if form == 0x60:
            params = tuple(r.vec(lambda: self._core_valtype(r)))
            results = tuple(r.vec(lambda: self._core_valtype(r)))
            return CoreFuncType(params, results)
        if form == 0x50:
            raise UnsupportedError("core module types (importing core modules) are not "
                                   "supported yet")
        raise UnsupportedError(f"core type form {form:#04x} (GC types) is not supported")

    def _core_valtype(self, r: _Reader) -> ValType:
        b = r.byte()
        if b not in _CORE_VALTYPES:
            raise r.malformed(f"unknown core value type {b:#04x}")
        return _CORE_VALTYPES[b]

    # instance
    def instances(self, r: _Reader) -> None:
        kind = r.byte()
        if kind == 0x00:
            raise UnsupportedError("instantiating nested components is not supported yet")
        if kind != 0x01:
            raise r.malformed(f"unknown instance kind {kind:#04x}")
        items = r.vec(lambda: (self._name_attributes(r), *self._sortidx(r)))
        exports = []
        for name, sort, idx in items:
            exports.append((name, Extern(sort, self._item_type(sort, idx, r))))
        self._add("instance", InstanceType(tuple(exports)), Step("inline", "instance",
                                                                   tuple(items)))

    def _sortidx(self, r: _Reader) -> tuple[str, int]:
        code = r.byte()
        if code == 0x00:
            core = r.byte()
            sort = CORE_SORTS.get(core)
            if sort is None:
                raise r.malformed(f"unknown core sort {core:#04x}")
            sort = "core " + sort
        else:
            sort = SORTS.get(code)
            if sort is None:
                raise r.malformed(f"unknown sort {code:#04x}")
        return sort, r.u32()

    def _item_type(self, sort: str, idx: int, r: _Reader) -> Any:
        if sort in ("value", "component"):
            raise UnsupportedError(f"component {sort}s are not supported yet")
        if sort.startswith("core ") and sort != "core module":
            raise ValidationError(f"a component cannot export a {sort} directly", r.offset)
        return self._get(sort, idx, r)

    def _name_attributes(self, r: _Reader) -> str:
        kind = r.byte()
        if kind not in (0x00, 0x01, 0x02):
            raise r.malformed(f"unknown import/export name kind {kind:#04x}")
        name = r.name()
        if kind == 0x02:
            r.vec(lambda: (r.byte(), r.name()))
        return name

    # alias
    def aliases(self, r: _Reader) -> None:
        self._alias(r, self.scope, None)

    def _alias(self, r: _Reader, scope: _Scope, local: list[tuple[str, Extern]] | None
               ) -> None:
        code = r.byte()
        if code == 0x00:
            core = r.byte()
            sort = "core " + CORE_SORTS.get(core, "?")
            if sort == "core ?":
                raise r.malformed(f"unknown core sort {core:#04x}")
        else:
            sort = SORTS.get(code, "?")
            if sort == "?":
                raise r.malformed(f"unknown sort {code:#04x}")
        target = r.byte()
        if target == 0x02:                               # outer
            count, idx = r.u32(), r.u32()
            if sort not in ("type", "core type"):
                raise UnsupportedError(f"outer aliases of {sort}s are not supported")
            outer = scope.outer(count, r)
            if sort == "type":
                scope.types.append(outer.type(idx, r))
            elif local is None:
                self._add("core type", None, None)
            return
        if local is not None:
            raise UnsupportedError("export aliases inside types are not supported")
        if target == 0x00:                               # export of a component instance
            inst, name = r.u32(), r.name()
            itype = self._get("instance", inst, r)
            ext = itype.export(name)
            if ext is None or ext.sort != sort:
                raise ValidationError(f"instance {inst} has no {sort} export \"{name}\"",
                                      r.offset)
            self._add(sort, ext.type, Step("alias", None if sort == "type" else sort,
                                           (inst, name)) if sort != "type" else None)
        elif target == 0x01:                             # export of a core instance
            inst, name = r.u32(), r.name()
            exports = self._get("core instance", inst, r)
            have = exports.get(name)
            if have is None or "core " + have[0] != sort:
                raise ValidationError(f"core instance {inst} has no {sort[5:]} export "
                                      f"\"{name}\"", r.offset)
            self._add(sort, have[1], Step("core_alias", sort, (inst, name)))
        else:
            raise r.malformed(f"unknown alias target {target:#04x}")

    # type
    def types(self, r: _Reader) -> None:
        self.scope.types.append(self._deftype(r, self.scope))

    def _deftype(self, r: _Reader, scope: _Scope) -> Any:
        start = r.pos
        form = r.byte()
        if form == 0x40:
            params = tuple(r.vec(lambda: (r.name(), self._valtype(r, scope))))
            rform = r.byte()
            if rform == 0x00:
                result = self._valtype(r, scope)
            elif rform == 0x01 and r.byte() == 0x00:
                result = None
            else:
                raise r.malformed("malformed function result list")
            return FuncType(params, result)
        if form == 0x42:
            return self._instance_type(r, scope)
        if form == 0x43:
            raise UnsupportedError("async component functions are not supported")
        if form == 0x41:
            raise UnsupportedError("component types (importing components) are not "
                                   "supported yet")
        if form == 0x3F:
            raise UnsupportedError("resource types are not supported yet")
        r.pos = start
        return self._defvaltype(r, scope)

    def _instance_type(self, r: _Reader, parent: _Scope) -> InstanceType:
        scope = _Scope(parent)
        exports: list[tuple[str, Extern]] = []
        for _ in range(r.u32()):
            kind = r.byte()
            if kind == 0x00:
                self._core_type(r)
            elif kind == 0x01:
                scope.types.append(self._deftype(r, scope))
            elif kind == 0x02:
                self._alias(r, scope, exports)
            elif kind == 0x04:
                name = self._name_attributes(r)
                ext = self._externtype(r, scope)
                if ext.sort == "type":
                    scope.types.append(ext.type)
                exports.append((name, ext))
            else:
                raise r.malformed(f"unknown instance type declaration {kind:#04x}")
        return InstanceType(tuple(exports))

    def _defvaltype(self, r: _Reader, scope: _Scope) -> Any:
        form = r.byte()
        if form in PRIMITIVES:
            return PRIMITIVES[form]
        vt = lambda: self._valtype(r, scope)
        if form == 0x72:
            return Record(tuple(r.vec(lambda: (r.name(), vt()))))
        if form == 0x71:
            def case() -> tuple[str, Any]:
                label, t = r.name(), r.optional(vt)
                if r.byte() != 0x00:
                    raise UnsupportedError("variant cases that refine others are not "
                                           "supported")
                return label, t
            return Variant(tuple(r.vec(case)))
        if form == 0x70:
            return List(vt())
        if form == 0x6F:
            return Tuple(tuple(r.vec(vt)))
        if form == 0x6E:
            return Flags(tuple(r.vec(r.name)))
        if form == 0x6D:
            return Enum(tuple(r.vec(r.name)))
        if form == 0x6B:
            return Option(vt())
        if form == 0x6A:
            return Result(r.optional(vt), r.optional(vt))
        names = {0x69: "own handles", 0x68: "borrow handles", 0x67: "fixed-length lists",
                 0x66: "streams", 0x65: "futures", 0x64: "error-context", 0x63: "maps"}
        if form in names:
            raise UnsupportedError(f"component {names[form]} are not supported yet")
        raise r.malformed(f"unknown component type form {form:#04x}")

    def _valtype(self, r: _Reader, scope: _Scope) -> Any:
        v = r.s33()
        if v < 0:
            prim = PRIMITIVES.get(v & 0x7F)
            if prim is None:
                raise r.malformed(f"unknown value type {v & 0x7F:#04x}")
            return prim
        t = scope.type(v, r)
        if isinstance(t, (FuncType, InstanceType)):
            raise ValidationError(f"type {v} is not a value type", r.offset)
        return t

    def _externtype(self, r: _Reader, scope: _Scope) -> Extern:
        code = r.byte()
        if code == 0x01:
            t = scope.type(r.u32(), r)
            if not isinstance(t, FuncType):
                raise ValidationError("a func import or export needs a function type",
                                      r.offset)
            return Extern("func", t)
        if code == 0x03:
            bound = r.byte()
            if bound != 0x00:
                raise UnsupportedError("abstract (resource) type imports are not supported")
            return Extern("type", scope.type(r.u32(), r))
        if code == 0x05:
            t = scope.type(r.u32(), r)
            if not isinstance(t, InstanceType):
                raise ValidationError("an instance import or export needs an instance type",
                                      r.offset)
            return Extern("instance", t)
        if code == 0x00:
            r.byte()
            r.u32()
            raise UnsupportedError("importing core modules is not supported yet")
        if code in (0x02, 0x04):
            raise UnsupportedError("component value and component imports are not "
                                   "supported yet")
        raise r.malformed(f"unknown extern type {code:#04x}")

    # canon
    def canons(self, r: _Reader) -> None:
        kind = r.byte()
        if kind == 0x00:
            if r.byte() != 0x00:
                raise r.malformed("canon lift expects a core func")
            core = r.u32()
            opts = self._opts(r)
            ft = self.scope.type(r.u32(), r)
            if not isinstance(ft, FuncType):
                raise ValidationError("canon lift needs a function type", r.offset)
            have = self._get("core func", core, r)
            self._check_canon(ft, opts, have, "lift", r)
            self._add("func", ft, Step("lift", "func", (core, opts, ft)))
        elif kind == 0x01:
            if r.byte() != 0x00:
                raise r.malformed("canon lower expects a func")
            func = r.u32()
            opts = self._opts(r)
            ft = self._get("func", func, r)
            params, results = core_signature(ft, "lower")
            core_ft = CoreFuncType(tuple(params), tuple(results))
            self._check_canon(ft, opts, core_ft, "lower", r)
            self._add("core func", core_ft, Step("lower", "core func", (func, opts, ft)))
        else:
            raise UnsupportedError(f"canonical built-in {kind:#04x} (resources, async, "
                                   "threads) is not supported yet")

    def _opts(self, r: _Reader) -> CanonOpts:
        enc, mem, realloc, post = "utf8", None, None, None
        for _ in range(r.u32()):
            code = r.byte()
            if code in ENCODINGS:
                enc = ENCODINGS[code]
            elif code == 0x03:
                mem = r.u32()
                self._get("core memory", mem, r)
            elif code == 0x04:
                realloc = r.u32()
                t = self._get("core func", realloc, r)
                want = CoreFuncType((ValType.I32,) * 4, (ValType.I32,))
                if t is not None and t != want:
                    raise ValidationError(f"realloc must have type {want}, not {t}", r.offset)
            elif code == 0x05:
                post = r.u32()
                self._get("core func", post, r)
            elif code in (0x06, 0x07):
                raise UnsupportedError("async canonical options are not supported")
            else:
                raise r.malformed(f"unknown canonical option {code:#04x}")
        return CanonOpts(enc, mem, realloc, post)

    def _check_canon(self, ft: FuncType, opts: CanonOpts, core_ft: Any, how: str,
                     r: _Reader) -> None:
        params, results = core_signature(ft, how)
        want = CoreFuncType(tuple(params), tuple(results))
        if core_ft is not None and core_ft != want:
            raise ValidationError(f"canon {how} of {ft}: the core function has type "
                                  f"{core_ft}, expected {want}", r.offset)
        flat_params = [v for _, t in ft.params for v in flatten(t)]
        flat_results = flatten(ft.result) if ft.result is not None else []
        indirect = len(flat_params) > 16 or len(flat_results) > 1
        in_memory = indirect or any(_uses_memory(t) for _, t in ft.params) or (
            ft.result is not None and _uses_memory(ft.result))
        if in_memory and opts.memory is None:
            raise ValidationError(f"canon {how} of {ft} needs a memory option", r.offset)
        # Lifting allocates for its parameters; lowering for its results.
        allocates = (any(_uses_memory(t) for _, t in ft.params) or len(flat_params) > 16) \
            if how == "lift" else (ft.result is not None and _uses_memory(ft.result))
        if allocates and opts.realloc is None:
            raise ValidationError(f"canon {how} of {ft} needs a realloc option", r.offset)
        if opts.post_return is not None:
            if how != "lift":
                raise ValidationError("post-return is only allowed on canon lift", r.offset)
            t = self.space["core func"][opts.post_return]
            want_post = CoreFuncType(tuple(results), ())
            if t is not None and t != want_post:
                raise ValidationError(f"post-return must have type {want_post}, not {t}",
                                      r.offset)

    # import / export
    def imports_(self, r: _Reader) -> None:
        name = self._name_attributes(r)
        ext = self._externtype(r, self.scope)
        if any(n == name for n, _ in self.imports):
            raise ValidationError(f"duplicate import \"{name}\"", r.offset)
        self.imports.append((name, ext))
        space = ext.sort
        self._add(space, ext.type, Step("import", None if space == "type" else space,
                                        (name,)) if space != "type" else None)

    def exports_(self, r: _Reader) -> None:
        name = self._name_attributes(r)
        sort, idx = self._sortidx(r)
        item_type = self._item_type(sort, idx, r)
        ascribed = r.optional(lambda: self._externtype(r, self.scope))
        if ascribed is not None and ascribed.sort == sort and ascribed.type != item_type:
            raise ValidationError(f"export \"{name}\" is declared {ascribed} but is "
                                  f"{sort} {item_type}", r.offset)
        if name in self.export_names:
            raise ValidationError(f"duplicate export \"{name}\"", r.offset)
        self.export_names.add(name)
        self.exports.append((name, Extern(sort, item_type)))
        if sort == "core module":
            self.modules_exported.append(idx)
        step = Step("export", None if sort == "type" else sort, (name, sort, idx))
        self._add(sort, item_type, step)


def _uses_memory(t: Any) -> bool:
    from .types import despecialize
    t = despecialize(t)
    if isinstance(t, str):
        return t == "string"
    if isinstance(t, List):
        return True
    if isinstance(t, Record):
        return any(_uses_memory(u) for _, u in t.fields)
    if isinstance(t, Variant):
        return any(u is not None and _uses_memory(u) for _, u in t.cases)
    return False


def split_sections(wasm: bytes) -> tuple[list[bytes], list[tuple[int, bytes, int]]]:
    """(the core modules of a component binary, its other sections with their offsets)."""
    if bytes(wasm[:8]) != PREAMBLE:
        if bytes(wasm[:4]) == b"\0asm" and bytes(wasm[4:8]) == b"\x01\x00\x00\x00":
            raise MalformedError("this is a core module, not a component (use Module)", 0)
        raise MalformedError("not a component binary (expected the preamble "
                             "\\0asm 0d 00 01 00)", 0)
    cores, others = [], []
    r = _Reader(bytes(wasm), 0)
    r.pos = 8
    while r.pos < len(r.data):
        start = r.pos
        sid = r.byte()
        n = r.u32()
        if r.pos + n > len(r.data):
            raise MalformedError(f"section {sid} runs past the end", start)
        payload = r.data[r.pos:r.pos + n]
        if sid == 1:
            cores.append(payload)
        elif sid == 4:
            raise UnsupportedError("nested components are not supported yet")
        else:
            others.append((sid, payload, r.pos))
        r.pos += n
    return cores, others


def decode_component(sections: list[tuple[int, bytes, int]], modules: list[Any]
                     ) -> ComponentInfo:
    """Decode and check ``sections`` (``(id, payload, offset)``, core modules left out;
    ``modules`` are the core modules' decoded descriptions, in order)."""
    d = _Decoder(modules)
    for sid, payload, offset in sections:
        d.section(sid, _Reader(payload, offset))
    return ComponentInfo(d.steps, d.imports, d.exports, d.modules_exported)


def core_module_names(sections: list[tuple[int, bytes]]) -> dict[int, str]:
    """Core module index -> name, from the "component-name" custom section (if any).

    Like core name sections, a broken one is ignored."""
    names: dict[int, str] = {}
    for sid, payload in sections:
        if sid != 0:
            continue
        r = _Reader(payload, 0)
        try:
            if r.name() != "component-name":
                continue
            while r.pos < len(r.data):
                sub, size = r.byte(), r.u32()
                end = r.pos + size
                if sub == 1 and r.byte() == 0x00 and r.byte() == 0x11:
                    for _ in range(r.u32()):
                        idx = r.u32()
                        names[idx] = r.name()
                r.pos = end
        except MalformedError:
            return {}
    return names

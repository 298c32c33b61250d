"""Instantiate a compiled component: run its definitions, call its lifted exports.

``ComponentInstance(compiled, info, imports)`` walks ``info.steps`` (from
``decode.decode_component``) with one ``Store``: core modules are
instantiated by the native runtime (all sharing the component's one code
mapping), ``canon lift`` makes a ``LiftedFunc`` (Python values in and out
through the Canonical ABI), ``canon lower`` makes a core host function that
lifts its arguments from linear memory, calls the component function and
lowers the result back.

``imports`` maps each import name to a Python callable (a func import) or to
a mapping of export names to callables (an instance import).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import LinkError, Trap
from ..runtime import Func as CoreFunc
from ..runtime import Instance as CoreInstance
from ..runtime import Store
from ..wasm.module import FuncType as CoreFuncType
from . import canon
from .decode import CanonOpts, ComponentInfo
from .types import Extern, FuncType, InstanceType


class ComponentFunc(ABC):
    """A component-level function; call it with Python values."""

    type: FuncType
    name: str | None = None

    @abstractmethod
    def __call__(self, *args: Any) -> Any:
        ...

    def _check_arity(self, args: tuple) -> None:
        if len(args) != len(self.type.params):
            raise TypeError(f"{self!r} takes {len(self.type.params)} arguments, got "
                            f"{len(args)}")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name or '?'}: {self.type}>"


class HostFunc(ComponentFunc):
    """A function the embedder supplied for a component import."""

    def __init__(self, fn: Callable[..., Any], ft: FuncType, name: str) -> None:
        if not callable(fn):
            raise LinkError(f"import \"{name}\" must be a callable for {ft}, got "
                            f"{type(fn).__name__}")
        self.fn, self.type, self.name = fn, ft, name

    def __call__(self, *args: Any) -> Any:
        self._check_arity(args)
        return self.fn(*args)


class LiftedFunc(ComponentFunc):
    """A core function lifted by ``canon lift``."""

    def __init__(self, owner: ComponentInstance, core: CoreFunc, opts: canon.Options,
                 ft: FuncType) -> None:
        self.owner, self.core, self.opts, self.type = owner, core, opts, ft

    def __call__(self, *args: Any) -> Any:
        self._check_arity(args)
        owner = self.owner
        owner.enter()
        cx = canon.Context(self.opts)
        try:
            flat = canon.lower_args(cx, self.type, args)
            results = self.core.call_raw(flat)
            value = canon.lift_results(cx, self.type, results)
            if self.opts.post_return is not None:
                self.opts.post_return.call_raw(results)
        except Trap:
            owner.poisoned = True
            raise
        finally:
            owner.leave()
        return value


class Exports(dict):
    """A component's (or an exported instance's) exports by name; attribute access too."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class ComponentInstance:
    """An instantiated component: ``exports`` maps export names to ``ComponentFunc``,
    ``Exports`` (instances) and modules."""

    def __init__(self, compiled: Any, info: ComponentInfo, imports: Mapping[str, Any] | None,
                 store: Store | None = None, module_factory: Callable[[int], Any] | None = None
                 ) -> None:
        self.compiled = compiled
        self.store = store or Store()
        self.poisoned = False
        self._entered = False
        self._imports = dict(imports or {})
        self._import_types = dict(info.imports)
        self._module_factory = module_factory
        self.core_instances: list[CoreInstance] = []
        self.exports = Exports()
        unknown = sorted(set(self._imports) - set(self._import_types))
        if unknown:
            raise LinkError(f"the component has no import named {unknown[0]!r} (it imports: "
                            f"{', '.join(self._import_types) or 'nothing'})")
        space: dict[str, list[Any]] = {
            k: [] for k in ("core func", "core table", "core memory", "core global",
                            "core instance", "func", "instance")}
        space["core module"] = list(range(len(compiled.modules)))
        for step in info.steps:
            item = getattr(self, "_" + step.op)(space, *step.args)
            if step.space is not None:
                space[step.space].append(item)

    # -- re-entrance ------------------------------------------------------------------

    def enter(self) -> None:
        if self.poisoned:
            raise Trap("cannot_enter", "cannot enter component instance: it trapped "
                                       "earlier")
        if self._entered:
            raise Trap("cannot_enter", "cannot enter component instance: it is already "
                                       "running (re-entrance is not allowed)")
        self._entered = True

    def leave(self) -> None:
        self._entered = False

    # -- steps ----------------------------------------------------------------------

    def _instantiate(self, space: dict, module: int, args: tuple) -> dict[str, Any]:
        compiled = self.compiled.modules[space["core module"][module]]
        given = {name: space["core instance"][i] for name, i in args}
        imports = {}
        for imp in compiled.module.imports:
            imports[(imp.module, imp.name)] = given[imp.module][imp.name]
        inst = CoreInstance(compiled, imports, self.store)
        self.core_instances.append(inst)
        return dict(inst.exports)

    def _core_inline(self, space: dict, *items: tuple[str, str, int]) -> dict[str, Any]:
        return {name: space["core " + sort][idx] for name, sort, idx in items}

    def _core_alias(self, space: dict, instance: int, name: str) -> Any:
        return space["core instance"][instance][name]

    def _import(self, space: dict, name: str) -> Any:
        ext = self._import_types[name]
        if name not in self._imports:
            raise LinkError(f"missing import \"{name}\" ({ext})")
        return self._bind(self._imports[name], ext, name)

    def _bind(self, value: Any, ext: Extern, name: str) -> Any:
        if ext.sort == "func":
            if isinstance(value, ComponentFunc):
                if value.type != ext.type:
                    raise LinkError(f"import \"{name}\" has type {value.type}, expected "
                                    f"{ext.type}")
                return value
            return HostFunc(value, ext.type, name)
        if ext.sort == "instance":
            itype: InstanceType = ext.type
            if not isinstance(value, Mapping):
                raise LinkError(f"import \"{name}\" is an instance: give a mapping of its "
                                f"exports ({', '.join(n for n, _ in itype.exports)})")
            out = Exports()
            for ename, eext in itype.exports:
                if eext.sort == "type":
                    continue
                if ename not in value:
                    raise LinkError(f"missing export \"{ename}\" of import \"{name}\" "
                                    f"({eext})")
                out[ename] = self._bind(value[ename], eext, f"{name}#{ename}")
            return out
        raise LinkError(f"import \"{name}\": {ext.sort} imports are not supported")

    def _options(self, space: dict, opts: CanonOpts) -> canon.Options:
        def core(kind: str, idx: int | None) -> Any:
            return None if idx is None else space[kind][idx]
        return canon.Options(core("core memory", opts.memory), core("core func", opts.realloc),
                             core("core func", opts.post_return), opts.encoding)

    def _lift(self, space: dict, core: int, opts: CanonOpts, ft: FuncType) -> LiftedFunc:
        return LiftedFunc(self, space["core func"][core], self._options(space, opts), ft)

    def _lower(self, space: dict, func: int, opts: CanonOpts, ft: FuncType) -> CoreFunc:
        target: ComponentFunc = space["func"][func]
        options = self._options(space, opts)
        params, results = canon.core_signature(ft, "lower")

        def lowered(bits: list[int]) -> list[int]:
            cx = canon.Context(options)
            args = canon.lift_args(cx, ft, bits)
            return canon.lower_results(cx, ft, target(*args), bits)

        lowered.__name__ = target.name or "lowered"
        return CoreFunc(self.store, CoreFuncType(tuple(params), tuple(results)), lowered,
                        raw=True)

    def _alias(self, space: dict, instance: int, name: str) -> Any:
        return space["instance"][instance][name]

    def _inline(self, space: dict, *items: tuple[str, str, int]) -> Exports:
        return Exports({name: space[sort][idx] for name, sort, idx in items})

    def _export(self, space: dict, name: str, sort: str, idx: int) -> Any:
        if sort == "type":
            return None
        item = space[sort][idx]
        if sort == "core module":
            item = self._module_factory(item) if self._module_factory else item
        elif isinstance(item, ComponentFunc) and item.name is None:
            item.name = name
        self.exports[name] = item
        return space[sort][idx]

    def __repr__(self) -> str:
        return f"<ComponentInstance exports={sorted(self.exports)}>"

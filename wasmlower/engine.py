"""The user-facing API: an Engine compiles Modules, which instantiate into Instances.

    >>> from wasmlower.engine import Engine, Module, Instance
    >>> engine = Engine()
    >>> module = Module(engine, open("examples/fib.wasm", "rb").read())
    >>> Instance(module).exports["fib"](20)
    6765

An Engine wraps a ``Compiler`` (wasmlower.compiler); ``Engine(builder=...)``
takes a configured ``CompilerBuilder``.  A Module can also be created from a
precompiled artifact (``Engine.precompile_module`` / ``Module.serialize``,
then ``Module.deserialize`` / ``Module.deserialize_file``): the ELF object of
docs/ARTIFACT.md, checked against this engine's fingerprint before use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .compiler import Compiler, CompilerBuilder, SettingError, UnsupportedError
from .emit.compiled import CompiledModule
from .errors import ArtifactError
from .pipeline import Options


class Engine:
    """Compilation settings shared by the modules it compiles."""

    def __init__(self, target: str = "x86_64", opt_level: int = 1, *, stress: bool = False,
                 check: bool = False, parallel: bool | None = None, cache: Any = None,
                 builder: CompilerBuilder | None = None) -> None:
        if builder is None:
            if opt_level not in (0, 1, 2):
                raise ValueError(f"opt_level must be 0, 1 or 2, not {opt_level!r}")
            try:
                builder = CompilerBuilder(target)    # AArch64 code runs under emulation
            except SettingError as e:
                raise UnsupportedError(f"target {target!r} is not supported "
                                       f"(supported: x86_64, aarch64): {e}") from None
            builder.set("opt_level", opt_level).set("regalloc_stress", stress)
            builder.set("regalloc_checker", check).set("verify_ir", check)
            if parallel is not None:
                builder.set("parallel_compilation", parallel)
            if cache is not None:
                builder.enable_incremental_compilation(cache)
        self.compiler: Compiler = builder.build()
        values = builder.values()
        self.target = getattr(self.compiler, "arch", "x86_64")
        self.opt_level = values["opt_level"]
        self.stress = values["regalloc_stress"]
        self.check = values["regalloc_checker"] or values["verify_ir"]

    def settings(self) -> dict[str, Any]:
        """The settings that change generated code (part of an artifact's fingerprint)."""
        return self.compiler.code_settings()

    def fingerprint(self) -> dict:
        return self.compiler.fingerprint()

    def options(self, **kw: Any) -> Options:
        return self.compiler.options(**kw)

    def precompile_component(self, wasm: bytes) -> bytes:
        """Compile a component binary's core modules to a component artifact."""
        from .emit.object import write_component_artifact
        return write_component_artifact(self.compiler.compile_component(wasm),
                                        self.fingerprint())

    def precompile_module(self, wasm: bytes) -> bytes:
        """Compile ``wasm`` to an artifact (ELF bytes) that ``Module.deserialize`` loads."""
        return Module(self, wasm).serialize()


class Module:
    """A compiled module; ``data`` is a wasm binary or a wasmlower artifact."""

    def __init__(self, engine: Engine, data: bytes | CompiledModule, *,
                 owner: Component | None = None) -> None:
        self.engine = engine
        self.owner = owner          # the component this core module belongs to, if any
        if isinstance(data, CompiledModule):
            self.compiled = data
        elif bytes(data[:4]) == b"\x7fELF":
            from .emit.object import load_artifact
            self.compiled = load_artifact(data, engine.fingerprint())
        else:
            self.compiled = engine.compiler.compile_module(bytes(data))

    @property
    def stats(self) -> dict[str, float]:
        """Seconds spent in each compilation stage."""
        return self.compiled.stats

    @property
    def module(self):
        """The module description (types, imports, exports, ...)."""
        return self.compiled.module

    def serialize(self) -> bytes:
        from .emit.object import write_artifact
        if self.owner is not None:
            raise ArtifactError("this core module belongs to a component: its code and "
                                "metadata live in the component's artifact; serialize the "
                                "component instead")
        return write_artifact(self.compiled, self.engine.fingerprint())

    @classmethod
    def deserialize(cls, engine: Engine, data: bytes) -> Module:
        from .emit.object import load_artifact
        return cls(engine, load_artifact(data, engine.fingerprint()))

    @classmethod
    def deserialize_file(cls, engine: Engine, path: str | Path) -> Module:
        """Load an artifact file (mapped with ``mmap`` rather than read, where possible)."""
        from .emit.object import load_artifact_file
        return cls(engine, load_artifact_file(path, engine.fingerprint()))


class Component:
    """A compiled component; ``data`` is a component binary or a component artifact.

    All its core modules share one text section (and one artifact).
    ``instantiate(imports)`` links it: ``imports`` maps each import name to a
    Python callable (a function) or a mapping of names to callables (an
    instance); lifted exports are called with Python values through the
    Canonical ABI.

        >>> import wasmtime          # only to turn the component text into a binary
        >>> wasm = wasmtime.wat2wasm('''(component
        ...   (core module $m (func (export "add") (param i32 i32) (result i32)
        ...     (i32.add (local.get 0) (local.get 1))))
        ...   (core instance $i (instantiate $m))
        ...   (func (export "add") (param "a" u32) (param "b" u32) (result u32)
        ...     (canon lift (core func $i "add"))))''')
        >>> Component(Engine(), wasm).instantiate().exports["add"](2, 3)
        5
    """

    def __init__(self, engine: Engine, data: bytes | Any) -> None:
        from .component.decode import decode_component
        from .emit.object import CompiledComponent, load_artifact
        self.engine = engine
        if isinstance(data, CompiledComponent):
            self.compiled = data
        elif bytes(data[:4]) == b"\x7fELF":
            self.compiled = load_artifact(data, engine.fingerprint(), kind="component")
        else:
            self.compiled = engine.compiler.compile_component(bytes(data))
        self.modules = [Module(engine, m, owner=self) for m in self.compiled.modules]
        self.info = decode_component([(sid, raw, 0) for sid, raw in self.compiled.sections],
                                     [m.module for m in self.compiled.modules])

    @property
    def imports(self) -> dict[str, Any]:
        """Import name -> its ``Extern`` (sort and component type)."""
        return dict(self.info.imports)

    @property
    def exports(self) -> dict[str, Any]:
        """Export name -> its ``Extern`` (sort and component type)."""
        return dict(self.info.exports)

    def instantiate(self, imports: Any = None, store: Any = None) -> Any:
        """A new ``ComponentInstance`` (see ``wasmlower.component.instance``)."""
        from .component.instance import ComponentInstance
        _check_host(self.engine)
        return ComponentInstance(self.compiled, self.info, imports, store,
                                 module_factory=self.modules.__getitem__)

    def serialize(self) -> bytes:
        from .emit.object import write_component_artifact
        return write_component_artifact(self.compiled, self.engine.fingerprint())

    @classmethod
    def deserialize(cls, engine: Engine, data: bytes) -> Component:
        from .emit.object import load_artifact
        return cls(engine, load_artifact(data, engine.fingerprint(), kind="component"))

    @classmethod
    def deserialize_file(cls, engine: Engine, path: str | Path) -> Component:
        from .emit.object import load_artifact_file
        return cls(engine, load_artifact_file(path, engine.fingerprint(), kind="component"))


def _check_host(engine: Engine) -> None:
    if not getattr(engine, "_host_checked", False):
        from .compiler import check_host
        if engine.target != "aarch64":   # AArch64 code runs under emulation (runtime/emulated.py)
            check_host(engine.compiler)      # the code must be able to run on this CPU
        engine._host_checked = True


def Instance(module: Module | Component, imports: Any = None, store: Any = None) -> Any:
    """Instantiate ``module``; ``imports`` maps ``(module, name)`` to externs.

    A ``Component`` instantiates to a ``ComponentInstance`` (imports by name)."""
    from .runtime import Instance as RuntimeInstance
    if isinstance(module, Component):
        return module.instantiate(imports, store)
    _check_host(module.engine)
    return RuntimeInstance(module.compiled, imports, store)

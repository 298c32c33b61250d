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
                if str(target).split("-", 1)[0] in ("aarch64", "arm64"):
                    # AArch64: its own builder; the code runs under emulation.
                    from .isa.aarch64 import emulated_builder
                    builder = emulated_builder(target) or CompilerBuilder(target)
                else:
                    builder = CompilerBuilder(target)
            except (SettingError, ImportError) as e:
                raise UnsupportedError(f"target {target!r} is not supported yet "
                                       f"(supported: x86_64): {e}") from None
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

    def __init__(self, engine: Engine, data: bytes | CompiledModule) -> None:
        self.engine = engine
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
    """A compiled component: its core modules (``modules``, one ``Module`` each, sharing
    one code mapping's text).  Instantiating the component itself (canonical ABI,
    component imports/exports) is not supported yet; core modules instantiate."""

    def __init__(self, engine: Engine, data: bytes | Any) -> None:
        from .emit.object import CompiledComponent, load_artifact
        self.engine = engine
        if isinstance(data, CompiledComponent):
            self.compiled = data
        elif bytes(data[:4]) == b"\x7fELF":
            self.compiled = load_artifact(data, engine.fingerprint(), kind="component")
        else:
            self.compiled = engine.compiler.compile_component(bytes(data))
        self.modules = [Module(engine, m) for m in self.compiled.modules]

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


def Instance(module: Module, imports: Any = None, store: Any = None):
    """Instantiate ``module``; ``imports`` maps ``(module, name)`` to externs."""
    from .runtime import Instance as RuntimeInstance
    engine = module.engine
    if not getattr(engine, "_host_checked", False):
        from .compiler import check_host
        if engine.target != "aarch64":   # AArch64 code runs under emulation (runtime/emulated.py)
            check_host(engine.compiler)      # the code must be able to run on this CPU
        engine._host_checked = True
    return RuntimeInstance(module.compiled, imports, store)

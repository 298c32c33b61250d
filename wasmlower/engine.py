"""The user-facing API: an Engine compiles Modules, which instantiate into Instances.

    >>> from wasmlower.engine import Engine, Module, Instance
    >>> engine = Engine()
    >>> module = Module(engine, open("examples/fib.wasm", "rb").read())
    >>> Instance(module).exports["fib"](20)
    6765

A Module can also be created from a compiled artifact (``Module.serialize``
/ ``Module.deserialize``): the ELF object written by ``wasmlower compile``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .emit.compiled import CompiledModule
from .pipeline import Options, compile_module


class Engine:
    """Compilation settings shared by the modules it compiles."""

    def __init__(self, target: str = "x86_64", opt_level: int = 1, *, stress: bool = False,
                 check: bool = False) -> None:
        if target not in ("x86_64", "x64"):
            from .errors import CompileError
            raise CompileError(f"target {target!r} is not supported yet (supported: x86_64)")
        if opt_level not in (0, 1, 2):
            raise ValueError(f"opt_level must be 0, 1 or 2, not {opt_level!r}")
        self.target = "x86_64"
        self.opt_level = opt_level
        self.stress = stress
        self.check = check

    def settings(self) -> dict[str, Any]:
        """The settings that change generated code (part of an artifact's fingerprint)."""
        return {"opt_level": self.opt_level, "stress": self.stress}

    def options(self, **kw: Any) -> Options:
        return Options(target=self.target, opt_level=self.opt_level, stress=self.stress,
                       check=self.check, **kw)

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
            from .emit.object import from_object
            self.compiled = from_object(bytes(data), engine.target, engine.settings())
        else:
            self.compiled = compile_module(bytes(data), engine.options())

    @property
    def stats(self) -> dict[str, float]:
        """Seconds spent in each compilation stage."""
        return self.compiled.stats

    @property
    def module(self):
        """The decoded module description (types, imports, exports, ...)."""
        return self.compiled.module

    def serialize(self) -> bytes:
        from .emit.object import to_object
        return to_object(self.compiled, self.compiled.wasm, self.engine.settings())

    @classmethod
    def deserialize(cls, engine: Engine, data: bytes) -> Module:
        from .emit.object import from_object
        return cls(engine, from_object(bytes(data), engine.target, engine.settings()))

    @classmethod
    def deserialize_file(cls, engine: Engine, path: str | Path) -> Module:
        return cls.deserialize(engine, Path(path).read_bytes())


def Instance(module: Module, imports: Any = None, store: Any = None):
    """Instantiate ``module``; ``imports`` maps ``(module, name)`` to externs."""
    from .runtime import Instance as RuntimeInstance
    return RuntimeInstance(module.compiled, imports, store)

"""The AArch64 back end (docs/AARCH64.md); its code runs under emulation on other hosts.

``emulated_builder(target)`` gives the ``Engine`` a builder for this target
with the part of ``compiler.CompilerBuilder``'s interface the engine uses
(``set``, ``values``, ``enable_incremental_compilation``, ``build``); the
compiler it builds runs ``pipeline.compile_module`` with ``target="aarch64"``.
"""

from __future__ import annotations

from typing import Any

TRIPLE = "aarch64-unknown-linux-gnu"
_NAMES = ("aarch64", "arm64", "aarch64-unknown-linux-gnu", "aarch64-linux-gnu")


class Aarch64Compiler:
    """Compiles modules to AArch64 code (serially, without an incremental cache)."""

    arch = "aarch64"

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = dict(values)
        self.cache = None
        self.stats: dict[str, int] = {"functions_compiled": 0}

    def triple(self) -> str:
        return TRIPLE

    def code_settings(self) -> dict[str, Any]:
        return {"opt_level": self._values["opt_level"],
                "regalloc_stress": self._values["regalloc_stress"]}

    def fingerprint(self) -> dict:
        from ...emit.object import fingerprint
        try:
            from ...compiler import FEATURES
            features = list(FEATURES)
        except ImportError:  # pragma: no cover - older tree
            features = None
        return fingerprint(TRIPLE, self.code_settings(), features)

    def options(self, **kw: Any):
        from ...pipeline import Options
        v = self._values
        return Options(target="aarch64", opt_level=v["opt_level"], stress=v["regalloc_stress"],
                       check=bool(v["regalloc_checker"] or v["verify_ir"]), **kw)

    def compile_module(self, wasm: bytes):
        from ...pipeline import compile_module
        compiled = compile_module(bytes(wasm), self.options())
        self.stats["functions_compiled"] += len(compiled.functions)
        return compiled


class Aarch64Builder:
    def __init__(self) -> None:
        self._values: dict[str, Any] = {"opt_level": 1, "regalloc_stress": False,
                                        "regalloc_checker": False, "verify_ir": False}

    def set(self, name: str, value: Any) -> Aarch64Builder:
        self._values[name] = value
        return self

    def values(self) -> dict[str, Any]:
        return dict(self._values)

    def enable_incremental_compilation(self, cache_store: Any) -> Aarch64Builder:
        return self                     # not supported: every function is compiled

    def build(self) -> Aarch64Compiler:
        return Aarch64Compiler(self._values)


def emulated_builder(target: Any) -> Aarch64Builder | None:
    """A builder for ``target`` if it names AArch64, else None."""
    return Aarch64Builder() if target in _NAMES else None

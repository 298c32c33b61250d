"""What the back end hands to the object writer and the runtime.

A ``CompiledModule`` is everything needed to instantiate and run a module:
its decoded description, one text blob holding every function, trampoline
and the trap routine, and per-function records (location, address map, trap
sites).  The object writer turns it into an ELF file and back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..wasm.module import FuncType, Module


@dataclass
class CompiledFunction:
    index: int                               # function index (imports first)
    name: str
    offset: int                              # start in ``text``
    size: int
    addrmap: list[tuple[int, int]] = field(default_factory=list)  # (text offset, wasm offset)
    traps: list[tuple[int, str]] = field(default_factory=list)    # (offset after the trap call, kind)


@dataclass
class CompiledModule:
    module: Module
    text: bytes
    functions: list[CompiledFunction]
    # (text offset, relocation type, target text offset, addend)
    relocs: list[tuple[int, str, int, int]]
    host_to_wasm: dict[FuncType, int]
    wasm_to_host: dict[FuncType, int]
    trap_routine: int
    libcall_names: tuple[str, ...]
    target: str = "x86_64"
    wasm: bytes = b""                   # the binary it was compiled from (module metadata)
    stats: dict[str, float] = field(default_factory=dict)   # seconds per pipeline stage
    # The component whose text this module shares (its code is mapped once for all).
    shared: Any = field(default=None, repr=False, compare=False)
    # The text mapped executable from an artifact file (runtime.native.FileText), if any.
    file_text: Any = field(default=None, repr=False, compare=False)

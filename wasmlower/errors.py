"""The exception family of wasmlower.

Every error a user can cause is one of these, with a location a person can
act on: a byte offset into the wasm binary, or ``file:line:col`` in a rule
file.  Nothing else escapes the public API for bad input.
"""

from __future__ import annotations


class WasmlowerError(Exception):
    """Base of every error raised by wasmlower."""


class CompileError(WasmlowerError):
    """The module could not be compiled."""


class WasmError(CompileError):
    """The wasm input is at fault; ``offset`` is the byte offset in the binary."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        self.message = message
        self.offset = offset
        where = f"at offset {offset:#x}: " if offset is not None else ""
        super().__init__(f"{where}{message}")


class MalformedError(WasmError):
    """The binary does not follow the wasm binary format (spec: "malformed")."""


class ValidationError(WasmError):
    """The module is well-formed but not valid (spec: "invalid")."""


class CodegenError(CompileError):
    """The compiler itself could not handle valid input (a bug or a limit)."""


class RuleError(CompileError):
    """A rule file is broken; ``file``, ``line`` and ``col`` locate it."""

    def __init__(self, message: str, file: str = "<rules>", line: int = 0, col: int = 0,
                 source_line: str | None = None, hint: str | None = None) -> None:
        self.message, self.file, self.line, self.col = message, file, line, col
        self.source_line, self.hint = source_line, hint
        text = f"{file}:{line}:{col}: {message}"
        if source_line is not None:
            text += f"\n  {source_line}\n  {' ' * max(col - 1, 0)}^"
        if hint:
            text += f"\n  hint: {hint}"
        super().__init__(text)


class UnsupportedError(CompileError):
    """Valid input the compiler cannot handle yet: a target, a setting value, or a
    component-model feature beyond what is implemented."""


class LinkError(WasmlowerError):
    """Instantiation failed: a missing or mistyped import, or a segment out of bounds."""


class ArtifactError(WasmlowerError):
    """A compiled artifact is damaged, or was made by another version/target/setting."""


class Trap(WasmlowerError):
    """Running wasm trapped.

    ``kind`` is the trap code's name (``"unreachable"``, ``"heap_oob"``, ...),
    ``message`` the spec's wording, ``backtrace`` a list of frames
    ``(function_index, function_name, wasm_offset)``, innermost first.
    """

    def __init__(self, kind: str, message: str,
                 backtrace: list[tuple[int, str | None, int | None]] | None = None) -> None:
        self.kind, self.message = kind, message
        self.backtrace = backtrace or []
        text = message
        for index, name, offset in self.backtrace:
            where = f"{offset:#x}" if offset is not None else "?"
            text += f"\n  at {name or f'func[{index}]'} (wasm offset {where})"
        super().__init__(text)


class ExhaustionError(Trap):
    """The call stack was exhausted (``assert_exhaustion``)."""

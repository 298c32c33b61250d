"""Resolve the relocations of a text section against itself.

Every relocation wasmlower emits is a call or reference from one place in a
text section to another place in the same section (``(offset, kind, target,
addend)``, offsets into the text), so the text can be resolved once: when an
artifact is written (its file then holds final code that can be mapped
executable as it is) and when code that never went through a file is mapped.
The relocation entries stay in the ELF file for other tools.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import ArtifactError

PC32 = ("R_X86_64_PLT32", "R_X86_64_PC32")
CALL26 = "R_AARCH64_CALL26"


def apply_relocs(text: bytes | bytearray, relocs: Iterable[tuple[int, str, int, int]]) -> bytes:
    """``text`` with every relocation resolved; ``ArtifactError`` names a bad one."""
    out = bytearray(text)
    for offset, kind, target, addend in relocs:
        if not (0 <= offset <= len(out) - 4 and 0 <= target <= len(out)):
            raise ArtifactError(f"relocation at {offset:#x} -> {target:#x} is outside the text")
        delta = target + addend - offset
        if kind in PC32:
            if not -(1 << 31) <= delta < (1 << 31):
                raise ArtifactError(f"relocation at {offset:#x} does not fit in 32 bits")
            out[offset:offset + 4] = delta.to_bytes(4, "little", signed=True)
        elif kind == CALL26:
            if delta % 4 or not -(1 << 27) <= delta < (1 << 27):
                raise ArtifactError(f"relocation at {offset:#x} does not fit a bl")
            insn = int.from_bytes(out[offset:offset + 4], "little") & 0xFC000000
            out[offset:offset + 4] = (insn | ((delta >> 2) & 0x3FFFFFF)).to_bytes(4, "little")
        else:
            raise ArtifactError(f"unsupported relocation type {kind!r} at {offset:#x}")
    return bytes(out)

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


Reloc = tuple[int, str, int, int]


def call_reloc(arch: str, at: int, target: int) -> Reloc:
    """The relocation of a direct call whose field is at ``at`` (x86-64: the rel32
    after the ``call`` opcode; AArch64: the ``bl`` instruction itself)."""
    return (at, CALL26, target, 0) if arch == "aarch64" else (at, PC32[0], target, -4)


def resolve(text: bytearray, reloc: Reloc) -> None:
    """Resolve one relocation in place; ``ArtifactError`` if it cannot be."""
    offset, kind, target, addend = reloc
    if not (0 <= offset <= len(text) - 4 and 0 <= target <= len(text)):
        raise ArtifactError(f"relocation at {offset:#x} -> {target:#x} is outside the text")
    delta = target + addend - offset
    if kind in PC32:
        if not -(1 << 31) <= delta < (1 << 31):
            raise ArtifactError(f"relocation at {offset:#x} does not fit in 32 bits")
        text[offset:offset + 4] = delta.to_bytes(4, "little", signed=True)
    elif kind == CALL26:
        if delta % 4 or not -(1 << 27) <= delta < (1 << 27):
            raise ArtifactError(f"relocation at {offset:#x} does not fit a bl")
        insn = 0x94000000                # bl
        text[offset:offset + 4] = (insn | ((delta >> 2) & 0x3FFFFFF)).to_bytes(4, "little")
    else:
        raise ArtifactError(f"unsupported relocation type {kind!r} at {offset:#x}")


def apply_relocs(text: bytes | bytearray, relocs: Iterable[Reloc]) -> bytes:
    """``text`` with every relocation resolved; ``ArtifactError`` names a bad one."""
    out = bytearray(text)
    for reloc in relocs:
        resolve(out, reloc)
    return bytes(out)


def padding(arch: str) -> bytes:
    """The byte that fills gaps in a text section: ``int3`` on x86-64, zero (``udf``)
    on AArch64."""
    return b"\x00" if arch == "aarch64" else b"\xcc"

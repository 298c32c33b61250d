"""Encoding through keystone, instruction boundaries through capstone.

keystone takes a whole function's assembly text in one call (about 15x
faster than one call per instruction) and resolves local labels itself.
It reports no instruction offsets, so ``boundaries`` recovers them by
disassembling the result with capstone; the emitter zips them with the
instructions it rendered.  Symbols keystone cannot resolve (calls to other
functions) resolve to a placeholder and become relocations.
"""

from __future__ import annotations

import re

from ..errors import CodegenError

# keystone reads bare numbers as hexadecimal once a symbol resolver is set
# (measured: "sub rsp, 24" became 0x24), so every decimal literal is
# rewritten as 0x hex before assembling.  Register names (r15, xmm15),
# labels (.Ll12, func_3) and hex literals are left alone by the lookarounds.
_DECIMAL = re.compile(r"(?<![\w.$])(\d+)(?!\w)")


def _hex(m: re.Match) -> str:
    return hex(int(m.group(1)))

_KS: dict[str, object] = {}
_CS: dict[str, object] = {}
PLACEHOLDER = 0x7FFF0000      # where unresolved symbols point until relocated


def _ks(arch: str):
    ks = _KS.get(arch)
    if ks is None:
        import keystone
        if arch == "x86_64":
            ks = keystone.Ks(keystone.KS_ARCH_X86, keystone.KS_MODE_64)
        else:
            ks = keystone.Ks(keystone.KS_ARCH_ARM64, keystone.KS_MODE_LITTLE_ENDIAN)

        def resolve(symbol, value) -> bool:
            value[0] = PLACEHOLDER
            return True
        ks.sym_resolver = resolve
        _KS[arch] = ks
    return ks


def assemble(text: str, arch: str = "x86_64") -> bytes:
    """Assemble ``text`` at address 0; raise CodegenError with the text on failure."""
    import keystone
    try:
        enc, _ = _ks(arch).asm(_DECIMAL.sub(_hex, text).encode(), 0)
    except keystone.KsError as e:
        numbered = "\n".join(f"{i + 1:4}: {line}" for i, line in enumerate(text.splitlines()))
        raise CodegenError(f"keystone rejected the assembly: {e}\n{numbered}") from None
    return bytes(enc or b"")


def assemble_labeled(text: str, labels: list[str], arch: str = "x86_64",
                     align: int = 16) -> tuple[bytes, dict[str, int]]:
    """Assemble chunks that each start with one of ``labels``; return their offsets."""
    chunks: list[str] = []
    starts = [i for i, line in enumerate(text.splitlines()) if line.rstrip(":") in labels
              and line.endswith(":")]
    lines = text.splitlines()
    for a, b in zip(starts, starts[1:] + [len(lines)]):
        chunks.append("\n".join(lines[a:b]))
    out = bytearray()
    offsets: dict[str, int] = {}
    for chunk in chunks:
        out += b"\xcc" * (-len(out) % align)
        offsets[chunk.split(":", 1)[0]] = len(out)
        out += assemble(chunk, arch)
    return bytes(out), offsets


def boundaries(code: bytes, arch: str = "x86_64") -> list[tuple[int, int]]:
    """(offset, size) of every instruction in ``code``."""
    md = _CS.get(arch)
    if md is None:
        import capstone
        if arch == "x86_64":
            md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
        else:
            md = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
            md.skipdata = True          # step over literal-pool words (isa/aarch64/emit.py)
        _CS[arch] = md
    out = [(addr, size) for addr, size, _, _ in md.disasm_lite(code, 0)]
    if out and out[-1][0] + out[-1][1] != len(code):
        raise CodegenError("capstone could not decode the whole function")
    return out


def disassemble(code: bytes, arch: str = "x86_64", base: int = 0) -> list[tuple[int, str]]:
    boundaries(b"", arch)
    md = _CS[arch]
    return [(a, f"{m} {o}".strip()) for a, _, m, o in md.disasm_lite(code, base)]

"""A compiled module as an ELF relocatable object, and back.

Sections (docs/ARTIFACT.md): ``.text`` (all functions and trampolines, with
one symbol per function and ``R_X86_64_PLT32`` relocations for direct
calls), and metadata: ``.wasmlower.funcs`` (JSON: per-function index, name,
location, traps), ``.wasmlower.addrmap`` (u32 pairs: code offset, wasm
offset), ``.wasmlower.module`` (the wasm binary the code came from, for the
module's types, imports, exports and segments), ``.wasmlower.engine`` (the
fingerprint: version, target, settings) and ``.wasmlower.digest`` (sha256 of
every other section, checked before anything is mapped).
"""

from __future__ import annotations

import hashlib
import json
import struct

from ..errors import ArtifactError
from .compiled import CompiledFunction, CompiledModule
from .elf import Reloc, Section, Symbol, read_object, write_object

OS_ABI = 0x57               # ours: "W"
E_FLAGS_MODULE = 0
E_FLAGS_COMPONENT = 1
_META = (".wasmlower.funcs", ".wasmlower.addrmap", ".wasmlower.module", ".wasmlower.engine")


def fingerprint(target: str, settings: dict | None = None) -> dict:
    from .. import __version__
    return {"version": __version__, "target": target, "settings": settings or {}}


def _digest(sections: dict[str, bytes]) -> bytes:
    h = hashlib.sha256()
    for name in (".text", *_META):
        data = sections.get(name, b"")
        h.update(name.encode() + b"\0" + struct.pack("<Q", len(data)) + data)
    return h.digest()


def to_object(compiled: CompiledModule, wasm: bytes, settings: dict | None = None) -> bytes:
    """Write ``compiled`` as an ELF object; ``wasm`` is the module's binary."""
    by_offset = {f.offset: f for f in compiled.functions}
    symbols = [Symbol(f"func_{f.index}" if not f.name else _symbol_name(f), ".text", f.offset,
                      f.size) for f in compiled.functions]
    names = {f.offset: s.name for f, s in zip(compiled.functions, symbols)}
    relocs = [Reloc(".text", off, kind, names[target], addend)
              for off, kind, target, addend in compiled.relocs if target in by_offset]
    funcs = {
        "functions": [{"index": f.index, "name": f.name, "offset": f.offset, "size": f.size,
                       "traps": f.traps, "addrmap": [len(f.addrmap)]}
                      for f in compiled.functions],
        "host_to_wasm": [[list(_sig(ft)), off] for ft, off in compiled.host_to_wasm.items()],
        "wasm_to_host": [[list(_sig(ft)), off] for ft, off in compiled.wasm_to_host.items()],
        "trap_routine": compiled.trap_routine,
        "libcalls": list(compiled.libcall_names),
    }
    addrmap = b"".join(struct.pack("<II", a, w) for f in compiled.functions
                       for a, w in f.addrmap)
    contents = {
        ".text": compiled.text,
        ".wasmlower.funcs": json.dumps(funcs, separators=(",", ":")).encode(),
        ".wasmlower.addrmap": addrmap,
        ".wasmlower.module": wasm,
        ".wasmlower.engine": json.dumps(fingerprint(compiled.target, settings),
                                        sort_keys=True).encode(),
    }
    contents[".wasmlower.digest"] = _digest(contents)
    sections = [Section(".text", compiled.text, flags="ax", align=16)]
    sections += [Section(n, contents[n], align=8) for n in (*_META, ".wasmlower.digest")]
    return write_object("x86_64" if compiled.target in ("x86_64", "x64") else compiled.target,
                        sections, symbols, relocs, os_abi=OS_ABI, e_flags=E_FLAGS_MODULE)


def _symbol_name(f: CompiledFunction) -> str:
    safe = "".join(c if c.isalnum() or c in "_.$" else "_" for c in f.name)
    return f"wasm_{f.index}_{safe}" if safe else f"func_{f.index}"


def _sig(ft) -> tuple[str, str]:
    return ("".join(p.value + "," for p in ft.params),
            "".join(r.value + "," for r in ft.results))


def from_object(data: bytes, target: str = "x86_64", settings: dict | None = None
                ) -> CompiledModule:
    """Read an artifact back, checking integrity and the fingerprint first."""
    obj = read_object(data)
    if obj.os_abi != OS_ABI:
        raise ArtifactError(f"not a wasmlower artifact (ELF OS/ABI {obj.os_abi:#x}, "
                            f"expected {OS_ABI:#x})")
    missing = [n for n in (".text", *_META, ".wasmlower.digest") if n not in obj.sections]
    if missing:
        raise ArtifactError(f"artifact lacks section(s) {', '.join(missing)}")
    if _digest(obj.sections) != obj.sections[".wasmlower.digest"]:
        raise ArtifactError("artifact is corrupted: its sections do not match their digest")
    try:
        engine = json.loads(obj.sections[".wasmlower.engine"])
        funcs = json.loads(obj.sections[".wasmlower.funcs"])
    except ValueError as e:
        raise ArtifactError(f"artifact metadata is not valid JSON: {e}") from None
    expected = fingerprint(target, settings)
    for key in ("version", "target", "settings"):
        if engine.get(key) != expected[key]:
            raise ArtifactError(f"artifact was compiled with a different {key}: "
                                f"{engine.get(key)!r}, this engine has {expected[key]!r}")
    from ..wasm import decode_module
    from ..wasm.module import FuncType, ValType
    module = decode_module(obj.sections[".wasmlower.module"])

    def sig(pair) -> FuncType:
        return FuncType(tuple(ValType(t) for t in pair[0].split(",") if t),
                        tuple(ValType(t) for t in pair[1].split(",") if t))
    raw = obj.sections[".wasmlower.addrmap"]
    pairs = [struct.unpack_from("<II", raw, i) for i in range(0, len(raw) - len(raw) % 8, 8)]
    functions = []
    pos = 0
    for f in funcs["functions"]:
        n = f["addrmap"][0]
        functions.append(CompiledFunction(f["index"], f["name"], f["offset"], f["size"],
                                          [tuple(p) for p in pairs[pos:pos + n]],
                                          [tuple(t) for t in f["traps"]]))
        pos += n
    offsets = {s.name: s.value for s in obj.symbols if s.section == ".text"}
    relocs = [(r.offset, r.type, offsets[r.symbol], r.addend) for r in obj.relocs
              if r.symbol in offsets]
    return CompiledModule(module, obj.sections[".text"], functions, relocs,
                          {sig(s): off for s, off in funcs["host_to_wasm"]},
                          {sig(s): off for s, off in funcs["wasm_to_host"]},
                          funcs["trap_routine"], tuple(funcs["libcalls"]), target,
                          obj.sections[".wasmlower.module"])

"""Precompiled artifacts: a compiled module as an ELF64 relocatable object, and back.

The format is described in docs/ARTIFACT.md.  In short: an ``ET_REL`` object with
the real ``e_machine``, OS/ABI ``OS_ABI`` and ``e_flags`` telling a module from a
component; ``.text`` holds every function and trampoline (one ``STT_FUNC``
symbol each, ``R_X86_64_PLT32`` relocations for direct calls), and metadata
sections, all encoded by us (little-endian, no pickles):

- ``.wasmlower.engine``: the engine fingerprint (JSON: format, package version,
  target, code-affecting settings, features, trap-code table);
- ``.wasmlower.info``: the module description instantiation needs (types,
  imports, functions, tables, memories, globals with their init expressions,
  exports, start, element and data segments, names) -- the wasm binary itself
  is not stored and loading never decodes wasm;
- ``.wasmlower.funcs``: function locations (index, text offset, size, start
  source location, number of trap sites and address-map entries, name);
- ``.wasmlower.traps``: trap sites (text offset after the trap call, trap code);
- ``.wasmlower.addrmap``: address map (text offset, wasm offset) pairs;
- ``.wasmlower.trampolines``: host-to-wasm/wasm-to-host trampoline per
  signature, the trap routine, the libcall table's names;
- ``.wasmlower.digest``: SHA-256 of the whole file with these 32 bytes zeroed.

A component artifact (``e_flags`` 1, ``write_component_artifact``) holds the core
modules of a component in one ``.text``; its info/funcs/traps/addrmap sections
hold one blob per module and ``.wasmlower.component`` the component's other
sections, raw.

Loading (``load_artifact``) parses the ELF header and section table with
bounds checks, verifies the digest, then compares fingerprints, and only then
decodes the metadata; nothing is mapped executable before all checks passed.
Every problem raises ``ArtifactError``.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ArtifactError
from .compiled import CompiledFunction, CompiledModule
from .elf import MACHINES, Reloc, Section, Symbol, write_object
from .relocs import apply_relocs, padding

OS_ABI = 0x57               # ours: "W"
E_FLAGS_MODULE = 0
TEXT_FILE_ALIGN = 0x1000    # .text starts on a page of the file (mappable in place)
E_FLAGS_COMPONENT = 1
FORMAT_VERSION = 1
KINDS = {"module": E_FLAGS_MODULE, "component": E_FLAGS_COMPONENT}

SEC_TEXT = ".text"
SEC_ENGINE = ".wasmlower.engine"
SEC_INFO = ".wasmlower.info"
SEC_FUNCS = ".wasmlower.funcs"
SEC_TRAPS = ".wasmlower.traps"
SEC_ADDRMAP = ".wasmlower.addrmap"
SEC_TRAMPOLINES = ".wasmlower.trampolines"
SEC_DIGEST = ".wasmlower.digest"
SEC_COMPONENT = ".wasmlower.component"
META_SECTIONS = (SEC_ENGINE, SEC_INFO, SEC_FUNCS, SEC_TRAPS, SEC_ADDRMAP, SEC_TRAMPOLINES)
REQUIRED = (SEC_TEXT, *META_SECTIONS, SEC_DIGEST)
DIGEST_SIZE = 32

TRIPLES = {"x86_64": "x86_64-unknown-linux-gnu", "aarch64": "aarch64-unknown-linux-gnu"}
_RELOC_NAMES = {"x86_64": {2: "R_X86_64_PC32", 4: "R_X86_64_PLT32"},
                "aarch64": {283: "R_AARCH64_CALL26"}}


def machine_of(target: str) -> str:
    """The ELF machine name of a target (``x86_64``, ``x64`` or a triple)."""
    arch = target.split("-", 1)[0]
    arch = {"x64": "x86_64", "arm64": "aarch64"}.get(arch, arch)
    if arch not in MACHINES:
        raise ArtifactError(f"unknown target {target!r}")
    return arch


_BACKEND_DIRS = {"x86_64": "x64", "aarch64": "aarch64"}
_BACKEND_HASHES: dict[str, str] = {}


def backend_hash(machine: str) -> str:
    """A hash of the code generators: the back end's rule files and code
    (``wasmlower/isa/<isa>``), the code all ISAs share (``wasmlower/isa/*.py``)
    and the mid-end rules (``wasmlower/ir/rules``).

    Artifacts embed what the back end generated (memory strategy, frame layout,
    trap sites), so two builds of one version with different rules must not
    share artifacts or cache entries.  Computed once per process.
    """
    if machine not in _BACKEND_HASHES:
        package = Path(__file__).resolve().parents[1]
        roots = (package / "isa" / _BACKEND_DIRS.get(machine, machine), package / "isa",
                 package / "ir" / "rules")
        h = hashlib.sha256()
        files = [p for root in roots
                 for p in sorted(root.glob("*")) if p.suffix in (".py", ".rules")]
        for p in files:
            h.update(str(p.relative_to(package)).encode() + b"\0" + p.read_bytes())
        _BACKEND_HASHES[machine] = h.hexdigest()[:16] if files else "none"
    return _BACKEND_HASHES[machine]


def fingerprint(target: str, settings: dict | None = None,
                features: list[str] | None = None) -> dict:
    """What must match between the engine that wrote an artifact and the one loading it."""
    from .. import __version__
    from ..ir.ops import TRAP_CODES
    machine = machine_of(target)
    return {"format": FORMAT_VERSION, "version": __version__,
            "target": TRIPLES.get(machine, target), "backend": backend_hash(machine),
            "settings": dict(sorted((settings or {}).items())),
            "features": sorted(features or []),
            "trap_codes": dict(TRAP_CODES)}


# --- little-endian byte codec --------------------------------------------------------


class _Out:
    def __init__(self) -> None:
        self.buf = bytearray()

    def u8(self, v: int) -> None:
        self.buf.append(v)

    def u32(self, v: int) -> None:
        self.buf += struct.pack("<I", v)

    def u64(self, v: int) -> None:
        self.buf += struct.pack("<Q", v)

    def i64(self, v: int) -> None:
        self.buf += struct.pack("<q", v)

    def blob(self, b: bytes) -> None:
        self.u32(len(b))
        self.buf += b

    def str(self, s: str) -> None:
        self.blob(s.encode("utf-8"))


class _In:
    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def _take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ArtifactError(f"{self.what}: truncated at byte {self.pos} "
                                f"(need {n}, have {len(self.data) - self.pos})")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def u8(self) -> int:
        return self._take(1)[0]

    def u32(self) -> int:
        return struct.unpack("<I", self._take(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self._take(8))[0]

    def i64(self) -> int:
        return struct.unpack("<q", self._take(8))[0]

    def count(self, unit: int = 1) -> int:
        n = self.u32()
        if n * unit > len(self.data) - self.pos:
            raise ArtifactError(f"{self.what}: count {n} at byte {self.pos - 4} exceeds the data")
        return n

    def blob(self) -> bytes:
        return bytes(self._take(self.count()))

    def str(self) -> str:
        try:
            return self.blob().decode("utf-8")
        except UnicodeDecodeError as e:
            raise ArtifactError(f"{self.what}: bad UTF-8 string: {e}") from None

    def end(self) -> None:
        if self.pos != len(self.data):
            raise ArtifactError(f"{self.what}: {len(self.data) - self.pos} trailing bytes")


# --- module info ------------------------------------------------------------------

_VALTYPES = ("i32", "i64", "f32", "f64", "funcref", "externref")
_EXTERN_KINDS = ("func", "table", "memory", "global")
_SEG_MODES = ("active", "passive", "declarative")
# constant-expression immediates: 0 none, 1 signed 64, 2 unsigned 64, 3 valtype, 4 index
_IMM_NONE, _IMM_S64, _IMM_U64, _IMM_VT, _IMM_IDX = range(5)


def _vt_out(o: _Out, vt: Any) -> None:
    o.u8(_VALTYPES.index(vt.value))


def _vt_in(r: _In) -> Any:
    from ..wasm.module import ValType
    k = r.u8()
    if k >= len(_VALTYPES):
        raise ArtifactError(f"{r.what}: bad value type code {k}")
    return ValType(_VALTYPES[k])


def _limits_out(o: _Out, lim: Any) -> None:
    o.u8(0 if lim.max is None else 1)
    o.u64(lim.min)
    o.u64(lim.max or 0)


def _limits_in(r: _In) -> Any:
    from ..wasm.module import Limits
    has_max, lo, hi = r.u8(), r.u64(), r.u64()
    return Limits(lo, hi if has_max else None)


def _functype_out(o: _Out, ft: Any) -> None:
    o.u32(len(ft.params))
    for t in ft.params:
        _vt_out(o, t)
    o.u32(len(ft.results))
    for t in ft.results:
        _vt_out(o, t)


def _functype_in(r: _In) -> Any:
    from ..wasm.module import FuncType
    params = tuple(_vt_in(r) for _ in range(r.count()))
    results = tuple(_vt_in(r) for _ in range(r.count()))
    return FuncType(params, results)


def _expr_out(o: _Out, expr: list | None) -> None:
    if expr is None:
        o.u8(0)
        return
    o.u8(1)
    o.u32(len(expr))
    for ins in expr:
        o.str(ins.op)
        o.u32(ins.offset or 0)
        imm = ins.imm
        if imm is None:
            o.u8(_IMM_NONE)
        elif hasattr(imm, "value") and isinstance(imm.value, str):
            o.u8(_IMM_VT)
            _vt_out(o, imm)
        elif ins.op in ("f32.const", "f64.const"):
            o.u8(_IMM_U64)
            o.u64(imm)
        elif ins.op in ("i32.const", "i64.const"):
            o.u8(_IMM_S64)
            o.i64(imm)
        elif isinstance(imm, int):
            o.u8(_IMM_IDX)
            o.u32(imm)
        else:
            raise ArtifactError(f"cannot encode constant instruction {ins.op} {imm!r}")


def _expr_in(r: _In) -> list | None:
    from ..wasm.module import Instr
    if not r.u8():
        return None
    out = []
    for _ in range(r.count(6)):
        op, offset, tag = r.str(), r.u32(), r.u8()
        if tag == _IMM_NONE:
            imm: Any = None
        elif tag == _IMM_S64:
            imm = r.i64()
        elif tag == _IMM_U64:
            imm = r.u64()
        elif tag == _IMM_VT:
            imm = _vt_in(r)
        elif tag == _IMM_IDX:
            imm = r.u32()
        else:
            raise ArtifactError(f"{r.what}: bad immediate tag {tag}")
        out.append(Instr(op, imm, offset))
    return out


def encode_module_info(module: Any) -> bytes:
    """Everything of ``module`` instantiation needs, in our own encoding (not wasm)."""
    o = _Out()
    o.u32(len(module.types))
    for ft in module.types:
        _functype_out(o, ft)
    o.u32(len(module.imports))
    for imp in module.imports:
        o.str(imp.module)
        o.str(imp.name)
        o.u8(_EXTERN_KINDS.index(imp.kind))
        d = imp.desc
        if imp.kind == "func":
            o.u32(d)
        elif imp.kind == "table":
            _vt_out(o, d.elem)
            _limits_out(o, d.limits)
        elif imp.kind == "memory":
            _limits_out(o, d.limits)
        else:
            _vt_out(o, d.type)
            o.u8(int(d.mutable))
    o.u32(len(module.funcs))
    for t in module.funcs:
        o.u32(t)
    o.u32(len(module.tables))
    for tt in module.tables:
        _vt_out(o, tt.elem)
        _limits_out(o, tt.limits)
    o.u32(len(module.memories))
    for mt in module.memories:
        _limits_out(o, mt.limits)
    o.u32(len(module.globals))
    for g in module.globals:
        _vt_out(o, g.type.type)
        o.u8(int(g.type.mutable))
        _expr_out(o, g.init)
    o.u32(len(module.exports))
    for ex in module.exports:
        o.str(ex.name)
        o.u8(_EXTERN_KINDS.index(ex.kind))
        o.u32(ex.index)
    o.i64(-1 if module.start is None else module.start)
    o.u32(len(module.elems))
    for seg in module.elems:
        o.u8(_SEG_MODES.index(seg.mode))
        _vt_out(o, seg.type)
        o.u32(seg.table)
        _expr_out(o, seg.offset)
        o.u32(len(seg.init))
        for e in seg.init:
            _expr_out(o, e)
    o.u32(len(module.datas))
    for seg in module.datas:
        o.u8(_SEG_MODES.index(seg.mode))
        o.u32(seg.memory)
        _expr_out(o, seg.offset)
        o.blob(seg.data)
    o.i64(-1 if module.data_count is None else module.data_count)
    o.u32(len(module.func_names))
    for idx, name in sorted(module.func_names.items()):
        o.u32(idx)
        o.str(name)
    return bytes(o.buf)


def decode_module_info(data: bytes) -> Any:
    """The ``wasmlower.wasm.module.Module`` (without code bodies) encoded in ``data``."""
    from ..wasm.module import (
        DataSegment,
        ElemSegment,
        Export,
        Global,
        GlobalType,
        Import,
        MemoryType,
        Module,
        TableType,
    )
    r = _In(data, SEC_INFO)
    m = Module()
    m.types = [_functype_in(r) for _ in range(r.count(8))]
    for _ in range(r.count(9)):
        mod, name, k = r.str(), r.str(), r.u8()
        if k >= len(_EXTERN_KINDS):
            raise ArtifactError(f"{SEC_INFO}: bad import kind {k}")
        kind = _EXTERN_KINDS[k]
        if kind == "func":
            desc: Any = r.u32()
            if desc >= len(m.types):
                raise ArtifactError(f"{SEC_INFO}: import {mod}.{name} has unknown type {desc}")
        elif kind == "table":
            desc = TableType(_vt_in(r), _limits_in(r))
        elif kind == "memory":
            desc = MemoryType(_limits_in(r))
        else:
            desc = GlobalType(_vt_in(r), bool(r.u8()))
        m.imports.append(Import(mod, name, kind, desc))
    m.funcs = [r.u32() for _ in range(r.count(4))]
    if any(t >= len(m.types) for t in m.funcs):
        raise ArtifactError(f"{SEC_INFO}: a function has an unknown type index")
    m.tables = [TableType(_vt_in(r), _limits_in(r)) for _ in range(r.count(18))]
    m.memories = [MemoryType(_limits_in(r)) for _ in range(r.count(17))]
    for _ in range(r.count(3)):
        gt = GlobalType(_vt_in(r), bool(r.u8()))
        m.globals.append(Global(gt, _expr_in(r) or []))
    for _ in range(r.count(9)):
        name, k, idx = r.str(), r.u8(), r.u32()
        if k >= len(_EXTERN_KINDS):
            raise ArtifactError(f"{SEC_INFO}: bad export kind {k}")
        m.exports.append(Export(name, _EXTERN_KINDS[k], idx))
    start = r.i64()
    m.start = None if start < 0 else start
    for _ in range(r.count(11)):
        mode, vt, table, offset = r.u8(), _vt_in(r), r.u32(), _expr_in(r)
        if mode >= len(_SEG_MODES):
            raise ArtifactError(f"{SEC_INFO}: bad element segment mode {mode}")
        init = [_expr_in(r) or [] for _ in range(r.count(1))]
        m.elems.append(ElemSegment(_SEG_MODES[mode], vt, table, offset, init))
    for _ in range(r.count(10)):
        mode, mem, offset, data_ = r.u8(), r.u32(), _expr_in(r), r.blob()
        if mode >= 2:
            raise ArtifactError(f"{SEC_INFO}: bad data segment mode {mode}")
        m.datas.append(DataSegment(_SEG_MODES[mode], mem, offset, data_))
    dc = r.i64()
    m.data_count = None if dc < 0 else dc
    for _ in range(r.count(8)):
        idx = r.u32()
        m.func_names[idx] = r.str()
    r.end()
    nfuncs = m.num_funcs
    if m.start is not None and m.start >= nfuncs:
        raise ArtifactError(f"{SEC_INFO}: start function {m.start} does not exist")
    for ex in m.exports:
        limit = {"func": nfuncs, "table": len(m.all_tables()),
                 "memory": len(m.all_memories()), "global": len(m.all_globals())}[ex.kind]
        if ex.index >= limit:
            raise ArtifactError(f"{SEC_INFO}: export {ex.name!r} names unknown {ex.kind} "
                                f"{ex.index}")
    return m


# --- writing -------------------------------------------------------------------------


@dataclass
class CompiledComponent:
    """The core modules of a component compiled into one text section.

    Every module's ``CompiledModule`` shares ``text``, relocations and the
    trampolines (one per signature for the whole component); ``sections`` are
    the component's other sections (types, imports, instances, aliases,
    canonical functions, exports), kept raw and decoded again by
    ``wasmlower.component`` when the component is loaded.
    """

    modules: list[CompiledModule]
    sections: list[tuple[int, bytes]]
    target: str = "x86_64"
    file_text: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        from ..component.decode import core_module_names
        for m in self.modules:
            m.shared = self
        self.module_names = core_module_names(self.sections)

    def module_label(self, k: int) -> str:
        """How backtraces name core module ``k``: its name in the component's name
        section, else ``module{k}``."""
        return self.module_names.get(k) or f"module{k}"

    @property
    def functions(self) -> list[CompiledFunction]:
        """Every function of every module, named ``module!function`` (for symbolication)."""
        out = []
        for k, m in enumerate(self.modules):
            label = self.module_label(k)
            for f in m.functions:
                name = f.name or m.module.func_names.get(f.index) or f"func[{f.index}]"
                out.append(CompiledFunction(f.index, f"{label}!{name}", f.offset, f.size,
                                            f.addrmap, f.traps))
        return out

    def __getattr__(self, name: str) -> Any:
        # text, relocs, host_to_wasm, wasm_to_host, trap_routine, libcall_names
        if name in ("text", "relocs", "host_to_wasm", "wasm_to_host", "trap_routine",
                    "libcall_names") and self.modules:
            return getattr(self.modules[0], name)
        raise AttributeError(name)


@dataclass
class ArtifactBuilder:
    """Collects the text and metadata of one artifact (a module or a component).

    ``Compiler.append_code`` appends functions to ``text``; ``finish`` writes the ELF.
    """

    target: str = "x86_64"
    kind: str = "module"
    text: bytearray = field(default_factory=bytearray)
    symbols: list[tuple[str, int, int]] = field(default_factory=list)   # name, start, size
    relocs: list[tuple[int, str, int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"artifact kind must be one of {sorted(KINDS)}, not {self.kind!r}")

    def append_text(self, code: bytes, align: int = 16) -> int:
        """Append ``code`` at the next ``align``-byte boundary (padded with the ISA's
        filler, ``relocs.padding``); its start."""
        self.text += padding(machine_of(self.target)) * (-len(self.text) % align)
        start = len(self.text)
        self.text += code
        return start

    def add_symbol(self, name: str, start: int, size: int) -> None:
        self.symbols.append((name, start, size))

    def finish(self, compiled: CompiledModule, engine: dict) -> bytes:
        """The artifact bytes of ``compiled`` (whose text is this builder's)."""
        return write_artifact(compiled, engine, self.kind)


def symbol_name(f: CompiledFunction) -> str:
    safe = "".join(c if c.isalnum() or c in "_.$" else "_" for c in (f.name or ""))
    return f"wasm_{f.index}_{safe}" if safe else f"wasm_{f.index}"


def _funcs_section(compiled: CompiledModule) -> tuple[bytes, bytes, bytes]:
    from ..ir.ops import TRAP_CODES
    funcs, traps, addrmap = _Out(), _Out(), _Out()
    funcs.u32(len(compiled.functions))
    for f in compiled.functions:
        funcs.u32(f.index)
        funcs.u32(f.offset)
        funcs.u32(f.size)
        funcs.u32(f.addrmap[0][1] if f.addrmap else 0xFFFFFFFF)   # start source location
        funcs.u32(len(f.traps))
        funcs.u32(len(f.addrmap))
        funcs.str(f.name or "")
        for off, kind in f.traps:
            if kind not in TRAP_CODES:
                raise ArtifactError(f"function {f.index}: unknown trap kind {kind!r}")
            traps.u32(off)
            traps.u32(TRAP_CODES[kind])
        for a, w in f.addrmap:
            addrmap.u32(a)
            addrmap.u32(w)
    return bytes(funcs.buf), bytes(traps.buf), bytes(addrmap.buf)


def _trampolines_section(compiled: CompiledModule) -> bytes:
    o = _Out()
    sigs = list(dict.fromkeys([*compiled.host_to_wasm, *compiled.wasm_to_host]))
    o.u32(len(sigs))
    for ft in sigs:
        _functype_out(o, ft)
        o.i64(compiled.host_to_wasm.get(ft, -1))
        o.i64(compiled.wasm_to_host.get(ft, -1))
    o.u32(compiled.trap_routine)
    o.u32(len(compiled.libcall_names))
    for name in compiled.libcall_names:
        o.str(name)
    return bytes(o.buf)


def write_artifact(compiled: CompiledModule, engine: dict, kind: str = "module") -> bytes:
    """Write ``compiled`` as an artifact; ``engine`` is its ``fingerprint``."""
    if kind != "module":
        raise ValueError("write_artifact writes modules; components: write_component_artifact")
    return _write([compiled], engine, None)


def write_component_artifact(component: CompiledComponent, engine: dict) -> bytes:
    """Write a compiled component: its core modules share one text section."""
    return _write(component.modules, engine, component)


def _write(modules: list[CompiledModule], engine: dict,
           component: CompiledComponent | None) -> bytes:
    first = component if component is not None else modules[0]
    machine = machine_of(first.target)
    symbols, names = [], {}
    for k, compiled in enumerate(modules):
        prefix = f"m{k}_" if component is not None else ""
        for f in compiled.functions:
            symbols.append(Symbol(prefix + symbol_name(f), SEC_TEXT, f.offset, f.size))
            names[f.offset] = symbols[-1].name
    for ft, off in first.host_to_wasm.items():
        symbols.append(Symbol(f"wasmlower_h2w_{_sig_name(ft)}", SEC_TEXT, off, 0, binding="local"))
    for ft, off in first.wasm_to_host.items():
        symbols.append(Symbol(f"wasmlower_w2h_{_sig_name(ft)}", SEC_TEXT, off, 0, binding="local"))
    symbols.append(Symbol("wasmlower_trap", SEC_TEXT, first.trap_routine, 0, binding="local"))
    relocs = [Reloc(SEC_TEXT, off, kind_, names[target], addend)
              for off, kind_, target, addend in first.relocs if target in names]
    parts = [(encode_module_info(m.module), *_funcs_section(m)) for m in modules]
    contents = {
        SEC_ENGINE: json.dumps(engine, sort_keys=True, separators=(",", ":")).encode(),
        SEC_TRAMPOLINES: _trampolines_section(first),
    }
    for j, name in enumerate((SEC_INFO, SEC_FUNCS, SEC_TRAPS, SEC_ADDRMAP)):
        if component is None:
            contents[name] = parts[0][j]
        else:                       # one blob per core module
            o = _Out()
            o.u32(len(parts))
            for part in parts:
                o.blob(part[j])
            contents[name] = bytes(o.buf)
    names_ = list(META_SECTIONS)
    if component is not None:
        o = _Out()
        o.u32(len(component.sections))
        for sid, raw in component.sections:
            o.u8(sid)
            o.blob(raw)
        contents[SEC_COMPONENT] = bytes(o.buf)
        names_.append(SEC_COMPONENT)
    # Final code (calls resolved) on its own pages: a loader can map it executable
    # from the file as it is (load_artifact_file).
    text = apply_relocs(first.text, first.relocs)
    sections = [Section(SEC_TEXT, text, flags="ax", align=TEXT_FILE_ALIGN)]
    sections += [Section(n, contents[n], align=8) for n in names_]
    sections.append(Section(SEC_DIGEST, bytes(DIGEST_SIZE), align=8))
    kind = "module" if component is None else "component"
    data = bytearray(write_object(machine, sections, symbols, relocs, os_abi=OS_ABI,
                                  e_flags=KINDS[kind]))
    table = _section_table(memoryview(data))
    off, size = table[SEC_DIGEST][:2]
    data[off:off + size] = _digest(memoryview(data), off)
    return bytes(data)


def _sig_name(ft: Any) -> str:
    return ("".join(t.value[0] + t.value[1:3] for t in ft.params) + "_"
            + "".join(t.value[0] + t.value[1:3] for t in ft.results))


def _digest(buf: memoryview, digest_off: int) -> bytes:
    h = hashlib.sha256()
    h.update(buf[:digest_off])
    h.update(bytes(DIGEST_SIZE))
    h.update(buf[digest_off + DIGEST_SIZE:])
    return h.digest()


# --- reading ---------------------------------------------------------------------------

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")
_RELA = struct.Struct("<QQq")
_MACHINE_NAMES = {v: k for k, v in MACHINES.items()}
SHT_NOBITS, SHT_SYMTAB, SHT_RELA = 8, 2, 4


@dataclass
class ArtifactHeader:
    machine: str
    kind: str
    sections: dict[str, tuple[int, int, int, int, int]]   # name -> offset, size, type, link, info


def _section_table(buf: memoryview) -> dict[str, tuple[int, int, int, int, int]]:
    size = len(buf)
    (_, _t, _m, _v, _e, _ph, shoff, _f, _eh, _phes, _phn, shentsize, shnum,
     shstrndx) = _EHDR.unpack_from(buf, 0)
    if shentsize != _SHDR.size:
        raise ArtifactError(f"bad section header size {shentsize} (expected {_SHDR.size})")
    if not 0 < shnum < 0xFF00 or shoff < _EHDR.size or shoff + shnum * _SHDR.size > size:
        raise ArtifactError(f"section header table ({shnum} entries at {shoff:#x}) lies "
                            f"outside the file ({size} bytes): truncated or damaged")
    if not 0 < shstrndx < shnum:
        raise ArtifactError(f"bad section name table index {shstrndx}")
    headers = [_SHDR.unpack_from(buf, shoff + i * _SHDR.size) for i in range(shnum)]
    for i, h in enumerate(headers[1:], start=1):
        if h[1] != SHT_NOBITS and h[4] + h[5] > size:
            raise ArtifactError(f"section {i} [{h[4]:#x}, {h[4] + h[5]:#x}) lies outside the "
                                f"file ({size} bytes): truncated or damaged")
    str_off, str_size = headers[shstrndx][4], headers[shstrndx][5]
    names = bytes(buf[str_off:str_off + str_size])
    out: dict[str, tuple[int, int, int, int, int]] = {}
    for i, h in enumerate(headers[1:], start=1):
        end = names.find(b"\0", h[0])
        if h[0] >= len(names) or end < 0:
            raise ArtifactError(f"section {i} has a bad name offset {h[0]}")
        try:
            name = names[h[0]:end].decode("ascii")
        except UnicodeDecodeError:
            raise ArtifactError(f"section {i} has a non-ASCII name") from None
        if name in out:
            raise ArtifactError(f"duplicate section {name}")
        out[name] = (h[4], h[5], h[1], h[6], h[7])
    return out


def read_header(buf: memoryview) -> ArtifactHeader:
    """Check the ELF header and section table of an artifact (not yet its contents)."""
    size = len(buf)
    if size == 0:
        raise ArtifactError("not a wasmlower artifact: the file is empty")
    if size < 4 or bytes(buf[:4]) != b"\x7fELF":
        raise ArtifactError("not a wasmlower artifact: not an ELF file (bad magic)")
    if size < _EHDR.size:
        raise ArtifactError(f"artifact truncated: {size} bytes, the ELF header needs "
                            f"{_EHDR.size}")
    ident = bytes(buf[:16])
    if ident[4] != 2 or ident[5] != 1 or ident[6] != 1:
        raise ArtifactError("not a wasmlower artifact: not a little-endian ELF64 file")
    if ident[7] != OS_ABI:
        raise ArtifactError(f"not a wasmlower artifact: ELF OS/ABI is {ident[7]:#x}, "
                            f"artifacts use {OS_ABI:#x}")
    e_type, e_machine = struct.unpack_from("<HH", buf, 16)
    e_flags = struct.unpack_from("<I", buf, 48)[0]
    if e_type != 1:
        raise ArtifactError(f"not a wasmlower artifact: ELF type {e_type} is not ET_REL")
    if e_machine not in _MACHINE_NAMES:
        raise ArtifactError(f"artifact has unknown ELF machine {e_machine}")
    kinds = {v: k for k, v in KINDS.items()}
    if e_flags not in kinds:
        raise ArtifactError(f"artifact has unknown e_flags {e_flags:#x} "
                            f"(expected module {E_FLAGS_MODULE} or component {E_FLAGS_COMPONENT})")
    sections = _section_table(buf)
    kind = kinds[e_flags]
    missing = [n for n in REQUIRED + ((SEC_COMPONENT,) if kind == "component" else ())
               if n not in sections]
    if missing:
        raise ArtifactError(f"artifact lacks section(s) {', '.join(missing)}")
    if sections[SEC_DIGEST][1] != DIGEST_SIZE:
        raise ArtifactError(f"artifact digest has {sections[SEC_DIGEST][1]} bytes, "
                            f"expected {DIGEST_SIZE}")
    return ArtifactHeader(_MACHINE_NAMES[e_machine], kind, sections)


def check_artifact(buf: memoryview, expected: dict) -> ArtifactHeader:
    """Structure, then integrity (digest), then fingerprint; raise ``ArtifactError``."""
    header = read_header(buf)
    off = header.sections[SEC_DIGEST][0]
    if _digest(buf, off) != bytes(buf[off:off + DIGEST_SIZE]):
        raise ArtifactError("artifact is corrupted: its bytes do not match its digest "
                            "(truncated, damaged or edited)")
    eoff, esize = header.sections[SEC_ENGINE][:2]
    try:
        engine = json.loads(bytes(buf[eoff:eoff + esize]))
    except ValueError as e:
        raise ArtifactError(f"artifact fingerprint is not valid JSON: {e}") from None
    if not isinstance(engine, dict):
        raise ArtifactError("artifact fingerprint is not a JSON object")
    compare_fingerprints(engine, expected)
    if TRIPLES.get(header.machine) != expected.get("target"):
        raise ArtifactError(f"artifact is for {header.machine} (ELF e_machine), this engine "
                            f"targets {expected.get('target')}")
    return header


def compare_fingerprints(found: dict, expected: dict) -> None:
    """Raise ``ArtifactError`` naming the first difference between two fingerprints."""
    for key in ("format", "version", "target", "backend"):
        if found.get(key) != expected.get(key):
            what = {"format": "artifact format", "version": "wasmlower version",
                    "backend": "back end build"}.get(key, key)
            raise ArtifactError(f"artifact was compiled for {what} {found.get(key)!r}, "
                                f"this engine has {expected.get(key)!r}")
    fs, es = found.get("settings"), expected.get("settings") or {}
    if not isinstance(fs, dict):
        raise ArtifactError("artifact fingerprint has no settings")
    for name in sorted(set(fs) | set(es)):
        if fs.get(name) != es.get(name):
            raise ArtifactError(f"artifact was compiled with setting {name}={fs.get(name)!r}, "
                                f"this engine has {name}={es.get(name)!r}")
    if found.get("features") != expected.get("features"):
        raise ArtifactError(f"artifact was compiled with features {found.get('features')}, "
                            f"this engine has {expected.get('features')}")
    if found.get("trap_codes") != expected.get("trap_codes"):
        raise ArtifactError("artifact was compiled with a different trap-code table")


def load_artifact(data: bytes | bytearray | memoryview | mmap.mmap, expected: dict,
                  kind: str = "module") -> Any:
    """Check and decode an artifact; ``expected`` is the loading engine's fingerprint."""
    if not isinstance(data, (bytes, bytearray, memoryview, mmap.mmap)):
        raise TypeError(f"an artifact is bytes, not {type(data).__name__}")
    with memoryview(data) as mv:
        buf = mv.cast("B") if mv.format != "B" or mv.ndim != 1 else mv
        try:
            return _load(buf, expected, kind)
        except ArtifactError:
            raise
        except Exception as e:  # noqa: BLE001 - a missing check: still an ArtifactError
            raise ArtifactError(f"damaged artifact ({type(e).__name__}: {e})") from None
        finally:
            if buf is not mv:
                buf.release()


def _load(buf: memoryview, expected: dict, kind: str) -> Any:
    header = check_artifact(buf, expected)
    if header.kind != kind:
        raise ArtifactError(f"artifact holds a {header.kind}, expected a {kind}")

    def section(name: str) -> bytes:
        off, size = header.sections[name][:2]
        return bytes(buf[off:off + size])

    text = section(SEC_TEXT)
    t = _In(section(SEC_TRAMPOLINES), SEC_TRAMPOLINES)
    h2w, w2h = {}, {}
    for _ in range(t.count(16)):
        ft = _functype_in(t)
        a, b = t.i64(), t.i64()
        for off, table in ((a, h2w), (b, w2h)):
            if off >= len(text):
                raise ArtifactError(f"trampoline offset {off:#x} lies outside the text")
            if off >= 0:
                table[ft] = off
    trap_routine = t.u32()
    libcalls = tuple(t.str() for _ in range(t.count(4)))
    t.end()
    if trap_routine >= len(text):
        raise ArtifactError(f"trap routine offset {trap_routine:#x} lies outside the text")
    from ..wasm.translate import LIBCALLS
    unknown = [n for n in libcalls if n not in LIBCALLS]
    if unknown:
        raise ArtifactError(f"artifact uses unknown libcall(s) {', '.join(unknown)}")
    relocs = _relocs(buf, header, len(text))
    names = (SEC_INFO, SEC_FUNCS, SEC_TRAPS, SEC_ADDRMAP)
    if kind == "module":
        parts = [[section(n) for n in names]]
    else:
        readers = [_In(section(n), n) for n in names]
        counts = {r.count(4) for r in readers}
        if len(counts) != 1:
            raise ArtifactError("component sections disagree on the number of modules")
        parts = [[r.blob() for r in readers] for _ in range(counts.pop())]
        for r in readers:
            r.end()
    modules = []
    for info, funcs, traps, addrmap in parts:
        module = decode_module_info(info)
        functions = _functions(text, module, funcs, traps, addrmap)
        modules.append(CompiledModule(module, text, functions, relocs, h2w, w2h, trap_routine,
                                      libcalls, header.machine, b""))
    if kind == "module":
        return modules[0]
    c = _In(section(SEC_COMPONENT), SEC_COMPONENT)
    raw = [(c.u8(), c.blob()) for _ in range(c.count(5))]
    c.end()
    return CompiledComponent(modules, raw, header.machine)


def _functions(text: bytes, module: Any, funcs: bytes, traps_: bytes, addrmap_: bytes
               ) -> list[CompiledFunction]:
    from ..ir.ops import TRAP_CODES
    trap_kinds = {v: k for k, v in TRAP_CODES.items()}
    fr, tr, ar = _In(funcs, SEC_FUNCS), _In(traps_, SEC_TRAPS), _In(addrmap_, SEC_ADDRMAP)
    functions = []
    for _ in range(fr.count(24)):
        index, offset, size, _srcloc, ntraps, naddr = (fr.u32() for _ in range(6))
        name = fr.str()
        if offset + size > len(text):
            raise ArtifactError(f"function {index} [{offset:#x}, +{size:#x}) lies outside "
                                f"the text ({len(text):#x} bytes)")
        traps = []
        for _ in range(ntraps):
            off, code = tr.u32(), tr.u32()
            if code not in trap_kinds:
                raise ArtifactError(f"function {index}: unknown trap code {code}")
            traps.append((off, trap_kinds[code]))
        addrmap = [(ar.u32(), ar.u32()) for _ in range(naddr)]
        functions.append(CompiledFunction(index, name, offset, size, addrmap, traps))
    for r in (fr, tr, ar):
        r.end()
    defined = set(range(module.num_imported_funcs, module.num_funcs))
    if {f.index for f in functions} != defined:
        raise ArtifactError("artifact's function table does not match its module's functions")
    return functions


def _relocs(buf: memoryview, header: ArtifactHeader, text_size: int
            ) -> list[tuple[int, str, int, int]]:
    rela = header.sections.get(".rela" + SEC_TEXT)
    symtab = header.sections.get(".symtab")
    if rela is None:
        return []
    if symtab is None or rela[2] != SHT_RELA or symtab[2] != SHT_SYMTAB:
        raise ArtifactError("artifact relocations have no symbol table")
    soff, ssize = symtab[:2]
    names = _RELOC_NAMES[header.machine]
    out = []
    roff, rsize = rela[:2]
    for i in range(rsize // _RELA.size):
        offset, info, addend = _RELA.unpack_from(buf, roff + i * _RELA.size)
        sym, rtype = info >> 32, info & 0xFFFFFFFF
        if rtype not in names:
            raise ArtifactError(f"relocation {i} has unsupported type {rtype}")
        if not 0 < sym < ssize // _SYM.size:
            raise ArtifactError(f"relocation {i} names bad symbol {sym}")
        value = _SYM.unpack_from(buf, soff + sym * _SYM.size)[4]
        if offset + 4 > text_size or value > text_size:
            raise ArtifactError(f"relocation {i} lies outside the text")
        out.append((offset, names[rtype], value, addend))
    return out


def map_file(path: str | os.PathLike) -> Any:
    """The file's bytes, mapped read-only with ``mmap`` where possible (else read)."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            try:
                return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except (ValueError, OSError):      # empty file, or a file that cannot be mapped
                return f.read()
    except IsADirectoryError:
        raise ArtifactError(f"{p}: is a directory, not an artifact") from None


def load_artifact_file(path: str | os.PathLike, expected: dict,
                       kind: str = "module") -> Any:
    """Load an artifact file.  Once every check has passed, native (x86-64) code is
    mapped executable from the file's own pages rather than copied (``file_text``);
    where that is impossible the runtime copies it as for ``load_artifact``."""
    data = map_file(path)
    try:
        compiled = load_artifact(data, expected, kind)
        _map_text_from_file(path, data, compiled)
        return compiled
    finally:
        if isinstance(data, mmap.mmap):
            try:
                data.close()
            except BufferError:     # a view is still referenced (a traceback): GC closes it
                pass


def _map_text_from_file(path: str | os.PathLike, data: Any, compiled: Any) -> None:
    if not isinstance(data, mmap.mmap) or machine_of(compiled.target) != "x86_64":
        return                      # read, not mapped; or code that runs under emulation
    from ..runtime.native import FileText
    off = read_header(memoryview(data)).sections[SEC_TEXT][0]
    if off % mmap.PAGESIZE or not compiled.text:
        return
    try:
        with open(path, "rb") as f:
            file_text = FileText(f.fileno(), off, bytes(compiled.text))
    except OSError:
        return                      # e.g. a filesystem mounted noexec: copy instead
    compiled.file_text = file_text
    for m in getattr(compiled, "modules", ()):
        m.file_text = file_text


# --- compatibility (the old entry points) ---------------------------------------------


def to_object(compiled: CompiledModule, wasm: bytes | None = None,
              settings: dict | None = None) -> bytes:
    """Write ``compiled`` as an artifact (``wasm`` is ignored: the module info is ours)."""
    return write_artifact(compiled, fingerprint(compiled.target, settings))


def from_object(data: bytes, target: str = "x86_64", settings: dict | None = None
                ) -> CompiledModule:
    return load_artifact(data, fingerprint(target, settings))


__all__ = [
    "ArtifactBuilder",
    "ArtifactError",
    "CompiledComponent",
    "check_artifact",
    "decode_module_info",
    "encode_module_info",
    "fingerprint",
    "from_object",
    "load_artifact",
    "load_artifact_file",
    "map_file",
    "read_header",
    "to_object",
    "write_artifact",
    "write_component_artifact",
]

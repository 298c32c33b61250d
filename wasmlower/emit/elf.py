"""ELF64 little-endian relocatable objects (``ET_REL``): a writer and a checked reader.

lief cannot build an ELF file from nothing, so :func:`write_object` lays out the bytes
itself with :mod:`struct`.  :func:`read_object` parses the headers itself, checks every
offset, size, index and string before using it, and raises only
:class:`~wasmlower.errors.ArtifactError` for bad input; lief is consulted only on request
(``check_with_lief=True``), and only after the file has passed those checks.

Conventions shared by both directions:

* A symbol's ``section`` is a section name, ``None`` for an undefined symbol, ``"*ABS*"``
  for ``SHN_ABS`` and ``"*COM*"`` for ``SHN_COMMON`` (its ``value`` is then the alignment).
* ``STT_SECTION`` symbols are named after their section, and a relocation whose ``symbol``
  names a section (and no ordinary symbol) refers to that section's symbol.  A relocation
  with ``symbol=""`` uses symbol index 0.
* Section flags are gas letters (``a`` alloc, ``w`` write, ``x`` exec, ``M`` merge,
  ``S`` strings, ``T`` TLS, ``e`` exclude, ``R`` retain); the reader spells them in that
  order, adds ``o`` link-order, ``G`` group and ``C`` compressed for foreign objects, and
  drops other bits.
* The reader accepts only ``ET_REL`` ELF64 little-endian files for x86-64 and AArch64 with
  ``SHT_RELA`` relocations (gas and gcc output included); executables and shared objects are
  rejected as "not a relocatable object".  Section contents (code, notes' payloads, DWARF,
  ``.eh_frame``) are not interpreted, apart from walking the note headers.
"""

from __future__ import annotations

import bisect
import itertools
import re
import struct
import warnings
from dataclasses import dataclass, field

from wasmlower.errors import ArtifactError

__all__ = [
    "MACHINES", "RELOC_TYPES", "ObjectFile", "Reloc", "Section", "Symbol", "read_object",
    "write_object",
]


@dataclass
class Symbol:
    """A symbol table entry.  ``section=None`` means undefined."""

    name: str
    section: str | None
    value: int
    size: int
    kind: str = "func"  # func | object | notype | section | file | tls | ifunc | common
    binding: str = "global"  # global | local | weak | unique
    visibility: str = "default"  # default | hidden | protected | internal


@dataclass
class Reloc:
    """A ``RELA`` relocation applied at ``offset`` within ``section``."""

    section: str
    offset: int
    type: str
    symbol: str
    addend: int


@dataclass
class Section:
    """A content section.  ``nobits`` sections take their size from ``data`` (all zeros)."""

    name: str
    data: bytes
    kind: str = "progbits"  # progbits | nobits
    flags: str = ""  # gas letters: a alloc, w write, x exec, M merge, S strings, T tls, ...
    align: int = 1
    entsize: int = 0


@dataclass
class ObjectFile:
    """What :func:`read_object` found in a relocatable object.

    ``sections`` holds every section with file contents that is not ELF bookkeeping
    (``PROGBITS``, ``NOTE``, init/fini arrays, OS- and processor-specific types such as
    ``.eh_frame``), in file order; ``nobits`` holds the sizes of ``NOBITS`` sections.  The
    per-section dicts (flags, align, entsize) cover both.
    """

    machine: str
    os_abi: int
    e_flags: int
    sections: dict[str, bytes]  # name -> contents, for sections with file contents
    section_flags: dict[str, str]  # name -> gas flag letters, content and nobits sections
    symbols: list[Symbol]  # symbol table order, without the null symbol
    relocs: list[Reloc]
    nobits: dict[str, int] = field(default_factory=dict)  # name -> size
    section_align: dict[str, int] = field(default_factory=dict)  # name -> sh_addralign
    section_entsize: dict[str, int] = field(default_factory=dict)  # name -> sh_entsize


# --------------------------------------------------------------------------- constants

MACHINES: dict[str, int] = {"x86_64": 62, "aarch64": 183}
_MACHINE_NAMES = {v: k for k, v in MACHINES.items()}

# name -> (number, width in bytes of the patched field, for range checks)
_X86_64_RELOCS: dict[str, tuple[int, int]] = {
    "R_X86_64_NONE": (0, 0), "R_X86_64_64": (1, 8), "R_X86_64_PC32": (2, 4),
    "R_X86_64_GOT32": (3, 4), "R_X86_64_PLT32": (4, 4), "R_X86_64_GOTPCREL": (9, 4),
    "R_X86_64_32": (10, 4), "R_X86_64_32S": (11, 4), "R_X86_64_16": (12, 2),
    "R_X86_64_PC16": (13, 2), "R_X86_64_8": (14, 1), "R_X86_64_PC8": (15, 1),
    "R_X86_64_DTPOFF64": (17, 8), "R_X86_64_TPOFF64": (18, 8), "R_X86_64_TLSGD": (19, 4),
    "R_X86_64_TLSLD": (20, 4), "R_X86_64_DTPOFF32": (21, 4), "R_X86_64_GOTTPOFF": (22, 4),
    "R_X86_64_TPOFF32": (23, 4), "R_X86_64_PC64": (24, 8), "R_X86_64_GOTOFF64": (25, 8),
    "R_X86_64_GOTPC32": (26, 4), "R_X86_64_GOT64": (27, 8), "R_X86_64_GOTPCREL64": (28, 8),
    "R_X86_64_GOTPC64": (29, 8), "R_X86_64_GOTPLT64": (30, 8), "R_X86_64_PLTOFF64": (31, 8),
    "R_X86_64_SIZE32": (32, 4), "R_X86_64_SIZE64": (33, 8),
    "R_X86_64_GOTPC32_TLSDESC": (34, 4), "R_X86_64_TLSDESC_CALL": (35, 0),
    "R_X86_64_GOTPCRELX": (41, 4), "R_X86_64_REX_GOTPCRELX": (42, 4),
}

_AARCH64_RELOCS: dict[str, tuple[int, int]] = {
    "R_AARCH64_NONE": (0, 0),
    "R_AARCH64_ABS64": (257, 8), "R_AARCH64_ABS32": (258, 4), "R_AARCH64_ABS16": (259, 2),
    "R_AARCH64_PREL64": (260, 8), "R_AARCH64_PREL32": (261, 4), "R_AARCH64_PREL16": (262, 2),
    "R_AARCH64_MOVW_UABS_G0": (263, 4), "R_AARCH64_MOVW_UABS_G0_NC": (264, 4),
    "R_AARCH64_MOVW_UABS_G1": (265, 4), "R_AARCH64_MOVW_UABS_G1_NC": (266, 4),
    "R_AARCH64_MOVW_UABS_G2": (267, 4), "R_AARCH64_MOVW_UABS_G2_NC": (268, 4),
    "R_AARCH64_MOVW_UABS_G3": (269, 4), "R_AARCH64_MOVW_SABS_G0": (270, 4),
    "R_AARCH64_MOVW_SABS_G1": (271, 4), "R_AARCH64_MOVW_SABS_G2": (272, 4),
    "R_AARCH64_LD_PREL_LO19": (273, 4), "R_AARCH64_ADR_PREL_LO21": (274, 4),
    "R_AARCH64_ADR_PREL_PG_HI21": (275, 4), "R_AARCH64_ADR_PREL_PG_HI21_NC": (276, 4),
    "R_AARCH64_ADD_ABS_LO12_NC": (277, 4), "R_AARCH64_LDST8_ABS_LO12_NC": (278, 4),
    "R_AARCH64_TSTBR14": (279, 4), "R_AARCH64_CONDBR19": (280, 4),
    "R_AARCH64_JUMP26": (282, 4), "R_AARCH64_CALL26": (283, 4),
    "R_AARCH64_LDST16_ABS_LO12_NC": (284, 4), "R_AARCH64_LDST32_ABS_LO12_NC": (285, 4),
    "R_AARCH64_LDST64_ABS_LO12_NC": (286, 4),
    "R_AARCH64_MOVW_PREL_G0": (287, 4), "R_AARCH64_MOVW_PREL_G0_NC": (288, 4),
    "R_AARCH64_MOVW_PREL_G1": (289, 4), "R_AARCH64_MOVW_PREL_G1_NC": (290, 4),
    "R_AARCH64_MOVW_PREL_G2": (291, 4), "R_AARCH64_MOVW_PREL_G2_NC": (292, 4),
    "R_AARCH64_MOVW_PREL_G3": (293, 4), "R_AARCH64_LDST128_ABS_LO12_NC": (299, 4),
    "R_AARCH64_GOTREL64": (307, 8), "R_AARCH64_GOTREL32": (308, 4),
    "R_AARCH64_GOT_LD_PREL19": (309, 4), "R_AARCH64_ADR_GOT_PAGE": (311, 4),
    "R_AARCH64_LD64_GOT_LO12_NC": (312, 4), "R_AARCH64_PLT32": (314, 4),
    "R_AARCH64_TLSGD_ADR_PAGE21": (513, 4), "R_AARCH64_TLSGD_ADD_LO12_NC": (514, 4),
    "R_AARCH64_TLSIE_ADR_GOTTPREL_PAGE21": (541, 4),
    "R_AARCH64_TLSIE_LD64_GOTTPREL_LO12_NC": (542, 4),
    "R_AARCH64_TLSLE_ADD_TPREL_HI12": (549, 4), "R_AARCH64_TLSLE_ADD_TPREL_LO12": (550, 4),
    "R_AARCH64_TLSLE_ADD_TPREL_LO12_NC": (551, 4),
    "R_AARCH64_TLSDESC_ADR_PAGE21": (562, 4), "R_AARCH64_TLSDESC_LD64_LO12": (563, 4),
    "R_AARCH64_TLSDESC_ADD_LO12": (564, 4), "R_AARCH64_TLSDESC_CALL": (569, 0),
}

#: machine -> relocation name -> (number, patched width in bytes)
RELOC_TYPES: dict[str, dict[str, tuple[int, int]]] = {
    "x86_64": _X86_64_RELOCS, "aarch64": _AARCH64_RELOCS,
}
_RELOC_BY_NUMBER = {m: {num: (name, width) for name, (num, width) in table.items()}
                    for m, table in RELOC_TYPES.items()}

ET_REL = 1
_ET_NAMES = {0: "ET_NONE", 1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE"}

SHT_NULL, SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_RELA = 0, 1, 2, 3, 4
SHT_NOTE, SHT_NOBITS, SHT_REL, SHT_GROUP, SHT_SYMTAB_SHNDX = 7, 8, 9, 17, 18
# types whose contents are reported in ObjectFile.sections (plus OS/processor-specific)
_CONTENT_TYPES = {SHT_PROGBITS, SHT_NOTE, 14, 15, 16}  # + INIT/FINI/PREINIT_ARRAY
_LOOS = 0x60000000

SHF_INFO_LINK, SHF_LINK_ORDER = 0x40, 0x80
# gas letter -> sh_flags bit, in the canonical order the reader spells them
_FLAG_BITS: dict[str, int] = {
    "a": 0x2, "w": 0x1, "x": 0x4, "M": 0x10, "S": 0x20, "T": 0x400,
    "e": 0x80000000, "R": 0x200000,
}
# bits the reader also names (foreign objects) but the writer cannot produce
_READ_ONLY_FLAG_BITS: dict[str, int] = {"o": 0x80, "G": 0x200, "C": 0x800}

SHN_UNDEF, SHN_LORESERVE, SHN_ABS, SHN_COMMON, SHN_XINDEX = 0, 0xFF00, 0xFFF1, 0xFFF2, 0xFFFF

_KINDS = {"notype": 0, "object": 1, "func": 2, "section": 3, "file": 4, "common": 5,
          "tls": 6, "ifunc": 10}
_KIND_NAMES = {v: k for k, v in _KINDS.items()}
_BINDINGS = {"local": 0, "global": 1, "weak": 2, "unique": 10}
_BINDING_NAMES = {v: k for k, v in _BINDINGS.items()}
_VISIBILITIES = {"default": 0, "internal": 1, "hidden": 2, "protected": 3}
_VISIBILITY_NAMES = {v: k for k, v in _VISIBILITIES.items()}

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")  # 64 bytes
_SHDR = struct.Struct("<IIQQQQIIQQ")  # 64 bytes
_SYM = struct.Struct("<IBBHQQ")  # 24 bytes
_RELA = struct.Struct("<QQq")  # 24 bytes
_U64 = (1 << 64) - 1
_S64_MIN, _S64_MAX = -(1 << 63), (1 << 63) - 1

_RESERVED_SECTION_NAMES = {".symtab", ".strtab", ".shstrtab"}
_SPECIAL_SECTIONS = {"*ABS*", "*COM*"}  # pseudo-section names of SHN_ABS and SHN_COMMON


# --------------------------------------------------------------------------- writer

class _StringTable:
    """A deduplicating ELF string table; offset 0 is the empty string."""

    def __init__(self) -> None:
        self.data = bytearray(b"\0")
        self._offsets: dict[str, int] = {"": 0}

    def add(self, text: str) -> int:
        if text not in self._offsets:
            self._offsets[text] = len(self.data)
            self.data += text.encode("utf-8") + b"\0"
        return self._offsets[text]


def _align_up(value: int, align: int) -> int:
    return (value + align - 1) // align * align if align > 1 else value


def _check_name(what: str, name: str) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{what}: name must be a non-empty string, got {name!r}")
    if "\0" in name:
        raise ValueError(f"{what}: name {name!r} contains a NUL character")


def _flag_bits(section: Section) -> int:
    bits = 0
    for letter in section.flags:
        if letter not in _FLAG_BITS:
            raise ValueError(f"section {section.name!r}: unknown flag {letter!r} "
                             f"(expected some of {''.join(_FLAG_BITS)!r})")
        bits |= _FLAG_BITS[letter]
    return bits


def write_object(machine: str, sections: list[Section], symbols: list[Symbol],
                 relocs: list[Reloc], os_abi: int = 0, e_flags: int = 0) -> bytes:
    """Lay out an ELF64 little-endian ``ET_REL`` object; bad arguments raise ``ValueError``.

    Section header order: null, ``sections`` in order, one ``.rela<name>`` per section with
    relocations, ``.symtab``, ``.strtab``, ``.shstrtab``.  Symbol order: null, file
    symbols, section symbols (every alloc section, and every section a relocation names),
    other locals, then globals/weak in the given order, then undefined globals created for
    relocation targets that name no symbol or section.  The same input gives the same bytes.
    """
    if machine not in MACHINES:
        raise ValueError(f"unknown machine {machine!r} (expected one of {sorted(MACHINES)})")
    if not 0 <= os_abi <= 0xFF:
        raise ValueError(f"os_abi {os_abi} does not fit in a byte")
    if not 0 <= e_flags <= 0xFFFFFFFF:
        raise ValueError(f"e_flags {e_flags:#x} does not fit in 32 bits")
    reloc_table = RELOC_TYPES[machine]

    # ---- sections
    sec_index: dict[str, int] = {}
    sec_bits: list[int] = []
    for i, sec in enumerate(sections, start=1):
        _check_name(f"section {i}", sec.name)
        if sec.name in sec_index:
            raise ValueError(f"duplicate section name {sec.name!r}")
        if sec.name in _RESERVED_SECTION_NAMES or sec.name in _SPECIAL_SECTIONS:
            raise ValueError(f"section name {sec.name!r} is reserved")
        if sec.kind not in ("progbits", "nobits"):
            raise ValueError(f"section {sec.name!r}: unknown kind {sec.kind!r} "
                             "(expected 'progbits' or 'nobits')")
        if sec.kind == "nobits" and any(sec.data):
            raise ValueError(f"section {sec.name!r}: nobits section data must be all zeros")
        if sec.align < 0 or (sec.align & (sec.align - 1)):
            raise ValueError(f"section {sec.name!r}: alignment {sec.align} "
                             "is not a power of two")
        if not 0 <= sec.entsize <= _U64:
            raise ValueError(f"section {sec.name!r}: bad entsize {sec.entsize}")
        sec_index[sec.name] = i
        sec_bits.append(_flag_bits(sec))
    for sec in sections:
        if sec.name.startswith(".rela") and sec.name[5:] in sec_index:
            raise ValueError(f"section name {sec.name!r} clashes with the relocation "
                             f"section of {sec.name[5:]!r}")

    # ---- user symbols
    by_name: dict[str, Symbol] = {}
    section_syms: set[str] = {s.name for s, bits in zip(sections, sec_bits) if bits & 0x2}
    for sym in symbols:
        what = f"symbol {sym.name!r}"
        _check_name("symbol", sym.name)
        if sym.name in by_name:
            raise ValueError(f"duplicate symbol name {sym.name!r}")
        if sym.kind not in _KINDS:
            raise ValueError(f"{what}: unknown kind {sym.kind!r}")
        if sym.binding not in _BINDINGS:
            raise ValueError(f"{what}: unknown binding {sym.binding!r}")
        if sym.visibility not in _VISIBILITIES:
            raise ValueError(f"{what}: unknown visibility {sym.visibility!r}")
        if not (0 <= sym.value <= _U64 and 0 <= sym.size <= _U64):
            raise ValueError(f"{what}: value/size must be unsigned 64-bit integers")
        if sym.kind == "section":
            if sym.section != sym.name or sym.name not in sec_index:
                raise ValueError(f"{what}: a section symbol must name its own section")
            if sym.binding != "local" or sym.value or sym.size:
                raise ValueError(f"{what}: a section symbol is local with value and size 0")
            section_syms.add(sym.name)
            continue
        if sym.name in sec_index:
            raise ValueError(f"{what}: has the name of a section")
        if sym.kind == "file":
            if sym.binding != "local" or sym.section not in (None, "*ABS*"):
                raise ValueError(f"{what}: a file symbol is local and absolute")
        elif sym.section is None:
            if sym.binding == "local":
                raise ValueError(f"{what}: an undefined symbol cannot be local")
        elif sym.section == "*COM*":
            if sym.binding == "local":
                raise ValueError(f"{what}: a common symbol cannot be local")
        elif sym.section != "*ABS*":
            if sym.section not in sec_index:
                raise ValueError(f"{what}: unknown section {sym.section!r}")
            size = len(sections[sec_index[sym.section] - 1].data)
            if sym.value + sym.size > size:
                raise ValueError(f"{what}: [{sym.value:#x}, {sym.value + sym.size:#x}) "
                                 f"lies outside section {sym.section!r} (size {size:#x})")
        by_name[sym.name] = sym

    # ---- relocations: validate, resolve targets, group per section
    per_section: dict[str, list[tuple[Reloc, int]]] = {}
    extern: list[str] = []
    for n, rel in enumerate(relocs):
        what = f"relocation {n} ({rel.type} at {rel.section}+{rel.offset:#x})"
        if rel.type not in reloc_table:
            raise ValueError(f"{what}: unknown relocation type {rel.type!r} for {machine}")
        if rel.section not in sec_index:
            raise ValueError(f"{what}: unknown section {rel.section!r}")
        target = sections[sec_index[rel.section] - 1]
        if target.kind == "nobits":
            raise ValueError(f"{what}: section {rel.section!r} is nobits")
        width = reloc_table[rel.type][1]
        if rel.offset < 0 or rel.offset + width > len(target.data):
            raise ValueError(f"{what}: patches [{rel.offset:#x}, {rel.offset + width:#x}) "
                             f"outside section {rel.section!r} (size {len(target.data):#x})")
        if not _S64_MIN <= rel.addend <= _S64_MAX:
            raise ValueError(f"{what}: addend {rel.addend} does not fit in 64 bits")
        if not isinstance(rel.symbol, str) or "\0" in rel.symbol:
            raise ValueError(f"{what}: bad symbol name {rel.symbol!r}")
        if rel.symbol and rel.symbol not in by_name:
            if rel.symbol in sec_index:
                section_syms.add(rel.symbol)
            elif rel.symbol not in extern:
                extern.append(rel.symbol)
        per_section.setdefault(rel.section, []).append((rel, reloc_table[rel.type][0]))

    # ---- symbol table order
    ordered: list[tuple[str, Symbol]] = []  # (strtab name, symbol)
    ordered += [(s.name, s) for s in symbols if s.kind == "file"]
    ordered += [("", Symbol(s.name, s.name, 0, 0, "section", "local"))
                for s in sections if s.name in section_syms]
    ordered += [(s.name, s) for s in symbols
                if s.binding == "local" and s.kind not in ("file", "section")]
    first_global = len(ordered) + 1
    ordered += [(s.name, s) for s in symbols if s.binding != "local"]
    ordered += [(name, Symbol(name, None, 0, 0, "notype", "global")) for name in extern]

    strtab = _StringTable()
    symtab = bytearray(_SYM.size)
    sym_index: dict[str, int] = {"": 0}
    for i, (strname, sym) in enumerate(ordered, start=1):
        sym_index[sym.name] = i  # names are unique: sections and symbols cannot clash
        if sym.kind == "section":
            shndx = sec_index[sym.name]
        elif sym.kind == "file" or sym.section == "*ABS*":
            shndx = SHN_ABS
        elif sym.section == "*COM*":
            shndx = SHN_COMMON
        elif sym.section is None:
            shndx = SHN_UNDEF
        else:
            shndx = sec_index[sym.section]
        info = (_BINDINGS[sym.binding] << 4) | _KINDS[sym.kind]
        symtab += _SYM.pack(strtab.add(strname), info, _VISIBILITIES[sym.visibility],
                            shndx, sym.value, sym.size)

    # ---- relocation sections
    rela_sections: list[tuple[str, int, bytes]] = []  # (name, target index, data)
    for sec in sections:
        if sec.name in per_section:
            data = b"".join(_RELA.pack(rel.offset, (sym_index[rel.symbol] << 32) | number,
                                       rel.addend) for rel, number in per_section[sec.name])
            rela_sections.append((".rela" + sec.name, sec_index[sec.name], data))

    n_user = len(sections)
    symtab_idx = n_user + len(rela_sections) + 1
    strtab_idx, shstrtab_idx = symtab_idx + 1, symtab_idx + 2
    shnum = shstrtab_idx + 1
    if shnum >= SHN_LORESERVE:
        raise ValueError(f"too many sections ({shnum}); extended numbering is not supported")

    # ---- section headers (name, type, flags, data, link, info, align, entsize)
    shstrtab = _StringTable()
    headers: list[tuple[int, int, int, bytes, int, int, int, int, int]] = []
    for sec, bits in zip(sections, sec_bits):
        sh_type = SHT_NOBITS if sec.kind == "nobits" else SHT_PROGBITS
        headers.append((shstrtab.add(sec.name), sh_type, bits, bytes(sec.data), 0, 0,
                        max(sec.align, 1), sec.entsize, len(sec.data)))
    for name, target, data in rela_sections:
        headers.append((shstrtab.add(name), SHT_RELA, SHF_INFO_LINK, data, symtab_idx,
                        target, 8, _RELA.size, len(data)))
    headers.append((shstrtab.add(".symtab"), SHT_SYMTAB, 0, bytes(symtab), strtab_idx,
                    first_global, 8, _SYM.size, len(symtab)))
    headers.append((shstrtab.add(".strtab"), SHT_STRTAB, 0, bytes(strtab.data), 0, 0, 1, 0,
                    len(strtab.data)))
    shstrtab_name = shstrtab.add(".shstrtab")
    headers.append((shstrtab_name, SHT_STRTAB, 0, bytes(shstrtab.data), 0, 0, 1, 0,
                    len(shstrtab.data)))

    # ---- layout
    out = bytearray(_EHDR.size)
    table = bytearray(_SHDR.size)  # null section header
    for name, sh_type, bits, data, link, info, align, entsize, size in headers:
        offset = _align_up(len(out), align)
        if sh_type != SHT_NOBITS:
            out += bytes(offset - len(out)) + data
        table += _SHDR.pack(name, sh_type, bits, 0, offset, size, link, info, align, entsize)
    shoff = _align_up(len(out), 8)
    out += bytes(shoff - len(out)) + table

    ident = b"\x7fELF" + bytes([2, 1, 1, os_abi]) + bytes(8)
    out[:_EHDR.size] = _EHDR.pack(ident, ET_REL, MACHINES[machine], 1, 0, 0, shoff, e_flags,
                                  _EHDR.size, 0, 0, _SHDR.size, shnum, shstrtab_idx)
    return bytes(out)


# --------------------------------------------------------------------------- reader

@dataclass
class _Shdr:
    index: int
    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int
    info: int
    align: int
    entsize: int

    def where(self) -> str:
        return f"section header {self.index} ({self.name})" if self.name else \
            f"section header {self.index}"


def _fail(message: str) -> ArtifactError:
    return ArtifactError(f"bad ELF object: {message}")


class _StringReader:
    """Looks names up in string tables, within a budget of decoded bytes.

    The budget keeps hostile tables (thousands of names overlapping in one long string)
    from costing quadratic time; real objects stay far below it.
    """

    def __init__(self, file_size: int) -> None:
        self.budget = 8 * file_size + (1 << 20)
        self._nuls: dict[int, list[int]] = {}  # id of table -> sorted NUL positions

    def get(self, table: bytes, index: int, what: str, table_name: str) -> str:
        if index >= len(table):
            raise _fail(f"{what}: name index {index:#x} is outside {table_name} "
                        f"(size {len(table):#x})")
        nuls = self._nuls.get(id(table))
        if nuls is None:
            nuls = self._nuls[id(table)] = [m.start() for m in re.finditer(b"\0", table)]
        at = bisect.bisect_left(nuls, index)
        if at == len(nuls):
            raise _fail(f"{what}: name at {table_name}+{index:#x} is not NUL-terminated")
        end = nuls[at]
        self.budget -= end - index
        if self.budget < 0:
            raise _fail(f"{what}: names in {table_name} overlap excessively "
                        "(more name bytes than the file could hold)")
        try:
            return table[index:end].decode("utf-8")
        except UnicodeDecodeError:
            raise _fail(f"{what}: name at {table_name}+{index:#x} is not valid UTF-8") \
                from None


def _check_notes(sh: _Shdr, data: bytes) -> None:
    """Walk an SHT_NOTE section: (namesz, descsz, type), name and desc, each padded."""
    if sh.align not in (0, 1, 2, 4, 8):
        raise _fail(f"{sh.where()}: note alignment {sh.align} (expected 4 or 8)")
    align = 8 if sh.align == 8 else 4
    offset = 0
    while offset < len(data):
        if len(data) - offset < 12:
            raise _fail(f"{sh.where()}: truncated note header at offset {offset:#x}")
        namesz, descsz, _ = struct.unpack_from("<III", data, offset)
        desc = _align_up(offset + 12 + namesz, align)
        end = _align_up(desc + descsz, align)
        if desc + descsz > len(data):
            raise _fail(f"{sh.where()}: note at offset {offset:#x} has namesz {namesz:#x} / "
                        f"descsz {descsz:#x} running past the section (size {len(data):#x})")
        offset = end


def _flag_letters(bits: int) -> str:
    letters = [c for c, b in _FLAG_BITS.items() if bits & b]
    letters += [c for c, b in _READ_ONLY_FLAG_BITS.items() if bits & b]
    return "".join(letters)


def read_object(data: bytes | bytearray | memoryview, *,
                check_with_lief: bool = False) -> ObjectFile:
    """Parse and check an ELF64 little-endian ``ET_REL`` object for x86-64 or AArch64.

    Every structural problem raises :class:`~wasmlower.errors.ArtifactError` naming what is
    wrong and where; no other exception escapes for any byte content.  With
    ``check_with_lief`` the file, once it passes these checks, is also parsed by lief and
    the two views of sections, symbols and relocations must agree.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"read_object expects bytes, got {type(data).__name__}")
    try:
        blob = bytes(data)
    except (TypeError, ValueError, BufferError) as exc:  # exotic memoryviews
        raise _fail(f"cannot read the input buffer: {exc}") from None
    try:
        obj = _read(blob)
        if check_with_lief:
            _cross_check_with_lief(blob, obj)
        return obj
    except ArtifactError:
        raise
    except Exception as exc:  # a check this reader is missing: still an ArtifactError
        raise ArtifactError(f"bad ELF object (unchecked by the reader, a bug): "
                            f"{type(exc).__name__}: {exc}") from exc


def _read(blob: bytes) -> ObjectFile:
    size = len(blob)
    if size == 0:
        raise _fail("empty input")
    if size < 4 or blob[:4] != b"\x7fELF":
        raise _fail("not an ELF file (bad magic)")
    if size < 16:
        raise _fail(f"truncated ELF identification ({size} bytes, need 16)")
    if blob[4] == 1:
        raise _fail("ELF32 (ELFCLASS32) is not supported, expected ELF64")
    if blob[4] != 2:
        raise _fail(f"bad EI_CLASS {blob[4]} (expected 2, ELFCLASS64)")
    if blob[5] == 2:
        raise _fail("big-endian ELF (ELFDATA2MSB) is not supported")
    if blob[5] != 1:
        raise _fail(f"bad EI_DATA {blob[5]} (expected 1, little-endian)")
    if blob[6] != 1:
        raise _fail(f"bad EI_VERSION {blob[6]} (expected 1)")
    if size < _EHDR.size:
        raise _fail(f"truncated ELF header ({size} bytes, need {_EHDR.size})")
    (_, e_type, e_machine, e_version, _entry, e_phoff, e_shoff, e_flags, e_ehsize,
     _phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx) = _EHDR.unpack_from(blob, 0)
    os_abi = blob[7]
    if e_type != ET_REL:
        name = _ET_NAMES.get(e_type, f"{e_type:#x}")
        raise _fail(f"not a relocatable object (e_type {name}, expected ET_REL)")
    if e_machine not in _MACHINE_NAMES:
        raise _fail(f"unsupported e_machine {e_machine} (expected 62 x86-64 or 183 AArch64)")
    machine = _MACHINE_NAMES[e_machine]
    if e_version != 1:
        raise _fail(f"bad e_version {e_version} (expected 1)")
    if e_ehsize != _EHDR.size:
        raise _fail(f"bad e_ehsize {e_ehsize} (expected {_EHDR.size})")
    if e_phoff or e_phnum:
        raise _fail(f"a relocatable object has no program headers (e_phoff {e_phoff:#x}, "
                    f"e_phnum {e_phnum})")
    if e_shoff == 0 or e_shnum == 0:
        if e_shoff != 0:
            raise _fail("extended section numbering (e_shnum 0) is not supported")
        raise _fail("no section header table")
    if e_shentsize != _SHDR.size:
        raise _fail(f"bad e_shentsize {e_shentsize} (expected {_SHDR.size})")
    table_end = e_shoff + e_shnum * _SHDR.size
    if e_shoff < _EHDR.size:
        raise _fail(f"section header table at {e_shoff:#x} overlaps the ELF header")
    if table_end > size:
        raise _fail(f"section header table [{e_shoff:#x}, {table_end:#x}) runs past end "
                    f"of file (size {size:#x})")
    if e_shstrndx == SHN_XINDEX:
        raise _fail("extended section name table index (SHN_XINDEX) is not supported")
    if not 0 < e_shstrndx < e_shnum:
        raise _fail(f"e_shstrndx {e_shstrndx} is not a section index (e_shnum {e_shnum})")

    raw = [_SHDR.unpack_from(blob, e_shoff + i * _SHDR.size) for i in range(e_shnum)]
    if any(raw[0]):
        raise _fail("section header 0 is not all zeros (extended numbering unsupported)")

    # ---- section names first, so that later messages can name sections
    _, st_type, _, _, st_off, st_size, _, _, _, _ = raw[e_shstrndx]
    if st_type != SHT_STRTAB:
        raise _fail(f"e_shstrndx {e_shstrndx} is not a string table (type {st_type})")
    if st_off + st_size > size:
        raise _fail(f"section header {e_shstrndx} (section names): data [{st_off:#x}, "
                    f"{st_off + st_size:#x}) runs past end of file (size {size:#x})")
    shstr = blob[st_off:st_off + st_size]
    strings = _StringReader(size)
    shdrs: list[_Shdr] = [_Shdr(0, "", *raw[0][1:])]
    for i, r in enumerate(raw[1:], start=1):
        name = strings.get(shstr, r[0], f"section header {i}", "the section name table")
        shdrs.append(_Shdr(i, name, *r[1:]))

    # ---- ranges of every section with file contents
    regions: list[tuple[int, int, str]] = [(0, _EHDR.size, "the ELF header"),
                                           (e_shoff, table_end, "the section header table")]
    for sh in shdrs[1:]:
        if sh.type == SHT_NULL:
            raise _fail(f"{sh.where()}: SHT_NULL type for a non-null section")
        if sh.align & (sh.align - 1):
            raise _fail(f"{sh.where()}: sh_addralign {sh.align:#x} is not a power of two")
        if sh.type == SHT_NOBITS:
            continue
        if sh.offset + sh.size > size:
            raise _fail(f"{sh.where()}: data [{sh.offset:#x}, {sh.offset + sh.size:#x}) runs "
                        f"past end of file (size {size:#x})")
        if sh.size:
            regions.append((sh.offset, sh.offset + sh.size, sh.where()))
    regions.sort()
    for (a0, a1, a), (b0, b1, b) in itertools.pairwise(regions):
        if b0 < a1:
            raise _fail(f"{b} [{b0:#x}, {b1:#x}) overlaps {a} [{a0:#x}, {a1:#x})")

    def contents(sh: _Shdr) -> bytes:
        return blob[sh.offset:sh.offset + sh.size]

    # ---- links: every sh_link is a section index; sh_info is checked per type below
    for sh in shdrs[1:]:
        if sh.link >= e_shnum:
            raise _fail(f"{sh.where()}: sh_link {sh.link} is out of range (e_shnum {e_shnum})")
        if sh.type in (SHT_SYMTAB, SHT_RELA, SHT_REL, SHT_GROUP):
            continue
        if sh.link and sh.type < _LOOS and not sh.flags & SHF_LINK_ORDER:
            raise _fail(f"{sh.where()}: unexpected sh_link {sh.link} (expected 0)")
        if sh.flags & SHF_INFO_LINK:
            if not 0 < sh.info < e_shnum:
                raise _fail(f"{sh.where()}: SHF_INFO_LINK set but sh_info {sh.info} is not "
                            "a section index")
        elif sh.info and sh.type < _LOOS:
            raise _fail(f"{sh.where()}: unexpected sh_info {sh.info} (expected 0)")

    # ---- classify sections
    sections: dict[str, bytes] = {}
    section_flags: dict[str, str] = {}
    section_align: dict[str, int] = {}
    section_entsize: dict[str, int] = {}
    nobits: dict[str, int] = {}
    reported: dict[int, str] = {}  # index -> name, for sections symbols may refer to
    symtabs: list[_Shdr] = []
    relas: list[_Shdr] = []
    groups: list[_Shdr] = []
    for sh in shdrs[1:]:
        t = sh.type
        if t == SHT_SYMTAB:
            symtabs.append(sh)
        elif t == SHT_RELA:
            relas.append(sh)
        elif t == SHT_STRTAB:
            pass
        elif t == SHT_GROUP:
            groups.append(sh)
        elif t == SHT_REL:
            raise _fail(f"{sh.where()}: SHT_REL relocations are not supported (expected RELA)")
        elif t == SHT_SYMTAB_SHNDX:
            raise _fail(f"{sh.where()}: extended symbol section indices are not supported")
        elif t in _CONTENT_TYPES or t >= _LOOS or t == SHT_NOBITS:
            if not sh.name:
                raise _fail(f"{sh.where()}: content section without a name")
            if sh.name in sections or sh.name in nobits:
                raise _fail(f"{sh.where()}: duplicate section name {sh.name!r}")
            if sh.name in _SPECIAL_SECTIONS:
                raise _fail(f"{sh.where()}: reserved section name {sh.name!r}")
            if t == SHT_NOBITS:
                nobits[sh.name] = sh.size
            else:
                sections[sh.name] = contents(sh)
                if t == SHT_NOTE:
                    _check_notes(sh, sections[sh.name])
            section_flags[sh.name] = _flag_letters(sh.flags)
            section_align[sh.name] = sh.align
            section_entsize[sh.name] = sh.entsize
            reported[sh.index] = sh.name
        else:
            raise _fail(f"{sh.where()}: unexpected section type {t:#x} "
                        "in a relocatable object")

    # ---- symbol table
    symbols: list[Symbol] = []
    sym_names: list[str] = [""]
    if len(symtabs) > 1:
        raise _fail(f"{symtabs[1].where()}: more than one symbol table")
    if symtabs:
        sh = symtabs[0]
        if sh.entsize != _SYM.size:
            raise _fail(f"{sh.where()}: sh_entsize {sh.entsize} (expected {_SYM.size})")
        if sh.size % _SYM.size or sh.size == 0:
            raise _fail(f"{sh.where()}: size {sh.size:#x} is not a positive multiple of "
                        f"{_SYM.size}")
        if not 0 < sh.link < e_shnum or shdrs[sh.link].type != SHT_STRTAB:
            raise _fail(f"{sh.where()}: sh_link {sh.link} is not a string table")
        strtab = contents(shdrs[sh.link])
        strtab_name = shdrs[sh.link].name or f"section {sh.link}"
        count = sh.size // _SYM.size
        if not 0 < sh.info <= count:
            raise _fail(f"{sh.where()}: sh_info {sh.info} (first non-local symbol) is "
                        f"outside 1..{count}")
        entries = list(_SYM.iter_unpack(contents(sh)))
        if any(entries[0]):
            raise _fail(f"{sh.where()}: symbol 0 is not all zeros")
        for k, (st_name, st_info, st_other, shndx, value, sym_size) in \
                enumerate(entries[1:], start=1):
            where = f"symbol {k}"
            name = strings.get(strtab, st_name, where, strtab_name)
            if name:
                where = f"symbol {k} ({name})"
            kind = _KIND_NAMES.get(st_info & 0xF)
            if kind is None:
                raise _fail(f"{where}: unknown symbol type {st_info & 0xF}")
            binding = _BINDING_NAMES.get(st_info >> 4)
            if binding is None:
                raise _fail(f"{where}: unknown symbol binding {st_info >> 4}")
            visibility = _VISIBILITY_NAMES[st_other & 3]
            if binding == "local" and k >= sh.info:
                raise _fail(f"{where}: local symbol at or after the first non-local index "
                            f"{sh.info} (.symtab sh_info)")
            if binding != "local" and k < sh.info:
                raise _fail(f"{where}: {binding} symbol before the first non-local index "
                            f"{sh.info} (.symtab sh_info)")
            section: str | None
            if shndx == SHN_UNDEF:
                section = None
            elif shndx == SHN_ABS:
                section = "*ABS*"
            elif shndx == SHN_COMMON:
                section = "*COM*"
            elif shndx in reported:
                section = reported[shndx]
                limit = nobits.get(section, len(sections.get(section, b"")))
                if value + sym_size > limit:
                    raise _fail(f"{where}: [{value:#x}, {value + sym_size:#x}) lies outside "
                                f"section {section} (size {limit:#x})")
            elif shndx < e_shnum and shdrs[shndx].type == SHT_GROUP:
                section = shdrs[shndx].name  # gas defines a group's signature symbol here
            elif shndx < e_shnum:
                raise _fail(f"{where}: st_shndx {shndx} is not a content section")
            else:
                raise _fail(f"{where}: st_shndx {shndx:#x} is out of range "
                            f"(e_shnum {e_shnum})")
            if kind == "section":
                if section is None or section.startswith("*"):
                    raise _fail(f"{where}: section symbol without a section")
                name = name or section
            symbols.append(Symbol(name, section, value, sym_size, kind, binding, visibility))
            sym_names.append(name)

    # ---- COMDAT/section groups: a flag word, then member section indices
    grouped: dict[int, int] = {}  # member section -> its group section
    for sh in groups:
        if not symtabs or sh.link != symtabs[0].index:
            raise _fail(f"{sh.where()}: sh_link {sh.link} is not the symbol table")
        if sh.info >= len(sym_names):
            raise _fail(f"{sh.where()}: signature symbol {sh.info} is out of range")
        if sh.entsize != 4 or sh.size < 4 or sh.size % 4:
            raise _fail(f"{sh.where()}: bad group size {sh.size:#x} / entsize {sh.entsize}")
        members = struct.unpack_from(f"<{sh.size // 4}I", blob, sh.offset)[1:]
        for member in members:
            if not 0 < member < e_shnum or member == sh.index:
                raise _fail(f"{sh.where()}: member {member} is not a section index")
            if member in grouped:
                raise _fail(f"{sh.where()}: section {member} is already in group section "
                            f"{grouped[member]}")
            grouped[member] = sh.index

    # ---- relocations
    relocs: list[Reloc] = []
    table = _RELOC_BY_NUMBER[machine]
    for sh in relas:
        if not symtabs or sh.link != symtabs[0].index:
            raise _fail(f"{sh.where()}: sh_link {sh.link} is not the symbol table")
        if reported.get(sh.info) not in sections:
            raise _fail(f"{sh.where()}: sh_info {sh.info} is not a section with contents")
        if sh.entsize != _RELA.size:
            raise _fail(f"{sh.where()}: sh_entsize {sh.entsize} (expected {_RELA.size})")
        if sh.size % _RELA.size:
            raise _fail(f"{sh.where()}: size {sh.size:#x} is not a multiple of {_RELA.size}")
        target = reported[sh.info]
        limit = len(sections[target])
        for k, (r_offset, r_info, addend) in enumerate(_RELA.iter_unpack(contents(sh))):
            where = f"{sh.where()} entry {k}"
            number, sym = r_info & 0xFFFFFFFF, r_info >> 32
            if number not in table:
                raise _fail(f"{where}: unknown relocation type {number} for {machine}")
            name, width = table[number]
            if sym >= len(sym_names):
                raise _fail(f"{where}: symbol index {sym} is out of range "
                            f"({len(sym_names)} symbols)")
            if r_offset + width > limit:
                raise _fail(f"{where}: {name} patches [{r_offset:#x}, {r_offset + width:#x}) "
                            f"outside {target} (size {limit:#x})")
            relocs.append(Reloc(target, r_offset, name, sym_names[sym], addend))

    return ObjectFile(machine, os_abi, e_flags, sections, section_flags, symbols, relocs,
                      nobits, section_align, section_entsize)


def _cross_check_with_lief(blob: bytes, obj: ObjectFile) -> None:
    """Parse ``blob`` (already checked) with lief; any disagreement raises ArtifactError."""
    import lief

    with lief.logging.level_scope(lief.logging.LEVEL.OFF):
        binary = lief.ELF.parse(blob)
    if binary is None:
        raise _fail("lief could not parse the file")
    names = {s.name for s in binary.sections}
    missing = sorted((set(obj.sections) | set(obj.nobits)) - names)
    if missing:
        raise _fail(f"lief does not see sections {missing}")
    for name, content in obj.sections.items():
        if bytes(binary.get_section(name).content) != content:
            raise _fail(f"lief sees different contents for section {name}")
    theirs_syms = list(binary.symtab_symbols)[1:]
    if len(theirs_syms) != len(obj.symbols):
        raise _fail(f"lief sees {len(theirs_syms)} symbols, expected {len(obj.symbols)}")
    for k, (ours, theirs) in enumerate(zip(obj.symbols, theirs_syms, strict=True), start=1):
        expect = (ours.name if ours.kind != "section" or theirs.name else "", ours.value,
                  ours.size, _KINDS[ours.kind], _BINDINGS[ours.binding],
                  _VISIBILITIES[ours.visibility])
        got = (theirs.name, theirs.value, theirs.size, int(theirs.type), int(theirs.binding),
               int(theirs.visibility))
        if got != expect:
            raise _fail(f"symbol {k}: lief sees {got}, expected {expect}")
    theirs_relocs = list(binary.object_relocations)
    if len(theirs_relocs) != len(obj.relocs):
        raise _fail(f"lief sees {len(theirs_relocs)} relocations, expected {len(obj.relocs)}")
    elf64 = lief.ELF.Header.CLASS.ELF64
    names = ["", *(sym.name for sym in obj.symbols)]
    with warnings.catch_warnings():  # lief warns about relocation types it does not know
        warnings.simplefilter("ignore")
        raw_info = [r.r_info(elf64) for r in theirs_relocs]
    got = sorted((r.section.name if r.section else "", r.address, r.addend, info & 0xFFFFFFFF,
                  names[info >> 32] if info >> 32 < len(names) else "?")
                 for r, info in zip(theirs_relocs, raw_info, strict=True))
    table = RELOC_TYPES[obj.machine]
    expected = sorted((r.section, r.offset, r.addend, table[r.type][0], r.symbol)
                      for r in obj.relocs)
    if got != expected:
        raise _fail("lief disagrees about the relocations: "
                    f"{[x for x in got if x not in expected][:3]}")

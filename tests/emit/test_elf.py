"""Tests for the ELF64 relocatable object writer and its checked reader."""

from __future__ import annotations

import dataclasses
import glob
import io
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import capstone
import lief
import pytest
from elftools.elf.elffile import ELFFile

from wasmlower.emit import ObjectFile, Reloc, Section, Symbol, read_object, write_object
from wasmlower.emit.elf import RELOC_TYPES
from wasmlower.errors import ArtifactError

REPO = Path(__file__).resolve().parents[2]

# ---------------------------------------------------------------- hand-encoded machine code

# x86-64: push rbp; mov rbp, rsp; call rel32 (relocated); pop rbp; ret
X86_PUSH_RBP = b"\x55"
X86_MOV_RBP_RSP = b"\x48\x89\xe5"  # REX.W 89 /r, modrm 11 100(rsp) 101(rbp)
X86_CALL_REL32 = b"\xe8\x00\x00\x00\x00"
X86_POP_RBP = b"\x5d"
X86_RET = b"\xc3"
X86_CODE = X86_PUSH_RBP + X86_MOV_RBP_RSP + X86_CALL_REL32 + X86_POP_RBP + X86_RET
X86_CALL_DISP = len(X86_PUSH_RBP + X86_MOV_RBP_RSP) + 1  # offset of the rel32 field


def _a64(word: int) -> bytes:
    return struct.pack("<I", word)


# AArch64: stp x29, x30, [sp, #-16]!; mov x29, sp; bl <reloc>; ldp x29, x30, [sp], #16; ret
A64_STP = _a64(0xA9BF7BFD)
A64_MOV_FP_SP = _a64(0x910003FD)
A64_BL = _a64(0x94000000)
A64_LDP = _a64(0xA8C17BFD)
A64_RET = _a64(0xD65F03C0)
A64_CODE = A64_STP + A64_MOV_FP_SP + A64_BL + A64_LDP + A64_RET
A64_BL_OFFSET = 8


def _disasm(machine: str, code: bytes) -> list[tuple[int, str, str]]:
    if machine == "x86_64":
        md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    else:
        md = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    return [(i.address, i.mnemonic, i.op_str) for i in md.disasm(code, 0)]


def test_hand_encoded_x86_code_disassembles_as_intended() -> None:
    assert _disasm("x86_64", X86_CODE) == [
        (0, "push", "rbp"), (1, "mov", "rbp, rsp"), (4, "call", "9"),
        (9, "pop", "rbp"), (10, "ret", ""),
    ]
    assert X86_CODE[X86_CALL_DISP - 1] == 0xE8


def test_hand_encoded_aarch64_code_disassembles_as_intended() -> None:
    assert _disasm("aarch64", A64_CODE) == [
        (0, "stp", "x29, x30, [sp, #-0x10]!"), (4, "mov", "x29, sp"), (8, "bl", "#8"),
        (12, "ldp", "x29, x30, [sp], #0x10"), (16, "ret", ""),
    ]


# ---------------------------------------------------------------- sample objects

@dataclasses.dataclass
class Sample:
    machine: str
    sections: list[Section]
    symbols: list[Symbol]
    relocs: list[Reloc]
    os_abi: int = 0
    e_flags: int = 0

    def write(self) -> bytes:
        return write_object(self.machine, self.sections, self.symbols, self.relocs,
                            os_abi=self.os_abi, e_flags=self.e_flags)


def x86_sample() -> Sample:
    text = X86_CODE + b"\x90" * 5 + X86_CODE
    sections = [
        Section(".text", text, flags="ax", align=16),
        Section(".rodata", b"hello\0\0\0" + struct.pack("<d", 1.5), flags="a", align=8),
        Section(".data", bytes(24), flags="aw", align=8),
        Section(".bss", bytes(64), kind="nobits", flags="aw", align=32),
        Section(".rodata.str1.1", b"abc\0", flags="aMS", entsize=1),
        Section(".note.GNU-stack", b""),
    ]
    symbols = [
        Symbol("sample.wasm", "*ABS*", 0, 0, "file", "local"),
        Symbol("helper", ".text", 16, len(X86_CODE), "func", "local"),
        Symbol("entry", ".text", 0, len(X86_CODE)),
        Symbol("table", ".data", 0, 24, "object"),
        Symbol("scratch", ".bss", 0, 64, "object", visibility="hidden"),
        Symbol("maybe", None, 0, 0, "notype", "weak"),
        Symbol("shared", "*COM*", 16, 32, "object"),
    ]
    relocs = [
        Reloc(".text", X86_CALL_DISP, "R_X86_64_PLT32", "callee", -4),
        Reloc(".text", 16 + X86_CALL_DISP, "R_X86_64_PC32", "helper", -4),
        Reloc(".data", 0, "R_X86_64_64", "entry", 0),
        Reloc(".data", 8, "R_X86_64_64", ".rodata", 8),
        Reloc(".data", 16, "R_X86_64_32S", "maybe", -(1 << 20)),
        Reloc(".data", 20, "R_X86_64_32", "other_extern", 0x7FFFFFFF),
    ]
    return Sample("x86_64", sections, symbols, relocs, os_abi=3, e_flags=0)


def aarch64_sample() -> Sample:
    text = A64_CODE + _a64(0x90000000) + _a64(0x91000000) + _a64(0xF9400000)  # adrp/add/ldr
    sections = [
        Section(".text", text, flags="ax", align=4),
        Section(".data", bytes(16), flags="aw", align=8),
        Section(".tbss", bytes(8), kind="nobits", flags="awT", align=8),
    ]
    symbols = [
        Symbol("local_fn", ".text", 20, 12, "func", "local"),
        Symbol("entry", ".text", 0, 20),
        Symbol("ptrs", ".data", 0, 16, "object", "weak"),
        Symbol("tlsvar", ".tbss", 0, 8, "tls"),
    ]
    relocs = [
        Reloc(".text", A64_BL_OFFSET, "R_AARCH64_CALL26", "callee", 0),
        Reloc(".text", 20, "R_AARCH64_ADR_PREL_PG_HI21", "ptrs", 8),
        Reloc(".text", 24, "R_AARCH64_ADD_ABS_LO12_NC", "ptrs", 8),
        Reloc(".text", 28, "R_AARCH64_LDST64_ABS_LO12_NC", "ptrs", 0),
        Reloc(".data", 0, "R_AARCH64_ABS64", "entry", 0),
        Reloc(".data", 8, "R_AARCH64_PREL32", "local_fn", -4),
        Reloc(".data", 12, "R_AARCH64_ABS32", "callee", 12),
    ]
    return Sample("aarch64", sections, symbols, relocs, e_flags=0)


SAMPLES = {"x86_64": x86_sample, "aarch64": aarch64_sample}


@pytest.fixture(params=sorted(SAMPLES))
def sample(request: pytest.FixtureRequest) -> Sample:
    return SAMPLES[request.param]()


@pytest.fixture
def obj_path(sample: Sample, tmp_path: Path) -> Path:
    path = tmp_path / f"{sample.machine}.o"
    path.write_bytes(sample.write())
    return path


def _expected_symbols(sample: Sample) -> list[Symbol]:
    """Symbol-table order the writer promises, without section symbols."""
    syms = sample.symbols
    out = [s for s in syms if s.kind == "file"]
    out += [s for s in syms if s.binding == "local" and s.kind != "file"]
    out += [s for s in syms if s.binding != "local"]
    known = {s.name for s in syms} | {s.name for s in sample.sections}
    for r in sample.relocs:
        if r.symbol not in known:
            known.add(r.symbol)
            out.append(Symbol(r.symbol, None, 0, 0, "notype", "global"))
    return out


# ---------------------------------------------------------------- round trip

def test_round_trip(sample: Sample) -> None:
    obj = read_object(sample.write())
    assert isinstance(obj, ObjectFile)
    assert (obj.machine, obj.os_abi, obj.e_flags) == (sample.machine, sample.os_abi,
                                                      sample.e_flags)
    progbits = {s.name: s.data for s in sample.sections if s.kind == "progbits"}
    assert obj.sections == progbits
    assert list(obj.sections) == list(progbits)
    assert obj.nobits == {s.name: len(s.data) for s in sample.sections if s.kind == "nobits"}
    assert obj.section_flags == {s.name: s.flags for s in sample.sections}
    assert obj.section_align == {s.name: s.align for s in sample.sections}
    assert [s for s in obj.symbols if s.kind != "section"] == _expected_symbols(sample)
    section_syms = [s for s in obj.symbols if s.kind == "section"]
    alloc = [s.name for s in sample.sections if "a" in s.flags]
    assert [s.name for s in section_syms] == alloc
    assert all(s.section == s.name and s.binding == "local" for s in section_syms)
    order = [s.name for s in sample.sections]
    expected_relocs = sorted(sample.relocs, key=lambda r: order.index(r.section))
    assert obj.relocs == expected_relocs


def _rewrite(obj: ObjectFile) -> bytes:
    """Write back what read_object returned."""
    sections = [Section(name, obj.sections.get(name, bytes(obj.nobits.get(name, 0))),
                        "nobits" if name in obj.nobits else "progbits", obj.section_flags[name],
                        obj.section_align[name], obj.section_entsize[name])
                for name in obj.section_flags]
    return write_object(obj.machine, sections, obj.symbols, obj.relocs, os_abi=obj.os_abi,
                        e_flags=obj.e_flags)


def test_writing_back_what_was_read_gives_the_same_bytes(sample: Sample) -> None:
    data = sample.write()
    assert _rewrite(read_object(data)) == data


def test_round_trip_through_memoryview_and_bytearray(sample: Sample) -> None:
    data = sample.write()
    assert read_object(memoryview(data)) == read_object(data) == read_object(bytearray(data))


def test_read_object_rejects_non_bytes() -> None:
    with pytest.raises(TypeError):
        read_object("not bytes")  # type: ignore[arg-type]


def test_deterministic(sample: Sample) -> None:
    first = sample.write()
    again = SAMPLES[sample.machine]().write()
    assert first == again == sample.write()


def test_layout(sample: Sample) -> None:
    data = sample.write()
    with_file = ELFFile(io.BytesIO(data))
    assert with_file["e_shoff"] % 8 == 0
    for sec in with_file.iter_sections():
        align = sec["sh_addralign"]
        if align > 1 and sec["sh_type"] != "SHT_NOBITS":
            assert sec["sh_offset"] % align == 0, sec.name
    names = [s.name for s in with_file.iter_sections()]
    user = [s.name for s in sample.sections]
    with_relocs = [n for n in user if any(r.section == n for r in sample.relocs)]
    assert names == ["", *user, *[".rela" + n for n in with_relocs],
                     ".symtab", ".strtab", ".shstrtab"]
    symtab = with_file.get_section_by_name(".symtab")
    locals_ = [s for s in symtab.iter_symbols() if s["st_info"]["bind"] == "STB_LOCAL"]
    assert symtab["sh_info"] == len(locals_)
    assert all(s["st_info"]["bind"] == "STB_LOCAL"
               for s in list(symtab.iter_symbols())[:symtab["sh_info"]])
    for name in with_relocs:
        rela = with_file.get_section_by_name(".rela" + name)
        assert rela["sh_type"] == "SHT_RELA"
        assert rela["sh_flags"] & 0x40  # SHF_INFO_LINK
        assert rela["sh_link"] == names.index(".symtab")
        assert rela["sh_info"] == names.index(name)
        assert rela["sh_entsize"] == 24


# ---------------------------------------------------------------- external tools

def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False)


@pytest.mark.skipif(shutil.which("readelf") is None, reason="readelf not installed")
def test_readelf_is_silent(obj_path: Path) -> None:
    result = _run("readelf", "-a", "-W", str(obj_path))
    assert result.returncode == 0
    assert result.stderr == ""
    assert "warning" not in result.stdout.lower()
    assert "error" not in result.stdout.lower()
    assert "REL (Relocatable file)" in result.stdout


@pytest.mark.skipif(shutil.which("readelf") is None, reason="readelf not installed")
@pytest.mark.parametrize("machine", sorted(RELOC_TYPES))
def test_relocation_numbers_match_readelf(machine: str, tmp_path: Path) -> None:
    table = RELOC_TYPES[machine]
    relocs = [Reloc(".text", 8 * i, name, "target", 0) for i, name in enumerate(table)]
    data = write_object(machine, [Section(".text", bytes(8 * len(table)), flags="ax")],
                        [], relocs)
    path = tmp_path / "r.o"
    path.write_bytes(data)
    result = _run("readelf", "-r", "-W", str(path))
    assert result.stderr == ""
    shown = re.findall(r"^[0-9a-f]{16}\s+[0-9a-f]{16}\s+(\S+)", result.stdout, re.MULTILINE)
    assert len(shown) == len(table)
    for name, seen in zip(table, shown, strict=True):
        # binutils < 2.41 predates R_AARCH64_PLT32 (314) and prints "unrecognized:"
        assert seen == name or (name == "R_AARCH64_PLT32" and seen.startswith("unrec"))
    assert read_object(data, check_with_lief=True).relocs == relocs


def test_required_relocation_numbers() -> None:
    x86 = {n: v[0] for n, v in RELOC_TYPES["x86_64"].items()}
    a64 = {n: v[0] for n, v in RELOC_TYPES["aarch64"].items()}
    assert [x86[f"R_X86_64_{n}"] for n in ("64", "PC32", "PLT32", "32", "32S")] == \
        [1, 2, 4, 10, 11]
    names = ["ABS64", "ABS32", "PREL32", "CALL26", "JUMP26", "ADR_PREL_PG_HI21",
             "ADD_ABS_LO12_NC", "LDST64_ABS_LO12_NC"]
    assert [a64[f"R_AARCH64_{n}"] for n in names] == [257, 258, 261, 283, 282, 275, 277, 286]


def _objdump_for(machine: str) -> str | None:
    if machine == "x86_64":
        return shutil.which("objdump")
    cross = shutil.which("aarch64-linux-gnu-objdump")
    if cross:
        return cross
    multi = shutil.which("objdump")
    if multi and "elf64-littleaarch64" in _run(multi, "-i").stdout:
        return multi
    return None


def test_objdump_shows_code_and_relocation(sample: Sample, obj_path: Path) -> None:
    tool = _objdump_for(sample.machine)
    if tool is None:
        pytest.skip(f"no objdump for {sample.machine} "
                    "(apt-get install binutils-aarch64-linux-gnu)")
    result = _run(tool, "-dr", str(obj_path))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    out = result.stdout
    assert "Disassembly of section .text:" in out
    assert "<entry>:" in out
    if sample.machine == "x86_64":
        for mnemonic in ("push", "mov", "call", "pop", "ret"):
            assert re.search(rf"\t{mnemonic}\b", out), mnemonic
        assert re.search(rf"^\s+{X86_CALL_DISP:x}: R_X86_64_PLT32\tcallee-0x4$", out, re.MULTILINE)
        assert re.search(r": R_X86_64_PC32\thelper-0x4$", out, re.MULTILINE)
    else:
        for mnemonic in ("stp", "mov", "bl", "ldp", "ret", "adrp", "add", "ldr"):
            assert re.search(rf"\t{mnemonic}\b", out), mnemonic
        assert re.search(rf"^\s+{A64_BL_OFFSET:x}: R_AARCH64_CALL26\tcallee$", out, re.MULTILINE)
        assert re.search(r": R_AARCH64_ADR_PREL_PG_HI21\tptrs\+0x8$", out, re.MULTILINE)


def test_lief_sees_the_same_object(sample: Sample) -> None:
    data = sample.write()
    binary = lief.ELF.parse(data)
    assert binary is not None
    assert binary.header.file_type == lief.ELF.Header.FILE_TYPE.REL
    arch = {"x86_64": lief.ELF.ARCH.X86_64, "aarch64": lief.ELF.ARCH.AARCH64}
    assert binary.header.machine_type == arch[sample.machine]
    for sec in sample.sections:
        lsec = binary.get_section(sec.name)
        assert lsec is not None and lsec.size == len(sec.data)
        if sec.kind == "progbits":
            assert bytes(lsec.content) == sec.data
    by_name = {s.name: s for s in binary.symtab_symbols if s.name}
    for sym in _expected_symbols(sample):
        lsym = by_name[sym.name]
        assert (lsym.value, lsym.size) == (sym.value, sym.size)
        assert lsym.binding.name.lower() == sym.binding
    got = sorted((r.section.name, r.address, "R_" + r.type.name, r.symbol.name, r.addend)
                 for r in binary.object_relocations)
    want = sorted((r.section, r.offset, r.type, "" if r.symbol.startswith(".") else r.symbol,
                   r.addend) for r in sample.relocs)
    assert got == want
    read_object(data, check_with_lief=True)


def test_pyelftools_sees_the_same_object(sample: Sample) -> None:
    from elftools.elf.relocation import RelocationSection

    elf = ELFFile(io.BytesIO(sample.write()))
    assert elf["e_type"] == "ET_REL"
    assert elf["e_machine"] == {"x86_64": "EM_X86_64", "aarch64": "EM_AARCH64"}[sample.machine]
    assert elf.little_endian and elf.elfclass == 64
    for sec in sample.sections:
        esec = elf.get_section_by_name(sec.name)
        assert esec["sh_size"] == len(sec.data)
        if sec.kind == "progbits":
            assert esec.data() == sec.data
    symtab = elf.get_section_by_name(".symtab")
    named = {s.name: s for s in symtab.iter_symbols() if s.name}
    for sym in _expected_symbols(sample):
        esym = named[sym.name]
        assert (esym["st_value"], esym["st_size"]) == (sym.value, sym.size)
        assert esym["st_info"]["bind"] == f"STB_{sym.binding.upper()}"
    got = []
    for sec in elf.iter_sections():
        if isinstance(sec, RelocationSection):
            target = elf.get_section(sec["sh_info"]).name
            for rel in sec.iter_relocations():
                esym = symtab.get_symbol(rel["r_info_sym"])
                name = esym.name or elf.get_section(esym["st_shndx"]).name
                got.append((target, rel["r_offset"], rel["r_info_type"], name, rel["r_addend"]))
    table = RELOC_TYPES[sample.machine]
    want = [(r.section, r.offset, table[r.type][0], r.symbol, r.addend) for r in sample.relocs]
    assert sorted(got) == sorted(want)


# ---------------------------------------------------------------- writer behaviour

def test_undefined_symbols_are_created_once_in_reference_order() -> None:
    relocs = [Reloc(".text", 0, "R_X86_64_PLT32", "b", -4),
              Reloc(".text", 4, "R_X86_64_PLT32", "a", -4),
              Reloc(".text", 8, "R_X86_64_PLT32", "b", -4)]
    obj = read_object(write_object("x86_64", [Section(".text", bytes(12), flags="ax")], [],
                                   relocs))
    assert [s for s in obj.symbols if s.kind != "section"] == [
        Symbol("b", None, 0, 0, "notype", "global"), Symbol("a", None, 0, 0, "notype", "global")]
    assert obj.relocs == relocs


def test_relocation_against_non_alloc_section_gets_a_section_symbol() -> None:
    sections = [Section(".debug_info", bytes(8)), Section(".debug_str", b"x\0")]
    relocs = [Reloc(".debug_info", 0, "R_AARCH64_ABS32", ".debug_str", 0)]
    obj = read_object(write_object("aarch64", sections, [], relocs))
    assert obj.symbols == [Symbol(".debug_str", ".debug_str", 0, 0, "section", "local")]
    assert obj.relocs == relocs


def test_relocation_with_empty_symbol_uses_index_zero() -> None:
    relocs = [Reloc(".text", 0, "R_X86_64_64", "", 0x1234)]
    obj = read_object(write_object("x86_64", [Section(".text", bytes(8), flags="ax")], [],
                                   relocs))
    assert obj.relocs == relocs


def test_explicit_section_symbol_is_merged() -> None:
    sym = Symbol(".text", ".text", 0, 0, "section", "local")
    obj = read_object(write_object("x86_64", [Section(".text", b"\xc3", flags="ax")], [sym],
                                   []))
    assert obj.symbols == [sym]


def test_empty_object() -> None:
    data = write_object("aarch64", [], [], [])
    obj = read_object(data, check_with_lief=True)
    assert (obj.sections, obj.symbols, obj.relocs) == ({}, [], [])


BAD_WRITES = [
    ("mips", [], [], [], "unknown machine"),
    ("x86_64", [Section(".t", b""), Section(".t", b"")], [], [], "duplicate section"),
    ("x86_64", [Section(".symtab", b"")], [], [], "reserved"),
    ("x86_64", [Section("", b"")], [], [], "non-empty"),
    ("x86_64", [Section(".t", b"", flags="az")], [], [], "unknown flag 'z'"),
    ("x86_64", [Section(".t", b"", kind="note")], [], [], "unknown kind"),
    ("x86_64", [Section(".t", b"", align=3)], [], [], "power of two"),
    ("x86_64", [Section(".b", b"\1", kind="nobits")], [], [], "all zeros"),
    ("x86_64", [Section(".t", b"", flags="ax"), Section(".rela.t", b"")], [],
     [Reloc(".t", 0, "R_X86_64_NONE", "", 0)], "clashes"),
    ("x86_64", [Section(".t", bytes(4))], [Symbol("f", ".t", 2, 4)], [], "outside section"),
    ("x86_64", [], [Symbol("f", ".nope", 0, 0)], [], "unknown section"),
    ("x86_64", [], [Symbol("f", None, 0, 0), Symbol("f", None, 0, 0)], [], "duplicate symbol"),
    ("x86_64", [], [Symbol("f", None, 0, 0, binding="local")], [], "cannot be local"),
    ("x86_64", [], [Symbol("f", None, 0, 0, kind="weird")], [], "unknown kind"),
    ("x86_64", [], [Symbol("f", None, 0, 0, binding="strong")], [], "unknown binding"),
    ("x86_64", [Section(".t", b"")], [Symbol(".t", ".t", 0, 0, "func")], [], "name of a section"),
    ("x86_64", [Section(".t", bytes(4))], [], [Reloc(".t", 0, "R_X86_64_FOO", "x", 0)],
     "R_X86_64_FOO"),
    ("x86_64", [Section(".t", bytes(4))], [], [Reloc(".t", 0, "R_AARCH64_ABS32", "x", 0)],
     "R_AARCH64_ABS32"),
    ("aarch64", [Section(".t", bytes(4))], [], [Reloc(".t", 0, "R_X86_64_64", "x", 0)],
     "R_X86_64_64"),
    ("x86_64", [Section(".t", bytes(4))], [], [Reloc(".t", 1, "R_X86_64_PC32", "x", 0)],
     "outside section"),
    ("x86_64", [Section(".t", bytes(4))], [], [Reloc(".u", 0, "R_X86_64_PC32", "x", 0)],
     "unknown section"),
    ("x86_64", [Section(".t", bytes(8))], [], [Reloc(".t", 0, "R_X86_64_64", "x", 1 << 63)],
     "addend"),
    ("x86_64", [Section(".b", bytes(8), kind="nobits")], [],
     [Reloc(".b", 0, "R_X86_64_64", "x", 0)], "nobits"),
]


@pytest.mark.parametrize("machine,sections,symbols,relocs,needle", BAD_WRITES)
def test_writer_rejects_bad_input(machine: str, sections: list[Section], symbols: list[Symbol],
                                  relocs: list[Reloc], needle: str) -> None:
    with pytest.raises(ValueError, match=re.escape(needle)):
        write_object(machine, sections, symbols, relocs)


def test_writer_rejects_bad_header_fields() -> None:
    with pytest.raises(ValueError, match="os_abi"):
        write_object("x86_64", [], [], [], os_abi=256)
    with pytest.raises(ValueError, match="e_flags"):
        write_object("x86_64", [], [], [], e_flags=-1)


def test_import_does_not_load_lief() -> None:
    code = "import sys, wasmlower.emit.elf; print('lief' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, check=True)
    assert result.stdout.strip() == "False"


# ---------------------------------------------------------------- reader: foreign objects

def _system_objects() -> list[str]:
    pattern = ["/usr/lib/x86_64-linux-gnu/*.o", "/usr/lib/gcc/*/*/*.o"]
    return sorted(p for pat in pattern for p in glob.glob(pat))[:20]


@pytest.mark.skipif(not _system_objects(), reason="no system object files found")
def test_reads_system_relocatable_objects() -> None:
    for path in _system_objects():
        data = Path(path).read_bytes()
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[18] not in (62, 183):
            continue
        obj = read_object(data, check_with_lief=True)
        assert obj.machine in ("x86_64", "aarch64")


ASM = {
    "x86_64": ("as", """
        .text
        .globl f
        .type f, @function
    f:  push %rbp
        mov %rsp, %rbp
        call g@PLT
        lea msg(%rip), %rax
        pop %rbp
        ret
        .size f, .-f
        .section .rodata
    msg: .string "hi"
        .data
        .quad f + 3
        .section .text.hot,"axG",@progbits,grp,comdat
        .globl h
    h:  jmp g
        .section .note.gnu.property,"a"
        .p2align 3
        .long 4, 16, 5
        .asciz "GNU"
        .long 0xc0000002, 4, 3, 0
    """),
    "aarch64": ("aarch64-linux-gnu-as", """
        .text
        .globl f
        .type f, %function
    f:  bl g
        adrp x0, msg
        add x0, x0, :lo12:msg
        ret
        .size f, .-f
        .section .rodata
    msg: .string "hi"
        .data
        .xword f + 3
        .section .text.hot,"axG",%progbits,grp,comdat
        .globl h
    h:  b g
        .section .note.gnu.property,"a"
        .p2align 3
        .word 4, 16, 5
        .asciz "GNU"
        .word 0xc0000000, 4, 3, 0
    """),
}


@pytest.mark.parametrize("machine", sorted(ASM))
def _assemble(machine: str, tmp_path: Path) -> bytes:
    """gas output for ASM[machine] (with a COMDAT group and a GNU property note)."""
    tool, source = ASM[machine]
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not installed")
    (tmp_path / "a.s").write_text(textwrap.dedent(source))
    _run(tool, "-o", str(tmp_path / "a.o"), str(tmp_path / "a.s")).check_returncode()
    return (tmp_path / "a.o").read_bytes()


@pytest.mark.parametrize("machine", sorted(ASM))
def test_reads_gas_output(machine: str, tmp_path: Path) -> None:
    obj = read_object(_assemble(machine, tmp_path), check_with_lief=True)
    assert obj.machine == machine
    f = next(s for s in obj.symbols if s.name == "f")
    assert (f.section, f.value, f.kind, f.binding) == (".text", 0, "func", "global")
    assert obj.section_flags[".text"] == "ax"
    assert obj.section_flags[".text.hot"] == "axG"
    assert ".note.gnu.property" in obj.sections
    assert any(s.name == "grp" and s.section == ".group" for s in obj.symbols)
    kinds = {(r.section, r.type, r.symbol) for r in obj.relocs}
    if machine == "x86_64":
        assert (".text", "R_X86_64_PLT32", "g") in kinds
        assert (".data", "R_X86_64_64", "f") in kinds
        assert obj.sections[".text"][:4] == X86_PUSH_RBP + X86_MOV_RBP_RSP
    else:
        assert (".text", "R_AARCH64_CALL26", "g") in kinds
        assert (".data", "R_AARCH64_ABS64", "f") in kinds
        assert obj.sections[".text"][:4] == A64_BL


# ---------------------------------------------------------------- reader: hostile input

def _small_object(machine: str) -> bytes:
    """A small object exercising every table: code, data, nobits, symbols, relocations."""
    if machine == "x86_64":
        code, call_at, call, data_reloc = X86_CODE, X86_CALL_DISP, "R_X86_64_PLT32", \
            "R_X86_64_64"
    else:
        code, call_at, call, data_reloc = A64_CODE, A64_BL_OFFSET, "R_AARCH64_CALL26", \
            "R_AARCH64_ABS64"
    sections = [Section(".text", code, flags="ax", align=4),
                Section(".data", bytes(8), flags="aw", align=8),
                Section(".bss", bytes(8), kind="nobits", flags="aw")]
    symbols = [Symbol("loc", ".text", 0, 1, "func", "local"),
               Symbol("f", ".text", 0, len(code)), Symbol("d", ".data", 0, 8, "object")]
    relocs = [Reloc(".text", call_at, call, "g", -4), Reloc(".data", 0, data_reloc, "f", 0)]
    return write_object(machine, sections, symbols, relocs)


SMALLS = {m: _small_object(m) for m in ("x86_64", "aarch64")}
SMALL = SMALLS["x86_64"]


@pytest.fixture(params=sorted(SMALLS))
def small(request: pytest.FixtureRequest) -> bytes:
    return SMALLS[request.param]


def _outcome(data: bytes) -> ObjectFile | ArtifactError:
    """read_object's result; anything but ObjectFile or a meaningful ArtifactError fails."""
    try:
        return read_object(data)
    except ArtifactError as exc:
        text = str(exc)
        assert text.startswith("bad ELF object: "), text
        assert "unchecked" not in text, f"reader lacks a check: {text}"
        return exc


def _flips(data: bytes, mask: int) -> list[bytes]:
    out = []
    for i in range(len(data)):
        flipped = bytearray(data)
        flipped[i] ^= mask
        out.append(bytes(flipped))
    return out


def test_small_object_is_small_and_valid(small: bytes) -> None:
    assert len(small) < 1024
    assert isinstance(_outcome(small), ObjectFile)


def test_every_truncation(small: bytes) -> None:
    for n in range(len(small)):
        result = _outcome(small[:n])
        # the section header table is at the end, so every proper prefix is damaged
        assert isinstance(result, ArtifactError), n


@pytest.mark.parametrize("mask", [0xFF, 0x01, 0x80])
def test_every_byte_flipped(small: bytes, mask: int) -> None:
    parsed = sum(isinstance(_outcome(data), ObjectFile) for data in _flips(small, mask))
    assert 0 < parsed < len(small)  # code/data bytes are harmless, header bytes are not


@pytest.mark.skipif(shutil.which("readelf") is None, reason="readelf not installed")
def test_whatever_the_reader_accepts_readelf_accepts(small: bytes, tmp_path: Path) -> None:
    """The reader's checks are at least as strict as readelf's warnings (single flips)."""
    path = tmp_path / "m.o"
    checked = 0
    for data in _flips(small, 0xFF):
        if isinstance(_outcome(data), ArtifactError):
            continue
        path.write_bytes(data)
        result = subprocess.run(["readelf", "-a", "-W", str(path)], capture_output=True,
                                check=False)
        out = result.stdout.decode("utf-8", "replace")
        assert result.stderr == b"", (data, result.stderr)
        assert "Warning" not in out and "Error" not in out
        checked += 1
    assert checked > 0


def test_random_bytes(small: bytes) -> None:
    rng = random.Random(1234)
    for n in [*range(80), 100, 200, 1000, 4096]:
        for _ in range(5):
            assert isinstance(_outcome(rng.randbytes(n)), ArtifactError)
            # a plausible header followed by garbage reaches the deeper checks
            _outcome(small[:64] + rng.randbytes(n))


def test_random_multi_byte_corruption(small: bytes) -> None:
    rng = random.Random(99)
    for _ in range(3000):
        data = bytearray(small)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        _outcome(bytes(data))


def test_random_header_fields(small: bytes) -> None:
    """Random whole-field values in the section headers, not just single bytes."""
    rng = random.Random(7)
    shoff = struct.unpack_from("<Q", small, 0x28)[0]
    shnum = struct.unpack_from("<H", small, 0x3C)[0]
    field_offsets = [0, 4, 8, 16, 24, 32, 40, 44, 48, 56]
    field_sizes = [4, 4, 8, 8, 8, 8, 4, 4, 8, 8]
    for _ in range(3000):
        data = bytearray(small)
        k = rng.randrange(len(field_offsets))
        at = shoff + rng.randrange(shnum) * 64 + field_offsets[k]
        value = rng.choice([0, 1, 2, 0x40, 0xFF, 0x1000, (1 << 32) - 1, rng.getrandbits(64)])
        width = field_sizes[k]
        data[at:at + width] = (value & ((1 << 8 * width) - 1)).to_bytes(width, "little")
        _outcome(bytes(data))


def test_random_symbol_and_relocation_fields(small: bytes) -> None:
    """Random values in symbol-table and relocation entries."""
    rng = random.Random(11)
    tables = []
    for name, fields in ((".symtab", [(0, 4), (4, 1), (5, 1), (6, 2), (8, 8), (16, 8)]),
                         (".rela.text", [(0, 8), (8, 4), (12, 4), (16, 8)])):
        index = _section_index(small, name)
        offset, size = struct.unpack_from("<QQ", small, _shdr(small, index) + 24)
        tables.append((offset, size, fields))
    for _ in range(3000):
        offset, size, fields = rng.choice(tables)
        entry = offset + 24 * rng.randrange(size // 24)
        at, width = rng.choice(fields)
        value = rng.choice([0, 1, 2, 3, 0x12, 0xFF, 0xFFF1, 0xFFF2, rng.getrandbits(64)])
        data = bytearray(small)
        data[entry + at:entry + at + width] = (value & ((1 << 8 * width) - 1)).to_bytes(
            width, "little")
        _outcome(bytes(data))


@pytest.mark.parametrize("machine", sorted(ASM))
def test_gas_output_corrupted(machine: str, tmp_path: Path) -> None:
    """Corrupt the bookkeeping of a gas object (groups, notes, tables); readelf agrees."""
    base = _assemble(machine, tmp_path)
    elf = ELFFile(io.BytesIO(base))
    regions = [(0, 64), (elf["e_shoff"], elf["e_shoff"] + 64 * elf["e_shnum"])]
    regions += [(sec["sh_offset"], sec["sh_offset"] + sec["sh_size"])
                for sec in elf.iter_sections()
                if sec["sh_type"] in ("SHT_SYMTAB", "SHT_RELA", "SHT_GROUP", "SHT_NOTE",
                                      "SHT_STRTAB") and sec["sh_size"]]
    rng = random.Random(machine)
    path = tmp_path / "m.o"
    readelf = shutil.which("readelf")
    for n in range(2000):
        start, end = rng.choice(regions)
        data = bytearray(base)
        data[rng.randrange(start, end)] ^= rng.choice([0xFF, 0x01, 0x80, rng.randrange(1, 256)])
        if isinstance(_outcome(bytes(data)), ObjectFile) and readelf and n % 10 == 0:
            path.write_bytes(data)
            result = subprocess.run([readelf, "-a", "-W", str(path)], capture_output=True,
                                    check=False)
            assert result.stderr == b"", result.stderr


def test_overlapping_names_cost_linear_time() -> None:
    """Thousands of names overlapping inside one long string are refused, not decoded."""
    syms = [Symbol(f"s{i}", None, 0, 0, "notype") for i in range(4000)]
    data = bytearray(write_object("x86_64", [], syms, []))
    strtab = _section_index(bytes(data), ".strtab")
    symtab = _section_index(bytes(data), ".symtab")
    str_off, str_size = struct.unpack_from("<QQ", data, _shdr(bytes(data), strtab) + 24)
    sym_off = struct.unpack_from("<Q", data, _shdr(bytes(data), symtab) + 24)[0]
    data[str_off + 1:str_off + str_size - 1] = b"a" * (str_size - 2)  # one long string
    for k in range(1, len(syms) + 1):
        struct.pack_into("<I", data, sym_off + 24 * k, k)
    with pytest.raises(ArtifactError, match="overlap excessively"):
        read_object(bytes(data))


def test_bytes_flipped_with_lief_cross_check_in_a_subprocess(small: bytes,
                                                             tmp_path: Path) -> None:
    """Files that pass the structural checks also go through lief; lief must not crash."""
    script = textwrap.dedent("""
        from small_object import SMALL
        from wasmlower.emit.elf import read_object
        from wasmlower.errors import ArtifactError
        ok = 0
        for mask in (0xFF, 0x01):
            for i in range(len(SMALL)):
                data = bytearray(SMALL)
                data[i] ^= mask
                try:
                    read_object(bytes(data), check_with_lief=True)
                    ok += 1
                except ArtifactError as exc:
                    assert "unchecked" not in str(exc), exc
        print(ok)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), "."])}
    (tmp_path / "small_object.py").write_text(f"SMALL = {small!r}\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout) > 0


def _patch(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def _shdr(data: bytes, index: int) -> int:
    return struct.unpack_from("<Q", data, 0x28)[0] + 64 * index


def _section_index(data: bytes, name: str) -> int:
    elf = ELFFile(io.BytesIO(data))
    return next(i for i, s in enumerate(elf.iter_sections()) if s.name == name)


def _elf32_header() -> bytes:
    ident = b"\x7fELF" + bytes([1, 1, 1, 0]) + bytes(8)
    return ident + struct.pack("<HHIIIIIHHHHHH", 1, 3, 1, 0, 0, 0, 0, 52, 0, 0, 40, 0, 0)


def _hostile_cases() -> list[tuple[str, bytes, str]]:
    text = _section_index(SMALL, ".text")
    rela = _section_index(SMALL, ".rela.text")
    symtab = _section_index(SMALL, ".symtab")
    data_idx = _section_index(SMALL, ".data")
    rela_off = struct.unpack_from("<Q", SMALL, _shdr(SMALL, rela) + 24)[0]
    sym_off = struct.unpack_from("<Q", SMALL, _shdr(SMALL, symtab) + 24)[0]
    data_off = struct.unpack_from("<Q", SMALL, _shdr(SMALL, data_idx) + 24)[0]
    return [
        ("empty", b"", "empty input"),
        ("text", b"hello, world\n" * 10, "bad magic"),
        ("short", b"\x7fELF\x02", "truncated ELF identification"),
        ("elf32", _elf32_header(), "ELF32"),
        ("big-endian", SMALL[:5] + b"\x02" + SMALL[6:], "big-endian"),
        ("shared library", _patch(SMALL, 16, "<H", 3), "not a relocatable object (e_type ET_DYN"),
        ("machine", _patch(SMALL, 18, "<H", 40), "unsupported e_machine 40"),
        ("shoff outside", _patch(SMALL, 0x28, "<Q", len(SMALL)), "runs past end of file"),
        ("shstrndx", _patch(SMALL, 0x3E, "<H", 200), "e_shstrndx 200"),
        ("section outside", _patch(SMALL, _shdr(SMALL, text) + 32, "<Q", 0x1000),
         (f"section header {text} (.text): data [0x40, 0x1040) runs past end of file "
         f"(size {len(SMALL):#x})")),
        ("overlap", _patch(SMALL, _shdr(SMALL, text) + 24, "<Q", data_off), "overlaps"),
        ("over header", _patch(SMALL, _shdr(SMALL, text) + 24, "<Q", 0), "overlaps"),
        ("name index", _patch(SMALL, _shdr(SMALL, text), "<I", 0xFFFF),
         f"section header {text}: name index 0xffff is outside the section name table"),
        ("symbol name", _patch(SMALL, sym_off + 24, "<I", 0xFFFFFF), "symbol 1: name index"),
        ("symbol shndx", _patch(SMALL, sym_off + 24 + 6, "<H", 0x4000), "st_shndx 0x4000"),
        ("symbol binding", _patch(SMALL, sym_off + 24 + 4, "<B", 0x52), "unknown symbol binding"),
        ("reloc type", _patch(SMALL, rela_off + 8, "<I", 999),
         "unknown relocation type 999 for x86_64"),
        ("reloc symbol", _patch(SMALL, rela_off + 12, "<I", 5000), "symbol index 5000"),
        ("reloc offset", _patch(SMALL, rela_off, "<Q", 0x100), "outside .text"),
        ("rela link", _patch(SMALL, _shdr(SMALL, rela) + 40, "<I", text),
         "is not the symbol table"),
        ("symtab entsize", _patch(SMALL, _shdr(SMALL, symtab) + 56, "<Q", 16), "sh_entsize 16"),
        ("symtab info", _patch(SMALL, _shdr(SMALL, symtab) + 44, "<I", 1),
         "symbol 1: local symbol at or after the first non-local index 1"),
        ("section type", _patch(SMALL, _shdr(SMALL, text) + 4, "<I", 9), "SHT_REL"),
    ]


@pytest.mark.parametrize("name,data,needle", _hostile_cases(), ids=lambda x: str(x)[:20])
def test_hostile_input_names_the_problem(name: str, data: bytes, needle: str) -> None:
    with pytest.raises(ArtifactError) as info:
        read_object(data)
    assert needle in str(info.value), (name, str(info.value))
    assert "unchecked" not in str(info.value)


def _system_elf_files() -> list[str]:
    candidates = ["/bin/ls", "/bin/sh", sys.executable, "/lib/x86_64-linux-gnu/libc.so.6",
                  "/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"]
    return [p for p in candidates if os.path.isfile(p)]


@pytest.mark.parametrize("path", _system_elf_files())
def test_executables_and_shared_libraries_are_rejected(path: str) -> None:
    data = Path(path).read_bytes()
    if data[:4] != b"\x7fELF":
        pytest.skip(f"{path} is not ELF")
    with pytest.raises(ArtifactError, match="not a relocatable object|ELF32|big-endian"):
        read_object(data)


def test_unknown_relocation_type_is_named_with_lief_too() -> None:
    rela = _section_index(SMALL, ".rela.text")
    rela_off = struct.unpack_from("<Q", SMALL, _shdr(SMALL, rela) + 24)[0]
    with pytest.raises(ArtifactError, match="unknown relocation type 77 for x86_64"):
        read_object(_patch(SMALL, rela_off + 8, "<I", 77), check_with_lief=True)

"""Precompiled artifacts: round trips in a new process, ELF tools, module info, damage."""

from __future__ import annotations

import json
import mmap
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import wasmtime

from wasmlower.compiler import CompilerBuilder
from wasmlower.emit import object as artifact
from wasmlower.emit.elf import write_object
from wasmlower.engine import Engine, Instance, Module
from wasmlower.errors import ArtifactError, Trap

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO.parent / "shared" / "bench"


def _programs() -> list[dict]:
    try:
        return json.loads((BENCH / "bench.json").read_text())
    except OSError:
        return []


RICH = wasmtime.wat2wasm(r"""
(module
  (type $t (func (param i32) (result i32)))
  (import "env" "add" (func $add (param i32 i32) (result i32)))
  (import "env" "g" (global $ig i32))
  (import "env" "mem" (memory 1 5))
  (import "env" "tab" (table 2 funcref))
  (global $c (mut i64) (i64.const -5))
  (global $d f64 (f64.const 2.5))
  (global $e i32 (global.get $ig))
  (global $r (mut funcref) (ref.func $double))
  (table $own 4 10 funcref)
  (elem (table $own) (i32.const 1) func $double $inc)
  (elem $passive funcref (ref.func $inc) (ref.null func))
  (elem declare func $three)
  (data (i32.const 16) "hello")
  (data $p "passive bytes")
  (func $double (export "double") (type $t) (i32.mul (local.get 0) (i32.const 2)))
  (func $inc (type $t) (call $add (local.get 0) (i32.const 1)))
  (func $three (result i32) (i32.const 3))
  (func $setup (global.set $c (i64.const 42)))
  (func (export "four") (result i32) (i32.add (call $three) (i32.const 1)))
  (func (export "call_own") (param i32 i32) (result i32)
    (call_indirect $own (type $t) (local.get 1) (local.get 0)))
  (func (export "load") (param i32) (result i32) (i32.load8_u (local.get 0)))
  (func (export "boom") (param i32) (result i32)
    (if (i32.eqz (local.get 0)) (then unreachable)) (i32.div_s (i32.const 1) (local.get 0)))
  (func (export "init") (memory.init $p (i32.const 100) (i32.const 0) (i32.const 7))
    (elem.drop $passive))
  (export "c" (global $c))
  (export "e" (global $e))
  (export "own" (table $own))
  (start $setup))
""")


def rich_imports(store=None):
    from wasmlower.runtime import Global, Memory, Store, Table
    from wasmlower.wasm.module import GlobalType, Limits, MemoryType, TableType, ValType
    store = store or Store()
    return store, {("env", "add"): lambda a, b: a + b,
                   ("env", "g"): Global(store, GlobalType(ValType.I32, False), 7),
                   ("env", "mem"): Memory(store, MemoryType(Limits(1, 5))),
                   ("env", "tab"): Table(store, TableType(ValType.FUNCREF, Limits(2, None)))}


# --- module info --------------------------------------------------------------------------------


def test_module_info_round_trip() -> None:
    from wasmlower.pipeline import decode
    m = decode(RICH)
    back = artifact.decode_module_info(artifact.encode_module_info(m))
    for name in ("types", "imports", "funcs", "tables", "memories", "globals", "exports",
                 "start", "elems", "datas", "data_count", "func_names"):
        assert getattr(back, name) == getattr(m, name), name
    assert back.codes == [] and back.num_imported_funcs == 1
    assert back.func_type(1) == m.func_type(1)


def test_rich_module_without_wasm() -> None:
    engine = Engine()
    data = engine.precompile_module(RICH)
    assert RICH not in data and b"\0asm" not in data     # the wasm binary is not embedded
    module = Module.deserialize(engine, data)
    store, imports = rich_imports()
    inst = Instance(module, imports, store)
    assert inst.exports["c"].value == 42                     # start ran
    assert inst.exports["e"].value == 7                      # global.get of an import
    assert inst.exports["call_own"](1, 5) == 10 and inst.exports["call_own"](2, 5) == 6
    assert bytes(inst.exports["load"](16 + i) for i in range(5)) == b"hello"
    inst.exports["init"]()
    assert inst.exports["load"](100) == ord("p")
    with pytest.raises(Trap) as e:
        inst.exports["boom"](0)
    assert e.value.kind == "unreachable"
    assert e.value.backtrace and e.value.backtrace[0][2] is not None     # the address map
    assert inst.exports["boom"](1) == 1
    assert inst.exports["four"]() == 4


# --- round trips of the bench programs in a new process -------------------------------------


@pytest.mark.skipif(not _programs(), reason=f"no bench programs in {BENCH}")
def test_bench_round_trip_new_process(tmp_path: Path) -> None:
    engine = Engine()
    progs = _programs()
    for p in progs:
        (tmp_path / (Path(p["file"]).stem + ".cwasm")).write_bytes(
            engine.precompile_module((BENCH / p["file"]).read_bytes()))
    assert not list(tmp_path.glob("*.wasm"))
    script = textwrap.dedent("""
        import json, sys
        import wasmlower.wasm, wasmlower.wasm.decode
        def no(*a):
            raise AssertionError("loading decoded wasm")
        wasmlower.wasm.decode_module = wasmlower.wasm.decode.decode_module = no
        from wasmlower.engine import Engine, Instance, Module
        engine = Engine()
        out = {}
        for p in json.loads(sys.argv[1]):
            m = Module.deserialize_file(engine, p["stem"] + ".cwasm")
            out[p["stem"]] = Instance(m).exports[p["export"]](*p["quick_args"])
        print(json.dumps(out))
    """)
    arg = json.dumps([{"stem": Path(p["file"]).stem, "export": p["export"],
                       "quick_args": p["quick_args"]} for p in progs])
    r = subprocess.run([sys.executable, "-c", script, arg], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300, check=False, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin"})
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    for p in progs:
        assert got[Path(p["file"]).stem] == p["quick_expected"], p["file"]


def test_deserialize_file_maps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.cwasm"
    path.write_bytes(Engine().precompile_module(RICH))
    mapped = artifact.map_file(path)
    assert isinstance(mapped, mmap.mmap)
    mapped.close()
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("read instead of mapped"))
    module = Module.deserialize_file(Engine(), path)
    assert {e.name for e in module.module.exports} >= {"double", "boom"}


# --- ELF tools -------------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("readelf") is None or shutil.which("objdump") is None,
                    reason="binutils not installed")
def test_readelf_objdump(tmp_path: Path) -> None:
    path = tmp_path / "rich.o"
    path.write_bytes(Engine().precompile_module(RICH))
    r = subprocess.run(["readelf", "-a", "-W", str(path)], capture_output=True, text=True,
                       check=False)
    assert r.returncode == 0 and not r.stderr, r.stderr
    assert "X86-64" in r.stdout and "REL (Relocatable file)" in r.stdout
    for name in artifact.REQUIRED:
        assert name in r.stdout
    assert "R_X86_64_PLT32" in r.stdout and "wasm_1_double" in r.stdout
    d = subprocess.run(["objdump", "-d", str(path)], capture_output=True, text=True,
                       check=False)
    assert d.returncode == 0 and not d.stderr, d.stderr
    assert "<wasm_1_double>:" in d.stdout and "(bad)" not in d.stdout
    assert "<wasmlower_trap>:" in d.stdout


def test_header_fields() -> None:
    data = Engine().precompile_module(RICH)
    assert data[7] == artifact.OS_ABI
    assert struct.unpack_from("<HH", data, 16) == (1, 62)          # ET_REL, EM_X86_64
    assert struct.unpack_from("<I", data, 48)[0] == artifact.E_FLAGS_MODULE
    header = artifact.read_header(memoryview(data))
    assert header.kind == "module" and header.machine == "x86_64"
    with pytest.raises(ArtifactError, match="holds a module, expected a component"):
        artifact.load_artifact(data, Engine().fingerprint(), kind="component")


# --- damage -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good() -> bytes:
    return Engine().precompile_module(RICH)


@pytest.fixture
def never_map_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """In the damage tests nothing may be mapped executable."""
    from wasmlower.runtime import native

    def refuse(*a, **k):
        raise AssertionError("code was mapped from a damaged artifact")
    monkeypatch.setattr(native, "CodeMapping", refuse)
    monkeypatch.setattr(native, "commit", refuse)


def _load(data: bytes) -> None:
    Module.deserialize(Engine(), data)


@pytest.mark.usefixtures("never_map_code")
def test_truncated(good: bytes) -> None:
    points = sorted({*range(80), *range(80, len(good), 37), len(good) - 1})
    for n in points:
        with pytest.raises(ArtifactError) as e:
            _load(good[:n])
        assert str(e.value), n


@pytest.mark.usefixtures("never_map_code")
def test_flipped_bytes(good: bytes) -> None:
    header = artifact.read_header(memoryview(good))
    offsets = set(range(0, len(good), 7))
    for off, size, *_ in header.sections.values():
        offsets |= {off, off + size - 1, off + size // 2}
    shoff = struct.unpack_from("<Q", good, 40)[0]
    offsets |= set(range(shoff, len(good), 5))
    for off in sorted(o for o in offsets if 0 <= o < len(good)):
        for mask in (0x01, 0x80):
            bad = bytearray(good)
            bad[off] ^= mask
            with pytest.raises(ArtifactError) as e:
                _load(bytes(bad))
            assert str(e.value), off


@pytest.mark.usefixtures("never_map_code")
def test_flip_message_names_corruption(good: bytes) -> None:
    off = artifact.read_header(memoryview(good)).sections[".text"][0] + 5
    bad = bytearray(good)
    bad[off] ^= 0xFF
    with pytest.raises(ArtifactError, match="corrupted.*digest"):
        _load(bytes(bad))


@pytest.mark.usefixtures("never_map_code")
def test_wrong_settings_version_target(good: bytes) -> None:
    with pytest.raises(ArtifactError, match="setting opt_level=1, this engine has opt_level=2"):
        Module.deserialize(Engine(opt_level=2), good)
    with pytest.raises(ArtifactError, match="regalloc_stress"):
        Module.deserialize(Engine(stress=True), good)
    # settings that do not change code do not matter
    Module.deserialize(Engine(check=True, parallel=False), good)
    compiled = Module(Engine(), RICH).compiled
    fp = Engine().fingerprint()
    with pytest.raises(ArtifactError, match="wasmlower version '0.0.1'"):
        _load(artifact.write_artifact(compiled, {**fp, "version": "0.0.1"}))
    with pytest.raises(ArtifactError, match="back end build"):
        _load(artifact.write_artifact(compiled, {**fp, "backend": "0123"}))
    with pytest.raises(ArtifactError, match="trap-code table"):
        _load(artifact.write_artifact(compiled, {**fp, "trap_codes": {"unreachable": 9}}))
    with pytest.raises(ArtifactError, match="features"):
        _load(artifact.write_artifact(compiled, {**fp, "features": ["simd"]}))
    compiled.target = "aarch64"
    compiled.relocs = []
    other = artifact.write_artifact(compiled, artifact.fingerprint(
        "aarch64", fp["settings"], fp["features"]))
    assert struct.unpack_from("<H", other, 18)[0] == 183
    with pytest.raises(ArtifactError, match="aarch64-unknown-linux-gnu.*x86_64-unknown-linux"):
        _load(other)


@pytest.mark.usefixtures("never_map_code")
def test_other_files(tmp_path: Path) -> None:
    cases: dict[str, bytes] = {"empty": b"", "wasm": RICH, "text": b"hello world\n" * 10,
                               "elf magic only": b"\x7fELF", "zeros": bytes(200)}
    cases["/bin/ls"] = Path("/bin/ls").read_bytes()
    cases["plain relocatable"] = write_object("x86_64", [], [], [])
    gcc = shutil.which("gcc")
    if gcc:
        src = tmp_path / "x.c"
        src.write_text("int f(int x) { return x + 1; }\n")
        subprocess.run([gcc, "-c", "-o", str(tmp_path / "x.o"), str(src)], check=True)
        cases["gcc -c"] = (tmp_path / "x.o").read_bytes()
    messages = {}
    for name, data in cases.items():
        with pytest.raises(ArtifactError) as e:
            _load(data)
        messages[name] = str(e.value)
        path = tmp_path / "f.bin"
        path.write_bytes(data)
        with pytest.raises(ArtifactError):
            Module.deserialize_file(Engine(), path)
    assert "empty" in messages["empty"]
    assert "not an ELF file" in messages["wasm"]
    assert "not a wasmlower artifact" in messages["/bin/ls"]
    if gcc:
        assert "OS/ABI" in messages["gcc -c"]
    with pytest.raises(ArtifactError, match="directory"):
        Module.deserialize_file(Engine(), tmp_path)


def test_compiler_builder_engine_artifacts_agree() -> None:
    b = CompilerBuilder("x86_64").set("opt_level", 2)
    data = Engine(builder=b).precompile_module(RICH)
    Module.deserialize(Engine(opt_level=2), data)


# --- code mapped from the file's pages --------------------------------------------------


def _maps_of(path: Path) -> list[str]:
    return [line for line in Path("/proc/self/maps").read_text().splitlines()
            if line.endswith(str(path))]


def test_deserialize_file_runs_code_from_the_files_pages(tmp_path: Path) -> None:
    engine = Engine()
    path = tmp_path / "sum.cwasm"
    path.write_bytes(engine.precompile_module((REPO / "examples" / "sum.wasm").read_bytes()))
    header = artifact.read_header(memoryview(path.read_bytes()))
    assert header.sections[artifact.SEC_TEXT][0] % mmap.PAGESIZE == 0   # text on its own page
    module = Module.deserialize_file(engine, path)
    file_text = module.compiled.file_text
    assert file_text is not None
    instance = Instance(module)
    assert instance._mapping.base == file_text.base           # no copy
    assert instance.exports["sum"](100) == 5050
    assert any(" r-xp " in line for line in _maps_of(path))
    # From bytes (no file) the code is copied into an anonymous mapping instead.
    copied = Instance(Module.deserialize(engine, path.read_bytes()))
    assert copied._mapping.file_text is None and copied.exports["sum"](10) == 55


def test_file_text_refuses_changed_pages(tmp_path: Path) -> None:
    from wasmlower.runtime.native import FileText
    path = tmp_path / "t.bin"
    path.write_bytes(b"\xc3" * 100)
    with open(path, "rb") as f:
        assert FileText(f.fileno(), 0, b"\xc3" * 100).text_size == 100
        with pytest.raises(ArtifactError, match="changed while it was being loaded"):
            FileText(f.fileno(), 0, b"\xc3" * 99 + b"\x90")


def test_written_text_has_its_calls_resolved() -> None:
    engine = Engine()
    compiled = Module(engine, (REPO / "examples" / "fib.wasm").read_bytes()).compiled
    data = engine.precompile_module((REPO / "examples" / "fib.wasm").read_bytes())
    off, size = artifact.read_header(memoryview(data)).sections[artifact.SEC_TEXT][:2]
    assert compiled.relocs                              # fib calls itself
    assert data[off:off + size] == artifact.apply_relocs(compiled.text, compiled.relocs)

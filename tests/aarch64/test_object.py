"""AArch64 ELF objects: e_machine, R_AARCH64_CALL26, readelf/objdump, load and run."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import wasmtime

from wasmlower.engine import Engine, Instance, Module

WAT = """(module
  (func $f (param i32) (result i32) (i32.mul (local.get 0) (i32.const 3)))
  (func $g (export "g") (param i32) (result i32) (i32.add (call $f (local.get 0)) (call $f (i32.const 1))))
  (func (export "h") (param i32) (result i32) (call $g (local.get 0))))"""


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> tuple[Path, bytes]:
    engine = Engine(target="aarch64")
    data = Module(engine, wasmtime.wat2wasm(WAT)).serialize()
    path = tmp_path_factory.mktemp("a64") / "m.o"
    path.write_bytes(data)
    return path, data


def test_header_and_relocations(artifact):
    from elftools.elf.elffile import ELFFile
    from elftools.elf.relocation import RelocationSection
    path, _ = artifact
    with path.open("rb") as f:
        elf = ELFFile(f)
        assert elf["e_machine"] == "EM_AARCH64"
        relocs = [r for s in elf.iter_sections() if isinstance(s, RelocationSection)
                  for r in s.iter_relocations()]
        assert relocs and {r["r_info_type"] for r in relocs} == {283}     # R_AARCH64_CALL26


@pytest.mark.skipif(shutil.which("readelf") is None, reason="no readelf")
def test_readelf_is_clean(artifact):
    path, _ = artifact
    out = subprocess.run(["readelf", "-a", "-W", str(path)], capture_output=True, text=True, check=False)
    assert out.returncode == 0
    text = (out.stdout + out.stderr).lower()
    # readelf says this of every AArch64 object (GNU as's too); anything else is a problem.
    text = text.replace("the decoding of unwind sections for machine type aarch64 is not "
                        "currently supported.", "")
    assert "warning" not in text and "error" not in text
    assert "R_AARCH64_CALL26" in out.stdout


@pytest.mark.skipif(shutil.which("aarch64-linux-gnu-objdump") is None, reason="no objdump")
def test_objdump_disassembles(artifact):
    path, _ = artifact
    out = subprocess.run(["aarch64-linux-gnu-objdump", "-d", "-r", str(path)],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0 and "elf64-littleaarch64" in out.stdout
    assert "stp\tx29, x30, [sp, #-16]!" in out.stdout
    assert "R_AARCH64_CALL26" in out.stdout and "\tbl\t" in out.stdout


def test_artifact_loads_and_runs(artifact):
    _, data = artifact
    engine = Engine(target="aarch64")
    inst = Instance(Module.deserialize(engine, data))
    assert inst.exports["h"](5) == 18


def test_cli_run_target_aarch64(capsys):
    from wasmlower.cli import main
    bench = Path(__file__).resolve().parents[3] / "shared" / "bench" / "fib.wasm"
    if not bench.exists():
        pytest.skip("no ../shared/bench")
    code = main(["run", "--target", "aarch64", str(bench), "--invoke", "run", "15"])
    assert not code
    assert capsys.readouterr().out.strip() == "610"

"""The `wasmlower` command, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def wasmlower(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wasmlower", *args], cwd=cwd, check=False,
                          capture_output=True, text=True, timeout=600)


def test_run_prints_each_result() -> None:
    r = wasmlower("run", "examples/fib.wasm", "--invoke", "fib", "25")
    assert (r.returncode, r.stdout) == (0, "75025\n"), r.stderr
    r = wasmlower("run", "examples/divide.wasm", "--invoke", "div", "7", "-2")
    assert (r.returncode, r.stdout) == (0, "-3\n"), r.stderr


def test_run_reports_a_trap_with_status_1() -> None:
    r = wasmlower("run", "examples/divide.wasm", "--invoke", "div", "7", "0")
    assert r.returncode == 1
    assert "integer divide by zero" in r.stderr
    assert "wasm offset" in r.stderr                 # the backtrace


def test_run_rejects_bad_calls_clearly() -> None:
    r = wasmlower("run", "examples/fib.wasm", "--invoke", "nope")
    assert r.returncode == 2 and "exports no function 'nope'" in r.stderr
    r = wasmlower("run", "examples/fib.wasm", "--invoke", "fib")
    assert r.returncode == 2 and "takes 1 argument" in r.stderr
    r = wasmlower("run", "examples/fib.wasm", "--invoke", "fib", "--bogus")
    assert r.returncode == 2 and "unrecognized arguments: --bogus" in r.stderr


def test_malformed_input_is_an_error_not_a_crash(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(b"\0asm\x01\0\0\0\x01\x05")
    r = wasmlower("run", str(bad), "--invoke", "f")
    assert r.returncode == 1
    assert r.stderr.startswith("error: at offset 0x")


def test_compile_writes_an_artifact_that_runs(tmp_path: Path) -> None:
    out = tmp_path / "mandel.o"
    r = wasmlower("compile", "examples/mandel.wasm", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:4] == b"\x7fELF"
    r = wasmlower("run", str(out), "--invoke", "mandel", "32")
    r2 = wasmlower("run", "examples/mandel.wasm", "--invoke", "mandel", "32")
    assert r.returncode == 0 and r.stdout == r2.stdout and int(r.stdout) > 0


def test_run_accepts_wat_text(tmp_path: Path) -> None:
    pytest.importorskip("wasmtime")
    r = wasmlower("run", "examples/sum.wat", "--invoke", "sum", "10")
    assert (r.returncode, r.stdout) == (0, "55\n"), r.stderr


def test_spec_writes_json(tmp_path: Path) -> None:
    from wasmlower.spec.runner import find_spec_dir
    spec = find_spec_dir()
    if spec is None:
        pytest.skip("the spec test suite was not found")
    out = tmp_path / "spec.json"
    r = wasmlower("spec", str(spec / "fac.wast"), "--json", str(out), "-q")
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    counts = data["files"]["fac.wast"]["assert_return"]
    assert counts["failed"] == 0 and counts["passed"] > 0
    assert data["total"]["assert_return"] == counts


def test_rules_check_passes_on_the_shipped_rules() -> None:
    r = wasmlower("rules", "check", "x64")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 errors" in r.stdout and "0 coverage holes" in r.stdout


def test_help_lists_the_commands() -> None:
    r = wasmlower("--help")
    for command in ("run", "compile", "spec", "bench", "explain", "rules", "fuzz"):
        assert command in r.stdout

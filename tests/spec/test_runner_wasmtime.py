"""The spec runner, checked against Wasmtime (a correct engine: the runner must agree)."""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from wasmlower.spec import runner
from wasmlower.spec.runner import (
    KINDS,
    CompileRejected,
    FileResult,
    Imports,
    UnsupportedFeature,
    find_spec_dir,
    format_table,
    run_file,
    run_files,
    scope_files,
    to_json,
    totals,
)
from wasmlower.spec.wast import Value

wasmtime = pytest.importorskip("wasmtime")

from wasmlower.spec.wasmtime_engine import WasmtimeAdapter

SPEC_DIR = find_spec_dir()
needs_suite = pytest.mark.skipif(SPEC_DIR is None, reason="the wasm spec test suite is absent")


def manifest() -> dict[str, dict[str, str]]:
    assert SPEC_DIR is not None
    with (SPEC_DIR / "MANIFEST.tsv").open(encoding="utf-8") as fh:
        return {row["file"]: row for row in csv.DictReader(fh, delimiter="\t")}


def failed(result: FileResult | Mapping[str, FileResult]) -> int:
    return sum(bucket["failed"] for bucket in totals(result).values())


@pytest.fixture(scope="module")
def adapter() -> WasmtimeAdapter:
    return WasmtimeAdapter()


# --------------------------------------------------------------------------- suite files


@needs_suite
@pytest.mark.parametrize("name", [
    "i32.wast", "i64.wast", "f32.wast", "f64.wast", "conversions.wast", "memory_trap.wast",
    "call_indirect.wast", "names.wast", "binary.wast", "float_exprs.wast", "func_ptrs.wast",
    "start.wast", "float_literals.wast", "f32_bitwise.wast", "select.wast", "fac.wast",
])
def test_in_scope_files_all_pass(adapter: WasmtimeAdapter, name: str) -> None:
    assert SPEC_DIR is not None
    row = manifest()[name]
    result = run_file(SPEC_DIR / name, adapter)
    assert result.error is None
    assert failed(result) == 0, "\n".join(map(str, result.failures[:20]))
    counts = result.counts
    assert counts["assert_return"]["passed"] == int(row["n_assert_return"])
    assert counts["assert_trap"]["passed"] == int(row["n_assert_trap"])
    assert counts["assert_invalid"]["passed"] == int(row["n_assert_invalid"])
    assert counts["assert_malformed"]["passed"] == int(row["n_assert_malformed"])
    assert counts["assert_exhaustion"]["passed"] == int(row["n_assert_exhaustion"])
    assert counts["module"]["passed"] == int(row["n_modules"])
    assert result.total("skipped") == 0


@needs_suite
def test_every_in_scope_file(adapter: WasmtimeAdapter) -> None:
    assert SPEC_DIR is not None
    files = scope_files(SPEC_DIR)
    rows = manifest()
    assert {p.name for p in files} == {
        name for name, row in rows.items() if row["tier"] in ("mvp", "2.0-scalar")}
    start = time.perf_counter()
    results = run_files(files, adapter)
    elapsed = time.perf_counter() - start
    total = totals(results)
    print(f"\n{format_table(results)}\nran {len(files)} files in {elapsed:.1f}s")
    failures = [f for r in results.values() for f in r.failures]
    assert not failures, "\n".join(map(str, failures[:30]))
    want_return = sum(int(rows[p.name]["n_assert_return"]) for p in files)
    want_trap = sum(int(rows[p.name]["n_assert_trap"]) for p in files)
    assert total["assert_return"]["passed"] + total["assert_return"]["skipped"] == want_return
    assert total["assert_return"]["skipped"] <= 5
    assert total["assert_trap"]["passed"] == want_trap
    assert total["assert_exhaustion"]["passed"] == 15
    data = to_json(results)
    assert set(data["files"]) == {p.name for p in files}
    assert data["total"] == total
    for counts in [data["total"], *data["files"].values()]:
        for kind in KINDS:
            assert set(counts[kind]) == {"passed", "failed", "skipped"}


@needs_suite
def test_scope_filtering(adapter: WasmtimeAdapter) -> None:
    assert SPEC_DIR is not None
    simd = run_file(SPEC_DIR / "simd_address.wast", adapter)
    assert simd.counts["assert_return"] == {"passed": 0, "failed": 0, "skipped": 36}
    assert simd.skip_reasons["simd"] >= 36 + 6 + 3
    mem64 = run_file(SPEC_DIR / "address64.wast", adapter)
    assert mem64.counts["assert_return"]["skipped"] == 206
    assert set(mem64.skip_reasons) == {"memory64"}
    # a 3.0 file still runs its in-scope modules (and their imports/exports)
    linking = run_file(SPEC_DIR / "linking.wast", adapter)
    assert failed(linking) == 0, "\n".join(map(str, linking.failures))
    assert linking.counts["assert_return"]["passed"] > 50
    assert linking.counts["module"]["skipped"] > 0
    assert linking.counts["register"]["passed"] > 0
    # tiers=None runs everything
    everything = run_file(SPEC_DIR / "simd_address.wast", adapter, tiers=None)
    assert everything.counts["assert_return"] == {"passed": 36, "failed": 0, "skipped": 0}


# --------------------------------------------------------------------------- small scripts

LINKING = r'''
(module $A
  (global (export "g") (mut i32) (i32.const 5))
  (memory (export "mem") 1)
  (func (export "get") (result i32) (global.get 0))
  (func (export "id32") (param f32) (result f32) (local.get 0))
  (func (export "id64") (param f64) (result f64) (local.get 0))
  (func (export "pair") (result i32 i64) (i32.const -1) (i64.const -2))
  (func (export "ext") (param externref) (result externref) (local.get 0))
  (func $deep (export "deep") (call $deep))
  (func (export "div") (param i32) (result i32) (i32.div_u (i32.const 1) (local.get 0)))
  (func (export "set") (param i32) (global.set 0 (local.get 0)))
)
(register "A" $A)
(module $B
  (import "A" "g" (global $g (mut i32)))
  (import "spectest" "print_i32" (func $p (param i32)))
  (import "spectest" "global_i32" (global $s i32))
  (import "spectest" "memory" (memory 1 2))
  (func (export "read") (result i32) (global.get $g))
  (func (export "spec") (result i32) (global.get $s))
)
(assert_return (invoke $A "get") (i32.const 5))
(invoke $A "set" (i32.const 9))
(assert_return (invoke $B "read") (i32.const 9))
(assert_return (get $A "g") (i32.const 9))
(assert_return (invoke $B "spec") (i32.const 666))
(assert_return (invoke $A "id32" (f32.const nan:0x200001)) (f32.const nan:0x200001))
(assert_return (invoke $A "id32" (f32.const -nan:0x1)) (f32.const -nan:0x1))
(assert_return (invoke $A "id64" (f64.const nan:0x4)) (f64.const nan:0x4))
(assert_return (invoke $A "pair") (i32.const -1) (i64.const -2))
(assert_return (invoke $A "ext" (ref.extern 7)) (ref.extern 7))
(assert_return (invoke $A "ext" (ref.null extern)) (ref.null extern))
(assert_trap (invoke $A "div" (i32.const 0)) "integer divide by zero")
(assert_exhaustion (invoke $A "deep") "call stack exhausted")
(assert_unlinkable (module (import "A" "nope" (func))) "unknown import")
(assert_unlinkable (module (import "A" "g" (global i32))) "incompatible import type")
(assert_trap (module (func $s unreachable) (start $s)) "unreachable")
(assert_trap (module (memory 0) (data (i32.const 0) "x")) "out of bounds memory access")
(assert_invalid (module (func (result i32))) "type mismatch")
(assert_malformed (module binary "\00asm" "\02\00\00\00") "unknown binary version")
(assert_malformed (module quote "(func") "unexpected end")
(module definition $D (memory 1) (func (export "one") (result i32) (i32.const 1)))
(module instance $I $D)
(assert_return (invoke $I "one") (i32.const 1))
(assert_exception (invoke $A "get"))
'''


def write(tmp_path: Path, text: str, name: str = "t.wast") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_linking_and_values(tmp_path: Path, adapter: WasmtimeAdapter) -> None:
    result = run_file(write(tmp_path, LINKING), adapter)
    assert failed(result) == 0, "\n".join(map(str, result.failures))
    c = result.counts
    assert c["assert_return"]["passed"] == 11
    assert c["module"]["passed"] == 4
    assert c["register"]["passed"] == 1
    assert c["action"]["passed"] == 1
    assert c["assert_trap"]["passed"] == 3
    assert c["assert_exhaustion"]["passed"] == 1
    assert c["assert_unlinkable"]["passed"] == 2
    assert c["assert_invalid"]["passed"] == 1
    assert c["assert_malformed"]["passed"] == 2
    assert c["assert_exception"] == {"passed": 0, "failed": 0, "skipped": 1}
    assert result.notes["assert_malformed: rejected by the text parser"] == 1


def test_signalling_nan_round_trips(adapter: WasmtimeAdapter) -> None:
    module = adapter.compile(wasmtime.wat2wasm(
        '(module (func (export "f") (param f32) (result f32) local.get 0))'))
    instance = adapter.instantiate(module, lambda m, f: None)
    for bits in (0x7FA00000, 0x7F800001, 0xFF800123, 0x7FC00000):
        assert adapter.invoke(instance, "f", [Value("f32", bits)]) == [Value("f32", bits)]


def test_failures_are_reported(tmp_path: Path, adapter: WasmtimeAdapter) -> None:
    script = write(tmp_path, '''
(module (func (export "f") (result i32) (i32.const 1))
        (func (export "n") (result f32) (f32.const nan:0x200000)))
(assert_return (invoke "f") (i32.const 2))
(assert_return (invoke "f") (i32.const 1) (i32.const 1))
(assert_return (invoke "n") (f32.const nan:canonical))
(assert_return (invoke "n") (f32.const nan:arithmetic))
(assert_trap (invoke "f") "unreachable")
(assert_invalid (module (func)) "nothing wrong")
(assert_return (invoke "missing"))
(module (import "nowhere" "x" (func)))
(assert_return (invoke "f") (i32.const 1))
''')
    result = run_file(script, adapter)
    c = result.counts
    assert c["assert_return"] == {"passed": 0, "failed": 6, "skipped": 0}
    assert c["assert_trap"]["failed"] == 1 and c["assert_invalid"]["failed"] == 1
    assert c["module"] == {"passed": 1, "failed": 1, "skipped": 0}
    lines = {f.line: f.message for f in result.failures}
    assert "expected [(i32.const 2" in lines[4] and "got [(i32.const 1" in lines[4]
    assert "nan:canonical" in lines[6]
    assert "module compiled" in lines[9]
    assert "unknown import" in lines[11]
    assert "did not load" in lines[12]


class BitFlip(WasmtimeAdapter):
    def invoke(self, instance: object, name: str, args: list[Value]) -> list[Value]:
        out = super().invoke(instance, name, args)
        return [Value(v.type, v.bits ^ 1) if v.type == "i32" and v.bits is not None else v
                for v in out]


class AcceptEverything(WasmtimeAdapter):
    def compile(self, wasm: bytes) -> object:
        try:
            return super().compile(wasm)
        except CompileRejected:
            return object()


class RejectEverything(WasmtimeAdapter):
    def compile(self, wasm: bytes) -> object:
        raise CompileRejected("invalid", "no thanks")


class Crashy(WasmtimeAdapter):
    def invoke(self, instance: object, name: str, args: list[Value]) -> list[Value]:
        raise RuntimeError("engine bug")


class NoFloats(WasmtimeAdapter):
    def compile(self, wasm: bytes) -> object:
        raise UnsupportedFeature("floats")


@needs_suite
def test_broken_engines_are_caught() -> None:
    assert SPEC_DIR is not None
    path = SPEC_DIR / "i32.wast"
    flipped = run_file(path, BitFlip())
    assert flipped.counts["assert_return"]["failed"] > 300
    assert flipped.counts["assert_trap"]["passed"] == 10

    accepting = run_file(path, AcceptEverything())
    assert accepting.counts["assert_invalid"] == {"passed": 0, "failed": 83, "skipped": 0}
    assert accepting.counts["assert_return"]["failed"] == 0

    rejecting = run_file(path, RejectEverything())
    assert rejecting.counts["module"]["failed"] == 1
    assert rejecting.counts["assert_return"]["failed"] == 364
    assert "did not load" in rejecting.failures[-1].message
    assert rejecting.counts["assert_invalid"]["passed"] == 83

    crashy = run_file(path, Crashy())
    assert crashy.counts["assert_return"]["failed"] == 364
    assert "RuntimeError: engine bug" in crashy.failures[0].message

    unsupported = run_file(path, NoFloats())
    assert unsupported.counts["assert_return"]["skipped"] == 364
    assert unsupported.skip_reasons["floats"] >= 365


class FakeAdapter:
    """A pure-Python adapter: every binary module 'works' and exports nothing."""

    name = "fake"

    def compile(self, wasm: bytes) -> object:
        if not wasm.startswith(b"\0asm"):
            raise CompileRejected("malformed", "bad magic")
        return wasm

    def instantiate(self, module: object, imports: Imports) -> object:
        return {"module": module}

    def exports(self, instance: object) -> Mapping[str, object]:
        return {}

    def invoke(self, instance: object, name: str, args: list[Value]) -> list[Value]:
        return []

    def get_global(self, instance: object, name: str) -> Value:
        return Value("i32", 0)

    def spectest(self) -> Mapping[str, object]:
        return {}


def test_text_modules_skip_without_wasmtime(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "_wat2wasm", None)
    monkeypatch.setitem(sys.modules, "wasmtime", None)  # import wasmtime -> ImportError
    script = write(tmp_path, r'''
(module (func))
(assert_return (invoke "f"))
(module binary "\00asm\01\00\00\00")
(assert_return (invoke "f"))
(assert_malformed (module binary "\00asx\01\00\00\00") "magic")
(assert_invalid (module (func (result i32))) "type mismatch")
''')
    result = run_file(script, FakeAdapter())
    c = result.counts
    assert c["module"] == {"passed": 1, "failed": 0, "skipped": 1}
    assert c["assert_return"] == {"passed": 1, "failed": 0, "skipped": 1}
    assert c["assert_malformed"]["passed"] == 1
    assert c["assert_invalid"]["skipped"] == 1
    assert result.skip_reasons["wat text needs the wasmtime package"] == 3


def test_script_errors_do_not_stop_a_run(tmp_path: Path, adapter: WasmtimeAdapter) -> None:
    bad = write(tmp_path, "(module)\n(assert_return (invoke \"f\" (i32.const 1x)))", "bad.wast")
    worse = write(tmp_path, "(module\n(invoke \"f\")", "worse.wast")
    good = write(tmp_path, "(module (func (export \"f\")))\n(invoke \"f\")", "good.wast")
    results = run_files([bad, worse, good], adapter)
    # a command that cannot be read fails by itself ...
    assert results["bad.wast"].error is None
    assert results["bad.wast"].counts["module"]["passed"] == 1
    assert results["bad.wast"].counts["assert_return"]["failed"] == 1
    assert "bad.wast:2:" in results["bad.wast"].failures[0].message
    # ... an s-expression error makes the whole file unreadable
    assert results["worse.wast"].error is not None
    assert "worse.wast:1:1:" in results["worse.wast"].error
    assert results["good.wast"].counts["action"]["passed"] == 1
    data = to_json(results)
    assert data["file_errors"].keys() == {"worse.wast"}
    table = format_table(results)
    assert "worse.wast" in table and "TOTAL" in table and "ERROR" in table


def test_find_spec_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WASMLOWER_SPEC_DIR", str(tmp_path))
    assert find_spec_dir() == tmp_path
    (tmp_path / "MANIFEST.tsv").write_text("file\ttier\na.wast\tmvp\nb.wast\tsimd\n")
    (tmp_path / "a.wast").write_text("")
    (tmp_path / "b.wast").write_text("")
    assert scope_files(tmp_path) == [tmp_path / "a.wast"]
    assert scope_files(tmp_path, None) == [tmp_path / "a.wast", tmp_path / "b.wast"]
    monkeypatch.setenv("WASMLOWER_SPEC_DIR", str(tmp_path / "nope"))
    assert find_spec_dir() is None


def test_check_messages(tmp_path: Path, adapter: WasmtimeAdapter) -> None:
    script = write(tmp_path, '''
(module (func (export "div") (param i32) (result i32) (i32.div_s (i32.const 1) (local.get 0))))
(assert_trap (invoke "div" (i32.const 0)) "integer divide by zero")
(assert_trap (invoke "div" (i32.const 0)) "integer overflow")
''')
    lenient = run_file(script, adapter)
    assert lenient.counts["assert_trap"] == {"passed": 2, "failed": 0, "skipped": 0}
    strict = run_file(script, adapter, check_messages=True)
    assert strict.counts["assert_trap"] == {"passed": 1, "failed": 1, "skipped": 0}
    assert "does not match 'integer overflow'" in strict.failures[0].message


@needs_suite
def test_trap_messages_of_wasmtime(adapter: WasmtimeAdapter) -> None:
    assert SPEC_DIR is not None
    for name in ("traps.wast", "memory_trap.wast", "conversions.wast", "call_indirect.wast"):
        result = run_file(SPEC_DIR / name, adapter, check_messages=True)
        assert result.counts["assert_trap"]["failed"] == 0, result.failures[:5]

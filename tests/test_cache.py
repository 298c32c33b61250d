"""The incremental compilation cache: hits, one-function changes, keys, damaged entries."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import wasmtime

from wasmlower.cache import CacheStore, DirectoryCacheStore, MemoryCacheStore
from wasmlower.compiler import CompilerBuilder
from wasmlower.engine import Engine, Instance, Module


def module(n: int, changed: int | None = None, extra: str = "") -> bytes:
    """``n`` functions, each calling its predecessor; ``changed`` gets a longer body."""
    funcs = ['(func $f0 (export "f0") (param i32) (result i32) (local.get 0))']
    for i in range(1, n):
        more = "(i32.const 7) (i32.add) (i32.const 3) (i32.xor)" if i == changed else ""
        funcs.append(f'(func $f{i} (export "f{i}") (param i32) (result i32) '
                     f'(i32.add (call $f{i - 1} (local.get 0)) (i32.const {i})) {more})')
    return wasmtime.wat2wasm("(module (memory 1)" + extra + "\n".join(funcs) + ")")


def compiler(store: CacheStore, **settings: object):
    b = CompilerBuilder("x86_64").enable_incremental_compilation(store)
    for k, v in settings.items():
        b.set(k, v)
    return b.build()


@pytest.fixture(params=["memory", "directory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> CacheStore:
    return MemoryCacheStore() if request.param == "memory" else \
        DirectoryCacheStore(tmp_path / "cache")


def test_protocol(store: CacheStore) -> None:
    assert isinstance(store, CacheStore)
    assert store.get(b"k" * 32) is None
    assert store.insert(b"k" * 32, b"value") is True
    assert store.get(b"k" * 32) == b"value"


def test_unchanged_module_is_served_from_the_cache(store: CacheStore) -> None:
    wasm = module(40)
    first = compiler(store)
    a = first.compile_module(wasm)
    assert first.stats["functions_compiled"] == 40 and first.stats["cache_hits"] == 0
    second = compiler(store)            # a new compiler (as in a new process), same store
    b = second.compile_module(wasm)
    assert second.stats["functions_compiled"] == 0 and second.stats["cache_hits"] == 40
    assert a.text == b.text and a.functions == b.functions and a.relocs == b.relocs


def test_one_changed_function_recompiles_alone(store: CacheStore) -> None:
    c = compiler(store)
    c.compile_module(module(40))
    edited = module(40, changed=5)       # body 5 grows: later bodies move in the binary
    before = c.stats["functions_compiled"]
    got = c.compile_module(edited)
    assert c.stats["functions_compiled"] - before == 1
    fresh = CompilerBuilder("x86_64").build().compile_module(edited)
    assert got.text == fresh.text
    assert got.functions == fresh.functions          # address maps rebased to the new offsets
    inst = Instance(Module(Engine(), got))
    assert inst.exports["f4"](0) == sum(range(5))
    assert inst.exports["f6"](0) == ((sum(range(6)) + 7) ^ 3) + 6


def test_module_context_is_in_the_key(store: CacheStore) -> None:
    c = compiler(store)
    c.compile_module(module(10))
    before = c.stats["functions_compiled"]
    c.compile_module(module(10, extra='(global $g (mut i32) (i32.const 0))'))
    assert c.stats["functions_compiled"] - before == 10


def test_settings_are_in_the_key(store: CacheStore) -> None:
    compiler(store).compile_module(module(10))
    c2 = compiler(store, regalloc_stress=True)
    c2.compile_module(module(10))
    assert c2.stats["functions_compiled"] == 10
    c3 = compiler(store, parallel_threshold=5)      # does not change code: still hits
    c3.compile_module(module(10))
    assert c3.stats["functions_compiled"] == 0


def test_version_is_in_the_key(store: CacheStore, monkeypatch: pytest.MonkeyPatch) -> None:
    compiler(store).compile_module(module(10))
    import wasmlower
    monkeypatch.setattr(wasmlower, "__version__", "999.0")
    c = compiler(store)
    c.compile_module(module(10))
    assert c.stats["functions_compiled"] == 10


def test_damaged_entries_are_misses(tmp_path: Path) -> None:
    store = DirectoryCacheStore(tmp_path / "c")
    compiler(store).compile_module(module(12))
    files = [p for p in (tmp_path / "c").glob("??/*")]
    assert len(files) == 12 == store.count()
    for k, p in enumerate(files):
        data = p.read_bytes()
        p.write_bytes(b"junk" if k % 2 else data[:3] + b"{" + data[4:20])
    c = compiler(store)
    got = c.compile_module(module(12))
    assert c.stats["functions_compiled"] == 12
    assert got.text == CompilerBuilder("x86_64").build().compile_module(module(12)).text


def test_unwritable_directory_is_no_cache(tmp_path: Path) -> None:
    store = DirectoryCacheStore(tmp_path / "ro")
    (tmp_path / "ro").chmod(0o500)
    try:
        c = compiler(store)
        c.compile_module(module(5))
        assert c.stats["functions_compiled"] == 5
    finally:
        (tmp_path / "ro").chmod(0o700)


def test_engine_cache_speedup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wasm = module(150)
    store = DirectoryCacheStore(tmp_path / "e")
    t0 = time.perf_counter()
    Module(Engine(cache=store), wasm)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    warm = Module(Engine(cache=store), wasm)
    hot = time.perf_counter() - t0
    assert Instance(warm).exports["f149"](0) == sum(range(150))
    with capsys.disabled():
        print(f"\n[cache] 150 functions: cold {cold * 1e3:.0f} ms, warm {hot * 1e3:.0f} ms "
              f"({cold / hot:.1f}x)")
    assert hot < cold


def test_flipped_code_byte_in_an_entry_is_a_miss(tmp_path: Path) -> None:
    store = DirectoryCacheStore(tmp_path / "c")
    compiler(store).compile_module(module(3))
    for p in (tmp_path / "c").glob("??/*"):
        data = bytearray(p.read_bytes())
        data[-2] ^= 0x01                 # a byte of machine code
        p.write_bytes(bytes(data))
    c = compiler(store)
    c.compile_module(module(3))
    assert c.stats["functions_compiled"] == 3 and c.stats["cache_hits"] == 0


def test_aarch64_uses_the_same_cache_and_workers(tmp_path: Path) -> None:
    """One Compiler for both ISAs: AArch64 code is cached (under its own fingerprint)
    and compiled by worker processes with the same bytes as serially."""
    wasm = module(120)
    store = DirectoryCacheStore(tmp_path)
    b = CompilerBuilder("aarch64").set("parallel_threshold", 0).set("parallel_workers", 2)
    first = b.enable_incremental_compilation(store).build()
    compiled = first.compile_module(wasm)
    assert first.stats["cache_misses"] == 120 and first.stats["parallel_batches"] >= 1
    again = b.build()
    assert again.compile_module(wasm).text == compiled.text
    assert again.stats["cache_hits"] == 120 and again.stats["functions_compiled"] == 0
    serial = CompilerBuilder("aarch64").set("parallel_compilation", False).build()
    assert serial.compile_module(wasm).text == compiled.text
    x64 = compiler(store)                 # same store, other fingerprint: no hits
    x64.compile_module(wasm)
    assert x64.stats["cache_hits"] == 0
    assert Instance(Module(Engine(target="aarch64"), wasm)).exports["f3"](1) == 1 + 1 + 2 + 3

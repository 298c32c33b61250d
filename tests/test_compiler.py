"""CompilerBuilder settings, the Compiler's pieces, trampolines per signature, parallel output."""

from __future__ import annotations

import argparse
import struct
from pathlib import Path

import pytest
import wasmtime

from wasmlower.compiler import (
    Compiler,
    CompilerBuilder,
    SettingError,
    UnsupportedError,
    settings_main,
)
from wasmlower.emit.assemble import disassemble
from wasmlower.engine import Engine, Instance, Module
from wasmlower.errors import CompileError
from wasmlower.pipeline import compile_module

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "bench"

SAME_SIG = wasmtime.wat2wasm("""
(module
  (type $a (func (param i32) (result i32)))
  (type $b (func (param i32) (result i32)))          ;; a duplicate of $a
  (type $c (func (param i64 f64) (result f64)))
  (import "env" "h" (func $h (type $a)))
  (func $f0 (export "f0") (type $a) (i32.add (local.get 0) (i32.const 1)))
  (func $f1 (export "f1") (type $b) (call $f0 (local.get 0)))
  (func $f2 (export "f2") (type $a) (call $h (call $f1 (local.get 0))))
  (func $f3 (export "f3") (type $a) (i32.div_u (i32.const 100) (local.get 0)))
  (func $g (export "g") (type $c) (f64.add (f64.convert_i64_s (local.get 0)) (local.get 1))))
""")


def many_functions(n: int, body: int = 0) -> bytes:
    """A module of ``n`` functions calling their predecessor; function ``body`` is varied."""
    funcs = ["(func $f0 (export \"f0\") (param i32) (result i32) (local.get 0))"]
    for i in range(1, n):
        extra = "(i32.const 7) (i32.add)" if i == body else ""
        funcs.append(f"(func $f{i} (export \"f{i}\") (param i32) (result i32) "
                     f"(i32.mul (call $f{i - 1} (local.get 0)) (i32.const {i % 5 + 1})) {extra})")
    return wasmtime.wat2wasm("(module (memory 1)\n" + "\n".join(funcs) + ")")


# --- builder -----------------------------------------------------------------------------------


def test_targets() -> None:
    assert CompilerBuilder("x86_64").triple() == "x86_64-unknown-linux-gnu"
    assert CompilerBuilder("x86_64-unknown-linux-gnu").triple() == "x86_64-unknown-linux-gnu"
    b = CompilerBuilder("aarch64")
    assert b.triple() == "aarch64-unknown-linux-gnu"
    a64 = b.build()                   # one Compiler class for both ISAs
    assert isinstance(a64, Compiler) and a64.arch == "aarch64"
    assert a64.page_size_align() == 0x10000 and a64.options().target == "aarch64"
    assert a64.compile_trap_routine()[-4:] == bytes.fromhex("c0035fd6")    # ret
    assert isinstance(CompilerBuilder("x86_64").target("aarch64-unknown-linux-gnu")
                      .target("x86_64").build(), Compiler)
    with pytest.raises(SettingError, match="unknown target 'x86-64'.*did you mean 'x86_64'"):
        CompilerBuilder("x86-64")
    with pytest.raises(ValueError, match="unknown target"):
        CompilerBuilder().target("riscv64")
    assert CompilerBuilder().triple().startswith("x86_64")   # the host


def test_settings_listing() -> None:
    rows = {r["name"]: r for r in CompilerBuilder("x86_64").settings()}
    expected = {"opt_level": "enum", "regalloc_stress": "bool", "regalloc_checker": "bool",
                "verify_ir": "bool", "parallel_compilation": "bool",
                "parallel_threshold": "number", "has_lzcnt": "bool", "has_popcnt": "bool",
                "has_bmi1": "bool", "has_sse41": "bool", "x86-64-v2": "preset",
                "x86-64-v3": "preset"}
    for name, kind in expected.items():
        assert rows[name]["kind"] == kind
        assert rows[name]["description"]
    assert rows["opt_level"]["values"] == [0, 1, 2]
    assert rows["has_lzcnt"]["values"] == [False, True]
    assert rows["x86-64-v2"]["values"]["has_popcnt"] is True
    assert "has_lzcnt" not in {r["name"] for r in CompilerBuilder("aarch64").settings()}


def test_set_and_enable() -> None:
    b = CompilerBuilder("x86_64").set("opt_level", 2).set("regalloc_stress", "true")
    b.set("parallel_threshold", "1000").enable("verify_ir")
    c = b.build()
    assert c.flags()["opt_level"] == 2 and c.flags()["regalloc_stress"] is True
    assert c.flags()["parallel_threshold"] == 1000 and c.flags()["verify_ir"] is True
    assert c.isa_flags() == {"has_sse41": True, "has_popcnt": True, "has_lzcnt": True,
                             "has_bmi1": True}
    assert "parallel_threshold" not in c.code_settings()     # does not change code
    assert c.code_settings()["opt_level"] == 2
    assert c.triple() == "x86_64-unknown-linux-gnu" and c.page_size_align() == 4096


@pytest.mark.parametrize("name, value, message", [
    ("opt_levl", 1, r"unknown setting 'opt_levl'.*did you mean opt_level"),
    ("has_lzcnt2", True, r"did you mean has_lzcnt"),
    ("opt_level", 3, r"'opt_level' must be one of 0, 1, 2; got 3"),
    ("opt_level", "fast", r"must be one of"),
    ("regalloc_stress", "maybe", r"is a bool"),
    ("regalloc_stress", 2, r"is a bool"),
    ("parallel_threshold", -1, r"integer >= 0"),
    ("parallel_threshold", "lots", r"integer >= 0"),
    ("x86-64-v3", False, r"can only be enabled"),
])
def test_bad_settings(name: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CompilerBuilder("x86_64").set(name, value)


def test_enable_errors() -> None:
    with pytest.raises(SettingError, match="is a enum, not a bool"):
        CompilerBuilder("x86_64").enable("opt_level")
    with pytest.raises(SettingError, match="unknown setting"):
        CompilerBuilder("x86_64").enable("avx512")


BITCOUNTS = wasmtime.wat2wasm("""(module
  (func (export "clz32") (param i32) (result i32) (i32.clz (local.get 0)))
  (func (export "ctz32") (param i32) (result i32) (i32.ctz (local.get 0)))
  (func (export "pop32") (param i32) (result i32) (i32.popcnt (local.get 0)))
  (func (export "clz64") (param i64) (result i64) (i64.clz (local.get 0)))
  (func (export "ctz64") (param i64) (result i64) (i64.ctz (local.get 0)))
  (func (export "pop64") (param i64) (result i64) (i64.popcnt (local.get 0))))""")


def _bitcount_reference(name: str, x: int) -> int:
    bits = 64 if name.endswith("64") else 32
    x &= (1 << bits) - 1
    if name.startswith("clz"):
        return bits - x.bit_length()
    if name.startswith("ctz"):
        return bits if x == 0 else (x & -x).bit_length() - 1
    return x.bit_count()


@pytest.mark.parametrize("flags", [{"has_lzcnt": False}, {"has_bmi1": False},
                                   {"has_popcnt": False},
                                   {"has_lzcnt": False, "has_bmi1": False, "has_popcnt": False},
                                   "x86-64-v2"])
def test_isa_flags_switch_code_generation(flags: dict | str) -> None:
    import random

    from capstone import CS_ARCH_X86, CS_MODE_64, Cs
    builder = CompilerBuilder("x86_64")
    if isinstance(flags, str):
        builder.enable(flags)
        flags = {"has_lzcnt": False, "has_bmi1": False}
    for name, value in flags.items():
        builder.set(name, value)
    engine = Engine(builder=builder)
    module = Module(engine, BITCOUNTS)
    mnemonics = {i.mnemonic for i in Cs(CS_ARCH_X86, CS_MODE_64).disasm(module.compiled.text, 0)}
    for flag, insn in (("has_lzcnt", "lzcnt"), ("has_bmi1", "tzcnt"), ("has_popcnt", "popcnt")):
        assert (insn in mnemonics) == flags.get(flag, True), (flag, sorted(mnemonics))
    exports = Instance(module).exports
    rng = random.Random(7)
    values = [0, 1, 2, 3, 0x80000000, 0xFFFFFFFF, 1 << 63, (1 << 64) - 1, 0x00F0_0000_0000_0000]
    values += [rng.getrandbits(rng.choice((8, 32, 64))) for _ in range(60)]
    for name in ("clz32", "ctz32", "pop32", "clz64", "ctz64", "pop64"):
        for x in values:
            arg = x & 0xFFFFFFFF if name.endswith("32") else x
            arg = arg - (1 << 32) if name.endswith("32") and arg >> 31 else arg
            arg = arg - (1 << 64) if name.endswith("64") and arg >> 63 else arg
            assert exports[name](arg) == _bitcount_reference(name, x), (name, hex(x))


def test_isa_flags_not_supported_yet() -> None:
    with pytest.raises(UnsupportedError, match="has_sse41=false is not supported yet"):
        CompilerBuilder("x86_64").set("has_sse41", False).build()
    with pytest.raises(CompileError):          # the engine reports it the same way
        Engine(builder=CompilerBuilder("x86_64").set("has_sse41", False))
    CompilerBuilder("x86_64").enable("x86-64-v2").enable("x86-64-v3").build()


def test_incremental_needs_a_store() -> None:
    with pytest.raises(TypeError, match="get"):
        CompilerBuilder().enable_incremental_compilation(object())


def test_settings_main(capsys: pytest.CaptureFixture[str]) -> None:
    assert settings_main(argparse.Namespace(target="x86_64")) == 0
    out = capsys.readouterr().out
    assert "settings for x86_64-unknown-linux-gnu" in out
    assert "opt_level" in out and "0|1|2" in out and "x86-64-v2" in out and "has_lzcnt" in out
    assert settings_main(argparse.Namespace(target="aarch64")) == 0
    out = capsys.readouterr().out
    assert "settings for aarch64-unknown-linux-gnu" in out and "has_lse" in out
    assert "not supported" not in out
    assert settings_main(argparse.Namespace(target="mips")) == 2
    assert "unknown target" in capsys.readouterr().err


# --- the compiler's pieces -------------------------------------------------------------------------


def test_one_trampoline_per_signature() -> None:
    compiler = CompilerBuilder("x86_64").build()
    compiled = compiler.compile_module(SAME_SIG)
    # types $a and $b are the same signature: 2 distinct signatures, 5 defined functions
    assert len(compiled.functions) == 5
    assert len(compiled.host_to_wasm) == 2 and len(compiled.wasm_to_host) == 2
    assert len(set(compiled.host_to_wasm.values())) == 2
    data = Engine().precompile_module(SAME_SIG)
    from wasmlower.emit.elf import read_object
    syms = [s.name for s in read_object(data).symbols]
    assert sum(s.startswith("wasmlower_h2w_") for s in syms) == 2
    assert sum(s.startswith("wasmlower_w2h_") for s in syms) == 2
    inst = Instance(Module(Engine(), compiled), {("env", "h"): lambda x: x * 10})
    assert inst.exports["f2"](4) == 50
    assert inst.exports["g"](2, 0.5) == 2.5


def test_compile_function_info() -> None:
    compiler = CompilerBuilder("x86_64").build()
    t = compiler.translate(SAME_SIG)
    info = compiler.compile_function(t, 3)          # f3: a division (a trap site)
    assert info.code.index == 4                     # function index: the import comes first
    assert info.start_srcloc == t.module.codes[3].offset
    assert any(kind == "int_divz" for _, kind in info.traps)
    assert info.address_map and all(0 <= off <= len(info.code.code)
                                    for off, _ in info.address_map)
    assert info.stack_maps == []
    with pytest.raises(IndexError):
        compiler.compile_function(t, 5)


def test_trampoline_code() -> None:
    compiler = CompilerBuilder("x86_64").build()
    ft = compiler.translate(SAME_SIG).module.types[0]
    h2w = compiler.compile_host_to_wasm_trampoline(ft)
    w2h = compiler.compile_wasm_to_host_trampoline(ft)
    assert disassemble(h2w)[0][1] == "push rbp" and disassemble(h2w)[-1][1] == "ret"
    assert any(text.startswith("call") for _, text in disassemble(w2h))


def test_append_code_two_modules() -> None:
    """Functions of two modules in one text section, calls resolved per module."""
    compiler = CompilerBuilder("x86_64").build()
    a = compiler.translate(many_functions(4))
    b = compiler.translate(SAME_SIG)
    fa = compiler.compile_functions(a, range(4))
    fb = compiler.compile_functions(b, range(5))
    funcs = [(f"a_{i.code.index}", i.code) for i in fa] + \
            [(f"b_{i.code.index}", i.code) for i in fb]
    owner = ["a"] * len(fa) + ["b"] * len(fb)
    pos = {(o, name): k for k, (o, (name, _)) in enumerate(zip(owner, funcs))}

    def resolve(i: int, callee: int) -> int | None:
        return pos.get((owner[i], f"{owner[i]}_{callee}"))
    obj = compiler.object("module")
    locs = compiler.append_code(obj, funcs, resolve)
    assert [n for n, _ in locs] == [n for n, _ in funcs]
    assert all(loc.start % 16 == 0 for _, loc in locs)
    starts = {n: loc.start for n, loc in locs}
    # b's f1 (index 2) calls b's f0 (index 1); a's f1 calls a's f0
    for caller, callee in (("b_2", "b_1"), ("a_1", "a_0")):
        loc = dict(locs)[caller]
        code = bytes(obj.text[loc.start:loc.start + loc.length])
        calls = [int(t.split()[1], 0) for _, t in disassemble(code, base=loc.start)
                 if t.startswith("call ") and t.split()[1][0].isdigit()]
        assert starts[callee] in calls
    assert obj.relocs and all(r[1] == "R_X86_64_PLT32" for r in obj.relocs)
    with pytest.raises(CompileError, match="was not compiled"):
        compiler.append_code(compiler.object(), funcs, lambda i, c: None)
    with pytest.raises(ValueError, match="kind"):
        compiler.object("library")


def test_compile_module_matches_pipeline() -> None:
    wasm = many_functions(30)
    assert CompilerBuilder("x86_64").build().compile_module(wasm).text == \
        compile_module(wasm).text


def test_parallel_output_is_deterministic() -> None:
    """1 worker (in process) and 2 worker processes give the same artifact bytes."""
    wasm = many_functions(130)

    def artifact(parallel: bool) -> tuple[bytes, Compiler]:
        b = CompilerBuilder("x86_64").set("parallel_compilation", parallel)
        b.set("parallel_threshold", 0).set("parallel_workers", 2)
        engine = Engine(builder=b)
        return engine.precompile_module(wasm), engine.compiler

    serial, c1 = artifact(False)
    parallel, c2 = artifact(True)
    assert c1.stats["parallel_batches"] == 0 and c2.stats["parallel_batches"] >= 2
    assert serial == parallel
    inst = Instance(Module.deserialize(Engine(), parallel))
    assert inst.exports["f129"](1) == inst.exports["f128"](1) * (129 % 5 + 1)


def test_no_workers_when_main_cannot_be_reimported(monkeypatch: pytest.MonkeyPatch) -> None:
    """``python - < script``: spawned workers could not re-import __main__: compile here."""
    import sys
    monkeypatch.setattr(sys.modules["__main__"], "__file__", "<stdin>", raising=False)
    b = CompilerBuilder("x86_64").set("parallel_threshold", 0).set("parallel_workers", 2)
    c = b.build()
    c.compile_module(many_functions(100))
    assert c.stats["parallel_batches"] == 0 and c.stats["functions_compiled"] == 100


def test_host_check(monkeypatch: pytest.MonkeyPatch) -> None:
    from wasmlower import compiler as compiler_mod
    c = CompilerBuilder("x86_64").build()
    compiler_mod.check_host(c)                          # this machine runs the tests
    flags = compiler_mod.host_cpu_flags() or set()
    monkeypatch.setattr(compiler_mod, "host_cpu_flags", lambda: flags - {"abm"})
    with pytest.raises(UnsupportedError, match="this CPU lacks has_lzcnt"):
        compiler_mod.check_host(c)
    with pytest.raises(UnsupportedError, match="lacks"):
        Instance(Module(Engine(), many_functions(2)))


# --- components: core modules in one text (tests/component runs whole components) ------------------------------------------------------------


def _leb(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def component(*sections: tuple[int, bytes]) -> bytes:
    from wasmlower.component.decode import PREAMBLE
    return PREAMBLE + b"".join(bytes([sid]) + _leb(len(p)) + p for sid, p in sections)


def test_component_one_text_one_trampoline_per_signature(tmp_path: Path) -> None:
    from wasmlower.emit import object as artifact
    from wasmlower.emit.elf import read_object
    from wasmlower.engine import Component
    from wasmlower.errors import ArtifactError
    wasm = component((1, SAME_SIG), (0, b"\x04note" + b"raw"), (1, many_functions(4)))
    engine = Engine()
    compiled = engine.compiler.compile_component(wasm)
    assert len(compiled.modules) == 2
    assert compiled.modules[0].text is compiled.modules[1].text
    # [i32]->[i32] is in both modules, [i64 f64]->[f64] in one: 2 pairs for the component
    assert len(compiled.host_to_wasm) == 2 and len(compiled.wasm_to_host) == 2
    assert compiled.sections == [(0, b"\x04noteraw")]
    data = engine.precompile_component(wasm)
    assert struct.unpack_from("<I", data, 48)[0] == artifact.E_FLAGS_COMPONENT
    syms = [s.name for s in read_object(data).symbols]
    assert sum(s.startswith("wasmlower_h2w_") for s in syms) == 2
    assert "m0_wasm_1_f0" in syms and "m1_wasm_0_f0" in syms
    path = tmp_path / "c.cwasm"
    path.write_bytes(data)
    loaded = Component.deserialize_file(engine, path)
    a, b = (Instance(m, {("env", "h"): lambda x: x * 10}) if i == 0 else Instance(m)
            for i, m in enumerate(loaded.modules))
    assert a.exports["f2"](4) == 50 and b.exports["f3"](1) == 1 * 2 * 3 * 4
    assert loaded.compiled.sections == compiled.sections
    with pytest.raises(ArtifactError, match="holds a component, expected a module"):
        Module.deserialize(engine, data)
    with pytest.raises(ArtifactError, match="holds a module, expected a component"):
        Component.deserialize(engine, engine.precompile_module(SAME_SIG))
    for n in range(0, len(data), 97):
        with pytest.raises(ArtifactError):
            Component.deserialize(engine, data[:n])
    for off in range(0, len(data), 61):
        bad = bytearray(data)
        bad[off] ^= 0x10
        with pytest.raises(ArtifactError):
            Component.deserialize(engine, bytes(bad))


def test_component_errors() -> None:
    from wasmlower.errors import MalformedError
    compiler = CompilerBuilder("x86_64").build()
    with pytest.raises(UnsupportedError, match="nested components"):
        compiler.compile_component(component((4, b"")))
    with pytest.raises(MalformedError, match="not a component"):
        compiler.compile_component(SAME_SIG)
    with pytest.raises(MalformedError, match="past the end"):
        compiler.compile_component(component((1, SAME_SIG))[:-3])


def test_parallel_workers_use_the_same_settings() -> None:
    """Worker processes compile with this compiler's ISA flags (no LZCNT here)."""
    from capstone import CS_ARCH_X86, CS_MODE_64, Cs
    funcs = "".join(f'(func (export "c{i}") (param i32) (result i32) '
                    f"(i32.add (i32.clz (local.get 0)) (i32.const {i})))" for i in range(120))
    wasm = wasmtime.wat2wasm(f"(module {funcs})")
    b = CompilerBuilder("x86_64").set("parallel_threshold", 0).set("parallel_workers", 2)
    compiler = b.set("has_lzcnt", False).build()
    compiled = compiler.compile_module(wasm)
    assert compiler.stats["parallel_batches"] >= 1
    mnemonics = {i.mnemonic for i in Cs(CS_ARCH_X86, CS_MODE_64).disasm(compiled.text, 0)}
    assert "lzcnt" not in mnemonics and "popcnt" in mnemonics
    serial = CompilerBuilder("x86_64").set("parallel_compilation", False)
    assert serial.set("has_lzcnt", False).build().compile_module(wasm).text == compiled.text

"""Components: precompile, instantiate and call, checked against Wasmtime's component
runtime (the ``wasmtime`` package) on the same binaries.

The components are written in text next to this file and turned into binaries
with ``wasmtime.wat2wasm`` (Wasmtime's text parser, which reads components).
"""

from __future__ import annotations

import math
import random
import struct
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

wasmtime = pytest.importorskip("wasmtime", reason="wasmtime (the test oracle) is not installed")
wc = pytest.importorskip("wasmtime.component", reason="this wasmtime has no component API")

from wasmlower.component.canon import VariantValue
from wasmlower.engine import Component, Engine, Instance
from wasmlower.errors import (
    ArtifactError,
    LinkError,
    MalformedError,
    Trap,
    UnsupportedError,
    ValidationError,
)

HERE = Path(__file__).parent
ROOT = HERE.parent.parent


def wat(name: str) -> bytes:
    return wasmtime.wat2wasm((HERE / name).read_text())


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()


@pytest.fixture(scope="module")
def scalars(engine: Engine) -> tuple[bytes, Component]:
    wasm = wat("scalars.wat")
    return wasm, Component(engine, wasm)


@pytest.fixture(scope="module")
def strings(engine: Engine) -> tuple[bytes, Component]:
    wasm = wat("strings.wat")
    return wasm, Component(engine, wasm)


@pytest.fixture(scope="module")
def compound(engine: Engine) -> tuple[bytes, Component]:
    wasm = wat("compound.wat")
    return wasm, Component(engine, wasm)


class Oracle:
    """One component instantiated in Wasmtime; ``call`` re-instantiates after an error
    (a trap poisons a component instance in both engines)."""

    def __init__(self, wasm: bytes, host: dict[str, Any] | None = None,
                 instances: dict[str, dict[str, Any]] | None = None) -> None:
        self.engine = wasmtime.Engine()
        self.component = wc.Component(self.engine, wasm)
        self.host, self.instances = host or {}, instances or {}
        self._new()

    def _new(self) -> None:
        self.store = wasmtime.Store(self.engine)
        linker = wc.Linker(self.engine)
        with linker.root() as root:
            for name, fn in self.host.items():
                root.add_func(name, lambda _store, *a, fn=fn: fn(*a))
            for iname, funcs in self.instances.items():
                with root.add_instance(iname) as inst:
                    for name, fn in funcs.items():
                        inst.add_func(name, lambda _store, *a, fn=fn: fn(*a))
        self.instance = linker.instantiate(self.store, self.component)

    def call(self, name: str, *args: Any) -> Any:
        try:
            return self.instance.get_func(self.store, name)(self.store, *args)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as e:
            self._new()
            return ("error", str(e).splitlines()[0])


def ours_call(holder: dict, make: Any, name: str, *args: Any) -> Any:
    try:
        return holder["i"].exports[name](*args)
    except Trap as e:
        holder["i"] = make()
        return ("error", e.kind)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, tuple) and a[:1] == ("error",):
        return isinstance(b, tuple) and b[:1] == ("error",)
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return a == b and type(a) is type(b)


# --- scalars ---------------------------------------------------------------------------

INT_RANGES = {"u8": (0, 255), "s8": (-128, 127), "u16": (0, 65535), "s16": (-32768, 32767),
              "u32": (0, 2**32 - 1), "s32": (-2**31, 2**31 - 1), "u64": (0, 2**64 - 1),
              "s64": (-2**63, 2**63 - 1)}


def int_values(t: str, rng: random.Random, n: int = 12) -> list[int]:
    lo, hi = INT_RANGES[t]
    edges = [lo, hi, 0, 1, hi // 2, lo + 1, hi - 1]
    return [x for x in edges if lo <= x <= hi] + [rng.randint(lo, hi) for _ in range(n)]


def f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def scalar_cases() -> list[tuple[str, tuple]]:
    rng = random.Random(5)
    cases: list[tuple[str, tuple]] = []
    for t in INT_RANGES:
        vals = int_values(t, rng)
        cases += [(f"add-{t}", (a, b)) for a, b in zip(vals, reversed(vals))]
    floats = [0.0, -0.0, 1.5, -2.25, math.inf, -math.inf, math.nan, 1e-310, 3.4e38, 1e300]
    cases += [("id-f64", (x,)) for x in floats]
    cases += [("id-f32", (f32(x) if abs(x) < 3.5e38 else x,)) for x in floats[:-1]]
    cases += [("next-char", (c,)) for c in "a\0\uffff\U0010fffe\ud7ff"]
    cases += [("char-of", (x,)) for x in (65, 0x10FFFF, 0xD800, 0xDFFF, 0x110000, 2**32 - 1)]
    cases += [("not", (b,)) for b in (True, False)]
    cases += [("bool-of", (x,)) for x in (0, 1, 2, 2**32 - 1)]
    cases += [("u8-of", (x,)) for x in (255, 256, 2**32 - 1)]
    cases += [("s16-of", (x,)) for x in (32767, 32768, 65535, 2**32 - 1)]
    cases += [("mix", (-128, 255, 65535, 2**32 - 1, -2**63, f32(0.1), 1e10)),
              ("mix", (1, 2, 3, 4, 5, 6.0, 7.0))]
    cases += [("host-add", (a, b)) for a, b in ((1, 2), (2**63 - 1, 1), (-5, -2**63))]
    cases += [("divide", (x,)) for x in (0, 1, 7, 1000, 2**32 - 1)]
    return cases


def host_add(a: int, b: int) -> int:
    return (a + b + 2**63) % 2**64 - 2**63


def test_scalars_match_wasmtime(scalars: tuple[bytes, Component]) -> None:
    wasm, component = scalars
    host = {"add": host_add, "twice": lambda c: c + c}
    oracle = Oracle(wasm, instances={"host": host})

    def make() -> Any:
        return component.instantiate({"host": host})

    ours = {"i": make()}
    checked = 0
    for name, args in scalar_cases():
        want = oracle.call(name, *args)
        got = ours_call(ours, make, name, *args)
        assert same(want, got), f"{name}{args}: wasmtime {want!r}, wasmlower {got!r}"
        checked += 1
    assert checked > 120


def test_scalar_results_are_lifted_by_type(scalars: tuple[bytes, Component]) -> None:
    e = scalars[1].instantiate({"host": {"add": host_add, "twice": str}}).exports
    assert e["add-u8"](200, 100) == 44                 # truncated to 8 bits
    assert e["add-s8"](100, 100) == -56                # and sign-extended
    assert e["bool-of"](7) is True
    assert e["next-char"]("a") == "b"
    assert e["host-add"](5, -7) == -2                  # through the lowered host import
    assert e.calc.add(1, 2) == 3                       # an exported instance
    assert e["add-u8-again"](1, 1) == 2                # a function exported twice


def test_scalar_traps_poison_and_name_the_module(scalars: tuple[bytes, Component]) -> None:
    e = scalars[1].instantiate({"host": {"add": host_add, "twice": str}}).exports
    with pytest.raises(Trap) as info:
        e["divide"](0)
    assert info.value.kind == "unreachable"
    # The component's core modules share one code region; frames name the module.
    assert info.value.backtrace[0][1] == "numbers!check"
    with pytest.raises(Trap, match="cannot enter component instance"):
        e["divide"](5)
    e = scalars[1].instantiate({"host": {"add": host_add, "twice": str}}).exports
    with pytest.raises(Trap, match="invalid char") as info:
        e["char-of"](0xD800)
    assert info.value.kind == "canonical_abi"


def test_bad_python_arguments_are_rejected_before_the_call(
        scalars: tuple[bytes, Component]) -> None:
    e = scalars[1].instantiate({"host": {"add": host_add, "twice": str}}).exports
    with pytest.raises(ValueError, match="out of range for u8"):
        e["add-u8"](256, 0)
    with pytest.raises(TypeError, match="expected an int for s32"):
        e["add-s32"]("1", 2)
    with pytest.raises(TypeError, match="expected a bool"):
        e["not"](1)
    with pytest.raises(TypeError, match="one-character str for char"):
        e["next-char"]("ab")
    with pytest.raises(TypeError, match="takes 2 arguments, got 1"):
        e["add-u32"](1)
    assert e["add-u32"](1, 2) == 3                     # the instance is still usable


def test_imports_are_checked(scalars: tuple[bytes, Component]) -> None:
    component = scalars[1]
    with pytest.raises(LinkError, match='missing import "host"'):
        component.instantiate({})
    with pytest.raises(LinkError, match='missing export "twice" of import "host"'):
        component.instantiate({"host": {"add": host_add}})
    with pytest.raises(LinkError, match="no import named 'hots'"):
        component.instantiate({"hots": {}})
    with pytest.raises(LinkError, match="give a mapping"):
        component.instantiate({"host": host_add})
    assert set(component.imports) == {"host"}
    assert str(component.exports["add-u8"].type) == "func(a: u8, b: u8) -> u8"


# --- strings and several core modules -------------------------------------------------------

STRINGS = ["", "a", "wörld", "héllo ✓ 𝄞", "x" * 1000, "ünï" * 30000, "tab\tnew\nline\0nul"]


def test_strings_match_wasmtime(strings: tuple[bytes, Component]) -> None:
    wasm, component = strings
    theirs: list[str] = []
    ours_log: list[str] = []
    oracle = Oracle(wasm, host={"log": theirs.append, "upper": str.upper})

    def make() -> Any:
        return component.instantiate({"log": ours_log.append, "upper": str.upper})

    ours = {"i": make()}
    for s in STRINGS:
        for name in ("greet", "shout", "bytes"):
            want = oracle.call(name, s)
            got = ours_call(ours, make, name, s)
            assert same(want, got), f"{name}({s[:20]!r}): wasmtime {want!r}, wasmlower {got!r}"
    assert ours_log == theirs == [s.upper() for s in STRINGS]
    for name in ("bad-pointer", "bad-utf8"):
        assert oracle.call(name)[0] == "error"
        assert ours_call(ours, make, name) == ("error", "canonical_abi")


def test_post_return_runs_after_each_call(strings: tuple[bytes, Component]) -> None:
    e = strings[1].instantiate({"log": print, "upper": str.upper}).exports
    assert e.posts() == 0
    assert e.greet("a") == "Hello, a!"
    assert e.greet("b") == "Hello, b!"
    assert e.posts() == 2


def test_several_core_modules_share_one_text(strings: tuple[bytes, Component]) -> None:
    component = strings[1]
    assert len(component.compiled.modules) == 3                  # main, shim, fixup
    inst = component.instantiate({"log": print, "upper": str.upper})
    assert len(inst.core_instances) == 3
    mappings = {id(ci._mapping) for ci in inst.core_instances}
    assert len(mappings) == 1
    texts = {id(m.text) for m in component.compiled.modules}
    assert len(texts) == 1


def test_exported_core_module_refuses_to_serialize(strings: tuple[bytes, Component]) -> None:
    inst = Instance(strings[1], {"log": print, "upper": str.upper})
    module = inst.exports["main-module"]
    with pytest.raises(ArtifactError, match="belongs to a component"):
        module.serialize()


def test_host_string_that_is_not_unicode_is_an_error(strings: tuple[bytes, Component]) -> None:
    e = strings[1].instantiate({"log": print, "upper": lambda s: "\ud800"}).exports
    with pytest.raises(ValueError, match="lone surrogate"):
        e.shout("x")


# --- other encodings and compound types ---------------------------------------------------


def to_wasmtime(v: Any) -> Any:
    if isinstance(v, dict):
        return types.SimpleNamespace(**v)
    return v


def from_ours(v: Any) -> Any:
    # wasmtime-py gives a result's payload without its case
    return v.value if isinstance(v, VariantValue) else v


COMPOUND = [
    *[(enc, (s,)) for enc in ("echo8", "echo16", "echo-latin1") for s in STRINGS],
    ("echo-latin1", ("h✓",)), ("echo-latin1", ("ÿ" * 5,)),
    ("sum", ([],)), ("sum", ([1, 2, 3, 2**32 - 1],)), ("sum", (list(range(5000)),)),
    ("norm", ({"x": 3.0, "y": 4.0},)), ("norm", ({"x": -1e300, "y": 1e300},)),
    ("or-else", (None, 5)), ("or-else", (7, 5)), ("or-else", (0, 5)),
    *[("enum-index", (c,)) for c in ("red", "green", "blue")],
    *[("count", (f,)) for f in (set(), {"read"}, {"read", "write", "exec"})],
    ("checked", (5,)), ("checked", (-1,)), ("checked", (2**31 - 1,)),
    ("swap", ((7, "abc"),)), ("swap", ((255, ""),)),
    ("opt-f32", (1.5,)), ("opt-f32", (None,)), ("opt-f32", (-0.0,)),
]


def test_compound_types_match_wasmtime(compound: tuple[bytes, Component]) -> None:
    wasm, component = compound
    oracle = Oracle(wasm)
    ours = {"i": component.instantiate()}
    for name, args in COMPOUND:
        want = oracle.call(name, *map(to_wasmtime, args))
        got = from_ours(ours_call(ours, component.instantiate, name, *args))
        assert same(want, got), f"{name}{args!r:.60}: wasmtime {want!r}, wasmlower {got!r}"


def test_compound_values_in_python(compound: tuple[bytes, Component]) -> None:
    e = compound[1].instantiate().exports
    assert e.checked(-1) == VariantValue("error", "negative")
    assert e.checked(3) == VariantValue("ok", 3)
    assert e.swap((1, "z")) == ("z", 1)
    with pytest.raises(ValueError, match="'purple' is not a case"):
        e["enum-index"]("purple")
    with pytest.raises(TypeError, match="expected a dict with keys"):
        e.norm({"x": 1.0})


# --- artifacts ---------------------------------------------------------------------------


def test_component_artifact_round_trip_in_a_new_process(
        strings: tuple[bytes, Component], tmp_path: Path) -> None:
    wasm, component = strings
    path = tmp_path / "strings.cwasm"
    path.write_bytes(Engine().precompile_component(wasm))
    assert path.read_bytes() == component.serialize()
    script = (
        "import sys\n"
        "from wasmlower.engine import Component, Engine\n"
        "c = Component.deserialize_file(Engine(), sys.argv[1])\n"
        "log = []\n"
        "e = c.instantiate({'log': log.append, 'upper': str.upper}).exports\n"
        "print(e.greet('artifact'), e.shout('loud'), log, e.posts())\n")
    out = subprocess.run([sys.executable, "-c", script, str(path)], cwd=tmp_path, check=False,
                         capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Hello, artifact! LOUD ['LOUD'] 1"


def test_damaged_component_artifacts(strings: tuple[bytes, Component]) -> None:
    data = strings[1].serialize()
    for cut in (0, 16, 64, len(data) // 2, len(data) - 1):
        with pytest.raises(ArtifactError):
            Component.deserialize(Engine(), data[:cut])
    rng = random.Random(3)
    for at in rng.sample(range(64, len(data)), 40):
        damaged = bytearray(data)
        damaged[at] ^= 0x20
        with pytest.raises(ArtifactError):
            Component.deserialize(Engine(), bytes(damaged))


# --- bad components --------------------------------------------------------------------

CORE_ADD = '''(core module $m (func (export "f") (param i32 i32) (result i32) (local.get 0)))
  (core instance $i (instantiate $m))'''


@pytest.mark.parametrize("text, error, message", [
    (f'''(component {CORE_ADD}
       (func (export "f") (param "a" u64) (result u32) (canon lift (core func $i "f"))))''',
     ValidationError, r"core function has type \[i32 i32\] -> \[i32\], expected \[i64\]"),
    (f'''(component {CORE_ADD}
       (func (export "f") (param "s" string) (result u32) (canon lift (core func $i "f"))))''',
     ValidationError, "needs a memory option"),
    ('''(component (core module $m (import "env" "g" (func)))
       (core instance (instantiate $m)))''',
     ValidationError, 'no instance named "env"'),
    ('''(component (type (resource (rep i32))))''', UnsupportedError, "resource types"),
    ('''(component (component))''', UnsupportedError, "nested components"),
])
def test_invalid_components_are_rejected(engine: Engine, text: str, error: type,
                                         message: str) -> None:
    wasm = wasmtime.wat2wasm(text)
    with pytest.raises(error, match=message):
        Component(engine, wasm)


def test_malformed_component_binaries(engine: Engine, scalars: tuple[bytes, Component]) -> None:
    wasm = scalars[0]
    with pytest.raises(MalformedError, match="core module, not a component"):
        Component(engine, (ROOT / "examples" / "fib.wasm").read_bytes())
    with pytest.raises(MalformedError) as info:
        Component(engine, wasm[:-7])
    assert info.value.offset is not None
    with pytest.raises(MalformedError, match="unknown component section id 13"):
        Component(engine, wasm[:8] + b"\x0d\x01\x00")


# --- the command line --------------------------------------------------------------------


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wasmlower", *args], cwd=cwd, check=False,
                          capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_cli_compiles_and_runs_components(compound: tuple[bytes, Component],
                                          tmp_path: Path) -> None:
    (tmp_path / "c.wasm").write_bytes(compound[0])
    out = cli("compile", "c.wasm", "-o", "c.o", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "c.o").read_bytes()[48:52] == b"\x01\x00\x00\x00"     # e_flags
    (tmp_path / "c.wasm").unlink()
    out = cli("run", "c.o", "--invoke", "echo16", "héllo ✓", cwd=tmp_path)
    assert (out.returncode, out.stdout) == (0, "héllo ✓\n"), out.stderr
    out = cli("run", "c.o", "--invoke", "checked", "-3", cwd=tmp_path)
    assert (out.returncode, out.stdout) == (0, "error('negative')\n"), out.stderr
    out = cli("run", "c.o", "--invoke", "norm", "1", cwd=tmp_path)
    assert out.returncode == 2 and "cannot pass a record" in out.stderr
    out = cli("run", "c.o", "--invoke", "nope", cwd=tmp_path)
    assert out.returncode == 2 and "exports no function 'nope'" in out.stderr


def test_cli_refuses_components_with_imports(scalars: tuple[bytes, Component],
                                             tmp_path: Path) -> None:
    (tmp_path / "s.wasm").write_bytes(scalars[0])
    out = cli("run", "s.wasm", "--invoke", "not", "true", cwd=tmp_path)
    assert out.returncode == 2 and "cannot provide component imports" in out.stderr


# --- damaged binaries ---------------------------------------------------------------------

SAMPLE_ARGS = {"u8": 1, "s8": -1, "u16": 2, "s16": -2, "u32": 3, "s32": -3, "u64": 4, "s64": -4,
               "f32": 1.5, "f64": 2.5, "bool": True, "char": "x", "string": "hé"}
HOSTS = {"scalars.wat": {"host": {"add": host_add, "twice": lambda c: c + c}},
         "strings.wat": {"log": lambda m: None, "upper": str.upper}, "compound.wat": {}}


@pytest.mark.parametrize("name", sorted(HOSTS))
def test_mutated_components_give_typed_errors_or_run(engine: Engine, name: str) -> None:
    """Random byte changes anywhere (component sections and core modules alike): the
    result compiles and runs, or fails with a wasmlower error; nothing else escapes."""
    from wasmlower.errors import WasmlowerError
    wasm = wat(name)
    rng = random.Random(name)
    compiled = 0
    for _ in range(40):
        data = bytearray(wasm)
        for _ in range(rng.randint(1, 2)):
            data[rng.randrange(8, len(data))] = rng.randrange(256)
        try:
            instance = Component(engine, bytes(data)).instantiate(HOSTS[name])
        except WasmlowerError:
            continue
        compiled += 1
        for func in instance.exports.values():
            params = [SAMPLE_ARGS.get(t) for _, t in getattr(func, "type", None).params] \
                if callable(func) and hasattr(func, "type") else [None]
            if None in params:
                continue
            try:
                func(*params)
            except (WasmlowerError, TypeError, ValueError):
                pass
    assert compiled < 40           # most mutations are caught by the decoders

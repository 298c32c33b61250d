"""The fault handler: wasm out-of-bounds faults trap, other faults still crash."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

wasmtime = pytest.importorskip("wasmtime")

from wasmlower.engine import Engine, Instance, Module
from wasmlower.errors import Trap

WAT = """
(module
  (memory 1 1)
  (func (export "load") (param i32) (result i32) (i32.load (local.get 0)))
  (func (export "load_off") (param i32) (result i32) (i32.load offset=0x7fffffff (local.get 0)))
  (func (export "store8") (param i32) (i32.store8 (local.get 0) (i32.const 7))))
"""


def _instance():
    return Instance(Module(Engine(), wasmtime.wat2wasm(WAT)))


@pytest.mark.parametrize("addr", [65536 - 3, 65536, 0x7FFFFFFF, 0xFFFFFFFF])
def test_out_of_bounds_access_traps_with_its_wasm_offset(addr: int) -> None:
    inst = _instance()
    with pytest.raises(Trap) as info:
        inst.exports["load"](addr - (1 << 32) if addr >= 1 << 31 else addr)
    assert info.value.kind == "heap_oob"
    # The innermost frame names the i32.load (its offset within the module).
    index, _name, offset = info.value.backtrace[0]
    assert index == 0 and offset is not None and offset > 0
    assert inst.exports["load"](65532) == 0          # the instance is still usable


def test_large_offsets_and_stores_trap() -> None:
    inst = _instance()
    for call in (lambda: inst.exports["load_off"](0), lambda: inst.exports["load_off"](-1),
                 lambda: inst.exports["store8"](65536)):
        with pytest.raises(Trap, match="out of bounds memory access"):
            call()
    inst.exports["store8"](65535)


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=False,
                          capture_output=True, text=True, timeout=120)


def test_a_fault_outside_wasm_code_still_kills_the_process() -> None:
    result = _run(f"""
        import ctypes, wasmtime
        from wasmlower.engine import Engine, Instance, Module
        inst = Instance(Module(Engine(), wasmtime.wat2wasm({WAT!r})))
        ctypes.string_at(8)        # a NULL-page read in C code, not in wasm
        print("survived")
    """)
    assert result.returncode == -signal.SIGSEGV, result
    assert "survived" not in result.stdout


def test_faulthandler_installed_first_still_reports() -> None:
    result = _run(f"""
        import ctypes, faulthandler, wasmtime
        faulthandler.enable()
        from wasmlower.engine import Engine, Instance, Module
        inst = Instance(Module(Engine(), wasmtime.wat2wasm({WAT!r})))
        try:
            inst.exports["load"](1 << 20)
        except Exception as e:
            print("trap:", type(e).__name__)
        ctypes.string_at(8)
    """)
    assert "trap: Trap" in result.stdout
    assert "Fatal Python error" in result.stderr      # faulthandler got the second fault
    assert result.returncode != 0

"""Compile wasm text for AArch64 and instantiate it (the code runs under unicorn)."""

from __future__ import annotations

import wasmtime

from wasmlower.pipeline import Options, compile_module
from wasmlower.runtime import Instance


def compile_a64(wat_or_wasm, **kw):
    wasm = wat_or_wasm if isinstance(wat_or_wasm, bytes) else bytes(wasmtime.wat2wasm(wat_or_wasm))
    return compile_module(wasm, Options(target="aarch64", check=True, **kw))


def instance(wat_or_wasm, imports=None, store=None, **kw):
    return Instance(compile_a64(wat_or_wasm, **kw), imports, store)

"""The native runtime: load compiled code, link it, instantiate it, call it.

``Store`` owns everything a thread's wasm code touches; ``Instance`` links a
``wasmlower.emit.compiled.CompiledModule`` against imports; exports are
``Func``, ``Memory``, ``Table`` and ``Global`` objects.  See docs/ABI.md for
the native layout these classes maintain.
"""

from wasmlower.runtime.instance import Func, Global, Instance
from wasmlower.runtime.memory import Memory
from wasmlower.runtime.store import Store, signature_id
from wasmlower.runtime.table import Table
from wasmlower.runtime.values import (
    F32Bits,
    F64Bits,
    bits_to_f32,
    bits_to_f64,
    f32_to_bits,
    f64_to_bits,
    from_bits,
    signed,
    to_bits,
)

__all__ = [
    "F32Bits", "F64Bits", "Func", "Global", "Instance", "Memory", "Store", "Table",
    "bits_to_f32", "bits_to_f64", "f32_to_bits", "f64_to_bits", "from_bits", "signature_id",
    "signed", "to_bits",
]

"""Incremental compilation: a key-value store of compiled functions.

``CompilerBuilder.enable_incremental_compilation(store)`` makes the compiler
look each function up before compiling it.  The key (``Compiler._cache_key``)
is a SHA-256 over the engine fingerprint (package version, target, the
settings that change code, features, trap codes), the module without its code
section (types, imports, signatures of every function, globals, memories,
tables, segments, names: everything a body can depend on), the function's
index and its body bytes.  So an unchanged module is served entirely from the
cache, and editing one body recompiles that body alone.  The value holds the
function's machine code with its trap sites, calls and address map (wasm
offsets relative to the body, so moving a body does not invalidate it).

A store only needs ``get(key) -> bytes | None`` and ``insert(key, value) ->
bool``; ``DirectoryCacheStore`` keeps one file per key, ``MemoryCacheStore``
a dict.  Entries are written atomically (temporary file + rename), so
concurrent compilers can share a directory.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol, runtime_checkable

__all__ = ["CacheStore", "DirectoryCacheStore", "MemoryCacheStore"]


@runtime_checkable
class CacheStore(Protocol):
    def get(self, key: bytes) -> bytes | None:
        """The value stored under ``key``, or None."""
        ...

    def insert(self, key: bytes, value: bytes) -> bool:
        """Store ``value`` under ``key``; False if it could not be stored."""
        ...


class MemoryCacheStore:
    """A cache in a dict (tests, one process)."""

    def __init__(self) -> None:
        self.entries: dict[bytes, bytes] = {}
        self.gets = self.hits = self.inserts = 0

    def get(self, key: bytes) -> bytes | None:
        self.gets += 1
        value = self.entries.get(bytes(key))
        self.hits += value is not None
        return value

    def insert(self, key: bytes, value: bytes) -> bool:
        self.inserts += 1
        self.entries[bytes(key)] = bytes(value)
        return True


class DirectoryCacheStore:
    """One file per key under ``path`` (``ab/cdef...`` by the key's hex digest)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.hits = self.misses = self.inserts = 0

    def _file(self, key: bytes) -> Path:
        h = bytes(key).hex()
        return self.path / h[:2] / h[2:]

    def get(self, key: bytes) -> bytes | None:
        try:
            data = self._file(key).read_bytes()
        except OSError:
            self.misses += 1
            return None
        self.hits += 1
        return data

    def insert(self, key: bytes, value: bytes) -> bool:
        f = self._file(key)
        try:
            f.parent.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=f.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(value)
                os.replace(tmp, f)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError:
            return False
        self.inserts += 1
        return True

    def count(self) -> int:
        """Number of entries stored."""
        return sum(1 for p in self.path.glob("??/*") if not p.name.startswith(".tmp-"))

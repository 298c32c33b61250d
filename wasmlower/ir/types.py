"""Value types of the IR.

Wasm's four number types.  References (funcref, externref) are ``i64``
handles, null being 0.  Machine dialects add nothing here: a machine op's
result keeps the type of the generic value it replaces.
"""

from __future__ import annotations

import enum


class Type(enum.Enum):
    I32 = "i32"
    I64 = "i64"
    F32 = "f32"
    F64 = "f64"

    def __str__(self) -> str:
        return self.value

    @property
    def is_int(self) -> bool:
        return self in (Type.I32, Type.I64)

    @property
    def is_float(self) -> bool:
        return self in (Type.F32, Type.F64)

    @property
    def bits(self) -> int:
        return 32 if self in (Type.I32, Type.F32) else 64

    @staticmethod
    def parse(text: str) -> Type:
        return _BY_NAME[text]


_BY_NAME = {t.value: t for t in Type}
I32, I64, F32, F64 = Type.I32, Type.I64, Type.F32, Type.F64

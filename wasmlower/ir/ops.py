"""The op table: every generic op's signature and effects, in one place.

Each entry says how many arguments an op takes and of what type, how its
result types are found, which immediates it carries, and which side effects
it has.  The verifier, the text parser, the rule checker and the passes all
read this table; machine dialects register their ops here too (see
``register_op``), so one printer/parser/verifier serves every stage.

Argument type codes: ``T`` the controlling type (the type of the first
result, or of the first argument for ops with no result), ``i32``/``i64``/
``f32``/``f64`` that exact type, ``int``/``float`` any type of that kind,
``any`` anything.  Result codes: ``same`` the type of argument 0, ``ctrl``
given in the text as ``op.T`` (``iconst.i32``), a tuple of fixed types, or
``()`` for no result.  ``*`` at the end of ``args`` repeats the last code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Effects.  Ops without any of these are pure and may be moved, merged or
# deleted when unused; load folding may only cross pure ops.
TERMINATOR = "terminator"
TRAPS = "traps"          # may trap (conditional traps, checked memory accesses)
READS = "reads"          # reads memory, globals or tables
WRITES = "writes"        # writes memory, globals or tables
CALL = "call"            # calls other code (clobbers caller-saved registers)


@dataclass(frozen=True)
class OpInfo:
    name: str
    args: tuple[str, ...]
    result: str | tuple[str, ...]
    imms: tuple[str, ...] = ()
    effects: frozenset[str] = field(default_factory=frozenset)
    commutative: bool = False
    dialect: str = ""         # "" for generic ops, "x64"/"aarch64" for machine ops
    decl: object = None       # the machine-op declaration (isa ops) for machine ops

    @property
    def is_terminator(self) -> bool:
        return TERMINATOR in self.effects

    @property
    def is_pure(self) -> bool:
        return not self.effects

    @property
    def variadic(self) -> bool:
        return bool(self.args) and self.args[-1] == "*"


OPS: dict[str, OpInfo] = {}


def register_op(info: OpInfo) -> OpInfo:
    OPS[info.name] = info
    return info


def _op(name: str, args: str, result: str | tuple[str, ...], imms: str = "",
        effects: tuple[str, ...] = (), commutative: bool = False) -> None:
    register_op(OpInfo(name, tuple(args.split()), result, tuple(imms.split()),
                       frozenset(effects), commutative))


# --- integer ------------------------------------------------------------
_op("iconst", "", "ctrl", "value")
for _name in ("iadd", "imul", "band", "bor", "bxor"):
    _op(_name, "int T", "same", commutative=True)
for _name in ("isub", "ishl", "ushr", "sshr", "rotl", "rotr"):
    _op(_name, "int T", "same")
# Division ops assume a valid divisor: the translator puts the traps
# (divide by zero, signed overflow) in front of them as explicit trapz/trapnz.
for _name in ("udiv", "sdiv", "urem", "srem"):
    _op(_name, "int T", "same")
for _name in ("clz", "ctz", "popcnt"):
    _op(_name, "int", "same")
_op("sext_in", "int", "same", "bits")        # sign-extend the low `bits` bits in place
_op("sextend", "int", "ctrl")                # i32 -> i64, signed
_op("uextend", "int", "ctrl")                # i32 -> i64, unsigned
_op("ireduce", "int", "ctrl")                # i64 -> i32, low half
_op("icmp", "int T", ("i32",), "cc")         # cc: eq ne slt sle sgt sge ult ule ugt uge
# --- float --------------------------------------------------------------
_op("fconst", "", "ctrl", "bits")            # the raw IEEE bit pattern
for _name in ("fadd", "fmul", "fmin", "fmax"):
    _op(_name, "float T", "same", commutative=True)
for _name in ("fsub", "fdiv", "fcopysign"):
    _op(_name, "float T", "same")
for _name in ("fsqrt", "fabs", "fneg", "fceil", "ffloor", "ftrunc", "fnearest"):
    _op(_name, "float", "same")
_op("fcmp", "float T", ("i32",), "cc")       # cc: eq ne lt le gt ge (ordered; ne is unordered-or-ne)
_op("fpromote", "f32", "ctrl")
_op("fdemote", "f64", "ctrl")
# Trapping conversions: bad_conv on NaN, int_ovf out of range.
_op("fcvt_to_sint", "float", "ctrl", effects=(TRAPS,))
_op("fcvt_to_uint", "float", "ctrl", effects=(TRAPS,))
_op("fcvt_to_sint_sat", "float", "ctrl")
_op("fcvt_to_uint_sat", "float", "ctrl")
_op("fcvt_from_sint", "int", "ctrl")
_op("fcvt_from_uint", "int", "ctrl")
_op("bitcast", "any", "ctrl")
# --- misc ---------------------------------------------------------------
_op("select", "i32 T T", "ctrl")           # select c, a, b = c ? a : b
_op("copy", "any", "same")
# --- memory, globals, calls ------------------------------------------------
# Heap accesses take the wasm i32 address; the op includes the bounds check
# (effective address = zext(addr) + offset, computed in 64 bits) and traps
# with heap_oob.  kind: i32 i64 f32 f64 i8s i8u i16s i16u i32s i32u (loads),
# i32 i64 f32 f64 i8 i16 i32 (stores; narrow stores take the low bits).
_op("load", "i32", "ctrl", "kind offset", (READS, TRAPS))
_op("store", "i32 any", (), "kind offset", (WRITES, TRAPS))
_op("global_get", "", "ctrl", "index", (READS,))
_op("global_set", "any", (), "index", (WRITES,))
# What `legalize_module_refs` turns globals into: loads and stores at a byte
# offset from the VMContext, or through a pointer (imported globals).
_op("vmctx_load", "", "ctrl", "offset", (READS,))
_op("vmctx_store", "any", (), "offset", (WRITES,))
_op("ptr_load", "i64", "ctrl", "offset", (READS,))
_op("ptr_store", "i64 any", (), "offset", (WRITES,))
_op("memory_size", "", ("i32",), "", (READS,))
_op("call", "any *", "ctrl", "func", (CALL, READS, WRITES, TRAPS))
# A call of an imported function (through its func record: switches instance).
_op("call_import", "any *", "ctrl", "func", (CALL, READS, WRITES, TRAPS))
# call_indirect checks the table bound, null and the signature (traps).
_op("call_indirect", "i32 any *", "ctrl", "type table", (CALL, READS, WRITES, TRAPS))
# A call into a runtime helper (memory.grow, bulk memory and table ops).
_op("libcall", "any *", "ctrl", "name", (CALL, READS, WRITES, TRAPS))
_op("func_ref", "", ("i64",), "func", (READS,))  # funcref handle of a function
# --- traps and control --------------------------------------------------
_op("trapz", "int", (), "code", (TRAPS,))      # trap if the value is zero
_op("trapnz", "int", (), "code", (TRAPS,))     # trap if the value is not zero
_op("jump", "", (), "", (TERMINATOR,))
_op("brif", "int", (), "", (TERMINATOR,))
_op("br_table", "i32", (), "", (TERMINATOR,))
_op("return", "any *", (), "", (TERMINATOR,))
_op("trap", "", (), "code", (TERMINATOR, TRAPS))

# Trap codes, with the spec's wording for each.
TRAP_MESSAGES = {
    "unreachable": "unreachable",
    "heap_oob": "out of bounds memory access",
    "table_oob": "out of bounds table access",
    "int_divz": "integer divide by zero",
    "int_ovf": "integer overflow",
    "bad_conv": "invalid conversion to integer",
    "indirect_null": "uninitialized element",
    "indirect_oob": "undefined element",
    "bad_sig": "indirect call type mismatch",
    "stack_overflow": "call stack exhausted",
    "host": "host function raised an exception",
    "elem_oob": "out of bounds table access",
    # A runtime helper (libcall) asked for a trap: its code is in the store.
    "pending": "trap raised by a runtime helper",
}
TRAP_CODES = {name: i + 1 for i, name in enumerate(TRAP_MESSAGES)}

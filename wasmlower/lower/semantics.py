"""Checking lowering rules by running them against a reference semantics of the generic IR.

Problem.  ``check.py`` proves rules well-typed, non-overlapping and
exhaustive, but not *right*: ``(isub i32 x y) => (sub32 y x)`` passes every
static check.  A wrong rule shows up only when its code runs on an input that
tells it apart, and the inputs that do are edge values: 0, -1, MIN, shift
counts of 32 or 64, addresses near 2^32 with large offsets (Cranelift's
CVE-2023-26489 came from a 32-bit wasm index computed in 64 bits).

Mechanism, for each rule whose pattern's top op is in ``CHECKED_OPS``:

1. *Instances.*  For each commutative variant of the pattern, each choice of
   types for its value variables and of values for its immediate variables,
   build the smallest generic IR function the pattern matches: every value
   variable (and ``_``) becomes a function parameter, a nested pattern
   becomes its instruction (``(iconst k)`` an ``iconst`` of the chosen
   constant), and the function returns the top op's result.  A branch returns
   a different parameter per target; a store or conditional trap returns
   nothing.  Immediates are taken from pools of edge values per (op,
   immediate); guards are never evaluated here.
2. *Firing.*  The instance is lowered with the ISA's real driver and rules.
   It is kept only if the lowering trace says the rule lowered the top
   instruction: the guard and the higher-priority rules decide which
   constants qualify, exactly as in the compiler.
3. *Code.*  Kept instances go through the real back end: ``pipeline``'s
   register allocation (with the allocation checker), the x64 emitter and
   keystone (``explain.compile_lowered``).
4. *Execution.*  The code runs under unicorn (x86-64 with a Haswell CPU
   model, for ``lzcnt``/``tzcnt``/``popcnt``), with arguments placed by the
   calling convention of ``isa/x64/abi.py``, every other register filled
   with junk, ``r15`` pointing to a VMContext whose memory base and size are
   chosen per case, and linear memory mapped lazily, page by page, with a
   known byte pattern.  A trap is the call to the VMContext's trap routine,
   or an access to the guard region: like the runtime (``runtime/memory.py``,
   ``runtime/signals.py``), the machine reserves ``RESERVATION`` bytes from the
   memory base, of which only the first ``mem_size`` are accessible, and
   treats a fault in the rest as a ``heap_oob`` trap.
   Emulation, not native execution: a wrong rule may compute any address,
   and a wild access must become a counterexample, not a crash of the
   checking process.
5. *Comparison.*  ``evaluate`` interprets the generic instance on the same
   inputs and memory.  Results, trap kinds and the bytes of every memory
   page the code touched must agree; i32 results must also be zero-extended
   in their 64-bit register (the invariant stated at the top of
   ``isa/x64/ops.rules``, which address arithmetic relies on).  Inputs for
   which the IR leaves an op undefined (division by zero, ``sdiv`` of MIN by
   -1: the translator traps before those) are skipped.

The first counterexample per rule is reported with the rule's ``file:line``,
the instance, the inputs, the expected and the actual outcome.

Value representation: every value is a non-negative int, its bit pattern
(integers modulo 2^bits, floats as IEEE bits); only bit-moving float ops
(``select``, ``copy``, loads, stores) are checked.  i32 parameters are passed
zero-extended (the same invariant).

Entry point: ``check_rule_semantics(isa="x64", cases=N, seed=S) -> Report``;
``python -m wasmlower.lower.semantics [ISA|DIR] [--cases N]`` prints it.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CompileError
from ..ir.builder import Builder
from ..ir.function import BlockCall, Function, Inst, Value
from ..ir.ops import OPS, TRAP_CODES
from ..ir.text import format_function, format_inst
from ..ir.types import F32, F64, I32, I64, Type
from .check import ICMP_CC, LOAD_KINDS, STORE_KINDS, Lit, Pat, Var, Wild, ctrl_arg

if TYPE_CHECKING:
    from .check import Rule
    from .isa import Isa

__all__ = ["CHECKED_OPS", "Counterexample", "Machine", "Memory", "Outcome", "Report",
           "RuleResult", "Undefined", "check_rule_semantics", "evaluate", "pattern_fill",
           "run_against_reference", "zero_fill"]

CHECKED_OPS = frozenset({
    "iconst", "iadd", "isub", "imul", "band", "bor", "bxor", "ishl", "ushr", "sshr", "rotl",
    "rotr", "clz", "ctz", "popcnt", "icmp", "select", "sext_in", "sextend", "uextend",
    "ireduce", "udiv", "sdiv", "urem", "srem", "copy", "brif", "br_table", "trap", "trapz",
    "trapnz", "load", "store", "memory_size",
})
"""Top ops of the rules checked: integer ops, branches, traps, and memory accesses."""

PAGE = 4096
WASM_PAGE = 65536
# Address space reserved per linear memory, as in runtime/memory.py: accesses
# at base + zext32(index) + offset (offset < 2^31) past the memory's size fault
# in the reservation's guard region, which the runtime turns into heap_oob.
RESERVATION = 8 << 30
M32 = (1 << 32) - 1
M64 = (1 << 64) - 1
_MASK = {I32: M32, I64: M64, F32: M32, F64: M64}
_TYPE_ORDER = {I32: 0, I64: 1, F32: 2, F64: 3}
ACCESS_SIZE = {"i8": 1, "i8s": 1, "i8u": 1, "i16": 2, "i16s": 2, "i16u": 2, "i32": 4,
               "i32s": 4, "i32u": 4, "f32": 4, "i64": 8, "f64": 8}
TRAP_NAMES = {code: name for name, code in TRAP_CODES.items()}


# ---------------------------------------------------------------------------
# Linear memory: a sparse model with a known initial pattern
# ---------------------------------------------------------------------------

def pattern_fill(addr: int, n: int) -> bytes:
    """The initial bytes of linear memory at ``addr``: a hash of the address.

    Distinct neighbouring bytes make a load from a wrong address visible.
    """
    import numpy as np
    a = np.arange(addr, addr + n, dtype=np.uint64)
    x = a * np.uint64(0x9E3779B97F4A7C15)
    x ^= x >> np.uint64(29)
    return ((x >> np.uint64(23)) & np.uint64(0xFF)).astype(np.uint8).tobytes()


def zero_fill(addr: int, n: int) -> bytes:
    return bytes(n)


class Memory:
    """Linear memory of ``size`` bytes: ``fill`` gives initial contents, ``writes`` overlay them."""

    def __init__(self, size: int, fill: Callable[[int, int], bytes] = pattern_fill) -> None:
        self.size = size
        self.fill = fill
        self.writes: dict[int, int] = {}

    def read(self, addr: int, n: int) -> bytes:
        data = bytearray(self.fill(addr, n))
        for i in range(n):
            b = self.writes.get(addr + i)
            if b is not None:
                data[i] = b
        return bytes(data)

    def write(self, addr: int, data: bytes) -> None:
        for i, b in enumerate(data):
            self.writes[addr + i] = b

    def page(self, addr: int) -> bytes:
        """The expected contents of the ``PAGE`` bytes at ``addr`` (page-aligned)."""
        data = bytearray(self.fill(addr, PAGE))
        for a, b in self.writes.items():
            if addr <= a < addr + PAGE:
                data[a - addr] = b
        return bytes(data)


# ---------------------------------------------------------------------------
# The reference semantics of generic IR
# ---------------------------------------------------------------------------

class Undefined(Exception):
    """The inputs break a precondition of an op; the IR leaves the result undefined."""


class _Trapped(Exception):
    def __init__(self, kind: str) -> None:
        self.kind = kind


def _signed(x: int, bits: int) -> int:
    x &= (1 << bits) - 1
    return x - (1 << bits) if x >> (bits - 1) else x


def _sdiv(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def _binary(op: str, a: int, b: int, w: int) -> int:
    m = (1 << w) - 1
    if op == "iadd":
        return (a + b) & m
    if op == "isub":
        return (a - b) & m
    if op == "imul":
        return (a * b) & m
    if op == "band":
        return a & b
    if op == "bor":
        return a | b
    if op == "bxor":
        return a ^ b
    n = b % w                             # shift counts are taken modulo the width
    if op == "ishl":
        return (a << n) & m
    if op == "ushr":
        return a >> n
    if op == "sshr":
        return (_signed(a, w) >> n) & m
    if op == "rotl":
        return ((a << n) | (a >> (w - n))) & m
    if op == "rotr":
        return ((a >> n) | (a << (w - n))) & m
    if op in ("udiv", "urem"):
        if b == 0:
            raise Undefined(f"{op} by zero")
        return a // b if op == "udiv" else a % b
    sa, sb = _signed(a, w), _signed(b, w)
    if sb == 0:
        raise Undefined(f"{op} by zero")
    if op == "sdiv":
        if sa == -(1 << (w - 1)) and sb == -1:
            raise Undefined("sdiv overflow")
        return _sdiv(sa, sb) & m
    if op == "srem":
        return (sa - sb * _sdiv(sa, sb)) & m
    raise NotImplementedError(op)


def _icmp(cc: str, a: int, b: int, w: int) -> int:
    sa, sb = _signed(a, w), _signed(b, w)
    return int({"eq": a == b, "ne": a != b, "slt": sa < sb, "sle": sa <= sb, "sgt": sa > sb,
                "sge": sa >= sb, "ult": a < b, "ule": a <= b, "ugt": a > b,
                "uge": a >= b}[cc])


def _load_value(kind: str, data: bytes, t: Type) -> int:
    raw = int.from_bytes(data, "little")
    if kind.endswith("s"):
        return _signed(raw, 8 * len(data)) & _MASK[t]
    return raw & _MASK[t]


def _effective(memory: Memory, addr: int, offset: int, n: int) -> int:
    # Wasm: the i32 index is zero-extended and the offset added in (at least) 64 bits.
    ea = (addr & M32) + offset
    if ea + n > memory.size:
        raise _Trapped("heap_oob")
    return ea


def _step(inst: Inst, a: list[int], memory: Memory) -> list[int]:
    op = inst.op
    t = inst.results[0].type if inst.results else None
    if op == "iconst":
        return [inst.imm[0] & _MASK[t]]                      # type: ignore[index]
    if op in ("iadd", "isub", "imul", "band", "bor", "bxor", "ishl", "ushr", "sshr", "rotl",
              "rotr", "udiv", "sdiv", "urem", "srem"):
        return [_binary(op, a[0], a[1], t.bits)]             # type: ignore[union-attr]
    if op == "clz":
        return [t.bits - a[0].bit_length()]                   # type: ignore[union-attr]
    if op == "ctz":
        return [t.bits if a[0] == 0 else (a[0] & -a[0]).bit_length() - 1]  # type: ignore
    if op == "popcnt":
        return [a[0].bit_count()]
    if op == "sext_in":
        return [_signed(a[0], inst.imm[0]) & _MASK[t]]       # type: ignore[index]
    if op == "sextend":
        return [_signed(a[0], 32) & M64]
    if op in ("uextend", "ireduce"):
        return [a[0] & M32]
    if op == "copy":
        return [a[0]]
    if op == "icmp":
        return [_icmp(str(inst.imm[0]), a[0], a[1], inst.args[0].type.bits)]
    if op == "select":
        return [a[1] if a[0] & M32 else a[2]]
    if op == "memory_size":
        return [(memory.size // WASM_PAGE) & M32]
    if op == "load":
        kind, offset = inst.imm
        n = ACCESS_SIZE[kind]
        ea = _effective(memory, a[0], offset, n)
        return [_load_value(kind, memory.read(ea, n), t)]    # type: ignore[arg-type]
    if op == "store":
        kind, offset = inst.imm
        n = ACCESS_SIZE[kind]
        ea = _effective(memory, a[0], offset, n)
        memory.write(ea, (a[1] & ((1 << (8 * n)) - 1)).to_bytes(n, "little"))
        return []
    if op == "trapz":
        if a[0] == 0:
            raise _Trapped(str(inst.imm[0]))
        return []
    if op == "trapnz":
        if a[0] != 0:
            raise _Trapped(str(inst.imm[0]))
        return []
    raise NotImplementedError(f"no reference semantics for {op}")


def evaluate(func: Function, args: Sequence[int], memory: Memory,
             max_steps: int = 10_000) -> tuple[str, object]:
    """Run generic ``func``: ``("return", [values])`` or ``("trap", kind)``.

    ``args`` are bit patterns.  Raises ``Undefined`` if an op's precondition
    fails, ``NotImplementedError`` for an op without reference semantics.
    """
    env: dict[Value, int] = {}
    block = func.entry
    for p, v in zip(block.params, args):
        env[p] = v & _MASK[p.type]
    steps = 0
    try:
        while True:
            for inst in block.insts:
                steps += 1
                if steps > max_steps:
                    raise NotImplementedError("the reference interpreter ran too long")
                vals = [env[x] for x in inst.args]
                op = inst.op
                target: BlockCall | None = None
                if op == "return":
                    return ("return", vals)
                if op == "trap":
                    return ("trap", str(inst.imm[0]))
                if op == "jump":
                    target = inst.targets[0]
                elif op == "brif":
                    target = inst.targets[0 if vals[0] else 1]
                elif op == "br_table":
                    i = vals[0] & M32
                    target = inst.targets[i] if i < len(inst.targets) - 1 else inst.targets[-1]
                if target is not None:
                    args_ = [env[x] for x in target.args]
                    block = target.block
                    for p, v in zip(block.params, args_):
                        env[p] = v
                    break
                for r, v in zip(inst.results, _step(inst, vals, memory)):
                    env[r] = v & _MASK[r.type]
            else:
                raise NotImplementedError(f"block{block.id} has no terminator")
    except _Trapped as t:
        return ("trap", t.kind)


# ---------------------------------------------------------------------------
# Running machine code under unicorn
# ---------------------------------------------------------------------------

@dataclass
class Outcome:
    """What running the machine code did."""
    kind: str                                  # "return", "trap", "fault" or "hang"
    values: list[int] = field(default_factory=list)   # return: raw register bits
    trap: str = ""                             # trap: its kind
    message: str = ""                          # fault/hang: what happened
    pages: dict[int, bytes] = field(default_factory=dict)   # heap pages touched (by wasm addr)


class Machine:
    """An x86-64 emulator set up as the x64 ABI's callee environment (docs/ABI.md).

    Regions: code (bump-allocated, so no stale translation is ever run), a
    stack, a VMContext page (store pointer, memory base and size, trap
    routine), and linear memory at ``HEAP_BASE``: its first ``mem_size``
    bytes are mapped lazily, page by page, with ``fill`` on first access;
    an access to the rest of the ``RESERVATION`` is a ``heap_oob`` trap (the
    guard region); an access outside every region is a fault (natively, the
    end of the process).
    """

    CODE = 0x0100_0000
    CODE_SIZE = 0x0100_0000
    STACK = 0x0400_0000
    STACK_SIZE = 0x0010_0000
    VMCTX = 0x0500_0000
    STORE = VMCTX + 0x800
    TRAP = 0x0600_0000
    RETURN = TRAP + 0x100
    HEAP_BASE = 1 << 40
    JUNK = 0x5A5A_0000_0000_0000

    def __init__(self, fill: Callable[[int, int], bytes] = pattern_fill,
                 max_insns: int = 200_000) -> None:
        import unicorn
        from unicorn import x86_const as X

        self.uc_mod, self.X = unicorn, X
        self.fill = fill
        self.max_insns = max_insns
        uc = self.uc = unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_64)
        uc.ctl_set_cpu_model(X.UC_CPU_X86_HASWELL)
        uc.mem_map(self.CODE, self.CODE_SIZE)
        uc.mem_map(self.STACK, self.STACK_SIZE)
        uc.mem_map(self.VMCTX, PAGE)
        uc.mem_map(self.TRAP, PAGE)
        uc.mem_write(self.TRAP, b"\xcc" * PAGE)
        self.next_code = self.CODE
        self.mapped: list[int] = []
        self.trapped: int | None = None
        self.fault: str = ""
        self.guard = False
        self.mem_size = 0
        uc.hook_add(unicorn.UC_HOOK_CODE, self._on_trap, begin=self.TRAP, end=self.TRAP)
        uc.hook_add(unicorn.UC_HOOK_MEM_READ_UNMAPPED | unicorn.UC_HOOK_MEM_WRITE_UNMAPPED,
                    self._on_unmapped)
        from ..isa.x64.regs import NUM
        self.gpr = {NUM[n]: getattr(X, f"UC_X86_REG_{n.upper()}")
                    for n in ("rax", "rcx", "rdx", "rbx", "rsi", "rdi", "r8", "r9", "r10",
                              "r11", "r12", "r13", "r14", "rbp")}
        self.xmm = {16 + i: getattr(X, f"UC_X86_REG_XMM{i}") for i in range(16)}

    # -- hooks ----------------------------------------------------------------
    def _on_trap(self, uc, address, size, user) -> None:
        self.trapped = uc.reg_read(self.X.UC_X86_REG_RSI) & M32
        uc.emu_stop()

    def _on_unmapped(self, uc, access, address, size, value, user) -> bool:
        end = address + max(size, 1)
        base = self.HEAP_BASE
        if not (base <= address and end <= base + RESERVATION):
            self.fault = f"access to unmapped address {address:#x} ({size} bytes)"
            return False
        if end > base + self.mem_size:
            self.guard = True                 # the runtime's signal handler: heap_oob
            return False
        page = address & ~(PAGE - 1)
        while page < end:
            if page not in self.mapped:
                uc.mem_map(page, PAGE)
                uc.mem_write(page, self.fill(page - self.HEAP_BASE, PAGE))
                self.mapped.append(page)
            page += PAGE
        return True

    # -- code -----------------------------------------------------------------
    def load(self, code: bytes) -> int:
        """Copy ``code`` to a fresh address and return it."""
        size = (len(code) + 63) & ~63
        if self.next_code + size > self.CODE + self.CODE_SIZE:
            self.next_code = self.CODE
            self.uc.ctl_flush_tb()
        addr = self.next_code
        self.uc.mem_write(addr, bytes(code))
        self.next_code += size
        return addr

    # -- one call -------------------------------------------------------------
    def run(self, entry: int, params: Sequence[tuple[Type, int]], results: Sequence[Type],
            mem_size: int) -> Outcome:
        """Call the function at ``entry`` with ``params`` ((type, bits) pairs)."""
        from ..isa.x64.abi import arg_locations, result_locations

        uc, X = self.uc, self.X
        for k, (preg, reg) in enumerate(self.gpr.items()):
            uc.reg_write(reg, self.JUNK | (preg << 8) | k)
        if any(t.is_float for t in (*(t for t, _ in params), *results)):
            for preg, reg in self.xmm.items():
                uc.reg_write(reg, (self.JUNK | preg) * 0x1_0000_0000_0000_0001)
        rsp = self.STACK + self.STACK_SIZE - 0x100 - 8          # as after a `call`
        stack_args: list[tuple[int, int]] = []
        for (t, v), (kind, where) in zip(params, arg_locations(tuple(t for t, _ in params))):
            v &= _MASK[t]
            if kind == "reg":
                uc.reg_write(self.gpr.get(where) or self.xmm[where], v)
            else:
                stack_args.append((where, v))
        rsp -= 8 * (len(stack_args) + (len(stack_args) & 1))
        uc.mem_write(rsp, self.RETURN.to_bytes(8, "little"))
        for slot, v in stack_args:
            uc.mem_write(rsp + 8 + 8 * slot, v.to_bytes(8, "little"))
        uc.reg_write(X.UC_X86_REG_RSP, rsp)
        uc.reg_write(X.UC_X86_REG_R15, self.VMCTX)
        vm = bytearray(0x40)
        vm[0:8] = self.STORE.to_bytes(8, "little")
        vm[8:16] = self.HEAP_BASE.to_bytes(8, "little")
        vm[16:24] = mem_size.to_bytes(8, "little")
        vm[0x38:0x40] = self.TRAP.to_bytes(8, "little")
        uc.mem_write(self.VMCTX, bytes(vm))
        uc.mem_write(self.STORE, bytes(0x30))                 # stack limit 0: never overflows
        self.trapped = None
        self.fault = ""
        self.guard = False
        self.mem_size = mem_size
        out = Outcome("hang")
        try:
            uc.emu_start(entry, self.RETURN, timeout=0, count=self.max_insns)
        except self.uc_mod.UcError as e:
            if self.guard:
                out = Outcome("trap", trap="heap_oob", message="fault in the guard region")
            else:
                pc = uc.reg_read(X.UC_X86_REG_RIP)
                out = Outcome("fault", message=f"{self.fault or e} at pc {pc:#x}")
        else:
            pc = uc.reg_read(X.UC_X86_REG_RIP)
            if self.trapped is not None:
                out = Outcome("trap", trap=TRAP_NAMES.get(self.trapped, f"code {self.trapped}"))
            elif pc == self.RETURN:
                regs = result_locations(tuple(results))
                out = Outcome("return", [uc.reg_read(self.gpr.get(r) or self.xmm[r])
                                         for r in regs])
            else:
                out = Outcome("hang", message=f"stopped at {pc:#x} after at most "
                                              f"{self.max_insns} instructions")
        for page in self.mapped:
            out.pages[page - self.HEAP_BASE] = bytes(uc.mem_read(page, PAGE))
            uc.mem_unmap(page, PAGE)
        self.mapped = []
        return out


# ---------------------------------------------------------------------------
# Instances of a rule's pattern
# ---------------------------------------------------------------------------

class _Skip(Exception):
    """This choice of types does not make a well-typed instance."""


_I32_CONSTS = (0, 1, -1, 2, 3, 7, 8, 15, 16, 31, 32, 33, 63, 64, 65, 127, 128, 255, 256,
               0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, -0x80000000, -2, 0x12345678,
               -0x7FFFFFFF)
_I64_CONSTS = _I32_CONSTS + (1 << 31, -(1 << 31) - 1, (1 << 32) - 1, 1 << 32, 1 << 40,
                             -(1 << 63), (1 << 63) - 1, 0x123456789ABC, -(1 << 32))
_OFFSETS = (0, 1, 3, 4, 8, 0x7F, 0x1000, 0xFFFF, 0x10000, 0x7FFFFFF0, 0x7FFFFFF7, 0x7FFFFFF8,
            0x7FFFFFFF, 0x80000000, 0x80000001, 0xFFFF0000, 0xFFFFFFF0, 0xFFFFFFFF)


def _imm_pool(op: str, name: str, ctrl: Type | None) -> Sequence[object] | None:
    """Candidate values for immediate ``name`` of ``op`` (None: not modelled)."""
    if op == "iconst" and name == "value":
        return _I64_CONSTS if ctrl is I64 else _I32_CONSTS
    if op == "icmp" and name == "cc":
        return ICMP_CC
    if op in ("load", "store") and name == "offset":
        return _OFFSETS
    if op == "load" and name == "kind":
        return LOAD_KINDS.get(ctrl, ()) if ctrl else ()
    if op == "store" and name == "kind":
        return STORE_KINDS.get(ctrl, ()) if ctrl else ()
    if op == "sext_in" and name == "bits":
        return (8, 16) if ctrl is I32 else (8, 16, 32)
    if name == "code":
        return ("unreachable", "int_divz", "heap_oob")
    return None


_FIXED_ARG = {"sextend": I32, "uextend": I32, "ireduce": I64}


@dataclass
class _Param:
    name: str          # the pattern variable, or a role such as "then"
    type: Type
    role: str          # "value", "addr", "result" or "index"
    access: tuple[int, int] = (0, 0)     # addr: (offset, size)


class _InstanceBuilder:
    """Builds the generic function of one instance of a pattern variant."""

    def __init__(self, pat: Pat, var_types: dict[str, Type],
                 choose: Callable[[str, str, str, Type | None], object]) -> None:
        self.pat, self.var_types, self.choose = pat, var_types, choose
        self.func = Function("t")
        self.b = Builder(self.func)
        self.entry = self.b.block()
        self.values: dict[str, Value] = {}
        self.params: list[_Param] = []
        self.consts: list[int] = []
        self.top: Inst | None = None

    def param(self, name: str, t: Type, role: str = "value",
              access: tuple[int, int] = (0, 0)) -> Value:
        v = self.func.add_param(self.entry, t)
        self.func.params.append(t)
        self.params.append(_Param(name, t, role, access))
        return v

    # -- types ------------------------------------------------------------------
    def own_type(self, slot: object, want: Type | None) -> Type | None:
        if isinstance(slot, Var):
            return self.var_types.get(slot.name)
        if isinstance(slot, Pat):
            return self.result_type(slot, want)
        return want

    def ctrl(self, p: Pat, want: Type | None) -> Type | None:
        info = OPS[p.op]
        if p.type is not None:
            return p.type
        if info.result in ("same", "ctrl") and want is not None:
            return want
        k = ctrl_arg(p.op)
        if info.result == "same":
            k = 0
        if k is not None and k < len(p.args):
            return self.own_type(p.args[k], None)
        return None

    def result_type(self, p: Pat, want: Type | None) -> Type | None:
        info = OPS[p.op]
        if info.result in ("same", "ctrl"):
            return self.ctrl(p, want)
        return Type.parse(info.result[0]) if info.result else None

    def arg_want(self, p: Pat, i: int, ctrl: Type | None) -> Type | None:
        info = OPS[p.op]
        if p.op in _FIXED_ARG:
            return _FIXED_ARG[p.op]
        codes = list(info.args)
        code = codes[min(i, len(codes) - 1)]
        if code in ("i32", "i64", "f32", "f64"):
            return Type.parse(code)
        if code == "T" or i == ctrl_arg(p.op) or (info.result == "same" and i == 0):
            return ctrl
        return None

    # -- values -------------------------------------------------------------------
    def slot(self, s: object, want: Type | None, role: str = "value",
             access: tuple[int, int] = (0, 0)) -> Value:
        if isinstance(s, Var):
            if s.name in self.values:
                v = self.values[s.name]
                if want is not None and v.type is not want:
                    raise _Skip
                return v
            t = self.var_types.get(s.name) or want
            if t is None or (want is not None and t is not want):
                raise _Skip
            v = self.values[s.name] = self.param(s.name, t, role, access)
            return v
        if isinstance(s, Pat):
            inst = self.node(s, want)
            if len(inst.results) != 1:
                raise _Skip
            return inst.results[0]
        assert isinstance(s, Wild)
        if want is None:
            raise _Skip
        return self.param("_", want, role, access)

    def imms(self, p: Pat, ctrl: Type | None) -> tuple:
        names = OPS[p.op].imms
        out = []
        for name, s in zip(names, p.imms):
            if isinstance(s, Lit):
                out.append(s.value)
            else:
                key = s.name if isinstance(s, Var) else f"_{p.op}.{name}"
                out.append(self.choose(key, p.op, name, ctrl))
        return tuple(out)

    def node(self, p: Pat, want: Type | None, top: bool = False) -> Inst:
        info = OPS[p.op]
        if info.is_terminator and not top:
            raise _Skip
        ctrl = self.ctrl(p, want)
        imm = self.imms(p, ctrl)
        if p.op == "iconst":
            self.consts.append(int(imm[0]))
        access = (0, 0)
        if p.op in ("load", "store"):
            kind, offset = imm
            access = (int(offset), ACCESS_SIZE[str(kind)])
            self.consts.append(int(offset))
        args = []
        for i, s in enumerate(p.args):
            role = "addr" if p.op in ("load", "store") and i == 0 else (
                "index" if p.op == "br_table" else "value")
            args.append(self.slot(s, self.arg_want(p, i, ctrl), role, access))
        if p.rest is not None:
            raise _Skip
        types: tuple[Type, ...] = ()
        if info.result == "ctrl":
            if ctrl is None:
                raise _Skip
            types = (ctrl,)
        if p.op == "iconst":
            assert ctrl is not None
            return self.b.insert("iconst", (), (_signed(int(imm[0]), ctrl.bits),), (ctrl,))
        return self.b.insert(p.op, args, imm, types)

    def build(self) -> Function:
        p = self.pat
        f = self.func
        if p.op == "brif":
            cond = self.slot(p.args[0], self.ctrl(p, None) or self.own_type(p.args[0], None))
            rt, re_ = self.param("then", I32, "result"), self.param("else", I32, "result")
            then, other = f.new_block(), f.new_block()
            self.top = self.b.insert("brif", [cond], (), (),
                                     [BlockCall(then), BlockCall(other)])
            f.results = [I32]
            for blk, v in ((then, rt), (other, re_)):
                self.b.switch_to(blk)
                self.b.ret(v)
        elif p.op == "br_table":
            index = self.slot(p.args[0], I32, "index")
            outs = [self.param(f"target{k}", I32, "result") for k in range(3)]
            blocks = [f.new_block() for _ in outs]
            self.top = self.b.insert("br_table", [index], (), (),
                                     [BlockCall(blk) for blk in blocks])
            f.results = [I32]
            for blk, v in zip(blocks, outs):
                self.b.switch_to(blk)
                self.b.ret(v)
        elif p.op == "trap":
            self.top = self.b.insert("trap", (), self.imms(p, None))
        else:
            self.top = self.node(p, None, top=True)
            f.results = [r.type for r in self.top.results]
            self.b.ret(*self.top.results)
        return f


@dataclass
class _Instance:
    variant: int
    var_types: dict[str, Type]
    imms: dict[str, object]
    generic: str = ""                       # the generic IR text
    lowered: str = ""
    asm: list[str] = field(default_factory=list)
    params: list[_Param] = field(default_factory=list)
    consts: list[int] = field(default_factory=list)
    entry: int = 0
    results: list[Type] = field(default_factory=list)


def _build(pat: Pat, var_types: dict[str, Type], imms: dict[str, object]):
    def choose(key: str, op: str, name: str, ctrl: Type | None) -> object:
        if key not in imms:
            raise _Skip
        return imms[key]

    ib = _InstanceBuilder(pat, var_types, choose)
    return ib, ib.build()


def _imm_pools(pat: Pat, var_types: dict[str, Type]) -> dict[str, Sequence[object]] | str:
    """The immediate variables of an instance and their candidate values, or why none."""
    pools: dict[str, Sequence[object]] = {}
    missing: list[str] = []

    def choose(key: str, op: str, name: str, ctrl: Type | None) -> object:
        if key not in pools:
            pool = _imm_pool(op, name, ctrl)
            if not pool:
                missing.append(f"immediate `{name}` of {op}")
                raise _Skip
            pools[key] = pool
        return pools[key][0]

    ib = _InstanceBuilder(pat, var_types, choose)
    ib.build()
    if missing:
        return missing[0]
    return pools


def _combos(pools: dict[str, Sequence[object]], rng: random.Random) -> Iterable[dict]:
    """Immediate assignments: first a cover (every candidate of every pool once), then random."""
    names = list(pools)
    if not names:
        yield {}
        return
    shuffled = {n: rng.sample(list(pools[n]), len(pools[n])) for n in names}
    longest = max(len(v) for v in shuffled.values())
    seen = set()
    for j in range(longest):
        combo = tuple(shuffled[n][j % len(shuffled[n])] for n in names)
        seen.add(combo)
        yield dict(zip(names, combo))
    everything = list(itertools.product(*(pools[n] for n in names)))
    rng.shuffle(everything)
    for combo in everything:
        if combo not in seen:
            yield dict(zip(names, combo))


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------

_EDGES = {
    I32: (0, 1, 2, M32, M32 - 1, 0x7FFFFFFF, 0x80000000, 0x80000001, 31, 32, 33, 63, 64, 65,
          0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0xFFFFFF00),
    I64: (0, 1, 2, M64, M64 - 1, (1 << 63) - 1, 1 << 63, (1 << 63) + 1, 31, 32, 33, 63, 64, 65,
          0x7F, 0x80, 0xFF, 0x8000, 0xFFFF, M32, 1 << 32, 0x80000000, 0x7FFFFFFF,
          0xFFFFFFFF80000000, 0x1_0000_0020, 0x1_0000_0040),
}
_MEM_SIZES = (0x10000, 0x10000, 0x20000, 1 << 32, 0)
_RESULT_MARKS = (0x1111_1111, 0x2222_2222, 0x3333_3333, 0x4444_4444)


def _random_bits(rng: random.Random, t: Type) -> int:
    bits = t.bits
    r = rng.random()
    if r < 0.4:
        return rng.getrandbits(bits)
    if r < 0.6:
        return rng.getrandbits(rng.randint(1, bits))
    if r < 0.8:
        return ((1 << bits) - rng.getrandbits(rng.randint(1, bits))) & ((1 << bits) - 1)
    return (1 << rng.randint(0, bits - 1)) + rng.choice((-1, 0, 1))


def _address(rng: random.Random, mem_size: int, access: tuple[int, int]) -> int:
    off, n = access
    edge = mem_size - off - n
    cands = [0, 1, n, edge, edge + 1, edge - 1, mem_size - 1, mem_size, mem_size - n,
             (1 << 32) - off, (1 << 32) - off + 4, (1 << 32) - off - n, M32, M32 - 15,
             0x80000000, 0x7FFFFFFF, rng.randrange(max(mem_size, 1)), rng.getrandbits(32),
             rng.randrange(max(mem_size - off, 1)) if mem_size > off else rng.getrandbits(16)]
    return rng.choice(cands) & M32


def _inputs(inst: _Instance, rng: random.Random, case: int) -> tuple[list[int], int]:
    mem_size = _MEM_SIZES[case % len(_MEM_SIZES)] if case < 10 else rng.choice(_MEM_SIZES)
    values: list[int] = []
    marks = iter(_RESULT_MARKS)
    for p in inst.params:
        m = _MASK[p.type]
        if p.role == "result":
            values.append(next(marks))
            continue
        if p.role == "addr":
            values.append(_address(rng, mem_size, p.access))
            continue
        if p.role == "index":
            values.append(rng.choice((0, 1, 2, 3, 4, M32, 0x80000000, rng.getrandbits(32))))
            continue
        if p.type.is_float:
            values.append(rng.getrandbits(p.type.bits))
            continue
        edges = _EDGES[p.type]
        if case < len(edges) and case < 4:
            values.append(edges[case] & m)            # all 0, all 1, all 2, all ones
            continue
        r = rng.random()
        same = [v for q, v in zip(inst.params, values) if q.type is p.type and q.role == "value"]
        if r < 0.3:
            values.append(rng.choice(edges) & m)
        elif r < 0.45 and inst.consts:
            values.append((rng.choice(inst.consts) + rng.choice((-1, 0, 0, 1))) & m)
        elif r < 0.55 and same:
            values.append(rng.choice(same))
        else:
            values.append(_random_bits(rng, p.type))
    return values, mem_size


# ---------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------

def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _hex(v: int) -> str:
    return f"{v:#x}"


@dataclass
class Counterexample:
    """Inputs on which a rule's code and the reference semantics disagree."""
    rule: str                      # the rule's label, ``file:line``
    source: str                    # the rule as written
    function: str                  # the generic instance (IR text)
    lowered: str                   # the instance after lowering, with rules
    asm: list[str]                 # the assembly that ran
    inputs: list[tuple[str, str, int]]   # (pattern variable, IR value, bits)
    mem_size: int | None                 # None: the instance does not use memory
    expected: str
    got: str
    imms: dict[str, object] = field(default_factory=dict)   # the instance's immediates

    def format(self, verbose: bool = True) -> str:
        ins = ", ".join(f"{name} ({val}) = {_hex(bits)}" for name, val, bits in self.inputs)
        if self.mem_size is not None:
            ins = (ins + "; " if ins else "") + f"memory size {_hex(self.mem_size)}"
        lines = [f"{self.rule}: counterexample",
                 f"  rule:     {self.source}"]
        if self.imms:
            lines.append("  immediates: " + ", ".join(
                f"{k.lstrip('_')} = {_hex(v) if isinstance(v, int) else v}"
                for k, v in self.imms.items()))
        lines += [f"  inputs:   {ins or 'none'}",
                  f"  expected: {self.expected}",
                  f"  got:      {self.got}"]
        if verbose:
            lines.append("  instance:")
            lines += ["    " + ln for ln in self.function.splitlines()]
            lines.append("  lowered:")
            lines += ["    " + ln for ln in self.lowered.splitlines()]
            lines.append("  machine code:")
            lines += ["    " + ln for ln in self.asm]
        return "\n".join(lines)


@dataclass
class RuleResult:
    rule: str
    source: str
    instances: int = 0
    cases: int = 0
    counterexample: Counterexample | None = None
    skipped: str | None = None     # why the rule was not run


@dataclass
class Report:
    """What ``check_rule_semantics`` found, one ``RuleResult`` per checked rule."""
    isa: str
    results: list[RuleResult] = field(default_factory=list)

    @property
    def failures(self) -> list[RuleResult]:
        return [r for r in self.results if r.counterexample is not None]

    @property
    def skipped(self) -> list[RuleResult]:
        return [r for r in self.results if r.skipped is not None]

    @property
    def ok(self) -> bool:
        return not self.failures

    def result(self, rule: str) -> RuleResult:
        return next(r for r in self.results if r.rule == rule)

    def format(self, verbose: bool = True) -> str:
        parts = [r.counterexample.format(verbose) for r in self.failures
                 if r.counterexample is not None]
        parts += [f"{r.rule}: not checked: {r.skipped}\n  rule: {r.source}"
                  for r in self.skipped]
        ran = [r for r in self.results if r.skipped is None]
        parts.append(f"{self.isa}: {_plural(len(ran), 'rule')} run on "
                     f"{_plural(sum(r.cases for r in ran), 'case')} "
                     f"({_plural(sum(r.instances for r in ran), 'instance')}), "
                     f"{len(self.failures)} with a counterexample, "
                     f"{len(self.skipped)} not checked")
        return "\n".join(parts)


# ---------------------------------------------------------------------------
# The checker
# ---------------------------------------------------------------------------

def rule_source(rule: Rule) -> str:
    """A rule as written, on one line (modifiers, pattern, guard, result)."""
    ast = rule.ast
    mods = (f"prio {rule.prio} " if rule.prio else "") + ("commutative " if ast.commutative
                                                          else "")
    guard = f" if {ast.guard_text}" if ast.guard_text else ""
    return f"{mods}{ast.pattern_text}{guard} => {ast.rhs_text}"


def _var_type_choices(rule: Rule, pat: Pat) -> list[dict[str, Type]]:
    names: list[str] = []

    def walk(p: Pat) -> None:
        for s in p.args:
            if isinstance(s, Var) and s.name not in names:
                names.append(s.name)
            elif isinstance(s, Pat):
                walk(s)

    walk(pat)
    options = []
    for n in names:
        info = rule.vars.get(n)
        types = sorted(info.types if info is not None else (), key=_TYPE_ORDER.get)
        options.append(types or [I32])
    return [dict(zip(names, combo)) for combo in itertools.product(*options)]


def _outcome_text(kind: str, values: Sequence[int] = (), trap: str = "",
                  message: str = "") -> str:
    if kind == "return":
        return "return " + (", ".join(map(_hex, values)) if values else "(nothing)")
    if kind == "trap":
        return f"trap {trap}"
    return f"{kind}: {message}"


def _compare(expected: tuple[str, object], got: Outcome, results: Sequence[Type],
             memory: Memory) -> str | None:
    """None if ``got`` agrees with ``expected``, else what differs (the ``got`` text)."""
    kind, payload = expected
    if kind == "trap":
        if got.kind != "trap" or got.trap != payload:
            return _outcome_text(got.kind, got.values, got.trap, got.message)
    elif got.kind != "return":
        return _outcome_text(got.kind, got.values, got.trap, got.message)
    else:
        want = list(payload)                                 # type: ignore[call-overload]
        for t, w, g in zip(results, want, got.values):
            if t.is_float:
                g &= _MASK[t]
            if g != w:
                note = ""
                if t is I32 and g & M32 == w:
                    note = " (upper 32 bits of an i32 result not zero: i32 values must " \
                           "stay zero-extended)"
                return _outcome_text("return", [x & (M64 if t.is_int else _MASK[t])
                                                for x in got.values]) + note
    for page, data in sorted(got.pages.items()):
        want_page = memory.page(page)
        if data != want_page:
            i = next(k for k in range(PAGE) if data[k] != want_page[k])
            return (_outcome_text(got.kind, got.values, got.trap, got.message)
                    + f", but memory at {page + i:#x} holds {data[i]:#04x}, "
                      f"expected {want_page[i]:#04x}")
    touched = {a & ~(PAGE - 1) for a in memory.writes}
    for page in sorted(touched - set(got.pages)):
        a = min(x for x in memory.writes if x & ~(PAGE - 1) == page)
        return (_outcome_text(got.kind, got.values, got.trap, got.message)
                + f", but nothing was stored at {a:#x} (expected {memory.writes[a]:#04x})")
    return None


def _resolve_isa(isa: Isa | str | Path) -> Isa:
    from .isa import Isa, load_isa, load_isa_dir
    if isinstance(isa, Isa):
        return isa
    p = Path(isa)
    if p.is_dir():
        return load_isa_dir(p)
    return load_isa(str(isa))


def check_rule_semantics(isa: Isa | str | Path = "x64", cases: int = 200, seed: int = 0,
                         rules: Iterable[str] | None = None, instances: int = 16,
                         attempts: int = 400, stress: bool = False,
                         machine: Machine | None = None) -> Report:
    """Run every checked rule of ``isa`` and compare with the reference semantics.

    ``isa`` is an ISA name, an ISA directory or a loaded ``Isa`` (its ops must
    use the x64 calling convention and emitter).  ``cases`` inputs are run per
    rule, spread over at most ``instances`` instances (``attempts`` bounds
    how many candidate instances are lowered looking for ones the rule
    fires on).  ``rules`` restricts the check to rules whose label or top op
    is listed.  ``stress`` allocates with three registers per class.  The
    result is deterministic for a given ``seed``.
    """
    from ..ir.verify import VerifierError, verify
    from ..pipeline import _define_params
    from .driver import lower_function

    loaded = _resolve_isa(isa)
    wanted = set(rules) if rules is not None else None
    machine = machine or Machine()
    report = Report(loaded.name)
    for rule in loaded.rules:
        if rule.op not in CHECKED_OPS:
            continue
        if wanted is not None and rule.label not in wanted and rule.op not in wanted \
                and rule.loc not in wanted:
            continue
        # Seeded by the rule's text, not its place: moving a rule keeps its cases.
        rng = random.Random(f"{seed}:{rule_source(rule)}")
        res = RuleResult(rule.label, rule_source(rule))
        report.results.append(res)
        found: list[_Instance] = []
        reason = "no instance of the pattern is lowered by this rule"
        tried = 0
        for vi, pat in enumerate(rule.variants):
            for var_types in _var_type_choices(rule, pat):
                try:
                    pools = _imm_pools(pat, var_types)
                except _Skip:
                    continue
                if isinstance(pools, str):
                    reason = f"{pools} is not modelled"
                    continue
                for imms in _combos(pools, rng):
                    if tried >= attempts or len(found) >= instances * (vi + 1):
                        break
                    tried += 1
                    try:
                        ib, func = _build(pat, var_types, imms)
                        verify(func)
                    except (_Skip, VerifierError):
                        continue
                    inst = _Instance(vi, var_types, imms, format_function(func),
                                     params=ib.params, consts=ib.consts,
                                     results=list(func.results))
                    top_text = format_inst(ib.top) if ib.top is not None else ""
                    trace: list = []
                    try:
                        lower_function(func, loaded, trace=trace)
                    except CompileError:
                        continue
                    if not any(before == top_text and r == rule.label
                               for before, _, r in trace):
                        continue
                    _define_params(func, loaded.name)
                    inst.lowered = format_function(func, rules=True)
                    try:
                        mc = _compile(func, stress)
                    except CompileError as e:
                        res.counterexample = Counterexample(
                            rule.label, res.source, inst.generic, inst.lowered, [],
                            [], None, "the function compiles", f"compile error: {e}",
                            dict(imms))
                        break
                    inst.asm = mc.lines
                    inst.entry = machine.load(mc.code)
                    found.append(inst)
                if res.counterexample is not None:
                    break
            if res.counterexample is not None:
                break
        if res.counterexample is not None:
            res.instances = len(found) + 1
            continue
        if not found:
            res.skipped = reason
            continue
        res.instances = len(found)
        _run_cases(res, rule, found, cases, rng, machine)
    return report


def _compile(func: Function, stress: bool):
    from ..explain import compile_lowered
    return compile_lowered(func, stress=stress, check=True)


def _run_cases(res: RuleResult, rule: Rule, found: list[_Instance], cases: int,
               rng: random.Random, machine: Machine) -> None:
    from ..ir.text import parse_function

    generic = {id(i): parse_function(i.generic) for i in found}
    n = 0
    case = 0
    skipped_in_a_row = 0
    while n < cases and skipped_in_a_row < 50 * max(cases, 1):
        inst = found[case % len(found)]
        case += 1
        args, mem_size = _inputs(inst, rng, case // len(found))
        memory = Memory(mem_size, machine.fill)
        try:
            expected = evaluate(generic[id(inst)], args, memory)
        except Undefined:
            skipped_in_a_row += 1
            continue
        except NotImplementedError as e:
            res.skipped = str(e)
            return
        skipped_in_a_row = 0
        n += 1
        got = machine.run(inst.entry, list(zip([p.type for p in inst.params], args)),
                          inst.results, mem_size)
        diff = _compare(expected, got, inst.results, memory)
        if diff is not None:
            kind, payload = expected
            res.counterexample = Counterexample(
                rule.label, res.source, inst.generic, inst.lowered, inst.asm,
                [(p.name, f"v{k}", v) for k, (p, v) in enumerate(zip(inst.params, args))],
                mem_size if _uses_memory(generic[id(inst)]) else None,
                _outcome_text(kind, payload if kind == "return" else (),  # type: ignore[arg-type]
                              str(payload) if kind == "trap" else ""),
                diff, dict(inst.imms))
            break
    res.cases = n


def _uses_memory(func: Function) -> bool:
    return any(i.op in ("load", "store", "memory_size") for _, i in func.insts())


def run_against_reference(func: Function | str, args: Sequence[int],
                          mem_size: int = WASM_PAGE, isa: Isa | str | Path = "x64",
                          machine: Machine | None = None,
                          stress: bool = False) -> tuple[tuple[str, object], Outcome, str | None]:
    """Compile generic ``func`` with ``isa`` and run it once beside the reference semantics.

    Returns ``(expected, got, difference)``: ``expected`` is what ``evaluate``
    says, ``got`` what the machine code did, ``difference`` None when they
    agree (results, trap kind and memory), else the disagreement in words.
    """
    from ..ir.text import parse_function
    from ..ir.verify import verify
    from ..pipeline import _define_params
    from ..regalloc import isolate_edge_args
    from .driver import lower_function

    text = func if isinstance(func, str) else format_function(func)
    generic = parse_function(text)
    verify(generic)
    lowered = parse_function(text)
    loaded = _resolve_isa(isa)
    isolate_edge_args(lowered)
    lower_function(lowered, loaded)
    _define_params(lowered, loaded.name)
    machine = machine or Machine()
    entry = machine.load(_compile(lowered, stress).code)
    memory = Memory(mem_size, machine.fill)
    expected = evaluate(generic, args, memory)
    got = machine.run(entry, list(zip(generic.params, args)), generic.results, mem_size)
    return expected, got, _compare(expected, got, generic.results, memory)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m wasmlower.lower.semantics [ISA|DIR] [--cases N] [--seed S] [--rule R]``."""
    import argparse
    p = argparse.ArgumentParser(prog="python -m wasmlower.lower.semantics",
                                description="Run integer lowering rules against the reference "
                                            "semantics of the generic IR.")
    p.add_argument("isa", nargs="?", default="x64", help="ISA name or directory (default x64)")
    p.add_argument("--cases", type=int, default=200, help="inputs per rule (default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rule", action="append", metavar="LABEL|OP",
                   help="check only this rule (file:line) or top op; repeatable")
    p.add_argument("--stress", action="store_true", help="allocate with 3 registers per class")
    p.add_argument("-q", "--quiet", action="store_true", help="no instance or machine code")
    args = p.parse_args(argv)
    report = check_rule_semantics(args.isa, cases=args.cases, seed=args.seed, rules=args.rule,
                                  stress=args.stress)
    print(report.format(verbose=not args.quiet))
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

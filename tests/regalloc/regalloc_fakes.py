"""A fake x86-64-like machine for the register allocator's tests.

Ops of dialect ``ra`` with an executable meaning, a constraint function in
the style of an ISA (two-address adds, ``div`` with FIXED rax/rdx, ``shl``
with FIXED rcx, calls clobbering caller-saved registers and passing the 7th
integer argument on the stack, parameters in registers and on the stack),
interpreters for the program before allocation (on vregs) and after it (on
registers and slots, executing the moves), and a random program generator.
"""

from __future__ import annotations

import random

from wasmlower.ir import Builder, Function, OpInfo, register_op
from wasmlower.ir.function import Block, BlockCall, Inst, Value
from wasmlower.ir.ops import CALL, TERMINATOR, WRITES
from wasmlower.ir.types import F64, I64
from wasmlower.regalloc import (
    ANY,
    FIXED,
    REG,
    REUSE,
    STACK_ARG,
    STACK_PARAM,
    Allocation,
    InstConstraints,
    Operand,
    RegFile,
)

MASK = (1 << 64) - 1

NAMES = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
         "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15") + tuple(
             f"xmm{i}" for i in range(16))
R = {n: i for i, n in enumerate(NAMES)}
GPR = tuple(R[n] for n in ("rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10",
                           "rbx", "r12", "r13", "r14", "r15"))
XMM = tuple(R[f"xmm{i}"] for i in range(15))
CALLEE_SAVED = frozenset(R[n] for n in ("rbx", "rbp", "r12", "r13", "r14", "r15"))
CALLER_SAVED = frozenset(R[n] for n in ("rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10",
                                        "r11")) | frozenset(range(16, 32))
REGS = RegFile(names=NAMES, classes=(GPR, XMM), callee_saved=CALLEE_SAVED,
               scratch=(R["r11"], R["xmm15"]))
INT_ARGS = tuple(R[n] for n in ("rdi", "rsi", "rdx", "rcx", "r8", "r9"))
FLOAT_ARGS = tuple(R[f"xmm{i}"] for i in range(8))

_ANY = ("any", "*")
for _name in ("params", "imm", "add", "sub3", "mul", "shl", "tmpop", "early", "anydef", "nz",
              "dec", "div", "fadd", "cvt", "icvt", "fixtemp"):
    register_op(OpInfo(f"ra.{_name}", _ANY, "ctrl", ("value",) if _name == "imm" else (),
                       dialect="ra"))
for _name in ("call", "fcall"):
    register_op(OpInfo(f"ra.{_name}", _ANY, "ctrl", (), frozenset({CALL}), dialect="ra"))
register_op(OpInfo("ra.out", _ANY, (), (), frozenset({WRITES}), dialect="ra"))
for _name in ("brif", "br_table", "ret"):
    register_op(OpInfo(f"ra.{_name}", _ANY, (), (), frozenset({TERMINATOR}), dialect="ra"))


def _cls(v: Value) -> int:
    return 1 if v.type.is_float else 0


def _arg_operands(args: list[Value], kind: str) -> list[Operand]:
    """Calling convention: ints in INT_ARGS, floats in FLOAT_ARGS, the rest on the stack."""
    out, ni, nf, ns = [], 0, 0, 0
    for v in args:
        regs, n = (FLOAT_ARGS, nf) if v.type.is_float else (INT_ARGS, ni)
        if n < len(regs):
            out.append(Operand(v, kind, FIXED, _cls(v), preg=regs[n]))
        else:
            pol = STACK_ARG if kind == "use" else STACK_PARAM
            out.append(Operand(v, kind, pol, _cls(v), slot=ns))
            ns += 1
        if v.type.is_float:
            nf += 1
        else:
            ni += 1
    return out


class FakeISA:
    """The constraint callback (caches per instruction, like a real ISA)."""

    def __init__(self) -> None:
        self.cache: dict[Inst, InstConstraints] = {}

    def __call__(self, inst: Inst) -> InstConstraints:
        c = self.cache.get(inst)
        if c is None:
            c = self.cache[inst] = self.build(inst)
        return c

    def build(self, inst: Inst) -> InstConstraints:
        op = inst.op[3:]
        a = inst.args
        res = inst.results

        def use(i: int, pol: int = REG, **kw) -> Operand:
            return Operand(a[i], "use", pol, _cls(a[i]), **kw)

        def d(i: int, pol: int = REG, **kw) -> Operand:
            return Operand(res[i], "def", pol, _cls(res[i]), **kw)

        if op == "params":
            return InstConstraints(tuple(_arg_operands(res, "def")))
        if op == "imm":
            return InstConstraints((d(0),))
        if op in ("add", "mul", "fadd"):                 # add r, r/m (two-address)
            return InstConstraints((use(0), use(1, ANY), d(0, REUSE, reuse=0)))
        if op == "sub3":
            return InstConstraints((use(0), use(1), d(0)))
        if op == "shl":                                  # shl r, cl
            return InstConstraints((use(0), use(1, FIXED, preg=R["rcx"]), d(0, REUSE, reuse=0)))
        if op == "dec":
            return InstConstraints((use(0), d(0, REUSE, reuse=0)))
        if op == "tmpop":
            t = Value(-1, I64)
            return InstConstraints((use(0), use(1), d(0), Operand(t, "temp", REG, 0)))
        if op == "fixtemp":                              # a temp pinned to r10
            t = Value(-1, I64)
            return InstConstraints((use(0), d(0), Operand(t, "temp", FIXED, 0, preg=R["r10"])))
        if op == "early":
            return InstConstraints((use(0), use(1), d(0, early=True)))
        if op == "anydef":
            return InstConstraints((use(0), d(0, ANY)))
        if op == "nz":
            return InstConstraints((use(0), d(0)))
        if op == "div":                                  # cqo; div b: rdx:rax / b
            return InstConstraints((use(0, FIXED, preg=R["rax"]), use(1),
                                    d(0, FIXED, preg=R["rax"]),
                                    d(1, FIXED, preg=R["rdx"], early=True)))
        if op in ("cvt", "icvt"):
            return InstConstraints((use(0), d(0)))
        if op in ("call", "fcall"):
            ret = R["xmm0"] if op == "fcall" else R["rax"]
            ops = _arg_operands(list(a), "use") + [d(0, FIXED, preg=ret)]
            return InstConstraints(tuple(ops), CALLER_SAVED)
        if op == "out":
            return InstConstraints((use(0, ANY),))
        if op in ("brif", "br_table"):
            return InstConstraints((use(0),))
        if op == "ret":
            return InstConstraints((use(0, FIXED, preg=R["xmm0" if a[0].type.is_float
                                                         else "rax"]),))
        raise AssertionError(f"no constraints for {inst.op}")


# -- semantics ------------------------------------------------------------------------

def _call_hash(args: list[int], salt: int) -> int:
    h = salt
    for i, x in enumerate(args):
        h = (h * 0x100000001B3 + (x ^ (i + 1) * 0x9E3779B97F4A7C15)) & MASK
    return h


def evaluate(op: str, args: list[int], imm: tuple) -> list[int]:
    """The results of ``op`` on ``args`` (all values are 64-bit patterns)."""
    op = op[3:]
    if op == "imm":
        return [imm[0] & MASK]
    if op == "add":
        return [(args[0] + args[1]) & MASK]
    if op == "fadd":
        return [(args[0] + args[1] + 0x1000) & MASK]
    if op == "mul":
        return [(args[0] * (args[1] | 1)) & MASK]
    if op == "sub3":
        return [(args[0] - args[1]) & MASK]
    if op == "shl":
        return [(args[0] << (args[1] & 7)) & MASK]
    if op == "dec":
        return [(args[0] - 1) & MASK]
    if op in ("tmpop", "fixtemp"):
        return [((args[0] ^ (args[-1] << 1)) * 3 + 1) & MASK]
    if op == "early":
        return [(args[0] + 2 * args[1]) & MASK]
    if op == "anydef":
        return [(args[0] + 7) & MASK]
    if op == "nz":
        return [int(args[0] != 0)]
    if op == "div":
        d = (args[1] & 0xFF) + 1
        return [args[0] // d, args[0] % d]
    if op == "cvt":
        return [args[0] ^ 0x55]
    if op == "icvt":
        return [args[0] ^ 0xAA]
    if op == "call":
        return [_call_hash(args, 7)]
    if op == "fcall":
        return [_call_hash(args, 11)]
    raise AssertionError(op)


class Trace:
    def __init__(self) -> None:
        self.out: list[int] = []
        self.ret: int | None = None


STEP_LIMIT = 200_000


def run_ir(func: Function, inputs: list[int]) -> Trace:
    """Interpret ``func`` on vregs."""
    env: dict[Value, int] = {}
    tr = Trace()
    b = func.entry
    steps = 0
    while True:
        for inst in b.insts:
            steps += 1
            assert steps < STEP_LIMIT, "runaway program"
            op = inst.op
            if op == "ra.params":
                for v, x in zip(inst.results, inputs):
                    env[v] = x
                continue
            if op == "ra.out":
                tr.out.append(env[inst.args[0]])
                continue
            if op == "ra.ret":
                tr.ret = env[inst.args[0]]
                return tr
            if op in ("jump", "ra.brif", "ra.br_table", "brif", "br_table"):
                if op == "jump":
                    t = inst.targets[0]
                elif op in ("ra.brif", "brif"):
                    t = inst.targets[0 if env[inst.args[0]] & 1 else 1]
                else:
                    t = inst.targets[env[inst.args[0]] % len(inst.targets)]
                vals = [env[a] for a in t.args]
                for p, x in zip(t.block.params, vals):
                    env[p] = x
                b = t.block
                break
            for v, x in zip(inst.results, evaluate(op, [env[a] for a in inst.args], inst.imm)):
                env[v] = x
        else:
            raise AssertionError(f"{b} fell off its end")


def run_allocated(func: Function, alloc: Allocation, inputs: list[int],
                  seed: int = 0) -> Trace:
    """Execute the allocated program: locations, moves, clobbers; garbage elsewhere."""
    rng = random.Random(seed)

    def garbage() -> int:
        return rng.getrandbits(64)

    st: dict[int, int] = {r: garbage() for r in range(len(NAMES))}
    tr = Trace()

    def move(mv: tuple[int, int, int]) -> None:
        src, dst, _ = mv
        assert not (src < 0 and dst < 0), "memory-to-memory move"
        st[dst] = st[src] if src in st else garbage()

    def read(loc: int) -> int:
        return st[loc] if loc in st else garbage()

    b = func.entry
    steps = 0
    while True:
        for inst in b.insts:
            steps += 1
            assert steps < STEP_LIMIT, "runaway program"
            op = inst.op
            for mv in alloc.before.get(inst, ()):
                move(mv)
            if op == "jump":
                for mv in alloc.edge_moves.get(b, ()):
                    move(mv)
                b = inst.targets[0].block
                break
            c = alloc.constraints[inst]
            locs = alloc.operand_locs[inst]
            # Early defs and temps may be written before the uses are read.
            for o, loc in zip(c.operands, locs):
                if o.kind == "temp" or (o.kind == "def" and o.early):
                    st[loc] = garbage()
            uses = [read(loc) for o, loc in zip(c.operands, locs) if o.kind == "use"]
            if op == "ra.params":
                results = list(inputs)
            elif op == "ra.out":
                tr.out.append(uses[0])
                results = []
            elif op == "ra.ret":
                tr.ret = uses[0]
                return tr
            elif op == "ra.brif":
                b = inst.targets[0 if uses[0] & 1 else 1].block
                break
            elif op == "ra.br_table":
                b = inst.targets[uses[0] % len(inst.targets)].block
                break
            else:
                results = evaluate(op, uses, inst.imm)
            for r in c.clobbers:
                st[r] = garbage()
            defs = [(o, loc) for o, loc in zip(c.operands, locs) if o.kind == "def"]
            for (o, loc), x in zip(defs, results):
                assert not (loc < 0 and loc <= -(1 << 20) and loc > -(2 << 20)), "def to arg"
                st[loc] = x
            for o, loc in zip(c.operands, locs):
                if o.kind == "temp":
                    st[loc] = garbage()
            for mv in alloc.after.get(inst, ()):
                move(mv)
        else:
            raise AssertionError(f"{b} fell off its end")


# -- random programs ------------------------------------------------------------------------

class ProgramGen:
    """Random structured programs: straight-line ops, diamonds, loops, switches, calls."""

    def __init__(self, rng: random.Random, size: int = 60, calls: bool = True) -> None:
        self.rng = rng
        self.size = size
        self.calls = calls
        self.count = 0

    def function(self, name: str = "rand") -> tuple[Function, list[int]]:
        rng = self.rng
        f = Function(name, [], [I64])
        f.meta["lowered"] = True
        b = Builder(f)
        b.block()
        types = [I64] * rng.randint(0, 8) + [F64] * rng.randint(0, 3)
        rng.shuffle(types)
        params = b.insert("ra.params", [], types=types).results
        ints = [p for p in params if p.type is I64]
        floats = [p for p in params if p.type is F64]
        if not ints:
            ints.append(b.op("ra.imm", imm=(rng.randint(-9, 99),), type=I64))
        while self.count < self.size:
            self.region(b, ints, floats, 0)
        b.insert("ra.ret", [rng.choice(ints)])
        if rng.random() < 0.2:                   # an unreachable block
            dead = b.block()
            b.switch_to(dead)
            b.insert("ra.ret", [b.op("ra.imm", imm=(1,), type=I64)])
        inputs = [rng.getrandbits(64) if rng.random() < 0.7 else rng.randint(0, 9)
                  for _ in types]
        return f, inputs

    def pick(self, vals: list[Value]) -> Value:
        # Favour recent values but reach back to long-lived ones too.
        if self.rng.random() < 0.6:
            return self.rng.choice(vals[-4:])
        return self.rng.choice(vals)

    def region(self, b: Builder, ints: list[Value], floats: list[Value], depth: int) -> None:
        rng = self.rng
        n = rng.randint(2, 8)
        for _ in range(n):
            if self.count >= self.size:
                return
            r = rng.random()
            if depth < 3 and r < 0.12:
                self.diamond(b, ints, floats, depth)
            elif depth < 3 and r < 0.22:
                self.loop(b, ints, floats, depth)
            elif depth < 3 and r < 0.26:
                self.switch(b, ints, floats, depth)
            elif self.calls and r < 0.33:
                self.call(b, ints, floats)
            else:
                self.simple(b, ints, floats)

    def simple(self, b: Builder, ints: list[Value], floats: list[Value]) -> None:
        rng = self.rng
        self.count += 1
        kinds = ["imm", "add", "sub3", "mul", "shl", "tmpop", "early", "anydef", "nz", "div",
                 "out", "icvt", "fixtemp", "dec"]
        if floats:
            kinds += ["fadd", "cvt", "fadd"]
        k = rng.choice(kinds)
        x, y = self.pick(ints), self.pick(ints)
        if k == "imm":
            ints.append(b.op("ra.imm", imm=(rng.randint(-5, 300),), type=I64))
        elif k in ("add", "sub3", "mul", "shl", "tmpop", "early"):
            ints.append(b.op(f"ra.{k}", x, y, type=I64))
        elif k in ("anydef", "nz", "dec", "fixtemp"):
            ints.append(b.op(f"ra.{k}", x, type=I64))
        elif k == "div":
            q, r = b.insert("ra.div", [x, y], types=[I64, I64]).results
            ints += [q, r]
        elif k == "out":
            b.insert("ra.out", [x if not floats or rng.random() < 0.7 else self.pick(floats)])
        elif k == "icvt":
            floats.append(b.op("ra.icvt", x, type=F64))
        elif k == "fadd":
            floats.append(b.op("ra.fadd", self.pick(floats), self.pick(floats), type=F64))
        elif k == "cvt":
            ints.append(b.op("ra.cvt", self.pick(floats), type=I64))

    def call(self, b: Builder, ints: list[Value], floats: list[Value]) -> None:
        rng = self.rng
        self.count += 1
        args = [self.pick(ints) for _ in range(rng.choice([0, 1, 2, 3, 6, 7, 8]))]
        if floats and rng.random() < 0.4:
            args += [self.pick(floats) for _ in range(rng.randint(1, 3))]
            rng.shuffle(args)
        if floats and rng.random() < 0.3:
            floats.append(b.op("ra.fcall", *args, type=F64))
        else:
            ints.append(b.op("ra.call", *args, type=I64))

    def _args(self, ints: list[Value], floats: list[Value], types: list) -> list[Value]:
        return [self.pick(ints) if t is I64 else self.pick(floats) for t in types]

    def _types(self, floats: list[Value], lo: int, hi: int) -> list:
        n = self.rng.randint(lo, hi)
        return [F64 if floats and self.rng.random() < 0.25 else I64 for _ in range(n)]

    def _enter(self, blk: Block, ints: list[Value], floats: list[Value]):
        return (ints + [p for p in blk.params if p.type is I64],
                floats + [p for p in blk.params if p.type is F64])

    def diamond(self, b: Builder, ints: list[Value], floats: list[Value], depth: int) -> None:
        rng = self.rng
        self.count += 1
        cond = self.pick(ints)
        arms = [b.block(self._types(floats, 0, 2) if rng.random() < 0.5 else [])
                for _ in range(2)]
        join_types = self._types(floats, 0, 3)
        join = b.block(join_types)
        b.insert("ra.brif", [cond], targets=[
            BlockCall(arm, self._args(ints, floats, [p.type for p in arm.params]))
            for arm in arms])
        for arm in arms:
            b.switch_to(arm)
            ai, af = self._enter(arm, ints, floats)
            if rng.random() < 0.8:
                self.region(b, ai, af, depth + 1)
            b.jump(join, self._args(ai, af, join_types))
        b.switch_to(join)
        ints[:], floats[:] = self._enter(join, ints, floats)

    def loop(self, b: Builder, ints: list[Value], floats: list[Value], depth: int) -> None:
        rng = self.rng
        self.count += 1
        carried = self._types(floats, 1, 4)
        header = b.block([I64, *carried])
        init = b.op("ra.imm", imm=(rng.randint(1, 3),), type=I64)
        b.jump(header, [init, *self._args(ints, floats, carried)])
        b.switch_to(header)
        counter = header.params[0]
        li, lf = self._enter(header, ints, floats)
        li.remove(counter)
        self.region(b, li, lf, depth + 1)
        dec = b.op("ra.dec", counter, type=I64)
        cond = b.op("ra.nz", dec, type=I64)
        # Carried values: often the header's own parameters, permuted (swap cycles).
        params = list(header.params[1:])
        if rng.random() < 0.6:
            rng.shuffle(params)
            back = [p if p.type is t else self._args(li, lf, [t])[0]
                    for p, t in zip(params, carried)]
        else:
            back = self._args(li, lf, carried)
        exit_types = self._types(lf, 0, 2)
        exit_ = b.block(exit_types)
        b.insert("ra.brif", [cond], targets=[BlockCall(header, [dec, *back]),
                                             BlockCall(exit_, self._args(li, lf, exit_types))])
        b.switch_to(exit_)
        ints[:], floats[:] = self._enter(exit_, ints, floats)

    def switch(self, b: Builder, ints: list[Value], floats: list[Value], depth: int) -> None:
        rng = self.rng
        self.count += 1
        idx = self.pick(ints)
        join_types = self._types(floats, 0, 2)
        join = b.block(join_types)
        cases = [b.block(self._types(floats, 0, 1)) for _ in range(rng.randint(2, 4))]
        targets = [BlockCall(c, self._args(ints, floats, [p.type for p in c.params]))
                   for c in cases]
        if rng.random() < 0.5:                   # a repeated target
            targets.append(targets[0])
        b.insert("ra.br_table", [idx], targets=targets)
        for c in cases:
            b.switch_to(c)
            ci, cf = self._enter(c, ints, floats)
            if rng.random() < 0.5:
                self.region(b, ci, cf, depth + 1)
            b.jump(join, self._args(ci, cf, join_types))
        b.switch_to(join)
        ints[:], floats[:] = self._enter(join, ints, floats)

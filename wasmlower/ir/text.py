"""The IR text format: a printer and a parser that round-trip.

    func @name(i32, i64) -> i32 {
    block0(v0: i32, v1: i64):
        v2 = iconst.i32 [7]
        v3 = icmp v0, v2 [slt]
        brif v3, block1(v0), block2
    block1(v4: i32):
        return v4
    block2:
        trap [unreachable]
    }

An instruction is ``[results =] op[.T...] args, targets [imms]``.  ``.T``
suffixes give the result types of ops whose result type is not implied by
their arguments.  Immediates are signed decimal integers, ``0x`` hex (used for
float bit patterns) or identifiers.  ``; ...`` to the end of a line is a
comment; the printer writes the producing rule there when asked.
"""

from __future__ import annotations

import re

from ..errors import CompileError
from .function import Block, BlockCall, Function, Inst, Value
from .ops import OPS
from .types import Type


class IRParseError(CompileError):
    def __init__(self, message: str, line: int, text: str) -> None:
        self.line = line
        super().__init__(f"line {line}: {message}\n  {text.strip()}")


# -- printing -----------------------------------------------------------------

def _imm(op: str, value: object) -> str:
    if op == "fconst" and isinstance(value, int):
        return hex(value)
    return str(value)


def format_inst(inst: Inst, rules: bool = False) -> str:
    parts = []
    if inst.results:
        parts.append(", ".join(f"v{r.id}" for r in inst.results) + " = ")
    name = inst.op
    if inst.info.result == "ctrl":
        name += "".join(f".{r.type}" for r in inst.results)
    parts.append(name)
    operands = [f"v{a.id}" for a in inst.args]
    operands += [_target(t) for t in inst.targets]
    if operands:
        parts.append(" " + ", ".join(operands))
    if inst.imm:
        parts.append(" [" + ", ".join(_imm(inst.op, i) for i in inst.imm) + "]")
    text = "".join(parts)
    if rules and inst.rule:
        text = f"{text:<39} ; {inst.rule}"
    return text


def _target(t: BlockCall) -> str:
    if not t.args:
        return f"block{t.block.id}"
    return f"block{t.block.id}(" + ", ".join(f"v{a.id}" for a in t.args) + ")"


def format_block_header(b: Block) -> str:
    if not b.params:
        return f"block{b.id}:"
    return f"block{b.id}(" + ", ".join(f"v{p.id}: {p.type}" for p in b.params) + "):"


def format_function(f: Function, rules: bool = False) -> str:
    sig = ", ".join(map(str, f.params))
    res = ", ".join(map(str, f.results))
    lines = [f"func @{f.name}({sig})" + (f" -> {res}" if f.results else "") + " {"]
    for b in f.blocks:
        lines.append(format_block_header(b))
        for inst in b.insts:
            lines.append("    " + format_inst(inst, rules))
    lines.append("}")
    return "\n".join(lines)


# -- parsing ------------------------------------------------------------------

_FUNC = re.compile(r"func\s+@([\w.$-]+)\s*\(([^)]*)\)\s*(?:->\s*([\w,\s]+))?\s*\{$")
_BLOCK = re.compile(r"block(\d+)(?:\((.*)\))?:$")
_INST = re.compile(r"(?:(v\d+(?:\s*,\s*v\d+)*)\s*=\s*)?([\w.]+)(.*)$")
_TYPES = {t.value for t in Type}


def _split_types(text: str) -> list[Type]:
    return [Type.parse(t.strip()) for t in text.split(",") if t.strip()]


def parse_functions(text: str) -> list[Function]:
    """Parse every ``func`` in ``text`` (other lines outside functions are ignored)."""
    funcs = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].split(";", 1)[0].strip()
        m = _FUNC.match(line)
        if m:
            i = _parse_body(lines, i, m, funcs)
        i += 1
    return funcs


def parse_function(text: str) -> Function:
    funcs = parse_functions(text)
    if len(funcs) != 1:
        raise IRParseError(f"expected one function, found {len(funcs)}", 1, text[:60])
    return funcs[0]


def _parse_body(lines: list[str], start: int, m: re.Match, out: list[Function]) -> int:
    f = Function(m.group(1), _split_types(m.group(2)), _split_types(m.group(3) or ""))
    values: dict[int, Value] = {}
    blocks: dict[int, Block] = {}
    pending: list[tuple[int, str, Inst, list[tuple[int, list[int]]]]] = []

    def block_ref(n: int) -> Block:
        if n not in blocks:
            blocks[n] = Block(n)
        return blocks[n]

    current: Block | None = None
    i = start + 1
    while i < len(lines):
        raw = lines[i]
        line = raw.split(";", 1)[0].strip()
        i += 1
        if not line:
            continue
        if line == "}":
            break
        bm = _BLOCK.match(line)
        if bm:
            n = int(bm.group(1))
            current = block_ref(n)
            if current in f.blocks:
                raise IRParseError(f"block{n} defined twice", i, raw)
            f.blocks.append(current)
            f._next_block = max(f._next_block, n + 1)
            for p in filter(None, (s.strip() for s in (bm.group(2) or "").split(","))):
                name, _, ty = p.partition(":")
                v = _define(f, values, name.strip(), ty.strip(), i, raw)
                v.block = current
                current.params.append(v)
            continue
        if current is None:
            raise IRParseError("instruction outside a block", i, raw)
        current.insts.append(_parse_inst(f, values, line, i, raw, pending))
    else:
        raise IRParseError("missing '}'", i, lines[start])
    # Resolve forward references to values and blocks.
    for lineno, raw, inst, tgts in pending:
        try:
            inst.args = [values[a.id] if isinstance(a, _Fwd) else a for a in inst.args]
            inst.targets = [BlockCall(block_ref(b), [values[a] for a in args]) for b, args in tgts]
        except KeyError as e:
            raise IRParseError(f"undefined value v{e.args[0]}", lineno, raw) from None
    for n, b in blocks.items():
        if b not in f.blocks:
            raise IRParseError(f"undefined block block{n}", start + 1, lines[start])
    out.append(f)
    return i - 1


class _Fwd:
    __slots__ = ("id",)

    def __init__(self, id: int) -> None:
        self.id = id


def _define(f: Function, values: dict[int, Value], name: str, ty: str, lineno: int,
            raw: str) -> Value:
    if not re.fullmatch(r"v\d+", name):
        raise IRParseError(f"bad value name {name!r}", lineno, raw)
    n = int(name[1:])
    if n in values:
        raise IRParseError(f"{name} defined twice", lineno, raw)
    if ty not in _TYPES:
        raise IRParseError(f"unknown type {ty!r}", lineno, raw)
    v = f.new_value(Type.parse(ty), n)
    values[n] = v
    return v


def _split_operands(text: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def _parse_inst(f: Function, values: dict[int, Value], line: str, lineno: int, raw: str,
                pending: list) -> Inst:
    m = _INST.match(line)
    if not m:
        raise IRParseError("cannot parse instruction", lineno, raw)
    names = [s.strip() for s in m.group(1).split(",")] if m.group(1) else []
    opname, rest = m.group(2), m.group(3).strip()
    parts = opname.split(".")
    types: list[str] = []
    while len(parts) > 1 and parts[-1] in _TYPES:
        types.insert(0, parts.pop())
    op = ".".join(parts)
    info = OPS.get(op)
    if info is None:
        raise IRParseError(f"unknown op {op!r}", lineno, raw)
    imm: tuple = ()
    if rest.endswith("]"):
        k = rest.rfind("[")
        imm = tuple(_parse_imm(s.strip()) for s in rest[k + 1:-1].split(",") if s.strip())
        rest = rest[:k].strip()
    args: list = []
    tgts: list[tuple[int, list[int]]] = []
    for operand in _split_operands(rest):
        if operand.startswith("block"):
            bm = re.fullmatch(r"block(\d+)(?:\((.*)\))?", operand)
            if not bm:
                raise IRParseError(f"bad block target {operand!r}", lineno, raw)
            targs = [s.strip() for s in (bm.group(2) or "").split(",") if s.strip()]
            tgts.append((int(bm.group(1)), [int(a[1:]) for a in targs]))
        elif re.fullmatch(r"v\d+", operand):
            n = int(operand[1:])
            args.append(values.get(n) or _Fwd(n))
        else:
            raise IRParseError(f"bad operand {operand!r}", lineno, raw)
    # Result types: explicit suffixes, else inferred from the op table.
    if info.result == "ctrl":
        rtypes = [Type.parse(t) for t in types]
    elif info.result == "same":
        first = args[0] if args else None
        if first is None or isinstance(first, _Fwd):
            raise IRParseError(f"cannot infer the result type of {op}", lineno, raw)
        rtypes = [first.type]
    else:
        rtypes = [Type.parse(t) for t in info.result]
    if len(rtypes) != len(names):
        raise IRParseError(f"{op} defines {len(rtypes)} result(s), {len(names)} named",
                           lineno, raw)
    results = [_define(f, values, n, str(t), lineno, raw) for n, t in zip(names, rtypes)]
    inst = Inst(op, [], results, imm)
    inst.args = args
    pending.append((lineno, raw, inst, tgts))
    return inst


def _parse_imm(text: str) -> int | str:
    try:
        return int(text, 0)
    except ValueError:
        return text

"""A builder that appends instructions to a block, inferring result types.

    f = Function("add1", [I32], [I32])
    b = Builder(f)
    entry = b.block(params=[I32])
    x = entry.params[0]
    one = b.iconst(I32, 1)
    b.ret(b.op("iadd", x, one))
"""

from __future__ import annotations

from collections.abc import Sequence

from .function import Block, BlockCall, Function, Inst, Value
from .ops import OPS
from .types import Type


def result_types(op: str, args: Sequence[Value], ctrl: Sequence[Type] = ()) -> list[Type]:
    """The result types of ``op`` applied to ``args``; ``ctrl`` gives ``.T`` types."""
    rule = OPS[op].result
    if rule == "same":
        return [args[0].type]
    if rule == "ctrl":
        return list(ctrl)
    return [Type.parse(t) for t in rule]


class Builder:
    def __init__(self, func: Function, block: Block | None = None) -> None:
        self.func = func
        self.current = block
        self.loc: int | None = None        # wasm offset stamped on new instructions

    def block(self, params: Sequence[Type] = ()) -> Block:
        blk = self.func.new_block()
        for t in params:
            self.func.add_param(blk, t)
        if self.current is None:
            self.current = blk
        return blk

    def switch_to(self, block: Block) -> None:
        self.current = block

    def insert(self, op: str, args: Sequence[Value] = (), imm: tuple = (),
               types: Sequence[Type] = (), targets: Sequence[BlockCall] = ()) -> Inst:
        results = [self.func.new_value(t) for t in result_types(op, args, types)]
        inst = Inst(op, args, results, imm, targets, self.loc)
        assert self.current is not None, "no current block"
        self.current.insts.append(inst)
        return inst

    def op(self, op: str, *args: Value, imm: tuple = (), type: Type | None = None) -> Value:
        """Append a single-result op and return its value."""
        return self.insert(op, args, imm, (type,) if type is not None else ()).results[0]

    def iconst(self, type: Type, value: int) -> Value:
        bits = type.bits
        value &= (1 << bits) - 1
        if value >> (bits - 1):
            value -= 1 << bits         # immediates are stored signed
        return self.op("iconst", imm=(value,), type=type)

    def fconst(self, type: Type, bits: int) -> Value:
        return self.op("fconst", imm=(bits,), type=type)

    # -- terminators -----------------------------------------------------
    def jump(self, target: Block, args: Sequence[Value] = ()) -> None:
        self.insert("jump", targets=[BlockCall(target, args)])

    def brif(self, cond: Value, then: Block, then_args: Sequence[Value],
             else_: Block, else_args: Sequence[Value]) -> None:
        self.insert("brif", [cond], targets=[BlockCall(then, then_args), BlockCall(else_, else_args)])

    def br_table(self, index: Value, default: BlockCall, table: Sequence[BlockCall]) -> None:
        # Targets: the table entries in order, then the default last.
        self.insert("br_table", [index], targets=[*table, default])

    def ret(self, *values: Value) -> None:
        self.insert("return", values)

    def trap(self, code: str) -> None:
        self.insert("trap", imm=(code,))

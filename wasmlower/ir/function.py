"""Functions, blocks, instructions and values: the IR's data structures.

SSA with block parameters.  A ``Function`` owns an ordered list of ``Block``s;
the first is the entry, whose parameters are the function's parameters.
Each block holds ``Inst``s and ends with exactly one terminator.  Branch
targets are ``BlockCall``s: a block plus the values passed to its params.

Invariants (checked by ``verify``): every value has one definition, either a
block parameter or an instruction result; every use is dominated by its
definition; block-call arities and types match the target's parameters.

Generic ops and machine ops (``x64.add32``) share these classes; ``op`` names
an entry of ``ops.OPS``.  ``Inst.rule`` records which lowering rule produced a
machine op (``file:line name``), for ``explain`` and tracing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from .ops import OPS, OpInfo
from .types import Type


class Value:
    """An SSA value.  ``inst`` is its defining instruction (None for block params)."""

    __slots__ = ("block", "id", "inst", "type")

    def __init__(self, id: int, type: Type) -> None:
        self.id = id
        self.type = type
        self.inst: Inst | None = None
        self.block: Block | None = None     # set for block parameters

    def __repr__(self) -> str:
        return f"v{self.id}"


class BlockCall:
    """A branch target: ``block(args...)``."""

    __slots__ = ("args", "block")

    def __init__(self, block: Block, args: Sequence[Value] = ()) -> None:
        self.block = block
        self.args = list(args)

    def __repr__(self) -> str:
        return f"{self.block}({', '.join(map(repr, self.args))})"


class Inst:
    __slots__ = ("args", "imm", "info", "loc", "op", "results", "rule", "targets")

    def __init__(self, op: str, args: Sequence[Value] = (), results: Sequence[Value] = (),
                 imm: tuple = (), targets: Sequence[BlockCall] = (), loc: int | None = None,
                 rule: str | None = None) -> None:
        self.op = op
        self.info: OpInfo = OPS[op]
        self.args = list(args)
        self.results = list(results)
        self.imm = tuple(imm)
        self.targets = list(targets)
        self.loc = loc            # wasm bytecode offset this instruction came from
        self.rule = rule
        for r in self.results:
            r.inst = self

    @property
    def result(self) -> Value:
        return self.results[0]

    @property
    def is_terminator(self) -> bool:
        return self.info.is_terminator

    def __repr__(self) -> str:
        from .text import format_inst
        return format_inst(self)


class Block:
    __slots__ = ("func", "id", "insts", "params")

    def __init__(self, id: int) -> None:
        self.id = id
        self.params: list[Value] = []
        self.insts: list[Inst] = []

    @property
    def terminator(self) -> Inst:
        return self.insts[-1]

    def successors(self) -> list[Block]:
        if not self.insts:
            return []
        return [t.block for t in self.insts[-1].targets]

    def __repr__(self) -> str:
        return f"block{self.id}"


class Function:
    """One function: name, signature, blocks (entry first)."""

    def __init__(self, name: str, params: Sequence[Type] = (), results: Sequence[Type] = ()) -> None:
        self.name = name
        self.params = list(params)
        self.results = list(results)
        self.blocks: list[Block] = []
        self._next_value = 0
        self._next_block = 0
        self.meta: dict = {}          # pass/stage annotations (e.g. "isa", "wasm_index")

    # -- construction ----------------------------------------------------
    def new_value(self, type: Type, id: int | None = None) -> Value:
        if id is None:
            id = self._next_value
        self._next_value = max(self._next_value, id + 1)
        return Value(id, type)

    def new_block(self, id: int | None = None) -> Block:
        if id is None:
            id = self._next_block
        self._next_block = max(self._next_block, id + 1)
        b = Block(id)
        self.blocks.append(b)
        return b

    def add_param(self, block: Block, type: Type) -> Value:
        v = self.new_value(type)
        v.block = block
        block.params.append(v)
        return v

    @property
    def entry(self) -> Block:
        return self.blocks[0]

    @property
    def num_values(self) -> int:
        return self._next_value

    def insts(self) -> Iterator[tuple[Block, Inst]]:
        for b in self.blocks:
            for inst in b.insts:
                yield b, inst

    def __str__(self) -> str:
        from .text import format_function
        return format_function(self)

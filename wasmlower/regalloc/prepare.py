"""Edge preparation for the register allocator (runs on generic IR, before lowering).

The allocator puts the moves of block arguments at the end of the source
block, just before its terminator.  That is only correct when the block's
terminator is a ``jump``: a ``brif`` or ``br_table`` has several successors,
and moves for one edge would run on the others too.

``isolate_edge_args`` gives every such edge its own block holding only
``jump target(args)``.  Afterwards only ``jump`` passes block arguments, and
every branch with several targets goes to blocks without parameters.
"""

from __future__ import annotations

from ..ir.function import Block, BlockCall, Function, Inst


def isolate_edge_args(func: Function) -> Function:
    """Route every non-``jump`` branch edge that passes arguments through a new block.

    An edge needs isolating when it passes arguments or its target has
    parameters.  Edges of one branch with the same target and the same
    arguments share one new block.  New blocks follow their source block.
    Returns ``func``, changed in place.
    """
    new_order: list[Block] = []
    changed = False
    for b in list(func.blocks):
        new_order.append(b)
        if not b.insts:
            continue
        term = b.insts[-1]
        if term.op == "jump" or not term.targets:
            continue
        made: dict[tuple, Block] = {}
        for i, t in enumerate(term.targets):
            if not t.args and not t.block.params:
                continue
            key = (t.block, tuple(id(a) for a in t.args))
            edge = made.get(key)
            if edge is None:
                edge = func.new_block()
                func.blocks.pop()                  # placed below, after b
                edge.insts.append(Inst("jump", targets=[BlockCall(t.block, t.args)],
                                       loc=term.loc))
                made[key] = edge
                new_order.append(edge)
            term.targets[i] = BlockCall(edge, [])
            changed = True
    if changed:
        func.blocks[:] = new_order
    return func

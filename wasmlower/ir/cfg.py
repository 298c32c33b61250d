"""The control-flow graph of a function, as a ``networkx.DiGraph`` over blocks.

networkx holds the graph only; instructions stay in the blocks.  Computed on
demand (``CFG(func)``), so a pass that changes edges builds a new one.
"""

from __future__ import annotations

import networkx as nx

from .function import Block, Function


class CFG:
    def __init__(self, func: Function) -> None:
        self.func = func
        g = nx.DiGraph()
        g.add_nodes_from(func.blocks)
        for b in func.blocks:
            for s in b.successors():
                g.add_edge(b, s)
        self.graph = g
        self.entry = func.entry
        self._idom: dict[Block, Block] | None = None

    def preds(self, b: Block) -> list[Block]:
        return list(self.graph.predecessors(b))

    def succs(self, b: Block) -> list[Block]:
        return list(self.graph.successors(b))

    def reachable(self) -> set[Block]:
        return set(nx.descendants(self.graph, self.entry)) | {self.entry}

    def reverse_postorder(self) -> list[Block]:
        post = list(nx.dfs_postorder_nodes(self.graph, self.entry))
        post.reverse()
        return post

    @property
    def idom(self) -> dict[Block, Block]:
        """Immediate dominators of the reachable blocks (the entry maps to itself)."""
        if self._idom is None:
            self._idom = dict(nx.immediate_dominators(self.graph, self.entry))
            # networkx 3.6 leaves the entry out; the walk in `dominates` needs it.
            self._idom[self.entry] = self.entry
        return self._idom

    def dominates(self, a: Block, b: Block) -> bool:
        idom = self.idom
        if b not in idom:
            return True                     # unreachable code: anything goes
        while True:
            if a is b:
                return True
            parent = idom[b]
            if parent is b:
                return False
            b = parent

    def dominance_frontiers(self) -> dict[Block, set[Block]]:
        return nx.dominance_frontiers(self.graph, self.entry)

    def loop_depths(self) -> dict[Block, int]:
        """Loop nesting depth of each block (0 outside loops), from back edges."""
        depth = dict.fromkeys(self.func.blocks, 0)
        for tail, head in self.graph.edges:
            if tail in self.idom and self.dominates(head, tail):
                # natural loop of back edge tail -> head
                body = {head}
                stack = [tail]
                while stack:
                    n = stack.pop()
                    if n not in body:
                        body.add(n)
                        stack.extend(self.graph.predecessors(n))
                for n in body:
                    depth[n] += 1
        return depth

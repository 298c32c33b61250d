"""Parallel-move resolution: simultaneous moves -> an equivalent sequence.

Problem.  A parallel move ``{d_i <- s_i}`` reads every source before it
writes any destination.  The allocator produces them at three kinds of
sites: before an instruction (reloads, moves into fixed registers), after one
(stores, moves out of fixed registers) and at the end of a block that jumps
(block arguments -> the target's parameters).  The machine executes moves one
at a time, and the emitter can move register<->register and register<->memory
only.

Mechanism.  ``pending`` maps each destination to its (source, class);
``readers[l]`` counts the pending moves that read location ``l``.

1. A move whose destination nobody still reads is *ready*: emit it, drop one
   reader from its source, and when that source is itself a pending
   destination with no readers left, it becomes ready too.  This empties every
   tree of the move graph (destinations are distinct, so each location has at
   most one incoming move).
2. What remains are disjoint simple cycles ``l0 <- l1 <- ... <- l(n-1) <- l0``.
   Break one by copying one member ``b`` to a temporary ``t``, retarget the one
   move that read ``b`` to read ``t``; ``b`` now has no readers, so step 1
   unwinds the whole cycle and ends with the move out of ``t``.
3. A memory->memory move is emitted as ``scratch[cls] <- src; dst <-
   scratch[cls]``.

Invariants (argued where they are used below):

* a location is overwritten only when no pending move still reads it, so
  every pending move's source still holds its original value;
* a scratch register carries a value across emitted moves only while a
  cycle of its class is being unwound with ``t = scratch[cls]``, and ``t`` is
  chosen so that no memory->memory move of that class remains in the cycle;
  otherwise ``t`` is the reserved cycle slot, and scratch registers hold
  values only within one split memory->memory move.

Requested moves must not read or write a scratch register.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import CodegenError
from .constraints import Move


class ParallelMoveError(CodegenError):
    """Two moves of one parallel move write the same location with different values."""


class MoveResolver:
    """Sequentializes parallel moves with the scratch registers ``scratch`` (one per class).

    ``cycle_loc`` is a spill slot location the resolver may use to break a cycle
    that has several memory->memory moves of one class; ``used_cycle_loc`` says
    whether it did, ``used_scratch`` which scratch registers were written.
    """

    def __init__(self, scratch: Sequence[int], cycle_loc: int) -> None:
        self.scratch = tuple(scratch)
        self.scratch_set = frozenset(scratch)
        self.cycle_loc = cycle_loc
        self.used_cycle_loc = False
        self.used_scratch: set[int] = set()

    def _emit(self, out: list[Move], src: int, dst: int, cls: int) -> None:
        if src < 0 and dst < 0:
            s = self.scratch[cls]
            self.used_scratch.add(s)
            out.append((src, s, cls))
            out.append((s, dst, cls))
        else:
            out.append((src, dst, cls))

    def resolve(self, moves: Sequence[Move]) -> list[Move]:
        """An equivalent sequence of the parallel move ``moves``."""
        if len(moves) <= 8:
            # Fast path: no destination is read by another move (so any order
            # is right), destinations distinct, nothing memory to memory.
            srcs = {m[0] for m in moves}
            dsts = {m[1] for m in moves}
            if (len(dsts) == len(moves) and srcs.isdisjoint(dsts)
                    and self.scratch_set.isdisjoint(srcs) and self.scratch_set.isdisjoint(dsts)
                    and not any(s < 0 and d < 0 for s, d, _ in moves)):
                return list(moves)
        pending: dict[int, tuple[int, int]] = {}
        for src, dst, cls in moves:
            if src in self.scratch_set or dst in self.scratch_set:
                raise ParallelMoveError(f"move {src} -> {dst} touches a scratch register")
            if src == dst:
                continue
            prev = pending.get(dst)
            if prev is not None:
                if prev != (src, cls):
                    raise ParallelMoveError(f"location {dst} is written twice by one "
                                            f"parallel move (from {prev[0]} and {src})")
                continue
            pending[dst] = (src, cls)
        out: list[Move] = []
        if len(pending) <= 1:
            for dst, (src, cls) in pending.items():
                self._emit(out, src, dst, cls)
            return out
        readers: dict[int, int] = {}
        for src, _ in pending.values():
            readers[src] = readers.get(src, 0) + 1
        ready = [d for d in pending if d not in readers]
        while True:
            while ready:
                dst = ready.pop()
                src, cls = pending.pop(dst)
                # Safe: nobody reads dst any more (readers[dst] is 0 or absent),
                # and src still holds its original value (it is written only
                # once its own readers, this move included, are done).
                self._emit(out, src, dst, cls)
                n = readers[src] - 1
                readers[src] = n
                if n == 0 and src in pending:
                    ready.append(src)
            if not pending:
                return out
            # Only cycles are left: every pending destination is read by exactly
            # one pending move (in-degree <= 1 everywhere, no ready node).
            self._break_cycle(pending, readers, ready, out)

    def _break_cycle(self, pending: dict[int, tuple[int, int]], readers: dict[int, int],
                     ready: list[int], out: list[Move]) -> None:
        start = next(iter(pending))
        cycle = [start]                     # cycle[i] <- cycle[i + 1] (mod n)
        loc = pending[start][0]
        while loc != start:
            cycle.append(loc)
            loc = pending[loc][0]
        n = len(cycle)
        # mem->mem moves per class, and which member to save.
        mm: dict[int, int] = {}
        for i in range(n):
            dst, src = cycle[i], cycle[(i + 1) % n]
            if dst < 0 and src < 0:
                c = pending[dst][1]
                mm[c] = mm.get(c, 0) + 1
        choice = -1
        for i in range(n):
            # Saving b = cycle[i + 1] retargets the move cycle[i] <- b to read t.
            dst, b = cycle[i], cycle[(i + 1) % n]
            c = pending[dst][1]
            own = 1 if (dst < 0 and b < 0) else 0
            if mm.get(c, 0) - own == 0:
                choice = i
                break
        if choice >= 0:
            dst, b = cycle[choice], cycle[(choice + 1) % n]
            cls = pending[dst][1]
            # t = scratch[cls]: no mem->mem move of class cls remains in this
            # cycle, so nothing else writes scratch[cls] while it holds b's value.
            t = self.scratch[cls]
            self.used_scratch.add(t)
        else:
            dst, b = cycle[0], cycle[1 % n]
            cls = pending[dst][1]
            # t = the reserved cycle slot: every later move goes through a scratch
            # register only within one split mem->mem move.
            t = self.cycle_loc
            self.used_cycle_loc = True
        self._emit(out, b, t, cls)
        pending[dst] = (t, cls)
        readers[t] = 1
        readers[b] -= 1          # b's only reader now reads t
        ready.append(b)

"""Liveness and live intervals, as numba kernels over flat arrays.

Imported lazily by ``alloc.allocate`` (it imports numba).  The arrays are
built in ``alloc.py``; the layout, with blocks and instructions numbered in
the allocation order:

* ``blk_first[b]`` .. ``blk_first[b+1]``: the instructions of block ``b``;
* ``op_start[k]`` .. ``op_start[k+1]``: the operands of instruction ``k``
  (``op_v`` vreg, ``op_kind`` 0 use / 1 def / 2 temp, ...), in the
  instruction's ``InstConstraints`` order;
* ``ex_start[k]`` .. ``ex_start[k+1]``: the block arguments a ``jump`` passes
  (``ex_v``), read at the jump;
* ``par_ptr[b]`` .. ``par_ptr[b+1]``: block ``b``'s parameters (``par_v``),
  defined on entry to ``b``;
* ``succ_ptr``/``succ``: successor blocks.

Positions: instruction ``k`` owns points ``4k`` (the gap where its "before"
moves run and the previous instruction's "after" moves), ``4k+1`` (early:
uses are read, early defs and temps written), ``4k+2`` (where clobbers
happen) and ``4k+3`` (late: defs written).  A block spans
``[4*first, 4*end)``.  An interval is one half-open range ``[lo, hi)`` per
vreg: the hull of every point where the vreg is live, so it covers holes, and
whole loops when the value is live around them (the liveness sets put it in
the header's live-in and the latch's live-out).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .constraints import FIXED, STACK_PARAM

BIG = 1 << 62


@njit(cache=True)
def liveness(n_vregs, blk_first, succ_ptr, succ, op_start, op_v, op_kind,
             ex_start, ex_v, par_ptr, par_v):
    """Live-in and live-out bitsets per block (``(blocks, words)`` uint64 arrays)."""
    nb = len(blk_first) - 1
    nw = (n_vregs + 63) >> 6
    gen = np.zeros((nb, nw), np.uint64)
    kill = np.zeros((nb, nw), np.uint64)
    one = np.uint64(1)
    for b in range(nb):
        for j in range(par_ptr[b], par_ptr[b + 1]):
            v = par_v[j]
            kill[b, v >> 6] |= one << np.uint64(v & 63)
        for k in range(blk_first[b], blk_first[b + 1]):
            for o in range(op_start[k], op_start[k + 1]):
                if op_kind[o] == 0:
                    v = op_v[o]
                    m = one << np.uint64(v & 63)
                    if kill[b, v >> 6] & m == 0:
                        gen[b, v >> 6] |= m
            for j in range(ex_start[k], ex_start[k + 1]):
                v = ex_v[j]
                m = one << np.uint64(v & 63)
                if kill[b, v >> 6] & m == 0:
                    gen[b, v >> 6] |= m
            for o in range(op_start[k], op_start[k + 1]):
                if op_kind[o] != 0:
                    v = op_v[o]
                    kill[b, v >> 6] |= one << np.uint64(v & 63)
    live_in = gen.copy()
    live_out = np.zeros((nb, nw), np.uint64)
    changed = True
    while changed:
        changed = False
        for b in range(nb - 1, -1, -1):
            for w in range(nw):
                acc = np.uint64(0)
                for e in range(succ_ptr[b], succ_ptr[b + 1]):
                    acc |= live_in[succ[e], w]
                live_out[b, w] = acc
                new = gen[b, w] | (acc & ~kill[b, w])
                if new != live_in[b, w]:
                    live_in[b, w] = new
                    changed = True
    return live_in, live_out


@njit(cache=True)
def _bit_index(m):
    # m is a power of two below 2**64: exact as a float64.
    return np.int64(np.round(np.log2(np.float64(m))))


@njit(cache=True)
def intervals(n_vregs, live_in, live_out, blk_first, blk_depth, par_ptr, par_v,
              op_start, op_v, op_kind, op_pol, op_early, op_reused, inst_has_reuse,
              ex_start, ex_v, use_count):
    """``lo``, ``hi`` (``hi < 0``: no interval) and spill cost per vreg.

    A use at ``k`` covers ``[4k, 4k+2)`` (the gap, where its reload or
    fixed-register move happens, and the early point); when the instruction
    has a reuse def, every use but the reused one is kept to ``4k+4`` so it
    conflicts with the def.  A def covers ``[4k+3, 4k+4)`` (``4k+1`` if early).
    Defs nobody reads with a FIXED or STACK_PARAM policy, FIXED temps and
    unused block parameters get no interval: their fixed register is
    reserved by a blocking range instead.
    """
    nb = len(blk_first) - 1
    lo = np.full(n_vregs, BIG, np.int64)
    hi = np.full(n_vregs, -1, np.int64)
    cost = np.zeros(n_vregs, np.float64)
    nw = live_in.shape[1]
    # From the liveness sets only the first and the last block where a vreg is
    # live matter: visit blocks forwards for lo and backwards for hi, and
    # each vreg's bit only the first time it shows up.
    seen = np.zeros(nw, np.uint64)
    for b in range(nb):
        bstart = 4 * blk_first[b]
        bend = 4 * blk_first[b + 1]
        for w in range(nw):
            li = live_in[b, w]
            new = (li | live_out[b, w]) & ~seen[w]
            if new == 0:
                continue
            seen[w] |= new
            while new != 0:
                m = new & (~new + np.uint64(1))
                new ^= m
                v = w * 64 + _bit_index(m)
                lo[v] = bstart if li & m else bend - 1
    seen[:] = 0
    for b in range(nb - 1, -1, -1):
        bstart = 4 * blk_first[b]
        bend = 4 * blk_first[b + 1]
        for w in range(nw):
            lout = live_out[b, w]
            new = (lout | live_in[b, w]) & ~seen[w]
            if new == 0:
                continue
            seen[w] |= new
            while new != 0:
                m = new & (~new + np.uint64(1))
                new ^= m
                v = w * 64 + _bit_index(m)
                hi[v] = bend if lout & m else bstart + 1
    for b in range(nb):
        bstart = 4 * blk_first[b]
        w8 = 10.0 ** min(blk_depth[b], 8)
        for j in range(par_ptr[b], par_ptr[b + 1]):
            v = par_v[j]
            if use_count[v] > 0:
                lo[v] = min(lo[v], bstart)
                hi[v] = max(hi[v], bstart + 1)
                cost[v] += w8
        for k in range(blk_first[b], blk_first[b + 1]):
            for o in range(op_start[k], op_start[k + 1]):
                v = op_v[o]
                kind = op_kind[o]
                pol = op_pol[o]
                if kind == 0:
                    lo[v] = min(lo[v], 4 * k)
                    end = 4 * k + 2
                    if inst_has_reuse[k] and not op_reused[o]:
                        end = 4 * k + 4
                    hi[v] = max(hi[v], end)
                    cost[v] += w8
                elif kind == 1:
                    if use_count[v] == 0 and (pol == FIXED or pol == STACK_PARAM):
                        continue
                    dp = 4 * k + 1 if op_early[o] else 4 * k + 3
                    lo[v] = min(lo[v], dp)
                    hi[v] = max(hi[v], 4 * k + 4)
                    cost[v] += w8
                else:
                    if pol == FIXED:
                        continue
                    lo[v] = min(lo[v], 4 * k + 1)
                    hi[v] = max(hi[v], 4 * k + 4)
            for j in range(ex_start[k], ex_start[k + 1]):
                v = ex_v[j]
                lo[v] = min(lo[v], 4 * k)
                hi[v] = max(hi[v], 4 * k + 2)
                cost[v] += w8
    return lo, hi, cost


@njit(cache=True)
def cfg_layout(n_blocks, succ_ptr, succ):
    """Reverse postorder and loop depth of a CFG given as successor CSR (block 0 = entry).

    Returns ``(rpo, depth)``: ``rpo`` lists the reachable blocks; ``depth[b]``
    is the number of natural loops containing ``b`` (back edges to one header
    form one loop).  Dominators by Cooper, Harvey and Kennedy's iteration
    over reverse postorder; natural loops by walking predecessors back from
    each back edge's tail to its header.
    """
    depth = np.zeros(n_blocks, np.int64)
    if n_blocks == 0:
        return np.zeros(0, np.int64), depth
    # Iterative DFS for the postorder.
    post = np.empty(n_blocks, np.int64)
    n_post = 0
    seen = np.zeros(n_blocks, np.bool_)
    stack = np.empty(n_blocks, np.int64)
    next_edge = np.empty(n_blocks, np.int64)
    sp = 0
    stack[0] = 0
    next_edge[0] = succ_ptr[0]
    seen[0] = True
    sp = 1
    while sp > 0:
        b = stack[sp - 1]
        e = next_edge[sp - 1]
        if e < succ_ptr[b + 1]:
            next_edge[sp - 1] = e + 1
            s = succ[e]
            if not seen[s]:
                seen[s] = True
                stack[sp] = s
                next_edge[sp] = succ_ptr[s]
                sp += 1
        else:
            post[n_post] = b
            n_post += 1
            sp -= 1
    rpo = post[:n_post][::-1].copy()
    num = np.full(n_blocks, -1, np.int64)        # reverse-postorder number
    for i in range(n_post):
        num[rpo[i]] = i
    # Predecessors (reachable ones only).
    pcount = np.zeros(n_blocks + 1, np.int64)
    for b in range(n_blocks):
        if num[b] >= 0:
            for e in range(succ_ptr[b], succ_ptr[b + 1]):
                pcount[succ[e] + 1] += 1
    for b in range(n_blocks):
        pcount[b + 1] += pcount[b]
    preds = np.empty(pcount[n_blocks], np.int64)
    fill = pcount[:-1].copy()
    for b in range(n_blocks):
        if num[b] >= 0:
            for e in range(succ_ptr[b], succ_ptr[b + 1]):
                s = succ[e]
                preds[fill[s]] = b
                fill[s] += 1
    idom = np.full(n_blocks, -1, np.int64)
    idom[0] = 0
    changed = True
    while changed:
        changed = False
        for i in range(1, n_post):
            b = rpo[i]
            new = -1
            for e in range(pcount[b], pcount[b + 1]):
                p = preds[e]
                if idom[p] < 0:
                    continue
                if new < 0:
                    new = p
                    continue
                x = p
                y = new
                while x != y:
                    while num[x] > num[y]:
                        x = idom[x]
                    while num[y] > num[x]:
                        y = idom[y]
                new = x
            if new != idom[b]:
                idom[b] = new
                changed = True
    # Dominator tree preorder intervals: a dominates b iff pre[a] <= pre[b] < end[a].
    ccount = np.zeros(n_blocks + 1, np.int64)
    for b in range(n_blocks):
        if num[b] > 0:
            ccount[idom[b] + 1] += 1
    for b in range(n_blocks):
        ccount[b + 1] += ccount[b]
    kids = np.empty(ccount[n_blocks], np.int64)
    fill = ccount[:-1].copy()
    for b in range(n_blocks):
        if num[b] > 0:
            kids[fill[idom[b]]] = b
            fill[idom[b]] += 1
    pre = np.full(n_blocks, -1, np.int64)
    end = np.full(n_blocks, -1, np.int64)
    counter = 0
    sp = 1
    stack[0] = 0
    next_edge[0] = ccount[0]
    pre[0] = 0
    counter = 1
    while sp > 0:
        b = stack[sp - 1]
        e = next_edge[sp - 1]
        if e < ccount[b + 1]:
            next_edge[sp - 1] = e + 1
            k = kids[e]
            pre[k] = counter
            counter += 1
            stack[sp] = k
            next_edge[sp] = ccount[k]
            sp += 1
        else:
            end[b] = counter
            sp -= 1
    # Natural loops: one per header, the union over its back edges.
    mark = np.full(n_blocks, -1, np.int64)
    work = np.empty(n_blocks, np.int64)
    for h in range(n_blocks):
        if num[h] < 0:
            continue
        found = False
        for e in range(pcount[h], pcount[h + 1]):
            t = preds[e]
            if pre[h] <= pre[t] and pre[t] < end[h]:         # h dominates t: back edge
                if not found:
                    found = True
                    mark[h] = h
                    depth[h] += 1
                wn = 0
                if mark[t] != h:
                    mark[t] = h
                    depth[t] += 1
                    work[0] = t
                    wn = 1
                while wn > 0:
                    wn -= 1
                    n = work[wn]
                    for e2 in range(pcount[n], pcount[n + 1]):
                        p = preds[e2]
                        if mark[p] != h:
                            mark[p] = h
                            depth[p] += 1
                            work[wn] = p
                            wn += 1
    return rpo, depth

"""Linear scan over live intervals, as numba kernels (imported lazily; imports numba).

Every vreg gets one *home* for its whole interval: a register, or a spill
slot.  Nothing is split, so a value sits in the same place in every block
and only block parameters need moves at edges.

The scan visits intervals by start.  A register ``r`` is free for ``[s, e)``
when no active interval holds it and no *blocking range* of ``r`` overlaps
(see ``_blocked``).  Blocking ranges come from FIXED operands (owned by their
vreg, which may itself live in ``r``) and from clobbers.  A clobber of ``r``
at instruction ``k`` is stored as the inverted range ``[4k+2, 4k+1)``: the
overlap test ``s < 4k+1 and 4k+2 < e`` then holds exactly for intervals that
start before the instruction's early point and end after its clobber point,
i.e. values live across the instruction.  Its uses that die there, its
temps and early defs (which start at ``4k+1``) and its defs (``4k+3``) may
use clobbered registers.

When no register is free, the lowest-weight interval among the current one
and the active holders of registers it could use is spilled (weight = spill
cost, uses weighted by ``10**loop_depth``, divided by the length).  A spilled
vreg lives in a slot; each of its REG operands gets a *tiny interval* for
the register its reload or store goes through: ``[4k, 4k+2)`` for a use
(``[4k, 4k+4)`` next to a reuse def), ``[def point, 4k+4)`` for a def.
Tiny intervals are never spilled.  Spilling an active interval at position
``p`` hands its register to its tiny intervals that lie before ``p`` (they
are inside the interval, so the register was legally its) and queues the
rest; an interval with a tiny interval covering ``p`` cannot be spilled at
``p``.  Temps are never spilled (a register is all they are).  Each vreg
is spilled at most once and tiny intervals never, so the scan ends; it fails
only when the tiny intervals, temps and fixed registers of one instruction
need more registers than the class has.

FIXED uses, FIXED defs and the reused use of a REUSE def get no tiny
interval: the value is moved straight between its home and the fixed
register, or the def's register.

Why the moves ``locate`` places are safe (positions as in ``liveness.py``;
at a gap, the previous instruction's "after" moves run before the next
one's "before" moves, each group as one parallel move):

* before instruction ``k`` (gap ``4k``) moves read homes of its uses, whose
  intervals reach back to ``4k``, and write registers nothing else holds
  there: a tiny interval's register (its range starts at ``4k``), a FIXED
  use's register (its blocking range starts at ``4k``), or a REUSE def's
  register ``R``.  ``R`` is free at ``4k`` because every other value live
  at ``4k`` or ``4k+1`` overlaps the def: the instruction's other uses are
  kept to ``4k+4``, values live through overlap ``4k+3``, and temps and
  early defs run to ``4k+4``; only the reused value may be in ``R``;
* after instruction ``k`` (gap ``4k+4``) moves read a FIXED def's register or
  a def's tiny register, held to ``4k+4``, and write the def's home, whose
  interval reaches its next use.  Dead defs get no move;
* edge moves write each parameter's home at the jump, outside the
  parameter's interval.  That is safe: any value still needed after the
  jump is live into the target, so its interval overlaps the parameter's at
  the target's start and it lives elsewhere; the jump's arguments are read
  by the same parallel move.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .constraints import ANY, FIXED, IN_PARAM_BASE, REG, REUSE, STACK_ARG, STACK_PARAM, STACK_RANGE

# Error codes (see alloc._ERRORS for the messages).
E_OK = 0
E_KIND = 1
E_POLICY = 2
E_CLASS = 3
E_FIXED_RANGE = 4
E_FIXED_SCRATCH = 5
E_REUSE = 6
E_REUSE_TWICE = 7
E_SLOT = 8
E_CLASS_MISMATCH = 9
E_FIXED_CONFLICT = 10
E_NO_REGISTER = 11
E_NO_REGS_IN_CLASS = 12

INF = np.inf


@njit(cache=True)
def validate(n_vregs, n_cls, n_pregs, is_scratch, cls_count, op_start, op_v, op_pol, op_kind,
             op_early, op_cls, op_aux, vcls):
    """Check every operand; set ``vcls`` (-1: not yet known) from the operands.

    Returns ``(err, operand)``: ``E_OK`` or the first problem found.
    """
    n_inst = len(op_start) - 1
    reused = np.zeros(len(op_v), np.bool_)
    for k in range(n_inst):
        a = op_start[k]
        b = op_start[k + 1]
        for o in range(a, b):
            kind = op_kind[o]
            pol = op_pol[o]
            c = op_cls[o]
            v = op_v[o]
            aux = op_aux[o]
            if kind > 2:
                return E_KIND, o
            if pol < 0 or pol > 5:
                return E_POLICY, o
            if kind == 0:
                bad = pol == REUSE or pol == STACK_PARAM
            elif kind == 1:
                bad = pol == STACK_ARG
            else:
                bad = pol != REG and pol != FIXED and pol != ANY
            if bad:
                return E_POLICY, o
            if c < 0 or c >= n_cls:
                return E_CLASS, o
            if cls_count[c] == 0 and pol != FIXED and pol != STACK_ARG and pol != STACK_PARAM:
                return E_NO_REGS_IN_CLASS, o
            if vcls[v] >= 0 and vcls[v] != c:
                return E_CLASS_MISMATCH, o
            vcls[v] = c
            if pol == FIXED:
                if aux < 0 or aux >= n_pregs:
                    return E_FIXED_RANGE, o
                if is_scratch[aux]:
                    return E_FIXED_SCRATCH, o
            elif pol == STACK_ARG or pol == STACK_PARAM:
                if aux < 0 or aux >= STACK_RANGE:
                    return E_SLOT, o
            elif pol == REUSE:
                u = a + aux
                if aux < 0 or u >= b or op_kind[u] != 0 or op_early[o]:
                    return E_REUSE, o
                if op_pol[u] == STACK_ARG or op_cls[u] != c:
                    return E_REUSE, o
                if reused[u]:
                    return E_REUSE_TWICE, o
                reused[u] = True
    return E_OK, -1


@njit(cache=True)
def analyze(n_vregs, n_pregs, op_start, op_v, op_pol, op_kind, op_early, op_aux,
            ex_v, ep_arg, ep_par, clob_r, clob_k):
    """Derive per-operand and per-vreg facts from validated operands.

    Returns ``(conflict_op, eff_pol, eff_preg, reuse_of, reuser, has_reuse,
    use_count, hint, partner, param_slot, fb_ptr, fb_s, fb_e, fb_own)``.  A
    REUSE def whose use is FIXED becomes FIXED too (``eff_pol``/``eff_preg``).
    ``fb_*`` are the blocking ranges per preg, sorted by start.
    ``conflict_op >= 0`` names an operand whose FIXED register another vreg
    needs at the same time.
    """
    n_ops = len(op_v)
    n_inst = len(op_start) - 1
    eff_pol = op_pol.copy()
    eff_preg = np.full(n_ops, -1, np.int64)
    reuse_of = np.full(n_ops, -1, np.int64)
    reuser = np.full(n_ops, -1, np.int64)
    has_reuse = np.zeros(n_inst, np.bool_)
    use_count = np.zeros(n_vregs, np.int64)
    hint = np.full(n_vregs, -1, np.int64)
    partner = np.full(n_vregs, -1, np.int64)
    param_slot = np.full(n_vregs, -1, np.int64)
    for k in range(n_inst):
        a = op_start[k]
        b = op_start[k + 1]
        for o in range(a, b):
            v = op_v[o]
            pol = op_pol[o]
            if op_kind[o] == 0:
                use_count[v] += 1
            if pol == FIXED:
                eff_preg[o] = op_aux[o]
                if hint[v] < 0:
                    hint[v] = op_aux[o]
            elif pol == STACK_PARAM:
                param_slot[v] = op_aux[o]
            elif pol == REUSE:
                u = a + op_aux[o]
                reuse_of[o] = u
                reuser[u] = o
                has_reuse[k] = True
                if op_pol[u] == FIXED:
                    eff_pol[o] = FIXED
                    eff_preg[o] = op_aux[u]
                    if hint[v] < 0:
                        hint[v] = op_aux[u]
                elif partner[v] < 0:
                    partner[v] = op_v[u]
    for j in range(len(ex_v)):
        use_count[ex_v[j]] += 1
    for j in range(len(ep_arg)):
        a_ = ep_arg[j]
        p_ = ep_par[j]
        if partner[p_] < 0:
            partner[p_] = a_
        if partner[a_] < 0:
            partner[a_] = p_
    # Blocking ranges: FIXED operands and clobbers, bucketed by preg.  Visiting
    # instructions in order, and each one's ranges by start offset (0 uses,
    # 1 early defs and temps, 2 clobbers, 3 defs), leaves each bucket sorted.
    fb_ptr = np.zeros(n_pregs + 1, np.int64)
    for o in range(n_ops):
        if eff_pol[o] == FIXED:
            fb_ptr[eff_preg[o] + 1] += 1
    for i in range(len(clob_r)):
        fb_ptr[clob_r[i] + 1] += 1
    for r in range(n_pregs):
        fb_ptr[r + 1] += fb_ptr[r]
    n_fb = fb_ptr[n_pregs]
    fb_s = np.empty(n_fb, np.int64)
    fb_e = np.empty(n_fb, np.int64)
    fb_own = np.empty(n_fb, np.int64)
    fill = fb_ptr[:-1].copy()
    ci = 0
    n_clob = len(clob_r)
    for k in range(n_inst):
        for phase in range(4):
            if phase == 2:
                while ci < n_clob and clob_k[ci] == k:
                    r = clob_r[ci]
                    fb_s[fill[r]] = 4 * k + 2      # inverted: see the module docstring
                    fb_e[fill[r]] = 4 * k + 1
                    fb_own[fill[r]] = -1
                    fill[r] += 1
                    ci += 1
                continue
            for o in range(op_start[k], op_start[k + 1]):
                if eff_pol[o] != FIXED:
                    continue
                kind = op_kind[o]
                if kind == 0:
                    start = 0
                    end = 4 if has_reuse[k] and reuser[o] < 0 else 2
                elif kind == 1:
                    start = 1 if op_early[o] else 3
                    end = 4
                else:
                    start = 1
                    end = 4
                if start != phase:
                    continue
                r = eff_preg[o]
                fb_s[fill[r]] = 4 * k + start
                fb_e[fill[r]] = 4 * k + end
                fb_own[fill[r]] = op_v[o]
                fill[r] += 1
    # Two FIXED operands of different vregs that need one register at once.
    conflict = -1
    for r in range(n_pregs):
        end = -1
        own = -1
        for i in range(fb_ptr[r], fb_ptr[r + 1]):
            if fb_own[i] < 0:
                continue
            if fb_s[i] < end and fb_own[i] != own and conflict < 0:
                k = fb_s[i] >> 2
                for o in range(op_start[k], op_start[k + 1]):
                    if eff_pol[o] == FIXED and eff_preg[o] == r and op_v[o] == fb_own[i]:
                        conflict = o
            if fb_e[i] > end:
                end = fb_e[i]
                own = fb_own[i]
    return (conflict, eff_pol, eff_preg, reuse_of, reuser, has_reuse, use_count, hint, partner,
            param_slot, fb_ptr, fb_s, fb_e, fb_own)


@njit(cache=True)
def tiny_ranges(op_start, op_v, op_kind, op_early, eff_pol, reuse_of, reuser, has_reuse,
                n_vregs):
    """Per operand, the tiny interval ``[ts, te)`` it needs if its vreg is spilled.

    ``te = -1`` for operands that need none.  ``thint`` names the vreg whose
    register is a good choice (a reuse def's tiny interval: the reused value).
    Also returns the per-vreg CSR (``vt_ptr``, ``vt_ops``) of these operands,
    sorted by ``ts``.
    """
    n_ops = len(op_v)
    n_inst = len(op_start) - 1
    ts = np.full(n_ops, -1, np.int64)
    te = np.full(n_ops, -1, np.int64)
    thint = np.full(n_ops, -1, np.int64)
    cnt = np.zeros(n_vregs + 1, np.int64)
    for k in range(n_inst):
        for o in range(op_start[k], op_start[k + 1]):
            kind = op_kind[o]
            pol = eff_pol[o]
            if kind == 0 and pol == REG and reuser[o] < 0:
                ts[o] = 4 * k
                te[o] = 4 * k + (4 if has_reuse[k] else 2)
            elif kind == 1 and (pol == REG or pol == REUSE):
                ts[o] = 4 * k + (1 if op_early[o] and pol == REG else 3)
                te[o] = 4 * k + 4
                if pol == REUSE:
                    thint[o] = op_v[reuse_of[o]]
            else:
                continue
            cnt[op_v[o] + 1] += 1
    for v in range(n_vregs):
        cnt[v + 1] += cnt[v]
    fill = cnt[:-1].copy()
    vt_ops = np.empty(cnt[n_vregs], np.int64)
    # Operands are visited in instruction order, so each vreg's list is sorted by ts.
    for o in range(n_ops):
        if te[o] >= 0:
            v = op_v[o]
            vt_ops[fill[v]] = o
            fill[v] += 1
    return ts, te, thint, cnt, vt_ops


@njit(cache=True)
def _blocked(r, s, e, owner, fb_ptr, fb_s, fb_e, fb_own):
    """Does a blocking range of ``r`` not owned by ``owner`` overlap ``[s, e)``?"""
    a = fb_ptr[r]
    end = fb_ptr[r + 1]
    b = end
    # Blocking ranges are at most 4 long: one starting at or before s - 5
    # ends before s.  Binary search for the first that may overlap.
    lim = s - 5
    while a < b:
        m = (a + b) >> 1
        if fb_s[m] <= lim:
            a = m + 1
        else:
            b = m
    while a < end and fb_s[a] < e:
        if fb_e[a] > s and fb_own[a] != owner:
            return True
        a += 1
    return False


@njit(cache=True)
def _covering(v, p, vt_ptr, vt_ops, ts, te):
    """Has vreg ``v`` a tiny-interval operand whose range contains ``p``?"""
    a = vt_ptr[v]
    end = vt_ptr[v + 1]
    b = end
    lim = p - 5
    while a < b:
        m = (a + b) >> 1
        if ts[vt_ops[m]] <= lim:
            a = m + 1
        else:
            b = m
    while a < end and ts[vt_ops[a]] <= p:
        if te[vt_ops[a]] > p:
            return True
        a += 1
    return False


@njit(cache=True)
def _heap_push(heap, n, key):
    i = n
    heap[i] = key
    while i > 0:
        parent = (i - 1) >> 1
        if heap[parent] <= heap[i]:
            break
        heap[parent], heap[i] = heap[i], heap[parent]
        i = parent
    return n + 1


@njit(cache=True)
def _heap_pop(heap, n):
    top = heap[0]
    n -= 1
    heap[0] = heap[n]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= n:
            break
        c = left
        if left + 1 < n and heap[left + 1] < heap[left]:
            c = left + 1
        if heap[i] <= heap[c]:
            break
        heap[i], heap[c] = heap[c], heap[i]
        i = c
    return top, n


@njit(cache=True)
def scan(n_vregs, order, lo, hi, vcls, weight, hint, partner, op_v, ts, te, thint,
         vt_ptr, vt_ops, fb_ptr, fb_s, fb_e, fb_own, cls_ptr, cls_regs, allowed):
    """Assign homes.  Returns ``(err, err_interval, err_pos, home, tiny, n_spilled)``.

    ``order``: the vregs with an interval, sorted by ``lo``.  ``home[v]`` is a
    preg, -1 (spilled) or -2 (no interval); ``tiny[o]`` the register of
    operand ``o``'s tiny interval (-1: none).  Interval ids: ``v`` for vreg
    ``v``, ``n_vregs + o`` for operand ``o``'s tiny interval.
    """
    n_ops = len(op_v)
    n_pregs = len(fb_ptr) - 1
    home = np.full(n_vregs, -2, np.int64)
    tiny = np.full(n_ops, -1, np.int64)
    holder = np.full(n_pregs, -1, np.int64)
    hend = np.zeros(n_pregs, np.int64)
    # Queued tiny intervals: a binary min-heap of keys start * keym + operand
    # (mixed radix: operand < keym), so they pop by start, then operand.
    heap = np.empty(n_ops + 1, np.int64)
    hn = 0
    keym = np.int64(n_ops + 1)
    ri = 0
    n_order = len(order)
    n_spilled = 0
    while True:
        # Next interval: the queued tiny intervals first on equal starts.
        if hn > 0 and (ri >= n_order or heap[0] // keym <= lo[order[ri]]):
            key, hn = _heap_pop(heap, hn)
            o = key % keym
            iid = n_vregs + o
            v = op_v[o]
            s = ts[o]
            e = te[o]
            spillable = False
            h1 = -1
            h2 = home[thint[o]] if thint[o] >= 0 else -1
        elif ri < n_order:
            v = order[ri]
            ri += 1
            iid = v
            s = lo[v]
            e = hi[v]
            spillable = weight[v] < INF
            h1 = hint[v]
            h2 = home[partner[v]] if partner[v] >= 0 else -1
        else:
            break
        c = vcls[v]
        c0 = cls_ptr[c]
        c1 = cls_ptr[c + 1]
        for j in range(c0, c1):
            r = cls_regs[j]
            if holder[r] >= 0 and hend[r] <= s:
                holder[r] = -1
        pick = -1
        if h1 >= 0 and allowed[c, h1] and holder[h1] < 0 and not _blocked(
                h1, s, e, v, fb_ptr, fb_s, fb_e, fb_own):
            pick = h1
        elif h2 >= 0 and allowed[c, h2] and holder[h2] < 0 and not _blocked(
                h2, s, e, v, fb_ptr, fb_s, fb_e, fb_own):
            pick = h2
        else:
            for j in range(c0, c1):
                r = cls_regs[j]
                if holder[r] < 0 and not _blocked(r, s, e, v, fb_ptr, fb_s, fb_e, fb_own):
                    pick = r
                    break
        if pick < 0:
            # Spill candidates: active regular intervals, not in use at s,
            # holding a register that is otherwise usable for [s, e).
            best_w = INF
            for j in range(c0, c1):
                r = cls_regs[j]
                h = holder[r]
                if h < 0 or h >= n_vregs or weight[h] >= best_w:
                    continue
                if _covering(h, s, vt_ptr, vt_ops, ts, te):
                    continue
                if _blocked(r, s, e, v, fb_ptr, fb_s, fb_e, fb_own):
                    continue
                best_w = weight[h]
                pick = r
            if spillable and (pick < 0 or weight[v] <= best_w):
                # Spill the current interval: every tiny interval starts at or after s.
                home[v] = -1
                n_spilled += 1
                for j in range(vt_ptr[v], vt_ptr[v + 1]):
                    o2 = vt_ops[j]
                    hn = _heap_push(heap, hn, ts[o2] * keym + o2)
                continue
            if pick < 0:
                return E_NO_REGISTER, iid, s, home, tiny, n_spilled
            h = holder[pick]
            home[h] = -1
            n_spilled += 1
            for j in range(vt_ptr[h], vt_ptr[h + 1]):
                o2 = vt_ops[j]
                if ts[o2] < s:
                    # Inside h's interval and over before s (h is not in use
                    # at s), where h held `pick` with no foreign blocking range.
                    tiny[o2] = pick
                else:
                    hn = _heap_push(heap, hn, ts[o2] * keym + o2)
        holder[pick] = iid
        hend[pick] = e
        if iid < n_vregs:
            home[iid] = pick
        else:
            tiny[iid - n_vregs] = pick
    return E_OK, -1, -1, home, tiny, n_spilled


@njit(cache=True)
def assign_slots(order, home, lo, hi, param_slot):
    """Spill slots for spilled vregs (first fit; slots reused by disjoint intervals)."""
    n = len(home)
    slot = np.full(n, -1, np.int64)
    slot_end = np.empty(len(order) + 1, np.int64)
    ns = 0
    for i in range(len(order)):
        v = order[i]
        if home[v] != -1 or param_slot[v] >= 0:
            continue
        j = 0
        while j < ns and slot_end[j] > lo[v]:
            j += 1
        if j == ns:
            ns += 1
        slot_end[j] = hi[v]
        slot[v] = j
    return slot, ns


@njit(cache=True)
def _home_loc(v, home, slot, param_slot):
    h = home[v]
    if h >= 0:
        return h
    if param_slot[v] >= 0:
        return IN_PARAM_BASE - param_slot[v]
    return -1 - slot[v]


@njit(cache=True)
def locate(op_start, op_v, op_kind, op_cls, op_aux, eff_pol, eff_preg, reuser, home, tiny,
           slot, param_slot, use_count, vcls, jump_k, jump_ptr, ep_arg, ep_par):
    """Operand locations and the moves around instructions.

    Returns ``(loc, mv_k, mv_after, mv_src, mv_dst, mv_cls, n_moves)``: per
    operand its location; per move its instruction, 0 before / 1 after, and
    the move.  Moves of one instruction and side form one parallel move.  A
    ``jump``'s "before" moves are its edge moves: jump ``j`` (instruction
    ``jump_k[j]``) passes ``ep_arg[jump_ptr[j]:jump_ptr[j+1]]`` to ``ep_par``.
    """
    n_ops = len(op_v)
    n_inst = len(op_start) - 1
    loc = np.empty(n_ops, np.int64)
    cap = n_ops + len(ep_arg)
    mv_k = np.empty(cap, np.int64)
    mv_after = np.empty(cap, np.int64)
    mv_src = np.empty(cap, np.int64)
    mv_dst = np.empty(cap, np.int64)
    mv_cls = np.empty(cap, np.int64)
    n = 0
    for k in range(n_inst):
        for o in range(op_start[k], op_start[k + 1]):
            v = op_v[o]
            kind = op_kind[o]
            pol = eff_pol[o]
            src = -1
            dst = -1
            after = 0
            move = False
            if kind == 0:
                hl = _home_loc(v, home, slot, param_slot)
                d = reuser[o]
                if d >= 0:
                    # The reused use is read from the def's register.
                    if eff_pol[d] == FIXED:
                        r = eff_preg[d]
                    elif home[op_v[d]] >= 0:
                        r = home[op_v[d]]
                    else:
                        r = tiny[d]
                    loc[o] = r
                    src, dst, move = hl, r, hl != r
                elif pol == FIXED:
                    r = eff_preg[o]
                    loc[o] = r
                    src, dst, move = hl, r, hl != r
                elif pol == REG:
                    if home[v] >= 0:
                        loc[o] = home[v]
                    else:
                        loc[o] = tiny[o]
                        src, dst, move = hl, tiny[o], True
                elif pol == ANY:
                    loc[o] = hl
                else:                                   # STACK_ARG
                    r = -STACK_RANGE - op_aux[o]
                    loc[o] = r
                    src, dst, move = hl, r, True
            elif kind == 1:
                live = use_count[v] > 0
                if pol == FIXED:
                    r = eff_preg[o]
                    loc[o] = r
                    if live:
                        hl = _home_loc(v, home, slot, param_slot)
                        src, dst, move, after = r, hl, hl != r, 1
                elif pol == REG or pol == REUSE:
                    if home[v] >= 0:
                        loc[o] = home[v]
                    else:
                        loc[o] = tiny[o]
                        if live:
                            hl = _home_loc(v, home, slot, param_slot)
                            src, dst, move, after = tiny[o], hl, True, 1
                elif pol == ANY:
                    loc[o] = _home_loc(v, home, slot, param_slot)
                else:                                   # STACK_PARAM
                    r = IN_PARAM_BASE - op_aux[o]
                    loc[o] = r
                    if live and home[v] >= 0:
                        src, dst, move, after = r, home[v], True, 1
            else:
                if pol == FIXED:
                    loc[o] = eff_preg[o]
                else:
                    loc[o] = home[v]
            if move:
                mv_k[n] = k
                mv_after[n] = after
                mv_src[n] = src
                mv_dst[n] = dst
                mv_cls[n] = op_cls[o]
                n += 1
    for j in range(len(jump_k)):
        for e in range(jump_ptr[j], jump_ptr[j + 1]):
            p = ep_par[e]
            if use_count[p] == 0:
                continue                        # unused parameter: no home
            src = _home_loc(ep_arg[e], home, slot, param_slot)
            dst = _home_loc(p, home, slot, param_slot)
            if src != dst:
                mv_k[n] = jump_k[j]
                mv_after[n] = 0
                mv_src[n] = src
                mv_dst[n] = dst
                mv_cls[n] = vcls[p]
                n += 1
    return loc, mv_k, mv_after, mv_src, mv_dst, mv_cls, n

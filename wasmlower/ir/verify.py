"""The IR verifier: structure, types and SSA dominance.

Run after every pass in tests; its errors name the function, the block and
the instruction.
"""

from __future__ import annotations

from ..errors import CodegenError
from .cfg import CFG
from .function import Block, Function, Inst, Value
from .ops import OPS


class VerifierError(CodegenError):
    pass


def _check_arg_types(f: Function, b: Block, inst: Inst, fail) -> None:
    info = inst.info
    codes = list(info.args)
    if info.variadic:
        fixed = codes[:-2]
        rep = codes[-2]
        if len(inst.args) < len(fixed):
            fail(inst, f"expects at least {len(fixed)} argument(s), got {len(inst.args)}")
        codes = fixed + [rep] * (len(inst.args) - len(fixed))
    elif len(codes) != len(inst.args):
        fail(inst, f"expects {len(codes)} argument(s), got {len(inst.args)}")
    if info.result in ("same", "ctrl") and inst.results:
        ctrl = inst.results[0].type
    else:
        ctrl = inst.args[0].type if inst.args else None
    for code, a in zip(codes, inst.args):
        t = a.type
        ok = (code == "any" or (code == "T" and t == ctrl) or (code == "int" and t.is_int)
              or (code == "float" and t.is_float) or code == t.value)
        if not ok:
            fail(inst, f"argument v{a.id} has type {t}, expected {code}")
    if info.result == "same" and inst.results and inst.results[0].type != inst.args[0].type:
        fail(inst, "result type differs from the first argument's")


def verify(f: Function, where: str = "") -> None:
    """Raise ``VerifierError`` if ``f`` breaks an IR invariant."""
    prefix = f"{where}: " if where else ""

    def fail(inst: Inst | None, msg: str, block: Block | None = None) -> None:
        at = f" in {block}" if block else ""
        text = f"{prefix}function @{f.name}{at}: {msg}"
        if inst is not None:
            text += f"\n  {inst!r}"
        raise VerifierError(text)

    if not f.blocks:
        fail(None, "has no blocks")
    if [p.type for p in f.entry.params] != list(f.params) and not f.meta.get("lowered"):
        fail(None, "entry block parameters do not match the signature", f.entry)
    defined: dict[Value, tuple[Block, int]] = {}
    blocks = set(f.blocks)
    for b in f.blocks:
        for p in b.params:
            if p in defined:
                fail(None, f"v{p.id} defined twice", b)
            defined[p] = (b, -1)
        if not b.insts or not b.insts[-1].is_terminator:
            fail(None, "does not end with a terminator", b)
        for i, inst in enumerate(b.insts):
            if inst.op not in OPS:
                fail(inst, f"unknown op {inst.op}", b)
            if inst.is_terminator and i != len(b.insts) - 1:
                fail(inst, "terminator in the middle of a block", b)
            for r in inst.results:
                if r in defined:
                    fail(inst, f"v{r.id} defined twice", b)
                defined[r] = (b, i)
            if not inst.info.dialect:
                _check_arg_types(f, b, inst, lambda ins, m, b=b: fail(ins, m, b))
            for t in inst.targets:
                if t.block not in blocks:
                    fail(inst, f"branches to {t.block}, not in the function", b)
                if len(t.args) != len(t.block.params):
                    fail(inst, f"passes {len(t.args)} argument(s) to {t.block}, "
                               f"which takes {len(t.block.params)}", b)
                for a, p in zip(t.args, t.block.params):
                    if a.type != p.type:
                        fail(inst, f"passes v{a.id}: {a.type} to v{p.id}: {p.type}", b)
            op = inst.op
            if op == "jump" and len(inst.targets) != 1 or op == "brif" and len(inst.targets) != 2:
                fail(inst, "wrong number of targets", b)
            if (op == "return" and not f.meta.get("lowered")
                    and [a.type for a in inst.args] != list(f.results)):
                fail(inst, "return values do not match the signature", b)
    cfg = CFG(f)
    for b in f.blocks:
        for i, inst in enumerate(b.insts):
            uses = list(inst.args) + [a for t in inst.targets for a in t.args]
            for a in uses:
                if a not in defined:
                    fail(inst, f"uses v{a.id}, which is never defined", b)
                db, di = defined[a]
                if db is b:
                    if di >= i:
                        fail(inst, f"uses v{a.id} before its definition", b)
                elif not cfg.dominates(db, b):
                    fail(inst, f"uses v{a.id}, whose definition in {db} does not dominate it", b)



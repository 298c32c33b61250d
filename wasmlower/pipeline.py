"""The compilation pipeline, stage by stage, with per-stage timing.

    decode -> validate -> translate -> optimize -> lower -> regalloc -> encode -> object

Each stage is a plain function a library user can call alone; ``compile_module``
runs them in order and returns a ``CompiledModule`` (emit/compiled.py).
"""

from __future__ import annotations

import functools
import gc
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

from .emit.compiled import CompiledFunction, CompiledModule
from .emit.relocs import call_reloc, padding, resolve
from .errors import ArtifactError, CodegenError
from .ir.function import Function, Inst

STAGES = ("decode", "translate", "optimize", "lower", "regalloc", "encode", "object")


@dataclass
class Options:
    target: str = "x86_64"
    opt_level: int = 1
    stress: bool = False            # allocate with 3 registers per class (tests)
    check: bool = False             # verify the IR after each stage; check the allocation
    trace: list | None = None       # lowering trace records, for explain / rule counts
    isa_off: frozenset[str] = frozenset()   # ISA flags set false (ir.legalize.legalize_isa)
    on_function: Callable[[str, Function], None] | None = None   # stage hook (explain)


@dataclass
class Timer:
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    @contextmanager
    def stage(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - t0


def decode(wasm: bytes):
    """Decode and validate a binary module."""
    from .wasm import decode_module, validate
    module = decode_module(wasm)
    validate(module)
    return module


def translate(module, index: int) -> Function:
    from .wasm.translate import translate_function
    return translate_function(module, index)


def optimize(func: Function, module, opt_level: int = 1) -> Function:
    """Module-level legalization, then the mid-end passes for ``opt_level``."""
    from .ir.legalize import legalize_module_refs
    from .regalloc.prepare import isolate_edge_args
    legalize_module_refs(func, module.num_imported_globals, module.num_imported_funcs)
    if opt_level >= 1:
        from .lower.driver import rewrite_function
        rewrite_function(func, midend_rules())
    isolate_edge_args(func)
    return func


@functools.cache
def midend_rules():
    """The mid-end rewrite rules (ir/rules/opt.rules), loaded once."""
    from pathlib import Path

    from .lower.isa import load_rules
    here = Path(__file__).parent / "ir" / "rules"
    return load_rules([here / "opt.rules"], here / "preds.py", name="opt")


def lower(func: Function, target: str = "x86_64", trace: list | None = None,
          isa_off: frozenset[str] = frozenset()) -> Function:
    """Lower generic ops to the target's machine ops with its rules (after expanding
    the ops whose instructions the ISA flags in ``isa_off`` turn off)."""
    from .ir.legalize import legalize_isa
    from .lower.driver import lower_function
    from .lower.isa import load_isa
    legalize_isa(func, isa_off)
    isa = load_isa(_isa_name(target))
    lower_function(func, isa, trace=trace)
    _define_params(func, isa.name)
    return func


def _isa_name(target: str) -> str:
    return {"x86_64": "x64", "x64": "x64", "arm64": "aarch64"}.get(target, target)


# --- target dispatch (the AArch64 back end mirrors the x64 one module by module) ---
_ARCH = {"x64": "x86_64", "aarch64": "aarch64"}


def _backend(target: str, module: str):
    """``wasmlower.isa.<isa>.<module>`` for ``target`` (abi, regs, emit, trampolines)."""
    import importlib
    return importlib.import_module(f"wasmlower.isa.{_isa_name(target)}.{module}")


def _arch(target: str) -> str:
    return _ARCH.get(_isa_name(target), target)


def _define_params(func: Function, isa: str) -> None:
    """Move the entry block's parameters onto a `params` pseudo-instruction."""
    entry = func.entry
    params = entry.params
    entry.params = []
    for p in params:
        p.block = None
    inst = Inst(f"{isa}.params", (), params, ())
    entry.insts.insert(0, inst)


def allocate(func: Function, target: str = "x86_64", *, stress: bool = False,
             check: bool = False):
    from .regalloc import allocate as run
    constraints = _backend(target, "abi").Constraints(func)
    regfile = _backend(target, "regs").regfile
    return run(func, constraints, regfile(stress), stress=stress, check=check), constraints


class ModuleInfo:
    """What the emitter needs to know about the module."""

    def __init__(self, module) -> None:
        from .wasm.translate import LIBCALLS
        self.num_imported_funcs = module.num_imported_funcs
        self.libcall_names = tuple(LIBCALLS)
        self._slots = {n: i for i, n in enumerate(self.libcall_names)}

    def libcall_slot(self, name: str) -> int:
        return self._slots[name]


def compile_module(wasm: bytes, options: Options | None = None, **kw) -> CompiledModule:
    """Compile a binary module to machine code for ``options.target``."""
    # The IR allocates many small container objects; the cyclic collector
    # would rescan them again and again (measured: up to 3x slower), and
    # compilation makes no garbage cycles worth collecting mid-way.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _compile_module(wasm, options, **kw)
    finally:
        if enabled:
            gc.enable()


@dataclass
class FunctionCode:
    """One function's machine code, position-independent but for its calls.

    Offsets are relative to the start of ``code``.  ``calls`` lists the rel32
    fields of direct calls (patched when functions are laid out).
    """
    index: int
    name: str
    code: bytes
    addrmap: list[tuple[int, int]] = field(default_factory=list)
    traps: list[tuple[int, str]] = field(default_factory=list)
    calls: list[tuple[int, int]] = field(default_factory=list)


def render(module, index: int, opts: Options, timer: Timer, info: ModuleInfo | None = None):
    """Run defined function ``index`` from wasm to rendered assembly text."""
    render_function = _backend(opts.target, "emit").render_function
    info = info or ModuleInfo(module)
    with timer.stage("translate"):
        func = translate(module, index)
    _hook(opts, "translate", func)
    with timer.stage("optimize"):
        optimize(func, module, opts.opt_level)
    _hook(opts, "optimize", func)
    with timer.stage("lower"):
        lower(func, opts.target, opts.trace, opts.isa_off)
    _hook(opts, "lower", func)
    with timer.stage("regalloc"):
        alloc, constraints = allocate(func, opts.target, stress=opts.stress, check=opts.check)
    with timer.stage("encode"):
        rendered = render_function(func, alloc, constraints, info)
    return func, rendered


def compile_functions(module, indices, opts: Options | None = None,
                      timer: Timer | None = None) -> list[FunctionCode]:
    """Compile defined functions ``indices`` of ``module`` (assembled in one keystone call)."""
    from .emit.assemble import assemble, boundaries
    opts = opts or Options()
    timer = timer or Timer()
    info = ModuleInfo(module)
    parts = [render(module, i, opts, timer, info) for i in indices]
    with timer.stage("encode"):
        arch = _arch(opts.target)
        blob = assemble("\n".join(line for _, r in parts for line in r.lines), arch)
        bounds = boundaries(blob, arch)
        out, k = [], 0
        for (func, rendered), i in zip(parts, indices):
            n = sum(1 for kind, _, _ in rendered.info if kind != "label")
            start = bounds[k][0] if k < len(bounds) else len(blob)
            end = bounds[k + n][0] if k + n < len(bounds) else len(blob)
            fc = FunctionCode(func.meta.get("wasm_index", module.num_imported_funcs + i),
                              func.name, blob[start:end])
            _place(rendered, bounds[k:k + n], start, fc, 0 if arch == "aarch64" else 1)
            out.append(fc)
            k += n
        if k != len(bounds):
            raise CodegenError(f"{len(bounds)} instructions encoded, {k} rendered")
    return out


def append_code(text: bytearray, functions: list[FunctionCode], target: str = "x86_64"
                ) -> tuple[list[CompiledFunction], list[tuple[int, str, int, int]]]:
    """Lay ``functions`` out in ``text`` (16-byte aligned) and resolve their calls.

    Returns the per-function records and the call relocations (already
    applied to ``text``; kept for the object file and for loaders).
    """
    placed: list[CompiledFunction] = []
    arch = _arch(target)
    pad = padding(arch)
    for fc in functions:
        text += pad * (-len(text) % 16)
        start = len(text)
        text += fc.code
        placed.append(CompiledFunction(fc.index, fc.name, start, len(fc.code),
                                       [(start + o, w) for o, w in fc.addrmap],
                                       [(start + o, k) for o, k in fc.traps]))
    where = {f.index: f.offset for f in placed}
    relocs = []
    for fc, f in zip(functions, placed):
        for off, callee in fc.calls:
            if callee not in where:
                raise CodegenError(f"{fc.name} calls function {callee}, which was not compiled")
            reloc = call_reloc(arch, f.offset + off, where[callee])
            try:
                resolve(text, reloc)
            except ArtifactError as e:
                raise CodegenError(f"{fc.name}: call to function {callee}: {e}") from None
            relocs.append(reloc)
    return placed, relocs


def _compile_module(wasm: bytes, options: Options | None = None, **kw) -> CompiledModule:
    opts = options or Options(**kw)
    build_trampolines = _backend(opts.target, "trampolines").build_trampolines
    timer = Timer()
    with timer.stage("decode"):
        module = decode(wasm)
    codes = compile_functions(module, range(len(module.codes)), opts, timer)
    with timer.stage("object"):
        text = bytearray()
        functions, relocs = append_code(text, codes, opts.target)
        sigs = list(module.types)
        imported_sigs = [module.types[imp.desc] for imp in module.imports if imp.kind == "func"]
        tramp, h2w, w2h, trap = build_trampolines(list(dict.fromkeys(sigs + imported_sigs)))
        text += padding(_arch(opts.target)) * (-len(text) % 16)
        base = len(text)
        text += tramp
    compiled = CompiledModule(module, bytes(text), functions, relocs,
                              {k: v + base for k, v in h2w.items()},
                              {k: v + base for k, v in w2h.items()},
                              trap + base, ModuleInfo(module).libcall_names, opts.target, wasm)
    compiled.stats = dict(timer.seconds)
    return compiled


def _hook(opts: Options, stage: str, func: Function) -> None:
    if opts.check:
        from .ir.verify import verify
        verify(func, f"after {stage}")
    if opts.on_function is not None:
        opts.on_function(stage, func)


def _place(rendered, bounds, start: int, fc: FunctionCode, call_field: int = 1) -> None:
    """Match rendered lines to encoded instructions: address map, traps, calls.

    ``bounds`` are the function's instructions in the blob; ``start`` is the
    blob offset of its first one (the results are relative to it).
    """
    k = 0
    last_loc = object()
    for kind, payload, loc in rendered.info:
        if kind == "label":
            continue
        if k >= len(bounds):
            raise CodegenError(f"{fc.name}: fewer instructions encoded than rendered")
        off, size = bounds[k]
        off -= start
        k += 1
        if loc is not None and loc != last_loc:
            fc.addrmap.append((off, loc))
            last_loc = loc
        if kind == "call":
            fc.calls.append((off + call_field, payload))
        elif kind == "trap":
            fc.traps.append((off + size, payload))

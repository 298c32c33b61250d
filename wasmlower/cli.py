"""The `wasmlower` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import CompileError, Trap, WasmlowerError


def add_codegen_options(parser: argparse.ArgumentParser) -> None:
    """-O0/-O1/-O2 and --target, for every command that compiles."""
    g = parser.add_mutually_exclusive_group()
    for n in (0, 1, 2):
        g.add_argument(f"-O{n}", dest="opt_level", action="store_const", const=n,
                       help=f"optimization level {n}" + (" (default)" if n == 1 else ""))
    parser.set_defaults(opt_level=1)
    parser.add_argument("--target", default="x86_64", choices=["x86_64", "aarch64"],
                        help="instruction set to compile for (default: x86_64)")


def _read_module_bytes(path: str) -> bytes:
    data = Path(path).read_bytes()
    if path.endswith(".wat") or (data[:4] != b"\0asm" and data[:4] != b"\x7fELF"):
        try:
            import wasmtime
        except ImportError:
            raise SystemExit(f"{path}: wat text needs the optional 'wasmtime' package "
                             "(pip install 'wasmlower[wat]')") from None
        try:
            return wasmtime.wat2wasm(data.decode())
        except wasmtime.WasmtimeError as e:
            raise SystemExit(f"{path}: not valid wat: {e}") from None
    return data


def _parse_arg(text: str, ty: str):
    if ty in ("f32", "f64"):
        return float(text)
    return int(text, 0)


def _is_number(text: str) -> bool:
    try:
        float(text) if "." in text or "e" in text.lower() else int(text, 0)
    except ValueError:
        return False
    return True


def _format(value) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _artifact_opt_level(data: bytes) -> int | None:
    """The opt_level an artifact was compiled with (None if it says nothing)."""
    import json

    from .emit.object import SEC_ENGINE, read_header
    try:
        header = read_header(memoryview(data))
    except WasmlowerError:
        return None              # the engine's own load reports what is wrong
    off, size = header.sections[SEC_ENGINE][:2]
    try:
        settings = json.loads(data[off:off + size]).get("settings", {})
    except ValueError:
        return None
    level = settings.get("opt_level")
    return level if level in (0, 1, 2) else None


def _is_component(data: bytes) -> bool:
    """A component binary, or an artifact of one (``e_flags`` 1)."""
    from .component.decode import PREAMBLE
    from .emit.object import E_FLAGS_COMPONENT
    if data[:4] == b"\x7fELF":
        return len(data) >= 52 and int.from_bytes(data[48:52], "little") == E_FLAGS_COMPONENT
    return bytes(data[:8]) == PREAMBLE


def _parse_component_arg(text: str, ty: object):
    if ty == "bool":
        if text not in ("true", "false"):
            raise ValueError(f"expected true or false, got {text!r}")
        return text == "true"
    if ty in ("f32", "f64"):
        return float(text)
    if ty in ("string", "char"):
        return text
    if isinstance(ty, str):
        return int(text, 0)
    raise ValueError(f"the command line cannot pass a {ty}")


def _run_component(args: argparse.Namespace, engine, data: bytes) -> int:
    from .engine import Component
    component = Component(engine, data)
    if component.imports:
        print(f"error: {args.file} imports {', '.join(component.imports)}; the command line "
              "cannot provide component imports (use the Python API)", file=sys.stderr)
        return 2
    func = component.instantiate().exports.get(args.invoke)
    if func is None or not callable(func):
        names = ", ".join(n for n, e in component.exports.items() if e.sort == "func")
        print(f"error: {args.file} exports no function {args.invoke!r} (functions: "
              f"{names or 'none'})", file=sys.stderr)
        return 2
    params = func.type.params
    if len(params) != len(args.args):
        print(f"error: {args.invoke} takes {len(params)} argument(s) ("
              f"{', '.join(f'{n}: {t}' for n, t in params)}), got {len(args.args)}",
              file=sys.stderr)
        return 2
    try:
        values = [_parse_component_arg(a, t) for a, (_, t) in zip(args.args, params)]
        result = func(*values)
    except (ValueError, TypeError) as e:
        print(f"error: bad argument: {e}", file=sys.stderr)
        return 2
    except Trap as trap:
        print(f"trap: {trap}", file=sys.stderr)
        return 1
    if result is not None:
        print(str(result).lower() if isinstance(result, bool) else _format(result))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .engine import Engine, Instance, Module
    data = _read_module_bytes(args.file)
    opt_level = args.opt_level
    if data[:4] == b"\x7fELF" and not args.explicit_opt_level:
        opt_level = _artifact_opt_level(data) or opt_level   # run it as it was compiled
    engine = Engine(target=args.target, opt_level=opt_level)
    if _is_component(data):
        return _run_component(args, engine, data)
    module = Module(engine, data)
    instance = Instance(module)
    func = instance.exports.get(args.invoke)
    if func is None or not callable(func):
        names = ", ".join(n for n, e in instance.exports.items() if callable(e)) or "none"
        print(f"error: {args.file} exports no function {args.invoke!r} (functions: {names})",
              file=sys.stderr)
        return 2
    params = [p.value for p in func.type.params]
    if len(params) != len(args.args):
        print(f"error: {args.invoke} takes {len(params)} argument(s) ({', '.join(params)}), "
              f"got {len(args.args)}", file=sys.stderr)
        return 2
    try:
        values = [_parse_arg(a, t) for a, t in zip(args.args, params)]
    except ValueError as e:
        print(f"error: bad argument: {e}", file=sys.stderr)
        return 2
    try:
        result = func(*values)
    except Trap as trap:
        print(f"trap: {trap}", file=sys.stderr)
        return 1
    if result is None:
        return 0
    for r in result if isinstance(result, tuple) else (result,):
        print(_format(r))
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    from .engine import Engine
    engine = Engine(target=args.target, opt_level=args.opt_level)
    wasm = _read_module_bytes(args.file)
    data = (engine.precompile_component(wasm) if _is_component(wasm)
            else engine.precompile_module(wasm))
    out = Path(args.output or Path(args.file).with_suffix(".o").name)
    out.write_bytes(data)
    if args.verbose:
        print(f"wrote {out} ({len(data)} bytes)", file=sys.stderr)
    return 0


def cmd_spec(args: argparse.Namespace) -> int:
    from .spec.engine import run_spec
    return run_spec(args)


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import main as bench_main
    return bench_main(args)


def cmd_explain(args: argparse.Namespace) -> int:
    from .explain import explain
    print(explain(_read_module_bytes(args.file), args.func, target=args.target,
                  opt_level=args.opt_level))
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    from .compiler import settings_main
    return settings_main(args)


def cmd_rules(args: argparse.Namespace) -> int:
    from .lower.check import main as rules_main
    return rules_main(args.items)


def cmd_fuzz(args: argparse.Namespace) -> int:
    from .fuzz import main as fuzz_main
    return fuzz_main(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="wasmlower",
        description="An ahead-of-time WebAssembly compiler: compile .wasm to native code "
                    "(ELF objects) and run it.")
    from . import __version__
    p.add_argument("--version", action="version", version=f"wasmlower {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="compile a module and call one of its exports",
                       description="Compile FILE (.wasm, .wat or a compiled artifact) and call "
                                   "an export; prints each result on its own line.")
    r.add_argument("file", metavar="FILE")
    r.add_argument("--invoke", required=True, metavar="NAME", help="the export to call")
    r.add_argument("args", nargs="*", metavar="ARG", help="arguments (ints or floats)")
    add_codegen_options(r)
    r.set_defaults(fn=cmd_run)

    c = sub.add_parser("compile", help="compile a module to an ELF object (artifact)")
    c.add_argument("file", metavar="FILE")
    c.add_argument("-o", "--output", metavar="OUT.o", help="output file (default: FILE.o)")
    c.add_argument("-v", "--verbose", action="store_true")
    add_codegen_options(c)
    c.set_defaults(fn=cmd_compile)

    s = sub.add_parser("spec", help="run WebAssembly spec tests (.wast)")
    s.add_argument("paths", nargs="*", metavar="PATH",
                   help=".wast files or directories (default: the MVP and 2.0-scalar files "
                        "of the spec suite)")
    s.add_argument("--json", metavar="OUT", help="write the counts as JSON")
    s.add_argument("--all-tiers", action="store_true",
                   help="also run modules of tiers outside MVP and 2.0-scalar")
    s.add_argument("--failures", action="store_true", help="list every failure")
    s.add_argument("-q", "--quiet", action="store_true", help="no per-file progress")
    add_codegen_options(s)
    s.set_defaults(fn=cmd_spec)

    b = sub.add_parser("bench", help="benchmark against Wasmtime (not a test)")
    from .bench import add_arguments as bench_arguments
    bench_arguments(b)
    b.set_defaults(fn=cmd_bench)

    e = sub.add_parser("explain", help="show one function through every stage, rule by rule")
    e.add_argument("file", metavar="FILE")
    e.add_argument("--func", type=int, required=True, metavar="N",
                   help="function index (in the function index space)")
    add_codegen_options(e)
    e.set_defaults(fn=cmd_explain)

    ru = sub.add_parser("rules", help="rule-file tools")
    rsub = ru.add_subparsers(dest="rules_command", required=True)
    rc = rsub.add_parser("check", help="type, overlap and coverage checks of rule files")
    rc.add_argument("items", nargs="*", metavar="ISA|FILE", help="ISAs or rule files "
                    "(default: every ISA)")
    rc.set_defaults(fn=cmd_rules)

    st = sub.add_parser("settings", help="list the compiler settings of a target")
    st.add_argument("--target", default="x86_64", help="target triple or ISA (default: x86_64)")
    st.set_defaults(fn=cmd_settings)

    f = sub.add_parser("fuzz", help="differential fuzzing against Wasmtime (wasm-opt -ttf)")
    from .fuzz import add_arguments as fuzz_arguments
    fuzz_arguments(f)
    f.set_defaults(fn=cmd_fuzz)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # `run FILE --invoke NAME ARGS...`: argparse matches FILE and ARGS as one
    # group before it sees --invoke, so the call arguments come back as extras.
    args, extra = parser.parse_known_args(argv)
    args.explicit_opt_level = any(a in ("-O0", "-O1", "-O2") for a in (argv or sys.argv[1:]))
    if extra:
        if args.command != "run" or any(e.startswith("-") and not _is_number(e) for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.args = [*args.args, *extra]
    try:
        return args.fn(args)
    except CompileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except WasmlowerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except FileNotFoundError as e:
        print(f"error: {e.filename}: no such file", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())


"""Code size of wasmlower vs Wasmtime (Cranelift) on the bench programs, AArch64 and x86-64.

Wasmtime's x86-64 PyPI wheel cannot cross-compile (its AArch64 back end is
compiled out), so Cranelift's AArch64 code comes from the AArch64 build of the
same release: the `wasmtime` wheel for manylinux2014_aarch64 ships an AArch64
libwasmtime (the C API), which `precompile.c` (next to this file) drives under
qemu-aarch64 user-mode emulation.  x86-64 uses the installed wheel directly.

    python3 tools/wasmtime_aarch64/measure.py [BENCH_DIR] [--json OUT]

What is counted, for both engines: the sum of the ELF symbol sizes
(`st_size`) of the functions the module defines, i.e. the machine code of
the wasm function bodies.  Trampolines, shared trap/libcall stubs, alignment
padding between functions and all metadata sections are left out:

- wasmlower artifact: `STT_FUNC` symbols `wasm_<index>_<name>` (not
  `wasmlower_h2w_*`, `wasmlower_w2h_*`, `wasmlower_trap`);
- Wasmtime artifact (.cwasm): `STT_FUNC` symbols `wasm[0]::function[N]` (not
  `wasm[0]::array_to_wasm_trampoline[N]`, `signatures[K]::wasm_to_array_trampoline`
  or builtin trampolines).  Cranelift's constant pools and veneers sit inside
  a function's symbol, as wasmlower's in-line constants do.

The numbers of functions must agree, or the program is reported as an error.
This is a measurement tool, not a test: run it by hand.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SYSROOT = Path("/usr/aarch64-linux-gnu")
APT_PACKAGES = ["qemu-user", "gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross"]
WHEEL_PLATFORM = "manylinux2014_aarch64"
WASMTIME_FUNC = re.compile(r"wasm\[0\]::function\[(\d+)\]")
OURS_FUNC = re.compile(r"wasm_(\d+)_.*", re.DOTALL)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- setting up the AArch64 Wasmtime ------------------------------------------------------

def ensure_cross_tools(install: bool) -> None:
    """qemu-aarch64, aarch64-linux-gnu-gcc and the AArch64 glibc; apt-get them if missing."""
    missing = [tool for tool in ("qemu-aarch64", "aarch64-linux-gnu-gcc") if not shutil.which(tool)]
    if not (SYSROOT / "lib" / "libc.so.6").exists():
        missing.append(str(SYSROOT / "lib" / "libc.so.6"))
    if not missing:
        return
    command = ["apt-get", "install", "-y", *APT_PACKAGES]
    if not install or os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit(f"missing: {', '.join(missing)}; install them with: {' '.join(command)}")
    log(f"installing {' '.join(APT_PACKAGES)} (apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run([*command, "-qq"], check=True, env=env)


def ensure_aarch64_libwasmtime(version: str, work: Path) -> Path:
    """The directory holding the AArch64 `_libwasmtime.so` of wasmtime-py `version`."""
    libdir = work / f"wasmtime-{version}-aarch64"
    lib = libdir / "_libwasmtime.so"
    if lib.exists():
        return libdir
    wheels = work / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    log(f"downloading the wasmtime {version} wheel for {WHEEL_PLATFORM} (pip)")
    subprocess.run([sys.executable, "-m", "pip", "download", f"wasmtime=={version}",
                    "--platform", WHEEL_PLATFORM, "--only-binary=:all:", "--no-deps",
                    "-d", str(wheels), "-q"], check=True)
    [wheel] = wheels.glob(f"wasmtime-{version}-*{WHEEL_PLATFORM}*.whl")
    with zipfile.ZipFile(wheel) as zf:
        [member] = [n for n in zf.namelist() if n.endswith("linux-aarch64/_libwasmtime.so")]
        libdir.mkdir(parents=True, exist_ok=True)
        lib.write_bytes(zf.read(member))
    return libdir


def build_precompile(libdir: Path) -> Path:
    """Cross-compile precompile.c against the AArch64 libwasmtime."""
    source = HERE / "precompile.c"
    exe = libdir / "precompile"
    if not exe.exists() or exe.stat().st_mtime < source.stat().st_mtime:
        log(f"building {exe} (aarch64-linux-gnu-gcc)")
        subprocess.run(["aarch64-linux-gnu-gcc", "-O2", "-Wall", "-Wextra", "-o", str(exe),
                        str(source), f"-L{libdir}", "-l:_libwasmtime.so"], check=True)
    return exe


def wasmtime_aarch64(exe: Path, libdir: Path, wasm_path: Path, out: Path,
                     explicit_bounds: bool = False) -> bytes:
    """Wasmtime's AArch64 artifact for `wasm_path`, compiled under qemu-aarch64."""
    env = dict(os.environ, LD_LIBRARY_PATH=str(libdir))
    flags = ["-b"] if explicit_bounds else []
    subprocess.run(["qemu-aarch64", "-L", str(SYSROOT), str(exe), *flags,
                    str(wasm_path), str(out)], check=True, env=env)
    return out.read_bytes()


def wasmtime_x86_64(wasm: bytes) -> bytes:
    """Wasmtime's x86-64 artifact (the installed wheel, host CPU features)."""
    import wasmtime

    config = wasmtime.Config()
    config.cranelift_opt_level = "speed"
    config.parallel_compilation = False
    return wasmtime.Module(wasmtime.Engine(config), wasm).serialize()


# --- counting ------------------------------------------------------------------------------

def function_sizes(blob: bytes, pattern: re.Pattern[str], machine: str) -> dict[int, int]:
    """{function index: st_size} of the STT_FUNC symbols whose full name matches `pattern`."""
    from elftools.elf.elffile import ELFFile

    elf = ELFFile(io.BytesIO(blob))
    if elf["e_machine"] != machine:
        raise ValueError(f"artifact is {elf['e_machine']}, expected {machine}")
    sizes = {}
    for sym in elf.get_section_by_name(".symtab").iter_symbols():
        m = pattern.fullmatch(sym.name)
        if m and sym["st_info"]["type"] == "STT_FUNC":
            sizes[int(m.group(1))] = sym["st_size"]
    return sizes


def isa_flags(blob: bytes) -> list[str]:
    """The Cranelift ISA flags that are on, read from a .cwasm's `.wasmtime.engine` section.

    Each setting there is a length-prefixed name followed by 0x02 (bool) and 0/1.
    """
    from elftools.elf.elffile import ELFFile

    data = ELFFile(io.BytesIO(blob)).get_section_by_name(".wasmtime.engine").data()
    on = re.findall(rb"((?:has|use|sign)_[a-z0-9_]+)\x02\x01", data)
    return [name.decode() for name in on]


def ours(wasm: bytes, target: str, opt_level: int) -> dict[int, int]:
    from wasmlower.engine import Engine

    blob = Engine(target=target, opt_level=opt_level).precompile_module(wasm)
    machine = "EM_AARCH64" if target == "aarch64" else "EM_X86_64"
    return function_sizes(blob, OURS_FUNC, machine)


# --- report --------------------------------------------------------------------------------

COLUMNS = [  # key, heading
    ("ours_a64", "ours aarch64"),
    ("wt_a64", "Wasmtime aarch64"),
    ("r_a64", "ratio"),
    ("wt_a64_bc", "Wasmtime aarch64, explicit bounds checks"),
    ("r_a64_bc", "ratio"),
    ("ours_x64", "ours x86-64"),
    ("wt_x64", "Wasmtime x86-64"),
    ("r_x64", "ratio"),
]
RATIOS = {"r_a64": ("ours_a64", "wt_a64"), "r_a64_bc": ("ours_a64", "wt_a64_bc"),
          "r_x64": ("ours_x64", "wt_x64")}


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def table(rows: list[dict]) -> str:
    def cell(row: dict, key: str) -> str:
        value = row.get(key)
        if value is None:
            return ""
        return f"{value:.2f}x" if key in RATIOS else f"{value:,}"

    lines = ["| program | functions | " + " | ".join(h for _, h in COLUMNS) + " |",
             "|---" * (len(COLUMNS) + 2) + "|"]
    for row in rows:
        lines.append(f"| {row['program']} | {row['functions']} | "
                     + " | ".join(cell(row, k) for k, _ in COLUMNS) + " |")
    total: dict = {"program": "total", "functions": sum(r["functions"] for r in rows)}
    mean: dict = {"program": "geomean", "functions": ""}
    for key, _ in COLUMNS:
        if key in RATIOS:
            a, b = RATIOS[key]
            total[key] = total[a] / total[b]
            mean[key] = geomean([r[key] for r in rows])
        else:
            total[key] = sum(r[key] for r in rows)
    for row in (total, mean):
        lines.append(f"| {row['program']} | {row['functions']} | "
                     + " | ".join(cell(row, k) for k, _ in COLUMNS) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bench_dir", nargs="?", help="directory with bench.json "
                        "(default: $WASMLOWER_BENCH_DIR or <repo>/../shared/bench)")
    parser.add_argument("--work", default="/tmp/wasmtime-aarch64",
                        help="download/build directory (default: %(default)s)")
    parser.add_argument("--wasmtime-version", default=None,
                        help="wasmtime-py version of the AArch64 wheel "
                             "(default: the installed wasmtime's)")
    parser.add_argument("-O", "--opt-level", type=int, default=1, choices=(0, 1, 2),
                        help="wasmlower's opt level (default 1, as `wasmlower bench`)")
    parser.add_argument("--wasmlower", default=str(REPO), metavar="DIR",
                        help="directory holding the wasmlower package to measure (default: "
                             "this repository; e.g. a `git archive` snapshot of one commit)")
    parser.add_argument("--no-install", action="store_true",
                        help="do not apt-get missing cross tools")
    parser.add_argument("--json", help="also write every number (per function) here")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(Path(args.wasmlower).resolve()))
    import wasmlower
    from wasmlower.bench import find_bench_dir

    log(f"wasmlower from {Path(wasmlower.__file__).parent}")

    bench_dir = find_bench_dir(args.bench_dir)
    if bench_dir is None or not (bench_dir / "bench.json").is_file():
        sys.exit("no bench directory with bench.json: pass BENCH_DIR")
    version = args.wasmtime_version or importlib.metadata.version("wasmtime")
    work = Path(args.work)
    ensure_cross_tools(install=not args.no_install)
    libdir = ensure_aarch64_libwasmtime(version, work)
    exe = build_precompile(libdir)
    out_dir = work / "cwasm"
    out_dir.mkdir(parents=True, exist_ok=True)

    rows, details, flags = [], {}, {}
    for entry in json.loads((bench_dir / "bench.json").read_text()):
        path = bench_dir / entry["file"]
        name = path.stem
        log(f"measuring {name}")
        wasm = path.read_bytes()
        a64 = wasmtime_aarch64(exe, libdir, path, out_dir / f"{name}.aarch64.cwasm")
        a64_bc = wasmtime_aarch64(exe, libdir, path, out_dir / f"{name}.aarch64-bc.cwasm",
                                  explicit_bounds=True)
        x64 = wasmtime_x86_64(wasm)
        flags = {"aarch64": isa_flags(a64), "x86_64": isa_flags(x64)}
        sizes = {
            "ours_a64": ours(wasm, "aarch64", args.opt_level),
            "wt_a64": function_sizes(a64, WASMTIME_FUNC, "EM_AARCH64"),
            "wt_a64_bc": function_sizes(a64_bc, WASMTIME_FUNC, "EM_AARCH64"),
            "ours_x64": ours(wasm, "x86_64", args.opt_level),
            "wt_x64": function_sizes(x64, WASMTIME_FUNC, "EM_X86_64"),
        }
        counts = {key: len(s) for key, s in sizes.items()}
        if len(set(counts.values())) != 1:
            sys.exit(f"{name}: the artifacts disagree on the number of functions: {counts}")
        row = {"program": name, "functions": counts["wt_a64"]}
        row.update({key: sum(s.values()) for key, s in sizes.items()})
        for key, (a, b) in RATIOS.items():
            row[key] = row[a] / row[b]
        rows.append(row)
        details[name] = {key: {str(i): n for i, n in sorted(s.items())}
                         for key, s in sizes.items()}

    print(f"Code size in bytes: sum of the defined functions' symbol sizes (trampolines and "
          f"padding excluded); wasmlower -O{args.opt_level}, Wasmtime {version} Cranelift "
          f"opt_level=speed. Ratio = ours / Wasmtime.")
    print(f"Cranelift ISA flags on: aarch64 (qemu-aarch64 host): {', '.join(flags['aarch64'])}; "
          f"x86-64 (host): {', '.join(flags['x86_64'])}")
    print()
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"wasmtime_version": version, "opt_level": args.opt_level, "isa_flags": flags,
             "programs": rows, "functions": details}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

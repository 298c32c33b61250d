import ctypes
import gc

import pytest
from rt_helpers import asm

from wasmlower.emit.compiled import CompiledFunction, CompiledModule
from wasmlower.errors import ArtifactError
from wasmlower.runtime import native
from wasmlower.runtime.native import _SHIM_CODE

U64 = ctypes.c_uint64


def _perms(addr: int) -> str:
    with open("/proc/self/maps") as f:
        for line in f:
            span, perms = line.split()[:2]
            lo, hi = (int(x, 16) for x in span.split("-"))
            if lo <= addr < hi:
                return perms
    return ""


def test_reserve_commit_release():
    base = native.reserve(4 * native.PAGE_SIZE)
    try:
        assert _perms(base).startswith("---")
        assert native.commit(base, native.PAGE_SIZE)
        assert _perms(base).startswith("rw")
        assert _perms(base + native.PAGE_SIZE).startswith("---")
        ctypes.memset(base, 7, 10)
        assert ctypes.string_at(base, 3) == b"\7\7\7"
        with pytest.raises(ValueError):
            native.commit(base + 1, native.PAGE_SIZE)
    finally:
        native.release(base, 4 * native.PAGE_SIZE)
    assert _perms(base) == "" or not _perms(base).startswith("rw")


def test_code_mapping_calls_and_is_never_writable():
    m = native.CodeMapping(asm("mov eax, 42; ret"))
    assert _perms(m.base).startswith("r-x")
    f = native.cfunc(m.address(0), U64)
    assert f() == 42


def test_mapped_code_reads_through_its_argument():
    m = native.CodeMapping(asm("mov rax, qword ptr [rdi+0x10]; ret"))
    buf = (U64 * 4)(1, 2, 0xDEADBEEF, 4)
    f = native.cfunc(m.base, U64, U64)
    assert f(ctypes.addressof(buf)) == 0xDEADBEEF


def test_relocations_are_applied():
    # 0: call 16 (rel32 patched by a PLT32 relocation); add eax, 1; ret
    # 16: mov eax, 41; ret
    text = bytearray(b"\xe8\0\0\0\0" + asm("add eax, 1; ret"))
    text += b"\xcc" * (16 - len(text))
    text += asm("mov eax, 41; ret")
    m = native.CodeMapping(bytes(text), [(1, "R_X86_64_PLT32", 16, -4)])
    assert native.cfunc(m.base, U64)() == 42


@pytest.mark.parametrize("reloc", [
    (100, "R_X86_64_PLT32", 0, -4), (0, "R_X86_64_PLT32", 100, -4), (0, "R_X86_64_64", 0, 0)])
def test_bad_relocations_are_artifact_errors(reloc):
    with pytest.raises(ArtifactError):
        native.CodeMapping(asm("nop; nop; nop; nop; nop; nop; ret"), [reloc])


def _fake_compiled(text: bytes) -> CompiledModule:
    funcs = [CompiledFunction(0, "first", 0, 16, [(0, 0x10), (5, 0x14)]),
             CompiledFunction(1, "", 16, 8, [])]
    return CompiledModule(None, text, funcs, [], {}, {}, 0, ())


def test_symbolize_and_registry_lifetime():
    m = native.CodeMapping(b"\x90" * 32, compiled=_fake_compiled(b"\x90" * 32))
    assert native.symbolize(m.base) == (0, "first", 0x10)
    assert native.symbolize(m.base + 4) == (0, "first", 0x10)
    assert native.symbolize(m.base + 5) == (0, "first", 0x14)
    assert native.symbolize(m.base + 17) == (1, None, None)
    assert native.symbolize(m.base + 24) is None          # past the last function
    assert native.lookup_code(m.base + 30) is m
    base = m.base
    del m
    gc.collect()
    assert native.lookup_code(base) is None


def test_shim_matches_its_assembly():
    # The shim is stored as bytes; its source is the comment above _SHIM_CODE.
    import inspect
    lines = inspect.getsource(native).split("# u64 shim(", 1)[1].split("_SHIM_CODE")[0]
    heads = ("#    ", "# setl", "# go", "# keep", "# walk", "# stop", "# done")
    src = [ln[1:].strip() for ln in lines.splitlines() if ln.startswith(heads)]
    text = ";".join(src).replace(" [", " qword ptr [").replace("qword ptr qword ptr", "qword ptr")
    text = text.replace("lea rdx, qword ptr", "lea rdx,")
    assert asm(text) == _SHIM_CODE


def _call(code: bytes, vmctx_is_store: bool = True, values=()):
    m = native.CodeMapping(code)
    store = (U64 * 8)()
    bt = native.new_backtrace_buffer()
    vmctx = ctypes.addressof(store) if vmctx_is_store else 40
    block = native.new_call_block(m.base, vmctx, 2, ctypes.addressof(store), bt, 2)
    block[native.BLOCK_VALUES:native.BLOCK_VALUES + len(values)] = list(values)
    return m, store, block, native.call_wasm(block)


def test_shim_passes_arguments_and_result():
    # entry(vmctx=40, code=2, values): values[0] = vmctx + code + values[1]; return 0
    _, store, block, rc = _call(asm("mov rax, rdi; add rax, rsi; add rax, qword ptr [rdx+8]; "
                                    "mov qword ptr [rdx], rax; xor eax, eax; ret"),
                                vmctx_is_store=False, values=(0, 100))
    assert rc == 0
    assert block[native.BLOCK_VALUES] == 142
    assert store[1] == 0                     # the stack limit is cleared after the call


def test_shim_sets_the_stack_limit_for_the_call():
    # entry returns the store's stack_limit as seen during the call (vmctx = store).
    _, store, _, rc = _call(asm("mov rax, qword ptr [rdi+8]; ret"))
    low, high = native.thread_stack_bounds()
    assert low + native.STACK_RESERVE <= rc < high
    assert store[1] == 0


def test_shim_walks_frames_after_a_trap():
    # outer(store) calls inner, whose frame records rbp as trap_fp and "traps" (returns 7).
    m, _, block, rc = _call(asm("""
        push rbp; mov rbp, rsp
        call inner
    after_inner:
        pop rbp; ret
    inner:
        push rbp; mov rbp, rsp
        mov qword ptr [rdi+0x20], rbp
        mov eax, 7
        pop rbp; ret"""))
    assert rc == 7
    ras = native.backtrace_addresses(block._bt)
    assert ras[0] == m.base + 9                    # return address after "call inner"
    assert len(ras) >= 2 and native.lookup_code(ras[1]) is not None     # into the shim
    assert len(ras) <= native.BACKTRACE_CAPACITY


def test_shim_stops_on_a_bad_frame_pointer():
    _, _, block, rc = _call(asm("mov qword ptr [rdi+0x20], 0x1234; mov eax, 3; ret"))
    assert rc == 3
    assert native.backtrace_addresses(block._bt) == []


def test_thread_stack_bounds_are_plausible():
    lo, hi = native.thread_stack_bounds()
    assert 0 < lo < hi and hi - lo >= 0x10000

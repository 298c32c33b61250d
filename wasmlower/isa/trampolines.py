"""Trampolines between the host and wasm code: the part every ISA shares.

Problem.  The runtime calls wasm through a host-to-wasm trampoline per
signature (values in an array of 8-byte slots, one per parameter and
result), wasm calls host functions through a wasm-to-host trampoline per
signature (the reverse), and traps end in one trap routine.  The marshalling
(which value goes to which register or stack slot, in which order) follows
the calling convention the same way on every ISA; the frames around it and
the instructions are the ISA's.

Mechanism.  ``Trampolines`` writes the assembly of both trampolines from the
calling convention and a few ISA pieces: ``load``/``store`` (an 8-byte slot
from/to a register), the entry, call and exit sequences, and the trap
routine.  ``build`` assembles all of them for a set of signatures as one
blob.  An ISA's ``trampolines.py`` subclasses it and exports the bound
methods under the module-level names the runtime uses
(``build_trampolines``, ``host_to_wasm_asm``, ...).

The Store block and VMContext offsets below are the runtime ABI (docs/ABI.md),
the same on every ISA.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from wasmlower.isa.abi import CallingConvention

STACK_BUDGET = 0x80000        # bytes of stack wasm may use below the outermost entry

# The Store block (VMContext[0] points at it) and VMContext slots.
ST_TRAP_SP, ST_LIMIT, ST_CODE, ST_PC, ST_FP, ST_PENDING = 0x00, 0x08, 0x10, 0x18, 0x20, 0x28
VM_TRAP_FN = 0x38
HOST_CALLBACK = 0x08


def ir_types(vts) -> tuple:
    """IR types of wasm value types; references travel as i64."""
    from wasmlower.ir.types import Type
    return tuple(Type.F32 if v.value == "f32" else Type.F64 if v.value == "f64"
                 else Type.I64 for v in vts)


def aligned16(n: int) -> int:
    return (n + 15) & ~15


class Trampolines(ABC):
    """Host-to-wasm and wasm-to-host trampolines and the trap routine of one ISA.

    Register operands of ``load``/``store`` are physical register numbers
    (of the ISA's ``regs.py``); bases are register names.
    """

    arch: str                     # for emit.assemble
    align: int                    # alignment of each trampoline in the blob
    conv: CallingConvention
    SP: str                       # the stack pointer
    FP: str                       # the frame pointer: incoming stack args at [FP+16+8k]
    VALUES: str                   # host-to-wasm: the register holding the values array
    H2W_SCRATCH: int              # a register free while host-to-wasm copies stack args
    W2H_SCRATCH: int              # a register free while wasm-to-host copies stack args

    # -- what an ISA supplies ----------------------------------------------
    @abstractmethod
    def load(self, preg: int, base: str, off: int) -> list[str]:
        """Load the 8-byte slot at ``[base+off]`` into register ``preg``."""
        ...

    @abstractmethod
    def store(self, preg: int, base: str, off: int) -> list[str]:
        """Store register ``preg`` to the 8-byte slot at ``[base+off]``."""
        ...

    @abstractmethod
    def h2w_enter(self, label: str) -> list[str]:
        """Save the host's registers, pin the VMContext, link the store's trap_sp/stack_limit."""
        ...

    @abstractmethod
    def reserve(self, size: int) -> list[str]:
        """Lower the stack pointer by ``size`` (a multiple of 16)."""
        ...

    @abstractmethod
    def h2w_call(self) -> list[str]:
        ...

    @abstractmethod
    def h2w_leave(self) -> list[str]:
        """Return 0 to the host, restoring what ``h2w_enter`` saved."""
        ...

    @abstractmethod
    def w2h_enter(self, slots: int) -> list[str]:
        """A frame with a values array of ``slots`` 8-byte slots at ``[SP]``."""
        ...

    @abstractmethod
    def w2h_call(self, label: str) -> list[str]:
        """Call the host callback with the array; to ``{label}_trap`` if it reports a trap."""
        ...

    @abstractmethod
    def w2h_leave(self, label: str) -> list[str]:
        """Return to wasm; then the ``{label}_trap`` path into the trap routine."""
        ...

    @abstractmethod
    def trap_routine_asm(self, label: str) -> str:
        ...

    # -- the shared structure ------------------------------------------------
    def host_to_wasm_asm(self, ft, label: str) -> str:
        """``entry(vmctx, code, values)``: call ``code`` with the parameters in
        ``values``, write its results back there, return 0 (or a trap code)."""
        params, results = ir_types(ft.params), ir_types(ft.results)
        locs = self.conv.arg_locations(params)
        nstack = sum(1 for k, _ in locs if k == "stack")
        lines = [f"{label}:", *self.h2w_enter(label)]
        if nstack:
            lines += self.reserve(aligned16(8 * nstack))
        for i, (kind, where) in enumerate(locs):
            if kind == "stack":
                lines += self.load(self.H2W_SCRATCH, self.VALUES, 8 * i)
                lines += self.store(self.H2W_SCRATCH, self.SP, 8 * where)
        for i, (kind, where) in enumerate(locs):
            if kind == "reg":
                lines += self.load(where, self.VALUES, 8 * i)
        lines += self.h2w_call()
        for i, preg in enumerate(self.conv.result_locations(results)):
            lines += self.store(preg, self.VALUES, 8 * i)
        lines += self.h2w_leave()
        return "\n".join(lines)

    def wasm_to_host_asm(self, ft, label: str) -> str:
        """Spill the args to an array, call the host callback ``cb(hostctx, values)``,
        load the results from the array."""
        params, results = ir_types(ft.params), ir_types(ft.results)
        lines = [f"{label}:", *self.w2h_enter(max(len(params), len(results), 1))]
        for i, (kind, where) in enumerate(self.conv.arg_locations(params)):
            if kind == "reg":
                lines += self.store(where, self.SP, 8 * i)
            else:
                lines += self.load(self.W2H_SCRATCH, self.FP, 16 + 8 * where)
                lines += self.store(self.W2H_SCRATCH, self.SP, 8 * i)
        lines += self.w2h_call(label)
        for i, preg in enumerate(self.conv.result_locations(results)):
            lines += self.load(preg, self.SP, 8 * i)
        lines += self.w2h_leave(label)
        return "\n".join(lines)

    def build(self, functypes) -> tuple[bytes, dict, dict, int]:
        """Assemble trampolines for ``functypes`` plus the trap routine, as one blob.

        Returns ``(text, host_to_wasm, wasm_to_host, trap_routine)`` with the
        offsets of each trampoline by signature and of the trap routine.
        """
        from wasmlower.emit.assemble import assemble_labeled
        sigs = list(dict.fromkeys(functypes))
        chunks, labels = [], []
        for i, ft in enumerate(sigs):
            chunks.append(self.host_to_wasm_asm(ft, f"h2w_{i}"))
            chunks.append(self.wasm_to_host_asm(ft, f"w2h_{i}"))
            labels += [f"h2w_{i}", f"w2h_{i}"]
        chunks.append(self.trap_routine_asm("wl_trap"))
        labels.append("wl_trap")
        text, offsets = assemble_labeled("\n".join(chunks), labels, arch=self.arch,
                                         align=self.align)
        h2w = {ft: offsets[f"h2w_{i}"] for i, ft in enumerate(sigs)}
        w2h = {ft: offsets[f"w2h_{i}"] for i, ft in enumerate(sigs)}
        return text, h2w, w2h, offsets["wl_trap"]

"""The AArch64 back end (docs/AARCH64.md): registers, ABI, op declarations and
lowering rules, emitter and trampolines.  ``compiler.Compiler`` drives it like
the x86-64 one; its code runs under emulation on other hosts
(``runtime/emulated.py``)."""

"""Artifact emission: ELF relocatable objects."""

from .elf import ObjectFile, Reloc, Section, Symbol, read_object, write_object

__all__ = ["ObjectFile", "Reloc", "Section", "Symbol", "read_object", "write_object"]

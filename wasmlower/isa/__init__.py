"""Targets: one subpackage per ISA (registers, ABI, machine ops, lowering rules)."""

"""The rule language and the lowering driver.

One Lark-parsed language (``rules.lark``) declares an ISA's machine ops and
writes both lowering rules (generic -> machine ops) and mid-end rewrite
rules (generic -> generic).  Rules are resolved and checked (``check``),
compiled to cached Python decision trees (``matchgen``) and applied by the
driver (``driver``).

    isa = load_isa("x64")
    lower_function(func, isa)            # in place; Inst.rule says which rule fired
    print(check_isa(isa).format())       # overlap, shadowing, coverage, unused ops
"""

from .check import FRONTEND_COVERAGE, Hole, Report, Rule, check_isa, check_rules, check_targets
from .decl import ImmDecl, MachineOpDecl, OperandDecl
from .driver import (
    LowerContext,
    NoRuleError,
    benchmark_matchers,
    lower_function,
    remove_dead,
    rewrite_function,
    rule_counts,
)
from .isa import Isa, RuleSet, clear_cache, load_isa, load_isa_dir, load_rules
from .matchgen import generate, interpret
from .syntax import RuleFile, parse_file, parse_text

__all__ = [
    "FRONTEND_COVERAGE", "Hole", "ImmDecl", "Isa", "LowerContext", "MachineOpDecl",
    "NoRuleError", "OperandDecl", "Report", "Rule", "RuleFile", "RuleSet",
    "benchmark_matchers", "check_isa", "check_rules", "check_targets", "clear_cache",
    "generate", "interpret", "load_isa", "load_isa_dir", "load_rules", "lower_function",
    "parse_file", "parse_text", "remove_dead", "rewrite_function", "rule_counts",
]

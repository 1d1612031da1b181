"""Graph passes: a pass manager, a pattern-rewrite engine and the passes themselves.

``optimize(graph, level=2)`` or ``optimize(graph, passes="fold-constants,dce")`` return
an optimized copy. How to write a pass: docs/passes.md.
"""

from .base import Pass, RulePass, make_pass, register, registered
from .manager import LEVELS, PassManager, level_pipeline, optimize, parse_pipeline
from .rewrite import Builder, Rule, apply_rules

__all__ = ["LEVELS", "Builder", "Pass", "PassManager", "Rule", "RulePass", "apply_rules",
           "level_pipeline", "make_pass", "optimize", "parse_pipeline", "register", "registered"]

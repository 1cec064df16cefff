"""Alignment objectives, one registry (``amber_align.objectives.registry``).

Importing this package registers the built-in objectives in the order their parts are computed, logged and listed:
SA, Cao and SO (which share one forward of the separate sentences), then MLM, TLM and WA.
"""

import importlib

from amber_align.objectives.registry import (OBJECTIVES, Objective, ObjectiveStep, enabled_objectives,
                                             get_objective, objectives_of, register_objective,
                                             unregister_objective)

__all__ = ["OBJECTIVES", "Objective", "ObjectiveStep", "enabled_objectives", "get_objective", "objectives_of",
           "register_objective", "unregister_objective", "BUILTIN_MODULES"]

#: the built-in objectives' modules, imported (hence registered) in this order
BUILTIN_MODULES = ("sentence_alignment", "cao", "self_training", "masked_lm", "word_agreement")

for _module in BUILTIN_MODULES:
    importlib.import_module(f"amber_align.objectives.{_module}")

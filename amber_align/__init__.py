"""amber_align: line up the languages of a multilingual encoder.

Alignment trainers (Cao-style adjustment, AMBER objectives, awesome-align's self-training) built on
``transformers.Trainer``, with the data pipeline (parallel corpora, word alignments) and the zero-shot
evaluations that measure the effect. The public API, in the idiom of TRL::

    from datasets import Dataset
    from amber_align import CaoConfig, CaoTrainer

    pairs = Dataset.from_dict({"src": ["Hola mundo ."], "tgt": ["Hello world ."],
                               "src_lang": ["es"], "tgt_lang": ["en"]})
    trainer = CaoTrainer(model="bert-base-multilingual-cased", args=CaoConfig(output_dir="out"),
                         train_dataset=pairs)
    trainer.train()

Every name below is imported on first use (PEP 562 ``__getattr__``), so ``import amber_align`` loads neither torch
nor transformers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    # alignment methods: one config + one trainer each, and the registry `amber-align align` dispatches on
    "AlignmentConfig": "amber_align.trainers.alignment_config",
    "AlignmentTrainer": "amber_align.trainers.alignment_trainer",
    "CaoConfig": "amber_align.trainers.cao",
    "CaoTrainer": "amber_align.trainers.cao",
    "AmberConfig": "amber_align.trainers.amber",
    "AmberTrainer": "amber_align.trainers.amber",
    "METHODS": "amber_align.trainers",
    "get_method": "amber_align.trainers",
    # argument groups shared by the configs (model, parallel data, Cao loss)
    "ModelArguments": "amber_align.arguments",
    "ParallelDataArguments": "amber_align.arguments",
    "CaoArguments": "amber_align.arguments",
    # the registries: a new objective or task is one file plus one registration
    "Objective": "amber_align.objectives",
    "register_objective": "amber_align.objectives",
    "Task": "amber_align.tasks.registry",
    "register_task": "amber_align.tasks.registry",
    "TaskHandler": "amber_align.tasks.handlers",
    # the align job and its data half
    "run_alignment": "amber_align.pipeline",
    "build_alignment_datasets": "amber_align.data.prepare",
    "prepare_parallel_data": "amber_align.data.prepare",
    "ParallelSource": "amber_align.data.parallel",
    "load_parallel": "amber_align.data.parallel",
    # zero-shot transfer: fine-tune an English head, evaluate every language; continual learning
    "TaskConfig": "amber_align.tasks.config",
    "TaskTrainer": "amber_align.tasks.runner",
    "ContinualTaskTrainer": "amber_align.trainers.continual",
    "run_finetune": "amber_align.tasks.runner",
    "run_evaluate": "amber_align.tasks.runner",
    # word alignments from an encoder (SimAlign / awesome-align methods)
    "WordAligner": "amber_align.extraction",
    # the Hub
    "push_folder": "amber_align.hub.push",
    # errors: every error the package raises on purpose is an AmberAlignError
    "AmberAlignError": "amber_align.errors",
    "ConfigError": "amber_align.errors",
    "DataFormatError": "amber_align.errors",
    "TokenizerMismatchError": "amber_align.errors",
    "MissingDependencyError": "amber_align.errors",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily
    from amber_align.arguments import CaoArguments, ModelArguments, ParallelDataArguments
    from amber_align.data.parallel import ParallelSource, load_parallel
    from amber_align.data.prepare import build_alignment_datasets, prepare_parallel_data
    from amber_align.errors import (AmberAlignError, ConfigError, DataFormatError, MissingDependencyError,
                                    TokenizerMismatchError)
    from amber_align.extraction import WordAligner
    from amber_align.hub.push import push_folder
    from amber_align.objectives import Objective, register_objective
    from amber_align.pipeline import run_alignment
    from amber_align.tasks.config import TaskConfig
    from amber_align.tasks.handlers import TaskHandler
    from amber_align.tasks.registry import Task, register_task
    from amber_align.tasks.runner import TaskTrainer, run_evaluate, run_finetune
    from amber_align.trainers import METHODS, get_method
    from amber_align.trainers.alignment_config import AlignmentConfig
    from amber_align.trainers.alignment_trainer import AlignmentTrainer
    from amber_align.trainers.amber import AmberConfig, AmberTrainer
    from amber_align.trainers.cao import CaoConfig, CaoTrainer
    from amber_align.trainers.continual import ContinualTaskTrainer


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'amber_align' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

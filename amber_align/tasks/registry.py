"""The registry of evaluation tasks: each task declared once, with what every part of the package needs to know.

A :class:`Task` names its reader and evaluation code (a handler class, imported only when the task runs, so this
module stays light enough for the CLI and configs), its stock ``transformers`` head when it can be fine-tuned, its
primary metric (plots, comparisons), and what a model card shows (title, Hub task type, pipeline tag, default
dataset). ``amber-align finetune`` / ``evaluate``, ``results.json`` tables, plots and cards all read it from here.
A new task is a handler class (``amber_align.tasks.handlers.TaskHandler``) in its own file plus one
:func:`register_task` call.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from amber_align.errors import ConfigError

__all__ = ["Task", "TASK_REGISTRY", "register_task", "unregister_task", "get_task", "task_names", "primary_metric",
           "non_score_metrics"]


@dataclass(frozen=True)
class Task:
    """One evaluation task.

    Attributes:
        name: the ``task`` value (letters, digits, '-': it is a part of ``eval_{task}_{lang}_{metric}``).
        title: its heading in result tables and cards.
        hub_type: the Hub ``model-index`` task type of its results.
        primary_metric: the metric plotted and compared across runs.
        handler: ``"module:Class"`` of its ``TaskHandler`` (reader, features, evaluation), imported when it runs.
        head: the ``transformers`` auto class of its head when it can be fine-tuned (``finetune``); None =
            evaluation of a plain encoder only (``evaluate``).
        pipeline_tag: the Hub pipeline tag of a model fine-tuned on it.
        dataset: ``(hub id, name)`` a card cites when the run's own source is not known.
        labels: the card lists the model's label names.
        non_score_metrics: reported in tables but not percentages (left out of score charts).
    """

    name: str
    title: str
    hub_type: str
    primary_metric: str
    handler: str
    head: str | None = None
    pipeline_tag: str | None = None
    dataset: tuple[str, str] | None = None
    labels: bool = False
    non_score_metrics: frozenset[str] = frozenset()

    @property
    def trainable(self) -> bool:
        return self.head is not None

    def load_handler(self) -> Any:
        """An instance of the task's handler class."""
        module, _, name = self.handler.partition(":")
        return getattr(importlib.import_module(module), name)(self)


#: name -> task, in registration order
TASK_REGISTRY: dict[str, Task] = {}


def register_task(task: Task, *, replace: bool = False) -> Task:
    """Add ``task``; a second task of the same name is refused unless ``replace``."""
    if task.name in TASK_REGISTRY and not replace:
        raise ConfigError(f"task {task.name!r} is registered already (pass replace=True)")
    if not task.name or not all(c.isalnum() or c == "-" for c in task.name):
        raise ConfigError(f"task name {task.name!r}: expected letters, digits and '-' only")
    TASK_REGISTRY[task.name] = task
    return task


def unregister_task(name: str) -> None:
    TASK_REGISTRY.pop(name, None)


def task_names(*, trainable: bool | None = None) -> tuple[str, ...]:
    """The registered task names (``trainable``: only those with / without a fine-tuning head)."""
    return tuple(n for n, t in TASK_REGISTRY.items() if trainable is None or t.trainable == trainable)


def get_task(name: str, *, trainable: bool = False, what: str = "task") -> Task:
    """The registered task ``name``; unknown (or, with ``trainable``, one without a head) is a ``ConfigError``."""
    task = TASK_REGISTRY.get(name)
    if task is None:
        raise ConfigError(f"{what}: expected one of {task_names()} (the registered tasks), got {name!r}")
    if trainable and not task.trainable:
        raise ConfigError(f"{what}: task {name!r} has no training; use evaluate (fine-tunable tasks: "
                          f"{', '.join(task_names(trainable=True))})")
    return task


def primary_metric(task: str) -> str | None:
    """The registered primary metric of ``task`` (None for a task not registered here)."""
    return TASK_REGISTRY[task].primary_metric if task in TASK_REGISTRY else None


def non_score_metrics(task: str | None = None) -> frozenset[str]:
    """Metrics that are not percentages (left out of score charts): of ``task`` when it is registered, else of
    every registered task."""
    if task in TASK_REGISTRY:
        return TASK_REGISTRY[task].non_score_metrics
    return frozenset().union(*(t.non_score_metrics for t in TASK_REGISTRY.values()))


_HANDLERS = "amber_align.tasks.handlers"
register_task(Task("ner", "Named entity recognition (zero-shot)", "token-classification", "f1",
                   f"{_HANDLERS}:NerHandler", head="AutoModelForTokenClassification",
                   pipeline_tag="token-classification", labels=True))
register_task(Task("nli", "Natural language inference (zero-shot)", "text-classification", "accuracy",
                   f"{_HANDLERS}:NliHandler", head="AutoModelForSequenceClassification",
                   pipeline_tag="text-classification", labels=True))
register_task(Task("qa", "Question answering (zero-shot)", "question-answering", "f1", f"{_HANDLERS}:QaHandler",
                   head="AutoModelForQuestionAnswering", pipeline_tag="question-answering"))
register_task(Task("xsr", "Sentence retrieval (Tatoeba)", "sentence-similarity", "xx2en_p@1",
                   f"{_HANDLERS}:TatoebaHandler", dataset=("tatoeba", "Tatoeba")))
register_task(Task("bucc", "Bitext mining (BUCC 2018)", "sentence-similarity", "f1", f"{_HANDLERS}:BuccHandler",
                   dataset=("bucc18", "BUCC 2018"), non_score_metrics=frozenset({"threshold"})))

"""The settings of a ``compare.py`` run folder (``OUT/settings.json``): one folder holds the results of one setting,
so that finished units are never mixed with units made otherwise in one table; a task's own settings may still be
chosen when that task's stage starts (docs/results-e5.md stages its tasks)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from amber_align.io_utils import atomic_write_text
from amber_align.logging_utils import get_logger

__all__ = ["SETTINGS", "TASK_SETTINGS", "check_settings"]

logger = get_logger(__name__)

# The arguments that change a result: a run folder holds results of one setting only.
SETTINGS = ("model", "corpus", "max_pairs", "align_steps", "pairs_per_language", "align_lr", "align_seed",
            "align_languages", "control_languages", "xsr_layers", "aer_layer", "freeze_word_embeddings", "nli_lr",
            "nli_epochs", "nli_eval_examples", "ner_lr", "ner_epochs", "ner_train_examples", "qa_lr", "qa_epochs")
# A task's own settings change only that task's units: a staged run may choose them when the stage starts, i.e.
# while no result of the task exists yet (stage (b) of docs/results-e5.md set the NLI ones after stage (a) ran).
TASK_SETTINGS = {"nli": ("nli", "nli_continual"), "ner": ("ner", "ner_features"), "qa": ("qa",)}


def _settings_tasks(key: str) -> tuple[str, ...] | None:
    """The tasks a setting changes, or None when it changes every unit."""
    return TASK_SETTINGS.get(key.split("_", 1)[0])


def _has_results(out: Path, tasks: tuple[str, ...]) -> bool:
    return any(any((out / "results").glob(f"*/{task}_seed*.json")) or any((out / "results").glob(f"*/{task}.json"))
               for task in tasks)


def check_settings(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Record the result-changing arguments in ``out/settings.json``; refuse to resume a folder made with others
    (its finished units would be mixed with new ones in one table). A task's own settings (``--nli_*``, ``--ner_*``,
    ``--qa_*``) may change while that task has no result in the folder: they are recorded with a log line."""
    current = {key: str(getattr(args, key)) for key in SETTINGS}
    path = args.out / "settings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        stored = json.loads(path.read_text())
        changed = {k: (stored.get(k), v) for k, v in current.items() if stored.get(k) != v}
        blocking = {k: c for k, c in changed.items()
                    if (tasks := _settings_tasks(k)) is None or _has_results(args.out, tasks)}
        if blocking:
            parser.error(f"{path} was written with other settings: "
                         + ", ".join(f"--{k} {old!r} there, {new!r} now" for k, (old, new) in blocking.items())
                         + "; use another --out or the same arguments")
        if changed:
            logger.info("%s: %s set before their task's first result", path,
                        ", ".join(f"--{k} {old!r} -> {new!r}" for k, (old, new) in changed.items()))
            atomic_write_text(path, json.dumps(current, indent=1) + "\n")
        return
    atomic_write_text(path, json.dumps(current, indent=1) + "\n")

"""One run per output folder: ``align`` and ``finetune`` claim their ``output_dir`` before any work.

:func:`claim_output_dir` is held for the whole run:

- The lock (``amber_align.folder_lock.FolderLock``) belongs to the launch, not to a process: the global main
  process (``process_index == 0``, on one machine or several) takes it and every rank of the same launch writes
  under it. Its outcome is broadcast to the other ranks, so a refused launch exits on every rank with the same one
  line (naming the holder's pid and start time), and none waits at a collective for a main process that left.
- The run's settings (the config's own fields and the optimisation fields of ``TrainingArguments``; not its length,
  logging, saving or evaluation fields) are recorded in ``output_dir/.amber-align-run.json``. A fresh run (no
  ``resume_from_checkpoint``) into a folder that holds ``checkpoint-N`` folders is refused unless
  ``overwrite_output_dir: true``, which removes the old checkpoints and the old model's ``config.json`` first (so
  the old run's files never mix with the new one's, and the folder does not look complete while it trains).
  ``resume_from_checkpoint: true`` is refused when the checkpoints' run had other settings (it would pick a stale
  run's checkpoint); an explicit checkpoint folder is taken as given, with a warning.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from transformers import TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from amber_align.errors import ConfigError
from amber_align.folder_lock import FolderLock
from amber_align.io_utils import atomic_write_text
from amber_align.logging_utils import get_logger

__all__ = ["claim_output_dir", "run_settings", "SETTINGS_FILE"]

logger = get_logger(__name__)

#: the settings of the run that owns the folder's checkpoints
SETTINGS_FILE = ".amber-align-run.json"

#: TrainingArguments fields that make two runs different runs (their length, logging and saving may differ)
_TRAINING_FIELDS = ("learning_rate", "seed", "data_seed", "per_device_train_batch_size",
                    "gradient_accumulation_steps", "weight_decay", "lr_scheduler_type", "warmup_steps", "optim",
                    "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm")
#: own fields that a resumed run may change (caches, evaluation, speed settings, this module's own)
_FREE_FIELDS = frozenset({
    "resume_from_checkpoint", "overwrite_output_dir", "auto_bf16", "teacher_bf16", "teacher_cache",
    "alignment_cache_dir", "streaming_buffer_size", "allow_pickle_weights", "eval_data", "languages", "data_dir",
    "max_eval_examples", "bucc_dev_split", "bucc_eval_split", "bucc_k", "n_best_size", "max_answer_length",
    "qa_normalization", "results_dir", "save_model", "run_name_in_results", "sentence_transformers_modules",
    "save_dtype"})


def run_settings(config: Any) -> dict[str, Any]:
    """The settings that identify ``config``'s run, as JSON values (``str`` for anything else)."""
    base = {f.name for f in dataclasses.fields(TrainingArguments)}
    names = [f.name for f in dataclasses.fields(config) if f.name not in base and f.name not in _FREE_FIELDS]
    names += [name for name in _TRAINING_FIELDS if hasattr(config, name)]
    return json.loads(json.dumps({name: getattr(config, name) for name in sorted(names)}, default=str))


def _checkpoints(folder: Path) -> list[Path]:
    return sorted((p for p in folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*") if p.is_dir()),
                  key=lambda p: (len(p.name), p.name))


def _read_settings(folder: Path) -> dict[str, Any] | None:
    path = folder / SETTINGS_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data["settings"] if isinstance(data.get("settings"), dict) else None
    except (OSError, ValueError, AttributeError):
        logger.warning(f"{path}: cannot be read; the checkpoints' settings are not checked")
        return None


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def _check_folder(config: Any) -> bool:
    """The checks of the module docstring, on the main process under the lock; whether it wrote the settings
    file."""
    folder = Path(config.output_dir)
    settings = run_settings(config)
    resume = config.resume_from_checkpoint
    checkpoints = _checkpoints(folder)
    overwrite = bool(getattr(config, "overwrite_output_dir", False))
    if resume in (None, False, "") and checkpoints:
        if not overwrite:
            names = ", ".join(p.name for p in checkpoints[-3:])
            raise ConfigError(
                f"output_dir: {str(folder)!r} already holds another run's checkpoints ({names}); resume it with "
                "--resume_from_checkpoint true, replace it with --overwrite_output_dir true, or give another "
                "output_dir")
        logger.warning(f"overwrite_output_dir: removing {len(checkpoints)} checkpoint(s) of the previous run in "
                       f"{folder}")
        for path in [*checkpoints, folder / ".incomplete-checkpoints", folder / ".incomplete-model"]:
            shutil.rmtree(path, ignore_errors=True)
        (folder / "config.json").unlink(missing_ok=True)  # the old model must not look like this run's
    elif resume not in (None, False, ""):
        old = _read_settings(folder)
        changed = _differences(old, settings) if old is not None else []
        if changed and (resume is True or str(resume).lower() == "true"):
            raise ConfigError(
                f"resume_from_checkpoint: the checkpoints in {str(folder)!r} are from a run with other settings "
                f"({'; '.join(changed[:4])}); resume with that run's settings, give --overwrite_output_dir true "
                "(without --resume_from_checkpoint) to start over, or another output_dir")
        if changed:
            logger.warning(f"resuming {resume} with other settings than its run's: {'; '.join(changed)}")
            return False  # the folder's record stays that of the run whose checkpoints are there
        if old is not None:
            return False
    record = {"settings": settings, "config_class": type(config).__name__}
    atomic_write_text(folder / SETTINGS_FILE, json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    return True


def _clean_up(folder: Path, created: bool) -> None:
    """After a run that failed before writing anything: remove its settings file, and the folder it created."""
    if {p.name for p in folder.iterdir()} <= {SETTINGS_FILE}:
        (folder / SETTINGS_FILE).unlink(missing_ok=True)
        if created:
            with contextlib.suppress(OSError):
                folder.rmdir()


def _from_main(value: str | None) -> str | None:
    """``value`` of the global main process, on every rank (as it is without a process group)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@contextlib.contextmanager
def claim_output_dir(config: Any, command: str) -> Iterator[None]:
    """Hold ``config.output_dir`` for the run (module docstring); ``ConfigError`` on every rank when refused. A
    run that fails before writing anything into the folder leaves none of this module's files (nor the folder,
    if it made it)."""
    lock, wrote, folder = None, False, Path(config.output_dir)
    created = not folder.exists()
    error: ConfigError | None = None
    if config.process_index == 0:
        lock = FolderLock(folder, command)
        try:
            lock.acquire()
            wrote = _check_folder(config)
        except ConfigError as err:
            error = err
    message = _from_main(str(error) if error is not None else None)
    failed = True
    try:
        if error is not None:
            raise error
        if message is not None:
            raise ConfigError(message)
        yield
        failed = False
    finally:
        if lock is not None and lock.held:
            lock.release()
            if failed and wrote:
                _clean_up(folder, created)

"""The ``align`` job as a Python function: parallel data → word alignments → encoded pairs → trainer → checkpoint.

``run_alignment(config)`` is what ``amber-align align`` and ``amber-align demo`` call; ``build_alignment_datasets``
is the data half, usable on its own (e.g. to inspect what the trainer will see).

Interrupted runs: checkpoints are written atomically (``amber_align.trainers.common.AtomicCheckpoints``), the
final model is saved into a staging folder and moved into ``output_dir`` with ``config.json`` last
(:func:`save_model_atomically`), and ``resume_from_checkpoint: true`` picks the newest complete checkpoint
(:func:`resolve_checkpoint`). A run killed at any point therefore leaves either a complete model or a folder that
does not load as one, and resuming it reproduces the uninterrupted run (tests/test_kill_resume.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

from transformers import set_seed
from transformers import TrainerState
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from amber_align.data.prepare import build_alignment_datasets, default_alignment_cache, ensure_links
from amber_align.errors import ConfigError, DataFormatError, TrainingInterruptedError
from amber_align.io_utils import move_files_into
from amber_align.logging_utils import get_logger
from amber_align.modeling import check_safetensors, load_tokenizer
from amber_align.tokenization import check_tokenizer_matches_model
from amber_align.trainers import AlignmentConfig, AlignmentTrainer, get_method
from amber_align.trainers.run_folder import claim_output_dir

__all__ = ["build_alignment_datasets", "ensure_links", "run_alignment", "default_alignment_cache", "resolve_checkpoint",
           "save_model_atomically"]

logger = get_logger(__name__)


def run_alignment(
    config: AlignmentConfig, *, model: Any = None, tokenizer: Any = None, teacher: Any = None
) -> AlignmentTrainer:
    """Align ``config.model_name_or_path`` (or ``model``) on ``config.train_data``; save to ``config.output_dir``.

    The output directory holds a plain encoder (``BertModel`` / ``XLMRobertaModel`` config and safetensors) and the
    tokenizer, loadable with ``AutoModel`` / ``AutoTokenizer``. Returns the trainer (``trainer.state.log_history``
    has every logged loss part). The run holds ``output_dir`` (``claim_output_dir``): a second run into it is refused.
    """
    if config.model_name_or_path is None and model is None:
        raise ConfigError("model_name_or_path: no model given (a Hub id or a local directory)")
    with claim_output_dir(config, "align"):  # one run per output_dir (trainers/run_folder.py)
        return _run_alignment(config, model, tokenizer, teacher)


def _run_alignment(config: AlignmentConfig, model: Any, tokenizer: Any, teacher: Any) -> AlignmentTrainer:
    """The body of :func:`run_alignment`, run while the output folder is held."""
    set_seed(config.seed)
    name = config.tokenizer_name_or_path or config.model_name_or_path
    if tokenizer is None:
        tokenizer = load_tokenizer(name)
    # Data first: a malformed corpus fails in seconds, before a large model is loaded.
    train, evaluation = build_alignment_datasets(config, tokenizer)
    spec = get_method(config.method)
    if model is None:
        model = spec.trainer_class.load_model(config)
    check_tokenizer_matches_model(tokenizer, model, name=name)
    what = (f"streams of {', '.join(train.pairs)}" if hasattr(train, "num_pairs")
            else f"{len(train)} pairs ({', '.join(sorted(set(train['pair'])))})")
    logger.info(f"training on {what}" + (f"; {len(evaluation)} held out" if evaluation is not None else ""))
    resume = resolve_checkpoint(config.resume_from_checkpoint, config.output_dir)
    trainer = spec.trainer_class(model=model, args=config, train_dataset=train, eval_dataset=evaluation,
                                 processing_class=tokenizer, teacher=teacher)
    finished = False
    if resume is not None:
        step, own_max = _checkpoint_steps(resume)
        logger.info(f"resuming from {resume} (step {step} of its run's {own_max})")
        finished = _training_finished(resume, step, own_max, config.max_steps)
    if finished:
        # killed during the final save: the Trainer would train one step too many when resumed at max_steps
        logger.info(f"{resume}: training had finished; writing the final model from this checkpoint")
        trainer._load_from_checkpoint(resume)
        trainer.state = TrainerState.load_from_json(str(Path(resume) / "trainer_state.json"))
    else:
        trainer.train(resume_from_checkpoint=resume)
    if trainer.state.global_step < trainer.state.max_steps:
        last = resolve_checkpoint(True, config.output_dir, required=False)
        raise TrainingInterruptedError(
            f"training stopped at step {trainer.state.global_step} of {trainer.state.max_steps} (SIGTERM with "
            "enable_jit_checkpoint, or a callback): no final model was written to "
            f"{config.output_dir}" + (f"; resume with --resume_from_checkpoint {last}" if last else ""))
    save_model_atomically(trainer, config.output_dir)
    if evaluation is not None:
        metrics = trainer.evaluate()
        trainer.save_metrics("eval", metrics)
    return trainer


_CHECKPOINT = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
_CHECKPOINT_FILES = ("trainer_state.json",)


def _missing_in_checkpoint(folder: Path) -> list[str]:
    missing = [name for name in _CHECKPOINT_FILES if not (folder / name).is_file()]
    if (folder / "checkpoint-is-incomplete.txt").exists():  # the marker of transformers' JIT checkpoints
        missing.append("end of the save (checkpoint-is-incomplete.txt is still there)")
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
        missing.append("model weights (model.safetensors)")
    return missing


def resolve_checkpoint(value: str | bool | None, output_dir: str | Path, *, required: bool = True) -> str | None:
    """The checkpoint folder to resume from: ``value`` as given (a folder), or with ``True`` (``--resume_from_checkpoint
    true``) the newest complete ``checkpoint-N`` in ``output_dir``; None for None/False.

    Complete means it holds ``trainer_state.json`` (the Trainer writes it last) and the weights. An incomplete
    folder (written by a tool without atomic checkpoints and killed during the save) is skipped with a warning when
    looking for the newest, and a ``ConfigError`` naming what is missing when given explicitly. ``required``:
    with ``True`` and no complete checkpoint, raise ``ConfigError`` (else return None).
    """
    if value is None or value is False or value == "":
        return None
    if value is True or (isinstance(value, str) and value.lower() == "true"):
        root = Path(output_dir)
        found = sorted(((int(m.group(1)), p) for p in (root.iterdir() if root.is_dir() else [])
                        if p.is_dir() and (m := _CHECKPOINT.match(p.name))), reverse=True)
        for _, folder in found:
            missing = _missing_in_checkpoint(folder)
            if not missing:
                _check_checkpoint_files(folder)
                return str(folder)
            logger.warning(f"{folder}: incomplete checkpoint (no {', '.join(missing)}); skipped")
        if required:
            raise ConfigError(f"resume_from_checkpoint: no complete checkpoint-N folder in {str(root)!r} "
                              f"({len(found)} checkpoint folder(s) found)" + _multi_node_hint())
        return None
    folder = Path(value)
    if not folder.is_dir():
        raise ConfigError(f"resume_from_checkpoint: {str(folder)!r} is not a folder (give a checkpoint-N folder, "
                          "or true for the newest one in output_dir)")
    missing = _missing_in_checkpoint(folder)
    if missing:
        raise ConfigError(f"resume_from_checkpoint: {str(folder)!r} is an incomplete checkpoint: no "
                          f"{', '.join(missing)}")
    _check_checkpoint_files(folder)
    return str(folder)


def _multi_node_hint() -> str:
    """On a machine other than the first of a multi-node launch, why its checkpoint may be missing: checkpoints
    are written by the global main process only, so resuming on several machines needs ``output_dir`` on a disk
    they share (issue 25 item 4; docs/distributed.md "Resuming on several machines")."""
    try:
        node = int(os.environ.get("GROUP_RANK") or os.environ.get("NODE_RANK") or 0)
        nodes = int(os.environ.get("WORLD_SIZE", "1")) // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return ""
    if node == 0 or nodes <= 1:
        return ""
    return (f"; this is machine {node} of {nodes}: checkpoints are written by the first machine only, so a "
            "multi-node resume needs output_dir on a disk every machine shares (the same path on each)")


def _check_checkpoint_files(folder: Path) -> None:
    """The optimizer, scheduler, scaler and RNG files (``torch.save`` zip archives) and the weights of a checkpoint
    are whole: a truncated ``optimizer.pt`` would fail deep inside ``torch.load`` with a traceback. Reads only
    each archive's directory and each safetensors header."""
    for path in sorted([*folder.glob("*.pt"), *folder.glob("*.pth")]):
        try:
            with zipfile.ZipFile(path) as archive:
                archive.namelist()
        except (zipfile.BadZipFile, OSError) as err:
            raise DataFormatError(f"truncated or corrupt checkpoint file ({err}); resume from an earlier "
                                  f"checkpoint-N, or delete {folder.name} to resume from the one before it",
                                  path=path) from None
    check_safetensors(folder)


def _checkpoint_steps(checkpoint: str) -> tuple[int, int]:
    """``(global_step, max_steps)`` of a checkpoint's ``trainer_state.json``."""
    path = Path(checkpoint) / "trainer_state.json"
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        return int(state["global_step"]), int(state.get("max_steps") or 0)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"resume_from_checkpoint: {str(path)!r} cannot be read ({type(err).__name__}: {err})") \
            from None


def _training_finished(checkpoint: str, step: int, own_max: int, max_steps: int) -> bool:
    """Whether ``checkpoint`` is its run's last step (and the config asks for no other length): then the final
    model is written from it without training. A checkpoint past a smaller ``max_steps`` of the config is a
    ``ConfigError`` naming both (resuming it could only stop at once and suggest the same resume again)."""
    target = max_steps if max_steps and max_steps > 0 else own_max
    if target > 0 and step > target or (step == target and own_max and own_max != target):
        raise ConfigError(f"resume_from_checkpoint: {checkpoint} is at step {step} of a {own_max}-step run, "
                          f"but max_steps is {max_steps}: give max_steps >= {step + 1} to train on (e.g. "
                          f"{max(own_max, step + 1)}, the run's own), or a fresh output_dir to start over")
    return target > 0 and step >= target


def save_model_atomically(trainer: Any, output_dir: str | Path, *, push: bool = True) -> None:
    """``trainer.save_model`` into ``output_dir/.incomplete-model``, then the files moved into ``output_dir`` with
    ``config.json`` last (``amber_align.io_utils.move_files_into``): a save that is killed half-way leaves no
    ``config.json``, so the folder never loads as a complete model. Every process takes part (as in
    ``save_model``); the main process moves the files. The Hub push, if configured (and ``push``), follows the
    move; ``finetune`` passes ``push=False`` and pushes once its results are in the card."""
    output_dir = Path(output_dir)
    staging = output_dir / ".incomplete-model"
    args = trainer.args
    if args.should_save:
        shutil.rmtree(staging, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(staging), _internal_call=True)
    trainer.accelerator.wait_for_everyone()
    if args.should_save:
        move_files_into(staging, output_dir, last="config.json")
    trainer.accelerator.wait_for_everyone()
    if push and args.push_to_hub:
        trainer.push_to_hub(commit_message="Model save", revision=args.hub_revision)

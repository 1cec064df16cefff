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
import re
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import datasets
from transformers import set_seed
from transformers import TrainerState
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from amber_align.data.encoding import encode_aligned_pairs, filter_links, orient_pairs
from amber_align.data.parallel import ParallelSource, load_parallel, read_eval_sentences
from amber_align.errors import ConfigError, TrainingInterruptedError
from amber_align.io_utils import move_files_into
from amber_align.logging_utils import get_logger
from amber_align.modeling import load_tokenizer
from amber_align.tokenization import check_tokenizer_matches_model
from amber_align.trainers import AlignmentConfig, AlignmentTrainer, get_method

__all__ = ["build_alignment_datasets", "ensure_links", "run_alignment", "default_alignment_cache", "resolve_checkpoint",
           "save_model_atomically"]

logger = get_logger(__name__)


def default_alignment_cache() -> Path:
    """``~/.cache/amber_align/alignments`` (under ``$XDG_CACHE_HOME`` when set)."""
    import os

    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "amber_align" / "alignments"


def ensure_links(dataset: datasets.Dataset, *, symmetrization: str, cache_dir: str | Path | None) -> datasets.Dataset:
    """Fill ``links`` for rows whose source gave no alignments, by running eflomal per language pair (cached).

    Without the ``align`` extra this raises ``MissingDependencyError`` naming ``amber-align word-align`` and the
    extra to install.
    """
    if "has_links" not in dataset.column_names or all(dataset["has_links"]):
        return dataset
    from amber_align.data.eflomal_aligner import cached_word_align

    cache = Path(cache_dir) if cache_dir else default_alignment_cache()
    by_pair: dict[str, list[int]] = defaultdict(list)
    for i, (pair, has) in enumerate(zip(dataset["pair"], dataset["has_links"])):
        if not has:
            by_pair[pair].append(i)
    links = list(dataset["links"])
    for pair, rows in sorted(by_pair.items()):
        sub = dataset.select(rows)
        logger.info(f"{pair}: no alignments given for {len(rows)} pairs; running eflomal ({symmetrization})")
        computed = cached_word_align(sub["src_words"], sub["tgt_words"], cache_dir=cache, method=symmetrization)
        for r, lk in zip(rows, computed):
            links[r] = [list(link) for link in lk]
    dataset = dataset.remove_columns("links").add_column("links", links)
    return dataset


def _prepare(sources: list[dict[str, Any]], config: AlignmentConfig, tokenizer: Any,
             dedup: set[str] | None) -> datasets.Dataset:
    parsed = [ParallelSource.from_dict(s) for s in sources]
    ds = load_parallel(parsed, max_words=config.max_words, dedup_texts=dedup, pretokenized=config.pretokenized)
    if config.needs_word_links():
        ds = ensure_links(ds, symmetrization=config.symmetrization, cache_dir=config.alignment_cache_dir)
    ds = orient_pairs(ds, config.anchor_language)
    ds = filter_links(ds, one_to_one_only=config.one_to_one, drop_identical_words=config.drop_identical_links)
    return encode_aligned_pairs(ds, tokenizer, max_length=config.max_length,
                                special_token_links=config.special_token_links)


def build_alignment_datasets(
    config: AlignmentConfig, tokenizer: Any
) -> tuple[Any, datasets.Dataset | None]:
    """Train (and held-out) datasets of encoded, oriented, linked pairs for ``config``; with ``streaming`` the train
    half is an ``amber_align.data.streaming.PairStreams`` (read lazily) instead of a ``datasets.Dataset``."""
    if not config.train_data:
        raise ConfigError("train_data: no parallel sources given (expected a list of source mappings)")
    dedup = read_eval_sentences(config.dedup_eval_files) if config.dedup_eval_files else None
    if getattr(config, "streaming", False):  # lazily read streams; eval_data (small) stays in memory
        from amber_align.data.streaming import build_streaming_dataset

        streams = build_streaming_dataset(config, tokenizer, dedup=dedup)
        return streams, _prepare(config.eval_data, config, tokenizer, dedup) if config.eval_data else None
    train = _prepare(config.train_data, config, tokenizer, dedup)
    evaluation = None
    if config.eval_data:
        evaluation = _prepare(config.eval_data, config, tokenizer, dedup)
    elif config.eval_split_size:
        size = config.eval_split_size
        test_size = int(size) if size >= 1 else size
        split = train.train_test_split(test_size=test_size, seed=config.seed, shuffle=True)
        train, evaluation = split["train"], split["test"]
    if len(train) == 0:
        raise ConfigError("train_data: no pairs left after filtering (see the skip counts logged above)")
    return train, evaluation


def run_alignment(
    config: AlignmentConfig, *, model: Any = None, tokenizer: Any = None, teacher: Any = None
) -> AlignmentTrainer:
    """Align ``config.model_name_or_path`` (or ``model``) on ``config.train_data``; save to ``config.output_dir``.

    The output directory holds a plain encoder (``BertModel`` / ``XLMRobertaModel`` config and safetensors) and the
    tokenizer, loadable with ``AutoModel`` / ``AutoTokenizer``. Returns the trainer (``trainer.state.log_history``
    has every logged loss part).
    """
    if config.model_name_or_path is None and model is None:
        raise ConfigError("model_name_or_path: no model given (a Hub id or a local directory)")
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
    if resume is not None and _training_finished(resume, config.max_steps):
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
                return str(folder)
            logger.warning(f"{folder}: incomplete checkpoint (no {', '.join(missing)}); skipped")
        if required:
            raise ConfigError(f"resume_from_checkpoint: no complete checkpoint-N folder in {str(root)!r} "
                              f"({len(found)} checkpoint folder(s) found)")
        return None
    folder = Path(value)
    if not folder.is_dir():
        raise ConfigError(f"resume_from_checkpoint: {str(folder)!r} is not a folder (give a checkpoint-N folder, "
                          "or true for the newest one in output_dir)")
    missing = _missing_in_checkpoint(folder)
    if missing:
        raise ConfigError(f"resume_from_checkpoint: {str(folder)!r} is an incomplete checkpoint: no "
                          f"{', '.join(missing)}")
    return str(folder)


def _training_finished(checkpoint: str, max_steps: int) -> bool:
    """Whether ``checkpoint`` is at or past the last step (``max_steps`` of the config, else its own)."""
    path = Path(checkpoint) / "trainer_state.json"
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        step, own_max = int(state["global_step"]), int(state.get("max_steps") or 0)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"resume_from_checkpoint: {str(path)!r} cannot be read ({type(err).__name__}: {err})") \
            from None
    target = max_steps if max_steps and max_steps > 0 else own_max
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

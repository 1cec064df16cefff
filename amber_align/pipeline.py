"""The ``align`` job as a Python function: parallel data → word alignments → encoded pairs → trainer → checkpoint.

``run_alignment(config)`` is what ``amber-align align`` and ``amber-align demo`` call; ``build_alignment_datasets``
is the data half, usable on its own (e.g. to inspect what the trainer will see).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import datasets
from transformers import set_seed

from amber_align.data.encoding import encode_aligned_pairs, filter_links, orient_pairs
from amber_align.data.parallel import ParallelSource, load_parallel, read_eval_sentences
from amber_align.errors import ConfigError
from amber_align.logging_utils import get_logger
from amber_align.modeling import load_tokenizer
from amber_align.tokenization import check_tokenizer_matches_model
from amber_align.trainers import AlignmentConfig, AlignmentTrainer, get_method

__all__ = ["build_alignment_datasets", "ensure_links", "run_alignment", "default_alignment_cache"]

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
) -> tuple[datasets.Dataset, datasets.Dataset | None]:
    """Train (and held-out) datasets of encoded, oriented, linked pairs for ``config``."""
    if not config.train_data:
        raise ConfigError("train_data: no parallel sources given (expected a list of source mappings)")
    dedup = read_eval_sentences(config.dedup_eval_files) if config.dedup_eval_files else None
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
    logger.info(f"training on {len(train)} pairs ({', '.join(sorted(set(train['pair'])))})"
                + (f"; {len(evaluation)} held out" if evaluation is not None else ""))
    trainer = spec.trainer_class(model=model, args=config, train_dataset=train, eval_dataset=evaluation,
                                 processing_class=tokenizer, teacher=teacher)
    trainer.train(resume_from_checkpoint=config.resume_from_checkpoint)
    trainer.save_model()
    if evaluation is not None:
        metrics = trainer.evaluate()
        trainer.save_metrics("eval", metrics)
    return trainer

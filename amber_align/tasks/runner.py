"""Fine-tune on English, evaluate every target language in one call (``amber-align finetune`` / ``evaluate``).

``run_finetune`` trains a stock ``AutoModelFor{TokenClassification,SequenceClassification,QuestionAnswering}``
head on any encoder (aligned or not) with the plain ``transformers.Trainer``, saves it, then evaluates every
language of ``eval_data`` with the same Trainer (so ``accelerate launch`` shards evaluation too).
``run_evaluate`` does the evaluation alone: a fine-tuned task model for ner/nli/qa, any encoder for xsr/bucc.
What each task does is its handler's (``amber_align.tasks.handlers``), found in the task registry
(``amber_align.tasks.registry``); this module only runs them.
Both log ``eval_{task}_{lang}_{metric}`` plus the macro average ``eval_{task}_avg_{metric}`` (the training
language left out) and write ``results.json``, ``results.md`` and ``{task}.png`` into ``output_dir``.
"""

from __future__ import annotations

import time
from typing import Any

import datasets
from transformers import Trainer

from amber_align.errors import ConfigError
from amber_align.hub.mixin import ModelCardMixin
from amber_align.logging_utils import get_logger
from amber_align.modeling import load_encoder, load_task_model, load_tokenizer, max_sequence_length
from amber_align.tasks.config import TaskConfig
from amber_align.tasks.handlers import labels_mean_cross_entropy
from amber_align.tasks.registry import get_task
from amber_align.tokenization import check_tokenizer_matches_model
from amber_align.trainers.common import SharedTrainerMixin
from amber_align.trainers.run_folder import claim_output_dir

__all__ = ["TaskTrainer", "labels_mean_cross_entropy", "run_finetune", "run_evaluate", "load_task_data",
           "evaluate_task_languages", "continual_pairs"]

logger = get_logger(__name__)


def load_task_data(task: str, source: Any, *, lang: str | None = None,
                   max_examples: int | None = None) -> datasets.Dataset:
    """Read one task source (path, ``{file, ...}`` or ``{hub, name, split}``) with the task's reader."""
    if source is None:
        raise ConfigError(f"{task}: no data given (train_data / eval_data entry is empty)")
    ds = get_task(task).load_handler().read(source, lang)
    if max_examples is not None and len(ds) > max_examples:
        ds = ds.select(range(max_examples))
    return ds


class TaskTrainer(ModelCardMixin, SharedTrainerMixin, Trainer):
    """The ``transformers.Trainer`` of ``finetune`` with what every trainer of the package shares
    (``amber_align.trainers.common``): the task-model card at every save, atomic checkpoints, and a stop on a
    non-finite loss (named ``task``) or gradient before it reaches the weights."""

    card_kind = "task_model"

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        out = super().compute_loss(model, inputs, return_outputs=return_outputs,
                                   num_items_in_batch=num_items_in_batch)
        if model.training:
            self.check_finite_parts({"task": out[0] if return_outputs else out})
        return out


def _source_name(source: Any) -> str:
    if isinstance(source, dict):
        return str(source.get("file") or source.get("hub") or source)
    return str(source)


class _TaskSpec:
    """One task's handler with the run's tokenizer and label list, shared by training and evaluation."""

    def __init__(self, config: TaskConfig, tokenizer: Any, label_list: list[str] | None, handler: Any = None):
        self.config, self.tokenizer, self.task = config, tokenizer, config.task
        self.handler = handler or get_task(config.task).load_handler()
        self.label_list = label_list
        self.label2id = {label: i for i, label in enumerate(label_list)} if label_list else {}

    def collator(self) -> Any:
        return self.handler.collator(self.tokenizer)

    def train_features(self, ds: datasets.Dataset, source: str) -> datasets.Dataset:
        return self.handler.train_features(ds, self.tokenizer, self.label2id, self.config, source)

    def evaluate(self, trainer: Trainer, ds: datasets.Dataset, lang: str, source: str) -> dict[str, float]:
        return self.handler.evaluate(trainer, ds, lang, source, self.tokenizer, self.label_list, self.config)


def _load_eval_sets(config: TaskConfig) -> dict[str, datasets.Dataset]:
    return {lang: load_task_data(config.task, config.eval_data[lang], lang=lang, max_examples=config.max_eval_examples)
            for lang in config.eval_languages()}


def evaluate_task_languages(trainer: Trainer, spec: _TaskSpec, config: TaskConfig,
                            counts: dict[str, int] | None = None,
                            eval_sets: dict[str, datasets.Dataset] | None = None) -> dict[str, dict[str, float]]:
    """Evaluate every language of ``config.eval_data`` (read here unless ``eval_sets`` holds them already);
    returns ``{lang: {metric: value}}`` (percent) and fills ``counts`` (when given) with the examples per language."""
    eval_sets = _load_eval_sets(config) if eval_sets is None else eval_sets
    per_lang: dict[str, dict[str, float]] = {}
    for lang in config.eval_languages():
        source = config.eval_data[lang]
        ds = eval_sets[lang]
        if counts is not None:
            counts[lang] = len(ds)
        per_lang[lang] = spec.evaluate(trainer, ds, lang, _source_name(source))
        logger.info("%s %s (%d examples): %s", config.task, lang, len(ds),
                    ", ".join(f"{k} {v:.1f}" for k, v in per_lang[lang].items()))
    return per_lang


def _report(config: TaskConfig, per_lang: dict[str, dict[str, float]], trainer: Trainer | None,
            meta: dict[str, Any]) -> dict[str, Any]:
    from amber_align.tasks.results import flatten_metrics, write_results

    flat = flatten_metrics(config.task, per_lang, exclude_from_average=(config.train_language,))
    if trainer is not None:
        trainer.log(flat)
    paths: dict[str, Any] = {}
    if trainer is None or trainer.is_world_process_zero():
        paths = write_results(config.results_dir or config.output_dir, config.task, per_lang, meta=meta)
    history = list(trainer.state.log_history) if trainer is not None else []
    return {"metrics": flat, "per_language": per_lang, "paths": paths, "log_history": history}


def _meta(config: TaskConfig, started: float, **extra: Any) -> dict[str, Any]:
    return {"model": config.run_name_in_results or config.model_name_or_path, "task": config.task,
            "train_language": config.train_language, "seconds": round(time.time() - started, 1), **extra}


def _tokenizer_and_check(config: TaskConfig, model: Any, handler: Any = None) -> Any:
    """The tokenizer, checked against the model; for ner/nli/qa also ``max_seq_length`` against the model's
    position embeddings (a longer input would fail mid-training with a tensor size mismatch)."""
    name = config.tokenizer_name_or_path or config.model_name_or_path
    tokenizer = load_tokenizer(name)
    check_tokenizer_matches_model(tokenizer, model, name=name)
    limit = max_sequence_length(model.config)
    task = get_task(config.task)
    if task.trainable and config.max_seq_length > limit:
        handler = handler or task.load_handler()
        raise ConfigError(
            f"max_seq_length: {config.max_seq_length} is longer than model {config.model_name_or_path} accepts "
            f"({limit} positions, config.max_position_embeddings={model.config.max_position_embeddings}); "
            f"expected max_seq_length <= {limit}" + handler.length_hint(config))
    return tokenizer


def run_finetune(config: TaskConfig) -> dict[str, Any]:
    """Train the task head on ``train_data`` (English), save it, evaluate every language; returns the report."""
    handler = get_task(config.task, trainable=True, what="finetune").load_handler()
    if not config.model_name_or_path:
        raise ConfigError("finetune: model_name_or_path is required")
    with claim_output_dir(config, "finetune"):  # one run per output_dir
        return _run_finetune(config, handler)


def _run_finetune(config: TaskConfig, handler: Any) -> dict[str, Any]:
    """The body of :func:`run_finetune`, run while the output folder is held."""
    started = time.time()
    train = load_task_data(config.task, config.train_data, lang=config.train_language,
                           max_examples=config.max_train_examples)
    eval_sets = _load_eval_sets(config)  # read now: a bad evaluation file fails before hours of training
    label_list, kwargs = handler.training_labels(config, train), {}
    handler.check_eval_labels(config, label_list, eval_sets,
                              {lang: _source_name(config.eval_data[lang]) for lang in eval_sets})
    if label_list:
        kwargs = {"num_labels": len(label_list), "id2label": dict(enumerate(label_list)),
                  "label2id": {label: i for i, label in enumerate(label_list)}}
    model = load_task_model(config.task, config.model_name_or_path,
                            allow_pickle_weights=config.allow_pickle_weights, **kwargs)
    tokenizer = _tokenizer_and_check(config, model, handler)
    spec = _TaskSpec(config, tokenizer, label_list, handler)
    features = spec.train_features(train, _source_name(config.train_data))
    trainer_kwargs = dict(model=model, args=config, train_dataset=features, data_collator=spec.collator(),
                          processing_class=tokenizer)
    if config.continual_alignment:
        trainer = _continual_trainer(config, tokenizer, trainer_kwargs)
    else:
        trainer = TaskTrainer(**trainer_kwargs, compute_loss_func=handler.compute_loss_func)
    from amber_align.pipeline import resolve_checkpoint, save_model_atomically

    trainer.train(resume_from_checkpoint=resolve_checkpoint(config.resume_from_checkpoint, config.output_dir))
    if config.save_model:  # atomic; with push_to_hub the push waits for the results below (one upload, full card)
        save_model_atomically(trainer, config.output_dir, push=False)
    counts: dict[str, int] = {}
    per_lang = evaluate_task_languages(trainer, spec, config, counts, eval_sets)
    _warn_if_nothing_learned(config, per_lang)
    report = _report(config, per_lang, trainer, _meta(config, started, train_examples=len(train),
                                                      train_steps=trainer.state.global_step, eval_examples=counts,
                                                      continual_alignment=config.continual_alignment))
    if config.save_model:  # the card again, now with the per-language results in model-index
        trainer.write_model_card(config.output_dir)
        if config.push_to_hub:
            trainer.push_to_hub(commit_message="Fine-tuned model with zero-shot evaluation results")
    return report


def _warn_if_nothing_learned(config: TaskConfig, per_lang: dict[str, dict[str, float]]) -> None:
    """A fine-tune whose entity F1 on its own training language is 0 learned nothing: say so (it finished
    quietly, and the zero-shot numbers of such a head mean nothing)."""
    own = per_lang.get(config.train_language, {})
    if config.task == "ner" and own.get("f1") == 0:
        logger.warning(f"finetune ner: entity F1 on {config.train_language} (the training language) is 0 after "
                       f"{config.max_steps if config.max_steps > 0 else config.num_train_epochs} "
                       f"{'steps' if config.max_steps > 0 else 'epochs'}: the head predicts no entity right; train "
                       "longer, check the learning rate and the labels; the other languages' scores mean nothing")


def continual_pairs(config: TaskConfig, tokenizer: Any) -> datasets.Dataset:
    """The pool of aligned pairs for continual learning: ``continual_data`` read, linked (eflomal when links are
    missing) and encoded as for ``amber-align align``, then ``continual_pool_size`` pairs drawn with the seed."""
    from amber_align.arguments import ParallelDataArguments
    from amber_align.config_io import build_config
    from amber_align.data.prepare import build_alignment_datasets

    data = build_config({**config.continual_options, "train_data": config.continual_data, "seed": config.seed},
                        source="continual_options", config_class=ParallelDataArguments)
    pairs, _ = build_alignment_datasets(data, tokenizer)
    if len(pairs) > config.continual_pool_size:
        pairs = pairs.shuffle(seed=config.seed).select(range(config.continual_pool_size))
    logger.info("continual learning: a pool of %d aligned pairs, %d drawn per step", len(pairs),
                config.continual_batch_size)
    return pairs


def _continual_trainer(config: TaskConfig, tokenizer: Any, trainer_kwargs: dict[str, Any]) -> Trainer:
    from amber_align.trainers.continual import ContinualTaskTrainer

    teacher = load_encoder(config.continual_anchor_model or config.model_name_or_path,
                           allow_pickle_weights=config.allow_pickle_weights)
    return ContinualTaskTrainer(**trainer_kwargs, alignment_pairs=continual_pairs(config, tokenizer),
                                teacher=teacher, pair_batch_size=config.continual_batch_size,
                                link_weight=config.link_weight, anchor_weight=config.anchor_weight,
                                pooling=config.pooling, anchor=config.anchor)


def run_evaluate(config: TaskConfig) -> dict[str, Any]:
    """Evaluate without training: a fine-tuned task model (ner/nli/qa) or any encoder (xsr/bucc)."""
    if not config.model_name_or_path:
        raise ConfigError("evaluate: model_name_or_path (--model) is required")
    started = time.time()
    task = get_task(config.task, what="evaluate")
    handler = task.load_handler()
    if not task.trainable:
        return _evaluate_encoder(config, handler, started)
    model = load_task_model(config.task, config.model_name_or_path, allow_pickle_weights=config.allow_pickle_weights)
    tokenizer = _tokenizer_and_check(config, model, handler)
    label_list = handler.model_labels(config, model)
    if not config.eval_data:
        raise ConfigError(f"evaluate --task {config.task}: eval_data is empty (give {{lang: file}} in --config)")
    spec = _TaskSpec(config, tokenizer, label_list, handler)
    trainer = Trainer(model=model, args=config, data_collator=spec.collator(), processing_class=tokenizer)
    counts: dict[str, int] = {}
    per_lang = evaluate_task_languages(trainer, spec, config, counts)
    return _report(config, per_lang, trainer, _meta(config, started, eval_examples=counts))


def _evaluate_encoder(config: TaskConfig, handler: Any, started: float) -> dict[str, Any]:
    """An evaluation-only task (xsr, bucc) on a plain encoder."""
    if not config.languages or not config.data_dir:
        raise ConfigError(f"evaluate --task {config.task}: needs languages and data_dir")
    model = load_encoder(config.model_name_or_path, allow_pickle_weights=config.allow_pickle_weights)
    tokenizer = _tokenizer_and_check(config, model, handler)
    per_lang = handler.evaluate_encoder(model, tokenizer, config)
    return _report(config, per_lang, None, _meta(config, started, layer=config.layer))

"""What each registered task does (``amber_align.tasks.registry``): read its data, build its label list, features
and collator, and score one language; or, for the encoder-only tasks, score an encoder.

``TaskHandler`` is the interface ``amber_align.tasks.runner`` calls; a fine-tunable task implements ``read``,
``train_features`` and ``evaluate`` (and, with labels, ``training_labels`` / ``model_labels``); an evaluation-only
task implements ``evaluate_encoder``. Readers and metrics live in the task's own modules (``ner_data``,
``nli_data``, ``qa_data`` / ``qa``, ``retrieval``, ``bucc``, ``metrics``), imported only when the task runs.
"""

from __future__ import annotations

from typing import Any

import datasets

from amber_align.errors import ConfigError
from amber_align.logging_utils import get_logger

__all__ = ["TaskHandler", "labels_mean_cross_entropy", "NerHandler", "NliHandler", "QaHandler", "TatoebaHandler",
           "BuccHandler", "MLQA_LANGUAGES"]

#: languages of MLQA (whose official script has article rules for them)
MLQA_LANGUAGES = frozenset({"ar", "de", "en", "es", "hi", "vi", "zh"})

logger = get_logger(__name__)


class TaskHandler:
    """The code of one task; ``task`` is its registry entry. Defaults suit a task without labels."""

    #: the task's loss as a Trainer ``compute_loss_func`` (None: the head's own loss)
    compute_loss_func: Any = None

    def __init__(self, task: Any):
        self.task = task

    # ----- fine-tunable tasks ----------------------------------------------------------------------------------
    def read(self, source: Any, lang: str | None) -> datasets.Dataset:
        raise ConfigError(f"task {self.task.name!r} has no data reader (evaluation of an encoder only)")

    def training_labels(self, config: Any, train: datasets.Dataset) -> list[str] | None:
        """The head's labels for fine-tuning (None: a task without labels)."""
        return None

    def check_eval_labels(self, config: Any, labels: list[str] | None, eval_sets: dict[str, datasets.Dataset],
                          sources: dict[str, str]) -> None:
        """Fail before training when an evaluation set has a label the head cannot predict."""

    def model_labels(self, config: Any, model: Any) -> list[str] | None:
        """The labels of a fine-tuned model being evaluated (None: a task without labels)."""
        return None

    def collator(self, tokenizer: Any) -> Any:
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer)

    def length_hint(self, config: Any) -> str:
        """Added to the error when ``max_seq_length`` exceeds the model's positions."""
        return ""

    def train_features(self, ds: datasets.Dataset, tokenizer: Any, label2id: dict[str, int], config: Any,
                       source: str) -> datasets.Dataset:
        raise NotImplementedError

    def evaluate(self, trainer: Any, ds: datasets.Dataset, lang: str, source: str, tokenizer: Any,
                 labels: list[str] | None, config: Any) -> dict[str, float]:
        raise NotImplementedError

    # ----- encoder-only tasks ------------------------------------------------------------------------------------
    def evaluate_encoder(self, model: Any, tokenizer: Any, config: Any) -> dict[str, dict[str, float]]:
        raise ConfigError(f"task {self.task.name!r} evaluates a fine-tuned {self.task.name} model, not an encoder")


def _labels_of(model: Any) -> list[str]:
    id2label = getattr(model.config, "id2label", None) or {}
    return [id2label[i] for i in sorted(id2label)]


def labels_mean_cross_entropy(outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
    """Cross-entropy summed over the labelled positions and divided by their number in the whole optimizer step
    (``num_items_in_batch``: every process and gradient-accumulation micro-batch), as a ``compute_loss_func``.

    The stock BERT/XLM-R token and sequence classification heads accept ``num_items_in_batch`` but return a
    per-batch mean, while transformers 5 then scales their loss for it (times the number of processes, no division
    by the accumulation steps): measured on 2 gloo processes, the NLI gradient came out twice that of 1 process.
    With this loss, W processes or GA micro-batches give the gradient of one batch, also for NER batches whose
    processes hold different numbers of labelled tokens (tests/test_hub_launch.py).
    """
    import torch
    import torch.nn.functional as F

    logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
    flat = labels.reshape(-1)
    total = F.cross_entropy(logits.reshape(flat.shape[0], -1).float(), flat, ignore_index=-100, reduction="sum")
    count = num_items_in_batch if num_items_in_batch is not None else (flat != -100).sum()
    return total / torch.clamp(torch.as_tensor(count, device=total.device), min=1)  # no label at all: loss 0


class NerHandler(TaskHandler):
    """Named entity recognition: CoNLL / WikiANN readers, first-subword labels, seqeval F1 (XTREME's scorer)."""

    compute_loss_func = staticmethod(labels_mean_cross_entropy)

    def read(self, source: Any, lang: str | None) -> datasets.Dataset:
        from amber_align.tasks.ner_data import load_ner

        return load_ner(source, lang=lang)

    def training_labels(self, config: Any, train: datasets.Dataset) -> list[str]:
        from amber_align.tasks.preprocess import ner_label_list

        return list(config.label_list) or ner_label_list(train["ner_tags"])

    def _mapped(self, ds: datasets.Dataset, labels: list[str], config: Any, source: str) -> datasets.Dataset:
        from amber_align.tasks.ner_data import apply_label_mapping

        return apply_label_mapping(ds, labels, config.label_mapping, source=source)

    def check_eval_labels(self, config, labels, eval_sets, sources) -> None:
        for lang, ds in eval_sets.items():
            self._mapped(ds, labels, config, sources[lang])

    def model_labels(self, config: Any, model: Any) -> list[str]:
        return _labels_of(model)

    def collator(self, tokenizer: Any) -> Any:
        from transformers import DataCollatorForTokenClassification

        return DataCollatorForTokenClassification(tokenizer)

    def train_features(self, ds, tokenizer, label2id, config, source):
        from amber_align.tasks.preprocess import tokenize_ner

        return tokenize_ner(ds, tokenizer, label2id, max_length=config.max_seq_length, source=source)

    def evaluate(self, trainer, ds, lang, source, tokenizer, labels, config):
        from amber_align.tasks import metrics
        from amber_align.tasks.preprocess import decode_ner_predictions, tokenize_ner

        ds = self._mapped(ds, labels, config, source)
        label2id = {label: i for i, label in enumerate(labels)}
        feats = tokenize_ner(ds, tokenizer, label2id, max_length=config.max_seq_length, source=source)
        out = trainer.predict(feats, metric_key_prefix=f"predict_{lang}")
        gold, pred = decode_ner_predictions(out.predictions, feats, dict(enumerate(labels)), source=source)
        return metrics.ner_scores(gold, pred)


class NliHandler(TaskHandler):
    """Natural language inference (XNLI / MultiNLI): three labels, accuracy."""

    compute_loss_func = staticmethod(labels_mean_cross_entropy)

    def read(self, source: Any, lang: str | None) -> datasets.Dataset:
        from amber_align.tasks.nli_data import load_nli

        return load_nli(source, lang=lang)

    def training_labels(self, config: Any, train: datasets.Dataset) -> list[str]:
        from amber_align.tasks.nli_data import NLI_LABELS

        return list(NLI_LABELS)

    def model_labels(self, config: Any, model: Any) -> list[str]:
        from amber_align.tasks.nli_data import NLI_LABELS

        labels = _labels_of(model)
        if sorted(labels) != sorted(NLI_LABELS):
            raise ConfigError(f"{config.model_name_or_path}: the model's labels {labels} are not the NLI labels "
                              f"{list(NLI_LABELS)}: is it a fine-tuned NLI model?")
        return labels

    def train_features(self, ds, tokenizer, label2id, config, source):
        from amber_align.tasks.preprocess import tokenize_nli

        return tokenize_nli(ds, tokenizer, label2id, max_length=config.max_seq_length, source=source)

    def evaluate(self, trainer, ds, lang, source, tokenizer, labels, config):
        from amber_align.tasks import metrics
        from amber_align.tasks.preprocess import tokenize_nli

        label2id = {label: i for i, label in enumerate(labels)}
        feats = tokenize_nli(ds, tokenizer, label2id, max_length=config.max_seq_length, source=source)
        out = trainer.predict(feats, metric_key_prefix=f"predict_{lang}")
        predicted = out.predictions.argmax(-1).tolist()
        if lang == config.train_language and len(predicted) > 1 and len(set(predicted)) == 1:
            logger.warning(f"finetune nli: the head predicts {labels[predicted[0]]!r} for all {len(predicted)} "
                           f"{lang} examples (the training language): it learned one class only; train longer, "
                           "check the learning rate and the labels; the other languages' scores mean nothing")
        return metrics.accuracy(predicted, feats["labels"])


class QaHandler(TaskHandler):
    """Extractive QA (SQuAD-format: XQuAD, MLQA, TyDiQA-GoldP): sliding windows, n-best spans, EM/F1. Under
    ``qa_normalization: auto`` as XTREME scores them: the official MLQA script for MLQA test sets, the SQuAD v1.1
    script for XQuAD and TyDiQA (:func:`amber_align.tasks.metrics.qa_rules`)."""

    def read(self, source: Any, lang: str | None) -> datasets.Dataset:
        from amber_align.tasks.qa_data import load_qa

        return load_qa(source, lang=lang)

    def length_hint(self, config: Any) -> str:
        return f" (and doc_stride below it, now {config.doc_stride})"

    def train_features(self, ds, tokenizer, label2id, config, source):
        from amber_align.tasks.qa import prepare_qa_train_features

        return prepare_qa_train_features(ds, tokenizer, max_length=config.max_seq_length, stride=config.doc_stride,
                                         source=source)

    def evaluate(self, trainer, ds, lang, source, tokenizer, labels, config):
        from amber_align.tasks import metrics
        from amber_align.tasks.qa import postprocess_qa_predictions, prepare_qa_eval_features

        feats = prepare_qa_eval_features(ds, tokenizer, max_length=config.max_seq_length, stride=config.doc_stride,
                                         source=source)
        out = trainer.predict(feats.remove_columns(["example_id", "offset_mapping"]),
                              metric_key_prefix=f"predict_{lang}")
        start_logits, end_logits = out.predictions[:2] if isinstance(out.predictions, tuple) else out.predictions
        preds = postprocess_qa_predictions(ds, feats, start_logits, end_logits, n_best=config.n_best_size,
                                           max_answer_length=config.max_answer_length)
        refs = {row["id"]: list(row["answers"]["text"]) for row in ds}
        return metrics.qa_scores(preds, refs, lang=lang, **metrics.qa_rules(config.qa_normalization, source))


class TatoebaHandler(TaskHandler):
    """Tatoeba sentence retrieval (XTREME's xsr): P@1 in both directions from mean-pooled layer ``layer``."""

    def evaluate_encoder(self, model, tokenizer, config):
        from amber_align.tasks.retrieval import evaluate_tatoeba

        scores = evaluate_tatoeba(model, tokenizer, config.languages, config.data_dir, layer=config.layer,
                                  max_sentences=config.max_eval_examples)
        return {lang: {m: scores[f"{lang}_{m}"] for m in ("xx2en_p@1", "en2xx_p@1")} for lang in config.languages}


class BuccHandler(TaskHandler):
    """BUCC 2018 bitext mining: margin-scored k-NN candidates, F1 at the threshold fitted on the dev split."""

    def evaluate_encoder(self, model, tokenizer, config):
        from amber_align.tasks.bucc import evaluate_bucc

        scores = evaluate_bucc(model, tokenizer, config.languages, config.data_dir, layer=config.layer,
                               k=config.bucc_k, max_sentences=config.max_eval_examples,
                               dev_split=config.bucc_dev_split, eval_split=config.bucc_eval_split)
        return {lang: {m: scores[f"{lang}_{m}"] for m in ("f1", "precision", "recall", "threshold")
                       if f"{lang}_{m}" in scores} for lang in config.languages}

"""``TaskConfig``: fine-tune an English task head and evaluate it zero-shot on other languages.

One dataclass drives both ``amber-align finetune`` (train on ``train_data``, then evaluate every ``eval_data``
language) and ``amber-align evaluate`` (no training). It is a ``TrainingArguments`` subclass, so every Trainer
option (learning rate, epochs, bf16, ``accelerate launch``) is one field away; recipes in ``recipes/tasks/`` set
the papers' values. Every own field is type-checked in ``__post_init__`` and a bad value is named.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from transformers import TrainingArguments

from amber_align.arguments import CaoArguments, ModelArguments, check_training_arguments
from amber_align.choices import ANCHOR_MODES, QA_NORMALIZATIONS
from amber_align.data.languages import normalize_language
from amber_align.errors import ConfigError
from amber_align.tasks.registry import get_task, task_names
from amber_align.validation import check_range, validate_fields

__all__ = ["TaskConfig"]

_OWN_FIELDS = (
    "task", "train_data", "eval_data", "languages", "data_dir",
    "train_language", "label_list", "label_mapping", "max_seq_length", "doc_stride", "max_answer_length",
    "n_best_size", "qa_normalization", "max_train_examples", "max_eval_examples", "layer", "bucc_k",
    "bucc_dev_split", "bucc_eval_split", "results_dir", "save_model", "resume_from_checkpoint", "overwrite_output_dir",
    "run_name_in_results", "continual_alignment", "continual_data", "continual_options", "continual_pool_size",
    "continual_batch_size", "continual_anchor_model",
)


@dataclass
class TaskConfig(TrainingArguments, ModelArguments, CaoArguments):
    """Fields of a zero-shot transfer run (docs/methods.md, "Evaluation protocols"): the task's own, the model
    (``ModelArguments``), the Cao loss of continual learning (``CaoArguments``, with Efimov's defaults) and
    ``TrainingArguments``."""

    task: str = field(default="nli", metadata={
        "help": f"Task: a registered task (amber_align.tasks.registry): {', '.join(task_names())} "
                f"({', '.join(task_names(trainable=False))}: evaluation only)."})
    train_data: Any = field(
        default=None,
        metadata={"help": "English training data: a file path, or a mapping {file, format, lang, max_examples} or "
                          "{hub, name, split} (a Hub dataset id such as xtreme, wikiann, xnli, squad)."},
    )
    eval_data: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "Evaluation data per language: {lang: path or source mapping (same form as train_data)}. "
                          "Every language is evaluated after training and logged as eval_{task}_{lang}_{metric}."},
    )
    languages: list[str] = field(
        default_factory=list,
        metadata={"help": "xsr/bucc: languages to evaluate (files found in data_dir). For ner/nli/qa: a subset "
                          "of eval_data's keys to evaluate (default: all)."},
    )
    data_dir: str | None = field(
        default=None, metadata={"help": "xsr: folder of tatoeba.xxx-eng.* files; bucc: folder of xx-en.<split>.* files."}
    )
    train_language: str = field(
        default="en", metadata={"help": "Language of train_data; left out of the macro average over languages."}
    )
    label_list: list[str] = field(
        default_factory=list,
        metadata={"help": "ner: the tag set (IOB2, e.g. [O, B-PER, I-PER, ...]); default: the tags of train_data. "
                          "A tag in eval data outside it is an error unless label_mapping maps it."},
    )
    label_mapping: dict[str, str] = field(
        default_factory=dict,
        metadata={"help": "ner: map evaluation entity types or tags onto the training ones, e.g. {MISC: O} drops "
                          "MISC entities when the training data (WikiANN) has none."},
    )
    max_seq_length: int = field(
        default=128, metadata={"help": "Subwords per input (qa: per window; Efimov et al.: 384 for QA)."}
    )
    doc_stride: int = field(default=128, metadata={"help": "qa: overlap between windows of a long context."})
    max_answer_length: int = field(default=30, metadata={"help": "qa: longest answer span, in subwords."})
    n_best_size: int = field(default=20, metadata={"help": "qa: start/end candidates considered per window."})
    qa_normalization: str = field(
        default="auto",
        metadata={"choices": QA_NORMALIZATIONS,
                  "help": "qa answer normalisation: 'squad' (SQuAD v1.1 script), 'mlqa' (the official MLQA "
                          "script's per-language rules), 'mlqa_no_symbols' (those, also dropping Unicode symbols), "
                          "or 'auto' as XTREME: mlqa for MLQA test sets, squad for XQuAD and TyDiQA "
                          "(docs/protocols.md)."},
    )
    max_train_examples: int | None = field(
        default=None, metadata={"help": "Use only the first N training examples (CPU-sized runs)."}
    )
    max_eval_examples: int | None = field(
        default=None,
        metadata={"help": "Evaluate only the first N examples (sentences for xsr/bucc) per language."}
    )
    layer: int = field(default=-1, metadata={"help": "xsr/bucc: hidden layer for mean pooling (-1 = last)."})
    bucc_k: int = field(default=4, metadata={"help": "bucc: neighbours in the ratio margin (k = 4)."})
    bucc_dev_split: str = field(default="sample", metadata={"help": "bucc: split whose gold tunes the threshold."})
    bucc_eval_split: str = field(default="training", metadata={"help": "bucc: split scored with that threshold."})
    results_dir: str | None = field(
        default=None,
        metadata={"help": "Where results.json, results.md and {task}.png go (default: output_dir). Several tasks "
                          "written to one folder are merged there, so `amber-align compare` sees them together."},
    )
    save_model: bool = field(default=True, metadata={"help": "finetune: save the fine-tuned model to output_dir."})
    resume_from_checkpoint: str | bool | None = field(
        default=None,
        metadata={"help": "finetune: resume from a checkpoint-N folder, or true for the newest complete checkpoint "
                          "in output_dir (amber_align.pipeline.resolve_checkpoint)."},
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "finetune: a fresh run (no resume_from_checkpoint) into an output_dir that holds another "
                          "run's checkpoint-N folders is refused; true removes them (and the old model's config.json) "
                          "first. (transformers 5 has no such field of its own.)"},
    )
    continual_alignment: bool = field(
        default=False,
        metadata={"help": "finetune: keep the Cao alignment loss on during task training (Efimov et al. 2022): "
                          "each step adds link_weight · aligned-word MSE + anchor_weight · anchor MSE on a fresh "
                          "batch of parallel pairs drawn with replacement from a pool."},
    )
    continual_data: list[dict[str, Any]] = field(
        default_factory=list,
        metadata={"help": "continual: parallel sources (same form as `align`'s train_data; eflomal runs when "
                          "links are missing)."},
    )
    continual_options: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "continual: further fields of the pair pipeline, as in an `align` config (e.g. "
                          "pretokenized, max_words, symmetrization, dedup_eval_files, drop_identical_links)."},
    )
    continual_pool_size: int = field(default=30000, metadata={"help": "continual: pairs in the pool (Efimov: 30k)."})
    continual_batch_size: int = field(default=16, metadata={"help": "continual: pairs per step (Efimov: 16)."})
    # the Cao loss of continual learning (CaoArguments, Efimov's defaults)
    anchor: str = field(
        default="current",
        metadata={"choices": ANCHOR_MODES,
                  "help": "continual: target of the aligned-word term for the anchor side: 'current' = f(t) "
                          "(Efimov's code) or 'frozen' = f0(t)."})
    link_weight: float = field(default=0.01, metadata={"help": "continual: aligned-word MSE weight (Efimov: 0.01)."})
    anchor_weight: float = field(default=1.0, metadata={"help": "continual: anchor MSE weight (Efimov: 1.0)."})
    continual_anchor_model: str | None = field(
        default=None,
        metadata={"help": "continual: the frozen original encoder f0 of the anchor MSE (default: "
                          "model_name_or_path, the encoder fine-tuning starts from)."},
    )
    run_name_in_results: str | None = field(
        default=None, metadata={"help": "Name shown for this run in results.md and plots (default: the model)."}
    )

    def __post_init__(self) -> None:
        if isinstance(self.languages, str):  # languages: es,de,fr
            self.languages = [self.languages]
        if isinstance(self.languages, list) and all(isinstance(x, str) for x in self.languages):  # --languages es,de
            self.languages = [lang.strip() for x in self.languages for lang in x.split(",") if lang.strip()]
        validate_fields(self, _OWN_FIELDS)
        self.check_model_arguments()
        self.check_cao_arguments()
        check_training_arguments(self)
        owner = type(self).__name__
        self._normalise_languages(owner)
        get_task(self.task, what=f"{owner}.task")
        check_range(owner, "max_seq_length", self.max_seq_length, low=8)
        check_range(owner, "doc_stride", self.doc_stride, low=0)
        check_range(owner, "max_answer_length", self.max_answer_length, low=1)
        check_range(owner, "n_best_size", self.n_best_size, low=1)
        check_range(owner, "max_train_examples", self.max_train_examples, low=1)
        check_range(owner, "max_eval_examples", self.max_eval_examples, low=1)
        check_range(owner, "bucc_k", self.bucc_k, low=1)
        check_range(owner, "continual_pool_size", self.continual_pool_size, low=1)
        check_range(owner, "continual_batch_size", self.continual_batch_size, low=1)
        if self.continual_alignment and not self.continual_data:
            raise ConfigError(f"{owner}.continual_data: continual_alignment needs parallel sources, got none")
        if self.task == "qa" and self.doc_stride >= self.max_seq_length:
            raise ConfigError(f"{owner}.doc_stride: must be below max_seq_length ({self.max_seq_length}), "
                              f"got {self.doc_stride}")
        for lang in self.languages:
            if self.eval_data and lang not in self.eval_data:
                raise ConfigError(f"{owner}.languages: {lang!r} has no entry in eval_data "
                                  f"(have: {', '.join(sorted(self.eval_data))})")
        for key, value in self.label_mapping.items():
            if not isinstance(value, str):
                raise ConfigError(f"{owner}.label_mapping[{key!r}]: expected a label string, got {value!r}")
        super().__post_init__()

    def _normalise_languages(self, owner: str) -> None:
        """One code per language wherever results are keyed by it (as ``align`` does): ``pl`` and ``pol`` are both
        ``pl``, ``bg-Cyrl-BG`` is ``bg``, so runs evaluated with either spelling compare."""
        def norm(code: str, name: str) -> str:
            try:
                return normalize_language(code)
            except ConfigError as err:
                raise ConfigError(f"{owner}.{name}: {err}") from None

        self.languages = list(dict.fromkeys(norm(lang, "languages") for lang in self.languages))
        self.train_language = norm(self.train_language, "train_language")
        data: dict[str, Any] = {}
        for key, value in self.eval_data.items():
            code = norm(key, "eval_data")
            if code in data:
                raise ConfigError(f"{owner}.eval_data: {key!r} and another key both name language {code!r}")
            data[code] = value
        self.eval_data = data

    def eval_languages(self) -> list[str]:
        """The languages to evaluate, in order."""
        return list(self.languages) if self.languages else list(self.eval_data)

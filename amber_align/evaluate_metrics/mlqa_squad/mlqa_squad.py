"""``evaluate`` module: SQuAD v1.1 exact match and F1, or the official MLQA script's (``mlqa_evaluation_v1.py``).

A thin wrapper around ``amber_align.tasks.metrics.qa_scores``; inputs have the shape of the ``squad`` metric.
Load it offline with ``evaluate.load(amber_align.tasks.metrics.evaluate_module_path("mlqa_squad"))``.
"""

from __future__ import annotations

from typing import Any

import datasets
import evaluate

from amber_align.errors import ConfigError
from amber_align.tasks.metrics import qa_rules, qa_scores

__all__ = ["MlqaSquad"]

_DESCRIPTION = """
Exact match and token F1 (percent) of extractive QA answers, the maximum over the gold answers of each question.
With normalization="squad" (default) the answers are normalised as by the official SQuAD v1.1 script (lower-case,
no ASCII punctuation, no English articles): XTREME scores XQuAD and TyDiQA-GoldP this way. With "mlqa" as by the
official MLQA script, which XTREME uses for MLQA: lower-case, no punctuation (Unicode P* and ASCII punctuation;
other symbols stay), no articles of the given language (en, es, de, vi, ar), whitespace tokens (zh: one token per
ideograph). "mlqa_no_symbols": MLQA's rules that also drop every Unicode symbol (S*). As in the official scripts a
question without a prediction scores 0 and a prediction for an unknown question is ignored.
"""

_CITATION = """
@inproceedings{rajpurkar2016squad, title={{SQuAD}: 100,000+ Questions for Machine Comprehension of Text},
  author={Rajpurkar, Pranav and Zhang, Jian and Lopyrev, Konstantin and Liang, Percy}, booktitle={EMNLP}, year={2016}}
@inproceedings{lewis2020mlqa, title={{MLQA}: Evaluating Cross-lingual Extractive Question Answering},
  author={Lewis, Patrick and others}, booktitle={ACL}, year={2020}}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of {"id": str, "prediction_text": str}; may be shorter or longer than references.
    references: list of {"id": str, "answers": {"text": [str, ...], "answer_start": [int, ...]}}.
    lang: language of the answers (used by the MLQA rules; default "en").
    normalization: "squad" (default), "mlqa" or "mlqa_no_symbols".
    mlqa: True is normalization="mlqa" (older spelling).
Returns:
    {"exact_match": percent, "f1": percent} over the questions of references (a question without a prediction
    scores 0; a prediction id absent from references is ignored, with a warning).
Example:
    >>> metric = evaluate.load(evaluate_module_path("mlqa_squad"))
    >>> metric.compute(predictions=[{"id": "q1", "prediction_text": "el Prado"}],
    ...                references=[{"id": "q1", "answers": {"text": ["Prado"], "answer_start": [3]}}],
    ...                lang="es", normalization="mlqa")
    {'exact_match': 100.0, 'f1': 100.0}
"""

_PAD_PREDICTION = {"id": "", "prediction_text": ""}
_PAD_REFERENCE = {"id": "", "answers": {"text": [], "answer_start": []}}


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MlqaSquad(evaluate.Metric):
    """SQuAD / MLQA EM and F1 (percent)."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "predictions": {"id": datasets.Value("string"), "prediction_text": datasets.Value("string")},
                "references": {
                    "id": datasets.Value("string"),
                    "answers": datasets.Sequence({"text": datasets.Value("string"),
                                                  "answer_start": datasets.Value("int32")}),
                },
            }),
            codebase_urls=["https://github.com/facebookresearch/MLQA/blob/main/mlqa_evaluation_v1.py"],
            reference_urls=["https://rajpurkar.github.io/SQuAD-explorer/", "https://github.com/facebookresearch/MLQA"],
        )

    def compute(self, *, predictions: Any = None, references: Any = None, **kwargs: Any) -> dict[str, float] | None:
        """As ``evaluate.Metric.compute``; lists of different lengths are padded with empty-id entries (dropped
        again in ``_compute``), so missing predictions score 0 as in the official scripts."""
        if predictions is not None and references is not None and len(predictions) != len(references):
            predictions, references = list(predictions), list(references)
            gap = len(references) - len(predictions)
            predictions += [dict(_PAD_PREDICTION) for _ in range(gap)]
            references += [dict(_PAD_REFERENCE) for _ in range(-gap)]
        return super().compute(predictions=predictions, references=references, **kwargs)

    def _compute(self, predictions, references, lang: str = "en", mlqa: bool = False,
                 normalization: str | None = None) -> dict[str, float]:
        if normalization is None:
            normalization = "mlqa" if mlqa else "squad"
        elif normalization == "auto":
            raise ConfigError("mlqa_squad: normalization must be squad, mlqa or mlqa_no_symbols (auto needs the "
                              "test set's name: amber_align.tasks.metrics.qa_rules)")
        rules = qa_rules(normalization)
        preds: dict[str, str] = {}
        for prediction in predictions:
            if prediction["id"] == "":
                continue
            if prediction["id"] in preds:
                raise ConfigError(f"mlqa_squad: question id {prediction['id']!r} is predicted twice")
            preds[prediction["id"]] = prediction["prediction_text"]
        refs = {reference["id"]: list(reference["answers"]["text"]) for reference in references if reference["id"]}
        return qa_scores(preds, refs, lang=lang, **rules)

"""``evaluate`` module: SQuAD v1.1 exact match and F1, with MLQA's language-specific normalisation on request.

A thin wrapper around ``amber_align.tasks.metrics.qa_scores``; inputs have the shape of the ``squad`` metric.
Load it offline with ``evaluate.load(amber_align.tasks.metrics.evaluate_module_path("mlqa_squad"))``.
"""

from __future__ import annotations

import datasets
import evaluate

from amber_align.errors import ConfigError
from amber_align.tasks.metrics import qa_scores

__all__ = ["MlqaSquad"]

_DESCRIPTION = """
Exact match and token F1 (percent) of extractive QA answers, the maximum over the gold answers of each question.
With mlqa=False the answers are normalised as by the official SQuAD v1.1 script (lower-case, no ASCII punctuation,
no English articles); with mlqa=True as by the MLQA script: lower-case, no punctuation or symbols (Unicode P* and
S*), no articles of the given language (en, es, de, vi, ar), whitespace tokens (zh: one token per ideograph).
XQuAD and MLQA in XTREME are scored this way.
"""

_CITATION = """
@inproceedings{rajpurkar2016squad, title={{SQuAD}: 100,000+ Questions for Machine Comprehension of Text},
  author={Rajpurkar, Pranav and Zhang, Jian and Lopyrev, Konstantin and Liang, Percy}, booktitle={EMNLP}, year={2016}}
@inproceedings{lewis2020mlqa, title={{MLQA}: Evaluating Cross-lingual Extractive Question Answering},
  author={Lewis, Patrick and others}, booktitle={ACL}, year={2020}}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of {"id": str, "prediction_text": str}.
    references: list of {"id": str, "answers": {"text": [str, ...], "answer_start": [int, ...]}}.
    lang: language of the answers (used with mlqa=True; default "en").
    mlqa: use the MLQA normalisation (default False: SQuAD v1.1).
Returns:
    {"exact_match": percent, "f1": percent} over the questions of references (a question without a prediction
    scores 0; a prediction id absent from references is an error).
Example:
    >>> metric = evaluate.load(evaluate_module_path("mlqa_squad"))
    >>> metric.compute(predictions=[{"id": "q1", "prediction_text": "el Prado"}],
    ...                references=[{"id": "q1", "answers": {"text": ["Prado"], "answer_start": [3]}}],
    ...                lang="es", mlqa=True)
    {'exact_match': 100.0, 'f1': 100.0}
"""


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

    def _compute(self, predictions, references, lang: str = "en", mlqa: bool = False) -> dict[str, float]:
        preds: dict[str, str] = {}
        for prediction in predictions:
            if prediction["id"] in preds:
                raise ConfigError(f"mlqa_squad: question id {prediction['id']!r} is predicted twice")
            preds[prediction["id"]] = prediction["prediction_text"]
        refs = {reference["id"]: list(reference["answers"]["text"]) for reference in references}
        return qa_scores(preds, refs, lang=lang, mlqa=mlqa)

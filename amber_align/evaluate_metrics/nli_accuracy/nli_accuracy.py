"""``evaluate`` module: classification accuracy in percent (XNLI and other sentence-pair tasks).

A thin wrapper around ``amber_align.tasks.metrics.accuracy``; load it offline with
``evaluate.load(amber_align.tasks.metrics.evaluate_module_path("nli_accuracy"))``.
"""

from __future__ import annotations

import datasets
import evaluate

from amber_align.tasks.metrics import accuracy

__all__ = ["NliAccuracy"]

_DESCRIPTION = """
Accuracy in percent: the share of examples whose predicted label id equals the gold label id. The metric of XNLI
(zero-shot transfer from English MultiNLI) in XTREME and in the AMBER paper.
"""

_CITATION = """
@inproceedings{conneau2018xnli, title={{XNLI}: Evaluating Cross-lingual Sentence Representations},
  author={Conneau, Alexis and others}, booktitle={EMNLP}, year={2018}}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted label ids (int).
    references: gold label ids (int).
Returns:
    {"accuracy": percent}
Example:
    >>> evaluate.load(evaluate_module_path("nli_accuracy")).compute(predictions=[0, 1, 2, 2], references=[0, 1, 2, 0])
    {'accuracy': 75.0}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class NliAccuracy(evaluate.Metric):
    """Accuracy (percent) over label ids."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "predictions": datasets.Value("int64"),
                "references": datasets.Value("int64"),
            }),
            reference_urls=["https://github.com/facebookresearch/XNLI"],
        )

    def _compute(self, predictions, references) -> dict[str, float]:
        return accuracy(predictions, references)

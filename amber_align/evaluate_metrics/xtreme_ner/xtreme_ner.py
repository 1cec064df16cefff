"""``evaluate`` module: entity-level F1 of IOB2 tag sequences (seqeval, conlleval-compatible), in percent.

A thin wrapper around ``amber_align.tasks.metrics.ner_scores`` so that ``evaluate.load`` users and the package's
own NER evaluation report identical numbers. Load it offline with
``evaluate.load(amber_align.tasks.metrics.evaluate_module_path("xtreme_ner"))``.
"""

from __future__ import annotations

import datasets
import evaluate

from amber_align.tasks.metrics import ner_scores

__all__ = ["XtremeNer"]

_DESCRIPTION = """
Entity-level precision, recall and F1 (percent, micro-averaged over entity types) of IOB2 tag sequences, computed
by seqeval in its default (conlleval-compatible) mode: an entity counts as correct only when its type and both
boundaries match. This is the NER metric of XTREME (WikiANN / PAN-X) and CoNLL-2002/2003.
"""

_CITATION = """
@misc{seqeval, title={{seqeval}: A Python framework for sequence labeling evaluation},
  url={https://github.com/chakki-works/seqeval}, author={Hiroki Nakayama}, year={2018}}
@inproceedings{hu2020xtreme, title={{XTREME}: A Massively Multilingual Multi-task Benchmark for Evaluating
  Cross-lingual Generalization}, author={Hu, Junjie and others}, booktitle={ICML}, year={2020}}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of predicted tag sequences, one list of strings ("B-PER", "I-PER", "O") per sentence.
    references: list of gold tag sequences, same shapes as predictions.
    per_type: also return "f1_<TYPE>" for every entity type (default False).
Returns:
    {"f1", "precision", "recall"} in percent (plus "f1_<TYPE>" with per_type=True).
Example:
    >>> metric = evaluate.load(evaluate_module_path("xtreme_ner"))
    >>> metric.compute(predictions=[["B-PER", "I-PER", "O"]], references=[["B-PER", "I-PER", "O"]])["f1"]
    100.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class XtremeNer(evaluate.Metric):
    """seqeval entity F1 (percent) over string tags."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "predictions": datasets.Sequence(datasets.Value("string")),
                "references": datasets.Sequence(datasets.Value("string")),
            }),
            codebase_urls=["https://github.com/chakki-works/seqeval"],
            reference_urls=["https://github.com/google-research/xtreme"],
        )

    def _compute(self, predictions, references, per_type: bool = False) -> dict[str, float]:
        return ner_scores(references, predictions, per_type=per_type)

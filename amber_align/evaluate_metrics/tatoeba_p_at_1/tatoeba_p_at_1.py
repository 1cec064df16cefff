"""``evaluate`` module: precision at 1 of sentence retrieval (Tatoeba / XSR), in percent.

Takes retrieved and gold target *indices* (the nearest-neighbour search is the caller's, e.g.
``amber_align.tasks.retrieval``), so that it stays a pure scoring function. A thin wrapper around
``amber_align.tasks.metrics.precision_at_1``; load it offline with
``evaluate.load(amber_align.tasks.metrics.evaluate_module_path("tatoeba_p_at_1"))``.
"""

from __future__ import annotations

import datasets
import evaluate

from amber_align.tasks.metrics import precision_at_1

__all__ = ["TatoebaPAt1"]

_DESCRIPTION = """
Precision at 1 (percent) of cross-lingual sentence retrieval: query i is correct when the retrieved target index
equals its gold index or, given target_texts, when the retrieved target's text is identical to the gold target's
(Tatoeba repeats short sentences, which no model can tell apart). The XSR (Tatoeba) metric of XTREME, computed
per direction (xx->en and en->xx).
"""

_CITATION = """
@article{artetxe2019massively, title={Massively Multilingual Sentence Embeddings for Zero-Shot Cross-Lingual
  Transfer and Beyond}, author={Artetxe, Mikel and Schwenk, Holger}, journal={TACL}, year={2019}}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: retrieved target index per query (int).
    references: gold target index per query (int; on Tatoeba, the query's own index).
    target_texts: optional list of the target sentences, indexed by target; identical texts count as the same.
Returns:
    {"p@1": percent}
Example:
    >>> evaluate.load(evaluate_module_path("tatoeba_p_at_1")).compute(predictions=[0, 2, 1], references=[0, 1, 2])
    {'p@1': 33.333333333333336}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TatoebaPAt1(evaluate.Metric):
    """P@1 (percent) from retrieved and gold indices."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "predictions": datasets.Value("int64"),
                "references": datasets.Value("int64"),
            }),
            reference_urls=["https://github.com/facebookresearch/LASER/tree/main/data/tatoeba/v1"],
        )

    def _compute(self, predictions, references, target_texts=None) -> dict[str, float]:
        return precision_at_1(predictions, references, target_texts=target_texts)

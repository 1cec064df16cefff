"""``evaluate`` module: precision, recall and F1 of mined BUCC 2018 sentence pairs, in percent.

The mining (ratio margin, threshold) is the caller's, e.g. ``amber_align.tasks.bucc``; this module scores the
mined pairs against gold pairs. A thin wrapper around ``amber_align.tasks.bucc.bucc_f1``; load it offline with
``evaluate.load(amber_align.tasks.metrics.evaluate_module_path("bucc_f1"))``.
"""

from __future__ import annotations

import datasets
import evaluate

from amber_align.errors import ConfigError
from amber_align.tasks.bucc import bucc_f1

__all__ = ["BuccF1"]

_DESCRIPTION = """
Precision, recall and F1 (percent) of parallel-sentence mining (BUCC 2018 shared task): a mined pair is correct
when it is a gold pair. One example is one mined set: predictions are its mined pairs and references its gold pairs,
each pair a string "xx_id<TAB>en_id" (the .gold file's lines). Several examples (e.g. languages) are pooled: each
pair is qualified by its example, and the counts are summed (micro average).
"""

_CITATION = """
@inproceedings{zweigenbaum2018overview, title={Overview of the Third {BUCC} Shared Task: Spotting Parallel
  Sentences in Comparable Corpora}, author={Zweigenbaum, Pierre and Sharoff, Serge and Rapp, Reinhard},
  booktitle={Proceedings of the 11th Workshop on Building and Using Comparable Corpora}, year={2018}}
@inproceedings{artetxe2019margin, title={Margin-based Parallel Corpus Mining with Multilingual Sentence
  Embeddings}, author={Artetxe, Mikel and Schwenk, Holger}, booktitle={ACL}, year={2019}}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: per example, the list of mined pairs "xx_id\\ten_id" (already thresholded).
    references: per example, the list of gold pairs "xx_id\\ten_id".
Returns:
    {"precision": percent, "recall": percent, "f1": percent}
Example:
    >>> evaluate.load(evaluate_module_path("bucc_f1")).compute(
    ...     predictions=[["de-1\\ten-1", "de-2\\ten-3"]], references=[["de-1\\ten-1", "de-2\\ten-2"]])
    {'precision': 50.0, 'recall': 50.0, 'f1': 50.0}
"""


def _pairs(example: int, pairs: list[str], what: str) -> list[tuple[str, str]]:
    out = []
    for number, pair in enumerate(pairs):
        fields = pair.split("\t")
        if len(fields) != 2 or not all(f.strip() for f in fields):
            raise ConfigError(f"bucc_f1: {what}[{example}][{number}] = {pair!r}: expected 'xx_id<TAB>en_id'")
        out.append((f"{example}\t{fields[0].strip()}", fields[1].strip()))
    return out


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class BuccF1(evaluate.Metric):
    """Mined-pair precision/recall/F1 (percent) against gold pairs."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "predictions": datasets.Sequence(datasets.Value("string")),
                "references": datasets.Sequence(datasets.Value("string")),
            }),
            reference_urls=["https://comparable.limsi.fr/bucc2018/bucc2018-task.html"],
        )

    def _compute(self, predictions, references) -> dict[str, float]:
        mined: list[tuple[str, str, float]] = []
        gold: set[tuple[str, str]] = set()
        for example, (predicted, golden) in enumerate(zip(predictions, references)):
            mined += [(src, tgt, 1.0) for src, tgt in _pairs(example, predicted, "predictions")]
            gold |= set(_pairs(example, golden, "references"))
        return bucc_f1(mined, gold, threshold=1.0)

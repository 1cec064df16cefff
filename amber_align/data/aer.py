"""Alignment error rate (Och & Ney 2003) with precision, recall and F1, against sure/possible gold links.

With predicted links A, sure gold links S and possible gold links P (P is taken as P ∪ S: a sure link is also
possible, so gold scored against itself gives AER 0):

    precision = |A ∩ P| / |A|,   recall = |A ∩ S| / |S|,   AER = 1 − (|A ∩ S| + |A ∩ P|) / (|A| + |S|)

Corpus-level scores sum the counts over all sentence pairs before dividing (as awesome-align and the published
tables do), rather than averaging per-sentence ratios. A ratio whose denominator is 0 counts as 0, except that
an empty prediction against an empty gold standard is perfect (AER 0, precision = recall = F1 = 1).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from amber_align.data.alignments import Link

__all__ = ["alignment_scores", "per_sentence_aer"]


def _as_set(links: Iterable[Link]) -> set[Link]:
    return {(int(i), int(j)) for i, j in links}


def _gold_sets(
    predicted: Sequence[Iterable[Link]],
    sure: Sequence[Iterable[Link]],
    possible: Sequence[Iterable[Link]] | None,
):
    """Yield ``(A, S, P ∪ S)`` per sentence after checking that the three sequences have the same length."""
    if len(predicted) != len(sure):
        raise ValueError(
            f"predicted alignments cover {len(predicted)} sentence pairs but the sure gold covers {len(sure)}"
        )
    if possible is not None and len(possible) != len(sure):
        raise ValueError(
            f"possible gold covers {len(possible)} sentence pairs but the sure gold covers {len(sure)}"
        )
    for k in range(len(sure)):
        a, s = _as_set(predicted[k]), _as_set(sure[k])
        p = s if possible is None else _as_set(possible[k]) | s
        yield a, s, p


def _scores(n_a: int, n_s: int, a_and_s: int, a_and_p: int) -> dict[str, float]:
    if n_a == 0 and n_s == 0:
        return {"aer": 0.0, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    precision = a_and_p / n_a if n_a else 0.0
    recall = a_and_s / n_s if n_s else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    aer = 1.0 - (a_and_s + a_and_p) / (n_a + n_s)
    return {"aer": aer, "precision": precision, "recall": recall, "f1": f1}


def alignment_scores(
    predicted: Sequence[Iterable[Link]],
    sure: Sequence[Iterable[Link]],
    possible: Sequence[Iterable[Link]] | None = None,
) -> dict[str, float]:
    """Corpus-level ``{"aer", "precision", "recall", "f1"}`` (fractions in [0, 1]) of ``predicted`` against gold.

    ``predicted``, ``sure`` and ``possible`` hold one link collection per sentence pair, in the same orientation;
    ``possible=None`` means the gold has sure links only. Different lengths raise ``ValueError``.
    """
    n_a = n_s = a_and_s = a_and_p = 0
    for a, s, p in _gold_sets(predicted, sure, possible):
        n_a += len(a)
        n_s += len(s)
        a_and_s += len(a & s)
        a_and_p += len(a & p)
    return _scores(n_a, n_s, a_and_s, a_and_p)


def per_sentence_aer(
    predicted: Sequence[Iterable[Link]],
    sure: Sequence[Iterable[Link]],
    possible: Sequence[Iterable[Link]] | None = None,
) -> list[float]:
    """AER of each sentence pair on its own (0 for a pair with neither predicted nor sure links)."""
    return [
        _scores(len(a), len(s), len(a & s), len(a & p))["aer"] for a, s, p in _gold_sets(predicted, sure, possible)
    ]

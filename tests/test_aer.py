"""AER, precision, recall and F1 against sure/possible gold, on hand-computed examples."""

from __future__ import annotations

import pytest

from amber_align.data.aer import alignment_scores, per_sentence_aer

# Two sentence pairs.
#   pair 1: S = {(0,0), (1,1)}, P = {(1,2), (2,2)} (+ S), A = {(0,0), (1,2), (2,0)}
#           A∩S = {(0,0)} -> 1;  A∩P = {(0,0), (1,2)} -> 2
#   pair 2: S = {(0,0)}, P = {} (+ S = {(0,0)}), A = {(0,0), (1,1)}
#           A∩S = 1;  A∩P = 1
# corpus: |A| = 5, |S| = 3, |A∩S| = 2, |A∩P| = 3
#   precision = 3/5 = 0.6;  recall = 2/3;  F1 = 2·(3/5)·(2/3) / (3/5 + 2/3) = (4/5)/(19/15) = 12/19
#   AER = 1 − (2 + 3)/(5 + 3) = 3/8 = 0.375
# per sentence: pair 1: 1 − (1 + 2)/(3 + 2) = 0.4;  pair 2: 1 − (1 + 1)/(2 + 1) = 1/3
# (the corpus AER 0.375 is not the mean of the per-sentence ones, 0.3667: counts are summed first)
PREDICTED = [[(0, 0), (1, 2), (2, 0)], [(0, 0), (1, 1)]]
SURE = [[(0, 0), (1, 1)], [(0, 0)]]
POSSIBLE = [[(1, 2), (2, 2)], []]  # deliberately without the sure links: P := P ∪ S


def test_hand_example_corpus_level():
    scores = alignment_scores(PREDICTED, SURE, POSSIBLE)
    assert scores == pytest.approx({"aer": 0.375, "precision": 0.6, "recall": 2 / 3, "f1": 12 / 19})


def test_hand_example_per_sentence():
    assert per_sentence_aer(PREDICTED, SURE, POSSIBLE) == pytest.approx([0.4, 1 / 3])


def test_sure_only_gold():
    # P = S: |A∩P| = |A∩S| = 2 -> precision 2/5, recall 2/3, AER = 1 − 4/8 = 0.5
    scores = alignment_scores(PREDICTED, SURE)
    assert scores["precision"] == pytest.approx(0.4)
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["aer"] == pytest.approx(0.5)


def test_gold_against_itself_is_perfect():
    possible = [set(p) | set(s) for p, s in zip(POSSIBLE, SURE)]
    assert alignment_scores(SURE, SURE, POSSIBLE) == {"aer": 0.0, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    # predicting every possible link is also AER 0 (precision counts possible links as correct), recall stays 1
    scores = alignment_scores(possible, SURE, POSSIBLE)
    assert scores["aer"] == 0.0 and scores["precision"] == 1.0 and scores["recall"] == 1.0


def test_empty_prediction():
    assert alignment_scores([[], []], SURE, POSSIBLE) == {"aer": 1.0, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert per_sentence_aer([[], []], SURE, POSSIBLE) == [1.0, 1.0]


def test_nothing_predicted_nothing_to_find():
    assert alignment_scores([[]], [[]]) == {"aer": 0.0, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert per_sentence_aer([[]], [[]]) == [0.0]
    assert alignment_scores([], []) == {"aer": 0.0, "precision": 1.0, "recall": 1.0, "f1": 1.0}


def test_duplicates_and_list_links_count_once():
    predicted = [[[0, 0], [0, 0], (1, 2), (2, 0)], [(0, 0), [1, 1]]]
    assert alignment_scores(predicted, SURE, POSSIBLE)["aer"] == pytest.approx(0.375)


def test_length_mismatch_names_both_counts():
    with pytest.raises(ValueError, match="predicted alignments cover 1 sentence pairs but the sure gold covers 2"):
        alignment_scores(PREDICTED[:1], SURE, POSSIBLE)
    with pytest.raises(ValueError, match="possible gold covers 3 sentence pairs but the sure gold covers 2"):
        per_sentence_aer(PREDICTED, SURE, POSSIBLE + [[]])

"""Diagnostics: CSLS retrieval, aligned word vectors, Cao word retrieval and Efimov distances, on tiny models."""

from __future__ import annotations

import math
import os

import datasets
import numpy as np
import pytest
import torch
from helpers import mbert_tokenizer, tiny_model

from amber_align.data.encoding import encode_aligned_pairs
from amber_align.diagnostics import csls as csls_module
from amber_align.diagnostics.csls import csls_nearest, csls_scores, nearest_neighbours, retrieval_accuracy
from amber_align.diagnostics.distances import format_distance_table, plot_distance_histograms, word_pair_distances
from amber_align.diagnostics.word_retrieval import word_retrieval
from amber_align.diagnostics.word_vectors import AlignedWordVectors, aligned_word_vectors, contextual_word_averages
from amber_align.errors import ConfigError, DataFormatError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
S = 1 / math.sqrt(2)

# mBERT subwords (position: token), checked by hand with the real vocabulary:
#   es: 0 [CLS] 1 Es 2 necesaria 3 una 4 trans 5 ##fusión 6 de 7 sangre 8 . 9 [SEP]
#   en: 0 [CLS] 1 A 2 blood 3 trans 4 ##fus 5 ##ion 6 is 7 necessary 8 . 9 [SEP]
#   de: 0 [CLS] 1 Ein 2 Knopf 3 ist 4 von 5 meine 6 ##m 7 He 8 ##md 9 ab 10 ##gegangen 11 . 12 [SEP]
#   en: 0 [CLS] 1 A 2 but 3 ##ton 4 has 5 come 6 off 7 my 8 shirt 9 . 10 [SEP]
PAIRS = [
    ("Es necesaria una transfusión de sangre .", "A blood transfusion is necessary .",
     [[0, 3], [1, 4], [2, 0], [3, 2], [6, 5]]),
    ("Ein Knopf ist von meinem Hemd abgegangen .", "A button has come off my shirt .",
     [[0, 0], [1, 1], [4, 5], [5, 6], [7, 7]]),
    # "\u200b" has no subwords: its link is skipped
    ("Hola \u200b amigo", "Hello there friend", [[0, 0], [1, 1], [2, 2]]),
]
# No word repeats across these sentences: a random tiny model is nearly context-free, so two occurrences of one word
# (say "the") get cosine ≈ 1 and retrieval between them would be a coin toss, not a property of the code.
SENTENCES = [
    "According to my guidebook , this restaurant serves excellent food .",
    "A blood transfusion is necessary !",
    "Her button came off yesterday",
    "We would like the manager please ?",
    "She bought three red apples at market",
    "Trains for Madrid leave early in morning ;",
]


def _encode(rows: list[tuple[str, str, list[list[int]]]]) -> datasets.Dataset:
    ds = datasets.Dataset.from_dict({
        "x_words": [x.split(" ") for x, _, _ in rows], "y_words": [y.split(" ") for _, y, _ in rows],
        "xy_links": [links for _, _, links in rows], "pair": ["xx-en"] * len(rows),
    })
    return encode_aligned_pairs(ds, mbert_tokenizer())


def _identical_pairs() -> datasets.Dataset:
    """x is a copy of y, linked word by word."""
    return _encode([(s, s, [[i, i] for i in range(len(s.split()))]) for s in SENTENCES])


@pytest.fixture(scope="module")
def model():
    return tiny_model("mbert")


@pytest.fixture(scope="module")
def pairs():
    return _encode(PAIRS)


# --- CSLS --------------------------------------------------------------------------------------------------------

def test_csls_hand_example():
    # x = e1, e2, e3;  y = e1, (e1+e2)/√2, e3;  cos = [[1, s, 0], [0, s, 0], [0, 0, 1]] with s = 1/√2.
    x = torch.eye(3)
    y = torch.tensor([[1.0, 0, 0], [1.0, 1.0, 0], [0, 0, 1.0]])  # unnormalised: csls_scores normalises
    # k = 1: r_Y(x) = row maxima = [1, s, 1]; r_X(y) = column maxima = [1, s, 1]; CSLS = 2cos − r_Y(x_i) − r_X(y_j)
    expected_k1 = torch.tensor([[0.0, S - 1, -2.0],
                                [-1 - S, 0.0, -1 - S],
                                [-2.0, -1 - S, 0.0]])
    torch.testing.assert_close(csls_scores(x, y, k=1), expected_k1)
    # k = 2: r_Y(x) = mean of the 2 largest per row = [(1+s)/2, s/2, 1/2]; r_X(y) per column = [1/2, s, 1/2]
    r_x, r_y = torch.tensor([(1 + S) / 2, S / 2, 0.5]), torch.tensor([0.5, S, 0.5])
    cos = torch.tensor([[1.0, S, 0], [0, S, 0], [0, 0, 1.0]])
    expected_k2 = 2 * cos - r_x[:, None] - r_y[None, :]
    #   = [[1 − s/2 ≈ 0.646, s/2 − 1/2 ≈ −0.146, −1.354],
    #      [−0.854, 0.354, −0.854], [−1.0, −1.207, 1.0]]
    torch.testing.assert_close(expected_k2[0, 0], torch.tensor(1 - S / 2))
    torch.testing.assert_close(expected_k2[0, 1], torch.tensor(S / 2 - 0.5))
    torch.testing.assert_close(csls_scores(x, y, k=2), expected_k2)
    assert csls_nearest(x, y, k=2).tolist() == [0, 1, 2]


def test_csls_avoids_a_hub():
    # 2-D unit vectors by angle. The hub h (8°) is the nearest target of every query; target a (−10°) is nearer to
    # q (0°) than any other query is. k = 1, r = r_Y(q): CSLS(q, h) = 2cos8° − r − 1 = 0.9805 − r and
    # CSLS(q, a) = 2cos10° − r − cos10° = 0.9848 − r, so CSLS picks a while cosine picks h.
    def unit(degrees):
        rad = torch.tensor(degrees) * math.pi / 180
        return torch.stack([rad.cos(), rad.sin()], dim=1)

    queries = unit([0.0, 8.0, 10.0, 12.0, 15.0])
    targets = unit([8.0, -10.0])
    assert nearest_neighbours(queries[:1], targets, method="cosine").item() == 0
    assert csls_nearest(queries, targets, k=1)[0].item() == 1
    assert csls_nearest(queries, targets, k=1)[1:].tolist() == [0, 0, 0, 0]


def test_csls_chunked_equals_unchunked(monkeypatch):
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(37, 8, generator=gen), torch.randn(23, 8, generator=gen)
    full, nearest = csls_scores(x, y, k=5), csls_nearest(x, y, k=5)
    monkeypatch.setattr(csls_module, "_CHUNK_ELEMENTS", 50)  # two rows per chunk
    torch.testing.assert_close(csls_scores(x, y, k=5), full)
    assert torch.equal(csls_nearest(x, y, k=5), nearest)
    assert torch.equal(nearest, full.argmax(dim=1))


def test_retrieval_accuracy_identical_and_gold():
    x = torch.randn(30, 16, generator=torch.Generator().manual_seed(1))
    assert retrieval_accuracy(x, x) == 100.0
    assert retrieval_accuracy(x, x, method="cosine") == 100.0
    perm = torch.randperm(30, generator=torch.Generator().manual_seed(2))
    assert retrieval_accuracy(x, x[perm], gold=torch.argsort(perm)) == 100.0
    assert retrieval_accuracy(x, x, gold=(torch.arange(30) + 1) % 30) == 0.0


def test_csls_input_errors():
    x = torch.randn(4, 3)
    with pytest.raises(ConfigError, match="k must be a positive integer"):
        csls_scores(x, x, k=0)
    with pytest.raises(DataFormatError, match="one width"):
        csls_nearest(x, torch.randn(4, 5))
    with pytest.raises(ConfigError, match="method must be one of"):
        retrieval_accuracy(x, x, method="dot")
    with pytest.raises(DataFormatError, match="no queries"):
        retrieval_accuracy(torch.zeros(0, 3), x)
    with pytest.raises(DataFormatError, match="one target index per query"):
        retrieval_accuracy(x, x, gold=torch.arange(3))
    with pytest.raises(DataFormatError, match="gold indices"):
        retrieval_accuracy(x, x, gold=torch.tensor([0, 1, 2, 9]))


# --- word vectors ------------------------------------------------------------------------------------------------

def test_aligned_word_vectors_spans_and_values(model, pairs):
    assert pairs["x_word_spans"][0][6:8] == [4, 6] and pairs["y_word_spans"][0][4:6] == [3, 6]  # transfusión/-ion
    assert pairs["x_word_spans"][2][2:4] == [-1, -1]  # "\u200b": no subwords
    vec = aligned_word_vectors(model, mbert_tokenizer(), pairs, layers=(0, -1), batch_size=2)
    assert isinstance(vec, AlignedWordVectors) and len(vec) == 5 + 5 + 2  # no [CLS]/[SEP] links, \u200b skipped
    assert vec.pair_index.tolist() == [0] * 5 + [1] * 5 + [2] * 2
    assert vec.src_words[3] == "transfusión" and vec.tgt_words[3] == "transfusion"
    assert (vec.src_words[7], vec.tgt_words[7]) == ("meinem", "my")
    assert vec.tgt_words[10:] == ["Hello", "friend"]
    assert set(vec.src) == {0, -1} and vec.src[-1].shape == (12, 32) and vec.src[-1].dtype == torch.float32

    x_states, y_states = _states(model, pairs, 0, "x"), _states(model, pairs, 1, "y")
    torch.testing.assert_close(vec.src[-1][3], x_states[-1][0, 4:6].mean(0), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(vec.src[0][3], x_states[0][0, 4:6].mean(0), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(vec.tgt[-1][6], y_states[-1][0, 2:4].mean(0), atol=1e-5, rtol=1e-4)  # but ##ton

    first = aligned_word_vectors(model, mbert_tokenizer(), pairs, pooling="first", max_links=4)
    last = aligned_word_vectors(model, mbert_tokenizer(), pairs, pooling="last", max_links=4)
    assert len(first) == len(last) == 4
    y_last = _states(model, pairs, 0, "y")[-1][0]
    torch.testing.assert_close(first.tgt[-1][3], y_last[3], atol=1e-5, rtol=1e-4)  # "trans" of transfusion
    torch.testing.assert_close(last.tgt[-1][3], y_last[5], atol=1e-5, rtol=1e-4)  # "##ion"


def _states(model, pairs, row, side):
    with torch.no_grad():
        return model(input_ids=torch.tensor([pairs[f"{side}_input_ids"][row]]), output_hidden_states=True).hidden_states


def test_aligned_word_vectors_errors(model, pairs):
    tok = mbert_tokenizer()
    with pytest.raises(DataFormatError, match="lack the column"):
        aligned_word_vectors(model, tok, pairs.remove_columns("x_word_spans"))
    with pytest.raises(ConfigError, match="out of range"):
        aligned_word_vectors(model, tok, pairs, layers=(3,))
    with pytest.raises(ConfigError, match="pooling must be one of"):
        aligned_word_vectors(model, tok, pairs, pooling="max")
    bad = pairs.map(lambda ex: {"xy_links": [[9, 0]]})
    with pytest.raises(DataFormatError, match="outside the x"):
        aligned_word_vectors(model, tok, bad)
    with pytest.raises(ConfigError, match="was not computed"):
        aligned_word_vectors(model, tok, pairs).layer(0)


def test_contextual_word_averages(model):
    sentences = [["Das", "Haus", "."], ["Ein", "haus", "und", "Baum"], ["Nichts", "hier"]]
    words, vectors = contextual_word_averages(model, mbert_tokenizer(), sentences, {"Haus", "baum", "Katze"})
    assert words == ["baum", "haus"] and vectors.shape == (2, 32)
    tok = mbert_tokenizer()
    with torch.no_grad():
        states = [model(**tok([s], is_split_into_words=True, return_tensors="pt")).last_hidden_state[0]
                  for s in sentences[:2]]
    haus_spans = [tok([s], is_split_into_words=True).word_ids(0) for s in sentences[:2]]
    occurrences = [st[[p for p, w in enumerate(ids) if w == 1]].mean(0) for st, ids in zip(states, haus_spans)]
    torch.testing.assert_close(vectors[1], torch.stack(occurrences).mean(0), atol=1e-5, rtol=1e-4)
    cased, _ = contextual_word_averages(model, tok, sentences, {"Haus"}, lowercase=False)
    assert cased == ["Haus"]
    # cut to [CLS] Das Haus [SEP]: "Haus" may be a cut word (its subwords could go on), so it is not counted
    cut, cut_vectors = contextual_word_averages(model, tok, [["Das", "Haus", "ist", "groß"]], {"das", "haus"},
                                                max_length=4)
    assert cut == ["das"] and cut_vectors.shape == (1, 32)
    with pytest.raises(DataFormatError, match="not a list of words"):
        contextual_word_averages(model, tok, ["Das Haus"], {"Haus"})


# --- word retrieval ----------------------------------------------------------------------------------------------

def test_word_retrieval_identical_sentences(model):
    pairs = _identical_pairs()
    n_words = sum(len(s.split()) for s in SENTENCES)
    assert len({w for s in SENTENCES for w in s.split()}) == n_words
    result = word_retrieval(model, mbert_tokenizer(), pairs)
    assert result["xx2en_accuracy"] == 100.0 and result["en2xx_accuracy"] == 100.0
    assert result["num_links"] == n_words
    cosine = word_retrieval(model, mbert_tokenizer(), pairs, method="cosine", layer=1, pooling="last")
    assert cosine["xx2en_accuracy"] == 100.0


def test_word_retrieval_runs_on_real_pairs(model, pairs):
    result = word_retrieval(model, mbert_tokenizer(), pairs, k=3)
    assert 0.0 <= result["xx2en_accuracy"] <= 100.0 and 0.0 <= result["en2xx_accuracy"] <= 100.0
    assert result["num_links"] == 12
    with pytest.raises(ConfigError, match="method must be one of"):
        word_retrieval(model, mbert_tokenizer(), pairs, method="euclid")


# --- distances ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def identical_vectors(model):
    return aligned_word_vectors(model, mbert_tokenizer(), _identical_pairs())


def test_distances_related_closer_for_identical_sentences(identical_vectors):
    res = word_pair_distances(identical_vectors)
    n = len(identical_vectors)
    assert res["num_links"] == n and len(res["difference"]) == n == len(res["related"]) == len(res["unrelated"])
    np.testing.assert_allclose(res["related"], 0.0, atol=1e-6)
    assert (res["unrelated"] > res["related"]).all() and res["unrelated_farther"] == 100.0
    np.testing.assert_allclose(res["difference"], res["unrelated"] - res["related"])
    assert (res["random_index"] != np.arange(n)).all()
    assert res["difference_mean"] == pytest.approx(res["difference"].mean())
    again = word_pair_distances(identical_vectors, seed=0)
    np.testing.assert_array_equal(again["unrelated"], res["unrelated"])
    other = word_pair_distances(identical_vectors, seed=1)
    assert not np.array_equal(other["random_index"], res["random_index"])
    table = format_distance_table({"before": res, "after | x": other})
    assert table.count("\n") == 4 and f"| before | {n} | 0.000 ± 0.000 |" in table and "after \\| x" in table


def test_distances_need_two_links():
    one = AlignedWordVectors(src={-1: torch.ones(1, 4)}, tgt={-1: torch.ones(1, 4)}, src_words=["a"],
                             tgt_words=["b"], pair_index=torch.zeros(1, dtype=torch.long))
    with pytest.raises(DataFormatError, match="at least 2"):
        word_pair_distances(one)


def test_plot_distance_histograms(tmp_path, identical_vectors, monkeypatch):
    before = word_pair_distances(identical_vectors, seed=0)
    after = {k: (v * 0.5 if isinstance(v, np.ndarray) else v) for k, v in before.items()}
    out = plot_distance_histograms({"before": before, "after alignment": after}, tmp_path / "plots" / "d.png",
                                   title="tiny")
    assert out == tmp_path / "plots" / "d.png" and out.read_bytes().startswith(PNG_SIGNATURE)
    old = out.read_bytes()

    with pytest.raises(DataFormatError, match="no 'difference'"):  # bad input: nothing written
        plot_distance_histograms({"x": {"related": [0.1], "unrelated": [0.2]}}, tmp_path / "bad.png")
    with pytest.raises(DataFormatError, match="at least one model"):
        plot_distance_histograms({}, tmp_path / "bad.png")

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)  # failure at the last step of the write: no partial file, old one kept
    with pytest.raises(OSError, match="disk full"):
        plot_distance_histograms({"before": before}, out)
    with pytest.raises(OSError, match="disk full"):
        plot_distance_histograms({"before": before}, tmp_path / "new.png")
    monkeypatch.undo()
    assert out.read_bytes() == old
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["d.png"]

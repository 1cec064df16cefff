"""Task metrics by hand: seqeval NER F1, SQuAD/MLQA EM-F1, BUCC ratio margin, mining, threshold, reader, evaluate
modules (loaded from their local directories, as offline users do)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from seqeval.metrics import f1_score, precision_score, recall_score

import amber_align.tasks.bucc as bucc_module
from amber_align.errors import ConfigError, DataFormatError
from amber_align.tasks.bucc import (
    BuccData,
    bucc_candidates,
    bucc_f1,
    evaluate_bucc,
    mine_candidates,
    ratio_margin_scores,
    read_bucc,
    tune_threshold,
)
from amber_align.tasks.metrics import (
    EVALUATE_MODULES,
    accuracy,
    evaluate_module_path,
    ner_scores,
    normalize_answer,
    precision_at_1,
    qa_scores,
    squad_em_f1,
)
from helpers import FIXTURES, mbert_tokenizer, tiny_model

BUCC_DIR = FIXTURES / "tasks" / "bucc"

# ---------------------------------------------------------------- NER

GOLD = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "I-ORG", "O", "B-PER"]]
PRED = [["B-PER", "O", "O", "B-LOC"], ["I-ORG", "I-ORG", "I-ORG", "O", "B-LOC"]]
# gold entities: PER(0-1) LOC(3) | ORG(0-2) PER(4)                 -> 4
# predicted:     PER(0)   LOC(3) | ORG(0-2) (I- opens a chunk) LOC(4) -> 4
# correct: LOC(3), ORG(0-2); PER(0) is a partial match of PER(0-1) and counts wrong -> P = R = F1 = 2/4 = 50
# per type: LOC gold 1, pred 2, tp 1 -> P 1/2, R 1, F1 2/3; ORG 1/1/1 -> 100; PER gold 2, pred 0 -> 0


def test_ner_scores_hand_computed_and_equal_to_seqeval():
    scores = ner_scores(GOLD, PRED, per_type=True)
    assert scores["f1"] == pytest.approx(50.0)
    assert scores["precision"] == pytest.approx(50.0) and scores["recall"] == pytest.approx(50.0)
    assert scores["f1_LOC"] == pytest.approx(200 / 3)
    assert scores["f1_ORG"] == pytest.approx(100.0) and scores["f1_PER"] == pytest.approx(0.0)
    assert set(ner_scores(GOLD, PRED)) == {"f1", "precision", "recall"}
    more_gold = GOLD + [["O", "B-MISC", "I-MISC", "B-PER"], ["O", "O"]]
    more_pred = PRED + [["O", "B-MISC", "I-MISC", "I-PER"], ["B-LOC", "O"]]
    got = ner_scores(more_gold, more_pred)
    assert got["f1"] == pytest.approx(100 * f1_score(more_gold, more_pred))
    assert got["precision"] == pytest.approx(100 * precision_score(more_gold, more_pred))
    assert got["recall"] == pytest.approx(100 * recall_score(more_gold, more_pred))
    # tuples are fine too (seqeval itself only recognises nested lists)
    assert ner_scores([tuple(s) for s in GOLD], [tuple(s) for s in PRED])["f1"] == pytest.approx(50.0)
    assert ner_scores([["O", "O"]], [["O", "O"]])["f1"] == 0.0  # no entity anywhere: 0, not an error


def test_ner_scores_length_mismatch():
    with pytest.raises(ConfigError, match="2 gold sentences but 1 predicted"):
        ner_scores(GOLD, PRED[:1])
    with pytest.raises(ConfigError, match="sentence 1 has 5 gold tags but 4 predicted"):
        ner_scores(GOLD, [PRED[0], PRED[1][:4]])
    with pytest.raises(ConfigError, match="map label ids to names"):
        ner_scores([[0, 1]], [[0, 1]])


def test_accuracy_and_p_at_1():
    assert accuracy([0, 1, 2, 2], [0, 1, 2, 0]) == {"accuracy": 75.0}
    with pytest.raises(ConfigError, match="3 predictions but 2 references"):
        accuracy([0, 1, 2], [0, 1])
    # q0 -> t0 right; q1 -> t2 (gold t1) wrong unless t1 and t2 hold the same text; q2 -> t1 (gold t2) likewise
    assert precision_at_1([0, 2, 1], [0, 1, 2]) == {"p@1": pytest.approx(100 / 3)}
    assert precision_at_1([0, 2, 1], [0, 1, 2], target_texts=["a", "b", "b "]) == {"p@1": 100.0}


# ---------------------------------------------------------------- SQuAD / MLQA


def test_squad_normalisation_and_em_f1_by_hand():
    assert normalize_answer("The Eiffel Tower.") == "eiffel tower"
    assert normalize_answer("U.S.A.") == "usa"
    assert normalize_answer("  A   cat,  an apple ") == "cat apple"
    assert squad_em_f1("The Eiffel Tower.", ["Eiffel Tower"]) == (1.0, 1.0)
    # "in the year 1871" -> [in, year, 1871] vs [1871]: 1 common, P = 1/3, R = 1, F1 = 2PR/(P+R) = (2/3)/(4/3) = 0.5
    assert squad_em_f1("in the year 1871", ["1871"]) == (0.0, pytest.approx(0.5))
    # maximum over the gold answers: vs "paris" F1 0.5, vs "city of paris" EM 1
    assert squad_em_f1("city of Paris", ["Paris", "the city of Paris"]) == (1.0, 1.0)
    # SQuAD drops ASCII punctuation only: «paris» stays one token that is not "paris"
    assert squad_em_f1("«Paris»", ["Paris"]) == (0.0, 0.0)
    # Spanish article under SQuAD rules: [la, alhambra] vs [alhambra]: P 1/2, R 1, F1 2/3
    assert squad_em_f1("la Alhambra", ["Alhambra"], "es") == (0.0, pytest.approx(2 / 3))


def test_mlqa_normalisation_per_language():
    assert normalize_answer("la Alhambra", "es", mlqa=True) == "alhambra"
    assert squad_em_f1("la Alhambra", ["Alhambra"], "es", mlqa=True) == (1.0, 1.0)
    assert normalize_answer("Los Reyes Católicos y unas islas", "spa", mlqa=True) == "reyes católicos y islas"
    assert normalize_answer("el Museo del Prado", "es", mlqa=True) == "museo del prado"  # "del" is no article
    assert normalize_answer("Der Rhein und des Kaisers Dom", "de", mlqa=True) == "rhein und kaisers dom"
    assert normalize_answer("der Rhein", "en", mlqa=True) == "der rhein"  # English rules keep German articles
    assert normalize_answer("những con mèo", "vi", mlqa=True) == "con mèo"
    assert normalize_answer("الكتاب", "ar", mlqa=True) == "كتاب"  # MLQA drops every "ال"
    # Unicode punctuation (Pi/Pf/Po) goes; SQuAD would keep it. Non-ASCII symbols stay (the official script),
    # ASCII ones (string.punctuation: $ + < = > ^ ` | ~) go; mlqa_no_symbols drops every symbol
    assert normalize_answer("¡«Hola»! ¿Qué?", "es", mlqa=True) == "hola qué"
    assert squad_em_f1("20 €", ["20"], "es", mlqa=True) == (0.0, pytest.approx(2 / 3))
    assert squad_em_f1("20 €", ["20"], "es", mlqa=True, drop_symbols=True) == (1.0, 1.0)
    assert normalize_answer("37 °C", "de", mlqa=True) == "37 °c"
    assert normalize_answer("37 °C", "de", mlqa=True, drop_symbols=True) == "37 c"
    assert normalize_answer("−40 $5 1⁄2", "en", mlqa=True) == "−40 5 1⁄2"
    assert normalize_answer("−40 $5 1⁄2", "en", mlqa=True, drop_symbols=True) == "40 5 12"
    assert squad_em_f1("20 €", ["20"]) == (0.0, pytest.approx(2 / 3))


def test_mlqa_chinese_per_character_tokens():
    assert normalize_answer("北京大学，2008年。", "zh", mlqa=True) == "北 京 大 学 2008 年"
    # [北, 京] vs [北, 京, 大, 学]: 2 common, P 1, R 1/2, F1 2/3
    assert squad_em_f1("北京", ["北京大学"], "zh", mlqa=True) == (0.0, pytest.approx(2 / 3))
    assert squad_em_f1("北京", ["北京大学"], "zh", mlqa=False) == (0.0, 0.0)  # SQuAD: one token each


def test_qa_scores_counts_missing_as_zero_and_ignores_unknown_ids(caplog):
    refs = {"q1": ["Eiffel Tower"], "q2": ["1871", "in 1871"], "q3": ["Berlin"]}
    # q1 EM 1 F1 1; q2 "the year 1871" -> [year, 1871] vs [in, 1871]: P 1/2 R 1/2 F1 1/2 (vs [1871]: P 1/2 R 1 F1 2/3)
    # q3 unanswered -> 0.  EM = 1/3, F1 = (1 + 2/3 + 0) / 3 = 5/9
    scores = qa_scores({"q1": "the Eiffel tower", "q2": "the year 1871"}, refs)
    assert scores == {"exact_match": pytest.approx(100 / 3), "f1": pytest.approx(500 / 9)}
    # an id the references lack is ignored, as by the official scripts, with a warning naming it
    with caplog.at_level("WARNING"):
        assert qa_scores({"q1": "Eiffel Tower", "q9": "y"}, refs)["exact_match"] == pytest.approx(100 / 3)
    assert "'q9'" in caplog.text
    with pytest.raises(DataFormatError, match="'q1' has no gold answer"):
        qa_scores({"q1": "x"}, {"q1": []})
    with pytest.raises(ConfigError, match="language code"):
        qa_scores({"q1": "x"}, refs, lang="", mlqa=True)


# ---------------------------------------------------------------- ratio margin and mining

X3 = torch.eye(3)
Y3 = torch.tensor([[0.6, 0.8, 0.0], [0.0, 1.0, 0.0], [0.8, 0.0, 0.6]])
# cos(x_i, y_j) = Y3[j, i]:  S = [[0.6, 0, 0.8], [0.8, 1, 0], [0, 0, 0.6]]
# k=1: row maxima r = (0.8, 1.0, 0.6), column maxima c = (0.8, 1.0, 0.8); margin = S_ij / ((r_i + c_j) / 2)
K1 = [[0.6 / 0.8, 0.0, 0.8 / 0.8], [0.8 / 0.9, 1.0 / 1.0, 0.0], [0.0, 0.0, 0.6 / 0.7]]
# k=2: row top-2 means r = (0.7, 0.9, 0.3), column top-2 means c = (0.7, 0.5, 0.7)
K2 = [[0.6 / 0.7, 0.0, 0.8 / 0.7], [0.8 / 0.8, 1.0 / 0.7, 0.0], [0.0, 0.0, 0.6 / 0.5]]


def test_ratio_margin_by_hand():
    assert torch.allclose(ratio_margin_scores(X3, Y3, k=1), torch.tensor(K1), atol=1e-6)
    assert torch.allclose(ratio_margin_scores(X3, Y3, k=2), torch.tensor(K2), atol=1e-6)
    assert torch.allclose(ratio_margin_scores(5 * X3, Y3, k=2), torch.tensor(K2), atol=1e-6)  # scale-free
    assert torch.allclose(ratio_margin_scores(X3, Y3, k=9), ratio_margin_scores(X3, Y3, k=3))  # k capped
    with pytest.raises(ConfigError, match="positive integer"):
        ratio_margin_scores(X3, Y3, k=0)


def test_mining_modes_by_hand():
    # k=2, from K2: forward best x0->y2 (8/7), x1->y1 (10/7), x2->y2 (1.2); backward y0->x1 (1.0), y1->x1, y2->x2
    def pairs(mode):
        return [(i, j, round(s, 4)) for i, j, s in mine_candidates(X3, Y3, k=2, mode=mode)]

    assert pairs("fwd") == [(1, 1, 1.4286), (2, 2, 1.2), (0, 2, 1.1429)]
    assert pairs("bwd") == [(1, 1, 1.4286), (2, 2, 1.2), (1, 0, 1.0)]
    # max: by score, one-to-one: (1,1), (2,2); (0,2) loses y2, (1,0) loses x1
    assert pairs("max") == [(1, 1, 1.4286), (2, 2, 1.2)]
    assert pairs("intersect") == [(1, 1, 1.4286), (2, 2, 1.2)]
    assert pairs("union") == [(1, 1, 1.4286), (2, 2, 1.2), (0, 2, 1.1429), (1, 0, 1.0)]
    with pytest.raises(ConfigError, match="mining mode"):
        mine_candidates(X3, Y3, mode="best")


def test_chunked_mining_matches_the_full_margin_matrix(monkeypatch):
    torch.manual_seed(0)
    x, y = torch.randn(37, 8), torch.randn(29, 8)
    full = ratio_margin_scores(x, y, k=4)
    expected = mine_candidates(x, y, k=4, mode="fwd")
    for i, j, score in expected:  # the best of the 4 nearest by cosine, scored by the full matrix's margin
        cos = torch.nn.functional.normalize(x, dim=-1)[i] @ torch.nn.functional.normalize(y, dim=-1).T
        nearest = cos.topk(4).indices
        assert j == int(nearest[full[i, nearest].argmax()]) and score == pytest.approx(float(full[i, j]), rel=1e-5)
    whole = {mode: mine_candidates(x, y, k=4, mode=mode) for mode in ("fwd", "max")}
    monkeypatch.setattr(bucc_module, "_X_CHUNK", 5)
    monkeypatch.setattr(bucc_module, "_Y_CHUNK", 3)  # smaller than k: top-k lists are merged across blocks
    for mode, expected_pairs in whole.items():
        chunked = mine_candidates(x, y, k=4, mode=mode)
        assert [(i, j) for i, j, _ in chunked] == [(i, j) for i, j, _ in expected_pairs]
        assert [s for *_, s in chunked] == pytest.approx([s for *_, s in expected_pairs], rel=1e-5)


# ---------------------------------------------------------------- threshold and F1

CANDIDATES = [("a1", "b1", 2.0), ("a2", "b2", 1.8), ("a3", "b3", 1.5), ("a4", "b4", 1.4), ("a5", "b5", 1.0)]
GOLD_PAIRS = {("a1", "b1"), ("a2", "b2"), ("a4", "b4"), ("a6", "b6")}
# keep top n (4 gold pairs, a6-b6 never mined): n=1 P 1 R 1/4 F .4; n=2 P 1 R 1/2 F 2/3; n=3 P 2/3 R 1/2 F 4/7;
# n=4 P 3/4 R 3/4 F .75; n=5 P 3/5 R 3/4 F 2/3
# best: top 4, threshold midway between 1.4 and 1.0 = 1.2


def test_tune_threshold_and_bucc_f1_by_hand():
    threshold, f1 = tune_threshold(CANDIDATES, GOLD_PAIRS)
    assert threshold == pytest.approx(1.2) and f1 == pytest.approx(75.0)
    assert bucc_f1(CANDIDATES, GOLD_PAIRS, threshold) == pytest.approx({"precision": 75.0, "recall": 75.0,
                                                                         "f1": 75.0})
    assert bucc_f1(CANDIDATES, GOLD_PAIRS, 1.9) == pytest.approx({"precision": 100.0, "recall": 25.0, "f1": 40.0})
    assert bucc_f1(CANDIDATES, GOLD_PAIRS, 3.0) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    # equal scores stand or fall together: with a3 tied to a2 the top-2 cut no longer exists
    tied = [("a1", "b1", 2.0), ("a2", "b2", 1.8), ("a3", "b3", 1.8), ("a4", "b4", 1.0)]
    threshold, f1 = tune_threshold(tied, {("a1", "b1"), ("a2", "b2")})
    assert threshold == pytest.approx(1.4) and f1 == pytest.approx(80.0)  # top 3: P 2/3, R 1 -> F1 0.8
    assert bucc_f1(tied, {("a1", "b1"), ("a2", "b2")}, threshold)["f1"] == pytest.approx(f1)
    # nothing right: the threshold admits nothing
    threshold, f1 = tune_threshold([("a", "b", 1.0)], {("a", "c")})
    assert f1 == 0.0 and bucc_f1([("a", "b", 1.0)], {("a", "c")}, threshold)["precision"] == 0.0
    with pytest.raises(ConfigError, match="needs gold pairs"):
        tune_threshold(CANDIDATES, set())


# ---------------------------------------------------------------- BUCC files


def test_read_bucc_fixture():
    data = read_bucc(BUCC_DIR, "deu", "sample")
    assert data.src_ids[0] == "de-000000001" and data.tgt_ids[-1] == "en-000000008"
    assert data.src_sentences[1] == "Im Jahr 1871 wurde das Deutsche Kaiserreich gegründet."
    assert ("de-000000002", "en-000000002") in data.gold and len(data.gold) == 3
    small = read_bucc(BUCC_DIR, "de", "training").truncate(5)
    assert len(small.src_ids) == 5 and small.gold == {("de-000000002", "en-000000001"),
                                                      ("de-000000004", "en-000000003"),
                                                      ("de-000000005", "en-000000004")}


def _write_split(directory: Path, de: str, en: str, gold: str | None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "de-en.sample.de").write_text(de, encoding="utf-8")
    (directory / "de-en.sample.en").write_text(en, encoding="utf-8")
    if gold is not None:
        (directory / "de-en.sample.gold").write_text(gold, encoding="utf-8")


DE = "de-1\tHallo Welt.\nde-2\tGuten Morgen.\n"
EN = "en-1\tHello world.\nen-2\tGood morning.\n"


def test_a_split_that_is_not_there_names_the_splits_that_are_and_the_flags(tmp_path):
    """Issue 23 item 9: a dev-only BUCC folder failed with 'file not found … sample' and no hint."""
    _write_split(tmp_path, DE, EN, "de-1\ten-1\n")
    for name in ("de", "en", "gold"):
        (tmp_path / f"de-en.sample.{name}").rename(tmp_path / f"de-en.dev.{name}")
    with pytest.raises(ConfigError, match=r"BUCC file not found: .*de-en\.sample\.de \(split 'sample'; splits found "
                                          r"for de-en: dev\); choose the splits with --bucc_dev_split .* and "
                                          r"--bucc_eval_split"):
        read_bucc(tmp_path, "de", "sample")
    assert read_bucc(tmp_path, "de", "dev").gold == {("de-1", "en-1")}


def test_read_bucc_errors_name_file_and_line(tmp_path):
    with pytest.raises(ConfigError, match=r"BUCC file not found: .*de-en\.sample\.de"):
        read_bucc(tmp_path, "de", "sample")
    _write_split(tmp_path / "a", DE + "de-3 no tab here\n", EN, "de-1\ten-1\n")
    with pytest.raises(DataFormatError, match=r"de-en\.sample\.de:3: expected 'id<TAB>sentence'"):
        read_bucc(tmp_path / "a", "de", "sample")
    _write_split(tmp_path / "b", DE, EN + "en-1\tHello again.\n", "de-1\ten-1\n")
    with pytest.raises(DataFormatError, match=r"de-en\.sample\.en:3: duplicate sentence id 'en-1' \(first on line 1"):
        read_bucc(tmp_path / "b", "de", "sample")
    _write_split(tmp_path / "c", DE, EN, "de-1\ten-1\nde-2\ten-7\n")
    with pytest.raises(DataFormatError, match=r"de-en\.sample\.gold:2: gold pair names id 'en-7'"):
        read_bucc(tmp_path / "c", "de", "sample")
    _write_split(tmp_path / "d", DE, EN, "en-1\tde-1\n")
    with pytest.raises(DataFormatError, match=r"gold:1: .*columns swapped"):
        read_bucc(tmp_path / "d", "de", "sample")
    _write_split(tmp_path / "e", DE, EN, "de-1 en-1\n")
    with pytest.raises(DataFormatError, match=r"gold:1: expected 'id_xx<TAB>id_en'"):
        read_bucc(tmp_path / "e", "de", "sample")
    _write_split(tmp_path / "f", DE, EN, None)
    with pytest.raises(ConfigError, match=r"de-en\.sample\.gold"):
        read_bucc(tmp_path / "f", "de", "sample")
    assert read_bucc(tmp_path / "f", "de", "sample", require_gold=False).gold == set()
    _write_split(tmp_path / "g" / "de-en", DE, EN + "\n", "de-1\ten-1\r\n")  # archive layout, CRLF, blank line
    assert read_bucc(tmp_path / "g", "de", "sample").gold == {("de-1", "en-1")}


# ---------------------------------------------------------------- end to end with a stub encoder


class ConceptTokenizer:
    """One token per sentence: the id of its "meaning" (gold pairs share one), so embeddings encode meaning."""

    pad_token_id = 0

    def __init__(self, concept: dict[str, int]):
        self.concept = concept

    def __call__(self, sentences, **_):
        return {"input_ids": [[self.concept[s]] for s in sentences]}

    def pad(self, batch, **_):
        ids = torch.tensor(batch["input_ids"])
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


class ConceptEncoder(torch.nn.Module):
    """Embedding = a shared direction + a random direction per concept: unrelated cosines near 0.5, as in mBERT."""

    def __init__(self, n: int, dim: int = 256):
        super().__init__()
        self.config = SimpleNamespace(num_hidden_layers=1, hidden_size=dim)
        generator = torch.Generator().manual_seed(0)
        noise = torch.nn.functional.normalize(torch.randn(n, dim, generator=generator), dim=-1)
        self.embed = torch.nn.Embedding.from_pretrained(noise + torch.full((dim,), dim ** -0.5))

    def forward(self, input_ids, attention_mask, output_hidden_states=True):
        states = self.embed(input_ids)
        return SimpleNamespace(hidden_states=(states, states))


def _concepts(splits: list[BuccData]) -> dict[str, int]:
    concept: dict[str, int] = {}
    for data in splits:
        by_id = dict(zip(data.src_ids + data.tgt_ids, data.src_sentences + data.tgt_sentences))
        for src, tgt in data.gold:
            concept[by_id[src]] = concept[by_id[tgt]] = len(concept) + 1
        for sentence in by_id.values():
            concept.setdefault(sentence, len(concept) + 1)
    return concept


def test_evaluate_bucc_on_fixture_with_meaning_encoder():
    splits = [read_bucc(BUCC_DIR, "de", split) for split in ("sample", "training")]
    concept = _concepts(splits)
    model, tokenizer = ConceptEncoder(len(concept) + 1), ConceptTokenizer(concept)
    scores = evaluate_bucc(model, tokenizer, ["de"], BUCC_DIR)
    assert scores["de_f1"] == 100.0 and scores["de_precision"] == 100.0 and scores["de_recall"] == 100.0
    assert scores["de_dev_f1"] == 100.0 and scores["mean_f1"] == 100.0 and 1.0 < scores["de_threshold"] < 2.0
    # identical texts are mined once and stand for every id carrying them
    data = splits[0]
    doubled = BuccData(data.src_ids, data.src_sentences, data.tgt_ids + ["en-000000099"],
                       data.tgt_sentences + [data.tgt_sentences[1]], data.gold)
    pairs = {(s, t) for s, t, _ in bucc_candidates(model, tokenizer, doubled)}
    assert {("de-000000002", "en-000000002"), ("de-000000002", "en-000000099")} <= pairs


def test_evaluate_bucc_with_tiny_mbert():
    scores = evaluate_bucc(tiny_model("mbert"), mbert_tokenizer(), ["de"], BUCC_DIR, layer=1, max_sentences=7)
    assert {"de_f1", "de_precision", "de_recall", "de_threshold", "de_dev_f1", "mean_f1"} <= set(scores)
    assert all(0.0 <= scores[f"de_{m}"] <= 100.0 for m in ("f1", "precision", "recall", "dev_f1"))
    with pytest.raises(ConfigError, match="no gold pair"):
        evaluate_bucc(tiny_model("mbert"), mbert_tokenizer(), ["de"], BUCC_DIR, max_sentences=1)


# ---------------------------------------------------------------- evaluate modules


def _load(name: str):
    import evaluate

    return evaluate.load(evaluate_module_path(name), keep_in_memory=True)


def test_evaluate_modules_match_the_functions():
    assert _load("xtreme_ner").compute(predictions=PRED, references=GOLD) == ner_scores(GOLD, PRED)
    assert _load("nli_accuracy").compute(predictions=[0, 1, 2, 2], references=[0, 1, 2, 0]) == {"accuracy": 75.0}
    refs = {"q1": ["la Alhambra", "Alhambra"], "q2": ["北京大学"], "q3": ["20 €"]}
    preds = {"q1": "Alhambra", "q2": "北京", "q3": "20"}
    squad = _load("mlqa_squad")
    for lang, mlqa in (("es", True), ("zh", True), ("en", False)):
        got = squad.compute(predictions=[{"id": k, "prediction_text": v} for k, v in preds.items()],
                            references=[{"id": k, "answers": {"text": v, "answer_start": [0] * len(v)}}
                                        for k, v in refs.items()], lang=lang, mlqa=mlqa)
        assert got == pytest.approx(qa_scores(preds, refs, lang=lang, mlqa=mlqa))
    tatoeba = _load("tatoeba_p_at_1")
    assert tatoeba.compute(predictions=[0, 2, 1], references=[0, 1, 2], target_texts=["a", "b", "b"]) == \
        precision_at_1([0, 2, 1], [0, 1, 2], target_texts=["a", "b", "b"])
    mined = [p for p in CANDIDATES if p[2] >= 1.2]
    got = _load("bucc_f1").compute(predictions=[[f"{s}\t{t}" for s, t, _ in mined]],
                                   references=[[f"{s}\t{t}" for s, t in GOLD_PAIRS]])
    assert got == pytest.approx(bucc_f1(CANDIDATES, GOLD_PAIRS, 1.2))
    with pytest.raises(ConfigError, match="unknown evaluate module"):
        evaluate_module_path("squad")


def test_evaluate_module_loads_offline_from_a_copy(tmp_path):
    """A copied module directory loads in a fresh process with the Hub switched off (what users do offline)."""
    copy = shutil.copytree(evaluate_module_path("mlqa_squad"), tmp_path / "mlqa_squad")
    code = ("import evaluate; m = evaluate.load(%r, keep_in_memory=True); print(m.compute(predictions=["
            "{'id': 'a', 'prediction_text': 'el Prado'}], references=[{'id': 'a', 'answers': {'text': ['Prado'], "
            "'answer_start': [0]}}], lang='es', mlqa=True))" % str(copy))
    env = {"HF_EVALUATE_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"),
           "HF_HOME": str(tmp_path / "hf"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr[-2000:]
    assert "{'exact_match': 100.0, 'f1': 100.0}" in out.stdout
    assert set(EVALUATE_MODULES) == {p.name for p in Path(evaluate_module_path("bucc_f1")).parent.iterdir()
                                     if (p / f"{p.name}.py").is_file()}


def test_evaluate_bucc_encodes_each_side_of_each_split_once_with_a_named_progress_bar(monkeypatch):
    """Issue 23 item 9: BUCC encoded a split's sides again when the dev split was also the evaluation split (a
    dev-only folder), with no progress bar saying what was encoded. Each split is encoded once, labelled."""
    import amber_align.tasks.bucc as bucc

    calls: list[tuple[int, str]] = []
    real = bucc.encode_sentences

    def counting(model, tokenizer, sentences, **kwargs):
        calls.append((len(sentences), kwargs["desc"]))
        return real(model, tokenizer, sentences, **kwargs)

    monkeypatch.setattr(bucc, "encode_sentences", counting)
    model, tokenizer = tiny_model("mbert"), mbert_tokenizer()
    evaluate_bucc(model, tokenizer, ["de"], BUCC_DIR, layer=1, dev_split="sample", eval_split="sample")
    assert [desc for _, desc in calls] == ["BUCC de sample: source side", "BUCC de sample: English side"]
    calls.clear()
    evaluate_bucc(model, tokenizer, ["de"], BUCC_DIR, layer=1)  # sample for the threshold, training scored
    assert [desc for _, desc in calls] == ["BUCC de sample: source side", "BUCC de sample: English side",
                                           "BUCC de training: source side", "BUCC de training: English side"]

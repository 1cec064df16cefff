"""Task tokenization: NER labels on first subwords, truncated words predicted O, NLI labels, QA windows and decoding."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
from helpers import mbert_tokenizer, xlmr_tokenizer

from amber_align.errors import ConfigError
from amber_align.tasks.preprocess import (IGNORE_INDEX, decode_ner_predictions, ner_label_list, tokenize_ner,
                                          tokenize_nli)
from amber_align.tasks.qa import postprocess_qa_predictions, prepare_qa_eval_features, prepare_qa_train_features

LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
L2I = {label: i for i, label in enumerate(LABELS)}


def _ner_ds() -> datasets.Dataset:
    return datasets.Dataset.from_dict({"tokens": [["Anton", "Zuccalmaglio", "besuchte", "Wolfsburg", "."]],
                                       "ner_tags": [["B-PER", "I-PER", "O", "B-LOC", "O"]], "lang": ["de"]})


def test_ner_label_list_order():
    assert ner_label_list([["B-PER", "O"], ["I-LOC", "B-ORG"]]) == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG",
                                                                     "B-PER", "I-PER"]


@pytest.mark.parametrize("kind", ["mbert", "xlmr"])
def test_ner_labels_on_first_subwords_only(kind):
    tok = mbert_tokenizer() if kind == "mbert" else xlmr_tokenizer()
    feats = tokenize_ner(_ner_ds(), tok, L2I, max_length=64)
    row = feats[0]
    enc = tok(_ner_ds()[0]["tokens"], is_split_into_words=True)
    word_ids = enc.word_ids()
    first = [i for i, w in enumerate(word_ids) if w is not None and (i == 0 or word_ids[i - 1] != w)]
    assert [row["labels"][i] for i in first] == [L2I[t] for t in _ner_ds()[0]["ner_tags"]]
    others = [i for i in range(len(word_ids)) if i not in first]
    assert all(row["labels"][i] == IGNORE_INDEX for i in others)
    assert len(first) == 5 and len(word_ids) > 7  # some word was split into several subwords
    assert [row["word_index"][i] for i in first] == [0, 1, 2, 3, 4]


def test_ner_truncated_words_are_predicted_o_and_gold_kept():
    tok = mbert_tokenizer()
    feats = tokenize_ner(_ner_ds(), tok, L2I, max_length=4)  # [CLS] + 2 subwords + [SEP]: the rest is cut off
    logits = np.full((1, 4, len(LABELS)), -5.0)
    logits[0, :, L2I["B-PER"]] = 5.0
    gold, pred = decode_ner_predictions(logits, feats, dict(enumerate(LABELS)))
    assert gold == [["B-PER", "I-PER", "O", "B-LOC", "O"]]
    seen = sum(1 for w in feats[0]["word_index"] if w >= 0)
    assert pred[0][:seen] == ["B-PER"] * seen and pred[0][seen:] == ["O"] * (5 - seen)


def test_ner_unknown_tag_names_it_and_the_source():
    ds = datasets.Dataset.from_dict({"tokens": [["Paris"]], "ner_tags": [["B-MISC"]], "lang": ["fr"]})
    with pytest.raises(ConfigError, match=r"test\.fr: tag 'B-MISC' is not in the label list"):
        tokenize_ner(ds, mbert_tokenizer(), L2I, max_length=16, source="test.fr")


def test_nli_labels_and_pairs():
    ds = datasets.Dataset.from_dict({"premise": ["Ein Mann schläft."], "hypothesis": ["Jemand ruht."],
                                     "label": ["entailment"], "lang": ["de"]})
    tok = mbert_tokenizer()
    feats = tokenize_nli(ds, tok, {"entailment": 0, "neutral": 1, "contradiction": 2}, max_length=32)
    assert feats[0]["labels"] == 0 and feats[0]["input_ids"].count(tok.sep_token_id) == 2
    bad = ds.map(lambda r: {"label": "contradictory!"})
    with pytest.raises(ConfigError, match="contradictory!"):
        tokenize_nli(bad, tok, {"entailment": 0, "neutral": 1, "contradiction": 2}, max_length=32)


def _qa_ds() -> datasets.Dataset:
    filler = " ".join(f"Satz{i} ist kein Hinweis." for i in range(30))
    context = filler + " Die Hauptstadt von Kenia ist Nairobi, eine große Stadt."
    start = context.index("Nairobi")
    return datasets.Dataset.from_dict({
        "id": ["q1"], "title": ["t"], "context": [context], "question": ["Was ist die Hauptstadt von Kenia?"],
        "answers": [{"text": ["Nairobi"], "answer_start": [start]}], "lang": ["de"]})


@pytest.mark.parametrize("kind", ["mbert", "xlmr"])
def test_qa_train_windows_point_at_the_answer_or_cls(kind):
    tok = mbert_tokenizer() if kind == "mbert" else xlmr_tokenizer()
    ds = _qa_ds()
    feats = prepare_qa_train_features(ds, tok, max_length=64, stride=16)
    assert len(feats) > 2  # the context needs several windows
    hits = [f for f in feats if f["start_positions"] != 0]
    assert hits, "no window contains the answer"
    for f in hits:
        span = tok.decode(f["input_ids"][f["start_positions"]: f["end_positions"] + 1]).replace(" ", "")
        assert span == "Nairobi"
    assert any(f["start_positions"] == 0 and f["end_positions"] == 0 for f in feats)


def test_qa_postprocess_picks_best_valid_span_across_windows():
    tok = mbert_tokenizer()
    ds = _qa_ds()
    feats = prepare_qa_eval_features(ds, tok, max_length=64, stride=16)
    n, length = len(feats), 64
    start, end = np.zeros((n, length)), np.zeros((n, length))
    # the answer's window: put the best start/end on "Nairobi" subwords
    context = ds[0]["context"]
    target = context.index("Nairobi")
    for i, f in enumerate(feats):
        offs = f["offset_mapping"]
        for k, o in enumerate(offs):
            if o is not None and o[0] == target:
                start[i, k] = 9.0
            if o is not None and o[1] == target + len("Nairobi"):
                end[i, k] = 9.0
    start[0, 0] = end[0, 0] = 50.0  # CLS scores highest but is not a context position: ignored
    preds = postprocess_qa_predictions(ds, feats, start, end, n_best=5, max_answer_length=30)
    assert preds == {"q1": "Nairobi"}


def test_qa_postprocess_respects_max_answer_length():
    tok = mbert_tokenizer()
    ds = _qa_ds()
    feats = prepare_qa_eval_features(ds, tok, max_length=64, stride=16)
    n = len(feats)
    start, end = np.zeros((n, 64)), np.zeros((n, 64))
    offs = feats[0]["offset_mapping"]
    ctx = [k for k, o in enumerate(offs) if o is not None]
    start[0, ctx[0]] = 10.0
    end[0, ctx[-1]] = 10.0  # a long span: rejected at max_answer_length 3
    end[0, ctx[1]] = 5.0
    preds = postprocess_qa_predictions(ds, feats, start, end, n_best=20, max_answer_length=3)
    context = ds[0]["context"]
    assert preds["q1"] == context[offs[ctx[0]][0]: offs[ctx[1]][1]]

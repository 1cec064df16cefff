"""Feature-based NER of Wang et al. (ICLR 2020): CRF against brute force, IOB2 constraints, frozen word features
(Σ_l h_l W_l on first subwords), the seed loop, and a training loop that can overfit."""

from __future__ import annotations

import itertools
import statistics
from pathlib import Path

import pytest
import torch
from helpers import mbert_tokenizer, tiny_model

from amber_align.errors import ConfigError, DataFormatError
from amber_align.tasks.feature_ner import (
    FeatureTagger,
    LinearChainCRF,
    extract_word_features,
    iob_allowed_transitions,
    predict_feature_tags,
    run_feature_ner,
    train_feature_tagger,
    viterbi_decode,
)
from amber_align.refinement.wang import RefinementMaps
from amber_align.tasks.metrics import ner_scores
from amber_align.tasks.ner_data import load_ner

NER = Path(__file__).resolve().parent / "fixtures" / "tasks" / "ner"
LAYERS = (1, 2)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny ops on a loaded 2-core machine: one intra-op thread is ~20x faster than two fighting for the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------------------------------------------------ CRF
def brute_force(crf: LinearChainCRF, emissions: torch.Tensor, length: int, allowed=None, allowed_start=None):
    """(log-partition, best path) of one sequence by enumerating every tag sequence of ``length``."""
    start, trans, end = crf.start_transitions, crf.transitions, crf.end_transitions
    scores = {}
    for path in itertools.product(range(crf.num_tags), repeat=length):
        if allowed_start is not None and not allowed_start[path[0]]:
            continue
        if allowed is not None and not all(allowed[a, b] for a, b in zip(path, path[1:])):
            continue
        s = start[path[0]] + emissions[0, path[0]] + end[path[-1]]
        for t in range(1, length):
            s = s + trans[path[t - 1], path[t]] + emissions[t, path[t]]
        scores[path] = s
    log_z = torch.logsumexp(torch.stack(list(scores.values())), 0)
    return log_z, list(max(scores, key=lambda p: scores[p].item()))


@pytest.mark.parametrize("lengths", [[3, 3], [3, 2, 1]])
def test_crf_log_partition_and_viterbi_equal_brute_force(lengths):
    torch.manual_seed(0)
    crf = LinearChainCRF(3).double()
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    emissions = torch.randn(len(lengths), 3, 3, dtype=torch.float64)
    mask = torch.arange(3)[None] < torch.tensor(lengths)[:, None]
    log_z = crf.log_partition(emissions, mask)
    paths = crf.decode(emissions, mask)
    for row, n in enumerate(lengths):
        want_z, want_path = brute_force(crf, emissions[row], n)
        assert log_z[row].item() == pytest.approx(want_z.item(), abs=1e-9)
        assert paths[row] == want_path
    # NLL of a path = log Z - score >= 0, and exp(-NLL) over all paths sums to 1
    tags = torch.tensor([[0, 1, 2]] * len(lengths))
    assert (crf.nll(emissions, tags, mask) > 0).all()
    total = sum(torch.exp(-crf.nll(emissions[:1], torch.tensor([p]), mask[:1]))
                for p in itertools.product(range(3), repeat=3)) if lengths[0] == 3 else torch.tensor(1.0)
    assert float(total.detach()) == pytest.approx(1.0, abs=1e-9)


def test_constrained_crf_sums_only_allowed_paths_and_never_decodes_i_after_o():
    labels = ["O", "B-PER", "I-PER"]
    allowed, allowed_start = iob_allowed_transitions(labels)
    assert allowed.tolist() == [[True, True, False], [True, True, True], [True, True, True]]
    assert allowed_start.tolist() == [True, True, False]
    torch.manual_seed(1)
    crf = LinearChainCRF(3, allowed=allowed, allowed_start=allowed_start).double()
    emissions = torch.randn(2, 3, 3, dtype=torch.float64)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    log_z = crf.log_partition(emissions, mask)
    paths = crf.decode(emissions, mask)
    for row, n in enumerate((3, 2)):
        want_z, want_path = brute_force(crf, emissions[row], n, allowed, allowed_start)
        assert log_z[row].item() == pytest.approx(want_z.item(), abs=1e-9)
        assert paths[row] == want_path
    # emissions that strongly prefer I-PER: every decoded path is still valid IOB2
    emissions = torch.randn(200, 6, 3)
    emissions[:, :, 2] += 4.0
    emissions[:, ::2, 0] += 6.0  # O at even positions: the unconstrained argmax would put I-PER after O
    for path in crf.float().decode(emissions, torch.ones(200, 6, dtype=torch.bool)):
        tags = [labels[t] for t in path]
        assert tags[0] != "I-PER"
        assert all(not (b == "I-PER" and a == "O") for a, b in zip(tags, tags[1:]))


def test_softmax_tagger_constrained_decoding_is_valid_iob2():
    labels = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    torch.manual_seed(0)
    tagger = FeatureTagger(8, labels, hidden=4, use_crf=False, constrain_iob=True).eval()
    with torch.no_grad():
        tagger.proj.bias.copy_(torch.tensor([0.0, -1.0, 3.0, -1.0, 3.0]))  # I- tags favoured everywhere
    for path in tagger.decode(torch.randn(20, 7, 8), torch.tensor([7, 5] * 10)):
        tags = [labels[t] for t in path]
        assert not tags[0].startswith("I-")
        assert all(not b.startswith("I-") or a[2:] == b[2:] and a != "O" for a, b in zip(tags, tags[1:]))


def test_crf_mask_must_be_a_prefix():
    crf = LinearChainCRF(3)
    with pytest.raises(DataFormatError, match="prefix"):
        crf.log_partition(torch.randn(1, 3, 3), torch.tensor([[True, False, True]]))
    with pytest.raises(DataFormatError, match="first position"):
        viterbi_decode(torch.randn(1, 2, 3), torch.tensor([[False, False]]), torch.zeros(3, 3), torch.zeros(3),
                       torch.zeros(3))


# ------------------------------------------------------------------------------------------------------- features
def random_orthogonal(d: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed)))
    return q


def make_maps(tau=None, unmapped=frozenset()) -> RefinementMaps:
    return RefinementMaps(maps={lay: random_orthogonal(32, lay) for lay in LAYERS}, method="orthogonal",
                          languages=("es",), tau=tau, meta={"model_name": "tiny"}, unmapped_words=unmapped)


@pytest.fixture(scope="module")
def model():
    return tiny_model("mbert")


def direct_features(model, words, maps=None, mapped_words=None):
    """Σ_l h_l (W_l) at the first subword of every word, one sentence at a time (no batching, no padding)."""
    enc = mbert_tokenizer()(words, is_split_into_words=True, return_tensors="pt")
    with torch.no_grad():
        states = model(**enc, output_hidden_states=True).hidden_states
    first = {}
    for pos, w in enumerate(enc.word_ids(0)):
        if w is not None and w not in first:
            first[w] = pos
    out = []
    for w in range(len(words)):
        vec = torch.zeros(32)
        for lay in LAYERS:
            h = states[lay][0, first[w]]
            if maps is not None and (mapped_words is None or words[w] in mapped_words):
                h = h @ maps.maps[lay]
            vec += h
        out.append(vec)
    return torch.stack(out)


def test_word_features_are_summed_first_subword_states(model):
    ds = load_ner(NER / "esp.testb")
    feats = extract_word_features(model, mbert_tokenizer(), ds, layers=LAYERS, foreign=True, batch_size=2)
    assert len(feats) == len(ds)
    for x, words in zip(feats, ds["tokens"]):
        assert x.shape == (len(words), 32) and x.dtype == torch.float32
        torch.testing.assert_close(x, direct_features(model, words), atol=1e-4, rtol=1e-4)


def test_word_features_apply_maps_to_foreign_words_only(model):
    ds = load_ner(NER / "esp.testb")
    maps = make_maps()
    tok = mbert_tokenizer()
    foreign = extract_word_features(model, tok, ds, maps=maps, layers=LAYERS, foreign=True)
    english = extract_word_features(model, tok, ds, maps=maps, layers=LAYERS, foreign=False)
    for x, e, words in zip(foreign, english, ds["tokens"]):
        torch.testing.assert_close(x, direct_features(model, words, maps), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(e, direct_features(model, words), atol=1e-4, rtol=1e-4)
    # vocabulary reallocation: the shared word "." stays unmapped
    realloc = make_maps(tau=0.9, unmapped=frozenset({"."}))
    x = extract_word_features(model, tok, ds, maps=realloc, layers=LAYERS, foreign=True)
    words = ds["tokens"][0]
    mapped = {w for w in words if w != "."}
    torch.testing.assert_close(x[0], direct_features(model, words, realloc, mapped), atol=1e-4, rtol=1e-4)


def test_words_beyond_max_length_get_zero_vectors_and_are_predicted_o(model, caplog):
    ds = load_ner(NER / "esp.testb")
    n = len(ds["tokens"][0])
    feats, present = extract_word_features(model, mbert_tokenizer(), ds, layers=LAYERS, foreign=False, max_length=6,
                                           return_mask=True)
    assert [len(p) for p in present] == [len(t) for t in ds["tokens"]]
    assert not present[0].all() and present[0][0] and len(feats[0]) == n
    assert (feats[0][~present[0]] == 0).all() and (feats[0][present[0]] != 0).any(dim=1).all()
    assert "have no feature" in caplog.text
    tagger = FeatureTagger(32, ["O", "B-ORG", "I-ORG"], hidden=4).eval()
    pred = predict_feature_tags(tagger, feats, present=present)
    assert all(t == "O" for t, p in zip(pred[0], present[0]) if not p)
    assert [len(p) for p in pred] == [len(t) for t in ds["tokens"]]


def test_word_features_reject_bad_layers(model):
    ds = load_ner(NER / "esp.testb")
    with pytest.raises(ConfigError, match="layer 9"):
        extract_word_features(model, mbert_tokenizer(), ds, foreign=False)  # the tiny model has 2 layers


# ----------------------------------------------------------------------------------------------------------- runs
def test_run_feature_ner_two_seeds(model):
    train = load_ner(NER / "eng.testa")
    evals = {"en": train, "es": load_ner(NER / "esp.testb"), "de": load_ner(NER / "wikiann_de.dev")}
    out = run_feature_ner(model, mbert_tokenizer(), train, evals, maps=make_maps(), layers=LAYERS, seeds=(1, 2),
                          epochs=2, hidden=8)
    assert out["seeds"] == [1, 2]
    assert out["label_list"] == ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    for lang in evals:
        r = out[lang]
        assert len(r["f1"]) == 2 and all(0.0 <= f <= 100.0 for f in r["f1"])
        assert r["f1_mean"] == pytest.approx(statistics.fmean(r["f1"]))
        assert r["f1_std"] == pytest.approx(statistics.stdev(r["f1"]))
        assert 0.0 <= r["precision_mean"] <= 100.0 and 0.0 <= r["recall_mean"] <= 100.0
    assert out["es"]["mapped"] and out["de"]["mapped"] and not out["en"]["mapped"]


def test_run_feature_ner_label_mismatch_names_label_and_language(model):
    train = load_ner(NER / "wikiann_de.dev")  # PER/ORG/LOC, no MISC
    with pytest.raises(ConfigError, match=r"eval set 'en'.*'MISC'"):
        run_feature_ner(model, mbert_tokenizer(), train, {"en": load_ner(NER / "eng.testa")}, layers=LAYERS,
                        seeds=(1,), epochs=1, hidden=4)
    out = run_feature_ner(model, mbert_tokenizer(), train, {"en": load_ner(NER / "eng.testa")}, layers=LAYERS,
                          seeds=(1,), epochs=1, hidden=4, label_mapping={"MISC": "O"})
    assert out["en"]["f1_std"] == 0.0 and len(out["en"]["f1"]) == 1
    with pytest.raises(ConfigError, match="seeds"):
        run_feature_ner(model, mbert_tokenizer(), train, {"de": train}, layers=LAYERS, seeds=())
    with pytest.raises(ConfigError, match="clash"):
        run_feature_ner(model, mbert_tokenizer(), train, {"seeds": train}, layers=LAYERS)


@pytest.mark.parametrize("use_crf", [True, False])
def test_tagger_overfits_a_tiny_training_set(model, use_crf):
    ds = load_ner(NER / "eng.testa")
    feats = extract_word_features(model, mbert_tokenizer(), ds, layers=LAYERS, foreign=False)
    labels = ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    tagger = train_feature_tagger(feats, ds["ner_tags"], labels, epochs=40, lr=2e-2, hidden=32, dropout=0.0,
                                  use_crf=use_crf, batch_size=2)
    pred = predict_feature_tags(tagger, feats)
    assert ner_scores(ds["ner_tags"], pred)["f1"] == 100.0

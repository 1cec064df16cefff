"""Wang et al. (2020) refinement: Procrustes / least squares, vocabulary reallocation, per-layer maps, BLI."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import mbert_tokenizer, tiny_model

from amber_align.demo import demo_dir
from amber_align.diagnostics.bli import APPROX_LABEL, bli, find_muse_dictionary, read_bli_sentences, read_muse
from amber_align.errors import ConfigError, DataFormatError
from amber_align.pipeline import build_alignment_datasets
from amber_align.refinement.procrustes import (
    SHARED,
    SRC_SPECIFIC,
    TGT_SPECIFIC,
    least_squares_map,
    link_mask_for_reallocation,
    orthogonal_procrustes,
    reallocate_vocabulary,
)
from amber_align.refinement.wang import (
    MAPS_FILE,
    META_FILE,
    RefinementMaps,
    apply_refinement,
    fit_refinement,
    load_refinement,
    mapped_token_mask,
    refined_features,
    save_refinement,
)
from amber_align.trainers import CaoConfig


def random_orthogonal(d: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return q.float()


# ------------------------------------------------------------------------------------------------ closed-form maps
def test_procrustes_recovers_a_known_orthogonal_map_in_the_row_convention():
    d, n = 16, 200
    w = random_orthogonal(d)
    z = torch.randn(n, d, generator=torch.Generator().manual_seed(1))
    x = z @ w
    w_hat = orthogonal_procrustes(x, z)
    assert w_hat.shape == (d, d) and w_hat.dtype == torch.float32
    assert (w_hat - w).abs().max().item() < 1e-5
    assert (z @ w_hat - x).abs().max().item() < 1e-4
    assert (w_hat.T @ w_hat - torch.eye(d)).abs().max().item() < 1e-5
    assert (w_hat - w.T).abs().max().item() > 0.1  # the convention is z @ W ≈ x, not W z


def test_procrustes_on_noisy_pairs_is_orthogonal_and_beats_identity():
    d, n = 8, 50
    g = torch.Generator().manual_seed(2)
    z = torch.randn(n, d, generator=g)
    x = z @ random_orthogonal(d, 3) + 0.1 * torch.randn(n, d, generator=g)
    w = orthogonal_procrustes(x, z)
    assert (w.T @ w - torch.eye(d)).abs().max().item() < 1e-5
    assert (z @ w - x).norm() < (z - x).norm()


def test_least_squares_recovers_a_full_rank_linear_map():
    d, n = 12, 100
    g = torch.Generator().manual_seed(4)
    a = torch.randn(d, d, generator=g) + 3 * torch.eye(d)
    z = torch.randn(n, d, generator=g)
    x = z @ a
    assert (least_squares_map(x, z) - a).abs().max().item() < 1e-4
    ridge = least_squares_map(x, z, ridge=1e3)
    assert ridge.norm() < a.norm()  # ridge shrinks towards 0


def test_map_input_errors():
    with pytest.raises(DataFormatError, match="same shape"):
        orthogonal_procrustes(torch.zeros(5, 4), torch.zeros(5, 3))
    with pytest.raises(DataFormatError, match="n = 0"):
        orthogonal_procrustes(torch.zeros(0, 4), torch.zeros(0, 4))
    with pytest.raises(DataFormatError, match="NaN"):
        least_squares_map(torch.full((3, 2), float("nan")), torch.zeros(3, 2))
    with pytest.raises(ConfigError, match="ridge"):
        least_squares_map(torch.ones(3, 2), torch.ones(3, 2), ridge=-1.0)


# --------------------------------------------------------------------------------------------- vocabulary reallocation
def test_reallocation_on_a_hand_worked_frequency_table():
    de = {"der": 40, "Berlin": 5, "und": 9, "Haus": 2, "OK": 1}
    en = {"the": 50, "Berlin": 5, "und": 1, "Haus": 3, "OK": 9}
    cats = reallocate_vocabulary(de, en, tau=0.9)
    assert cats["der"] == SRC_SPECIFIC  # only in de: 40/40 = 1.0
    assert cats["the"] == TGT_SPECIFIC
    assert cats["Berlin"] == SHARED  # 50/50
    assert cats["und"] == SRC_SPECIFIC  # exactly 9/10 = 0.9: the boundary is specific
    assert cats["OK"] == TGT_SPECIFIC  # 9/10 on the English side
    assert cats["Haus"] == SHARED  # 2/5 vs 3/5
    assert set(cats) == {"der", "the", "Berlin", "und", "Haus", "OK"}
    assert reallocate_vocabulary({"a": 27}, {"a": 3}, tau=0.9)["a"] == SRC_SPECIFIC  # 27/30 == 0.9 too
    assert reallocate_vocabulary({"a": 8}, {"a": 2}, tau=0.9)["a"] == SHARED
    for bad in (0.5, 1.5, "0.9", True):
        with pytest.raises(ConfigError, match="tau"):
            reallocate_vocabulary(de, en, tau=bad)
    with pytest.raises(DataFormatError, match="non-negative integer"):
        reallocate_vocabulary({"a": -1}, {}, tau=0.9)


def test_link_masks_fit_and_map_only_language_specific_foreign_words():
    cats = reallocate_vocabulary({"der": 10, "Berlin": 5, "OK": 1, "Haus": 9},
                                 {"the": 10, "Berlin": 5, "OK": 9, "house": 10, "Haus": 1}, tau=0.9)
    fit, mapped = link_mask_for_reallocation(["der", "Berlin", "OK", "Haus", "neu"],
                                             ["the", "Berlin", "OK", "Haus", "new"], cats)
    assert mapped.tolist() == [True, False, False, True, True]  # unseen "neu" is a foreign word: mapped
    assert fit.tolist() == [True, False, False, False, True]  # "Haus" on the English side is de-specific
    fit, mapped = link_mask_for_reallocation(["a", "b"], ["c", "d"], None)
    assert fit.all() and mapped.all()
    with pytest.raises(DataFormatError, match="pair up"):
        link_mask_for_reallocation(["a"], [], cats)


# ----------------------------------------------------------------------------------------------- save / load / apply
def make_maps(d: int = 32, layers=(1, 2)) -> RefinementMaps:
    return RefinementMaps(maps={lay: random_orthogonal(d, lay) for lay in layers}, method="orthogonal",
                          languages=("es",), tau=0.9, meta={"model_name": "tiny"}, unmapped_words=frozenset({"."}))


def test_save_load_round_trip(tmp_path):
    maps = make_maps()
    save_refinement(maps, tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / MAPS_FILE).is_file()
    meta = json.loads((tmp_path / "ckpt" / META_FILE).read_text())
    assert meta["layers"] == [1, 2] and meta["method"] == "orthogonal" and meta["tau"] == 0.9
    assert meta["languages"] == ["es"] and meta["hidden_size"] == 32 and meta["model_name"] == "tiny"
    assert not [p for p in (tmp_path / "ckpt").iterdir() if p.name.endswith(".tmp")]
    loaded = load_refinement(tmp_path / "ckpt", model=tiny_model("mbert"))
    assert loaded.layers == (1, 2) and loaded.languages == ("es",) and loaded.unmapped_words == {"."}
    for lay in (1, 2):
        assert torch.equal(loaded.maps[lay], maps.maps[lay])


def test_load_errors(tmp_path):
    with pytest.raises(ConfigError, match="alignment_maps.json is missing"):
        load_refinement(tmp_path)
    bad_meta = make_maps()
    bad_meta.meta["tensor"] = torch.zeros(1)
    with pytest.raises(ConfigError, match="JSON values only"):
        save_refinement(bad_meta, tmp_path / "c")
    assert not (tmp_path / "c").exists()  # nothing half-saved
    save_refinement(make_maps(d=16), tmp_path / "a")
    with pytest.raises(ConfigError, match="16-dim but the model's hidden size is 32"):
        load_refinement(tmp_path / "a", model=tiny_model("mbert"))
    save_refinement(make_maps(layers=(1, 5)), tmp_path / "b")
    with pytest.raises(ConfigError, match="layers \\[5\\]"):
        load_refinement(tmp_path / "b", model=tiny_model("mbert"))
    (tmp_path / "b" / META_FILE).write_text("{not json")
    with pytest.raises(DataFormatError, match="not valid JSON"):
        load_refinement(tmp_path / "b")
    meta = json.loads((tmp_path / "a" / META_FILE).read_text())
    meta["layers"] = [1, 2, 3]
    (tmp_path / "a" / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(DataFormatError, match="do not match the layers"):
        load_refinement(tmp_path / "a")


def test_refined_features_equal_sum_of_mapped_hidden_states():
    model, tok = tiny_model("mbert"), mbert_tokenizer()
    maps = make_maps()
    inputs = tok([["Hola", "mundo", "."], ["Buenos", "días"]], is_split_into_words=True, padding=True,
                 return_tensors="pt")
    with torch.no_grad():
        hs = model(**inputs, output_hidden_states=True).hidden_states
    direct_foreign = hs[1] @ maps.maps[1] + hs[2] @ maps.maps[2]
    direct_english = hs[1] + hs[2]
    got = refined_features(model, inputs, maps, layers=(1, 2), language_is_foreign=True)
    assert torch.allclose(got, direct_foreign, atol=1e-5)
    got = refined_features(model, inputs, maps, layers=(1, -1), language_is_foreign=False)
    assert torch.allclose(got, direct_english, atol=1e-5)
    mixed = refined_features(model, inputs, maps.maps, layers=(1, 2), language_is_foreign=torch.tensor([True, False]))
    assert torch.allclose(mixed[0], direct_foreign[0], atol=1e-5) and torch.allclose(mixed[1], direct_english[1],
                                                                                      atol=1e-5)
    stacked = refined_features(model, inputs, maps, layers=(1, 2), language_is_foreign=True, sum_layers=False)
    assert stacked.shape == (2, *direct_foreign.shape)
    # per-token mask: "." (unmapped by reallocation) and special tokens keep their unmapped states
    words = [["Hola", "mundo", "."], ["Buenos", "días"]]
    tokens = mapped_token_mask(inputs, words, maps)
    assert not tokens[:, 0].any() and tokens[0, 1]
    dot = inputs.word_ids(0).index(2)
    assert not tokens[0, dot]
    masked = refined_features(model, inputs, maps, layers=(1, 2), language_is_foreign=True, mapped_tokens=tokens)
    assert torch.allclose(masked[0, dot], direct_english[0, dot], atol=1e-5)
    assert torch.allclose(masked[0, 1], direct_foreign[0, 1], atol=1e-5)
    with pytest.raises(ConfigError, match="no refinement map for layer 0"):
        apply_refinement(hs, maps, layers=(0,))
    with pytest.raises(ConfigError, match="not a hidden_states index"):
        refined_features(model, inputs, maps, layers=(7,), language_is_foreign=True)


def demo_pairs(tmp_path, n: int = 20):
    data = demo_dir() / "data"
    config = CaoConfig(output_dir=str(tmp_path / "out"), report_to=[], use_cpu=True, pretokenized=True,
                       train_data=[{"file": str(data / "es-en.txt"), "format": "bar", "src_lang": "es",
                                    "tgt_lang": "en", "alignments": str(data / "es-en.pharaoh"), "max_pairs": n}])
    train, _ = build_alignment_datasets(config, mbert_tokenizer())
    return train


def test_fit_refinement_on_demo_pairs_saves_and_reloads(tmp_path):
    pairs = demo_pairs(tmp_path)
    model, tok = tiny_model("mbert"), mbert_tokenizer()
    refined = fit_refinement(model, tok, pairs, layers=(1, -1), tau=0.9)
    assert refined.layers == (1, 2) and refined.languages == ("es",) and refined.method == "orthogonal"
    for w in refined.maps.values():
        assert w.shape == (32, 32) and (w.T @ w - torch.eye(32)).abs().max().item() < 1e-4
    assert "." in refined.unmapped_words  # punctuation is shared between es and en
    assert 0 < refined.meta["num_links_fit"] < refined.meta["num_links"]
    before, after = refined.meta["relative_residual_before_after"]["2"]
    assert after <= before + 1e-6
    every = fit_refinement(model, tok, pairs, layers=(2,), tau=None, method="least_squares", max_links=100)
    assert every.meta["num_links"] == every.meta["num_links_fit"] == 100 and not every.unmapped_words
    save_refinement(refined, tmp_path / "ckpt")
    assert load_refinement(tmp_path / "ckpt", model=model).meta["num_links_fit"] == refined.meta["num_links_fit"]
    with pytest.raises(ConfigError, match="unknown refinement method"):
        fit_refinement(model, tok, pairs, layers=(2,), method="cca")


# ------------------------------------------------------------------------------------------------------------- BLI
def test_read_muse_lowercases_dedups_and_names_bad_lines(tmp_path):
    good = tmp_path / "es-en.txt"
    good.write_text("Gato cat\nperro\tdog\ngato CAT\n", encoding="utf-8")
    assert read_muse(good) == [("gato", "cat"), ("perro", "dog")]
    bad = tmp_path / "bad.txt"
    bad.write_text("gato cat\nperro dog extra\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bad\.txt:2: .*3 field"):
        read_muse(bad)
    bad.write_text("gato cat\n\nperro dog\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bad\.txt:2: .*blank line"):
        read_muse(bad)
    bad.write_bytes(b"gato cat\nni\xf1o child\n")
    with pytest.raises(DataFormatError, match=r"bad\.txt:2: invalid UTF-8"):
        read_muse(bad)
    bad.write_text("")
    with pytest.raises(DataFormatError, match="empty"):
        read_muse(bad)
    with pytest.raises(ConfigError, match="cannot be read"):
        read_muse(tmp_path / "missing.txt")


def write_dictionaries(directory):
    directory.mkdir()
    (directory / "es-en.0-5000.txt").write_text("gato cat\nperro dog\ncasa house\nnunca never\n")
    (directory / "es-en.5000-6500.approx.txt").write_text("hotel hotel\ntaxi taxi\ntaxi cab\npiano piano\n"
                                                          "ausente absent\n")
    return directory


def test_bli_reports_coverage_and_counts_missing_words_wrong(tmp_path):
    dictionaries = write_dictionaries(tmp_path / "muse")
    foreign = [["hotel"], ["taxi"], ["piano"], ["el", "gato", "y", "el", "perro"], ["la", "casa"]]
    english = [["hotel"], ["taxi"], ["piano"], ["the", "cat", "and", "the", "dog"], ["the", "house"]]
    model, tok = tiny_model("mbert"), mbert_tokenizer()
    # identical sentences give identical vectors; with k = 1 CSLS then retrieves each word's own copy
    res = bli(model, tok, "es", dictionary_dir=dictionaries, parallel_sentences=(foreign, english), layer=-1, k=1,
              method="none", target_space="dictionary")
    assert res["num_test_words"] == 4 and res["num_covered"] == 3
    assert res["coverage"] == pytest.approx(75.0)
    assert res["p@1_covered"] == pytest.approx(100.0)
    assert res["p@1"] == pytest.approx(75.0)  # "ausente" has no context: counted wrong
    assert res["label"] == APPROX_LABEL and res["num_train_pairs_used"] == 0
    res = bli(model, tok, "es", dictionary_dir=dictionaries, parallel_sentences=(foreign, english), layer=1)
    assert res["num_train_pairs"] == 4 and res["num_train_pairs_used"] == 3  # "nunca" has no context
    assert res["coverage"] == pytest.approx(75.0)
    assert res["p@1"] == pytest.approx(100.0 * res["num_correct"] / 4)
    assert res["num_target_words"] == len({w for s in english for w in s})
    with pytest.raises(ConfigError, match="tried"):
        bli(model, tok, "de", dictionary_dir=dictionaries, parallel_sentences=(foreign, english))
    with pytest.raises(ConfigError, match="method"):
        bli(model, tok, "es", dictionary_dir=dictionaries, parallel_sentences=(foreign, english), method="cca")


def test_read_bli_sentences_orients_either_column_order(tmp_path):
    corpus = tmp_path / "en-es.txt"
    corpus.write_text("the cat ||| el gato\nthe dog ||| el perro\n")
    foreign, english = read_bli_sentences({"file": str(corpus), "format": "bar", "src_lang": "en",
                                           "tgt_lang": "es"}, "spa", pretokenized=True)
    assert foreign == [["el", "gato"], ["el", "perro"]] and english[0] == ["the", "cat"]
    with pytest.raises(ConfigError, match="no de-en pairs"):
        read_bli_sentences({"file": str(corpus), "format": "bar", "src_lang": "en", "tgt_lang": "es"}, "de")


def test_read_muse_on_the_shared_dictionaries(shared_data):
    muse = shared_data / "muse"
    derived = muse / "derived_5000-6500_approx"
    test = read_muse(find_muse_dictionary(derived, "es", "5000-6500"))
    sources = {s for s, _ in test}
    assert 1000 < len(sources) <= 1500 and all(s == s.lower() and t == t.lower() for s, t in test)
    train = read_muse(find_muse_dictionary(derived, "de", "0-5000"))
    assert len({s for s, _ in train}) <= 5000 and len(train) > 5000
    full = read_muse(muse / "muse_format_full" / "fr-en.txt")
    assert len(full) > 100_000

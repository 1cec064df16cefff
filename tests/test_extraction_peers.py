"""Extraction against the field's reference implementations: SimAlign 0.4's own static ``iter_max``,
``apply_distortion`` and ``get_max_weight_match`` called on random matrices (skipped when simalign is not
importable), the issue's minimal cases, SimAlign's Match and word-level mode, awesome-align's entmax15 (against the
``entmax`` package) and its probability output."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from amber_align.extraction.methods import (apply_distortion, entmax15, entmax15_links, extract_links, link_scores,
                                            mwmf_links, simalign_similarity)


def links_of(matrix) -> set[tuple[int, int]]:
    return {(int(i), int(j)) for i, j in zip(*np.nonzero(np.asarray(matrix)))}


def ours(sim: np.ndarray, method: str, distortion: float = 0.0) -> set[tuple[int, int]]:
    """Our links on a SimAlign-scale matrix, inside a padded batch (the pair is not alone in its batch)."""
    m, n = sim.shape
    batch = torch.zeros(2, m + 2, n + 3, dtype=torch.float64)
    batch[0, :m, :n] = torch.as_tensor(sim)
    batch[1] = torch.rand(m + 2, n + 3, dtype=torch.float64)
    valid = torch.zeros_like(batch, dtype=torch.bool)
    valid[0, :m, :n] = True
    valid[1] = True
    return links_of(extract_links(batch, valid, method, distortion=distortion)[0].numpy())


def _simalign():
    try:
        from simalign import SentenceAligner
    except Exception as err:  # simalign imports transformers, sklearn, scipy, networkx: any may be missing
        pytest.skip(f"simalign 0.4 is not importable ({type(err).__name__}: {err}); pip install simalign --no-deps")
    return SentenceAligner


def _random_matrices(count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        m, n = rng.integers(1, 13, size=2)
        yield simalign_similarity(rng.uniform(-1, 1, size=(m, n)))


def test_itermax_distortion_and_match_equal_simalign_on_1000_random_matrices():
    aligner = _simalign()
    disagree = {"itermax": 0, "distortion+itermax": 0, "distortion+argmax": 0, "mwmf": 0}
    for sim in _random_matrices(1000):
        ref_itermax = links_of(aligner.iter_max(sim))
        disagree["itermax"] += ours(sim, "itermax") != ref_itermax
        distorted = aligner.apply_distortion(sim, 0.5)
        disagree["distortion+itermax"] += ours(sim, "itermax", 0.5) != links_of(aligner.iter_max(distorted))
        fwd, rev = aligner.get_alignment_matrix(distorted)
        disagree["distortion+argmax"] += ours(sim, "argmax", 0.5) != links_of(fwd * rev)
        disagree["mwmf"] += ours(sim, "mwmf") != links_of(aligner.get_max_weight_match(sim))
    assert disagree == {k: 0 for k in disagree}


def test_minimal_cases_from_the_issue_on_cosines():
    cos = torch.tensor([[[0.9, 0.1, 0.0], [0.8, 0.65, 0.1], [0.0, 0.2, 0.7]]])
    valid = torch.ones_like(cos, dtype=torch.bool)
    assert links_of(extract_links(cos, valid, "itermax", cosine=True)[0]) == {(0, 0), (1, 1), (2, 2)}
    row = torch.tensor([[[0.5, 0.55, 0.6]]])  # one source subword: SimAlign leaves the matrix unchanged
    one = torch.ones_like(row, dtype=torch.bool)
    assert torch.equal(apply_distortion(row, one, 0.5), row)
    assert links_of(extract_links(row, one, "argmax", distortion=0.5, cosine=True)[0]) == {(0, 2)}


def test_negative_cosines_are_not_a_bonus_far_from_the_diagonal():
    cos = torch.tensor([[[-0.2, -0.3], [-0.3, -0.2]]])
    valid = torch.ones_like(cos, dtype=torch.bool)
    assert links_of(extract_links(cos, valid, "argmax", distortion=1.0, cosine=True)[0]) == {(0, 0), (1, 1)}


def test_mwmf_is_a_maximum_weight_matching_hand_built():
    # greedy argmax would take (0,0)=0.9 for both row 0 and row 1; the matching trades it for a larger total
    sim = torch.tensor([[[0.9, 0.8, 0.1], [0.85, 0.2, 0.1]]])
    valid = torch.ones_like(sim, dtype=torch.bool)
    assert links_of(mwmf_links(sim, valid)[0]) == {(0, 1), (1, 0)}
    valid[0, :, 2] = False  # padding column is never linked
    assert all(j < 2 for _, j in links_of(mwmf_links(sim, valid)[0]))


def test_entmax15_equals_the_entmax_package_and_is_sparse():
    try:
        from entmax import entmax15 as reference
    except ImportError as err:
        pytest.skip(f"the entmax package is not installed ({err})")
    torch.manual_seed(0)
    x = torch.randn(50, 7, 9, dtype=torch.float64) * 3
    valid = torch.ones_like(x, dtype=torch.bool)
    for dim in (1, 2):
        assert torch.allclose(entmax15(x, valid, dim), reference(x, dim=dim), atol=1e-10)
    valid[:, :, 6:] = False  # padding: as if those columns were not there
    assert torch.allclose(entmax15(x, valid, 2)[:, :, :6], reference(x[:, :, :6], dim=2), atol=1e-10)
    assert (entmax15(x, valid, 2)[:, :, 6:] == 0).all()


def test_entmax15_links_hand_built():
    # row 0 clearly prefers column 0; row 1 is split between columns 1 and 2 (entmax keeps both, drops column 0)
    sim = torch.tensor([[[4.0, 0.0, 0.0], [0.0, 2.0, 2.0], [0.0, 2.0, 2.0]]])
    valid = torch.ones_like(sim, dtype=torch.bool)
    assert links_of(entmax15_links(sim, valid)[0]) == {(0, 0), (1, 1), (1, 2), (2, 1), (2, 2)}
    assert links_of(extract_links(sim, valid, "entmax15")[0]) == links_of(entmax15_links(sim, valid)[0])


def test_link_scores_are_awesome_aligns_harmonic_mean():
    sim = torch.tensor([[[2.0, 0.0], [0.0, 2.0]]])
    valid = torch.ones_like(sim, dtype=torch.bool)
    p = torch.softmax(sim / 2 ** 0.5, dim=2)
    q = torch.softmax(sim / 2 ** 0.5, dim=1)
    assert torch.allclose(link_scores(sim, valid), 2 * p * q / (p + q + 1e-9))
    assert float(link_scores(sim, valid)[0, 0, 0]) > 0.5 > float(link_scores(sim, valid)[0, 0, 1])


def test_word_level_mode_averages_subwords_and_links_words():
    from helpers import mbert_tokenizer, tiny_model

    from amber_align.extraction import WordAligner
    from amber_align.extraction.extractor import _mean_over_words

    hidden = torch.tensor([[[1.0, 0.0], [3.0, 2.0], [5.0, 5.0]]])
    pooled, words = _mean_over_words(hidden, [[0, 0, 2]])  # word 1 has no subword (tokenizer dropped it)
    assert words == [[0, 2]] and torch.allclose(pooled, torch.tensor([[[2.0, 1.0], [5.0, 5.0]]]))
    sentences = ["Die Unabhängigkeitserklärung wurde unterzeichnet .", "Antidisestablishmentarianism , obviously !"]
    model, tok = tiny_model("mbert"), mbert_tokenizer()
    for method in ("argmax", "itermax", "mwmf"):
        aligner = WordAligner(model, tok, layer=2, method=method, level="word")
        out = aligner.align(sentences, sentences, pretokenized=True)
        assert out == [[(k, k) for k in range(len(s.split()))] for s in sentences]


def test_scores_come_with_each_link():
    from helpers import mbert_tokenizer, tiny_model

    from amber_align.extraction import WordAligner

    model, tok = tiny_model("mbert"), mbert_tokenizer()
    src, tgt = ["Ein kleines Haus ."], ["Ein kleines Haus ."]
    for method in ("softmax", "entmax15", "itermax"):
        aligner = WordAligner(model, tok, layer=2, method=method)
        plain = aligner.align(src, tgt, pretokenized=True)
        scored = aligner.align(src, tgt, pretokenized=True, with_scores=True)
        assert [[(i, j) for i, j, _ in pair] for pair in scored] == plain
        assert all(0.0 <= p <= 1.0 + 1e-6 for pair in scored for _, _, p in pair)


def test_bad_level_and_method_are_config_errors():
    from amber_align.errors import ConfigError
    from amber_align.extraction import ExtractionSettings

    with pytest.raises(ConfigError, match=r"level: expected one of \('subword', 'word'\), got 'char'"):
        ExtractionSettings(level="char")
    with pytest.raises(ConfigError, match="'mwmf'"):
        ExtractionSettings(method="match")
    assert ExtractionSettings(method="mwmf").cosine and not ExtractionSettings(method="entmax15").cosine


def test_word_aligner_equals_simalign_sentence_aligner_end_to_end(tmp_path):
    """SimAlign's whole pipeline (its own tokenization, encoding, (cos+1)/2, prior, methods) on a tiny model
    directory against WordAligner: the same word links for every method, level and distortion."""
    import logging
    from pathlib import Path

    from helpers import tiny_model_dir

    from amber_align.extraction import WordAligner

    sentence_aligner = _simalign()
    model_dir = tiny_model_dir("mbert", tmp_path / "m")
    cjk = Path(__file__).parent / "fixtures" / "word_alignment_cjk"
    lines = (cjk / "jaen.src-tgt").read_text().splitlines() + (cjk / "zhen.src-tgt").read_text().splitlines()
    lines += ["Die Unabhängigkeitserklärung wurde gestern unterzeichnet . ||| The declaration was signed yesterday .",
              "kurz ||| short",
              "Antidisestablishmentarianism , obviously ! ||| Natürlich , Antidisestablishmentarianismus"]
    pairs = [(line.split(" ||| ")[0].split(), line.split(" ||| ")[1].split()) for line in lines]
    logging.getLogger("simalign").setLevel(logging.WARNING)
    loaded = WordAligner.from_pretrained(str(model_dir), layer=2, device="cpu")
    for distortion in (0.0, 0.5):
        for token_type, level in (("bpe", "subword"), ("word", "word")):
            ref = sentence_aligner(model=str(model_dir), token_type=token_type, distortion=distortion,
                                   matching_methods="aim", layer=2)
            expected = [ref.get_word_aligns(s, t) for s, t in pairs]
            for method, key in (("argmax", "inter"), ("itermax", "itermax"), ("mwmf", "mwmf")):
                ours = WordAligner(loaded.model, loaded.tokenizer, layer=2, method=method, distortion=distortion,
                                   level=level, device="cpu")
                got = list(ours.iter_align(pairs))
                assert got == [[tuple(x) for x in e[key]] for e in expected], (method, level, distortion)


def test_probability_file_resumes_in_step_with_the_links(tmp_path, monkeypatch):
    from helpers import interrupt_on_chunk, mbert_tokenizer, tiny_model

    from amber_align.extraction import WordAligner
    from amber_align.extraction.stream import extract_to_file

    (tmp_path / "c.txt").write_text("".join(f"ein Haus {k} ||| a house {k} here\n" for k in range(11)))
    model = tiny_model("mbert")
    fresh = WordAligner(model, mbert_tokenizer(), layer=2, batch_size=2, chunk_size=4)
    extract_to_file(fresh, tmp_path / "ref", file=str(tmp_path / "c.txt"), progress=False, prob_out=tmp_path / "ref.p")
    aligner = WordAligner(model, mbert_tokenizer(), layer=2, batch_size=2, chunk_size=4)
    real = interrupt_on_chunk(aligner, monkeypatch, chunk=3)
    with pytest.raises(KeyboardInterrupt):
        extract_to_file(aligner, tmp_path / "out", file=str(tmp_path / "c.txt"), progress=False,
                        prob_out=tmp_path / "out.p")
    with open(tmp_path / "out.p.partial", "a") as f:
        f.write("0.5 0.")  # torn line in the probability file only
    monkeypatch.setattr(aligner, "_align_chunk", real)
    summary = extract_to_file(aligner, tmp_path / "out", file=str(tmp_path / "c.txt"), progress=False,
                              prob_out=tmp_path / "out.p")
    assert summary["resumed_from"] == 8
    assert (tmp_path / "out").read_bytes() == (tmp_path / "ref").read_bytes()
    assert (tmp_path / "out.p").read_bytes() == (tmp_path / "ref.p").read_bytes()
    links = [len(x.split()) for x in (tmp_path / "out").read_text().splitlines()]
    assert links == [len(x.split()) for x in (tmp_path / "out.p").read_text().splitlines()] and sum(links) > 0


def test_an_existing_probability_file_is_refused(tmp_path, capsys):
    from helpers import tiny_model_dir

    from amber_align.cli import main

    (tmp_path / "c.txt").write_text("a b ||| a b\n")
    (tmp_path / "o.prob").write_text("old\n")
    rc = main(["extract-alignments", "--model", str(tiny_model_dir("mbert", tmp_path / "m")), "--layer", "2",
               "--file", str(tmp_path / "c.txt"), "--out", str(tmp_path / "o"),
               "--output_prob", str(tmp_path / "o.prob")])
    err = capsys.readouterr().err
    assert rc == 2 and "o.prob exists (a finished run)" in err and not (tmp_path / "o").exists()

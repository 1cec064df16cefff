"""Alignment extraction from an encoder: methods on hand-built matrices, subword->word mapping for mBERT and XLM-R,
batching invariance, streaming = in-memory, resume after an interruption, CLI and its bad input."""

from __future__ import annotations


import pytest
import torch
from helpers import interrupt_on_chunk, mbert_tokenizer, tiny_model, tiny_model_dir, xlmr_tokenizer

from amber_align.cli import main
from amber_align.errors import ConfigError, DataFormatError
from amber_align.extraction import ExtractionSettings, WordAligner
from amber_align.extraction.extractor import _word_links
from amber_align.extraction.methods import (apply_distortion, argmax_links, extract_links, itermax_links,
                                            softmax_links, valid_mask)
from amber_align.extraction.stream import extract_to_file

SIM = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.8, 0.7], [0.1, 0.6, 0.5]])
TOKENIZERS = {"mbert": mbert_tokenizer, "xlmr": xlmr_tokenizer}
# words that split into several pieces in both vocabularies, plus punctuation
SENTENCES = ["Die Unabhängigkeitserklärung wurde unterzeichnet .", "Antidisestablishmentarianism , obviously !",
             "Ça marche très bien", "Der Bundesverfassungsgerichtspräsident spricht", "kurz", "a b c d e f g h"]


def links_of(matrix: torch.Tensor) -> set[tuple[int, int]]:
    return {tuple(x) for x in matrix.nonzero().tolist()}


def full_valid(sim: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(sim, dtype=torch.bool)


def test_argmax_intersection_hand_worked():
    # rows: 0->0, 1->1, 2->1; columns: 0->0, 1->1, 2->1: only (0,0) and (1,1) agree
    assert links_of(argmax_links(SIM[None], full_valid(SIM[None]))[0]) == {(0, 0), (1, 1)}


def test_itermax_hand_worked_as_simalign():
    # round 2: row 2 and column 2 are free; scaled candidates (2,1)=0.54, (2,2)=0.5, (1,2)=0.63, (2,0)=0.09
    # -> (2,1) is best in row 2 and column 1, (1,2) best in row 1 and column 2
    out = itermax_links(SIM[None], full_valid(SIM[None]), max_count=2, alpha=0.9)[0]
    assert links_of(out) == {(0, 0), (1, 1), (1, 2), (2, 1)}
    # max_count=1 is plain argmax; a 2x2 pair (shorter side <= 2) keeps the argmax result
    assert links_of(itermax_links(SIM[None], full_valid(SIM[None]), max_count=1)[0]) == {(0, 0), (1, 1)}
    small = SIM[None, :2, :2]
    assert links_of(itermax_links(small, full_valid(small))[0]) == links_of(argmax_links(small, full_valid(small))[0])


def test_softmax_threshold_hand_worked():
    sim = torch.tensor([[[10.0, 0.0], [0.0, 10.0]]])  # off-diagonal probability e^-10/(1+e^-10) = 4.5e-5
    assert links_of(softmax_links(sim, full_valid(sim))[0]) == {(0, 0), (1, 1)}
    assert links_of(softmax_links(sim, full_valid(sim), threshold=1e-5)[0]) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    one_row = torch.zeros(1, 1, 2)  # row softmax 0.5 / 0.5, column softmax over one row = 1: both links
    assert links_of(softmax_links(one_row, full_valid(one_row))[0]) == {(0, 0), (0, 1)}


def test_padding_does_not_change_links_and_is_never_linked():
    torch.manual_seed(0)
    a, b = torch.randn(3, 4), torch.randn(2, 5)
    batch = torch.full((2, 3, 5), 7.0)  # large values in the padding must be ignored
    batch[0, :3, :4], batch[1, :2, :5] = a, b
    valid = valid_mask(torch.tensor([3, 2]), torch.tensor([4, 5]), 3, 5)
    for method in ("softmax", "argmax", "itermax"):
        out = extract_links(batch, valid, method)
        assert links_of(out[0]) == links_of(extract_links(a[None], full_valid(a[None]), method)[0])
        assert links_of(out[1]) == links_of(extract_links(b[None], full_valid(b[None]), method)[0])
        assert not (out & ~valid).any()


def test_distortion_hand_worked():
    sim = torch.ones(1, 3, 3)
    out = apply_distortion(sim, full_valid(sim), 0.5)[0]
    assert out[0, 0] == 1.0 and out[0, 2] == pytest.approx(0.5) and out[0, 1] == pytest.approx(1 - 0.5 * 0.25)
    assert torch.equal(apply_distortion(sim, full_valid(sim), 0.0), sim)


def test_word_links_any_subword_pair_links_the_words():
    # pair 0: source subwords -> words [0, 0, 1], target [0, 1, 1]; links on subwords (0,2), (1,1), (2,0)
    out = _word_links([[0, 0, 2], [0, 1, 1], [0, 2, 0], [1, 0, 0]], [[0, 0, 1], [0]], [[0, 1, 1], [0]], 2)
    assert out == [[(0, 1), (1, 0)], [(0, 0)]]


@pytest.mark.parametrize("kind", ["mbert", "xlmr"])
@pytest.mark.parametrize("method", ["argmax", "itermax"])
def test_a_sentence_aligned_with_itself_links_each_word_to_itself(kind, method):
    """Identical sides give identical vectors, so cosine argmax is the diagonal: multi-piece words map to one
    word link each, and the special tokens (left out of the matrix) never appear."""
    tok = TOKENIZERS[kind]()
    assert any(len(tok.tokenize(w)) > 2 for s in SENTENCES for w in s.split())  # multi-piece words are present
    aligner = WordAligner(tiny_model(kind), tok, layer=2, method=method, batch_size=4)
    out = aligner.align(SENTENCES, SENTENCES, pretokenized=True)
    assert out == [[(k, k) for k in range(len(s.split()))] for s in SENTENCES]


@pytest.mark.parametrize("method", ["softmax", "argmax", "itermax"])
def test_batching_and_bucketing_do_not_change_links(method):
    src = SENTENCES + ["Ein kleines Haus", "Hallo Welt !"]
    tgt = list(reversed(src))
    model = tiny_model("mbert")
    one = WordAligner(model, mbert_tokenizer(), layer=1, method=method, batch_size=1).align(src, tgt)
    many = WordAligner(model, mbert_tokenizer(), layer=1, method=method, batch_size=8, chunk_size=8).align(src, tgt)
    assert one == many and any(one)


def test_only_the_layers_up_to_the_chosen_one_run_and_match_hidden_states():
    model = tiny_model("mbert")
    aligner = WordAligner(model, mbert_tokenizer(), layer=1)
    ids = torch.tensor([[101, 10140, 10105, 102]])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[1]
    assert torch.allclose(aligner._hidden(ids, mask), expected, atol=1e-5)
    assert len(model.encoder.layer) == 2  # restored


def test_empty_sides_and_settings_errors():
    aligner = WordAligner(tiny_model("mbert"), mbert_tokenizer(), layer=2)
    assert aligner.align(["", "ein Haus"], ["a house", ""]) == [[], []]
    long = " ".join(["Haus"] * 200)  # 202 positions > the tiny model's 128: no links, never truncated
    out = aligner.align([long, "ein Haus"], ["house", "a house"])
    assert out[0] == [] and out[1] and aligner.skipped_too_long == 1
    with pytest.raises(ConfigError, match="layer 9 is out of range: this model has 2 layers"):
        WordAligner(tiny_model("mbert"), mbert_tokenizer(), layer=9)
    with pytest.raises(ConfigError, match="method: expected one of .* got 'max'"):
        ExtractionSettings(method="max")
    with pytest.raises(ConfigError, match="threshold: expected a probability in \\(0, 1\\), got 2"):
        ExtractionSettings(threshold=2)
    with pytest.raises(DataFormatError, match="2 source sentences but 1 target"):
        aligner.align(["a", "b"], ["c"])


def write_corpus(path, n=11):
    lines = [f"{SENTENCES[k % len(SENTENCES)]} ||| {SENTENCES[(k + 1) % len(SENTENCES)]}" for k in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [line.split(" ||| ") for line in lines]


def pharaoh(links):
    return "".join(" ".join(f"{i}-{j}" for i, j in pair) + "\n" for pair in links)


def test_streaming_file_equals_in_memory(tmp_path):
    pairs = write_corpus(tmp_path / "c.txt")
    aligner = WordAligner(tiny_model("mbert"), mbert_tokenizer(), layer=2, batch_size=2, chunk_size=4)
    summary = extract_to_file(aligner, tmp_path / "out.pharaoh", file=str(tmp_path / "c.txt"), pretokenized=True,
                              progress=False)
    expected = pharaoh(aligner.align([s for s, _ in pairs], [t for _, t in pairs], pretokenized=True))
    assert (tmp_path / "out.pharaoh").read_text() == expected and summary["pairs"] == 11
    assert not (tmp_path / "out.pharaoh.partial").exists() and not (tmp_path / "out.pharaoh.partial.json").exists()


def test_resume_after_an_interrupted_run_gives_the_same_file(tmp_path, monkeypatch):
    write_corpus(tmp_path / "c.txt", n=13)
    model = tiny_model("mbert")
    fresh = WordAligner(model, mbert_tokenizer(), layer=2, batch_size=2, chunk_size=4)
    extract_to_file(fresh, tmp_path / "ref", file=str(tmp_path / "c.txt"), progress=False)

    aligner = WordAligner(model, mbert_tokenizer(), layer=2, batch_size=2, chunk_size=4)
    real = interrupt_on_chunk(aligner, monkeypatch, chunk=3)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        extract_to_file(aligner, out, file=str(tmp_path / "c.txt"), progress=False)
    partial = tmp_path / "out.partial"
    assert not out.exists() and partial.read_text().count("\n") == 8  # two chunks flushed, nothing looks complete
    with open(partial, "a") as f:
        f.write("3-1 4-")  # a torn line from a kill mid-write
    monkeypatch.setattr(aligner, "_align_chunk", real)
    summary = extract_to_file(aligner, out, file=str(tmp_path / "c.txt"), progress=False)
    assert summary["resumed_from"] == 8 and summary["pairs"] == 13
    assert out.read_bytes() == (tmp_path / "ref").read_bytes()
    assert not partial.exists()


def test_a_partial_file_from_other_settings_is_refused(tmp_path):
    write_corpus(tmp_path / "c.txt")
    (tmp_path / "out.partial").write_text("0-0\n")
    (tmp_path / "out.partial.json").write_text('{"model": "other"}')
    aligner = WordAligner(tiny_model("mbert"), mbert_tokenizer(), layer=2)
    with pytest.raises(ConfigError, match="written with another model, settings or corpus"):
        extract_to_file(aligner, tmp_path / "out", file=str(tmp_path / "c.txt"), progress=False)
    extract_to_file(aligner, tmp_path / "out", file=str(tmp_path / "c.txt"), progress=False, resume=False)
    assert (tmp_path / "out").read_text().count("\n") == 11


def test_cli_extracts_and_prints_aer(tmp_path, capsys):
    model_dir = tiny_model_dir("mbert", tmp_path / "m")
    (tmp_path / "c.txt").write_text("a b c ||| a b c\nx y ||| x y\n")
    (tmp_path / "gold").write_text("1-1 2-2 3-3\n1-1 2p2\n")
    rc = main(["extract-alignments", "--model", str(model_dir), "--file", str(tmp_path / "c.txt"), "--layer", "2",
               "--method", "argmax", "--pretokenized", "--out", str(tmp_path / "o.pharaoh"),
               "--gold", str(tmp_path / "gold")])
    out = capsys.readouterr().out
    assert rc == 0 and (tmp_path / "o.pharaoh").read_text() == "0-0 1-1 2-2\n0-0 1-1\n"
    assert '"aer": 0.0' in out and "2 lines" in out


@pytest.mark.parametrize("case, content, message", [
    ("no separator", "a b c\n", "c.txt:1: expected 'src ||| tgt', found no ' ||| ' separator"),
    ("invalid UTF-8", b"a ||| b\n\xe9t\xe9 ||| c\n", "c.txt:2: invalid UTF-8 (byte 0xe9 at column 1)"),
])
def test_cli_bad_corpus_exits_2_and_names_file_and_line(tmp_path, capsys, case, content, message):
    model_dir = tiny_model_dir("mbert", tmp_path / "m")
    path = tmp_path / "c.txt"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    rc = main(["extract-alignments", "--model", str(model_dir), "--file", str(path), "--layer", "1",
               "--out", str(tmp_path / "o")])
    assert rc == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_mismatched_files_existing_output_and_bad_layer(tmp_path, capsys):
    model_dir = tiny_model_dir("mbert", tmp_path / "m")
    (tmp_path / "a.de").write_text("eins\nzwei\n")
    (tmp_path / "b.en").write_text("one\n")
    base = ["extract-alignments", "--model", str(model_dir), "--layer", "1"]
    assert main(base + ["--src_file", str(tmp_path / "a.de"), "--tgt_file", str(tmp_path / "b.en"),
                        "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "line counts differ" in err and "a.de has 2 lines" in err and "b.en has 1" in err
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.partial").exists()
    (tmp_path / "done").write_text("0-0\n")
    assert main(base + ["--file", str(tmp_path / "a.de"), "--out", str(tmp_path / "done")]) == 2
    assert "exists (a finished run); pass overwrite=True (--overwrite)" in capsys.readouterr().err
    assert main(["extract-alignments", "--model", str(model_dir), "--layer", "5", "--file", str(tmp_path / "a.de"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "layer 5 is out of range: this model has 2 layers" in capsys.readouterr().err


def test_iter_corpus_skips_without_splitting_and_names_both_counts_on_a_mismatch(tmp_path):
    from amber_align.extraction.stream import iter_corpus

    (tmp_path / "a.de").write_text("eins\nzwei drei\nvier\n")
    (tmp_path / "b.en").write_text("one\ntwo three\n")
    pairs = iter_corpus(src_file=str(tmp_path / "a.de"), tgt_file=str(tmp_path / "b.en"), skip=1)
    assert next(pairs) == (["zwei", "drei"], ["two", "three"])
    with pytest.raises(DataFormatError, match="a.de has 3 lines, .*b.en has 2"):
        next(pairs)

"""eflomal wrapper: orientation, edge cases, the on-disk cache, and AER on the real en–fr Hansards gold."""

from __future__ import annotations

import logging
import random
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

from amber_align.data import eflomal_aligner
from amber_align.data.aer import alignment_scores
from amber_align.data.alignments import read_gold_alignments, read_pharaoh, symmetrize
from amber_align.data.eflomal_aligner import cached_word_align, eflomal_available, run_eflomal, word_align
from amber_align.errors import MissingDependencyError

needs_eflomal = pytest.mark.skipif(not eflomal_available(), reason="eflomal is not installed (extra 'align')")


# ------------------------------------------------------------------------------------------- without eflomal


def test_missing_eflomal_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "eflomal", None)  # makes `import eflomal` raise ImportError
    assert eflomal_available() is False
    with pytest.raises(MissingDependencyError, match=r"pip install 'amber-align\[align\]'.*Pharaoh file"):
        run_eflomal([["a"]], [["b"]])
    with pytest.raises(MissingDependencyError, match="eflomal is not installed"):
        cached_word_align([["a"]], [["b"]], cache_dir="unused")


def test_input_checks_come_first():
    with pytest.raises(ValueError, match="source side has 2 sentences but target side has 1"):
        run_eflomal([["a"], ["b"]], [["c"]])
    with pytest.raises(TypeError, match="source sentence 0 is a string"):
        run_eflomal(["a b"], [["c"]])
    with pytest.raises(ValueError, match="model must be 1"):
        run_eflomal([["a"]], [["b"]], model=4)
    with pytest.raises(ValueError, match="unknown symmetrization method 'gdfa'"):
        word_align([["a"]], [["b"]], method="gdfa")
    with pytest.raises(ValueError, match="unknown symmetrization method"):
        cached_word_align([["a"]], [["b"]], cache_dir="unused", method="gdfa")


# ---------------------------------------------------------------------------------------- synthetic corpus


def _rotated_corpus(n_pairs: int = 300, seed: int = 0):
    """Target = source words renamed, rotated left by one, plus two unaligned extra words.

    Source word i translates to target word (i - 1) mod len, so the true links in (src, tgt) orientation are
    {(i, (i - 1) % n)}: not symmetric under swapping, so a flipped file cannot pass for a correct one.
    """
    rng = random.Random(seed)
    src, tgt = [], []
    for _ in range(n_pairs):
        words = [f"s{rng.randint(0, 40)}" for _ in range(rng.randint(3, 7))]
        renamed = ["t" + w[1:] for w in words]
        src.append(words)
        tgt.append(renamed[1:] + renamed[:1] + ["extra", "more"])
    return src, tgt


EDGE_PAIRS = [
    ([], ["t1", "t2"]),
    (["s1"], []),
    ([], []),
    (["s 1", "", "s2"], ["t2", "t 1"]),  # whitespace inside a word and an empty word must not shift indices
]


@pytest.fixture(scope="module")
def synthetic_alignment():
    pytest.importorskip("eflomal")
    src, tgt = _rotated_corpus()
    src += [s for s, _ in EDGE_PAIRS]
    tgt += [t for _, t in EDGE_PAIRS]
    forward, reverse = run_eflomal(src, tgt)
    return src, tgt, forward, reverse


@needs_eflomal
def test_both_directions_come_back_in_src_tgt_orientation(synthetic_alignment):
    src, tgt, forward, reverse = synthetic_alignment
    n = len(src) - len(EDGE_PAIRS)
    truth = [{(i, (i - 1) % len(s)) for i in range(len(s))} for s in src[:n]]
    fwd_hits = sum(len(set(f) & t) for f, t in zip(forward, truth))
    rev_hits = sum(len(set(r) & t) for r, t in zip(reverse, truth))
    total = sum(map(len, truth))
    # eflomal cannot be seeded, so hits vary from run to run (reverse: 86-99 % seen); a direction that came back
    # transposed would hit almost nothing, so 75 % proves the orientation without flaking
    assert fwd_hits > 0.75 * total and rev_hits > 0.75 * total, (fwd_hits, rev_hits, total)


@needs_eflomal
def test_forward_is_a_function_of_target_words_reverse_of_source_words(synthetic_alignment):
    _, _, forward, reverse = synthetic_alignment
    assert max(max(Counter(j for _, j in links).values(), default=0) for links in forward) == 1
    assert max(max(Counter(i for i, _ in links).values(), default=0) for links in reverse) == 1


@needs_eflomal
def test_empty_sentences_and_odd_words(synthetic_alignment):
    src, tgt, forward, reverse = synthetic_alignment
    assert len(forward) == len(reverse) == len(src)
    for k in range(len(src) - len(EDGE_PAIRS), len(src)):
        for links in (forward[k], reverse[k]):
            assert all(0 <= i < len(src[k]) and 0 <= j < len(tgt[k]) for i, j in links)
    assert forward[-4:-1] == [[], [], []] and reverse[-4:-1] == [[], [], []]


@needs_eflomal
def test_empty_corpus():
    assert run_eflomal([], []) == ([], [])
    assert word_align([], []) == ([], [], [])


# --------------------------------------------------------------------------------------------------- cache


def _fake_run_eflomal(src_words, tgt_words, *, model=3, seed=None):
    """Deterministic stand-in: forward links word i to i, reverse also links i to i + 1."""
    forward = [[(i, i) for i in range(min(len(s), len(t)))] for s, t in zip(src_words, tgt_words)]
    reverse = [
        f + [(i, i + 1) for i in range(min(len(s), len(t) - 1))] for f, s, t in zip(forward, src_words, tgt_words)
    ]
    return forward, reverse


def _refuse(*args, **kwargs):
    raise AssertionError("eflomal must not run on a cache hit")


@pytest.fixture
def fake_eflomal(monkeypatch):
    calls = []

    def fake(*args, **kwargs):
        calls.append(1)
        return _fake_run_eflomal(*args, **kwargs)

    monkeypatch.setattr(eflomal_aligner, "run_eflomal", fake)
    monkeypatch.setattr(eflomal_aligner, "_eflomal_version", lambda: "2.0.0")
    return calls


SRC = [["a", "b", "c"], [], ["d", "e"]]
TGT = [["x", "y", "z"], ["w"], ["v"]]


def test_cache_miss_then_hit(tmp_path, fake_eflomal, monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    first = cached_word_align(SRC, TGT, cache_dir=tmp_path, method="union")
    assert len(fake_eflomal) == 1
    assert first == [[(0, 0), (0, 1), (1, 1), (1, 2), (2, 2)], [], [(0, 0)]]
    (entry,) = tmp_path.iterdir()
    assert re.fullmatch(r"[0-9a-f]{64}", entry.name)
    assert sorted(p.name for p in entry.iterdir()) == [
        "complete", "forward.txt", "meta.json", "reverse.txt", "symmetrized.txt"
    ]
    assert read_pharaoh(entry / "forward.txt") == [[(0, 0), (1, 1), (2, 2)], [], [(0, 0)]]
    assert "cache miss" in caplog.text

    monkeypatch.setattr(eflomal_aligner, "run_eflomal", _refuse)
    caplog.clear()
    assert cached_word_align(SRC, TGT, cache_dir=tmp_path, method="union") == first
    assert "cache hit" in caplog.text


def test_cache_key_depends_on_words_method_model_and_version(tmp_path, fake_eflomal, monkeypatch):
    cached_word_align(SRC, TGT, cache_dir=tmp_path)
    cached_word_align(SRC, TGT, cache_dir=tmp_path, method="union")
    cached_word_align(SRC, TGT, cache_dir=tmp_path, model=2)
    cached_word_align([["a", "b c"], [], ["d", "e"]], TGT, cache_dir=tmp_path)  # same text, other words
    cached_word_align([["a", "b", "c"], [], ["d", "E"]], TGT, cache_dir=tmp_path)
    monkeypatch.setattr(eflomal_aligner, "_eflomal_version", lambda: "2.0.1")
    cached_word_align(SRC, TGT, cache_dir=tmp_path)
    assert len(fake_eflomal) == 6 and len(list(tmp_path.iterdir())) == 6
    monkeypatch.setattr(eflomal_aligner, "run_eflomal", _refuse)
    cached_word_align(SRC, TGT, cache_dir=tmp_path, seed=123)  # seed is not part of the key


def test_incomplete_or_corrupt_entry_is_recomputed(tmp_path, fake_eflomal):
    first = cached_word_align(SRC, TGT, cache_dir=tmp_path)
    (entry,) = tmp_path.iterdir()
    (entry / "complete").unlink()  # an interrupted write
    assert cached_word_align(SRC, TGT, cache_dir=tmp_path) == first
    assert len(fake_eflomal) == 2 and (entry / "complete").exists()
    (entry / "symmetrized.txt").write_text("0-0\n")  # wrong line count
    assert cached_word_align(SRC, TGT, cache_dir=tmp_path) == first
    assert len(fake_eflomal) == 3
    assert cached_word_align(SRC, TGT, cache_dir=tmp_path) == first  # the rewritten entry is a hit
    assert len(fake_eflomal) == 3
    assert [p.name for p in tmp_path.iterdir()] == [entry.name]


def test_concurrent_miss_returns_the_first_finished_entry(tmp_path, fake_eflomal, monkeypatch):
    def other_process(src_words, tgt_words, **kwargs):  # eflomal is random: another run gives other links
        return [[(0, 2)], [], [(1, 0)]], [[(0, 2)], [], [(1, 0)]]

    def ours(src_words, tgt_words, **kwargs):
        # while we align, another process misses too, aligns and finishes first
        monkeypatch.setattr(eflomal_aligner, "run_eflomal", other_process)
        assert cached_word_align(SRC, TGT, cache_dir=tmp_path, method="union") == [[(0, 2)], [], [(1, 0)]]
        return _fake_run_eflomal(src_words, tgt_words)

    monkeypatch.setattr(eflomal_aligner, "run_eflomal", ours)
    assert cached_word_align(SRC, TGT, cache_dir=tmp_path, method="union") == [[(0, 2)], [], [(1, 0)]]
    assert len(list(tmp_path.iterdir())) == 1  # no temporary folder left behind


@needs_eflomal
def test_cache_with_real_eflomal(tmp_path, monkeypatch):
    src, tgt = _rotated_corpus(150, seed=1)
    first = cached_word_align(src, tgt, cache_dir=tmp_path, method="grow-diag-final-and")
    monkeypatch.setattr(eflomal_aligner, "run_eflomal", _refuse)
    assert cached_word_align(src, tgt, cache_dir=tmp_path, method="grow-diag-final-and") == first


# ---------------------------------------------------------------------------------- AER on real en–fr data

_FR_ELISION = re.compile(r"\b(l|d|j|qu|n|s|c|m|t|jusqu|lorsqu|puisqu)'")
_FR_ELIDED = {"l": "le", "d": "de", "j": "je", "qu": "que", "n": "ne", "s": "se", "c": "ce", "m": "me", "t": "te",
              "jusqu": "jusque", "lorsqu": "lorsque", "puisqu": "puisque"}
_FR_CONTRACTED = {"du": "de le", "au": "à le", "aux": "à les", "des": "de les"}
_TOKEN = re.compile(r"\w+(?:\.\w+)*|'s\b|[^\w\s]")


def _tokenize(line: str, french: bool) -> list[str]:
    """Lower-case and split like the Hansards test set ("l'" -> "le", "du" -> "de le", punctuation apart)."""
    line = line.lower().replace("\u2019", "'")
    if french:
        line = _FR_ELISION.sub(lambda m: _FR_ELIDED[m.group(1)] + " ", line)
    words = _TOKEN.findall(line)
    if french:
        words = " ".join(_FR_CONTRACTED.get(w, w) for w in words).split()
    return words


def _extra_en_fr_pairs(folder: Path, limit: int) -> tuple[list[list[str]], list[list[str]]]:
    src, tgt = [], []
    for en_file in sorted(folder.glob("news*.eng")):
        with open(en_file, encoding="utf-8") as en, open(en_file.with_suffix(".fra"), encoding="utf-8") as fr:
            for en_line, fr_line in zip(en, fr):
                e, f = _tokenize(en_line, french=False), _tokenize(fr_line, french=True)
                if e and f and max(len(e), len(f)) <= 80:
                    src.append(e)
                    tgt.append(f)
                    if len(src) == limit:
                        return src, tgt
    return src, tgt


@pytest.mark.slow  # 24 s of eflomal on the Hansards
@needs_eflomal
def test_aer_on_hansards_en_fr(shared_data):
    """447 gold pairs (English is the source side) aligned together with 5,000 newstest en–fr pairs.

    Measured (eflomal 2.0.0, 7 runs): intersection AER 8.5–9.2 (P ~95, R ~86), grow-diag-final-and 9.5–10.1
    (P ~89, R ~92); published eflomal fr–en: 8.2, with far more data. The bounds leave ~3 points for eflomal's
    unseeded sampling. About 15 s on 2 idle cores.
    """
    folder = shared_data / "word_alignment" / "awesome-align"
    pairs = [line.split(" ||| ") for line in (folder / "enfr.src-tgt").read_text(encoding="utf-8").splitlines()]
    assert len(pairs) == 447
    gold_src = [p[0].split() for p in pairs]
    gold_tgt = [p[1].split() for p in pairs]
    sure, possible = read_gold_alignments(
        folder / "enfr.gold",
        src_lengths=[len(s) for s in gold_src],
        tgt_lengths=[len(t) for t in gold_tgt],
        expected_lines=447,
    )
    extra_src, extra_tgt = _extra_en_fr_pairs(shared_data / "parallel" / "opus_mt_testsets" / "eng-fra", 5000)
    assert len(extra_src) == 5000
    src = [[w.lower() for w in s] for s in gold_src] + extra_src
    tgt = [[w.lower() for w in t] for t in gold_tgt] + extra_tgt
    forward, reverse = run_eflomal(src, tgt)

    scores = {}
    for method in ("intersection", "grow-diag-final-and"):
        links = [symmetrize(f, r, method, len(s), len(t)) for f, r, s, t in zip(forward, reverse, gold_src, gold_tgt)]
        scores[method] = alignment_scores(links, sure, possible)
    inter, gdfa = scores["intersection"], scores["grow-diag-final-and"]
    assert inter["aer"] < 0.12, scores
    assert gdfa["aer"] < 0.13, scores
    # intersection trades recall for precision
    assert inter["precision"] > gdfa["precision"] and gdfa["recall"] > inter["recall"], scores

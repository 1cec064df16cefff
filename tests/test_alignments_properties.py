"""Property tests (hypothesis) for Pharaoh I/O, symmetrisation and AER."""

from __future__ import annotations

import os
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amber_align.data.aer import alignment_scores, per_sentence_aer
from amber_align.data.alignments import (
    SYMMETRIZATION_METHODS,
    parse_pharaoh_line,
    read_pharaoh,
    symmetrize,
    write_pharaoh,
)
from amber_align.errors import DataFormatError

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def sentence_links(draw, max_len: int = 12):
    """(src_len, tgt_len, links) with every link inside the sentence pair."""
    n = draw(st.integers(0, max_len))
    m = draw(st.integers(0, max_len))
    if n == 0 or m == 0:
        return n, m, set()
    links = draw(st.sets(st.tuples(st.integers(0, n - 1), st.integers(0, m - 1)), max_size=3 * max_len))
    return n, m, links


corpora = st.lists(sentence_links(), max_size=8)


def _temp_file(data: bytes) -> str:
    fd, path = tempfile.mkstemp(suffix=".txt")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


@SETTINGS
@given(corpora)
def test_write_read_round_trip(corpus):
    fd, path = tempfile.mkstemp(suffix=".txt")
    os.close(fd)
    try:
        write_pharaoh(path, [links for _, _, links in corpus])
        back = read_pharaoh(
            path,
            src_lengths=[n for n, _, _ in corpus],
            tgt_lengths=[m for _, m, _ in corpus],
            expected_lines=len(corpus),
        )
    finally:
        os.unlink(path)
    assert back == [sorted(links) for _, _, links in corpus]


# ------------------------------------------------------------------------------------------------- corruptions


def _corrupt(draw, line: str) -> str:
    kind = draw(st.sampled_from(["letter", "drop_dash", "huge", "negative", "text", "swap_sep"]))
    tokens = line.split()
    if kind == "letter":
        pos = draw(st.integers(0, len(line)))
        return line[:pos] + draw(st.characters(categories=("L",))) + line[pos:]
    if kind == "text":
        pos = draw(st.integers(0, len(line)))
        return line[:pos] + draw(st.text(max_size=6)) + line[pos:]
    if not tokens:
        return draw(st.text(max_size=6))
    k = draw(st.integers(0, len(tokens) - 1))
    i, j = tokens[k].split("-")
    if kind == "drop_dash":
        tokens[k] = i + j
    elif kind == "huge":
        tokens[k] = f"{i}-{draw(st.integers(10**6, 10**40)) if draw(st.booleans()) else '9' * 5000}"
    elif kind == "negative":
        tokens[k] = f"-{i}-{j}" if draw(st.booleans()) else f"{i}--{j}"
    else:  # swap_sep
        tokens[k] = f"{i}{draw(st.sampled_from([':', '_', ',', '--', 'p-', ' - ', '']))}{j}"
    return " ".join(tokens)


@st.composite
def corrupted_line(draw):
    n, m, links = draw(sentence_links())
    line = " ".join(f"{i}-{j}" for i, j in sorted(links))
    return n, m, _corrupt(draw, line)


@SETTINGS
@given(corrupted_line(), st.booleans())
def test_corrupted_lines_raise_only_data_errors(case, one_based):
    n, m, line = case
    try:
        links = parse_pharaoh_line(line, one_based=one_based, src_len=n, tgt_len=m, path="c.txt", line_no=1)
    except DataFormatError as err:  # AlignmentIndexError is a DataFormatError
        assert str(err).startswith("c.txt:1: ")
    else:  # some corruptions leave a valid line; then every link must fit
        assert all(0 <= i < n and 0 <= j < m for i, j in links)


@st.composite
def corrupted_file(draw):
    corpus = draw(st.lists(sentence_links(), min_size=1, max_size=5))
    data = bytearray(
        "".join(" ".join(f"{i}-{j}" for i, j in sorted(links)) + "\n" for _, _, links in corpus).encode()
    )
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data)))
        data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
    return corpus, bytes(data)


@SETTINGS
@given(corrupted_file(), st.booleans(), st.sampled_from(["error", "sure", "drop"]))
def test_corrupted_bytes_raise_only_data_errors(case, one_based, possible):
    corpus, data = case
    path = _temp_file(data)
    try:
        read_pharaoh(
            path,
            one_based=one_based,
            possible=possible,
            src_lengths=[n for n, _, _ in corpus],
            tgt_lengths=[m for _, m, _ in corpus],
            expected_lines=len(corpus),
        )
    except DataFormatError as err:
        assert str(err).startswith(path)
    finally:
        os.unlink(path)


# ---------------------------------------------------------------------------------------------- symmetrisation

NEIGHBOURS = ((-1, 0), (0, -1), (1, 0), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))


def reference_symmetrize(fwd: set, rev: set, method: str, n: int, m: int) -> list:
    """Koehn's pseudocode, literally: full matrix scans (slow, obviously faithful)."""
    a, union = set(fwd & rev), fwd | rev
    if method == "union":
        return sorted(union)
    if method == "intersection":
        return sorted(a)

    def src_free(e):
        return not any((e, f) in a for f in range(m))

    def tgt_free(f):
        return not any((e, f) in a for e in range(n))

    added = True
    while added:
        added = False
        for e in range(n):
            for f in range(m):
                if (e, f) in a:
                    for de, df in NEIGHBOURS:
                        p = (e + de, f + df)
                        if p in union and (src_free(p[0]) or tgt_free(p[1])):
                            a.add(p)
                            added = True
    if method != "grow-diag":
        for links in (fwd, rev):
            for e in range(n):
                for f in range(m):
                    if (e, f) in links:
                        if method == "grow-diag-final-and":
                            ok = src_free(e) and tgt_free(f)
                        else:
                            ok = src_free(e) or tgt_free(f)
                        if ok:
                            a.add((e, f))
    return sorted(a)


@st.composite
def directional_pair(draw):
    n = draw(st.integers(1, 9))
    m = draw(st.integers(1, 9))
    cells = st.tuples(st.integers(0, n - 1), st.integers(0, m - 1))
    fwd = draw(st.sets(cells, max_size=2 * (n + m)))
    # reverse links overlap the forward ones often enough for growth to matter
    rev = draw(st.sets(st.sampled_from(sorted(fwd)), max_size=len(fwd))) if fwd and draw(st.booleans()) else set()
    rev |= draw(st.sets(cells, max_size=n + m))
    return n, m, fwd, rev


@SETTINGS
@given(directional_pair())
def test_symmetrize_matches_literal_pseudocode(case):
    n, m, fwd, rev = case
    for method in SYMMETRIZATION_METHODS:
        assert symmetrize(fwd, rev, method, src_len=n, tgt_len=m) == reference_symmetrize(fwd, rev, method, n, m)


@SETTINGS
@given(directional_pair())
def test_symmetrize_inclusions(case):
    n, m, fwd, rev = case
    got = {method: set(symmetrize(fwd, rev, method, src_len=n, tgt_len=m)) for method in SYMMETRIZATION_METHODS}
    inter, union = got["intersection"], got["union"]
    assert inter == fwd & rev and union == fwd | rev
    assert inter <= got["grow-diag"] <= got["grow-diag-final-and"] <= union
    assert got["grow-diag"] <= got["grow-diag-final"] <= union
    for method, links in got.items():
        assert symmetrize(fwd, rev, method) == sorted(links)  # lengths only validate


# ---------------------------------------------------------------------------------------------------------- AER


@st.composite
def gold_and_prediction(draw):
    corpus = draw(st.lists(sentence_links(), min_size=1, max_size=5))
    sure = [set(draw(st.sets(st.sampled_from(sorted(links)), max_size=len(links)))) if links else set()
            for _, _, links in corpus]
    possible = [links for _, _, links in corpus]
    predicted = [draw(sentence_links())[2] for _ in corpus]
    return predicted, sure, possible


@SETTINGS
@given(gold_and_prediction())
def test_aer_bounds_and_gold_against_itself(case):
    predicted, sure, possible = case
    scores = alignment_scores(predicted, sure, possible)
    assert all(0.0 <= v <= 1.0 for v in scores.values())
    assert all(0.0 <= v <= 1.0 for v in per_sentence_aer(predicted, sure, possible))
    assert alignment_scores(sure, sure, possible)["aer"] == 0.0
    assert all(v == 0.0 for v in per_sentence_aer(sure, sure, possible))

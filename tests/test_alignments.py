"""Pharaoh reading/writing, symmetrisation and link filters, on hand-made examples."""

from __future__ import annotations

import pytest

from amber_align.data.alignments import (
    SYMMETRIZATION_METHODS,
    drop_identical,
    one_to_one,
    parse_pharaoh_line,
    read_gold_alignments,
    read_pharaoh,
    symmetrize,
    write_pharaoh,
)
from amber_align.errors import AlignmentIndexError, DataFormatError

# ---------------------------------------------------------------------------------------------- parse_pharaoh_line


def test_parse_zero_based_keeps_file_order():
    assert parse_pharaoh_line("0-1 2-2 1-0") == [(0, 1), (2, 2), (1, 0)]


def test_parse_one_based_converts_to_zero_based():
    assert parse_pharaoh_line("1-2 3-3", one_based=True) == [(0, 1), (2, 2)]


@pytest.mark.parametrize("line", ["", "   ", "\n", "\r\n", "\t"])
def test_parse_empty_line_is_no_links(line):
    assert parse_pharaoh_line(line) == []


def test_parse_tolerates_trailing_whitespace_and_crlf():
    assert parse_pharaoh_line("0-1 2-2  \r\n") == [(0, 1), (2, 2)]
    assert parse_pharaoh_line("  0-1\t2-2 ") == [(0, 1), (2, 2)]


def test_possible_links_in_each_mode():
    assert parse_pharaoh_line("0-0 3p4", possible="sure") == [(0, 0), (3, 4)]
    assert parse_pharaoh_line("0-0 3p4", possible="drop") == [(0, 0)]
    with pytest.raises(DataFormatError, match=r"a\.txt:3: possible link '3p4'"):
        parse_pharaoh_line("0-0 3p4", path="a.txt", line_no=3)
    # 1-based possible links convert like sure ones
    assert parse_pharaoh_line("1p1 2-3", one_based=True, possible="sure") == [(0, 0), (1, 2)]


def test_unknown_possible_mode():
    with pytest.raises(ValueError, match="error, sure, drop"):
        parse_pharaoh_line("0-0", possible="maybe")


def test_source_index_out_of_range_names_everything():
    with pytest.raises(AlignmentIndexError) as info:
        parse_pharaoh_line("0-0 5-2", src_len=4, tgt_len=3, path="alignments.txt", line_no=7)
    assert str(info.value) == (
        "alignments.txt:7: link '5-2' has source index 5 but the source sentence has 4 words (valid 0..3, 0-based)"
    )
    assert info.value.path == "alignments.txt" and info.value.line == 7


def test_target_index_out_of_range_names_everything():
    with pytest.raises(AlignmentIndexError) as info:
        parse_pharaoh_line("1-3", src_len=4, tgt_len=3, path="alignments.txt", line_no=2)
    assert str(info.value) == (
        "alignments.txt:2: link '1-3' has target index 3 but the target sentence has 3 words (valid 0..2, 0-based)"
    )


def test_one_based_out_of_range_reports_file_numbering():
    expected = r"link '5-1' has source index 5 .* 4 words \(valid 1\.\.4, 1-based\)"
    with pytest.raises(AlignmentIndexError, match=expected):
        parse_pharaoh_line("5-1", one_based=True, src_len=4, tgt_len=4)
    # the last word is fine
    assert parse_pharaoh_line("4-4", one_based=True, src_len=4, tgt_len=4) == [(3, 3)]


def test_one_based_zero_is_an_error():
    with pytest.raises(AlignmentIndexError, match="index 0, but this file is read as 1-based"):
        parse_pharaoh_line("0-1", one_based=True)


def test_empty_sentence_has_no_valid_index():
    with pytest.raises(AlignmentIndexError, match="target sentence has 0 words \\(no valid index\\)"):
        parse_pharaoh_line("0-0", src_len=2, tgt_len=0)


@pytest.mark.parametrize("token", ["-1-2", "2--1", "1p-3"])
def test_negative_index(token):
    with pytest.raises(AlignmentIndexError, match=f"link '{token}' has negative"):
        parse_pharaoh_line(f"0-0 {token}", possible="sure", path="x.txt", line_no=1)


@pytest.mark.parametrize("token", ["a-1", "1-b", "12", "1:2", "1-2-3", "1.0-2", "١-2", "1x2", "-"])
def test_malformed_token(token):
    with pytest.raises(DataFormatError, match=r"x\.txt:4: malformed alignment link .*expected 'i-j'") as info:
        parse_pharaoh_line(f"0-0 {token}", path="x.txt", line_no=4)
    assert repr(token) in str(info.value)
    assert not isinstance(info.value, AlignmentIndexError)


def test_huge_index_is_an_index_error_not_a_crash():
    with pytest.raises(AlignmentIndexError, match="too large"):
        parse_pharaoh_line("0-" + "9" * 5000)
    with pytest.raises(AlignmentIndexError, match="source index 123456789"):
        parse_pharaoh_line("123456789-0", src_len=10)


def test_line_number_without_path():
    with pytest.raises(DataFormatError, match="^line 9: malformed"):
        parse_pharaoh_line("oops", line_no=9)


# ------------------------------------------------------------------------------------------------------ read_pharaoh


def _write(tmp_path, data: bytes, name="links.txt"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_read_pharaoh_lines_and_empty_lines(tmp_path):
    p = _write(tmp_path, b"0-0 1-1\n\n2-1 \r\n")
    assert read_pharaoh(p) == [[(0, 0), (1, 1)], [], [(2, 1)]]


def test_read_pharaoh_without_final_newline_and_empty_file(tmp_path):
    assert read_pharaoh(_write(tmp_path, b"0-0\n1-1")) == [[(0, 0)], [(1, 1)]]
    assert read_pharaoh(_write(tmp_path, b"", "empty.txt")) == []
    assert read_pharaoh(_write(tmp_path, b"\n", "one.txt")) == [[]]


def test_read_pharaoh_one_based_with_possible_links(tmp_path):
    p = _write(tmp_path, b"1-1 2p3\n3-2\n")
    assert read_pharaoh(p, one_based=True, possible="sure") == [[(0, 0), (1, 2)], [(2, 1)]]
    assert read_pharaoh(p, one_based=True, possible="drop") == [[(0, 0)], [(2, 1)]]
    with pytest.raises(DataFormatError, match=r"links\.txt:1: possible link '2p3'"):
        read_pharaoh(p, one_based=True)


def test_read_pharaoh_id_column(tmp_path):
    # simalign's gold format: "<id>\t<links>"
    p = _write(tmp_path, b"0\t0-0 1-1\n1\t\n2\t2p1 0-0\n")
    assert read_pharaoh(p, possible="drop") == [[(0, 0), (1, 1)], [], [(0, 0)]]


def test_read_pharaoh_id_column_must_be_consistent(tmp_path):
    p = _write(tmp_path, b"0\t0-0\n1-1\n")
    with pytest.raises(DataFormatError, match=r"links\.txt:2: expected an '<id><TAB>' column"):
        read_pharaoh(p)


def test_tab_between_links_is_not_an_id_column(tmp_path):
    assert read_pharaoh(_write(tmp_path, b"0-0\t1-1\n")) == [[(0, 0), (1, 1)]]


def test_read_pharaoh_checks_lengths_with_file_and_line(tmp_path):
    p = _write(tmp_path, b"0-0\n0-0 5-2\n")
    with pytest.raises(AlignmentIndexError) as info:
        read_pharaoh(p, src_lengths=[1, 4], tgt_lengths=[1, 3])
    assert str(info.value) == (
        f"{p}:2: link '5-2' has source index 5 but the source sentence has 4 words (valid 0..3, 0-based)"
    )
    assert info.value.line == 2


def test_read_pharaoh_line_count_mismatch_names_both_counts(tmp_path):
    p = _write(tmp_path, b"0-0\n1-1\n")
    with pytest.raises(DataFormatError, match=r"has 2 lines but the corpus \(expected_lines\) has 3"):
        read_pharaoh(p, expected_lines=3)
    with pytest.raises(DataFormatError, match="has 2 lines but src_lengths has 1"):
        read_pharaoh(p, src_lengths=[5])
    with pytest.raises(DataFormatError, match="has 2 lines but tgt_lengths has 4"):
        read_pharaoh(p, tgt_lengths=[5, 5, 5, 5])


def test_read_pharaoh_invalid_utf8_names_the_line(tmp_path):
    p = _write(tmp_path, b"0-0\n1-1\n0-0 \xff1-1\n")
    with pytest.raises(DataFormatError, match=r"links\.txt:3: invalid UTF-8 byte b'\\xff' at byte 4") as info:
        read_pharaoh(p)
    assert info.value.line == 3


def test_read_pharaoh_malformed_names_file_and_line(tmp_path):
    p = _write(tmp_path, b"0-0\n0-0 1_1\n")
    with pytest.raises(DataFormatError, match=rf"{p.name}:2: malformed alignment link '1_1'"):
        read_pharaoh(p)


def test_read_gold_alignments(tmp_path):
    p = _write(tmp_path, b"1-1 2p2 3-3\n\n1p1 1-2\n")
    sure, possible = read_gold_alignments(p)
    assert sure == [{(0, 0), (2, 2)}, set(), {(0, 1)}]
    assert possible == [{(0, 0), (1, 1), (2, 2)}, set(), {(0, 0), (0, 1)}]
    assert all(s <= q for s, q in zip(sure, possible))


def test_read_gold_alignments_zero_based_with_id_column(shared_data):
    path = shared_data / "word_alignment" / "simalign" / "sample_eng_deu.gold"
    sure, possible = read_gold_alignments(path, one_based=False)
    assert len(sure) == 5
    assert (0, 0) in sure[0] and (7, 8) in sure[0]  # "7-8" on line 0
    assert (19, 25) in possible[2] and (19, 25) not in sure[2]  # "19p25"


def test_read_gold_enfr_fits_its_sentences(shared_data):
    folder = shared_data / "word_alignment" / "awesome-align"
    pairs = [line.split(" ||| ") for line in (folder / "enfr.src-tgt").read_text(encoding="utf-8").splitlines()]
    src_lengths = [len(p[0].split()) for p in pairs]
    tgt_lengths = [len(p[1].split()) for p in pairs]
    sure, possible = read_gold_alignments(
        folder / "enfr.gold", src_lengths=src_lengths, tgt_lengths=tgt_lengths, expected_lines=447
    )
    assert sum(map(len, sure)) == 4038 and sum(map(len, possible)) == 17438


# ----------------------------------------------------------------------------------------------------- write_pharaoh


def test_write_pharaoh_sorted_deduplicated_zero_based(tmp_path):
    p = tmp_path / "sub" / "out.txt"
    write_pharaoh(p, [[(2, 1), (0, 0), (2, 1)], [], [(10, 3), (9, 12)]])
    assert p.read_bytes() == b"0-0 2-1\n\n9-12 10-3\n"
    assert read_pharaoh(p) == [[(0, 0), (2, 1)], [], [(9, 12), (10, 3)]]
    assert [f.name for f in p.parent.iterdir()] == ["out.txt"]  # no temp file left behind


def test_write_pharaoh_rejects_bad_links_and_keeps_old_file(tmp_path):
    p = tmp_path / "out.txt"
    write_pharaoh(p, [[(0, 0)]])
    with pytest.raises(AlignmentIndexError, match="sentence 2: link 0--1 has a negative"):
        write_pharaoh(p, [[(1, 1)], [(0, -1)]])
    with pytest.raises(AlignmentIndexError, match="not a pair of integer"):
        write_pharaoh(p, [[(1, "2")]])
    assert p.read_text() == "0-0\n"
    assert [f.name for f in tmp_path.iterdir()] == ["out.txt"]


# ------------------------------------------------------------------------------------------------------ symmetrize

# A 5 x 5 example on which all five methods differ (both inputs in (src, tgt) orientation):
#   forward F = {(0,0), (1,1), (2,1), (4,3), (0,4)}
#   reverse R = {(0,0), (1,1), (1,2), (2,2), (3,4)}
#   intersection I = {(0,0), (1,1)}
#   union U = I + {(0,4), (1,2), (2,1), (2,2), (3,4), (4,3)}
# grow-diag, scanning aligned points in (src, tgt) order with Koehn's neighbour order
# (-1,0),(0,-1),(1,0),(0,1) then the diagonals:
#   (0,0): neighbours in U are only (1,1), already aligned.
#   (1,1): (2,1) in U, src 2 unaligned -> add; (1,2) in U, tgt 2 unaligned -> add;
#          diagonal (2,2) in U but src 2 and tgt 2 are now both aligned -> skip.
#   (1,2), (2,1): their only new neighbour in U is (2,2), still blocked. A second scan adds nothing.
#   GD = {(0,0), (1,1), (1,2), (2,1)}; aligned src {0,1,2}, tgt {0,1,2}.
# FINAL over F - GD = (0,4), (4,3) in order, then over R - GD = (2,2), (3,4):
#   grow-diag-final (either word unaligned): (0,4) tgt 4 free -> add; (4,3) -> add; (2,2) both aligned -> skip;
#       (3,4) src 3 free -> add.  GDF = U - {(2,2)}
#   grow-diag-final-and (both unaligned): (0,4) src 0 aligned -> skip; (4,3) -> add; (2,2) skip;
#       (3,4) src 3 and tgt 4 free (since (0,4) was skipped) -> add.  GDFA = GD + {(3,4), (4,3)}
FWD = [(0, 0), (1, 1), (2, 1), (4, 3), (0, 4)]
REV = [(0, 0), (1, 1), (1, 2), (2, 2), (3, 4)]
EXPECTED = {
    "intersection": [(0, 0), (1, 1)],
    "union": [(0, 0), (0, 4), (1, 1), (1, 2), (2, 1), (2, 2), (3, 4), (4, 3)],
    "grow-diag": [(0, 0), (1, 1), (1, 2), (2, 1)],
    "grow-diag-final": [(0, 0), (0, 4), (1, 1), (1, 2), (2, 1), (3, 4), (4, 3)],
    "grow-diag-final-and": [(0, 0), (1, 1), (1, 2), (2, 1), (3, 4), (4, 3)],
}


@pytest.mark.parametrize("method", SYMMETRIZATION_METHODS)
def test_symmetrize_hand_example(method):
    assert symmetrize(FWD, REV, method, src_len=5, tgt_len=5) == EXPECTED[method]
    # lengths are optional (growth only adds union links)
    assert symmetrize(iter(FWD), iter(REV), method) == EXPECTED[method]


def test_all_methods_differ_on_the_hand_example():
    assert len({tuple(v) for v in EXPECTED.values()}) == len(SYMMETRIZATION_METHODS)


def test_grow_diag_reaches_points_added_later_in_the_same_scan():
    # a diagonal chain: each point is only reachable from the one before it
    #   I = {(0,0)}, U = I + {(1,1), (2,2), (3,3)}; every step has both words free -> the whole chain.
    fwd = [(0, 0), (1, 1), (2, 2), (3, 3)]
    rev = [(0, 0)]
    assert symmetrize(fwd, rev, "grow-diag") == fwd
    # the chain grows backwards too (a point before the scan position is picked up by the next scan)
    assert symmetrize([(3, 3), (2, 2), (1, 1), (0, 0)], [(3, 3)], "grow-diag") == fwd


def test_symmetrize_unknown_method_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown symmetrization method 'gdfa'.*grow-diag-final-and"):
        symmetrize([], [], "gdfa")


def test_symmetrize_checks_lengths():
    with pytest.raises(AlignmentIndexError, match="reverse link '0-3' has target index 3"):
        symmetrize([(0, 0)], [(0, 3)], "union", src_len=2, tgt_len=3)
    with pytest.raises(AlignmentIndexError, match="forward link '2-0' has source index 2"):
        symmetrize([(2, 0)], [], "intersection", src_len=2, tgt_len=3)


def test_symmetrize_empty():
    for method in SYMMETRIZATION_METHODS:
        assert symmetrize([], [], method, src_len=0, tgt_len=0) == []


# --------------------------------------------------------------------------------------------------------- filters


def test_one_to_one():
    # src 1 is in two links -> (1,1), (1,2) go; tgt 2 is in two links -> (3,2) goes too;
    # the duplicate (4,4) counts once.
    links = [(0, 0), (1, 1), (1, 2), (3, 2), (4, 4), (4, 4)]
    assert one_to_one(links) == [(0, 0), (4, 4)]
    assert one_to_one([]) == []


def test_drop_identical():
    src = ["the", "Paris", "is", "5", "paris"]
    tgt = ["Paris", "est", "5", "le"]
    links = [(0, 3), (1, 0), (2, 1), (3, 2), (4, 0)]
    # Paris=Paris and 5=5 go; the/le, is/est stay; the comparison is exact, so paris/Paris stays.
    assert drop_identical(links, src, tgt) == [(0, 3), (2, 1), (4, 0)]


def test_drop_identical_checks_indices():
    with pytest.raises(AlignmentIndexError, match="target index 4 but the target sentence has 4 words"):
        drop_identical([(0, 4)], ["a"] * 5, ["b"] * 4)


def test_links_may_be_lists_or_numpy_ints():
    np = pytest.importorskip("numpy")
    links = [[np.int64(1), np.int64(1)], [0, 0], (np.int32(2), 2)]
    assert one_to_one(links) == [(0, 0), (1, 1), (2, 2)]
    assert all(type(i) is int and type(j) is int for i, j in one_to_one(links))
    for bad in ([(0.5, 1)], [(True, 1)], ["01"], [(1, 2, 3)]):
        with pytest.raises(AlignmentIndexError, match="not a pair of integer word indices"):
            one_to_one(bad)

"""Streaming extraction of a corpus into a Pharaoh file: memory flat in corpus size, resumable, never half-done.

The corpus (``src ||| tgt`` lines, or two line-aligned files) is read line by line; links are written as they come
to ``OUT.partial`` and flushed after every chunk. Only a finished run renames it to ``OUT``, so a file named
``OUT`` is always complete. A rerun after an interruption finds ``OUT.partial`` and its settings record
``OUT.partial.json``, drops a torn last line, skips the pairs already written and appends the rest: the final file
is byte-identical to an uninterrupted run's (extraction is deterministic in eval mode). A partial file made with
other settings, model or corpus is refused rather than mixed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from amber_align.data.words import word_tokenize
from amber_align.errors import ConfigError, DataFormatError
from amber_align.extraction.extractor import WordAligner
from amber_align.io_utils import atomic_write_text, iter_text_lines
from amber_align.logging_utils import get_logger

__all__ = ["iter_corpus", "count_lines", "extract_to_file", "check_gold_matches_corpus"]

logger = get_logger(__name__)


def count_lines(path: str | os.PathLike) -> int:
    """Number of lines (a last line without a newline counts), reading in 1 MiB blocks."""
    n, last = 0, b"\n"
    try:
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                n += block.count(b"\n")
                last = block[-1:]
    except OSError as err:
        raise ConfigError(f"corpus file {str(path)!r} cannot be read: {err.strerror or err}") from None
    return n + (last != b"\n")


def _lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """``(line_number, text)`` of a UTF-8 file, one at a time (:func:`amber_align.io_utils.iter_text_lines`)."""
    return enumerate(iter_text_lines(path, "corpus file"), 1)


def iter_corpus(*, file: str | None = None, src_file: str | None = None, tgt_file: str | None = None,
                pretokenized: bool = False, skip: int = 0,
                stats: dict[str, int] | None = None) -> Iterator[tuple[list[str], list[str]]]:
    """Word-split pairs of a ``src ||| tgt`` file or of two line-aligned files, lazily.

    Words are split on whitespace when ``pretokenized`` (the gold sets' ``.src-tgt`` files), else with
    :func:`amber_align.data.words.word_tokenize`. The first ``skip`` pairs are passed over without being split
    (resuming). Two files with different line counts are a ``DataFormatError`` naming both when the shorter one
    ends (:func:`extract_to_file` checks the counts before it writes anything). ``stats["resplit"]`` (when a dict
    is given) counts the pairs whose words differ from their whitespace tokens (CJK ideographs, hyphens).
    """
    def words(text: str) -> list[str]:
        if pretokenized:
            return text.split()
        out = word_tokenize(text)
        if stats is not None and out != text.split():
            stats["resplit"] = stats.get("resplit", 0) + 1
        return out

    if file is not None:
        for number, line in itertools.islice(_lines(file), skip, None):
            count = line.count("|||")
            if count != 1:
                what = "no ' ||| ' separator" if count == 0 else f"{count} ' ||| ' separators"
                raise DataFormatError(f"expected 'src ||| tgt', found {what}: {line!r:.80}", path=file, line=number)
            left, right = line.split("|||")
            yield words(left), words(right)
        return
    pairs = itertools.zip_longest(_lines(src_file), _lines(tgt_file))
    for src, tgt in itertools.islice(pairs, skip, None):
        if src is None or tgt is None:
            _corpus_size(None, src_file, tgt_file)  # raises, naming both counts
        yield words(src[1]), words(tgt[1])


def check_gold_matches_corpus(gold: str | os.PathLike, *, file: str | None = None, src_file: str | None = None,
                              tgt_file: str | None = None, pretokenized: bool = False,
                              gold_zero_based: bool = False) -> None:
    """Refuse a gold file whose word indices cannot refer to the words the corpus is split into.

    Gold sets (Hansards, the KFTT ja–en and Tsinghua zh–en sets, ...) index the whitespace-separated words of their
    tokenized text. Without ``pretokenized`` the corpus is split with :func:`word_tokenize`, which cuts every CJK
    ideograph and every hyphen ("北京" -> "北", "京"; "cherry-pick" -> "cherry", "-", "pick"): on any line where
    that differs from the whitespace split the gold's indices point at other words, and the AER would be
    meaningless, so this is a ConfigError naming the line. Then every gold link must lie inside its line's word
    counts (a DataFormatError naming the gold file and line otherwise), and gold and corpus must have as many lines.
    """
    from amber_align.data.alignments import read_gold_alignments

    src_lengths: list[int] = []
    tgt_lengths: list[int] = []
    differ, example = 0, ""
    for number, (src, tgt) in enumerate(iter_corpus(file=file, src_file=src_file, tgt_file=tgt_file,
                                                    pretokenized=True), 1):
        if not pretokenized:
            src_words, tgt_words = word_tokenize(" ".join(src)), word_tokenize(" ".join(tgt))
            if src_words != src or tgt_words != tgt:
                differ += 1
                if not example:
                    side = src if src_words != src else tgt
                    first = next(w for w in side if word_tokenize(w) != [w])
                    example = f"line {number}: {first!r} -> {' '.join(word_tokenize(first))!r}"
            src, tgt = src_words, tgt_words
        src_lengths.append(len(src))
        tgt_lengths.append(len(tgt))
    if differ:
        raise ConfigError(f"--gold: {differ} of {len(src_lengths)} corpus lines split into other words than their "
                          f"whitespace tokens ({example}), so the gold's word indices cannot match; pass "
                          "--pretokenized (gold files index the whitespace-separated words of tokenized text)")
    read_gold_alignments(gold, one_based=not gold_zero_based, src_lengths=src_lengths, tgt_lengths=tgt_lengths,
                         expected_lines=len(src_lengths))


def _corpus_size(file: str | None, src_file: str | None, tgt_file: str | None) -> int:
    """Pairs in the corpus; two files with different line counts are a ``DataFormatError`` naming both."""
    if file is not None:
        return count_lines(file)
    n_src, n_tgt = count_lines(src_file), count_lines(tgt_file)
    if n_src != n_tgt:
        raise DataFormatError(f"line counts differ: {src_file} has {n_src} lines, {tgt_file} has {n_tgt}")
    return n_src


def _fingerprint(aligner: WordAligner, corpus: dict[str, Any]) -> dict[str, Any]:
    """What must match for a partial file to be continued: model, settings, corpus files (size + mtime)."""
    files = {k: v for k, v in corpus.items() if k in ("file", "src_file", "tgt_file") and v is not None}
    stats = {k: [os.path.getsize(v), int(os.path.getmtime(v))] for k, v in files.items()}
    model = getattr(aligner.model, "name_or_path", "") or getattr(aligner.model.config, "_name_or_path", "")
    weights = hashlib.sha256()
    for name, tensor in list(aligner.model.state_dict().items())[:4]:  # cheap: a few tensors' first values
        weights.update(name.encode())
        weights.update(tensor.flatten()[:64].float().cpu().numpy().tobytes())
    return {"model": str(model), "weights": weights.hexdigest()[:16], "settings": vars(aligner.settings),
            "files": files, "stats": stats, "pretokenized": bool(corpus.get("pretokenized"))}


def _resume_point(partial: Path, limit: int | None = None) -> int:
    """Complete lines in ``partial`` (at most ``limit``); a torn last line (no newline), and lines past ``limit``,
    are cut off."""
    data_len, keep = partial.stat().st_size, 0
    with open(partial, "rb+") as f:
        lines = 0
        for raw in f:
            if raw.endswith(b"\n") and (limit is None or lines < limit):
                lines += 1
                keep += len(raw)
            else:
                break
        if keep != data_len:
            f.truncate(keep)
    return lines


def extract_to_file(aligner: WordAligner, out: str | os.PathLike, *, file: str | None = None,
                    src_file: str | None = None, tgt_file: str | None = None, pretokenized: bool = False,
                    resume: bool = True, overwrite: bool = False, progress: bool = True,
                    prob_out: str | os.PathLike | None = None) -> dict[str, Any]:
    """Align a corpus into the Pharaoh file ``out`` (0-based ``i-j``, one line per pair, empty when unaligned).

    ``prob_out``: also write each link's score there, line by line in the order of ``out`` (awesome-align's
    ``--output_prob_file``; :meth:`WordAligner.iter_align` ``with_scores``), resumed and renamed with ``out``.

    Returns ``{"pairs", "resumed_from", "seconds", "pairs_per_second", "skipped_too_long", "path"}``.
    """
    if (file is None) == (src_file is None or tgt_file is None) or (file and (src_file or tgt_file)):
        raise ConfigError("give the corpus as --file (src ||| tgt lines) or as --src_file and --tgt_file")
    out = Path(out)
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} exists (a finished run); pass overwrite=True (--overwrite) to replace it")
    partial, record = Path(f"{out}.partial"), Path(f"{out}.partial.json")
    total = _corpus_size(file, src_file, tgt_file)  # bad corpus: an error before anything is written
    corpus = {"file": file, "src_file": src_file, "tgt_file": tgt_file, "pretokenized": pretokenized}
    fingerprint = _fingerprint(aligner, corpus)
    fingerprint["prob_out"] = None if prob_out is None else str(prob_out)
    prob_partial = None if prob_out is None else Path(f"{prob_out}.partial")
    if prob_out is not None and Path(prob_out).exists() and not overwrite:
        raise ConfigError(f"{prob_out} exists (a finished run); pass overwrite=True (--overwrite) to replace it")
    done = 0
    if partial.exists() and resume:
        done = _resume_point(partial)
        if prob_partial is not None:
            done = _resume_point(prob_partial, done) if prob_partial.exists() else 0
            done = _resume_point(partial, done)
    if done > 0:
        previous = json.loads(record.read_text()) if record.exists() else None
        if previous != json.loads(json.dumps(fingerprint)):
            raise ConfigError(f"{partial} was written with another model, settings or corpus (see {record}); "
                              "delete it or pass resume=False (--no_resume) to start over")
        logger.info(f"resuming {partial}: {done} pairs already aligned")
    else:
        partial.unlink(missing_ok=True)
        if prob_partial is not None:
            prob_partial.unlink(missing_ok=True)
            prob_partial.parent.mkdir(parents=True, exist_ok=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(record, json.dumps(fingerprint, indent=1))
    if done > total:
        raise DataFormatError(f"{partial} has {done} lines but the corpus has only {total} pairs")
    stats: dict[str, int] = {}
    pairs = iter_corpus(file=file, src_file=src_file, tgt_file=tgt_file, pretokenized=pretokenized, skip=done,
                        stats=stats)
    start, written = time.perf_counter(), 0
    bar = tqdm(total=total, initial=done, unit="pairs", desc="extracting", disable=not progress, mininterval=2)
    probs = open(prob_partial, "a", encoding="utf-8", newline="\n") if prob_partial is not None else None
    with open(partial, "a", encoding="utf-8", newline="\n") as f:
        buffer: list[str] = []
        prob_buffer: list[str] = []

        def flush(sync: bool = False) -> None:
            for handle, lines in ((f, buffer), (probs, prob_buffer)):
                if handle is not None:
                    handle.write("".join(lines))
                    handle.flush()
                    if sync:
                        os.fsync(handle.fileno())

        try:
            for links in aligner.iter_align(pairs, with_scores=probs is not None):
                buffer.append(" ".join(f"{link[0]}-{link[1]}" for link in links) + "\n")
                if probs is not None:
                    prob_buffer.append(" ".join(f"{link[2]:.6g}" for link in links) + "\n")
                if len(buffer) >= aligner.chunk_size:
                    flush()
                    bar.update(len(buffer))
                    written += len(buffer)
                    buffer.clear()
                    prob_buffer.clear()
            flush(sync=True)
        finally:
            if probs is not None:
                probs.close()
        bar.update(len(buffer))
        written += len(buffer)
    bar.close()
    seconds = time.perf_counter() - start
    if stats.get("resplit"):
        logger.warning(f"{stats['resplit']} side(s) were split into other words than their whitespace tokens (CJK "
                       "ideographs, hyphens: word_tokenize); the links index those words. If the text is already "
                       "tokenized (as gold sets are), pass --pretokenized")
    if prob_partial is not None:
        os.replace(prob_partial, prob_out)
    os.replace(partial, out)
    record.unlink(missing_ok=True)
    return {"pairs": done + written, "resumed_from": done, "seconds": round(seconds, 2),
            "pairs_per_second": round(written / seconds, 1) if seconds > 0 else None,
            "skipped_too_long": aligner.skipped_too_long, "path": str(out)}

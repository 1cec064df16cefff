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

__all__ = ["iter_corpus", "count_lines", "extract_to_file"]

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
                pretokenized: bool = False, skip: int = 0) -> Iterator[tuple[list[str], list[str]]]:
    """Word-split pairs of a ``src ||| tgt`` file or of two line-aligned files, lazily.

    Words are split on whitespace when ``pretokenized`` (the gold sets' ``.src-tgt`` files), else with
    :func:`amber_align.data.words.word_tokenize`. The first ``skip`` pairs are passed over without being split
    (resuming). Two files with different line counts are a ``DataFormatError`` naming both when the shorter one
    ends (:func:`extract_to_file` checks the counts before it writes anything).
    """
    def words(text: str) -> list[str]:
        return text.split() if pretokenized else word_tokenize(text)

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


def _resume_point(partial: Path) -> int:
    """Complete lines in ``partial``; a torn last line (no newline) is cut off."""
    data_len, keep = partial.stat().st_size, 0
    with open(partial, "rb+") as f:
        lines = 0
        for raw in f:
            if raw.endswith(b"\n"):
                lines += 1
                keep += len(raw)
        if keep != data_len:
            f.truncate(keep)
    return lines


def extract_to_file(aligner: WordAligner, out: str | os.PathLike, *, file: str | None = None,
                    src_file: str | None = None, tgt_file: str | None = None, pretokenized: bool = False,
                    resume: bool = True, overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Align a corpus into the Pharaoh file ``out`` (0-based ``i-j``, one line per pair, empty when unaligned).

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
    done = 0
    if partial.exists() and resume:
        done = _resume_point(partial)
    if done > 0:
        previous = json.loads(record.read_text()) if record.exists() else None
        if previous != json.loads(json.dumps(fingerprint)):
            raise ConfigError(f"{partial} was written with another model, settings or corpus (see {record}); "
                              "delete it or pass resume=False (--no_resume) to start over")
        logger.info(f"resuming {partial}: {done} pairs already aligned")
    else:
        partial.unlink(missing_ok=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(record, json.dumps(fingerprint, indent=1))
    if done > total:
        raise DataFormatError(f"{partial} has {done} lines but the corpus has only {total} pairs")
    pairs = iter_corpus(file=file, src_file=src_file, tgt_file=tgt_file, pretokenized=pretokenized, skip=done)
    start, written = time.perf_counter(), 0
    bar = tqdm(total=total, initial=done, unit="pairs", desc="extracting", disable=not progress, mininterval=2)
    with open(partial, "a", encoding="utf-8", newline="\n") as f:
        buffer: list[str] = []
        for links in aligner.iter_align(pairs):
            buffer.append(" ".join(f"{i}-{j}" for i, j in links) + "\n")
            if len(buffer) >= aligner.chunk_size:
                f.write("".join(buffer))
                f.flush()
                bar.update(len(buffer))
                written += len(buffer)
                buffer.clear()
        f.write("".join(buffer))
        f.flush()
        os.fsync(f.fileno())
        bar.update(len(buffer))
        written += len(buffer)
    bar.close()
    seconds = time.perf_counter() - start
    os.replace(partial, out)
    record.unlink(missing_ok=True)
    return {"pairs": done + written, "resumed_from": done, "seconds": round(seconds, 2),
            "pairs_per_second": round(written / seconds, 1) if seconds > 0 else None,
            "skipped_too_long": aligner.skipped_too_long, "path": str(out)}

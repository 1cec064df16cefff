"""Word alignment with eflomal (Östling & Tiedemann 2016), symmetrised, with an on-disk cache.

eflomal is an optional extra (GPL-3.0, built from source with a C compiler): it is imported only inside the
functions here, and its absence raises :class:`MissingDependencyError` naming the extra and the alternative (a
Pharaoh file computed elsewhere).

Facts about eflomal 2.0.0 this module relies on (checked empirically; tests/test_eflomal.py re-checks them):
- both the forward and the reverse links file are written in ``(src, tgt)`` orientation (the reverse file is *not*
  ``tgt-src``), so neither needs flipping; forward links give each target word at most one source word,
  reverse links give each source word at most one target word;
- empty sentences are fine (they get an empty line); a sentence of 1024 or more words is silently replaced by an
  empty one (no links) — logged here as a warning;
- the binary seeds itself from ``/dev/urandom`` and has no seed option, so runs differ slightly; ``seed`` is
  accepted for API stability and ignored (with a warning);
- the binary's exit status is not checked by eflomal's Python wrapper, so the output files are checked here;
- words are split again on whitespace by eflomal, so whitespace inside a word is replaced before the call.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from amber_align.data.alignments import (
    SYMMETRIZATION_METHODS,
    Link,
    read_pharaoh,
    symmetrize,
    write_pharaoh,
)
from amber_align.io_utils import atomic_write_text
from amber_align.errors import DataFormatError, MissingDependencyError
from amber_align.logging_utils import get_logger

__all__ = ["eflomal_available", "run_eflomal", "word_align", "cached_word_align"]

logger = get_logger(__name__)

_INSTALL_HINT = (
    "eflomal is not installed: pip install 'amber-align[align]' (GPL-3.0, needs a C compiler), or compute "
    "alignments with `amber-align word-align` elsewhere and pass them as a Pharaoh file"
)
_EFLOMAL_MAX_WORDS = 1023  # eflomal's write_text replaces longer sentences by empty ones
_CACHE_FORMAT = "amber_align-eflomal-cache-v1"
_WHITESPACE = re.compile(r"\s+")


def eflomal_available() -> bool:
    """True when the ``eflomal`` package can be imported."""
    try:
        import eflomal  # noqa: F401
    except ImportError:
        return False
    return True


def _import_eflomal():
    try:
        import eflomal
    except ImportError as err:
        raise MissingDependencyError(_INSTALL_HINT) from err
    return eflomal


def _eflomal_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("eflomal")
    except PackageNotFoundError:
        _import_eflomal()  # raises MissingDependencyError when absent
        return "unknown"


def _check_corpus(src_words: Sequence[Sequence[str]], tgt_words: Sequence[Sequence[str]]) -> None:
    if len(src_words) != len(tgt_words):
        raise ValueError(
            f"source side has {len(src_words)} sentences but target side has {len(tgt_words)}; "
            "word alignment needs line-parallel sentence pairs"
        )
    for side, corpus in (("source", src_words), ("target", tgt_words)):
        for k, words in enumerate(corpus):
            if isinstance(words, str):
                raise TypeError(
                    f"{side} sentence {k} is a string; pass each sentence as a list of words (word-tokenize first)"
                )


def _eflomal_line(words: Sequence[str]) -> str:
    """Join words for eflomal so that its whitespace split gives back exactly one token per word."""
    return " ".join(_WHITESPACE.sub("_", str(w)) or "<empty>" for w in words)


def run_eflomal(
    src_words: Sequence[Sequence[str]],
    tgt_words: Sequence[Sequence[str]],
    *,
    model: int = 3,
    seed: int | None = None,
) -> tuple[list[list[Link]], list[list[Link]]]:
    """Align word-tokenized sentence pairs with eflomal; return ``(forward, reverse)``, both ``(src, tgt)`` links.

    ``model``: 1 = IBM1, 2 = +HMM, 3 = +fertility (eflomal's default and best). eflomal learns from the corpus
    itself, so align as many pairs together as you can (thousands at least). ``seed`` is ignored: eflomal 2.0.0
    cannot be seeded.
    """
    _check_corpus(src_words, tgt_words)
    if model not in (1, 2, 3):
        raise ValueError(f"eflomal model must be 1 (IBM1), 2 (HMM) or 3 (HMM + fertility); got {model!r}")
    eflomal = _import_eflomal()
    if seed is not None:
        logger.warning("eflomal cannot be seeded (it seeds from /dev/urandom); seed=%s is ignored", seed)
    n = len(src_words)
    if n == 0:
        return [], []
    too_long = sum(1 for s, t in zip(src_words, tgt_words) if max(len(s), len(t)) > _EFLOMAL_MAX_WORDS)
    if too_long:
        logger.warning(
            "%d of %d sentence pairs have more than %d words on a side; eflomal leaves them without links",
            too_long, n, _EFLOMAL_MAX_WORDS,
        )
    src_lines = [_eflomal_line(s) for s in src_words]
    tgt_lines = [_eflomal_line(t) for t in tgt_words]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="amber_align_eflomal_") as tmp:
        fwd_path, rev_path = os.path.join(tmp, "forward.links"), os.path.join(tmp, "reverse.links")
        eflomal.Aligner(model=model).align(
            src_lines, tgt_lines, links_filename_fwd=fwd_path, links_filename_rev=rev_path, quiet=True
        )
        if not (os.path.exists(fwd_path) and os.path.exists(rev_path)):
            raise RuntimeError(
                "eflomal wrote no alignment files (its binary failed; run eflomal-align on the same input to see "
                "its error)"
            )
        src_lengths = [len(s) for s in src_words]
        tgt_lengths = [len(t) for t in tgt_words]
        try:
            forward = read_pharaoh(fwd_path, src_lengths=src_lengths, tgt_lengths=tgt_lengths, expected_lines=n)
            reverse = read_pharaoh(rev_path, src_lengths=src_lengths, tgt_lengths=tgt_lengths, expected_lines=n)
        except DataFormatError as err:
            raise RuntimeError(f"eflomal produced unusable output (the binary may have crashed): {err}") from err
    logger.info("eflomal (model %d) aligned %d sentence pairs in %.1f s", model, n, time.perf_counter() - start)
    return forward, reverse


def _check_method(method: str) -> None:
    if method not in SYMMETRIZATION_METHODS:
        raise ValueError(f"unknown symmetrization method {method!r}; valid: {', '.join(SYMMETRIZATION_METHODS)}")


def word_align(
    src_words: Sequence[Sequence[str]],
    tgt_words: Sequence[Sequence[str]],
    *,
    method: str = "intersection",
    model: int = 3,
    seed: int | None = None,
) -> tuple[list[list[Link]], list[list[Link]], list[list[Link]]]:
    """Run eflomal and symmetrise: return ``(forward, reverse, symmetrised)`` per sentence pair, ``(src, tgt)``."""
    _check_method(method)
    forward, reverse = run_eflomal(src_words, tgt_words, model=model, seed=seed)
    symmetrised = [
        symmetrize(f, r, method, src_len=len(s), tgt_len=len(t))
        for f, r, s, t in zip(forward, reverse, src_words, tgt_words)
    ]
    return forward, reverse, symmetrised


def _cache_key(
    src_words: Sequence[Sequence[str]], tgt_words: Sequence[Sequence[str]], method: str, model: int, version: str
) -> str:
    h = hashlib.sha256()
    header = {"format": _CACHE_FORMAT, "method": method, "model": model, "eflomal": version, "pairs": len(src_words)}
    h.update(json.dumps(header, sort_keys=True).encode("utf-8") + b"\n")
    for s, t in zip(src_words, tgt_words):
        # JSON keeps word boundaries unambiguous (a word may contain spaces or '|||')
        h.update(json.dumps([list(map(str, s)), list(map(str, t))], ensure_ascii=False).encode("utf-8") + b"\n")
    return h.hexdigest()


def _read_cache_entry(entry: Path, src_words, tgt_words) -> list[list[Link]] | None:
    """The cached symmetrised links, or None (with a warning) when the entry is unusable."""
    lengths = {
        "src_lengths": [len(s) for s in src_words],
        "tgt_lengths": [len(t) for t in tgt_words],
        "expected_lines": len(src_words),
    }
    try:
        return read_pharaoh(entry / "symmetrized.txt", **lengths)
    except (OSError, DataFormatError) as err:
        logger.warning("word-alignment cache entry %s is unusable (%s); aligning again", entry, err)
        return None


def cached_word_align(
    src_words: Sequence[Sequence[str]],
    tgt_words: Sequence[Sequence[str]],
    *,
    cache_dir: str | os.PathLike,
    method: str = "intersection",
    model: int = 3,
    seed: int | None = None,
) -> list[list[Link]]:
    """:func:`word_align`, cached on disk; return the symmetrised links.

    The key is a sha256 over the word-tokenized sentence pairs, ``method``, ``model`` and the eflomal version
    (``seed`` is not part of it: eflomal ignores it). An entry is ``cache_dir/<key>/`` holding ``forward.txt``,
    ``reverse.txt`` and ``symmetrized.txt`` (0-based Pharaoh), ``meta.json`` and a ``complete`` marker written
    last. The entry is written in a temporary folder and renamed into place, so an interrupted write is never
    read back; when two processes miss at once, the first to finish wins and the other returns the winner's
    links (eflomal is not deterministic, so this keeps every process on the same links). A hit reads the files
    without running eflomal.
    """
    _check_corpus(src_words, tgt_words)
    _check_method(method)
    start = time.perf_counter()
    version = _eflomal_version()
    key = _cache_key(src_words, tgt_words, method, model, version)
    entry = Path(cache_dir) / key
    if (entry / "complete").is_file():
        links = _read_cache_entry(entry, src_words, tgt_words)
        if links is not None:
            logger.info(
                "word-alignment cache hit %s (%d pairs, %s) read in %.2f s",
                entry, len(links), method, time.perf_counter() - start,
            )
            return links
        shutil.rmtree(entry, ignore_errors=True)  # unusable: make way for a fresh entry
    forward, reverse, symmetrised = word_align(src_words, tgt_words, method=method, model=model, seed=seed)
    meta = {"format": _CACHE_FORMAT, "method": method, "model": model, "eflomal": version,
            "pairs": len(src_words), "orientation": "src-tgt, 0-based"}
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=entry.parent))
    try:
        write_pharaoh(tmp / "forward.txt", forward)
        write_pharaoh(tmp / "reverse.txt", reverse)
        write_pharaoh(tmp / "symmetrized.txt", symmetrised)
        atomic_write_text(tmp / "meta.json", json.dumps(meta, indent=2) + "\n")
        atomic_write_text(tmp / "complete", "")
        if not _move_into_place(tmp, entry):
            links = _read_cache_entry(entry, src_words, tgt_words)
            if links is not None:
                logger.info("word-alignment cache entry %s was written by another process meanwhile; using it", entry)
                symmetrised = links
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info(
        "word-alignment cache miss %s: aligned %d pairs (%s) in %.1f s",
        entry, len(symmetrised), method, time.perf_counter() - start,
    )
    return symmetrised


def _move_into_place(tmp: Path, entry: Path) -> bool:
    """Rename the finished folder ``tmp`` to ``entry``; False when another process has put a complete one there."""
    for _ in range(2):
        try:
            os.rename(tmp, entry)  # atomic; refuses a non-empty target
            return True
        except OSError:
            if (entry / "complete").is_file():
                return False
            shutil.rmtree(entry, ignore_errors=True)  # an unusable or unfinished old entry
    return False




"""Bilingual lexicon induction (BLI) from a contextual encoder (Wang et al., ICLR 2020; Conneau et al., ICLR 2018).

Protocol (docs/methods.md "Wang et al."): a word's vector is its contextual vector averaged over all its occurrences in
a parallel corpus (:func:`~amber_align.diagnostics.word_vectors.contextual_word_averages`, each side on its own
sentences); an orthogonal Procrustes map (foreign → English) is fit on the MUSE training dictionary (source ranks
0-5000) pairs that have vectors on both sides; the test dictionary (ranks 5000-6500) is scored by CSLS retrieval
(k = 10) with precision at 1. ``method="none"`` skips the map and measures the jointly trained space as it is.

Counting (MUSE convention): a test source word with several gold translations is correct when the retrieved word
is any of them; a test source word that never occurs in the corpus (no vector) counts as wrong, and
``coverage`` says how many had a vector. Retrieval candidates are, by default, every English word of the corpus
(``target_space="corpus"``, the corpus analogue of MUSE's 200k-word target vocabulary); ``"dictionary"`` restricts
them to the English words of the dictionaries. The CSLS hubness term of the targets is computed against every
source word that has a vector (train and test), as MUSE does over its source vocabulary.

The MUSE dictionaries are CC BY-NC 4.0: load them by path. Results on the approximate splits rebuilt in
``shared/data/muse/derived_5000-6500_approx`` must be reported as "MUSE-derived test (approx.)"; the result's
``label`` says so when such a file was used.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import torch

from amber_align.data.languages import normalize_language
from amber_align.data.parallel import ParallelSource, load_parallel
from amber_align.diagnostics.csls import csls_nearest
from amber_align.diagnostics.word_vectors import contextual_word_averages
from amber_align.errors import ConfigError, DataFormatError
from amber_align.io_utils import read_text_lines
from amber_align.logging_utils import get_logger
from amber_align.refinement.procrustes import orthogonal_procrustes

__all__ = ["read_muse", "find_muse_dictionary", "read_bli_sentences", "bli", "BLI_METHODS", "APPROX_LABEL"]

logger = get_logger(__name__)

BLI_METHODS = ("procrustes", "none")
APPROX_LABEL = "MUSE-derived test (approx.)"
_RANGE = re.compile(r"^\d+-\d+$")


def read_muse(path: str | Path) -> list[tuple[str, str]]:
    """``(source, target)`` pairs of a MUSE dictionary file (one ``src tgt`` pair per line, space or tab).

    Both words are lower-cased (MUSE dictionaries are lower-case; contextual averages are matched lower-cased).
    Exact duplicate pairs after lower-casing are kept once, in first-seen order. A missing file is a ConfigError;
    a line without exactly two fields, a blank line, invalid UTF-8 or an empty file is a DataFormatError naming
    ``path:line``.
    """
    lines, _ = read_text_lines(path, what="MUSE dictionary")
    pairs: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if len(fields) != 2:
            what = "a blank line" if not fields else f"{len(fields)} field(s): {line!r:.80}"
            raise DataFormatError(f"expected 'source target' (two words separated by whitespace), found {what}",
                                  path=path, line=number)
        pair = (fields[0].lower(), fields[1].lower())
        if pair not in seen:
            seen.add(pair)
            pairs.append(pair)
    if not pairs:
        raise DataFormatError("no word pairs: the dictionary is empty", path=path)
    return pairs


def find_muse_dictionary(dictionary_dir: str | Path, lang: str, split_range: str,
                         anchor_language: str = "en") -> Path:
    """``{lang}-{anchor}.{range}.txt`` (official MUSE name) or else ``{lang}-{anchor}.{range}.approx.txt`` (the
    approximate rebuild) in ``dictionary_dir``; a ConfigError lists the names tried."""
    if not isinstance(split_range, str) or not _RANGE.match(split_range):
        raise ConfigError(f"dictionary range must look like '0-5000', got {split_range!r}")
    directory = Path(dictionary_dir)
    if not directory.is_dir():
        raise ConfigError(f"dictionary_dir {str(directory)!r} is not a directory")
    names = [f"{lang}-{anchor_language}.{split_range}.txt", f"{lang}-{anchor_language}.{split_range}.approx.txt"]
    for name in names:
        if (directory / name).is_file():
            return directory / name
    raise ConfigError(f"no MUSE dictionary for {lang}-{anchor_language} {split_range} in {directory}: tried {names}")


def read_bli_sentences(
    sources: ParallelSource | Mapping | datasets.Dataset | Sequence[ParallelSource | Mapping | datasets.Dataset],
    lang: str,
    *,
    anchor_language: str = "en",
    max_words: int | None = None,
    pretokenized: bool = False,
) -> tuple[list[list[str]], list[list[str]]]:
    """Word-tokenized ``(foreign, English)`` sentences of the ``lang``–``anchor_language`` pairs of ``sources``.

    Reads with :func:`amber_align.data.parallel.load_parallel` (any of its source forms, either column order);
    pairs of other languages are ignored; none of the wanted language pair is a ConfigError naming those found.
    """
    lang, anchor = normalize_language(lang), normalize_language(anchor_language)
    ds = load_parallel(sources, max_words=max_words, pretokenized=pretokenized)
    foreign: list[list[str]] = []
    english: list[list[str]] = []
    for s, t, sw, tw in zip(ds["src_lang"], ds["tgt_lang"], ds["src_words"], ds["tgt_words"]):
        if (s, t) == (lang, anchor):
            foreign.append(sw)
            english.append(tw)
        elif (s, t) == (anchor, lang):
            foreign.append(tw)
            english.append(sw)
    if not foreign:
        raise ConfigError(f"no {lang}-{anchor} pairs in the parallel sources (pairs found: {sorted(set(ds['pair']))})")
    return foreign, english


def _check_sentences(parallel_sentences: Any) -> tuple[list[list[str]], list[list[str]]]:
    if not isinstance(parallel_sentences, (tuple, list)) or len(parallel_sentences) != 2:
        raise ConfigError("parallel_sentences must be a pair (foreign sentences, English sentences), each a list of "
                          "word lists (see read_bli_sentences)")
    foreign, english = parallel_sentences
    for name, side in (("foreign", foreign), ("English", english)):
        if isinstance(side, str) or not isinstance(side, Sequence) or not side:
            raise ConfigError(f"parallel_sentences: the {name} side must be a non-empty list of word lists")
    return list(foreign), list(english)


def _unit(v: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(v.float(), dim=-1)


def bli(
    model: Any,
    tokenizer: Any,
    lang: str,
    *,
    dictionary_dir: str | Path,
    parallel_sentences: tuple[list[list[str]], list[list[str]]],
    layer: int = -1,
    k: int = 10,
    train_range: str = "0-5000",
    test_range: str = "5000-6500",
    method: str = "procrustes",
    target_space: str = "corpus",
    pooling: str = "mean",
    batch_size: int = 32,
    device: str | torch.device | None = None,
    anchor_language: str = "en",
) -> dict[str, Any]:
    """BLI ``lang`` → ``anchor_language`` with corpus-averaged contextual vectors (module docstring for protocol).

    ``parallel_sentences``: ``(foreign, English)`` word-tokenized sentences (e.g. :func:`read_bli_sentences`).
    Vectors are L2-normalised before the Procrustes fit (cosine geometry, as CSLS scores it). Returns a dict:
    ``p@1`` (percent of all test source words), ``p@1_covered`` (percent of those with a vector; None if none),
    ``coverage`` (percent of test source words with a vector), ``num_test_words``, ``num_covered``,
    ``num_train_pairs``, ``num_train_pairs_used``, ``num_target_words``, ``gold_in_target_space`` (percent of test
    words with at least one gold translation among the candidates), the settings, the dictionary paths and
    ``label`` ("MUSE-derived test (approx.)" for the approximate splits, else "MUSE").
    """
    if method not in BLI_METHODS:
        raise ConfigError(f"method must be one of {BLI_METHODS}, got {method!r}")
    if target_space not in ("corpus", "dictionary"):
        raise ConfigError(f"target_space must be 'corpus' or 'dictionary', got {target_space!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"k must be a positive integer (CSLS neighbours), got {k!r}")
    lang = normalize_language(lang)
    foreign_sents, english_sents = _check_sentences(parallel_sentences)
    test_path = find_muse_dictionary(dictionary_dir, lang, test_range, anchor_language)
    test_pairs = read_muse(test_path)
    train_path = find_muse_dictionary(dictionary_dir, lang, train_range, anchor_language) \
        if method == "procrustes" else None
    train_pairs = read_muse(train_path) if train_path is not None else []

    gold: dict[str, set[str]] = {}
    for s, t in test_pairs:
        gold.setdefault(s, set()).add(t)
    test_words = list(gold)
    src_vocab = set(test_words) | {s for s, _ in train_pairs}
    if target_space == "corpus":
        tgt_vocab = {w.lower() for sent in english_sents for w in sent}
    else:
        tgt_vocab = {t for _, t in test_pairs} | {t for _, t in train_pairs}
    common = dict(layer=layer, pooling=pooling, batch_size=batch_size, device=device, lowercase=True)
    src_words, src_vecs = contextual_word_averages(model, tokenizer, foreign_sents, src_vocab, **common)
    tgt_words, tgt_vecs = contextual_word_averages(model, tokenizer, english_sents, tgt_vocab, **common)
    if not tgt_words:
        raise DataFormatError(f"no English candidate word has a vector ({len(tgt_vocab)} candidates, "
                              f"{len(english_sents)} English sentences)")
    src_row = {w: i for i, w in enumerate(src_words)}
    tgt_row = {w: i for i, w in enumerate(tgt_words)}
    src_vecs, tgt_vecs = _unit(src_vecs), _unit(tgt_vecs)

    used = [(src_row[s], tgt_row[t]) for s, t in train_pairs if s in src_row and t in tgt_row]
    if method == "procrustes":
        if not used:
            raise DataFormatError(f"none of the {len(train_pairs)} training dictionary pairs has vectors on both "
                                  "sides: give more (or matching) parallel sentences", path=train_path)
        z = src_vecs[[i for i, _ in used]]
        x = tgt_vecs[[j for _, j in used]]
        if len(used) < x.shape[1]:
            logger.warning(f"BLI {lang}: {len(used)} training pairs for a {x.shape[1]}-dim map (under-determined)")
        mapped = src_vecs @ orthogonal_procrustes(x, z)
    else:
        mapped = src_vecs

    covered = [w for w in test_words if w in src_row]
    correct = 0
    if covered and len(src_words):
        best = csls_nearest(mapped, tgt_vecs, k=k).cpu()
        correct = sum(tgt_words[int(best[src_row[w]])] in gold[w] for w in covered)
    n_test = len(test_words)
    in_space = sum(any(t in tgt_row for t in gold[w]) for w in test_words)
    approx = test_path.name.endswith(".approx.txt") or (train_path is not None and train_path.name.endswith(
        ".approx.txt"))
    result = {
        "p@1": 100.0 * correct / n_test,
        "p@1_covered": 100.0 * correct / len(covered) if covered else None,
        "coverage": 100.0 * len(covered) / n_test,
        "num_test_words": n_test,
        "num_covered": len(covered),
        "num_correct": correct,
        "num_train_pairs": len(train_pairs),
        "num_train_pairs_used": len(used) if method == "procrustes" else 0,
        "num_source_words": len(src_words),
        "num_target_words": len(tgt_words),
        "gold_in_target_space": 100.0 * in_space / n_test,
        "language": lang,
        "method": method,
        "layer": layer,
        "k": k,
        "pooling": pooling,
        "target_space": target_space,
        "train_dictionary": str(train_path) if train_path is not None else None,
        "test_dictionary": str(test_path),
        "label": APPROX_LABEL if approx else "MUSE",
    }
    logger.info(f"BLI {lang}->{anchor_language} ({method}, layer {layer}): P@1 {result['p@1']:.2f} "
                f"(coverage {result['coverage']:.1f}%, {result['num_train_pairs_used']} train pairs used)")
    return result

"""Build the pretraining and alignment corpora of the mini multilingual BERT from ../shared/data.

Sources (all line-aligned en-xx, ../shared/data/parallel): OPUS-MT test sets per ``eng-xxx/`` (WMT newstest,
Tatoeba-Challenge test, TICO-19), FLORES-200 devtest, NTREX-128, Multi30k train (en/de/fr) and
small_parallel_enja train (en/ja). Languages: en + the 17 of the data README.

What comes out (``OUT``):

* ``mono/{lang}.train.txt``: the de-duplicated monolingual side of every language (English once, from every
  pair), one sentence per line, shuffled: the MLM pretraining corpus (no parallel signal, as mBERT was trained);
* ``mono/{lang}.heldout.txt``: ``--heldout`` sentences per language kept out of pretraining and alignment, for
  per-language MLM perplexity;
* ``parallel/{xx}-en.{xx,en}``: de-duplicated en-xx pairs for the alignment methods of the comparison;
* ``stats.json``: counts per language and what was excluded.

Evaluation sets are kept out (leakage traps of the data README): every sentence that occurs, after whitespace and
case normalisation, in a Tatoeba XSR file, XNLI dev/test (premise or hypothesis) or XQuAD (question) is dropped
from both corpora, and a pair is dropped when either side is. The counts are logged and written to stats.json.

    python recipes/pretrain_mini_mbert/build_corpus.py --data ../shared/data --out runs/mini_mbert/corpus
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections.abc import Iterator
from pathlib import Path

from amber_align.data.languages import normalize_language
from amber_align.errors import DataFormatError
from amber_align.io_utils import read_text_lines
from amber_align.io_utils import atomic_write_text

__all__ = ["LANGUAGES", "parallel_sources", "evaluation_sentences", "normalize", "build", "main"]

LANGUAGES = ("es", "de", "fr", "ru", "vi", "hi", "zh", "ar", "bg", "el", "tr", "ja", "ro", "sw", "ur", "th", "ko")
_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """The key two sentences are equal under: whitespace collapsed, case folded."""
    return _SPACE.sub(" ", text).strip().casefold()


def _read(path: Path) -> list[str]:
    # split on "\n" only: the corpora hold U+2028 and friends inside sentences (str.splitlines() would split there)
    return read_text_lines(path, what="corpus file")[0]


def _pairs(src: Path, tgt: Path) -> list[tuple[str, str]]:
    left, right = _read(src), _read(tgt)
    if len(left) != len(right):
        raise DataFormatError(f"{len(left)} lines here but {len(right)} in {tgt} (line-aligned files expected)",
                              path=src)
    return list(zip(left, right))


def parallel_sources(data: Path) -> Iterator[tuple[str, str, list[tuple[str, str]]]]:
    """``(lang, source name, [(xx, en), ...])`` for every en-xx file pair in ``data/parallel``."""
    root = data / "parallel"
    opus = root / "opus_mt_testsets"
    for folder in sorted(opus.glob("eng-*")):
        code = folder.name.split("-", 1)[1]
        lang = normalize_language(code)
        if lang not in LANGUAGES:
            continue
        for eng in sorted(folder.glob("*.eng")):
            other = eng.with_suffix(f".{code}")
            if other.exists():
                yield lang, f"opus_mt/{eng.stem}", [(x, e) for e, x in _pairs(eng, other)]
    flores = opus / "flores200_devtest"
    english = flores / "eng_Latn.devtest"
    for path in sorted(flores.glob("*.devtest")):
        lang = normalize_language(path.name.split(".")[0])
        if lang in LANGUAGES:
            yield lang, "flores200", _pairs(path, english)
    ntrex = root / "ntrex128"
    for path in sorted(ntrex.glob("newstest2019-ref.*.txt")):
        lang = normalize_language(path.name.split(".")[1])
        if lang in LANGUAGES:
            yield lang, "ntrex128", _pairs(path, ntrex / "newstest2019-src.eng.txt")
    for lang, name, src, tgt in (("de", "multi30k", "train.de", "train.en"), ("fr", "multi30k", "train.fr", "train.en"),
                                 ("ja", "small_parallel_enja", "train.ja", "train.en")):
        if (root / name / src).exists():  # optional: a data folder without them still builds
            yield lang, name, _pairs(root / name / src, root / name / tgt)


def evaluation_sentences(data: Path) -> set[str]:
    """Normalised sentences of every evaluation set: Tatoeba XSR, XNLI dev/test, XQuAD questions."""
    keys: set[str] = set()
    for path in (data / "xsr" / "tatoeba").glob("tatoeba.*"):
        keys.update(normalize(line) for line in _read(path))
    for path in list((data / "nli" / "xnli_xtreme").glob("*.tsv")) + list(
            (data / "nli" / "xnli_test_labeled_derived").glob("*.tsv")):
        for line in _read(path):
            keys.update(normalize(part) for part in line.split("\t")[:2])
    for path in (data / "qa").rglob("xquad*.json"):
        payload = json.loads(path.read_text(encoding="utf-8"))
        for article in payload.get("data", []):
            for para in article.get("paragraphs", []):
                keys.update(normalize(qa["question"]) for qa in para.get("qas", []))
    keys.discard("")
    return keys


def build(data: Path, out: Path, *, heldout: int = 300, seed: int = 0) -> dict:
    """Write the corpora described in the module docstring; returns the statistics."""
    rng = random.Random(seed)
    excluded = evaluation_sentences(data)
    pairs: dict[str, dict[tuple[str, str], None]] = {lang: {} for lang in LANGUAGES}
    stats: dict = {"sources": {}, "excluded_pairs": {}, "evaluation_sentences": len(excluded)}
    for lang, name, rows in parallel_sources(data):
        kept = 0
        for xx, en in rows:
            xx, en = _SPACE.sub(" ", xx).strip(), _SPACE.sub(" ", en).strip()
            if not xx or not en:
                continue
            if normalize(xx) in excluded or normalize(en) in excluded:
                stats["excluded_pairs"][lang] = stats["excluded_pairs"].get(lang, 0) + 1
                continue
            pairs[lang][(xx, en)] = None
            kept += 1
        stats["sources"][f"{lang}/{name}"] = kept
    mono: dict[str, dict[str, None]] = {lang: {} for lang in ("en", *LANGUAGES)}
    for lang in LANGUAGES:
        for xx, en in pairs[lang]:
            mono[lang].setdefault(xx, None)
            mono["en"].setdefault(en, None)
    held: dict[str, set[str]] = {}
    (out / "mono").mkdir(parents=True, exist_ok=True)
    (out / "parallel").mkdir(parents=True, exist_ok=True)
    stats["mono"], stats["parallel"] = {}, {}
    for lang, sentences in mono.items():
        lines = list(sentences)
        rng.shuffle(lines)
        held[lang] = set(lines[:heldout])
        atomic_write_text(out / "mono" / f"{lang}.heldout.txt", "\n".join(lines[:heldout]) + "\n")
        atomic_write_text(out / "mono" / f"{lang}.train.txt", "\n".join(lines[heldout:]) + "\n")
        stats["mono"][lang] = len(lines) - heldout
    for lang in LANGUAGES:
        kept = [(xx, en) for xx, en in pairs[lang] if xx not in held[lang] and en not in held["en"]]
        rng.shuffle(kept)
        atomic_write_text(out / "parallel" / f"{lang}-en.{lang}", "\n".join(xx for xx, _ in kept) + "\n")
        atomic_write_text(out / "parallel" / f"{lang}-en.en", "\n".join(en for _, en in kept) + "\n")
        stats["parallel"][lang] = len(kept)
    atomic_write_text(out / "stats.json", json.dumps(stats, indent=1, sort_keys=True) + "\n")
    return stats


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "data")
    parser.add_argument("--out", type=Path, default=Path("runs/mini_mbert/corpus"))
    parser.add_argument("--heldout", type=int, default=300, help="held-out sentences per language (perplexity)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    stats = build(args.data, args.out, heldout=args.heldout, seed=args.seed)
    print(json.dumps({"mono": stats["mono"], "parallel": stats["parallel"],
                      "excluded_pairs": stats["excluded_pairs"]}, indent=1))


if __name__ == "__main__":
    main()

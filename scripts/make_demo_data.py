"""Build the demo data shipped in ``amber_align/demo/data`` from ../shared/data (run once; output is committed).

Tatoeba-Challenge test pairs (CC BY 2.0 FR) for es/de/fr–en, de-duplicated against every Tatoeba XSR file the
demo evaluates (es, de, fr, ru; both sides, whitespace/case-normalised, as ../shared/data/README.md asks),
word-tokenized with the package's tokenizer, aligned with eflomal (intersection) on the whole de-duplicated pool,
then a seeded sample of ``--pairs`` pairs per language is written as pre-tokenized ``src ||| tgt`` lines with a
line-parallel 0-based Pharaoh file. The Tatoeba XSR files (CC BY 2.0 FR) for es/de/fr/ru are copied beside them.

The multilingual-e5-small demo (``recipe_e5.yaml``, sentence alignment: no word links) trains on ar–en: a seeded
sample of ``--sa_pairs`` Tatoeba-Challenge ar–en pairs, raw text, de-duplicated against the XSR files of every
language that demo evaluates (ar, sw, es, de, fr, ru); the ar and sw XSR files are copied too. The es/de/fr files
keep their own de-duplication (against es/de/fr/ru), so regenerating gives the committed files again.

    python scripts/make_demo_data.py --shared ../shared/data --pairs 4000
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
from pathlib import Path

from amber_align.data.alignments import write_pharaoh
from amber_align.data.eflomal_aligner import word_align
from amber_align.data.parallel import normalize_for_dedup, read_eval_sentences
from amber_align.data.words import word_tokenize_batch

LANGS = {"es": "spa", "de": "deu", "fr": "fra"}
XSR = {"es": "spa", "de": "deu", "fr": "fra", "ru": "rus"}
SA_LANGS = {"ar": "ara"}
SA_XSR = {**XSR, "ar": "ara", "sw": "swh"}
TATOEBA = "tatoeba-test-v2021-08-07"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    ap.add_argument("--pairs", type=int, default=4000)
    ap.add_argument("--max_words", type=int, default=64)
    ap.add_argument("--sa_pairs", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    shared = Path(args.shared)
    out = Path(__file__).resolve().parents[1] / "amber_align" / "demo" / "data"
    (out / "xsr").mkdir(parents=True, exist_ok=True)

    dedup = copy_xsr(shared, out, XSR.values())
    stats = {}
    for lang, code in LANGS.items():
        xx, en = read_tatoeba_challenge(shared, code)
        kept, dropped = [], 0
        for a, b in zip(xx, en):
            if normalize_for_dedup(a) in dedup or normalize_for_dedup(b) in dedup:
                dropped += 1
                continue
            kept.append((a.strip(), b.strip()))
        xw = word_tokenize_batch([a for a, _ in kept])
        ew = word_tokenize_batch([b for _, b in kept])
        rows = [(s, t) for s, t in zip(xw, ew)
                if s and t and len(s) <= args.max_words and len(t) <= args.max_words
                and "|||" not in " ".join(s + t)]
        _, _, links = word_align([s for s, _ in rows], [t for _, t in rows], method="intersection")
        order = list(range(len(rows)))
        random.Random(args.seed).shuffle(order)
        sample = sorted(order[: args.pairs])
        with open(out / f"{lang}-en.txt", "w", encoding="utf-8") as fh:
            for i in sample:
                fh.write(" ".join(rows[i][0]) + " ||| " + " ".join(rows[i][1]) + "\n")
        write_pharaoh(out / f"{lang}-en.pharaoh", [links[i] for i in sample])
        stats[lang] = {"pairs_in_source": len(xx), "dropped_as_xsr_duplicates": dropped,
                       "aligned_pool": len(rows), "shipped": len(sample)}
        print(lang, stats[lang])
    stats.update(sample_raw_pairs(shared, out, args.sa_pairs, args.seed))
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")


def read_tatoeba_challenge(shared: Path, code: str) -> tuple[list[str], list[str]]:
    """The line-aligned (xx, en) sides of the Tatoeba-Challenge test set eng-``code``."""
    folder = shared / "parallel" / "opus_mt_testsets" / f"eng-{code}"
    xx = (folder / f"{TATOEBA}.{code}").read_text(encoding="utf-8").splitlines()
    en = (folder / f"{TATOEBA}.eng").read_text(encoding="utf-8").splitlines()
    assert len(xx) == len(en), (code, len(xx), len(en))
    return xx, en


def copy_xsr(shared: Path, out: Path, codes) -> set[str]:
    """Copy the Tatoeba XSR files of ``codes`` into ``out/xsr``; return their normalised sentences (for de-dup)."""
    xsr_files = []
    for code in codes:
        for side in (code, "eng"):
            f = shared / "xsr" / "tatoeba" / f"tatoeba.{code}-eng.{side}"
            xsr_files.append(f)
            shutil.copyfile(f, out / "xsr" / f.name)
    return read_eval_sentences(xsr_files)


def sample_raw_pairs(shared: Path, out: Path, pairs: int, seed: int) -> dict:
    """The e5 demo's ar–en pairs: raw ``src ||| tgt`` lines, de-duplicated against every XSR file it evaluates."""
    dedup = copy_xsr(shared, out, SA_XSR.values())
    stats = {}
    for lang, code in SA_LANGS.items():
        xx, en = read_tatoeba_challenge(shared, code)
        kept = [(a.strip(), b.strip()) for a, b in zip(xx, en)
                if normalize_for_dedup(a) not in dedup and normalize_for_dedup(b) not in dedup
                and a.strip() and b.strip() and "|||" not in a + b]
        order = list(range(len(kept)))
        random.Random(seed).shuffle(order)
        sample = sorted(order[:pairs])
        with open(out / f"{lang}-en.txt", "w", encoding="utf-8") as fh:
            for i in sample:
                fh.write(f"{kept[i][0]} ||| {kept[i][1]}\n")
        stats[lang] = {"pairs_in_source": len(xx), "dropped_as_xsr_duplicates_or_empty": len(xx) - len(kept),
                       "shipped": len(sample), "links": "none (sentence alignment)"}
        print(lang, stats[lang])
    return stats


if __name__ == "__main__":
    main()

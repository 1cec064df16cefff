"""Prune the real mBERT WordPiece vocabulary (or the XLM-R Unigram table) to the pieces a corpus uses, keeping a
mapping to the full ids.

WordPiece is greedy longest-match-first: at every position the tokenizer takes the longest piece of the vocabulary
that matches. A piece the full vocabulary produced on the corpus is kept; every piece that was longer and matched
was not in the full vocabulary either; so the pruned tokenizer segments *every sentence of the corpus* exactly as
mBERT does (checked on a sample below and in the tests). Text outside the corpus may fall back to shorter pieces
or ``[UNK]``.

Kept: the tokenizer's special tokens and every piece that occurs at least ``min_count`` times (default 1, which is what
keeps the segmentation identical), in mBERT's id order. ``mbert_ids.txt`` holds, for each new id, mBERT's id
(line i = new id i), so embeddings or predictions can be mapped between the two.

    python recipes/pretrain_mini_mbert/prune_vocab.py --corpus runs/mini_mbert/corpus \
        --vocab ../shared/data/tokenizers/bert-base-multilingual-cased/vocab.txt --out runs/mini_mbert/tokenizer

The XLM-R table (``id<TAB>piece<TAB>score``, a ``.tsv`` or ``.tsv.xz`` ``--vocab``) is pruned the same way into
``vocab.tsv`` + ``xlmr_ids.txt``. XLM-R's Unigram model takes the highest-scoring segmentation (Viterbi); a piece
that no corpus segmentation used is on no best path, so removing it leaves every best path in place, and the
pruned table segments the corpus as XLM-R does (up to the unknown-character penalty, which sentencepiece derives
from the lowest score in the table; the sample check counts any difference). ``--min_count`` above 1 drops rare
pieces too: their words fall back to the next-best segmentation (counted, not refused), which is how the mini
XLM-R keeps its 25 MB budget (its vocabulary is larger than mBERT's).
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

from tqdm.auto import tqdm

from amber_align.errors import DataFormatError
from amber_align.io_utils import atomic_write_text, read_text_lines
from amber_align.tokenization import build_xlmr_tokenizer, load_mbert_tokenizer

__all__ = ["is_unigram_table", "load_full", "count_pieces", "prune", "check_same_segmentation",
           "ids_file", "main"]

def _lines(path: Path) -> list[str]:
    return [line for line in read_text_lines(path, what="corpus file")[0] if line]


def count_pieces(tokenizer, files: list[Path], batch: int = 2000) -> collections.Counter:
    """How often each mBERT id occurs in the files (one sentence per line, no special tokens)."""
    counts: collections.Counter = collections.Counter()
    for path in tqdm(files, desc="counting pieces", unit="file"):
        lines = _lines(path)
        for start in range(0, len(lines), batch):
            for ids in tokenizer(lines[start:start + batch], add_special_tokens=False)["input_ids"]:
                counts.update(ids)
    return counts


def is_unigram_table(vocab_path: Path) -> bool:
    """An XLM-R ``id<TAB>piece<TAB>score`` table (``.tsv``, ``.tsv.xz``, ``.tsv.gz``), else an mBERT ``vocab.txt``."""
    return ".tsv" in Path(vocab_path).suffixes


def load_full(vocab_path: Path):
    """The full tokenizer of ``vocab_path``: XLM-R's from its table, mBERT's from its vocab.txt."""
    return build_xlmr_tokenizer(vocab_path) if is_unigram_table(vocab_path) else load_mbert_tokenizer(vocab_path)


def _special_ids(tokenizer) -> set[int]:
    """Ids of the tokenizer's own special tokens ([PAD] [UNK] [CLS] [SEP] [MASK] / <s> <pad> </s> <unk> <mask>)."""
    return set(tokenizer.all_special_ids)


def prune(vocab_path: Path, counts: collections.Counter, out: Path, *, min_count: int = 1) -> tuple[Path, int]:
    """Write the pruned vocabulary into ``out`` with the map to the full ids; returns (vocabulary path, size).

    mBERT: ``vocab.txt`` + ``mbert_ids.txt``. XLM-R: ``vocab.tsv`` (renumbered ``id<TAB>piece<TAB>score``, the
    specials keep ids 0-3 and ``<mask>`` stays last, as in XLM-R) + ``xlmr_ids.txt``. Line i of the ids file is the
    full vocabulary's id of token i.
    """
    full = load_full(vocab_path)
    id_to_token = {index: token for token, index in full.get_vocab().items()}
    keep = sorted(_special_ids(full) | {index for index, n in counts.items() if n >= min_count})
    if any(index not in id_to_token for index in keep):
        raise DataFormatError("counted ids that the vocabulary does not have (counts from another tokenizer?)",
                              path=vocab_path)
    out.mkdir(parents=True, exist_ok=True)
    if is_unigram_table(vocab_path):
        scores = _unigram_scores(full)
        rows = [f"{new}\t{id_to_token[old]}\t{scores[old]!r}" for new, old in enumerate(keep)]
        vocab_file, ids_file = out / "vocab.tsv", out / "xlmr_ids.txt"
        atomic_write_text(vocab_file, "\n".join(rows) + "\n")
    else:
        vocab_file, ids_file = out / "vocab.txt", out / "mbert_ids.txt"
        atomic_write_text(vocab_file, "\n".join(id_to_token[index] for index in keep) + "\n")
    atomic_write_text(ids_file, "\n".join(str(index) for index in keep) + "\n")
    return vocab_file, len(keep)


def _unigram_scores(tokenizer) -> list[float]:
    """The Unigram scores of a tokenizer, in id order (``repr`` of a float parsed from the table gives back its
    digits, so the pruned table keeps the scores exactly)."""
    vocab = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["vocab"]
    return [float(score) for _, score in vocab]


def ids_file(vocab_file: Path) -> Path:
    """The ids map written next to a pruned vocabulary."""
    return vocab_file.parent / ("xlmr_ids.txt" if is_unigram_table(vocab_file) else "mbert_ids.txt")


def check_same_segmentation(full_vocab: Path, pruned_vocab: Path, full_ids: Path, lines: list[str]) -> int:
    """Number of ``lines`` whose pruned tokenization, mapped back through ``full_ids``, differs from the full one."""
    full, pruned = load_full(full_vocab), load_full(pruned_vocab)
    mapping = [int(x) for x in _lines(full_ids)]
    a = full(lines, add_special_tokens=True)["input_ids"]
    b = pruned(lines, add_special_tokens=True)["input_ids"]
    return sum(1 for x, y in zip(a, b) if x != [mapping[i] for i in y])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=Path("runs/mini_mbert/corpus"))
    parser.add_argument("--vocab", type=Path,
                        default=Path(__file__).resolve().parents[3] / "shared" / "data" / "tokenizers"
                        / "bert-base-multilingual-cased" / "vocab.txt")
    parser.add_argument("--out", type=Path, default=Path("runs/mini_mbert/tokenizer"))
    parser.add_argument("--min_count", type=int, default=1)
    args = parser.parse_args(argv)
    files = sorted((args.corpus / "mono").glob("*.train.txt"))
    if not files:
        raise SystemExit(f"error: no mono/*.train.txt under {args.corpus} (run build_corpus.py first)")
    full = load_full(args.vocab)
    counts = count_pieces(full, files)
    vocab, size = prune(args.vocab, counts, args.out, min_count=args.min_count)
    sample = [line for path in files for line in _lines(path)[:300]]
    differ = check_same_segmentation(args.vocab, vocab, ids_file(vocab), sample)
    dropped = sum(n for n in counts.values() if n < args.min_count)
    stats = {"vocabulary": "xlmr-unigram" if is_unigram_table(args.vocab) else "mbert-wordpiece",
             "pieces_used": len(counts), "min_count": args.min_count, "vocab_size": size,
             "tokens": sum(counts.values()), "tokens_of_dropped_pieces": dropped,
             "unk": counts.get(full.unk_token_id, 0), "sample_lines": len(sample),
             "sample_lines_segmented_differently": differ}
    atomic_write_text(args.out / "prune_stats.json", json.dumps(stats, indent=1) + "\n")
    print(json.dumps(stats, indent=1))
    if differ and args.min_count == 1:
        raise SystemExit(f"error: {differ} of {len(sample)} corpus lines segment differently after pruning")


if __name__ == "__main__":
    main()

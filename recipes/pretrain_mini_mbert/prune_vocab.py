"""Prune the real mBERT WordPiece vocabulary to the pieces a corpus uses, keeping a mapping to mBERT's ids.

WordPiece is greedy longest-match-first: at every position the tokenizer takes the longest piece of the vocabulary
that matches. A piece the full vocabulary produced on the corpus is kept; every piece that was longer and matched
was not in the full vocabulary either; so the pruned tokenizer segments *every sentence of the corpus* exactly as
mBERT does (checked on a sample below and in the tests). Text outside the corpus may fall back to shorter pieces
or ``[UNK]``.

Kept: the five special tokens and every piece that occurs at least ``min_count`` times (default 1, which is what
keeps the segmentation identical), in mBERT's id order. ``mbert_ids.txt`` holds, for each new id, mBERT's id
(line i = new id i), so embeddings or predictions can be mapped between the two.

    python recipes/pretrain_mini_mbert/prune_vocab.py --corpus runs/mini_mbert/corpus \
        --vocab ../shared/data/tokenizers/bert-base-multilingual-cased/vocab.txt --out runs/mini_mbert/tokenizer
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

from tqdm.auto import tqdm

from amber_align.errors import DataFormatError
from amber_align.io_utils import atomic_write_text, read_text_lines
from amber_align.tokenization import load_mbert_tokenizer

__all__ = ["SPECIALS", "count_pieces", "prune", "check_same_segmentation", "main"]

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


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


def prune(vocab_path: Path, counts: collections.Counter, out: Path, *, min_count: int = 1) -> tuple[Path, int]:
    """Write the pruned ``vocab.txt`` and ``mbert_ids.txt`` into ``out``; returns (vocab path, size)."""
    full = load_mbert_tokenizer(vocab_path)
    id_to_token = {index: token for token, index in full.get_vocab().items()}
    special_ids = {full.convert_tokens_to_ids(token) for token in SPECIALS}
    keep = sorted(special_ids | {index for index, n in counts.items() if n >= min_count})
    if any(index not in id_to_token for index in keep):
        raise DataFormatError("counted ids that the vocabulary does not have (counts from another tokenizer?)",
                              path=vocab_path)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "vocab.txt", "\n".join(id_to_token[index] for index in keep) + "\n")
    atomic_write_text(out / "mbert_ids.txt", "\n".join(str(index) for index in keep) + "\n")
    return out / "vocab.txt", len(keep)


def check_same_segmentation(full_vocab: Path, pruned_vocab: Path, mbert_ids: Path, lines: list[str]) -> int:
    """Number of ``lines`` whose pruned tokenization, mapped back through ``mbert_ids``, differs from mBERT's."""
    full, pruned = load_mbert_tokenizer(full_vocab), load_mbert_tokenizer(pruned_vocab)
    mapping = [int(x) for x in _lines(mbert_ids)]
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
    counts = count_pieces(load_mbert_tokenizer(args.vocab), files)
    vocab, size = prune(args.vocab, counts, args.out, min_count=args.min_count)
    sample = [line for path in files for line in _lines(path)[:300]]
    differ = check_same_segmentation(args.vocab, vocab, args.out / "mbert_ids.txt", sample)
    stats = {"pieces_used": len(counts), "vocab_size": size, "tokens": sum(counts.values()),
             "unk": counts.get(100, 0), "sample_lines": len(sample), "sample_lines_segmented_differently": differ}
    atomic_write_text(args.out / "prune_stats.json", json.dumps(stats, indent=1) + "\n")
    print(json.dumps(stats, indent=1))
    if differ and args.min_count == 1:
        raise SystemExit(f"error: {differ} of {len(sample)} corpus lines segment differently after pruning")


if __name__ == "__main__":
    main()

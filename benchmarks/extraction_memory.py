"""Peak memory of ``extract_to_file`` as the corpus grows: it should stay flat (streaming, chunked).

    python benchmarks/extraction_memory.py                 # 2k, 20k, 100k pairs, tiny model, CPU
    python benchmarks/extraction_memory.py --sizes 500,2000 --no_record

Each size runs in a fresh subprocess (peak RSS of that process, from ``resource.getrusage``), on a corpus of real
de-en sentences (the bundled Tatoeba sample, repeated) written as ``src ||| tgt`` lines. The model is tiny
(speed is not the point here); what grows with the corpus is only the file on disk.
Appends its table to ``benchmarks/RESULTS.md``.
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

REPO = Path(__file__).resolve().parents[1]
from results import record  # noqa: E402  (benchmarks/results.py, next to this script)

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[3])
import torch
from transformers import BertConfig, BertModel
from amber_align.extraction import WordAligner
from amber_align.extraction.stream import extract_to_file
from amber_align.tokenization import load_mbert_tokenizer
tok = load_mbert_tokenizer(sys.argv[3] + "/tests/fixtures/mbert-cased-vocab.txt.xz")
torch.manual_seed(0)
model = BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=64), add_pooling_layer=False)
aligner = WordAligner(model, tok, layer=2, batch_size=64)
start = time.perf_counter()
summary = extract_to_file(aligner, sys.argv[2], file=sys.argv[1], progress=False)
print(json.dumps({"pairs": summary["pairs"], "seconds": time.perf_counter() - start,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2000,20000,100000")
    parser.add_argument("--no_record", action="store_true")
    args = parser.parse_args()
    lines = (REPO / "amber_align" / "demo" / "data" / "de-en.txt").read_text(encoding="utf-8").splitlines()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(x) for x in args.sizes.split(",")):
            corpus = Path(tmp) / f"c{n}.txt"
            corpus.write_text("\n".join(lines[k % len(lines)] for k in range(n)) + "\n", encoding="utf-8")
            result = subprocess.run([sys.executable, "-c", CHILD, str(corpus), str(Path(tmp) / f"o{n}"), str(REPO)],
                                    capture_output=True, text=True, check=True)
            rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    base = rows[0]["peak_rss_mib"]
    table = (f"### Extraction memory — tiny model, CPU, {datetime.date.today()}, Python {platform.python_version()}"
             "\n\n| pairs | seconds | peak RSS MiB | × smallest |\n|---:|---:|---:|---:|\n"
             + "\n".join(f"| {r['pairs']} | {r['seconds']:.1f} | {r['peak_rss_mib']:.0f} | "
                         f"{r['peak_rss_mib'] / base:.2f} |" for r in rows) + "\n")
    print(table)
    if not args.no_record:
        record(table)


if __name__ == "__main__":
    main()

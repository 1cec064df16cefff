"""Word-alignment extraction speed: the package's batched ``WordAligner`` against a one-pair-at-a-time loop that
works the way SimAlign does, in the same run, on real parallel sentences.

    python benchmarks/extraction_throughput.py                      # mBERT-base shape, GPU if there is one
    python benchmarks/extraction_throughput.py --smoke --no_record  # tiny model, a few pairs (CI)

Speed does not depend on pretraining, so the encoder has random weights of mBERT-base shape (12 layers, 768
hidden, the real 119,547-piece mBERT vocabulary); the sentences are real de-en pairs from ../shared/data (their
length distribution matters: padding). Both sides use argmax extraction on cosine similarities of layer 8 so the
outputs can be compared: the table reports the share of pairs whose links are identical.

The one-pair loop (SimAlign 0.4's way of working): per pair, each word tokenized on its own, each sentence run
through the whole model alone with all hidden states returned, similarities and argmax on the CPU in NumPy.
Prints a table and appends it, with the device and versions, to ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import BertConfig, BertModel

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from amber_align.data.words import word_tokenize  # noqa: E402
from amber_align.extraction import WordAligner  # noqa: E402
from amber_align.io_utils import read_text_lines  # noqa: E402
from amber_align.tokenization import load_mbert_tokenizer  # noqa: E402

from results import record  # noqa: E402  (benchmarks/results.py, next to this script)

__all__ = ["ROW_HEADER", "build_encoder", "format_row", "load_pairs", "main", "measure_batched", "measure_loop",
           "one_pair_loop", "timed"]

VOCAB = REPO / "tests" / "fixtures" / "mbert-cased-vocab.txt.xz"
SHAPES = {"mbert-base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
          "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)}


def load_pairs(shared: Path, n: int) -> list[tuple[list[str], list[str]]]:
    """``n`` real de-en pairs (newstest2014, else the bundled Tatoeba demo sample), word-tokenized."""
    base = shared / "parallel" / "opus_mt_testsets" / "eng-deu" / "newstest2014"
    if Path(f"{base}.deu").is_file():
        src, tgt = read_text_lines(f"{base}.deu")[0], read_text_lines(f"{base}.eng")[0]
    else:
        lines = read_text_lines(REPO / "amber_align" / "demo" / "data" / "de-en.txt")[0]
        src, tgt = zip(*(line.split("|||") for line in lines))
    pairs = [(word_tokenize(s), word_tokenize(t)) for s, t in zip(src, tgt)]
    pairs = [(s, t) for s, t in pairs if 0 < len(s) <= 80 and 0 < len(t) <= 80]
    return (pairs * (n // max(len(pairs), 1) + 1))[:n]


def one_pair_loop(model, tokenizer, pairs, layer: int, device: torch.device) -> list[list[tuple[int, int]]]:
    """SimAlign's way: one pair at a time, whole model, all hidden states, NumPy argmax on the CPU."""
    out = []
    for src, tgt in pairs:
        vectors, maps = [], []
        for words in (src, tgt):
            pieces = [tokenizer.tokenize(w) for w in words]
            flat = [p for ps in pieces for p in ps]
            maps.append([k for k, ps in enumerate(pieces) for _ in ps])
            ids = tokenizer.convert_tokens_to_ids([tokenizer.cls_token] + flat + [tokenizer.sep_token])
            with torch.no_grad():
                hidden = model(torch.tensor([ids], device=device), output_hidden_states=True).hidden_states[layer]
            vectors.append(hidden[0, 1:-1].float().cpu().numpy())
        a, b = (v / np.linalg.norm(v, axis=1, keepdims=True) for v in vectors)
        sim = a @ b.T
        forward = np.zeros_like(sim, dtype=bool)
        forward[np.arange(sim.shape[0]), sim.argmax(1)] = True
        backward = np.zeros_like(sim, dtype=bool)
        backward[sim.argmax(0), np.arange(sim.shape[1])] = True
        links = {(maps[0][i], maps[1][j]) for i, j in zip(*np.nonzero(forward & backward))}
        out.append(sorted(links))
    return out


def timed(fn, device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    return result, time.perf_counter() - start, peak


ROW_HEADER = ("| run | pairs | seconds | pairs/s | × loop | precision | peak GPU MiB |\n"
              "|---|---:|---:|---:|---:|---|---:|")


def build_encoder(shape: dict[str, int], vocab: int, device: torch.device) -> BertModel:
    """A random-weight mBERT-shaped encoder in eval mode on ``device`` (speed does not depend on pretraining)."""
    torch.manual_seed(0)
    config = BertConfig(vocab_size=vocab, max_position_embeddings=512, **shape)
    return BertModel(config, add_pooling_layer=False).to(device).eval()


def measure_loop(model, tokenizer, pairs, layer: int, device: torch.device) -> dict:
    """The one-pair loop over ``pairs`` (after a 2-pair warm-up): its row and its links."""
    one_pair_loop(model, tokenizer, pairs[:2], layer, device)
    links, seconds, _ = timed(lambda: one_pair_loop(model, tokenizer, pairs, layer, device), device)
    return dict(run="one-pair loop (SimAlign-style)", pairs=len(pairs), seconds=seconds,
                rate=len(pairs) / seconds, precision="fp32", peak=None, links=links)


def measure_batched(model, tokenizer, pairs, layer: int, batch_size: int, device: torch.device) -> dict:
    """``WordAligner`` (argmax) over ``pairs`` in batches of ``batch_size`` (after a one-batch warm-up)."""
    aligner = WordAligner(model, tokenizer, layer=layer, method="argmax", batch_size=batch_size, device=device)
    src, tgt = [s for s, _ in pairs], [t for _, t in pairs]
    aligner.align(src[:batch_size], tgt[:batch_size])  # warm-up
    links, seconds, peak = timed(lambda: aligner.align(src, tgt), device)
    return dict(run=f"WordAligner batch {batch_size}", pairs=len(pairs), seconds=seconds, rate=len(pairs) / seconds,
                precision="bf16 autocast" if aligner.use_bf16 else "fp32", peak=peak, links=links)


def format_row(r: dict, loop_rate: float) -> str:
    """One table row of ``measure_loop``/``measure_batched``; speed against the loop's pairs/s."""
    peak = "" if r["peak"] is None else f"{r['peak']:.0f}"
    return (f"| {r['run']} | {r['pairs']} | {r['seconds']:.2f} | {r['rate']:.1f} | {r['rate'] / loop_rate:.1f} | "
            f"{r['precision']} | {peak} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="mbert-base", choices=sorted(SHAPES))
    parser.add_argument("--pairs", type=int, default=None,
                        help="pairs for the batched run (default: 2000 GPU, 256 CPU)")
    parser.add_argument("--loop_pairs", type=int, default=None, help="pairs for the one-pair loop (default: 200 GPU, "
                                                                      "64 CPU); pairs/s is compared")
    parser.add_argument("--batch_size", type=int, default=None, help="default: 256 GPU, 32 CPU")
    parser.add_argument("--layer", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--shared", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--smoke", action="store_true", help="tiny model, a few pairs: checks the script runs")
    parser.add_argument("--no_record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    args = parser.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    gpu = device.type == "cuda"
    if args.smoke:
        args.shape, args.layer = "tiny", 2
        args.pairs, args.loop_pairs, args.batch_size = args.pairs or 24, args.loop_pairs or 8, args.batch_size or 8
    n_batched = args.pairs or (2000 if gpu else 256)
    n_loop = args.loop_pairs or (200 if gpu else 64)
    batch_size = args.batch_size or (256 if gpu else 32)

    tokenizer = load_mbert_tokenizer(VOCAB)
    model = build_encoder(SHAPES[args.shape], len(tokenizer), device)
    pairs = load_pairs(Path(args.shared), n_batched)
    n_sub = sum(len(tokenizer(s, is_split_into_words=True)["input_ids"]) for s, _ in pairs[:200]) / min(200, len(pairs))

    batched = measure_batched(model, tokenizer, pairs, args.layer, batch_size, device)
    looped = measure_loop(model, tokenizer, pairs[:n_loop], args.layer, device)
    same = sum(a == b for a, b in zip(batched["links"][:n_loop], looped["links"])) / n_loop

    name = torch.cuda.get_device_name(device) if gpu else f"CPU ({platform.processor() or platform.machine()}, " \
                                                          f"{torch.get_num_threads()} threads)"
    body = "\n".join(format_row(r, looped["rate"]) for r in (looped, batched))
    table = (f"### Extraction throughput — {args.shape}{' (smoke)' if args.smoke else ''}, layer {args.layer}, "
             f"argmax, {name}\n\n"
             f"{datetime.date.today()}; torch {torch.__version__}, transformers {transformers.__version__}, "
             f"Python {platform.python_version()}; de-en pairs, mean {n_sub:.1f} subwords per German side; "
             f"links identical to the loop's on {100 * same:.1f} % of {n_loop} pairs.\n\n{ROW_HEADER}\n{body}\n")
    print(table)
    if not args.no_record:
        record(table)


if __name__ == "__main__":
    main()

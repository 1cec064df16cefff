"""Alignment training speed: the package's fast path against a reference-style configuration, in the same run, on
real parallel sentences, timing the real ``trainer.training_step`` (forward + backward) plus the optimizer step.

    python benchmarks/train_throughput.py                               # mBERT-base shape, GPU if there is one
    python benchmarks/train_throughput.py --shape xlmr-large --batch_size 32 --methods cao
    python benchmarks/train_throughput.py --smoke --no_record           # tiny model, a few steps (CI)

Speed does not depend on pretraining, so the encoders have random weights of the real shapes and vocabularies
(mBERT 119,547 pieces, XLM-R 250,002). The data are real de-en pairs (newstest2014 from ../shared/data, word-aligned
by eflomal through the package's own pipeline; without them, the bundled Tatoeba demo pairs and their links),
encoded by ``build_alignment_datasets`` and batched by the trainer's own dataloader and collator, so their real
length distribution sets the padding. Timed steps are spread evenly over one epoch of those batches (length
grouping sorts each mega-batch, so the first batches are the longest).

Per method (``cao``; AMBER's parts ``amber-mlm``, ``amber-tlm``, ``amber-sa``, ``amber-wa`` and ``amber-all`` =
MLM+TLM+SA+WA), two configurations of the same trainer class:

- **fast** (the package's defaults, plus length-grouped batches): bf16 autocast where a CUDA GPU supports it
  (``auto_bf16``), SDPA attention (eager only in the last layer, for WA), dynamic padding with length-grouped
  batches (``train_sampling_strategy: group_by_length``), the frozen teacher in bf16 under ``no_grad``, fused AdamW;
- **reference**: fp32, eager attention in every layer, every batch padded to a multiple of 128 (the collator's
  ``pad_to_multiple_of``), random batches, the teacher's forward run with autograd on (its graph and activations
  are kept until the next step, as in a training loop without ``no_grad``; no gradient flows into it), plain AdamW.

Reported: pairs/s; real (non-pad) tokens/s through the trained model's forwards; pad % of those forwards; MFU on
real tokens (docs/methods.md "Counting FLOPs for MFU": 6·N·n per trained forward+backward, 2·N·n per teacher forward,
N = non-embedding parameters, plus 4·L·H·n² attention per forward per sequence and the MLM vocabulary projection
on masked tokens) against the matmul ceiling measured in the same run (bf16 on a GPU, fp32 on a CPU; or
``--peak_tflops``); peak memory (CUDA max allocated per row; on a CPU the process's max RSS so far, which only
grows, so rows after the first are upper bounds). Prints a table and appends it, with the device and versions,
to ``benchmarks/RESULTS.md`` (unless ``--no_record``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import logging
import platform
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import BertConfig, BertForMaskedLM, BertModel, XLMRobertaConfig, XLMRobertaForMaskedLM, \
    XLMRobertaModel
from transformers.modeling_outputs import BaseModelOutput

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from amber_align.errors import MissingDependencyError  # noqa: E402
from amber_align.tokenization import build_xlmr_tokenizer, load_mbert_tokenizer  # noqa: E402
from amber_align.trainers import AmberConfig, AmberTrainer, CaoConfig, CaoTrainer  # noqa: E402
from results import record  # noqa: E402  (benchmarks/results.py, next to this script)

__all__ = ["METHODS", "SHAPES", "batch_flops", "build_model", "format_row", "format_table", "load_pairs",
           "load_tokenizer", "main", "matmul_ceiling", "run_and_free", "run_one", "TABLE_HEADER"]

FIXTURES = REPO / "tests" / "fixtures"
SHAPES = {
    "mbert-base": ("mbert", dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                 intermediate_size=3072)),
    "xlmr-base": ("xlmr", dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                               intermediate_size=3072)),
    "xlmr-large": ("xlmr", dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                intermediate_size=4096)),
    "tiny": ("mbert", dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)),
    "tiny-xlmr": ("xlmr", dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)),
}
#: method -> AMBER weights (None: the Cao trainer)
METHODS: dict[str, dict[str, float] | None] = {
    "cao": None,
    "amber-mlm": dict(mlm_weight=1.0, tlm_weight=0.0, sa_weight=0.0, wa_weight=0.0),
    "amber-tlm": dict(mlm_weight=0.0, tlm_weight=1.0, sa_weight=0.0, wa_weight=0.0),
    "amber-sa": dict(mlm_weight=0.0, tlm_weight=0.0, sa_weight=1.0, wa_weight=0.0),
    "amber-wa": dict(mlm_weight=0.0, tlm_weight=0.0, sa_weight=0.0, wa_weight=1.0),
    "amber-all": dict(mlm_weight=1.0, tlm_weight=1.0, sa_weight=1.0, wa_weight=1.0),
}
REFERENCE_PAD = 128


def load_tokenizer(kind: str) -> Any:
    if kind == "mbert":
        return load_mbert_tokenizer(FIXTURES / "mbert-cased-vocab.txt.xz")
    return build_xlmr_tokenizer(FIXTURES / "xlmr-vocab.tsv.xz")


def build_model(kind: str, shape: dict[str, int], vocab: int, *, masked_lm: bool, attention: str) -> torch.nn.Module:
    """A random-weight encoder (``*ForMaskedLM`` when MLM/TLM is on) of the given shape and attention."""
    if kind == "mbert":
        config = BertConfig(vocab_size=vocab, max_position_embeddings=512, pad_token_id=0, **shape)
        cls = BertForMaskedLM if masked_lm else BertModel
    else:
        config = XLMRobertaConfig(vocab_size=vocab, max_position_embeddings=514, pad_token_id=1, bos_token_id=0,
                                  eos_token_id=2, type_vocab_size=1, **shape)
        cls = XLMRobertaForMaskedLM if masked_lm else XLMRobertaModel
    config._attn_implementation = attention
    return cls(config) if masked_lm else cls(config, add_pooling_layer=False)


def load_pairs(shared: Path, tokenizer: Any, n: int, workdir: Path) -> tuple[Any, str]:
    """``n`` encoded de-en pairs (a ``datasets.Dataset``) through ``build_alignment_datasets`` (newstest2014 +
    eflomal, else the demo data). The import is here: ``benchmarks/gpu_suite.py`` reuses this module's timing code
    on a machine without ``datasets``, with pairs encoded beforehand by this function."""
    from amber_align.pipeline import build_alignment_datasets

    base = shared / "parallel" / "opus_mt_testsets" / "eng-deu" / "newstest2014"
    demo = REPO / "amber_align" / "demo" / "data"
    real = dict(src_file=f"{base}.deu", tgt_file=f"{base}.eng", src_lang="de", tgt_lang="en", max_pairs=n)
    bundled = dict(file=str(demo / "de-en.txt"), format="bar", src_lang="de", tgt_lang="en",
                   alignments=str(demo / "de-en.pharaoh"), max_pairs=n)
    attempts = [(real, False, "newstest2014 de-en (eflomal intersection links)")] if Path(f"{base}.deu").is_file() \
        else []
    attempts.append((bundled, True, "bundled Tatoeba de-en demo pairs (shipped eflomal links)"))
    for source, pretokenized, label in attempts:
        config = CaoConfig(output_dir=str(workdir / "data"), report_to=[], use_cpu=True, train_data=[source],
                           pretokenized=pretokenized, alignment_cache_dir=str(workdir / "alignments"))
        try:
            train, _ = build_alignment_datasets(config, tokenizer)
        except MissingDependencyError as err:  # no eflomal: the bundled pairs carry their links
            logging.warning(f"{label}: {err}; using the bundled demo pairs")
            continue
        return train, label
    raise RuntimeError("no parallel data could be loaded")


class GradKeepingTeacher(torch.nn.Module):
    """Reference-style teacher: its forward runs with autograd on even inside the trainer's ``no_grad`` (parameters
    require grad), and the graph and activations stay alive until the next step; the output handed to the loss is
    detached, so no gradient flows into it (the cost measured is the kept graph, not an extra backward)."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner.requires_grad_(True)
        self.kept: Any = None

    def forward(self, **kwargs: Any) -> BaseModelOutput:
        with torch.enable_grad():
            out = self.inner(**kwargs)
        self.kept = out
        states = None if out.hidden_states is None else tuple(h.detach() for h in out.hidden_states)
        return BaseModelOutput(last_hidden_state=out.last_hidden_state.detach(), hidden_states=states)


def real_lengths(batch: dict[str, Any], weights: dict[str, float] | None) -> list[tuple[torch.Tensor, int, int]]:
    """Per trained forward of this batch: (real length of every row, padded row length, repeats)."""
    sep = batch["attention_mask"].sum(1), batch["attention_mask"].shape[1]
    if weights is None:
        return [(*sep, 1)]
    out = []
    if weights["sa_weight"] > 0:
        out.append((*sep, 1))
    if weights["mlm_weight"] > 0:
        out.append((*sep, 1))
    if weights["tlm_weight"] > 0 or weights["wa_weight"] > 0:
        pair = batch["pair_attention_mask"].sum(1), batch["pair_attention_mask"].shape[1]
        out.extend([(*pair, 1)] * (weights["tlm_weight"] > 0) + [(*pair, 2)] * (weights["wa_weight"] > 0))
    return out


def batch_flops(batch: dict[str, Any], weights: dict[str, float] | None, n_params: int, layers: int, hidden: int,
                vocab: int) -> tuple[float, int, int]:
    """(model FLOPs on real tokens, real tokens, padded tokens) of one training step on ``batch``."""

    def forward(lengths: torch.Tensor) -> float:
        n = lengths.double()
        return float(2 * n_params * n.sum() + 4 * layers * hidden * (n * n).sum())

    flops, real, padded = 0.0, 0, 0
    for lengths, t, repeats in real_lengths(batch, weights):
        flops += 3 * repeats * forward(lengths)
        real += repeats * int(lengths.sum())
        padded += repeats * t * len(lengths)
    if weights is None or weights.get("cao_weight", 0) > 0:  # teacher forward on the anchor rows
        b = batch["attention_mask"].shape[0] // 2
        flops += forward(batch["attention_mask"][b:].sum(1))
    masked = sum(int(batch.get(k, 0)) for k in ("num_masked_tokens", "num_mlm_masked_tokens"))
    flops += 3 * 2 * (hidden * hidden + hidden * vocab) * masked  # MLM head: transform + vocabulary projection
    return flops, real, padded


def matmul_ceiling(device: torch.device) -> tuple[float, str]:
    """Measured dense matmul throughput (FLOP/s), the best of several timings (a shared machine's load only ever
    lowers it): bf16 8192² (blocks of 10) on a GPU, fp32 2048² on a CPU."""
    gpu = device.type == "cuda"
    n, dtype, per_block, blocks = (8192, torch.bfloat16, 10, 5) if gpu else (2048, torch.float32, 1, 8)
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    a @ b
    best = float("inf")
    for _ in range(blocks):
        sync(device)
        start = time.perf_counter()
        for _ in range(per_block):
            a @ b
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 * per_block / best, "bf16" if gpu else "fp32"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(method: str, fast: bool, opts: argparse.Namespace, data: Any, tokenizer: Any,
            device: torch.device, workdir: Path) -> dict[str, Any]:
    """Build the trainer for ``method`` in the fast or reference configuration and time its steps."""
    weights = METHODS[method]
    kind, shape = SHAPES[opts.shape]
    masked_lm = weights is not None and (weights["mlm_weight"] > 0 or weights["tlm_weight"] > 0)
    torch.manual_seed(0)
    # built on the GPU itself where there is one: random init of XLM-R-large (560M parameters) on CPU cores is slow
    build_on = torch.device(device) if device.type == "cuda" else torch.device("cpu")
    with build_on:
        model = build_model(kind, shape, len(tokenizer), masked_lm=masked_lm, attention="sdpa" if fast else "eager")
    common = dict(output_dir=str(workdir / f"{method}-{fast}"), report_to=[], use_cpu=device.type == "cpu",
                  save_strategy="no", logging_steps=10**6, max_steps=10**6, seed=0,
                  per_device_train_batch_size=opts.batch_size, dataloader_num_workers=0,
                  train_sampling_strategy="group_by_length" if fast else "random", auto_bf16=fast,
                  **({} if fast else {"optim": "adamw_torch"}))
    if weights is None:
        args = CaoConfig(**common)
        with build_on:
            teacher = build_model(kind, shape, len(tokenizer), masked_lm=False, attention="sdpa" if fast else "eager")
        trainer = CaoTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer, teacher=teacher)
    else:
        args = AmberConfig(**common, **weights)
        trainer = AmberTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
    if not fast:
        trainer.data_collator = dataclasses.replace(trainer.data_collator, pad_to_multiple_of=REFERENCE_PAD)
        if trainer.teacher is not None:
            trainer.teacher = GradKeepingTeacher(trainer.teacher)
    wrapped = trainer.accelerator.prepare_model(trainer.model)
    wrapped.train()
    # set by Trainer's training loop, read by training_step in transformers 5.17 (the GPU image's version): the
    # steps timed here are called outside that loop, one batch per optimizer step
    trainer.current_gradient_accumulation_steps = 1
    trainer.create_optimizer()
    optimizer = trainer.optimizer
    batches = list(trainer.get_train_dataloader())
    total = opts.warmup + opts.steps
    if len(batches) < total:
        batches = (batches * (total // len(batches) + 1))
    stride = max(len(batches) // total, 1)
    chosen = [batches[i * stride] for i in range(total)]
    n_params = sum(p.numel() for n, p in trainer.model.named_parameters() if ".encoder." in f".{n}")
    h, layers = shape["hidden_size"], shape["num_hidden_layers"]

    def step(batch: dict[str, Any]) -> None:
        counts = trainer._get_num_items_in_batch([batch], device)
        trainer.training_step(wrapped, batch, counts)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for batch in chosen[: opts.warmup]:
        step(batch)
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    flops = real = padded = pairs = 0
    start = time.perf_counter()
    for batch in chosen[opts.warmup:]:
        step(batch)
        f, r, p = batch_flops(batch, weights, n_params, layers, h, len(tokenizer))
        flops, real, padded, pairs = flops + f, real + r, padded + p, pairs + batch["attention_mask"].shape[0] // 2
    sync(device)
    seconds = time.perf_counter() - start
    row = dict(method=method, config="fast" if fast else "reference", steps=opts.steps, seconds=seconds,
               pairs_s=pairs / seconds, tokens_s=real / seconds, pad=100 * (1 - real / padded),
               flops_s=flops / seconds, peak=peak_mib(device),
               precision="bf16 autocast" if args.bf16 else "fp32", optim=str(getattr(args.optim, "value", args.optim)))
    return row


def run_and_free(*args: Any) -> dict[str, Any]:
    """``run_one``, then free its models and optimizer state before the next row (peak memory is per row)."""
    row = run_one(*args)
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return row


TABLE_HEADER = ("| method | config | precision | optimizer | steps | pairs/s | real tokens/s | pad % | MFU % | "
                "peak MiB | × reference |\n|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|")


def format_row(r: dict[str, Any], ceiling: float | None, reference_pairs_s: float | None) -> str:
    """One table row of ``run_one``'s result; MFU against ``ceiling`` (FLOP/s), speed against the reference's."""
    mfu = "n/a" if not ceiling else f"{100 * r['flops_s'] / ceiling:.1f}"
    ratio = f"{r['pairs_s'] / reference_pairs_s:.2f}" if reference_pairs_s else "n/a"
    return (f"| {r['method']} | {r['config']} | {r['precision']} | {r['optim']} | {r['steps']} | "
            f"{r['pairs_s']:.2f} | {r['tokens_s']:.0f} | {r['pad']:.0f} | {mfu} | {r['peak']:.0f} | {ratio} |")


def format_table(rows: list[dict[str, Any]], ceiling: float | None) -> str:
    refs = {r["method"]: r["pairs_s"] for r in rows if r["config"] == "reference"}
    return TABLE_HEADER + "\n" + "\n".join(format_row(r, ceiling, refs.get(r["method"])) for r in rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="mbert-base", choices=[s for s in SHAPES if not s.startswith("tiny")])
    parser.add_argument("--methods", default="all", help=f"comma-separated, from {list(METHODS)}; default all")
    parser.add_argument("--batch_size", type=int, default=None, help="pairs per step (default: 64 GPU, 8 CPU)")
    parser.add_argument("--pairs", type=int, default=None, help="pairs loaded (default: 3000 GPU, 256 CPU)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per row (default: 20 GPU, 3 CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps per row (default: 3 GPU, 1 CPU)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="measure fast and reference this many times, alternating; report the best of each "
                             "(for shared machines)")
    parser.add_argument("--peak_tflops", type=float, default=None,
                        help="MFU against this peak instead of the matmul ceiling measured in the run")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--shared", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--note", default="", help="a line added under the table's title (e.g. machine load)")
    parser.add_argument("--smoke", action="store_true", help="tiny model, a few steps: checks the script runs")
    parser.add_argument("--no_record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    opts = parser.parse_args(argv)
    device = torch.device("cuda" if opts.device == "auto" and torch.cuda.is_available() else
                          "cpu" if opts.device == "auto" else opts.device)
    gpu = device.type == "cuda"
    if opts.smoke:
        opts.shape = "tiny"
        opts.batch_size, opts.pairs = opts.batch_size or 4, opts.pairs or 24
        opts.steps, opts.warmup = opts.steps or 2, 1 if opts.warmup is None else opts.warmup
    opts.batch_size = opts.batch_size or (64 if gpu else 8)
    opts.pairs = opts.pairs or (3000 if gpu else 256)
    opts.steps = opts.steps or (20 if gpu else 3)
    opts.warmup = (3 if gpu else 1) if opts.warmup is None else opts.warmup
    methods = list(METHODS) if opts.methods == "all" else [m.strip() for m in opts.methods.split(",")]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"--methods: unknown {unknown}; expected some of {list(METHODS)}")
    if min(opts.repeats, opts.steps, opts.batch_size, opts.pairs) < 1 or opts.warmup < 0:
        parser.error("--repeats, --steps, --batch_size and --pairs must be >= 1, --warmup >= 0")

    import datasets

    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    warnings.filterwarnings("ignore")
    tokenizer = load_tokenizer(SHAPES[opts.shape][0])
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        data, label = load_pairs(Path(opts.shared), tokenizer, opts.pairs, workdir)
        mean_len = sum(len(x) + len(y) for x, y in zip(data["x_input_ids"], data["y_input_ids"])) / (2 * len(data))
        ceiling, ceiling_dtype = (opts.peak_tflops * 1e12, "stated") if opts.peak_tflops else matmul_ceiling(device)
        rows = []
        for method in methods:
            best: dict[bool, dict[str, Any]] = {}
            for _ in range(opts.repeats):  # alternate fast and reference so that a load change hits both
                for fast in (True, False):
                    r = run_and_free(method, fast, opts, data, tokenizer, device, workdir)
                    print(f"{r['method']} {r['config']}: {r['pairs_s']:.2f} pairs/s", file=sys.stderr, flush=True)
                    if fast not in best or r["pairs_s"] > best[fast]["pairs_s"]:
                        best[fast] = r
            rows.extend([best[True], best[False]])
    name = torch.cuda.get_device_name(device) if gpu else \
        f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    memory = "CUDA max allocated" if gpu else "process max RSS so far (rows after the first are upper bounds)"
    note = f"\n{opts.note}" if opts.note else ""
    best_of = f", best of {opts.repeats} alternating runs" if opts.repeats > 1 else ""
    table = (f"### Training throughput — {opts.shape}{' (smoke)' if opts.smoke else ''}, batch {opts.batch_size} "
             f"pairs, {name}\n\n"
             f"{datetime.date.today()}; torch {torch.__version__}, transformers {transformers.__version__}, "
             f"Python {platform.python_version()}; {len(data)} {label}, mean {mean_len:.1f} subwords per side; "
             f"{opts.steps} timed steps per row (training_step + optimizer step) after {opts.warmup} untimed, "
             f"spread over one epoch{best_of}; MFU on real tokens against {ceiling / 1e12:.2f} TFLOP/s "
             f"({ceiling_dtype} matmul ceiling measured in this run, or stated); peak memory: {memory}. "
             f"Reference = fp32, eager attention, padded to {REFERENCE_PAD}, teacher graph kept, plain AdamW; "
             f"fast = the package defaults + group_by_length sampling (see benchmarks/train_throughput.py).{note}\n\n"
             f"{format_table(rows, ceiling)}\n")
    print(table)
    if not opts.no_record:
        record(table)


if __name__ == "__main__":
    main()

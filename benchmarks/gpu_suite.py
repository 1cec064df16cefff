"""The GPU tables of benchmarks/RESULTS.md in one run of under 8 minutes on one H100/H200, from inputs prepared
beforehand (``benchmarks/gpu_inputs.py``), on a machine with torch and transformers and nothing downloaded.

    bash benchmarks/gpu_suite.sh --prepare          # here (needs datasets, eflomal, ../shared/data): gpu_inputs/
    bash benchmarks/gpu_suite.sh                    # on the GPU machine: appends to benchmarks/RESULTS.md
    bash benchmarks/gpu_suite.sh --smoke --inputs DIR --results FILE   # CPU, tiny shapes, the same code paths (CI)
    bash benchmarks/gpu_suite.sh --merge FILE       # here: append a device run's $OUT/gpu_suite.md to RESULTS.md

With the device tool of these sessions (the folder is git-ignored, so it is carried; 17 MiB of the 64 allowed):

    run(command="bash benchmarks/gpu_suite.sh", carry=["benchmarks/gpu_inputs"], timeout_s=540)

then ``bash benchmarks/gpu_suite.sh --merge <files_at>/gpu_suite.md`` here (the device's copy of RESULTS.md does
not come back; everything written under ``$OUT`` does, a run cut short included).

Every row is measured by the existing benchmarks' own code (``train_throughput.run_one`` / ``format_row``,
``extraction_throughput.measure_loop`` / ``measure_batched``) and written the moment it is measured, to the results
file and to ``$OUT/gpu_suite.md`` (with the raw numbers in ``$OUT/gpu_suite.jsonl``), so a run killed at its time
limit keeps every finished row. Rows, most valuable first: mBERT-base Cao and AMBER (all parts together, then
MLM, TLM, SA, WA alone), each reference then fast; extraction (the one-pair loop, then batched); XLM-R-base Cao
and AMBER; XLM-R-large at batch 32 (peak memory). A row whose estimated time (the slowest row so far of its table,
or a first guess) would overrun ``--budget_s`` (default 450 s from the shell script's start) is skipped, and said.
Warm-up steps (untimed, before each row's timed steps) count inside the budget; nothing is ``torch.compile``d.

MFU is on real tokens (docs/methods.md "Counting FLOPs for MFU") against the card's dense bf16 datasheet peak
where the card is known (H100 SXM / H200 989.4, H100 NVL / H200 NVL 835.5, H100 PCIe 756.5 TFLOP/s), else against
the bf16 matmul ceiling measured in the run (always measured and printed), or ``--peak_tflops``. The issue-25
targets are judged at the end (PASS / FAIL / not measured): Cao ≥ 35 % MFU and ≥ 10× the reference step, AMBER
(MLM+TLM+SA+WA) ≥ 30 % MFU, batched extraction ≥ 20× the one-pair loop, all on the mBERT-base shape.

Not in the suite: FSDP against DDP on one GPU. With one process neither shards nor communicates anything (FSDP's
FULL_SHARD over one rank holds the whole model, like DDP), so the rows would differ only by wrapper overhead and
would say nothing about what FSDP is for; the comparison needs two or more GPUs (docs/distributed.md).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import gpu_inputs  # noqa: E402  (light: its heavy imports are inside its functions)
from amber_align.io_utils import atomic_write_text  # noqa: E402
from results import RESULTS, record  # noqa: E402

if TYPE_CHECKING:
    import torch

#: torch, transformers and the benchmark modules, imported by main() once the arguments are checked (a bad flag or
#: a missing inputs folder is said in a second, not after the imports)
torch: Any = None
transformers: Any = None
et: Any = None
tt: Any = None


def _import_heavy() -> None:
    global torch, transformers, et, tt
    import torch
    import transformers

    import extraction_throughput as et
    import train_throughput as tt

__all__ = ["DATASHEET_BF16_TFLOPS", "Report", "TARGETS", "datasheet_peak", "judge", "main", "plan"]

#: dense bf16 peak by device name (the first match wins, so the specific names come first)
DATASHEET_BF16_TFLOPS = (("H100 PCIe", 756.5), ("H100 NVL", 835.5), ("H200 NVL", 835.5), ("H100", 989.4),
                         ("H200", 989.4))
#: (line, table, row key, measured value, threshold)
TARGETS = (("Cao ≥ 35 % MFU on real tokens (mBERT-base, fast)", "mbert-base", "cao fast", "mfu", 35.0),
           ("Cao ≥ 10× the reference-style step (mBERT-base)", "mbert-base", "cao fast", "speedup", 10.0),
           ("AMBER (MLM+TLM+SA+WA) ≥ 30 % MFU (mBERT-base, fast)", "mbert-base", "amber-all fast", "mfu", 30.0),
           ("extraction ≥ 20× the one-pair loop (mBERT-base)", "extraction", "batched", "speedup", 20.0))
AMBER_ORDER = ("amber-all", "amber-mlm", "amber-tlm", "amber-sa", "amber-wa")
#: first guess of one row's seconds on an H100 (model build + warm-up + timed steps), before a row of its table ran
FIRST_GUESS_S = {"mbert-base": 25.0, "extraction": 60.0, "xlmr-base": 35.0, "xlmr-large": 90.0}


def datasheet_peak(name: str) -> float | None:
    """Dense bf16 TFLOP/s of a known card, else None."""
    return next((tflops for key, tflops in DATASHEET_BF16_TFLOPS if key in name), None)


def plan(smoke: bool) -> list[dict[str, Any]]:
    """The training tables in order of value: shape, batch, steps, pairs used, methods and configurations."""
    tiny = {"mbert-base": "tiny", "xlmr-base": "tiny-xlmr", "xlmr-large": "tiny-xlmr"}
    tables = [dict(name="mbert-base", kind="mbert", batch=64, steps=20, warmup=3, pairs=3000,
                   rows=[(m, c) for m in ("cao",) + AMBER_ORDER for c in ("reference", "fast")]),
              dict(name="xlmr-base", kind="xlmr", batch=64, steps=20, warmup=3, pairs=3000,
                   rows=[(m, c) for m in ("cao", "amber-all") for c in ("reference", "fast")]),
              dict(name="xlmr-large", kind="xlmr", batch=32, steps=8, warmup=2, pairs=1000,
                   rows=[("cao", "fast"), ("cao", "reference"), ("amber-all", "fast")])]
    for t in tables:
        t["shape"] = tiny[t["name"]] if smoke else t["name"]
    if smoke:  # Cao and AMBER in both configurations and every AMBER part fast on the mBERT vocabulary; XLM-R's
        # classes (MLM head included) and 250k vocabulary in both configurations
        mbert = [(m, c) for m, c in tables[0]["rows"] if c == "fast" or m in ("cao", "amber-all")]
        for t, rows in zip(tables, (mbert, [("cao", "reference"), ("amber-all", "fast")], [("cao", "fast")])):
            t.update(batch=4, steps=1, warmup=1, pairs=24, rows=rows)
    return tables


class Report:
    """Appends text to the results file and to ``$OUT/gpu_suite.md`` as soon as it is measured (and prints it)."""

    def __init__(self, path: Path | None, out: Path | None):
        self.mirror = out / "gpu_suite.md" if out else None
        self.paths = [p for p in (path, self.mirror) if p is not None]
        self.jsonl = out / "gpu_suite.jsonl" if out else None
        self.started = False

    def write(self, text: str) -> None:
        """Append ``text`` and a newline (the first write: after one blank line; the mirror starts empty)."""
        print(text, flush=True)
        for path in self.paths:
            fresh = path == self.mirror and not self.started
            existing = "" if fresh or not path.exists() else path.read_text(encoding="utf-8")
            if not self.started and existing:
                existing = existing.rstrip("\n") + "\n\n"
            atomic_write_text(path, existing + text + "\n")
        self.started = True

    def raw(self, table: str, row: dict[str, Any]) -> None:
        if self.jsonl:
            with self.jsonl.open("a", encoding="utf-8") as f:
                f.write(json.dumps(dict(table=table, **{k: v for k, v in row.items() if k != "links"})) + "\n")


def judge(measured: dict[tuple[str, str], dict[str, float]]) -> list[str]:
    """One ``PASS`` / ``FAIL`` / ``not measured`` line per issue-25 target."""
    lines = []
    for label, table, key, field, threshold in TARGETS:
        value = measured.get((table, key), {}).get(field)
        if value is None:
            lines.append(f"- not measured: {label}")
        else:
            unit = " %" if field == "mfu" else "×"
            lines.append(f"- {'PASS' if value >= threshold else 'FAIL'}: {label}: {value:.1f}{unit}")
    return lines


def _device_line(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def run_training(table: dict[str, Any], folder: Path, device: torch.device, peak: float, report: Report,
                 measured: dict, fits: Callable[[str, float], bool], workdir: Path) -> list[str]:
    """Measure and write one training table row by row; returns the rows skipped for time."""
    _say(f"{table['name']}: loading the {table['kind']} tokenizer and pairs")
    tokenizer, how = _tokenizer(folder, table["kind"])
    data = gpu_inputs.load_encoded(folder, table["kind"], table["pairs"])
    mean = sum(len(x) + len(y) for x, y in zip(data["x_input_ids"], data["y_input_ids"])) / (2 * len(data))
    shape = table["name"] if table["shape"] == table["name"] else f"{table['name']} (smoke: {table['shape']})"
    report.write(f"\n#### Training throughput — {shape}, batch {table['batch']} pairs\n\n"
                 f"{len(data)} encoded pairs, mean {mean:.1f} subwords per side ({how}); {table['steps']} timed "
                 f"steps per row after {table['warmup']} untimed, spread over one epoch; reference = fp32, eager "
                 f"attention, padded to {tt.REFERENCE_PAD}, teacher graph kept, plain AdamW; fast = the package "
                 f"defaults + group_by_length. Peak memory: {_memory_kind(device)}.\n\n{tt.TABLE_HEADER}")
    opts = argparse.Namespace(shape=table["shape"], batch_size=table["batch"], steps=table["steps"],
                              warmup=table["warmup"])
    references: dict[str, float] = {}
    skipped, slowest = [], 0.0
    for method, config in table["rows"]:
        if not fits(table["name"], slowest):
            skipped.append(f"{table['name']} {method} {config}")
            continue
        start = time.monotonic()
        row = tt.run_and_free(method, config == "fast", opts, data, tokenizer, device, workdir)
        slowest = max(slowest, time.monotonic() - start)
        if config == "reference":
            references[method] = row["pairs_s"]
        report.write(tt.format_row(row, peak, references.get(method)))
        report.raw(table["name"], row)
        ratio = row["pairs_s"] / references[method] if method in references else None
        measured[(table["name"], f"{method} {config}")] = dict(mfu=100 * row["flops_s"] / peak, speedup=ratio)
        _say(f"{table['name']} {method} {config}: {row['pairs_s']:.2f} pairs/s, MFU {100 * row['flops_s'] / peak:.1f} "
             f"%, peak {row['peak']:.0f} MiB ({time.monotonic() - start:.0f} s)")
    return skipped


def run_extraction(smoke: bool, folder: Path, device: torch.device, report: Report, measured: dict,
                   fits: Callable[[str, float], bool]) -> list[str]:
    """The extraction table: the one-pair loop, then the batched ``WordAligner``, each written when measured."""
    if not fits("extraction", 0.0):
        return ["extraction"]
    n, n_loop, batch, layer = (24, 8, 8, 2) if smoke else (2000, 200, 256, 8)
    shape = et.SHAPES["tiny" if smoke else "mbert-base"]
    tokenizer, how = _tokenizer(folder, "mbert")
    pairs = gpu_inputs.load_extraction_pairs(folder, n)
    model = et.build_encoder(shape, len(tokenizer), device)
    report.write(f"\n#### Extraction throughput — {'tiny' if smoke else 'mbert-base'}, layer {layer}, argmax\n\n"
                 f"{len(pairs)} word-tokenized de-en pairs ({how}); the one-pair loop works like SimAlign 0.4 "
                 f"(benchmarks/extraction_throughput.py).\n\n{et.ROW_HEADER}")
    _say("extraction: the one-pair loop")
    loop = et.measure_loop(model, tokenizer, pairs[:n_loop], layer, device)
    report.write(et.format_row(loop, loop["rate"]))
    report.raw("extraction", loop)
    _say("extraction: batched")
    batched = et.measure_batched(model, tokenizer, pairs, layer, batch, device)
    report.write(et.format_row(batched, loop["rate"]))
    report.raw("extraction", batched)
    same = sum(a == b for a, b in zip(batched["links"][:n_loop], loop["links"])) / len(loop["links"])
    report.write(f"\nLinks identical to the loop's on {100 * same:.1f} % of {len(loop['links'])} pairs.\n")
    measured[("extraction", "batched")] = dict(speedup=batched["rate"] / loop["rate"])
    del model
    return []


_T0 = float(os.environ.get("GPU_SUITE_T0") or time.time())


def _clock() -> str:
    """Seconds since the suite started (the shell script's start, imports included)."""
    return f"{time.time() - _T0:5.0f} s"


@functools.lru_cache(maxsize=None)
def _tokenizer(folder: Path, kind: str) -> tuple[Any, str]:
    """``gpu_inputs.load_saved_tokenizer``, once per vocabulary (XLM-R's tokenizer.json takes seconds to read)."""
    return gpu_inputs.load_saved_tokenizer(folder, kind)


def _say(message: str) -> None:
    print(f"[{_clock()}] {message}", file=sys.stderr, flush=True)


def _memory_kind(device: torch.device) -> str:
    return "CUDA max allocated over the timed steps" if device.type == "cuda" else \
        "process max RSS so far (rows after the first are upper bounds)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="gpu_suite.sh", description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", default=str(gpu_inputs.DEFAULT_FOLDER), help="prepared folder (%(default)s)")
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny shapes, 1 step per row (CI)")
    parser.add_argument("--results", default=None, help=f"file the rows are appended to (default {RESULTS}; "
                                                        "--smoke: none)")
    parser.add_argument("--budget_s", type=float, default=450.0, help="seconds from the start (default 450)")
    parser.add_argument("--peak_tflops", type=float, default=None, help="MFU against this peak instead")
    parser.add_argument("--merge", default=None, metavar="FILE", help="append a device run's gpu_suite.md to "
                                                                      f"{RESULTS.name} and exit")
    opts = parser.parse_args(argv)
    if opts.merge is not None:
        merged = Path(opts.merge)
        if not merged.is_file() or not merged.read_text(encoding="utf-8").strip():
            parser.error(f"--merge: {merged} is not a non-empty file (the gpu_suite.md a device run left in $OUT)")
        record(merged.read_text(encoding="utf-8").strip("\n") + "\n")
        print(f"appended {merged} to {RESULTS}")
        return
    folder = Path(opts.inputs)
    manifest = gpu_inputs.load_manifest(folder)
    if manifest is None:
        parser.error(f"--inputs: {folder} is not a prepared inputs folder (no manifest.json); prepare it first: "
                     f"bash benchmarks/gpu_suite.sh --prepare{' --smoke' if opts.smoke else ''} --inputs {folder}")
    if opts.budget_s <= 0 or (opts.peak_tflops is not None and opts.peak_tflops <= 0):
        parser.error("--budget_s and --peak_tflops must be > 0")
    _import_heavy()
    device = torch.device("cpu" if opts.smoke or not torch.cuda.is_available() else "cuda")
    if not opts.smoke:
        if device.type != "cuda":
            parser.error("no CUDA device: the full suite measures a GPU; on a CPU run --smoke")
        if min(info["pairs"] for info in manifest["kinds"].values()) < 500:
            parser.error(f"--inputs: {folder} was prepared with --smoke ({manifest['kinds']['mbert']['pairs']} "
                         "pairs); prepare the full folder: bash benchmarks/gpu_suite.sh --prepare")
    deadline = _T0 + opts.budget_s
    guesses = {k: 0.0 for k in FIRST_GUESS_S} if opts.smoke else dict(FIRST_GUESS_S)

    def fits(table: str, slowest: float) -> bool:
        return time.time() + (slowest or guesses[table]) <= deadline

    results = Path(opts.results) if opts.results else (None if opts.smoke else RESULTS)
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") and Path(os.environ["OUT"]).is_dir() else None
    report = Report(results, out)
    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore")

    _say(f"measuring the matmul ceiling on {_device_line(device)}")
    ceiling, ceiling_dtype = tt.matmul_ceiling(device)
    sheet = datasheet_peak(_device_line(device)) if device.type == "cuda" else None
    peak, peak_from = ((opts.peak_tflops * 1e12, "stated (--peak_tflops)") if opts.peak_tflops else
                       (sheet * 1e12, "datasheet dense bf16") if sheet else
                       (ceiling, f"{ceiling_dtype} matmul ceiling measured in this run"))
    measured_too = "" if peak == ceiling else \
        f"; the {ceiling_dtype} matmul ceiling measured in this run is {ceiling / 1e12:.1f} TFLOP/s"
    report.write(f"### GPU suite{' (smoke)' if opts.smoke else ''} — {_device_line(device)}, "
                 f"{datetime.date.today()}\n\n"
                 f"`bash benchmarks/gpu_suite.sh` (benchmarks/gpu_suite.py): torch {torch.__version__}, transformers "
                 f"{transformers.__version__}, Python {platform.python_version()}; inputs {folder.name}/ prepared "
                 f"{manifest['created']} ({manifest['kinds']['mbert']['source']}). MFU on real tokens against "
                 f"{peak / 1e12:.1f} TFLOP/s ({peak_from}){measured_too}. Rows are written as they are measured; "
                 f"a table cut short ends where the run stopped (time budget {opts.budget_s:.0f} s).")
    measured: dict[tuple[str, str], dict[str, float]] = {}
    skipped: list[str] = []
    tables = plan(opts.smoke)
    with tempfile.TemporaryDirectory() as tmp:
        skipped += run_training(tables[0], folder, device, peak, report, measured, fits, Path(tmp))
        skipped += run_extraction(opts.smoke, folder, device, report, measured, fits)
        for table in tables[1:]:
            skipped += run_training(table, folder, device, peak, report, measured, fits, Path(tmp))
    verdicts = judge(measured)
    skipped_line = f"\nSkipped to stay within {opts.budget_s:.0f} s: {', '.join(skipped)}.\n" if skipped else ""
    report.write(f"{skipped_line}\nTargets (issue 25){' — smoke run, not judged' if opts.smoke else ''}, "
                 f"finished in {time.time() - _T0:.0f} s:\n\n" + "\n".join(verdicts) + "\n")


if __name__ == "__main__":
    main()

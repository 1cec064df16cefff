"""Peak memory and trainable parameters of LoRA alignment against full fine-tuning, on the same Cao run.

    python benchmarks/peft_memory.py                                  # multilingual-e5-small (offline), CPU or GPU
    python benchmarks/peft_memory.py --model bert-base-multilingual-cased --steps 10 --no_record

Every mode runs in a fresh subprocess: Cao alignment (frozen teacher, mean pooling) of ``--model`` on the bundled
de-en Tatoeba-Challenge sample with its eflomal links, ``--steps`` steps of ``--batch_size`` pairs, same seed. The
modes: full fine-tuning (every weight, a separate frozen teacher copy), full with the word embeddings frozen,
LoRA r=8 on query/value and LoRA r=8 on every linear layer (adapters only; the teacher is the model with its
adapters disabled, no copy). Peak memory: ``torch.cuda.max_memory_allocated`` on a GPU, else the process's peak
RSS (``resource.getrusage``; model loading included, the same for every mode). Appends its table to
``benchmarks/RESULTS.md``; docs/peft.md discusses it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import record  # noqa: E402  (benchmarks/results.py, next to this script)

MODES = {  # name -> config fields
    "full": {},
    "full-frozen-embeddings": {"freeze_word_embeddings": True},
    "lora-r8-query-value": {"peft": {"method": "lora", "r": 8, "alpha": 16}},
    "lora-r8-all-linear": {"peft": {"method": "lora", "r": 8, "alpha": 16, "target_modules": "all-linear"}},
}

CHILD = r"""
import json, resource, sys, time
import torch
from amber_align.demo import demo_dir
from amber_align.offline_models import resolve_offline_name
from amber_align.peft_support import trainable_parameters
from amber_align.trainers import CaoConfig, CaoTrainer
model, steps, batch, extra, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4]), sys.argv[5]
data = demo_dir() / "data"
cuda = torch.cuda.is_available()
args = CaoConfig(output_dir=out, model_name_or_path=str(resolve_offline_name(model)), report_to=[],
                 train_data=[{"file": str(data / "de-en.txt"), "format": "bar", "src_lang": "de", "tgt_lang": "en",
                              "alignments": str(data / "de-en.pharaoh"), "max_pairs": steps * batch}],
                 pretokenized=True, max_steps=steps, per_device_train_batch_size=batch, save_strategy="no",
                 logging_steps=steps, seed=0, learning_rate=1e-4, disable_tqdm=True, use_cpu=not cuda, **extra)
trainer = CaoTrainer(args=args)
trainable, total = trainable_parameters(trainer.model)
teacher_copy = isinstance(trainer.teacher, torch.nn.Module)
if cuda:
    torch.cuda.reset_peak_memory_stats()
start = time.perf_counter()
trainer.train()
seconds = time.perf_counter() - start
peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
loss = [h for h in trainer.state.log_history if "cao_anchor" in h][-1]
print(json.dumps({"trainable": trainable, "total": total, "teacher_copy": teacher_copy, "peak_mib": peak,
                  "seconds": seconds, "cao_link": loss["cao_link"], "cao_anchor": loss["cao_anchor"],
                  "device": torch.cuda.get_device_name(0) if cuda else "CPU"}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="offline:e5-small", help="a folder, a Hub id or offline:e5-small")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated, some of: " + ", ".join(MODES))
    parser.add_argument("--no_record", action="store_true")
    args = parser.parse_args()
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, mode in enumerate(m.strip() for m in args.modes.split(",") if m.strip()):
            if mode not in MODES:
                parser.error(f"--modes: unknown {mode!r}; choose from {list(MODES)}")
            cmd = [sys.executable, "-c", CHILD, args.model, str(args.steps), str(args.batch_size),
                   json.dumps(MODES[mode]), str(Path(tmp) / f"run{i}")]
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
            if proc.returncode != 0:
                sys.exit(f"{mode}: the run failed:\n{proc.stderr[-3000:]}")
            row = {"mode": mode, **json.loads(proc.stdout.strip().splitlines()[-1])}
            rows.append(row)
            print(row, flush=True)
    full = rows[0]["peak_mib"]
    import torch
    import transformers

    device = rows[0]["device"]
    lines = [f"### PEFT memory — Cao on {args.model}, {args.steps} steps × {args.batch_size} pairs, {device}", "",
             f"{datetime.date.today()}; torch {torch.__version__}, transformers {transformers.__version__}, Python "
             f"{platform.python_version()}; bundled de-en sample with eflomal links; peak = "
             + ("torch.cuda.max_memory_allocated" if device != "CPU" else "process peak RSS, model loading included")
             + "; teacher copy = a second model in memory for Cao's frozen anchor.", "",
             "| mode | trainable params | % of all | teacher copy | peak MiB | × full | seconds | cao_anchor |",
             "|---|---:|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['mode']} | {r['trainable']:,} | {100 * r['trainable'] / r['total']:.2f} | "
                     f"{'yes' if r['teacher_copy'] else 'no'} | {r['peak_mib']:.0f} | {r['peak_mib'] / full:.2f} | "
                     f"{r['seconds']:.1f} | {r['cao_anchor']:.5f} |")
    table = "\n".join(lines)
    print(table)
    if not args.no_record:
        record(table)


if __name__ == "__main__":
    main()

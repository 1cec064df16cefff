"""Continual learning under torchrun (gloo on CPU): 2 steps of ``run_finetune`` (NLI head + Cao parts on drawn
pairs, two forwards through the DDP model, one backward). Rank 0 saves whether the parameters stayed identical on
every rank, whether they moved, and the logged parts to argv[1].

Run: torchrun --standalone --nproc_per_node W tests/distributed/continual_ddp_step.py OUT.pt TMPDIR
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers import tiny_model_dir  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

from amber_align.config_io import build_config  # noqa: E402
from amber_align.demo import demo_dir  # noqa: E402
from amber_align.tasks.config import TaskConfig  # noqa: E402
from amber_align.tasks.runner import run_finetune  # noqa: E402

NLI = "".join(f"{p}\t{h}\t{lab}\n" for p, h, lab in [
    ("A man sleeps.", "Someone rests.", "entailment"), ("A dog barks.", "The dog is loud.", "neutral"),
    ("A man runs.", "A man sits.", "contradiction"), ("Kids play.", "Children are outside.", "entailment")] * 2)


class _Snapshot(TrainerCallback):
    """Keeps the trained model's parameters at the end of training (run_finetune does not return the model)."""

    flat: torch.Tensor | None = None

    def on_train_end(self, args, state, control, model=None, **kwargs):
        _Snapshot.flat = torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()])


def continual_config(tmp: Path, **device: object) -> TaskConfig:
    """The run's config (2 steps of NLI + Cao parts on 40 demo pairs), the model in ``tmp/tiny``; ``device`` adds
    the launch's settings (``use_cpu``/``ddp_backend`` here; none under DeepSpeed: deepspeed_continual.py)."""
    data = demo_dir() / "data"
    (tmp / "dev-en.tsv").write_text(NLI, encoding="utf-8")
    return build_config({
        "task": "nli", "model_name_or_path": str(tmp / "tiny"), "output_dir": str(tmp / "out"),
        "train_data": str(tmp / "dev-en.tsv"), "eval_data": {"en": str(tmp / "dev-en.tsv")},
        "continual_alignment": True, "continual_options": {"pretokenized": True}, "continual_batch_size": 4,
        "continual_data": [{"file": str(data / "es-en.txt"), "format": "bar", "src_lang": "es", "tgt_lang": "en",
                            "alignments": str(data / "es-en.pharaoh"), "max_pairs": 40}],
        "max_steps": 2, "logging_steps": 1, "per_device_train_batch_size": 2, "learning_rate": 1e-3,
        "report_to": [], "save_strategy": "no", "save_model": False, **device,
    }, source="test", config_class=TaskConfig)


def main() -> None:
    out, tmp = Path(sys.argv[1]), Path(sys.argv[2])
    config = continual_config(tmp, use_cpu=True, ddp_backend="gloo")
    rank, world = config.process_index, config.world_size
    if rank == 0:
        tiny_model_dir("mbert", tmp / "tiny")
    if world > 1:
        dist.barrier()
    import transformers

    original_init = transformers.Trainer.__init__

    def init_with_snapshot(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.add_callback(_Snapshot())

    transformers.Trainer.__init__ = init_with_snapshot
    report = run_finetune(config)
    flat = _Snapshot.flat
    every = [torch.zeros_like(flat) for _ in range(world)]
    dist.all_gather(every, flat)
    in_sync = all(torch.equal(every[0], e) for e in every)
    start = transformers.AutoModelForSequenceClassification.from_pretrained(tmp / "tiny", num_labels=3)
    moved = not torch.equal(flat[: sum(p.numel() for p in start.bert.parameters())],
                            torch.cat([p.detach().reshape(-1) for p in start.bert.parameters()]))
    if rank == 0:
        logged = [h for h in report["log_history"] if "loss" in h]
        torch.save({"in_sync": in_sync, "moved": moved, "logged": logged, "world": world}, out)
    gc.collect()
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()

"""Continual learning (NLI head + Cao parts on drawn pairs, the frozen anchor f0) for 2 steps of ``run_finetune``
under DeepSpeed: launched by tests/test_deepspeed.py with a shipped ZeRO-2/ZeRO-3 recipe, 2 CPU processes (gloo).
Rank 0 writes the logged records and the teacher's type to ``WORK/continual.json``.

Run: accelerate launch --config_file recipes/accelerate/deepspeed_zero3.yaml --num_processes 2 \\
         tests/distributed/deepspeed_continual.py WORK     (WORK/tiny: a tiny model folder)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parent))

from continual_ddp_step import continual_config  # noqa: E402

from amber_align.tasks.runner import run_finetune  # noqa: E402
from amber_align.trainers.continual import ContinualTaskTrainer  # noqa: E402

TEACHERS: list[str] = []  # the type of each ContinualTaskTrainer's prepared teacher


def _record_teacher() -> None:
    """Wrap ``ContinualTaskTrainer.__init__`` so that the prepared teacher's type is recorded."""
    original = ContinualTaskTrainer.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        TEACHERS.append(type(self.teacher).__name__)

    ContinualTaskTrainer.__init__ = init


def main() -> None:
    work = Path(sys.argv[1])
    config = continual_config(work)
    _record_teacher()
    report = run_finetune(config)
    if config.process_index == 0:
        logged = [h for h in report["log_history"] if "loss" in h]
        (work / "continual.json").write_text(json.dumps({"logged": logged, "teacher": TEACHERS[-1]}),
                                             encoding="utf-8")
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()

"""A few training steps of Cao or AMBER, then ``save_model`` (``train_and_save.py``): run under DDP (torchrun, gloo)
or DeepSpeed ZeRO-2/3 (``accelerate launch`` with recipes/accelerate/deepspeed_zero{2,3}.yaml; on a machine without
CUDA DeepSpeed's CPU accelerator runs on gloo). tests/test_deepspeed.py compares the saved weights and the logged
loss parts.

The tiny model folder (``WORK/tiny``: a seeded BertForMaskedLM, dropout off, so every launch starts from the same
weights, MLM head included) is written by the test before the launch. The trainer loads the
model and the frozen teacher itself, after the config exists, so under ZeRO-3 both are loaded the ordinary way while
DeepSpeed's config is alive. Rank 0 writes the log history to ``WORK/log.json``; the model goes to ``WORK/final``.

Run: torchrun --standalone --nproc_per_node 2 tests/distributed/deepspeed_train.py WORK METHOD ddp
     accelerate launch --config_file recipes/accelerate/deepspeed_zero2.yaml --num_processes 2 \\
         tests/distributed/deepspeed_train.py WORK METHOD deepspeed
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_and_save import train_save_record  # noqa: E402


def _fields(trainer) -> dict:
    teacher = type(trainer.teacher).__name__ if trainer.teacher is not None else None
    return {"bf16": trainer.args.bf16, "teacher": teacher}


if __name__ == "__main__":
    train_save_record(sys.argv[1:], _fields)

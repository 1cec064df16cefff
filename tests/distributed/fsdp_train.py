"""A few training steps of Cao or AMBER, then ``save_model`` (``train_and_save.py``): run under DDP (torchrun, gloo)
or FSDP (``accelerate launch`` with recipes/accelerate/fsdp.yaml, forced onto the CPU processes by the test-only
``fsdp_cpu_shim``). tests/test_fsdp.py compares the saved weights and the logged loss parts.

The tiny model folder (``WORK/tiny``: a seeded model on the real mBERT vocabulary, or XLM-R's for ``amber_xlmr``,
dropout off, so every launch starts from the same weights, MLM head included) is written by the test before the
launch; the trainer loads the model and the frozen teacher itself. Rank 0 writes the log history to
``WORK/log.json``; the model goes to ``WORK/final``. Extra ``key=value`` arguments go to the config
(``save_strategy=steps``, ``resume_from_checkpoint=…`` resumes).

Run: torchrun --standalone --nproc_per_node 2 tests/distributed/fsdp_train.py WORK METHOD ddp [key=value …]
     accelerate launch --config_file recipes/accelerate/fsdp.yaml --num_processes 2 --mixed_precision no \\
         tests/distributed/fsdp_train.py WORK METHOD fsdp [key=value …]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fsdp_cpu_shim  # noqa: E402,F401  (before any Accelerator exists)
from train_and_save import train_save_record  # noqa: E402

if __name__ == "__main__":
    train_save_record(sys.argv[1:], lambda trainer: {"model_class": type(trainer.model_wrapped).__name__})

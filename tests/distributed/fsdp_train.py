"""A few training steps of Cao or AMBER, then ``save_model``: run under DDP (torchrun, gloo) or FSDP
(``accelerate launch`` with recipes/accelerate/fsdp.yaml, forced onto the CPU processes by the test-only
``fsdp_cpu_shim``). tests/test_fsdp.py compares the saved weights and the logged loss parts.

The tiny model folder (``WORK/tiny``: a seeded model on the real mBERT vocabulary, or XLM-R's for ``amber_xlmr``,
dropout off, so every launch starts from the same weights, MLM head included) is written by the test before the
launch; the trainer loads the model and the frozen teacher itself. Rank 0 writes the log history to ``WORK/log.json``; the model goes to ``WORK/final``.
Extra ``key=value`` arguments go to the config (``save_strategy=steps``, ``resume_from_checkpoint=…`` resumes).

Run: torchrun --standalone --nproc_per_node 2 tests/distributed/fsdp_train.py WORK METHOD ddp [key=value …]
     accelerate launch --config_file recipes/accelerate/fsdp.yaml --num_processes 2 --mixed_precision no \\
         tests/distributed/fsdp_train.py WORK METHOD fsdp [key=value …]
"""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path

import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import fsdp_cpu_shim  # noqa: E402,F401  (before any Accelerator exists)
from helpers import mbert_tokenizer, xlmr_tokenizer  # noqa: E402

from amber_align.trainers import AmberConfig, AmberTrainer, CaoConfig, CaoTrainer  # noqa: E402
from test_cao_trainer import demo_pairs  # noqa: E402

N = 16
#: every AMBER part at once (MLM, TLM, WA, SA, SO and the Cao parts), so each is compared; SO reads layer 1
AMBER_WEIGHTS = {"mlm_weight": 1.0, "tlm_weight": 1.0, "wa_weight": 1.0, "sa_weight": 1.0, "cao_weight": 1.0,
                 "so_weight": 1.0, "so_layer": 1}
#: without MLM/TLM (a plain encoder as the sharded root): WA, SA, SO and Cao on layer 1
ENCODER_WEIGHTS = {"mlm_weight": 0.0, "tlm_weight": 0.0, "wa_weight": 1.0, "sa_weight": 1.0, "cao_weight": 1.0,
                   "so_weight": 1.0, "so_layer": 1, "layer": 1}


def _value(text: str) -> object:
    """``key=value`` arguments: JSON when it parses (numbers, booleans), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def main() -> None:
    work, method, mode = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    extra = {k: _value(v) for k, v in (arg.split("=", 1) for arg in sys.argv[4:])}
    resume = extra.pop("resume_from_checkpoint", None)
    device = {"use_cpu": True, "ddp_backend": "gloo"} if mode == "ddp" else {}
    common = dict(output_dir=str(work / "out"), model_name_or_path=str(work / "tiny"), report_to=[],
                  per_device_train_batch_size=4, max_steps=3, logging_steps=1, learning_rate=1e-3,
                  save_strategy="no", seed=0, **device)
    common.update(extra)
    if method == "cao":
        args, trainer_class = CaoConfig(**common), CaoTrainer
    elif method in ("amber", "amber_xlmr"):
        args, trainer_class = AmberConfig(**{**AMBER_WEIGHTS, **common}), AmberTrainer
    else:
        args, trainer_class = AmberConfig(**{**ENCODER_WEIGHTS, **common}), AmberTrainer
    tok = xlmr_tokenizer() if method.endswith("_xlmr") else mbert_tokenizer()
    trainer = trainer_class(args=args, train_dataset=demo_pairs(tok, N), processing_class=tok)
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(str(work / "final"))
    if args.process_index == 0:
        record = {"log": trainer.state.log_history, "world": args.world_size,
                  "distributed_type": str(trainer.accelerator.distributed_type),
                  "model_class": type(trainer.model_wrapped).__name__}
        (work / "log.json").write_text(json.dumps(record), encoding="utf-8")
    del trainer
    gc.collect()
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()

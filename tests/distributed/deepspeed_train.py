"""A few training steps of Cao or AMBER, then ``save_model``: run under DDP (torchrun, gloo) or DeepSpeed ZeRO-2/3
(``accelerate launch`` with recipes/accelerate/deepspeed_zero{2,3}.yaml; on a machine without CUDA DeepSpeed's CPU
accelerator runs on gloo). tests/test_deepspeed.py compares the saved weights and the logged loss parts.

The tiny model folder (``WORK/tiny``: a seeded BertForMaskedLM, dropout off, so every launch starts from the same
weights, MLM head included) is written by the test before the launch. The trainer loads the
model and the frozen teacher itself, after the config exists, so under ZeRO-3 both are loaded the ordinary way while
DeepSpeed's config is alive. Rank 0 writes the log history to ``WORK/log.json``; the model goes to ``WORK/final``.

Run: torchrun --standalone --nproc_per_node 2 tests/distributed/deepspeed_train.py WORK METHOD ddp
     accelerate launch --config_file recipes/accelerate/deepspeed_zero2.yaml --num_processes 2 \\
         tests/distributed/deepspeed_train.py WORK METHOD deepspeed
"""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path

import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers import mbert_tokenizer  # noqa: E402

from amber_align.trainers import AmberConfig, AmberTrainer, CaoConfig, CaoTrainer  # noqa: E402
from test_cao_trainer import demo_pairs  # noqa: E402

N = 16
#: every AMBER part at once (MLM, TLM, WA, SA, SO and the Cao parts), so each is compared
AMBER_WEIGHTS = {"mlm_weight": 1.0, "tlm_weight": 1.0, "wa_weight": 1.0, "sa_weight": 1.0, "cao_weight": 1.0,
                 "so_weight": 1.0, "so_layer": 1}


def main() -> None:
    work, method, mode = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    extra = dict(arg.split("=", 1) for arg in sys.argv[4:])
    device = {"use_cpu": True, "ddp_backend": "gloo"} if mode == "ddp" else {}
    common = dict(output_dir=str(work / "out"), model_name_or_path=str(work / "tiny"), report_to=[],
                  per_device_train_batch_size=4, max_steps=3, logging_steps=1, learning_rate=1e-3,
                  save_strategy="no", seed=0, **device, **extra)
    if method == "cao":
        args, trainer_class = CaoConfig(**common), CaoTrainer
    else:
        args, trainer_class = AmberConfig(**common, **AMBER_WEIGHTS), AmberTrainer
    tok = mbert_tokenizer()
    trainer = trainer_class(args=args, train_dataset=demo_pairs(tok, N), processing_class=tok)
    trainer.train()
    trainer.save_model(str(work / "final"))
    if args.process_index == 0:
        teacher = type(trainer.teacher).__name__ if trainer.teacher is not None else None
        record = {"log": trainer.state.log_history, "world": args.world_size, "bf16": args.bf16,
                  "distributed_type": str(trainer.accelerator.distributed_type), "teacher": teacher}
        (work / "log.json").write_text(json.dumps(record), encoding="utf-8")
    del trainer
    gc.collect()
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()

"""The numerics guard and atomic checkpoints under torchrun (gloo on CPU): Cao training on W ranks, a checkpoint
every step, and at step 3 the ``cao_link`` part of the LAST rank only becomes NaN. Every rank must stop at the same
step with ``NonFiniteLossError`` naming that process (no rank hangs in a collective), after ``checkpoint-2`` was
written by all ranks together (``rng_state_{rank}.pth`` of each) and renamed into place.

Each rank saves ``{"rank", "world", "error", "step", "checkpoint"}`` to ``argv[1].rank{r}.json``.
Run: torchrun --standalone --nproc_per_node W tests/distributed/nan_guard_ddp.py OUT TMPDIR
"""

from __future__ import annotations

import gc
import json
import math
import sys
from pathlib import Path

import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers import mbert_tokenizer, tiny_model_dir  # noqa: E402
from transformers import AutoModel  # noqa: E402

from amber_align.errors import NonFiniteLossError  # noqa: E402
from amber_align.trainers import CaoConfig, CaoTrainer  # noqa: E402
from test_cao_trainer import demo_pairs  # noqa: E402


def main() -> None:
    out, tmp = Path(sys.argv[1]), Path(sys.argv[2])
    args = CaoConfig(output_dir=str(tmp / "out"), model_name_or_path="unused", use_cpu=True, report_to=[],
                     per_device_train_batch_size=2, max_steps=4, save_strategy="steps", save_steps=1,
                     logging_steps=1, ddp_backend="gloo", ddp_find_unused_parameters=False)
    rank, world = args.process_index, args.world_size
    model_dir = tmp / "tiny"
    if rank == 0:
        tiny_model_dir("mbert", model_dir)
    if world > 1:
        dist.barrier()
    tok = mbert_tokenizer()
    trainer = CaoTrainer(model=AutoModel.from_pretrained(model_dir), args=args, train_dataset=demo_pairs(tok, 16),
                         processing_class=tok, teacher=AutoModel.from_pretrained(model_dir))
    original = trainer.compute_loss_parts

    def compute_loss_parts(model, inputs, counts):
        parts = original(model, inputs, counts)
        if model.training and rank == world - 1 and trainer.state.global_step == 2:
            parts["cao_link"] = parts["cao_link"] * math.nan
        return parts

    trainer.compute_loss_parts = compute_loss_parts
    record = {"rank": rank, "world": world, "error": None, "step": None, "checkpoint": None}
    try:
        trainer.train()
    except NonFiniteLossError as err:
        record.update(error=str(err), step=err.step, checkpoint=err.checkpoint)
    Path(f"{out}.rank{rank}.json").write_text(json.dumps(record), encoding="utf-8")
    del trainer
    gc.collect()
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()

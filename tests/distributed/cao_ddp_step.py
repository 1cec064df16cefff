"""One Cao training step under torchrun (gloo on CPU): each of W ranks takes 8/W of the same 8 pairs.

Rank 0 saves the loss, the logged parts and the gradients to argv[1]; tests/test_distributed.py compares W=2 with
W=1. Run: torchrun --standalone --nproc_per_node W tests/distributed/cao_ddp_step.py OUT.pt TMPDIR
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers import distributed_step, mbert_tokenizer, tiny_model_dir  # noqa: E402
from transformers import AutoModel  # noqa: E402

from amber_align.trainers import CaoConfig, CaoTrainer  # noqa: E402
from test_cao_trainer import demo_pairs  # noqa: E402


def main() -> None:
    out, tmp = Path(sys.argv[1]), Path(sys.argv[2])
    # "as_launched": a config that names neither use_cpu nor a backend, as the README's command on a machine
    # without CUDA (amber_align.launch_guard turns it into this gloo job)
    device = {} if "as_launched" in sys.argv[3:] else {"use_cpu": True, "ddp_backend": "gloo"}
    args = CaoConfig(output_dir=str(tmp / "out"), model_name_or_path="unused", report_to=[],
                     per_device_train_batch_size=4, save_strategy="no", **device)
    rank, world = args.process_index, args.world_size
    model_dir = tmp / "tiny"
    if rank == 0:
        tiny_model_dir("mbert", model_dir)
    if world > 1:
        dist.barrier()
    no_dropout = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    model = AutoModel.from_pretrained(model_dir, **no_dropout)
    teacher = AutoModel.from_pretrained(model_dir, **no_dropout)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    tok = mbert_tokenizer()
    ds = demo_pairs(tok, 8)
    trainer = CaoTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, teacher=teacher)
    per = 8 // world
    batch = trainer.data_collator([ds[i] for i in range(rank * per, (rank + 1) * per)])
    _, mean_loss, logged, grads = distributed_step(trainer, batch)
    if rank == 0:
        torch.save({"loss": mean_loss, "logged": logged, "grads": grads, "world": world,
                    "backend": dist.get_backend() if dist.is_initialized() else None, "use_cpu": args.use_cpu}, out)
    del trainer, model, teacher
    gc.collect()
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()

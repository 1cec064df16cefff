"""AMBER under torchrun (gloo on CPU). Two modes, rank 0 saves results to argv[1]:

- ``sa``: one SA training step, each of W ranks taking 16/W of the same 16 pairs, negatives gathered across
  ranks: the loss, the logged part and the gradients must equal W=1 (tests/test_distributed.py compares them);
  every rank's local part value is saved too, to check that the logged value is their mean.
- ``all``: 2 steps of ``trainer.train()`` with every part on (several forwards, one backward): the parameters must
  stay identical on every rank (DDP synchronised the gradients) and every part is logged.

Run: torchrun --standalone --nproc_per_node W tests/distributed/amber_ddp_step.py OUT.pt TMPDIR MODE
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

from amber_align.modeling import load_masked_lm  # noqa: E402
from amber_align.trainers import AmberConfig, AmberTrainer  # noqa: E402
from test_cao_trainer import demo_pairs  # noqa: E402

N = 16
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


def _model_dir(tmp: Path, rank: int, world: int) -> Path:
    model_dir = tmp / "tiny"
    if rank == 0:
        tiny_model_dir("mbert", model_dir)
    if world > 1:
        dist.barrier()
    return model_dir


def sa_step(out: Path, tmp: Path) -> None:
    args = AmberConfig(output_dir=str(tmp / "out"), model_name_or_path="unused", use_cpu=True, report_to=[],
                       per_device_train_batch_size=4, save_strategy="no", ddp_backend="gloo",
                       tlm_weight=0.0, wa_weight=0.0, sa_weight=1.0, sa_symmetric=True)
    rank, world = args.process_index, args.world_size
    model = AutoModel.from_pretrained(_model_dir(tmp, rank, world), **NO_DROPOUT)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    tok = mbert_tokenizer()
    ds = demo_pairs(tok, N)
    trainer = AmberTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    per = N // world
    batch = trainer.data_collator([ds[i] for i in range(rank * per, (rank + 1) * per)])
    local_parts, mean_loss, logged, grads = distributed_step(trainer, batch)
    locals_ = trainer.accelerator.gather(local_parts["sa"].unsqueeze(0))
    if rank == 0:
        torch.save({"loss": mean_loss, "logged": logged, "grads": grads, "world": world,
                    "local_sa": locals_.tolist()}, out)
    del trainer, model
    gc.collect()


def all_parts(out: Path, tmp: Path) -> None:
    args = AmberConfig(output_dir=str(tmp / "out"), model_name_or_path="unused", use_cpu=True, report_to=[],
                       per_device_train_batch_size=4, save_strategy="no", ddp_backend="gloo", max_steps=2,
                       logging_steps=1, learning_rate=1e-3, mlm_weight=1.0, cao_weight=1.0)
    rank, world = args.process_index, args.world_size
    model_dir = _model_dir(tmp, rank, world)
    args.model_name_or_path = str(model_dir)
    model = load_masked_lm(str(model_dir))
    tok = mbert_tokenizer()
    trainer = AmberTrainer(model=model, args=args, train_dataset=demo_pairs(tok, N), processing_class=tok)
    trainer.train()
    flat = torch.cat([p.detach().reshape(-1) for p in trainer.model.parameters()])
    every = trainer.accelerator.gather(flat.unsqueeze(0))
    in_sync = all(torch.equal(every[0], every[r]) for r in range(every.shape[0]))
    moved = not torch.equal(flat, torch.cat([p.detach().reshape(-1) for p in load_masked_lm(str(model_dir)).parameters()]))
    if rank == 0:
        logged = [h for h in trainer.state.log_history if "loss" in h]
        torch.save({"in_sync": in_sync, "moved": moved, "logged": logged, "world": world}, out)
    del trainer, model
    gc.collect()


def main() -> None:
    out, tmp, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    {"sa": sa_step, "all": all_parts}[mode](out, tmp)
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()

"""One bf16 step of a DeepSpeed ZeRO-2 or ZeRO-3 engine on CPU (gloo), then the state dict a save writes.

transformers refuses ``bf16: true`` on a machine without a GPU unless ``use_cpu`` is set, which turns DeepSpeed off, so
a Trainer cannot run DeepSpeed in bf16 here; this script builds the engine itself (the model in bf16, the fp32 master
weights in the ZeRO optimizer, as the Trainer's DeepSpeed bf16 run has them) and passes its 16-bit state dict through
``full_precision_state_dict`` (what ``SavedWeightsDtype._save`` does). Rank 0 saves both dicts to argv[1];
tests/test_deepspeed.py checks that the saved weights are the float32 masters, not the bf16 copy.

Run: torchrun --standalone --nproc_per_node 2 tests/distributed/deepspeed_bf16_masters.py OUT.pt STAGE
"""

from __future__ import annotations

import sys
from pathlib import Path

import deepspeed
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers import tiny_model  # noqa: E402

from amber_align.trainers.deepspeed_support import full_precision_state_dict  # noqa: E402


def main() -> None:
    out, stage = Path(sys.argv[1]), int(sys.argv[2])
    deepspeed.init_distributed(dist_backend="gloo")
    model = tiny_model("mbert")
    model.pooler.requires_grad_(False)  # frozen, as the alignment trainers leave it: no master copy
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    config = {"train_micro_batch_size_per_gpu": 1, "bf16": {"enabled": True}, "zero_allow_untested_optimizer": True,
              "zero_optimization": {"stage": stage, "stage3_gather_16bit_weights_on_model_save": True}}
    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=config)
    torch.manual_seed(0)
    ids = torch.randint(5, 1000, (2, 8))
    loss = engine(input_ids=ids).last_hidden_state.float().pow(2).mean()
    engine.backward(loss)
    engine.step()
    sixteen = engine._zero3_consolidated_16bit_state_dict() if stage == 3 else engine.module.state_dict()
    rank = torch.distributed.get_rank()
    saved = full_precision_state_dict(engine, sixteen, torch.float32, keep=rank == 0)
    if rank == 0:
        torch.save({"saved": saved, "sixteen": {k: v.cpu() for k, v in sixteen.items()}}, out)
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()

"""Streaming Cao training under torchrun (gloo on CPU): W ranks, 2 steps, accelerate dealing whole batches.

Each rank records the language pairs and first token ids of the batches it trains on; every rank saves them to
argv[1] with its rank appended (tests/test_streaming.py checks every batch mixes every pair and ranks see different
pairs). Run: torchrun --standalone --nproc_per_node W tests/distributed/streaming_ddp.py OUT.pt TMPDIR
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers import mbert_tokenizer, tiny_model_dir  # noqa: E402
from transformers import AutoModel  # noqa: E402

from amber_align.data.streaming import build_streaming_dataset  # noqa: E402
from amber_align.demo import demo_dir  # noqa: E402
from amber_align.trainers import CaoConfig, CaoTrainer  # noqa: E402


class Recording(CaoTrainer):
    """Records the pairs of every batch its collator builds and the input ids of every batch it trains on."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pairs, self.seen, collate = [], [], self.data_collator
        self.data_collator = lambda features: (self.pairs.append([f["pair"] for f in features]), collate(features))[1]

    def training_step(self, model, inputs, num_items_in_batch=None):
        self.seen.append(inputs["input_ids"].tolist())
        return super().training_step(model, inputs, num_items_in_batch)


def main() -> None:
    out, tmp = Path(sys.argv[1]), Path(sys.argv[2])
    data = demo_dir() / "data"
    sources = [dict(file=str(data / f"{lang}-en.txt"), format="bar", src_lang=lang, tgt_lang="en",
                    alignments=str(data / f"{lang}-en.pharaoh")) for lang in ("es", "de")]
    args = CaoConfig(output_dir=str(tmp / "out"), model_name_or_path=str(tmp / "tiny"), use_cpu=True, report_to=[],
                     per_device_train_batch_size=2, save_strategy="no", ddp_backend="gloo", max_steps=2,
                     streaming=True, train_data=sources, pretokenized=True, streaming_buffer_size=32,
                     ddp_find_unused_parameters=False, disable_tqdm=True)
    rank, world = args.process_index, args.world_size
    if rank == 0:
        tiny_model_dir("mbert", tmp / "tiny")
    if world > 1:
        dist.barrier()
    tok = mbert_tokenizer()
    trainer = Recording(model=AutoModel.from_pretrained(tmp / "tiny"), args=args,
                        train_dataset=build_streaming_dataset(args, tok), processing_class=tok,
                        teacher=AutoModel.from_pretrained(tmp / "tiny"))
    trainer.train()
    torch.save({"seen": trainer.seen, "pairs": trainer.pairs, "world": world, "steps": trainer.state.global_step}, f"{out}.{rank}")
    del trainer
    gc.collect()
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()

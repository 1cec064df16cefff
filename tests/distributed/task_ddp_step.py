"""One step of ``amber-align finetune`` (NLI or NER head) under torchrun (gloo on CPU), then the zero-shot
evaluation, the saved model and its card, like a real run.

8 training examples, ``per_device_train_batch_size = 8 / W``: W = 1 and W = 2 see the same 8 examples in one
optimizer step (the Trainer's seeded sampler deals the same permutation). Plain SGD (no momentum), no dropout, so
the update is ``-lr × gradient``: the script saves the logged loss, every parameter's update and what the card says
to argv[1] (rank 0); tests/test_hub_launch.py compares W = 2 with W = 1. NER sentences have different lengths, so
the two ranks hold different numbers of labelled tokens: the loss is right only if it is normalised over the
tokens of both ranks.

Run: torchrun --standalone --nproc_per_node W tests/distributed/task_ddp_step.py OUT.pt TMPDIR nli,ner
(``finetune_one_step`` also runs in-process: W = 1, optionally with gradient accumulation.)
"""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers import tiny_model_dir  # noqa: E402
from transformers import TrainerCallback, set_seed  # noqa: E402

from amber_align.config_io import build_config  # noqa: E402
from amber_align.tasks.config import TaskConfig  # noqa: E402
from amber_align.tasks.runner import run_finetune  # noqa: E402

NLI = "".join(f"{p}\t{h}\t{lab}\n" for p, h, lab in [
    ("A man sleeps.", "Someone rests.", "entailment"), ("A dog barks.", "The dog is loud.", "neutral"),
    ("A man runs.", "A man sits.", "contradiction"), ("Kids play.", "Children are outside.", "entailment"),
    ("The sun is up.", "It is night.", "contradiction"), ("She reads a long book.", "She reads.", "entailment"),
    ("Two cats sleep.", "The cats are hungry.", "neutral"), ("A car stops.", "A vehicle halts.", "entailment")])
# 8 sentences of 2 to 9 tokens: the ranks get different numbers of labelled tokens
NER = "\n".join([
    "EU B-ORG\nrejects O", "Peter B-PER\nBlackburn I-PER\nvisited O\nLondon B-LOC\nand O\nParis B-LOC\n. O",
    "Berlin B-LOC\nis O\nbig O", "The O\nUnited B-ORG\nNations I-ORG\nmet O\nin O\nGeneva B-LOC\non O\nMonday O\n. O",
    "Anna B-PER\nsmiled O", "Siemens B-ORG\nopened O\na O\nplant O\nnear O\nMunich B-LOC",
    "Rome B-LOC\n. O", "John B-PER\nSmith I-PER\nand O\nMary B-PER\nJones I-PER\nwork O\nat O\nIBM B-ORG\n. O",
]) + "\n"


class _Params(TrainerCallback):
    """The trained model's parameters at the start and at the end of training."""

    start: dict[str, torch.Tensor] = {}
    end: dict[str, torch.Tensor] = {}

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        _Params.start = {n: p.detach().clone() for n, p in model.named_parameters()}

    def on_train_end(self, args, state, control, model=None, **kwargs):
        _Params.end = {n: p.detach().clone() for n, p in model.named_parameters()}


def finetune_one_step(tmp: Path, task: str, gradient_accumulation_steps: int = 1) -> dict:
    """Run ``finetune`` for one optimizer step on 8 examples; on rank 0 return what the comparison needs."""
    train = tmp / ("dev-en.tsv" if task == "nli" else "en.train")
    config = build_config({
        "task": task, "model_name_or_path": str(tmp / "tiny"), "output_dir": str(tmp / "out"),
        "train_data": str(train), "eval_data": {"en": str(train), "de": str(train)},
        "max_steps": 1, "logging_steps": 1, "optim": "sgd", "learning_rate": 0.5, "lr_scheduler_type": "constant",
        "max_grad_norm": 0.0,  # no clipping: the update is exactly -lr x gradient
        "use_cpu": True, "report_to": [], "save_strategy": "no", "max_seq_length": 32,
        "ddp_backend": "gloo" if "WORLD_SIZE" in os.environ else None,  # None: in-process, no torchrun
        "seed": 0, "per_device_train_batch_size": 8, "per_device_eval_batch_size": 4,
        "gradient_accumulation_steps": gradient_accumulation_steps,
    }, source="test", config_class=TaskConfig)
    rank, world = config.process_index, config.world_size
    config.per_device_train_batch_size = 8 // (world * gradient_accumulation_steps)
    if rank == 0:
        tmp.mkdir(parents=True, exist_ok=True)
        train.write_text(NLI if task == "nli" else NER, encoding="utf-8")
        tiny_model_dir("mbert", tmp / "tiny", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    if world > 1:
        dist.barrier()
    import transformers

    original_init = transformers.Trainer.__init__

    def init_with_callback(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.add_callback(_Params())

    transformers.Trainer.__init__ = init_with_callback
    try:
        set_seed(0)  # the new head's initial weights: the same in every run
        report = run_finetune(config)
    finally:
        transformers.Trainer.__init__ = original_init
    if rank != 0:
        return {}
    from huggingface_hub import ModelCard

    card = ModelCard.load(tmp / "out" / "README.md")
    logged = [h for h in report["log_history"] if "loss" in h]
    return {"world": world, "loss": logged[0]["loss"], "metrics": report["metrics"],
            "updates": {n: _Params.end[n] - _Params.start[n] for n in _Params.start},
            "card_results": [(r.dataset_config, r.metric_type, r.metric_value) for r in card.data.eval_results or []]}


def main() -> None:
    out, tmp, tasks = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3].split(",")
    results = {task: finetune_one_step(tmp / task, task) for task in tasks}
    if not dist.is_initialized() or dist.get_rank() == 0:
        torch.save(results, out)
    gc.collect()
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()

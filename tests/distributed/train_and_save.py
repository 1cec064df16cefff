"""A few training steps of Cao or AMBER, then ``save_model`` and rank 0's record: the body of the launch scripts that
compare an engine against DDP (``fsdp_train.py``, ``deepspeed_train.py``; tests/test_fsdp.py, tests/test_deepspeed.py
compare the saved weights and the logged loss parts).

``WORK/tiny`` (a seeded model, dropout off, MLM head included, written by the test) is loaded by the trainer itself,
the frozen teacher too. Rank 0 writes the log history, world size, distributed type and the script's own fields to
``WORK/log.json``; the model goes to ``WORK/final``. Extra ``key=value`` arguments go to the config (JSON values
where they parse; ``resume_from_checkpoint=…`` resumes).
"""

from __future__ import annotations

import gc
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers import mbert_tokenizer, xlmr_tokenizer  # noqa: E402

from amber_align.trainers import AmberConfig, AmberTrainer, CaoConfig, CaoTrainer  # noqa: E402
from test_cao_trainer import demo_pairs  # noqa: E402

__all__ = ["N", "AMBER_WEIGHTS", "ENCODER_WEIGHTS", "train_save_record"]

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


def train_save_record(argv: list[str], fields: Callable[[Any], dict[str, Any]]) -> None:
    """``argv``: ``WORK METHOD MODE [key=value …]``; METHOD "cao", "amber" (every part), "amber_xlmr" (the same on
    the XLM-R vocabulary) or "encoder" (AMBER without MLM/TLM on layer 1); MODE "ddp" (gloo on CPU) or the engine's
    name. ``fields(trainer)``: the script's own entries of rank 0's record."""
    work, method, mode = Path(argv[0]), argv[1], argv[2]
    extra = {k: _value(v) for k, v in (arg.split("=", 1) for arg in argv[3:])}
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
                  "distributed_type": str(trainer.accelerator.distributed_type), **fields(trainer)}
        (work / "log.json").write_text(json.dumps(record), encoding="utf-8")
    del trainer
    gc.collect()
    if dist.is_initialized():
        dist.destroy_process_group()

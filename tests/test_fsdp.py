"""FSDP2 against DDP (issue 25): 2 gloo CPU processes train Cao and AMBER from recipes/accelerate/fsdp.yaml (FSDP
forced onto the CPU processes by the test-only ``tests/distributed/fsdp_cpu_shim.py``), and the saved weights and
logged loss parts match the DDP run of the same config; the FSDP save is a full state dict ``AutoModel`` loads with
no missing keys; a run resumed from an FSDP checkpoint ends where the uninterrupted one does.

Each launch takes ~15-20 s on 2 busy cores: the default suite runs AMBER with every part (MLM, TLM, WA, SA, SO,
Cao; 2 launches); the rest is marked slow. ``adam_epsilon`` is 1e-6 in every compared run: with 1e-8 one word
embedding whose gradient is near zero moved by 1.1e-6 between the two reduction orders (Adam divides by its
gradient's own size); everything else stayed below 6e-8.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import mbert_tokenizer, tiny_config, tiny_model_dir, xlmr_tokenizer

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).resolve().parent / "distributed" / "fsdp_train.py"
RECIPE = ROOT / "recipes" / "accelerate" / "fsdp.yaml"
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
#: measured after 3 Adam steps at lr 1e-3 (docs/distributed.md "FSDP"): weights <= 2.8e-7, logged parts <= 2.4e-7
#: (XLM-R: 1e-6, one unit of the last of the 6 decimals a part is logged with; the parts' bound allows two)
WEIGHT_ATOL, PART_ATOL = 1e-6, 2e-6
COMPARED = ("adam_epsilon=1e-6",)


def tiny_mlm_dir(path: Path, kind: str = "mbert") -> Path:
    """A tiny seeded ``BertForMaskedLM`` on the real mBERT vocabulary (``XLMRobertaForMaskedLM`` on XLM-R's for
    ``kind`` "xlmr"), dropout off, with its tokenizer (every launch starts from the same weights, MLM head
    included)."""
    from transformers import BertForMaskedLM, XLMRobertaForMaskedLM

    torch.manual_seed(0)
    model_class = XLMRobertaForMaskedLM if kind == "xlmr" else BertForMaskedLM
    model_class(tiny_config(kind, **NO_DROPOUT)).save_pretrained(path)
    (xlmr_tokenizer() if kind == "xlmr" else mbert_tokenizer()).save_pretrained(path)
    return path


def launch(work: Path, method: str, mode: str, *extra: str) -> dict:
    """Train ``method`` ("cao", "amber": every part, "encoder": AMBER without MLM/TLM on layer 1) in ``work`` with 2
    processes, ``mode`` "ddp" (torchrun) or "fsdp" (accelerate launch with the shipped recipe); rank 0's record."""
    if not (work / "tiny").is_dir():
        tiny_mlm_dir(work / "tiny", "xlmr" if method.endswith("_xlmr") else "mbert")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    if mode == "ddp":
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    else:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(RECIPE), "--num_processes",
               "2", "--main_process_port", "0", "--mixed_precision", "no"]
    cmd += [str(SCRIPT), str(work), method, mode, *COMPARED, *extra]
    proc = subprocess.run(["timeout", "400", *cmd], capture_output=True, text=True, env=env, timeout=460)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads((work / "log.json").read_text(encoding="utf-8"))


def logged_parts(record: dict) -> list[dict[str, float]]:
    return [{k: v for k, v in row.items() if k not in ("epoch", "step", "learning_rate", "grad_norm")}
            for row in record["log"] if "loss" in row]


def saved(folder: Path) -> dict[str, torch.Tensor]:
    """The saved model as ``AutoModel`` loads it: nothing missing, nothing unexpected but the MLM head."""
    from transformers import AutoModel

    model, info = AutoModel.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and all(k.startswith(("cls.", "lm_head.")) for k in info["unexpected_keys"]), info
    return model.state_dict()


def max_differences(ddp: tuple[Path, dict], fsdp: tuple[Path, dict]) -> tuple[float, float]:
    """(max |weight difference|, max |logged part difference|): every weight of the starting checkpoint (the
    pooler, newly initialised and frozen, is left out) and every part logged, at every step."""
    from safetensors.torch import load_file

    wa, wb = saved(ddp[0] / "final"), saved(fsdp[0] / "final")
    start = {k.removeprefix("bert.").removeprefix("roberta.") for k in load_file(ddp[0] / "tiny" / "model.safetensors")}
    compared = [k for k in wa if k in start]
    assert wa.keys() == wb.keys() and len(compared) >= len(wa) - 2
    weight = max((wa[k] - wb[k]).abs().max().item() for k in compared)
    la, lb = logged_parts(ddp[1]), logged_parts(fsdp[1])
    assert len(la) == len(lb) == 3 and all(a.keys() == b.keys() for a, b in zip(la, lb))
    return weight, max(abs(a[k] - b[k]) for a, b in zip(la, lb) for k in a)


def compare(tmp_path: Path, method: str) -> tuple[float, float, dict]:
    ddp = (tmp_path / "ddp", launch(tmp_path / "ddp", method, "ddp"))
    fsdp = (tmp_path / "fsdp", launch(tmp_path / "fsdp", method, "fsdp"))
    assert fsdp[1]["distributed_type"] == "DistributedType.FSDP" and fsdp[1]["world"] == 2
    assert fsdp[1]["model_class"].startswith("FSDP")  # fully_shard's class: the model really was sharded
    assert ddp[1]["distributed_type"] == "DistributedType.MULTI_CPU"
    weight, part = max_differences(ddp, fsdp)
    print(f"{method}: max |weight - DDP| = {weight:.3g}, max |logged part - DDP| = {part:.3g}")
    return weight, part, fsdp[1]


@pytest.mark.distributed
def test_fsdp2_amber_every_part_matches_ddp(tmp_path):
    """MLM, TLM (the tied decoder bias), WA (the last layer's probabilities under resharding), SA, SO on layer 1
    (hidden states of a renamed class) and Cao: the same weights and parts as DDP."""
    weight, part, record = compare(tmp_path, "amber")
    assert weight <= WEIGHT_ATOL and part <= PART_ATOL
    assert {"mlm", "tlm", "wa", "sa", "so", "cao_link", "cao_anchor"} <= set(logged_parts(record)[0])


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize("method", ["cao", "encoder"])
def test_fsdp2_matches_ddp(tmp_path, method):
    """Cao (the frozen teacher on every process), and AMBER on a plain encoder (the sharded root is the renamed
    ``FSDPBertModel``) with WA, SA, SO and Cao on layer 1."""
    weight, part, _ = compare(tmp_path, method)
    assert weight <= WEIGHT_ATOL and part <= PART_ATOL


@pytest.mark.slow
@pytest.mark.distributed
def test_fsdp2_resumes_from_its_checkpoint(tmp_path):
    """A checkpoint written under FSDP at step 2 resumes to the weights of the uninterrupted 3-step run."""
    full = tmp_path / "full"
    launch(full, "amber", "fsdp", "save_strategy=steps", "save_steps=2")
    assert (full / "out" / "checkpoint-2").is_dir()
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    (resumed / "tiny").symlink_to(full / "tiny")
    launch(resumed, "amber", "fsdp", f"resume_from_checkpoint={full / 'out' / 'checkpoint-2'}")
    a, b = saved(full / "final"), saved(resumed / "final")
    assert max((a[k] - b[k]).abs().max().item() for k in a if "pooler" not in k) <= WEIGHT_ATOL


@pytest.mark.slow
@pytest.mark.distributed
def test_fsdp2_amber_every_part_on_xlmr_matches_ddp(tmp_path):
    """The same recipe on XLM-R (``XLMRobertaLayer`` units read from the model, the tied ``lm_head`` bias, positions
    after the pad id): every AMBER part equals DDP's."""
    weight, part, record = compare(tmp_path, "amber_xlmr")
    assert weight <= WEIGHT_ATOL and part <= PART_ATOL
    assert record["model_class"].startswith("FSDP")


@pytest.mark.slow
@pytest.mark.distributed
def test_continual_learning_trains_under_fsdp2(tmp_path):
    """Continual learning (NLI head + Cao parts, the frozen anchor on every process) for 2 steps under FSDP2: every
    part logged and finite, the anchor a plain module (replicated, not sharded). A smoke run, not compared with DDP."""
    import math

    tiny_model_dir("mbert", tmp_path / "tiny")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = ["timeout", "300", sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(RECIPE),
           "--num_processes", "2", "--main_process_port", "0", "--mixed_precision", "no",
           str(SCRIPT.parent / "fsdp_continual.py"), str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=360)
    assert proc.returncode == 0, proc.stderr[-4000:]
    record = json.loads((tmp_path / "continual.json").read_text(encoding="utf-8"))
    assert record["teacher"] == "BertModel" and len(record["logged"]) == 2
    for row in record["logged"]:
        assert all(part in row and math.isfinite(row[part]) for part in ("task", "cao_link", "cao_anchor"))

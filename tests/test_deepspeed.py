"""DeepSpeed ZeRO-2/3 against DDP (issue 25): 2 CPU processes (DeepSpeed's CPU accelerator on gloo) train Cao and
AMBER (every part: MLM, TLM, WA, SA, SO, Cao) from the shipped recipes, and the saved weights and logged loss parts
match the DDP run of the same config; the ZeRO-3 save is a full float32 state dict; a bf16 engine saves its float32
master weights.

The launches are slow (each ~20-60 s on 2 busy cores) and need deepspeed: when it is missing it is installed into
this interpreter's environment with ``DS_BUILD_OPS=0`` (no compiled ops, installs on CPU); when that fails the tests
skip and say why. The unit tests at the end (launch guard, precision, save dtype, refused settings) need neither.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from helpers import mbert_tokenizer, tiny_config, tiny_model_dir

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).resolve().parent / "distributed" / "deepspeed_train.py"
RECIPES = ROOT / "recipes" / "accelerate"
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
#: measured max differences to DDP after 3 Adam steps (lr 1e-3), over two runs: weights up to 2.3e-6 (AMBER, ZeRO-3;
#: Cao 3.5e-7), logged parts up to 1e-6, one step of the 6 decimals they are logged with (docs/distributed.md)
WEIGHT_ATOL, PART_ATOL = 1e-5, 2e-6


@pytest.fixture(scope="module")
def deepspeed_installed() -> None:
    """deepspeed importable, installed with DS_BUILD_OPS=0 when missing (the slow CI job); else a skip saying why."""
    if importlib.util.find_spec("deepspeed") is None:
        env = {**os.environ, "DS_BUILD_OPS": "0"}
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "deepspeed"], capture_output=True, text=True,
                              env=env, timeout=900)
        importlib.invalidate_caches()
        if proc.returncode != 0 or importlib.util.find_spec("deepspeed") is None:
            pytest.skip("deepspeed is not installed and `DS_BUILD_OPS=0 pip install deepspeed` failed: "
                        + (proc.stderr.strip().splitlines() or ["no output"])[-1])


def tiny_mlm_dir(path: Path) -> Path:
    """A tiny seeded ``BertForMaskedLM`` on the real mBERT vocabulary, dropout off, with its tokenizer. With an MLM
    head of its own, every launch starts from the same weights (a fresh head would be initialised from each
    process's RNG state, which DeepSpeed's set-up and DDP's leave different)."""
    from transformers import BertForMaskedLM

    torch.manual_seed(0)
    BertForMaskedLM(tiny_config("mbert", **NO_DROPOUT)).save_pretrained(path)
    mbert_tokenizer().save_pretrained(path)
    return path


def launch(work: Path, method: str, mode: str, *extra: str, launcher: tuple[str, ...] = ()) -> dict:
    """Train ``method`` in ``work`` with 2 processes: ``mode`` "ddp" (torchrun) or "zero2"/"zero3" (accelerate launch
    with the shipped recipe); return rank 0's record (log history, bf16, distributed type, the teacher's type)."""
    tiny_mlm_dir(work / "tiny")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    if mode == "ddp":
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    else:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(RECIPES / f"deepspeed_{mode}.yaml"), "--num_processes", "2", "--main_process_port", "0",
               *launcher]
    cmd += [str(SCRIPT), str(work), method, "ddp" if mode == "ddp" else "deepspeed", *extra]
    proc = subprocess.run(["timeout", "500", *cmd], capture_output=True, text=True, env=env, timeout=560)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads((work / "log.json").read_text(encoding="utf-8"))


def weights(work: Path) -> dict[str, torch.Tensor]:
    """The saved model's weights as ``AutoModel`` loads them: nothing missing, nothing unexpected but AMBER's MLM
    head (``cls.*``, saved with the encoder under DDP too), float32."""
    from transformers import AutoModel

    model, info = AutoModel.from_pretrained(work / "final", output_loading_info=True)
    assert not info["missing_keys"] and all(k.startswith("cls.") for k in info["unexpected_keys"]), info
    assert model.dtype == torch.float32
    return model.state_dict()


def logged_parts(record: dict) -> list[dict[str, float]]:
    return [{k: v for k, v in row.items() if k not in ("epoch", "step", "learning_rate")}
            for row in record["log"] if "loss" in row]


def max_differences(ddp: tuple[Path, dict], other: tuple[Path, dict]) -> tuple[float, float]:
    """(max |weight difference|, max |logged part difference|) between two runs: the same keys saved, and every
    part logged by both. Weights absent from the starting checkpoint (BertModel's pooler: freshly initialised from
    each launch's RNG, frozen, never trained) are left out."""
    from safetensors.torch import load_file

    wa, wb = (load_file(run[0] / "final" / "model.safetensors") for run in (ddp, other))
    start = load_file(ddp[0] / "tiny" / "model.safetensors").keys()
    assert wa.keys() == wb.keys()
    compared = [k for k in wa if k in start or f"bert.{k}" in start]
    assert len(compared) >= len(wa) - 2
    weight = max((wa[k] - wb[k]).abs().max().item() for k in compared)
    la, lb = logged_parts(ddp[1]), logged_parts(other[1])
    assert len(la) == len(lb) == 3 and all(a.keys() == b.keys() for a, b in zip(la, lb))
    part = max(abs(a[k] - b[k]) for a, b in zip(la, lb) for k in a if k != "grad_norm")
    return weight, part


@pytest.fixture(scope="module")
def runs(deepspeed_installed, tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """Cao and AMBER under DDP, ZeRO-2 and ZeRO-3 (6 launches, shared by the tests below)."""
    out = {}
    for method in ("cao", "amber"):
        for mode in ("ddp", "zero2", "zero3"):
            work = tmp_path_factory.mktemp(f"{method}_{mode}")
            out[f"{method}_{mode}"] = (work, launch(work, method, mode))
    return out


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize("method", ["cao", "amber"])
@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_deepspeed_matches_ddp(runs, method, stage):
    ddp, run = runs[f"{method}_ddp"], runs[f"{method}_{stage}"]
    assert run[1]["distributed_type"] == "DistributedType.DEEPSPEED" and run[1]["world"] == 2
    assert ddp[1]["distributed_type"] == "DistributedType.MULTI_CPU"
    # the frozen teacher: a plain module under ZeRO-2, its own inference engine under ZeRO-3
    assert run[1]["teacher"] == ("DeepSpeedEngine" if stage == "zero3" else "BertModel")
    weight, part = max_differences(ddp, run)
    print(f"{method} {stage}: max |weight - DDP| = {weight:.3g}, max |logged part - DDP| = {part:.3g}")
    assert weight <= WEIGHT_ATOL and part <= PART_ATOL
    if method == "amber":
        assert {"mlm", "tlm", "wa", "sa", "so", "cao_link", "cao_anchor"} <= set(logged_parts(run[1])[0])


@pytest.mark.slow
@pytest.mark.distributed
def test_zero3_saves_the_full_float32_model_under_its_own_names(runs):
    """ZeRO-3 partitions every weight; the final save gathers them: the same keys and dtypes as DDP's file."""
    from safetensors.torch import load_file

    for method in ("cao", "amber"):
        ddp = load_file(runs[f"{method}_ddp"][0] / "final" / "model.safetensors")
        zero3 = load_file(runs[f"{method}_zero3"][0] / "final" / "model.safetensors")
        assert zero3.keys() == ddp.keys()  # no LayerNorm.gamma (transformers' ZeRO-3 load records legacy renamings)
        assert all(t.dtype == torch.float32 and t.shape == ddp[k].shape for k, t in zero3.items())
        assert weights(runs[f"{method}_zero3"][0]).keys() == weights(runs[f"{method}_ddp"][0]).keys()
    ddp = load_file(runs["cao_ddp"][0] / "final" / "model.safetensors")
    card = json.loads((runs["cao_zero3"][0] / "final" / "amber_align_card.json").read_text(encoding="utf-8"))
    assert card["model"]["parameters"] == sum(t.numel() for t in ddp.values())  # not the empty placeholders


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_continual_learning_trains_under_deepspeed_with_its_anchor(deepspeed_installed, tmp_path, stage):
    """Continual learning's frozen anchor f0 goes through the same teacher preparation: under ZeRO-3 its own
    engine; 2 steps of NLI + Cao parts train and log every part (a smoke run: not compared with DDP)."""
    tiny_model_dir("mbert", tmp_path / "tiny")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = ["timeout", "300", sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(RECIPES / f"deepspeed_{stage}.yaml"), "--num_processes", "2", "--main_process_port", "0",
           str(SCRIPT.parent / "deepspeed_continual.py"), str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=360)
    assert proc.returncode == 0, proc.stderr[-4000:]
    record = json.loads((tmp_path / "continual.json").read_text(encoding="utf-8"))
    assert record["teacher"] == ("DeepSpeedEngine" if stage == "zero3" else "BertModel")
    assert len(record["logged"]) == 2
    for row in record["logged"]:
        assert all(part in row and math.isfinite(row[part]) for part in ("task", "cao_link", "cao_anchor"))


@pytest.mark.slow
@pytest.mark.distributed
def test_a_bf16_deepspeed_model_is_saved_as_its_float32_master_weights(deepspeed_installed, tmp_path):
    """Under bf16 DeepSpeed holds the model in bf16; the save takes the ZeRO optimizer's fp32 master weights
    (2 processes, ZeRO-2 and ZeRO-3, a real engine: transformers refuses a bf16 Trainer on CPU without use_cpu)."""
    script = Path(__file__).resolve().parent / "distributed" / "deepspeed_bf16_masters.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for stage in (2, 3):
        out = tmp_path / f"zero{stage}.pt"
        proc = subprocess.run(["timeout", "300", sys.executable, "-m", "torch.distributed.run", "--standalone",
                               "--nproc_per_node", "2", str(script), str(out), str(stage)],
                              capture_output=True, text=True, env=env, timeout=360)
        assert proc.returncode == 0, proc.stderr[-4000:]
        result = torch.load(out)
        saved, sixteen = result["saved"], result["sixteen"]
        assert saved.keys() == sixteen.keys() and {t.dtype for t in saved.values()} == {torch.float32}
        trained = saved["encoder.layer.0.attention.self.query.weight"]
        assert not torch.equal(trained, trained.to(torch.bfloat16).float())  # full precision: not the bf16 copy
        assert torch.equal(trained.to(torch.bfloat16), sixteen["encoder.layer.0.attention.self.query.weight"])
        # the frozen pooler has no master copy: its bf16 value, in float32
        assert torch.equal(saved["pooler.dense.weight"], sixteen["pooler.dense.weight"].float())


# ----- unit tests: no deepspeed, no launch -------------------------------------------------------------------------
def test_launch_guard_under_deepspeed_on_cpu_sets_gloo_not_use_cpu(monkeypatch):
    from amber_align.launch_guard import guard_cpu_launch

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    monkeypatch.setattr("amber_align.launch_guard._has_accelerator", lambda: False)
    config = SimpleNamespace(use_cpu=False, ddp_backend=None, bf16=False, fp16=False)
    guard_cpu_launch(config)
    assert config.use_cpu is False and config.ddp_backend == "gloo"  # use_cpu would turn DeepSpeed off


def test_deepspeed_precision_comes_from_one_place(monkeypatch):
    from amber_align.errors import ConfigError
    from amber_align.launch_guard import guard_deepspeed_precision

    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    config = SimpleNamespace(bf16=False, fp16=False)
    guard_deepspeed_precision(config)
    assert config.bf16 is True  # transformers refused launcher bf16 with args.bf16 false
    with pytest.raises(ConfigError, match=r"fp16: true, but the launcher's DeepSpeed config asks for "
                                          r"mixed_precision bf16 .*choose the precision in one place"):
        guard_deepspeed_precision(SimpleNamespace(bf16=False, fp16=True))
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "false")
    config = SimpleNamespace(bf16=False, fp16=False)
    guard_deepspeed_precision(config)
    assert config.bf16 is False  # DDP: the config wins, as before


def test_shipped_deepspeed_recipes_leave_precision_to_the_config():
    import yaml

    for stage in (2, 3):
        recipe = yaml.safe_load((RECIPES / f"deepspeed_zero{stage}.yaml").read_text(encoding="utf-8"))
        assert recipe["distributed_type"] == "DEEPSPEED" and recipe["deepspeed_config"]["zero_stage"] == stage
        assert recipe["mixed_precision"] == "no"
    zero3 = yaml.safe_load((RECIPES / "deepspeed_zero3.yaml").read_text(encoding="utf-8"))["deepspeed_config"]
    assert zero3["zero3_save_16bit_model"] is True and zero3["zero3_init_flag"] is True


def test_teacher_cache_under_zero3_is_one_clear_error():
    from amber_align.errors import ConfigError
    from amber_align.trainers.deepspeed_support import check_deepspeed_support

    def trainer(stage: int) -> SimpleNamespace:
        plugin = SimpleNamespace(deepspeed_config={"zero_optimization": {"stage": stage}})
        return SimpleNamespace(accelerator=SimpleNamespace(state=SimpleNamespace(deepspeed_plugin=plugin)),
                               args=SimpleNamespace(teacher_cache="cache"))

    with pytest.raises(ConfigError, match=r"teacher_cache: not available under DeepSpeed ZeRO-3"):
        check_deepspeed_support(trainer(3))
    check_deepspeed_support(trainer(2))


def test_save_dtype_sets_the_saved_weights_dtype(tmp_path):
    """Without DeepSpeed: a model held in bf16 is saved float32 by default; save_dtype=bfloat16 keeps bf16."""
    from safetensors.torch import load_file
    from test_cao_trainer import demo_pairs
    from transformers import AutoModel

    from amber_align.trainers import CaoConfig, CaoTrainer

    tok = mbert_tokenizer()
    tiny = tiny_model_dir("mbert", tmp_path / "tiny")
    for name, expected in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        args = CaoConfig(output_dir=str(tmp_path / name), model_name_or_path=str(tiny), use_cpu=True, report_to=[],
                         save_strategy="no", save_dtype=name)
        model = AutoModel.from_pretrained(tiny).to(torch.bfloat16)
        trainer = CaoTrainer(model=model, args=args, train_dataset=demo_pairs(tok, 4), processing_class=tok)
        trainer.save_model(str(tmp_path / name / "final"))
        saved = load_file(tmp_path / name / "final" / "model.safetensors")
        assert {t.dtype for t in saved.values()} == {expected}
    with pytest.raises(Exception, match="save_dtype"):
        CaoConfig(output_dir=str(tmp_path / "bad"), model_name_or_path=str(tiny), use_cpu=True, save_dtype="fp32")

"""Launching: the accelerate recipes load with accelerate's own parsers, the README's `accelerate launch` command
runs 2 processes on CPU, and a downstream task on 2 gloo processes gives the loss and update of 1 process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes" / "accelerate"
TASK_SCRIPT = Path(__file__).resolve().parent / "distributed" / "task_ddp_step.py"
EXPECTED = {"single_gpu": ("NO", 1), "multi_gpu": ("MULTI_GPU", 8), "multi_node": ("MULTI_GPU", 16),
            "deepspeed_zero2": ("DEEPSPEED", 8), "deepspeed_zero3": ("DEEPSPEED", 8), "fsdp": ("FSDP", 8)}


def _launch_args(name: str):
    """What `accelerate launch --config_file <recipe> -m amber_align align --config c.yaml` resolves to."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    args = launch_command_parser().parse_args(
        ["--config_file", str(RECIPES / f"{name}.yaml"), "-m", "amber_align", "align", "--config", "c.yaml"])
    return _validate_launch_command(args)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recipe_loads_with_accelerate(name):
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file

    config = load_config_from_file(str(RECIPES / f"{name}.yaml"))  # unknown keys would raise here
    kind, processes = EXPECTED[name]
    assert isinstance(config, ClusterConfig)
    assert config.distributed_type.value == kind and config.num_processes == processes
    args, defaults, _ = _launch_args(name)
    assert args.num_processes == processes and args.module and args.training_script == "amber_align"
    assert (args.multi_gpu, args.use_deepspeed, args.use_fsdp) == (
        kind == "MULTI_GPU", kind == "DEEPSPEED", kind == "FSDP")
    if name == "multi_node":
        assert args.num_machines == 2 and args.main_process_ip and args.main_process_port == 29500
        text = (RECIPES / "multi_node.yaml").read_text(encoding="utf-8")
        assert "--machine_rank 0" in text and "--machine_rank 1" in text  # the command for each machine


def test_fsdp_recipe_builds_the_fsdp_plugin(monkeypatch):
    """The launcher's environment for fsdp.yaml, read back by accelerate's FSDP plugin (as each process does)."""
    from accelerate.utils import FullyShardedDataParallelPlugin, prepare_multi_gpu_env

    args, _, _ = _launch_args("fsdp")
    env = prepare_multi_gpu_env(args)
    for key, value in env.items():
        if key.startswith(("ACCELERATE_", "FSDP_")):
            monkeypatch.setenv(key, value)
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2 and "FULL_STATE_DICT" in str(plugin.state_dict_type)
    # no fixed class list (issue 25: "BertLayer,XLMRobertaLayer" failed for both models): accelerate takes each
    # model's own _no_split_modules, so one recipe shards mBERT and XLM-R layer by layer
    assert plugin.transformer_cls_names_to_wrap is None
    from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy
    from helpers import tiny_model

    for kind, layer in (("mbert", "BertLayer"), ("xlmr", "XLMRobertaLayer")):
        model = tiny_model(kind)
        policy = fsdp2_prepare_auto_wrap_policy(plugin, model)
        wrapped = {type(m).__name__ for m in model.modules() if policy(m)}
        assert layer in wrapped and type(model).__name__ not in wrapped, (kind, wrapped)


@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_recipe_builds_the_deepspeed_plugin(monkeypatch, stage):
    """accelerate's plugin parses the launcher's environment without deepspeed installed (ZeRO-2/3, the
    accumulation and clipping left "auto" for the Trainer to fill in, no mixed precision: the amber_align config
    chooses it); the recipes run in tests/test_deepspeed.py (slow, needs deepspeed)."""
    from accelerate.utils import DeepSpeedPlugin, prepare_deepspeed_cmd_env

    args, defaults, _ = _launch_args(f"deepspeed_zero{stage}")
    args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
    _, env = prepare_deepspeed_cmd_env(args)
    for key, value in env.items():
        if key.startswith("ACCELERATE_"):
            monkeypatch.setenv(key, value)
    assert env.get("ACCELERATE_MIXED_PRECISION", "no") == "no"
    plugin = DeepSpeedPlugin()
    assert plugin.zero_stage == stage and plugin.gradient_accumulation_steps == "auto"
    assert plugin.gradient_clipping == "auto" and plugin.offload_optimizer_device == "none"
    if stage == 3:
        assert plugin.zero3_init_flag and plugin.zero3_save_16bit_model


@pytest.mark.slow
@pytest.mark.distributed
def test_readme_accelerate_launch_command_runs_two_processes_on_cpu(tmp_path):
    """`accelerate launch --config_file recipes/accelerate/multi_gpu.yaml -m amber_align align --config …` with 2 gloo
    processes on CPU (--num_processes 2 --mixed_precision no on top of the recipe): trains, saves, writes the card."""
    from helpers import tiny_model_dir

    from amber_align.demo import demo_dir

    data = demo_dir() / "data"
    config = {"method": "cao", "model_name_or_path": str(tiny_model_dir("mbert", tmp_path / "tiny")),
              "output_dir": str(tmp_path / "out"), "pretokenized": True, "max_steps": 2, "logging_steps": 1,
              "per_device_train_batch_size": 4, "use_cpu": True, "report_to": [], "save_strategy": "no",
              "ddp_backend": "gloo",
              "train_data": [{"file": str(data / "de-en.txt"), "format": "bar", "src_lang": "de", "tgt_lang": "en",
                              "alignments": str(data / "de-en.pharaoh"), "max_pairs": 24}]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = ["timeout", "300", sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(RECIPES / "multi_gpu.yaml"), "--num_processes", "2", "--mixed_precision", "no",
           "-m", "amber_align", "align", "--config", str(tmp_path / "c.yaml")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=280, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    card = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    assert "2 × CPU" in card  # the card records both processes


def _task_run_two_ranks(tmp_path: Path, tasks: str) -> dict:
    out, work = tmp_path / "two.pt", tmp_path / "two"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = ["timeout", "300", sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(TASK_SCRIPT), str(out), str(work), tasks]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=280, env=env)  # a hang fails, not blocks
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.load(out)


def _one_process(tmp_path: Path, task: str, gradient_accumulation_steps: int = 1) -> dict:
    sys.path.insert(0, str(TASK_SCRIPT.parent))
    try:
        from task_ddp_step import finetune_one_step
    finally:
        sys.path.remove(str(TASK_SCRIPT.parent))
    return finetune_one_step(tmp_path / f"one-{task}-ga{gradient_accumulation_steps}", task,
                             gradient_accumulation_steps)


def _assert_same_step(one: dict, other: dict) -> None:
    assert other["loss"] == pytest.approx(one["loss"], rel=1e-5)
    assert one["updates"].keys() == other["updates"].keys()
    for name, update in one["updates"].items():
        assert torch.allclose(other["updates"][name], update, atol=1e-6, rtol=1e-4), name
    assert any(u.abs().max() > 1e-4 for u in one["updates"].values())  # the step did move the weights


@pytest.mark.distributed
def test_ner_finetune_two_ranks_equal_one_process_and_card_has_results(tmp_path):
    """NER on 2 gloo processes (8 sentences of 2 to 9 tokens: the ranks hold different numbers of labelled tokens)
    gives the logged loss and the SGD update of 1 process with all 8; the run then evaluates, saves and writes a card
    whose model-index has every language, and exits without hanging (the launch is under `timeout`)."""
    two = _task_run_two_ranks(tmp_path, "ner")["ner"]
    one = _one_process(tmp_path, "ner")
    assert two["world"] == 2 and one["world"] == 1
    _assert_same_step(one, two)
    assert {(lang, metric) for lang, metric, _ in two["card_results"]} == {
        (lang, m) for lang in ("en", "de") for m in ("f1", "precision", "recall")}
    for lang, metric, value in two["card_results"]:
        assert value == pytest.approx(two["metrics"][f"eval_ner_{lang}_{metric}"], abs=1e-4)


@pytest.mark.slow
@pytest.mark.distributed
def test_nli_finetune_two_ranks_and_accumulation_equal_one_batch(tmp_path):
    """NLI: 2 processes × 4 and 1 process with 2 accumulation steps × 4 both equal 1 process × 8 (before
    ``labels_mean_cross_entropy`` the 2-process gradient was 2.0× the 1-process one)."""
    two = _task_run_two_ranks(tmp_path, "nli")["nli"]
    one = _one_process(tmp_path, "nli")
    _assert_same_step(one, two)
    _assert_same_step(one, _one_process(tmp_path, "nli", gradient_accumulation_steps=2))

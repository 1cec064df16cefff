"""The multi-GPU code path on CPU: 2 gloo ranks give the loss, logged parts and gradient of 1 process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parent / "distributed" / "cao_ddp_step.py"
AMBER_SCRIPT = Path(__file__).resolve().parent / "distributed" / "amber_ddp_step.py"


def _run(world: int, tmp_path: Path, script: Path = SCRIPT, *extra: str) -> dict:
    out = tmp_path / f"w{world}{''.join(extra)}.pt"
    work = tmp_path / f"work{world}{''.join(extra)}"
    work.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = ["timeout", "300", sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           str(world), str(script), str(out), str(work), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.load(out)


@pytest.mark.distributed
def test_cao_two_ranks_equal_one_process(tmp_path):
    one, two = _run(1, tmp_path), _run(2, tmp_path)
    assert two["world"] == 2 and one["world"] == 1
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-5)
    for part in ("cao_link", "cao_anchor"):  # every logged part is the mean over processes of the global mean
        assert two["logged"][part] == pytest.approx(one["logged"][part], rel=1e-4, abs=1e-6)
    assert one["grads"].keys() == two["grads"].keys()
    for name, g in one["grads"].items():
        assert torch.allclose(two["grads"][name], g, atol=1e-6, rtol=1e-4), name


@pytest.mark.distributed
def test_sa_gathered_negatives_two_ranks_equal_one_process_with_the_whole_batch(tmp_path):
    one, two = _run(1, tmp_path, AMBER_SCRIPT, "sa"), _run(2, tmp_path, AMBER_SCRIPT, "sa")
    assert two["world"] == 2 and one["world"] == 1
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-5)
    assert two["logged"]["sa"] == pytest.approx(one["logged"]["sa"], rel=1e-5)
    # the logged part is the mean over processes of each process's value
    assert len(two["local_sa"]) == 2 and two["local_sa"][0] != pytest.approx(two["local_sa"][1])
    assert two["logged"]["sa"] == pytest.approx(sum(two["local_sa"]) / 2, rel=1e-5)
    assert one["grads"].keys() == two["grads"].keys()
    for name, g in one["grads"].items():
        assert torch.allclose(two["grads"][name], g, atol=1e-5, rtol=1e-5), name


@pytest.mark.distributed
def test_all_amber_parts_keep_ranks_in_sync(tmp_path):
    """Several forwards (SA/Cao, MLM, TLM, WA) and one backward: DDP still synchronises every gradient."""
    two = _run(2, tmp_path, AMBER_SCRIPT, "all")
    assert two["world"] == 2 and two["in_sync"] and two["moved"]
    parts = ("mlm", "tlm", "sa", "wa", "cao_link", "cao_anchor")
    assert len(two["logged"]) == 2 and all(p in h for h in two["logged"] for p in parts)


@pytest.mark.distributed
def test_continual_finetune_keeps_ranks_in_sync_and_logs_three_parts(tmp_path):
    """Continual learning on 2 ranks: task forward + pair forward through DDP, one backward, parameters in sync."""
    two = _run(2, tmp_path, Path(__file__).resolve().parent / "distributed" / "continual_ddp_step.py")
    assert two["world"] == 2 and two["in_sync"] and two["moved"]
    assert len(two["logged"]) == 2 and all(p in h for h in two["logged"] for p in ("task", "cao_link", "cao_anchor"))


@pytest.mark.distributed
def test_a_launch_without_use_cpu_on_a_machine_without_cuda_trains_as_one_synchronised_job(tmp_path):
    """Issue 25 item 3: torchrun/accelerate launch with 2 processes and a config without use_cpu (the README's
    command) on a machine without CUDA trained two unsynchronised runs and exited 0. The launch guard makes it
    the gloo job: its gradients equal one process's on the whole batch."""
    if torch.cuda.is_available():
        pytest.skip("the guard is for machines without CUDA")
    one, two = _run(1, tmp_path), _run(2, tmp_path, SCRIPT, "as_launched")
    assert two["world"] == 2 and two["backend"] == "gloo" and two["use_cpu"] is True
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-5)
    for name, g in one["grads"].items():
        assert torch.allclose(two["grads"][name], g, atol=1e-6, rtol=1e-4), name


def test_requested_cpu_processes_reads_the_accelerate_command_line(monkeypatch):
    from amber_align.launch_guard import requested_cpu_processes

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    launch = ["/venv/bin/python", "/venv/bin/accelerate", "launch", "--cpu"]
    assert requested_cpu_processes(launch + ["--num_processes", "2", "-m", "amber_align", "align"]) == 2
    assert requested_cpu_processes(launch + ["--num_processes=3", "train.py"]) == 3
    assert requested_cpu_processes(["python", "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2",
                                    "x.py"]) == 2
    assert requested_cpu_processes(launch + ["train.py"]) is None  # no --num_processes: one process asked for
    assert requested_cpu_processes(launch + ["--num_processes", "2", "--mpirun_hostfile", "h", "x.py"]) is None
    assert requested_cpu_processes(["bash", "run.sh", "--num_processes", "2"]) is None  # not accelerate's launcher
    monkeypatch.setenv("WORLD_SIZE", "2")  # a real multi-process launch: the other guards judge it
    assert requested_cpu_processes(launch + ["--num_processes", "2", "x.py"]) is None
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.delenv("ACCELERATE_USE_CPU")  # not started by accelerate's simple launcher
    assert requested_cpu_processes(launch + ["--num_processes", "2", "x.py"]) is None


@pytest.mark.distributed
def test_accelerate_cpu_launch_of_two_processes_that_starts_one_is_refused(tmp_path):
    """`accelerate launch --cpu --num_processes 2 -m amber_align align …` starts one process (accelerate's simple
    launcher), which trained alone on half the threads and exited 0 with a card saying "1 × CPU" (issue 25 item 3):
    now our process exits 2 with one line naming the launch forms that do start two processes, before any
    training."""
    import yaml
    from helpers import tiny_model_dir

    from amber_align.demo import demo_dir

    data = demo_dir() / "data"
    config = {"method": "cao", "model_name_or_path": str(tiny_model_dir("mbert", tmp_path / "tiny")),
              "output_dir": str(tmp_path / "out"), "pretokenized": True, "max_steps": 2, "report_to": [],
              "train_data": [{"file": str(data / "de-en.txt"), "format": "bar", "src_lang": "de", "tgt_lang": "en",
                              "alignments": str(data / "de-en.pharaoh"), "max_pairs": 8}]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2", "-m", "amber_align",
           "align", "--config", str(tmp_path / "c.yaml")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=280, env=env)
    # our process exits 2 with one line; accelerate's launcher then fails with its own CalledProcessError
    assert proc.returncode != 0 and "returned non-zero exit status 2" in proc.stderr
    assert "accelerate launch --cpu --num_processes 2 started one process, not 2" in proc.stderr
    frames = [line for line in proc.stderr.splitlines() if line.strip().startswith('File "')]
    assert not [f for f in frames if "/amber_align/" in f]  # no traceback of ours (accelerate's frames only)
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_launch_guard_refuses_a_gpu_backend_and_a_process_that_runs_alone(monkeypatch, tmp_path):
    from types import SimpleNamespace

    from amber_align.errors import ConfigError
    from amber_align.launch_guard import check_launch_is_one_job, guard_cpu_launch

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr("amber_align.launch_guard._has_accelerator", lambda: False)
    config = SimpleNamespace(use_cpu=False, ddp_backend="nccl")
    with pytest.raises(ConfigError, match=r"ddp_backend: 'nccl' needs GPUs, but this launch of 2 processes runs on "
                                          r"a machine without CUDA; use gloo"):
        guard_cpu_launch(config)
    config = SimpleNamespace(use_cpu=False, ddp_backend=None)
    guard_cpu_launch(config)
    assert config.use_cpu is True and config.ddp_backend == "gloo"
    with pytest.raises(ConfigError, match=r"launched as one of 2 \(WORLD_SIZE=2\) but runs alone"):
        check_launch_is_one_job(SimpleNamespace(num_processes=1))
    check_launch_is_one_job(SimpleNamespace(num_processes=2))
    monkeypatch.setenv("WORLD_SIZE", "1")
    check_launch_is_one_job(SimpleNamespace(num_processes=1))

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

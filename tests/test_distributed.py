"""The multi-GPU code path on CPU: 2 gloo ranks give the loss, logged parts and gradient of 1 process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parent / "distributed" / "cao_ddp_step.py"


def _run(world: int, tmp_path: Path) -> dict:
    out = tmp_path / f"w{world}.pt"
    work = tmp_path / f"work{world}"
    work.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(world),
           str(SCRIPT), str(out), str(work)]
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

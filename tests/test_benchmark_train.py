"""The training fast path and the CI smoke run of its benchmark (benchmarks/train_throughput.py).

The fast path's switches are config fields (``auto_bf16``, ``teacher_bf16``; fused AdamW and SDPA are the library
defaults, checked here): on a CPU everything stays fp32, so these tests check the resolution rules with the GPU
check patched, and a bf16 Cao step on the CPU (explicit ``bf16=True``) with the teacher held in bf16. The real
figures come from a GPU (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import tiny_model_dir
from test_cao_trainer import make_trainer

from amber_align.errors import ConfigError
from amber_align.modeling import load_encoder
from amber_align.trainers import AmberConfig, CaoConfig
from amber_align.trainers import alignment_config

REPO = Path(__file__).resolve().parents[1]


def _config(tmp_path, cls=CaoConfig, **kw):
    return cls(output_dir=str(tmp_path / "out"), report_to=[], **kw)


def test_cpu_defaults_stay_fp32_with_fused_adamw_and_sdpa(tmp_path):
    config = _config(tmp_path, use_cpu=True)
    assert config.auto_bf16 and config.teacher_bf16
    assert not config.bf16 and not config.fp16, "a CPU run must stay fp32 by default"
    assert str(getattr(config.optim, "value", config.optim)) == "adamw_torch_fused"
    model = load_encoder(str(tiny_model_dir("mbert", tmp_path / "tiny")))
    assert model.config._attn_implementation == "sdpa"


@pytest.fixture
def bf16_gpu(monkeypatch):
    """Pretend a CUDA GPU with bf16 support (both our check and transformers' own validation)."""
    import transformers.training_args as targs

    monkeypatch.setattr(alignment_config, "is_torch_bf16_gpu_available", lambda: True)
    monkeypatch.setattr(targs, "is_torch_bf16_gpu_available", lambda: True)
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    monkeypatch.delenv("ACCELERATE_USE_CPU", raising=False)


def test_auto_bf16_turns_bf16_on_for_a_bf16_gpu_only(tmp_path, bf16_gpu, monkeypatch):
    assert _config(tmp_path).bf16
    assert _config(tmp_path, cls=AmberConfig).bf16
    assert not _config(tmp_path, auto_bf16=False).bf16
    assert not _config(tmp_path, use_cpu=True).bf16
    explicit = _config(tmp_path, fp16=True)
    assert explicit.fp16 and not explicit.bf16, "an explicit precision wins"
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    assert not _config(tmp_path).bf16, "a precision chosen through accelerate wins"


def test_auto_bf16_stays_off_without_bf16_support(tmp_path, monkeypatch):
    monkeypatch.setattr(alignment_config, "is_torch_bf16_gpu_available", lambda: False)
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    assert not _config(tmp_path).bf16


@pytest.mark.parametrize("field", ["auto_bf16", "teacher_bf16"])
def test_fast_path_fields_reject_non_bools(tmp_path, field):
    with pytest.raises(ConfigError, match=rf"CaoConfig\.{field}: expected bool, got 'yes'"):
        _config(tmp_path, use_cpu=True, **{field: "yes"})


@pytest.mark.parametrize("teacher_bf16", [True, False])
def test_bf16_training_holds_the_teacher_in_bf16(tmp_path, teacher_bf16):
    trainer, _, _ = make_trainer(tmp_path, bf16=True, teacher_bf16=teacher_bf16, max_steps=2)
    expected = torch.bfloat16 if teacher_bf16 else torch.float32
    assert {p.dtype for p in trainer.teacher.parameters()} == {expected}
    assert {p.dtype for p in trainer.model.parameters()} == {torch.float32}, "trained weights stay fp32 (autocast)"
    trainer.train()
    steps = [h for h in trainer.state.log_history if "loss" in h]
    assert len(steps) == 2 and all(torch.isfinite(torch.tensor(h["cao_anchor"])) for h in steps)


def test_fp32_training_keeps_the_teacher_fp32(tmp_path):
    trainer, _, _ = make_trainer(tmp_path)
    assert {p.dtype for p in trainer.teacher.parameters()} == {torch.float32}


def test_train_benchmark_smoke_run():
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "train_throughput.py"), "--smoke",
                             "--no_record", "--methods", "cao,amber-all"],
                            capture_output=True, text=True, timeout=240, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "### Training throughput — tiny (smoke), batch 4 pairs" in out
    rows = {tuple(cell.strip() for cell in line.split("|")[1:3]): line.split("|")[1:-1]
            for line in out.splitlines() if line.startswith("| cao") or line.startswith("| amber")}
    assert set(rows) == {("cao", "fast"), ("cao", "reference"), ("amber-all", "fast"), ("amber-all", "reference")}
    for (method, config), cells in rows.items():
        pairs_s, tokens_s, pad = float(cells[5]), float(cells[6]), float(cells[7])
        assert pairs_s > 0 and tokens_s > 0
        assert cells[3].strip() == ("adamw_torch_fused" if config == "fast" else "adamw_torch")
        if config == "reference":
            assert float(cells[10]) == 1.0 and pad > 40, "reference batches are padded to 128"
        else:
            assert pad < 40, "fast batches are length-grouped and dynamically padded"


def test_train_benchmark_unknown_method_exits_2():
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "train_throughput.py"), "--smoke",
                             "--no_record", "--methods", "cao,amber-xyz"],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 2
    assert "--methods: unknown ['amber-xyz']" in result.stderr

"""Kill and resume: an alignment run killed after a checkpoint (SIGKILL, SIGTERM) and resumed with
``--resume_from_checkpoint`` ends with the weights of an uninterrupted run, batch for batch; a save that is
interrupted never leaves a folder that loads as a complete model or a checkpoint that looks complete.

Setting: a tiny BERT built from config on the real mBERT tokenizer (dropout on, so the RNG state must be restored
too), Cao alignment on 12 de-en + 8 fr-en demo pairs, 4 pairs per language per step (3 steps per epoch), 4 steps,
a checkpoint every 2 steps, CPU. The killed runs are subprocesses (tests/scripts/kill_resume_align.py); the
reference and the resumed runs run in this process through the CLI entry point.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from helpers import tiny_model_dir
from safetensors.torch import load_file
from transformers import AutoModel

from amber_align.cli import main
from amber_align.demo import demo_dir
from amber_align.errors import ConfigError, DataFormatError
from amber_align.modeling import load_encoder
from amber_align.pipeline import resolve_checkpoint

SCRIPT = Path(__file__).resolve().parent / "scripts" / "kill_resume_align.py"
_spec = importlib.util.spec_from_file_location("kill_resume_align", SCRIPT)
kra = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kra)

DATA = demo_dir() / "data"
MAX_STEPS, SAVE_STEPS = 4, 2


def _write_config(root: Path, model_dir: Path, out: Path, **extra) -> Path:
    values = {
        "method": "cao", "model_name_or_path": str(model_dir), "output_dir": str(out),
        "train_data": [{"file": str(DATA / "de-en.txt"), "format": "bar", "src_lang": "de", "tgt_lang": "en",
                        "alignments": str(DATA / "de-en.pharaoh"), "max_pairs": 12},
                       {"file": str(DATA / "fr-en.txt"), "format": "bar", "src_lang": "fr", "tgt_lang": "en",
                        "alignments": str(DATA / "fr-en.pharaoh"), "max_pairs": 8}],
        "pretokenized": True, "max_steps": MAX_STEPS, "per_device_train_batch_size": 4, "use_cpu": True,
        "report_to": [], "save_strategy": "steps", "save_steps": SAVE_STEPS, "logging_steps": 1, "seed": 7,
        "learning_rate": 1e-3, "warmup_steps": 0, **extra,
    }
    path = root / f"config-{out.name}.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def max_abs_dw(a: Path, b: Path) -> float:
    """Largest absolute weight difference between the models saved in ``a`` and ``b`` (same tensor names)."""
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    return max((wa[k].float() - wb[k].float()).abs().max().item() for k in wa)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run: its folder, its config and the batch of every step."""
    root = tmp_path_factory.mktemp("kill_resume")
    model_dir = tiny_model_dir("mbert", root / "tiny")
    out = root / "reference"
    events = root / "reference.jsonl"
    with kra.record_batches(events):
        assert main(["align", "--config", str(_write_config(root, model_dir, out))]) == 0
    batches = [e for e in kra.read_events(events) if "batch" in e]
    assert [e["step"] for e in batches] == list(range(MAX_STEPS))
    assert len({e["batch"] for e in batches}) == MAX_STEPS
    return {"root": root, "model_dir": model_dir, "out": out, "batches": batches}


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            "PYTHONPATH": os.pathsep.join([str(SCRIPT.parents[2]), os.environ.get("PYTHONPATH", "")])}


def _start(events: Path, config: Path, *hooks: str) -> subprocess.Popen:
    cmd = [sys.executable, str(SCRIPT), str(events), *hooks, "--", "align", "--config", str(config)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())


def _wait_for_checkpoint(proc: subprocess.Popen, events: Path, step: int, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(e.get("saved") == step for e in kra.read_events(events)):
            return
        if proc.poll() is not None:
            pytest.fail(f"the run ended ({proc.returncode}) before checkpoint-{step}: {proc.stderr.read()[-3000:]}")
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"no checkpoint-{step} within {timeout} s")


def _resume_and_compare(reference: dict, config: Path, out: Path, events: Path, *, from_step: int) -> float:
    """Resume ``out`` with ``--resume_from_checkpoint true`` in this process; check data order and weights.

    ``events`` holds the batches of the interrupted run; the resumed run's go to ``events.resumed``.
    """
    resumed_events = Path(f"{events}.resumed")
    with kra.record_batches(resumed_events):
        assert main(["align", "--config", str(config), "--resume_from_checkpoint", "true"]) == 0
    before = [e for e in kra.read_events(events) if "batch" in e]
    resumed = [e for e in kra.read_events(resumed_events) if "batch" in e]
    assert [e["step"] for e in resumed] == list(range(from_step, MAX_STEPS)), "resumed at the wrong step"
    # the batches before the checkpoint, then the resumed ones, are exactly the uninterrupted run's batches
    assert [e for e in before if e["step"] < from_step] + resumed == reference["batches"]
    dw = max_abs_dw(out, reference["out"])
    print(f"max |dw| resumed vs uninterrupted: {dw:.3g}")
    return dw


def _kill_after_checkpoint_and_resume(reference: dict, sig: signal.Signals, name: str) -> float:
    root = reference["root"]
    out = root / name
    config = _write_config(root, reference["model_dir"], out)
    events = root / f"{name}.jsonl"
    proc = _start(events, config, "--pause_after_checkpoint", str(SAVE_STEPS))
    try:
        _wait_for_checkpoint(proc, events, SAVE_STEPS)
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -sig, f"expected death by {sig.name}, got exit status {proc.returncode}"
    assert not (out / "config.json").exists(), "a killed run must not leave a final model"
    assert resolve_checkpoint(True, out) == str(out / f"checkpoint-{SAVE_STEPS}")
    return _resume_and_compare(reference, config, out, events, from_step=SAVE_STEPS)


def test_sigkill_after_a_checkpoint_then_resume_gives_the_uninterrupted_weights(reference, record_property):
    dw = _kill_after_checkpoint_and_resume(reference, signal.SIGKILL, "sigkill")
    record_property("max_abs_dw", dw)
    assert dw == 0.0


@pytest.mark.slow
def test_sigterm_after_a_checkpoint_then_resume_gives_the_uninterrupted_weights(reference, record_property):
    dw = _kill_after_checkpoint_and_resume(reference, signal.SIGTERM, "sigterm")
    record_property("max_abs_dw", dw)
    assert dw == 0.0


class _Killed(BaseException):
    """Stands for a kill in the middle of a save (in-process: faster than a subprocess, same files left)."""


def test_checkpoint_interrupted_mid_save_is_never_picked_up(reference, monkeypatch):
    import transformers

    root = reference["root"]
    out = root / "mid-checkpoint"
    config = _write_config(root, reference["model_dir"], out)
    original = transformers.Trainer._save_rng_state

    def die_at_last_save(self, output_dir):
        if self.state.global_step == MAX_STEPS:
            raise _Killed
        return original(self, output_dir)

    monkeypatch.setattr(transformers.Trainer, "_save_rng_state", die_at_last_save)
    events = root / "mid-checkpoint.jsonl"
    with pytest.raises(_Killed), kra.record_batches(events):
        main(["align", "--config", str(config)])
    monkeypatch.undo()
    # the half-written checkpoint sits in the staging folder, which neither the Trainer nor we take for one
    assert not (out / f"checkpoint-{MAX_STEPS}").exists()
    assert (out / ".incomplete-checkpoints" / f"checkpoint-{MAX_STEPS}" / "model.safetensors").exists()
    assert sorted(p.name for p in out.glob("checkpoint-*")) == [f"checkpoint-{SAVE_STEPS}"]
    assert not (out / "config.json").exists()
    with pytest.raises(ConfigError, match="incomplete checkpoint: no trainer_state.json"):
        resolve_checkpoint(str(out / ".incomplete-checkpoints" / f"checkpoint-{MAX_STEPS}"), out)
    assert _resume_and_compare(reference, config, out, events, from_step=SAVE_STEPS) == 0.0
    assert not (out / ".incomplete-checkpoints").exists(), "the leftover of the killed save is cleaned up"


def test_final_save_interrupted_mid_move_does_not_load_as_a_model(reference, monkeypatch):
    import amber_align.io_utils as io_utils

    root = reference["root"]
    out = root / "mid-final"
    config = _write_config(root, reference["model_dir"], out)
    real_replace = os.replace
    moved = []

    def replace_then_die(src, dst, *args, **kwargs):
        if Path(src).parent.name == ".incomplete-model" != Path(dst).parent.name:  # into output_dir
            if "model.safetensors" in moved:  # the weights are in place, config.json is not
                raise _Killed
            moved.append(Path(src).name)
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(io_utils.os, "replace", replace_then_die)
    events = root / "mid-final.jsonl"
    with pytest.raises(_Killed), kra.record_batches(events):
        main(["align", "--config", str(config)])
    monkeypatch.undo()
    assert (out / "model.safetensors").exists() and not (out / "config.json").exists()
    with pytest.raises((OSError, ValueError)):  # transformers: no config.json / no model_type
        AutoModel.from_pretrained(out)
    with pytest.raises(DataFormatError, match="config.json is missing"):
        load_encoder(str(out))
    # the last checkpoint is complete: resuming from it trains no further step and writes the final model
    assert _resume_and_compare(reference, config, out, events, from_step=MAX_STEPS) == 0.0
    AutoModel.from_pretrained(out)


@pytest.mark.slow
def test_sigkill_during_a_checkpoint_save_then_resume(reference):
    """A real SIGKILL while checkpoint-4 is written (weights and optimizer on disk, RNG and state not yet)."""
    root = reference["root"]
    out = root / "sigkill-mid-save"
    config = _write_config(root, reference["model_dir"], out)
    events = root / "sigkill-mid-save.jsonl"
    proc = _start(events, config, "--die_during_checkpoint", str(MAX_STEPS))
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, stderr[-3000:]
    assert sorted(p.name for p in out.glob("checkpoint-*")) == [f"checkpoint-{SAVE_STEPS}"]
    assert not (out / "config.json").exists()
    assert _resume_and_compare(reference, config, out, events, from_step=SAVE_STEPS) == 0.0


@pytest.mark.slow
def test_sigkill_during_the_final_save_then_resume(reference):
    root = reference["root"]
    out = root / "sigkill-final"
    config = _write_config(root, reference["model_dir"], out)
    events = root / "sigkill-final.jsonl"
    proc = _start(events, config, "--die_during_final_save")
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, stderr[-3000:]
    assert (out / f"checkpoint-{MAX_STEPS}" / "trainer_state.json").exists()
    assert not (out / "config.json").exists()
    with pytest.raises(DataFormatError, match="config.json is missing"):
        load_encoder(str(out))
    assert _resume_and_compare(reference, config, out, events, from_step=MAX_STEPS) == 0.0


@pytest.mark.slow
def test_sigterm_with_jit_checkpoint_stops_without_a_final_model(reference):
    """transformers' ``enable_jit_checkpoint``: SIGTERM → a checkpoint at the next step, training stops. The run
    must then exit 2 naming the checkpoint, write no final model, and resume to the uninterrupted weights."""
    root = reference["root"]
    out = root / "jit"
    config = _write_config(root, reference["model_dir"], out, enable_jit_checkpoint=True)
    events = root / "jit.jsonl"
    proc = _start(events, config, "--pause_after_checkpoint", str(SAVE_STEPS))
    try:
        _wait_for_checkpoint(proc, events, SAVE_STEPS)
        proc.send_signal(signal.SIGTERM)
        time.sleep(4)  # transformers waits 3 s before it asks for the checkpoint
        Path(f"{events}.go").write_text("go")
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 2, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    # the JIT checkpoint is taken at the next step boundary; the Trainer may finish that step before it stops
    match = re.match(r"error: training stopped at step (\d) of 4 .*--resume_from_checkpoint (\S+)$", last)
    assert match and match.group(2) == str(out / f"checkpoint-{SAVE_STEPS}"), last
    assert not (out / "config.json").exists()
    assert _resume_and_compare(reference, config, out, events, from_step=SAVE_STEPS) == 0.0


def test_resume_from_checkpoint_errors_name_the_folder(tmp_path):
    with pytest.raises(ConfigError, match="no complete checkpoint-N folder"):
        resolve_checkpoint(True, tmp_path)
    (tmp_path / "checkpoint-3").mkdir()
    (tmp_path / "checkpoint-3" / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"checkpoint-3'? is an incomplete checkpoint: no trainer_state.json"):
        resolve_checkpoint(str(tmp_path / "checkpoint-3"), tmp_path)
    with pytest.raises(ConfigError, match="is not a folder"):
        resolve_checkpoint(str(tmp_path / "nope"), tmp_path)
    assert resolve_checkpoint(None, tmp_path) is None and resolve_checkpoint(False, tmp_path) is None


def test_resume_past_a_smaller_max_steps_is_one_error_not_a_loop(reference, tmp_path, capsys):
    """checkpoint-2 of a 4-step run resumed with max_steps 1 names both and what to give instead (it used to
    'finish', then fail suggesting the same resume); checkpoint-4 with max_steps 4 writes the final model, saying
    which checkpoint it resumes."""
    out = tmp_path / "run"
    shutil.copytree(reference["out"], out)
    (out / "config.json").unlink()
    config = _write_config(tmp_path, reference["model_dir"], out, max_steps=1)
    assert main(["align", "--config", str(config), "--resume_from_checkpoint", str(out / "checkpoint-2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"error: resume_from_checkpoint: {out / 'checkpoint-2'} is at step 2 of a 4-step run, but "
                       "max_steps is 1: give max_steps >= 3 to train on (e.g. 4, the run's own), or a fresh "
                       "output_dir to start over")
    config = _write_config(tmp_path, reference["model_dir"], out)
    assert main(["align", "--config", str(config), "--resume_from_checkpoint", "true"]) == 0
    assert (out / "config.json").is_file() and max_abs_dw(out, reference["out"]) == 0.0


def _log_parts(out: Path) -> dict[int, dict[str, float]]:
    import json

    state = json.loads((out / "trainer_state.json").read_text()) if (out / "trainer_state.json").exists() else \
        json.loads(max(out.glob("checkpoint-*/trainer_state.json"), key=lambda p: p.stat().st_mtime).read_text())
    return {e["step"]: {k: v for k, v in e.items() if k.startswith("cao_")} for e in state["log_history"]
            if any(k.startswith("cao_") for k in e)}


def test_resume_matrix_larger_same_and_finished(tmp_path):
    """Issue 23's resume matrix, the cases the tests above leave out: a finished 4-step run resumed with the same
    max_steps, and a 4-step run resumed with a larger one (from its last checkpoint, and from the finished folder).
    Each ends with the weights of an uninterrupted 6-step run (constant learning rate, so the schedule does not
    depend on max_steps) or unchanged, never loops, and the logged loss parts equal the uninterrupted run's."""
    model_dir = tiny_model_dir("mbert", tmp_path / "tiny")
    constant = {"lr_scheduler_type": "constant"}
    six = tmp_path / "six"
    assert main(["align", "--config", str(_write_config(tmp_path, model_dir, six, max_steps=6, **constant))]) == 0
    four = tmp_path / "four"
    assert main(["align", "--config", str(_write_config(tmp_path, model_dir, four, **constant))]) == 0
    # a finished run resumed with its own max_steps: the final model is rewritten unchanged, no training, no loop
    finished = tmp_path / "finished"
    shutil.copytree(four, finished)
    before = _weights(finished)
    config = _write_config(tmp_path, model_dir, finished, **constant)
    assert main(["align", "--config", str(config), "--resume_from_checkpoint", "true"]) == 0
    assert all(torch.equal(before[k], w) for k, w in _weights(finished).items())
    # larger max_steps, from the last checkpoint of an interrupted folder and from the finished folder itself
    for name, drop_final in (("from-checkpoint", True), ("from-finished", False)):
        out = tmp_path / name
        shutil.copytree(four, out)
        if drop_final:
            for item in out.iterdir():
                if not item.name.startswith("checkpoint-") and item.name != ".amber-align-run.json":
                    item.unlink() if item.is_file() else shutil.rmtree(item)
        config = _write_config(tmp_path, model_dir, out, max_steps=6, **constant)
        assert main(["align", "--config", str(config), "--resume_from_checkpoint", "true"]) == 0, name
        assert max_abs_dw(out, six) == 0.0, name
        assert _log_parts(out) == _log_parts(six), name


def test_multi_node_resume_without_the_checkpoint_on_this_machine_says_why(tmp_path, monkeypatch):
    """Issue 25 item 4: on the second machine of a 2-node launch without a shared disk, resume failed with 'no
    complete checkpoint-N folder' and no reason: checkpoints are written by the first machine only."""
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("GROUP_RANK", "1")
    with pytest.raises(ConfigError, match=r"no complete checkpoint-N folder in .*; this is machine 1 of 2: "
                                          r"checkpoints are written by the first machine only, so a multi-node "
                                          r"resume needs output_dir on a disk every machine shares"):
        resolve_checkpoint(True, tmp_path)
    monkeypatch.setenv("GROUP_RANK", "0")
    with pytest.raises(ConfigError) as info:
        resolve_checkpoint(True, tmp_path)
    assert "machine" not in str(info.value)

"""Numerics guard: a NaN/Inf loss part (or gradient) stops the run with a message naming the step and the part,
after saving the last good state as a checkpoint; the bad step never reaches the weights. Cao, AMBER and the
continual trainer share it (``amber_align.trainers.common.LossPartsLogging``); bf16 runs are guarded the same way.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import datasets
import pytest
import torch
import yaml
from helpers import tiny_model_dir
from safetensors.torch import load_file
from test_amber_trainer import make as make_amber
from test_cao_trainer import make_trainer as make_cao

from amber_align.cli import main
from amber_align.demo import demo_dir
from amber_align.errors import AmberAlignError, NonFiniteLossError

DATA = demo_dir() / "data"


def _poison(trainer, part: str, at_step: int, value: float = math.nan) -> None:
    """From global step ``at_step`` on (0-based, i.e. the step numbered ``at_step + 1``), ``part`` becomes ``value``."""
    original = trainer.compute_loss_parts

    def compute_loss_parts(model, inputs, counts):
        parts = original(model, inputs, counts)
        if model.training and trainer.state.global_step >= at_step:
            parts[part] = parts[part] * value
        return parts

    trainer.compute_loss_parts = compute_loss_parts


def _trained_weights(trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def _assert_checkpoint_holds(folder: Path, weights: dict[str, torch.Tensor], step: int) -> None:
    assert json.loads((folder / "trainer_state.json").read_text())["global_step"] == step
    saved = load_file(str(folder / "model.safetensors"))
    for name, value in saved.items():
        assert torch.equal(value, weights[name]), name
        assert torch.isfinite(value).all(), name


def test_cao_stops_naming_step_and_part_after_saving_the_last_good_state(tmp_path):
    part, value = "cao_link", math.nan
    trainer, _, _ = make_cao(tmp_path, max_steps=4)
    _poison(trainer, part, at_step=2, value=value)
    with pytest.raises(NonFiniteLossError) as info:
        trainer.train()
    err = info.value
    message = str(err)
    assert "non-finite loss at step 3 (of 4)" in message and f"{part} = {value}" in message
    other = {"cao_link", "cao_anchor"} - {part}
    assert f"other parts: {other.pop()} = " in message
    assert err.step == 3 and list(err.parts) == [part]
    folder = tmp_path / "out" / "checkpoint-2"
    assert err.checkpoint == str(folder) and f"--resume_from_checkpoint {folder}" in message
    # the error came before the backward pass: the model still holds the state after step 2, as saved
    assert trainer.state.global_step == 2
    _assert_checkpoint_holds(folder, _trained_weights(trainer), step=2)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["checkpoint-2"]


def test_non_finite_gradient_with_finite_loss_stops_before_the_optimizer_step(tmp_path):
    trainer, _, _ = make_cao(tmp_path, max_steps=3)
    original = trainer.compute_loss_parts

    def compute_loss_parts(model, inputs, counts):  # a finite value whose gradient is infinite
        parts = original(model, inputs, counts)
        if model.training and trainer.state.global_step == 1:
            parts["cao_link"] = parts["cao_link"] + (parts["cao_link"] - parts["cao_link"].detach()).abs().sqrt()
        return parts

    trainer.compute_loss_parts = compute_loss_parts
    with pytest.raises(NonFiniteLossError, match=r"non-finite gradient at step 2 .*gradient norm = (nan|inf) after "
                                                 r"finite loss parts \(cao_anchor = .*cao_link = "):
        trainer.train()
    _assert_checkpoint_holds(tmp_path / "out" / "checkpoint-1", _trained_weights(trainer), step=1)


def test_bf16_run_is_guarded_too_and_a_nan_at_the_first_step_saves_nothing(tmp_path):
    trainer, _, _ = make_cao(tmp_path, max_steps=2, bf16=True)
    _poison(trainer, "cao_anchor", at_step=0)
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at step 1 .*cao_anchor = nan.*No step had "
                                                 r"completed, so no checkpoint was saved") as info:
        trainer.train()
    assert trainer.accelerator.mixed_precision == "bf16"
    assert info.value.checkpoint is None
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("checkpoint-*"))


def test_amber_part_is_named(tmp_path):
    trainer, _, _ = make_amber(tmp_path, weights={"sa": 1.0, "cao": 1.0}, max_steps=3)
    _poison(trainer, "sa", at_step=1, value=math.inf)
    with pytest.raises(NonFiniteLossError, match=r"step 2 .*loss part\(s\) sa = inf .*other parts: cao_anchor"):
        trainer.train()
    assert (tmp_path / "out" / "checkpoint-1" / "trainer_state.json").is_file()


def test_continual_trainer_names_the_task_part(tmp_path):
    import datasets
    from test_continual import NLI, NO_DROPOUT, _task_config
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding

    from amber_align.modeling import load_encoder, load_tokenizer
    from amber_align.tasks.preprocess import tokenize_nli
    from amber_align.tasks.runner import continual_pairs
    from amber_align.trainers.continual import ContinualTaskTrainer

    model_dir = tiny_model_dir("mbert", tmp_path / "tiny", **NO_DROPOUT)
    tok = load_tokenizer(str(model_dir))
    config = _task_config(tmp_path, model_dir, max_steps=3, logging_steps=1, learning_rate=1e-3,
                          per_device_train_batch_size=2, save_strategy="no")
    feats = tokenize_nli(datasets.Dataset.from_dict(NLI), tok, {"entailment": 0, "neutral": 1, "contradiction": 2},
                         max_length=32)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=3)
    trainer = ContinualTaskTrainer(model=model, args=config, train_dataset=feats, processing_class=tok,
                                   data_collator=DataCollatorWithPadding(tok),
                                   alignment_pairs=continual_pairs(config, tok), teacher=load_encoder(str(model_dir)),
                                   pair_batch_size=4)

    def nan_task_loss(module, args, output):  # the task forward (with labels) of step 2 returns a NaN loss
        if module.training and trainer.state.global_step == 1 and output.loss is not None:
            output.loss = output.loss * math.nan
        return output

    model.register_forward_hook(nan_task_loss)
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at step 2 \(of 3\): loss part\(s\) task = nan "
                                                 r"\(other parts: cao_anchor = "):
        trainer.train()
    assert (tmp_path / "o" / "checkpoint-1" / "trainer_state.json").is_file()


def test_cli_align_exits_2_with_one_error_line_and_no_final_model(tmp_path, capsys):
    """No injection: lr 1e25 turns the weights into ~1e25 after one Adam step; the next step's MSE overflows."""
    model_dir = tiny_model_dir("mbert", tmp_path / "tiny")
    config = {"method": "cao", "model_name_or_path": str(model_dir), "output_dir": str(tmp_path / "out"),
              "train_data": [{"file": str(DATA / "de-en.txt"), "format": "bar", "src_lang": "de", "tgt_lang": "en",
                              "alignments": str(DATA / "de-en.pharaoh"), "max_pairs": 16}],
              "pretokenized": True, "max_steps": 4, "per_device_train_batch_size": 4, "use_cpu": True,
              "report_to": [], "save_strategy": "no", "learning_rate": 1e25, "warmup_steps": 0}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    assert main(["align", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: non-finite loss at step 2 (of 4): loss part(s) cao_")
    assert not (tmp_path / "out" / "config.json").exists()
    assert (tmp_path / "out" / "checkpoint-1" / "trainer_state.json").is_file()


def test_error_type_is_the_package_s_and_a_floating_point_error():
    assert issubclass(NonFiniteLossError, AmberAlignError) and issubclass(NonFiniteLossError, FloatingPointError)


@pytest.mark.distributed
@pytest.mark.slow
def test_two_processes_stop_together_when_one_has_a_nan(tmp_path):
    """2 gloo ranks, NaN on rank 1 only: both stop at step 3 naming process 1; checkpoint-2 holds both ranks'
    RNG states (written together, renamed once)."""
    import os
    import subprocess
    import sys

    script = Path(__file__).resolve().parent / "distributed" / "nan_guard_ddp.py"
    out = tmp_path / "result"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = ["timeout", "300", sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(script), str(out), str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=320, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(Path(f"{out}.rank{r}.json").read_text()) for r in (0, 1)]
    checkpoint = tmp_path / "out" / "checkpoint-2"
    for record in records:
        assert record["world"] == 2 and record["step"] == 3 and record["checkpoint"] == str(checkpoint)
        assert "cao_link = nan on process 1" in record["error"]
    assert {p.name for p in checkpoint.glob("rng_state_*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}
    assert json.loads((checkpoint / "trainer_state.json").read_text())["global_step"] == 2
    assert not (tmp_path / "out" / ".incomplete-checkpoints").exists()


def _task_trainer(tmp_path, **extra):
    """The finetune task trainer on a tiny NLI head (4 examples, batch 2), checkpointing every step."""
    from test_continual import NLI, NO_DROPOUT
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding

    from amber_align.modeling import load_tokenizer
    from amber_align.tasks.config import TaskConfig
    from amber_align.tasks.preprocess import tokenize_nli
    from amber_align.tasks.runner import TaskTrainer, labels_mean_cross_entropy

    model_dir = tiny_model_dir("mbert", tmp_path / "tiny", **NO_DROPOUT)
    tok = load_tokenizer(str(model_dir))
    config = TaskConfig(task="nli", model_name_or_path=str(model_dir), output_dir=str(tmp_path / "o"), max_steps=3,
                        logging_steps=1, learning_rate=1e-3, per_device_train_batch_size=2, save_steps=1,
                        use_cpu=True, report_to=[], seed=0, **extra)
    feats = tokenize_nli(datasets.Dataset.from_dict(NLI), tok, {"entailment": 0, "neutral": 1, "contradiction": 2},
                         max_length=32)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=3)
    return TaskTrainer(model=model, args=config, train_dataset=feats, processing_class=tok,
                       data_collator=DataCollatorWithPadding(tok), compute_loss_func=labels_mean_cross_entropy)


def test_the_task_trainer_stops_on_a_nan_with_the_last_good_checkpoint(tmp_path):
    trainer = _task_trainer(tmp_path, save_strategy="no")

    def nan_logits(module, args, output):  # step 2's forward returns NaN logits, hence a NaN loss
        if module.training and trainer.state.global_step == 1:
            output.logits = output.logits * math.nan
        return output

    trainer.model.register_forward_hook(nan_logits)
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at step 2 \(of 3\): loss part\(s\) task = nan"):
        trainer.train()
    assert (tmp_path / "o" / "checkpoint-1" / "trainer_state.json").is_file()
    assert not (tmp_path / "o" / "checkpoint-2").exists()


def test_the_task_trainer_writes_checkpoints_atomically_and_resumes(tmp_path, monkeypatch):
    """A save that dies half-way (after the weights, before the RNG state) leaves no checkpoint-2; resuming picks
    checkpoint-1, finishes, and the leftover staging folder is gone."""
    from amber_align.tasks.runner import TaskTrainer

    trainer = _task_trainer(tmp_path)
    real = TaskTrainer._save_rng_state

    def dying(self, output_dir):
        if self.state.global_step == 2:
            raise KeyboardInterrupt("killed during the save of checkpoint-2")
        return real(self, output_dir)

    monkeypatch.setattr(TaskTrainer, "_save_rng_state", dying)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    out = tmp_path / "o"
    assert (out / "checkpoint-1" / "trainer_state.json").is_file() and not (out / "checkpoint-2").exists()
    assert (out / ".incomplete-checkpoints" / "checkpoint-2" / "model.safetensors").is_file()
    monkeypatch.setattr(TaskTrainer, "_save_rng_state", real)
    resumed = _task_trainer(tmp_path)
    resumed.train(resume_from_checkpoint=str(out / "checkpoint-1"))
    assert resumed.state.global_step == 3 and (out / "checkpoint-3" / "trainer_state.json").is_file()
    assert not (out / ".incomplete-checkpoints").exists()

"""Continual learning (Efimov et al.): task loss + 0.01 · aligned-word MSE + 1.0 · anchor MSE on drawn pairs."""

from __future__ import annotations

import datasets
import pytest
import torch
from helpers import tiny_model_dir
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, TrainingArguments

from amber_align.config_io import build_config
from amber_align.demo import demo_dir
from amber_align.errors import ConfigError
from amber_align.modeling import load_encoder, load_tokenizer
from amber_align.tasks.config import TaskConfig
from amber_align.tasks.preprocess import tokenize_nli
from amber_align.tasks.runner import continual_pairs, run_finetune
from amber_align.trainers.continual import CONTINUAL_PARTS, ContinualTaskTrainer

DATA = demo_dir() / "data"
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
PAIRS = [{"file": str(DATA / "es-en.txt"), "format": "bar", "src_lang": "es", "tgt_lang": "en",
          "alignments": str(DATA / "es-en.pharaoh"), "max_pairs": 40}]
NLI = {"premise": ["A man sleeps.", "A dog barks.", "A man runs.", "Kids play."],
       "hypothesis": ["Someone rests.", "The dog is loud.", "A man sits.", "Children are outside."],
       "label": ["entailment", "neutral", "contradiction", "entailment"], "lang": ["en"] * 4}


def _task_config(tmp_path, model_dir, **extra) -> TaskConfig:
    return build_config({"task": "nli", "model_name_or_path": str(model_dir), "output_dir": str(tmp_path / "o"),
                         "continual_alignment": True, "continual_data": PAIRS,
                         "continual_options": {"pretokenized": True}, "continual_pool_size": 30,
                         "continual_batch_size": 4, "use_cpu": True, "report_to": [], "seed": 0, **extra},
                        source="test", config_class=TaskConfig)


@pytest.fixture
def setup(tmp_path):
    model_dir = tiny_model_dir("mbert", tmp_path / "tiny", **NO_DROPOUT)
    tok = load_tokenizer(str(model_dir))
    config = _task_config(tmp_path, model_dir)
    pool = continual_pairs(config, tok)
    feats = tokenize_nli(datasets.Dataset.from_dict(NLI), tok, {"entailment": 0, "neutral": 1, "contradiction": 2},
                         max_length=32)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=3)
    teacher = load_encoder(str(model_dir))
    args = TrainingArguments(output_dir=str(tmp_path / "t"), max_steps=3, logging_steps=1, learning_rate=1e-3,
                             per_device_train_batch_size=2, use_cpu=True, report_to=[], save_strategy="no", seed=0)
    trainer = ContinualTaskTrainer(model=model, args=args, train_dataset=feats, processing_class=tok,
                                   data_collator=DataCollatorWithPadding(tok), alignment_pairs=pool, teacher=teacher,
                                   pair_batch_size=4)
    return trainer, teacher, feats, pool


def test_pool_is_capped_and_drawn_with_replacement_reproducibly(setup):
    trainer, _, _, pool = setup
    assert len(pool) == 30
    trainer._draw_step = -1
    a = trainer.draw_pairs()
    trainer._draw_step = -1
    b = trainer.draw_pairs()
    c = trainer.draw_pairs()  # the next micro-step draws other pairs
    assert torch.equal(a["input_ids"], b["input_ids"]) and not torch.equal(a["input_ids"], c["input_ids"])


def test_three_parts_logged_teacher_frozen_encoder_moves(setup):
    trainer, teacher, _, _ = setup
    t0 = {k: v.clone() for k, v in teacher.state_dict().items()}
    m0 = {k: v.clone() for k, v in trainer.model.bert.state_dict().items()}
    trainer.train()
    steps = [h for h in trainer.state.log_history if "loss" in h]
    assert len(steps) == 3 and all(set(CONTINUAL_PARTS) <= set(h) for h in steps)
    for h in steps:  # the logged loss is the sum of its parts
        assert h["loss"] == pytest.approx(sum(h[p] for p in CONTINUAL_PARTS), rel=1e-3, abs=1e-4)
    assert all(torch.equal(t0[k], v) for k, v in teacher.state_dict().items())
    moved = [k for k, v in trainer.model.bert.state_dict().items() if not torch.equal(m0[k], v)]
    assert any("encoder.layer" in k for k in moved)
    assert all(p.grad is None or not p.requires_grad for p in teacher.parameters())


def _mean_vec(hidden: torch.Tensor, row: int, start: int, end: int) -> torch.Tensor:
    return hidden[row, start:end].mean(0)


def test_loss_equals_hand_computation(setup):
    """task + 0.01 · mean over links ||f(s)_i − f(t)_j||²/H + 1.0 · mean over tokens ||f(t) − f0(t)||²/H."""
    trainer, teacher, feats, pool = setup
    model = trainer.model.train()
    batch = DataCollatorWithPadding(trainer.processing_class)([feats[i] for i in range(2)])
    trainer._draw_step = -1
    loss = trainer.compute_loss(model, dict(batch))
    trainer._draw_step = -1
    pairs = trainer.draw_pairs()
    with torch.no_grad():
        task = model(**batch).loss
        ids, mask = pairs["input_ids"], pairs["attention_mask"]
        hidden = model.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        frozen = teacher(input_ids=ids[4:], attention_mask=mask[4:]).last_hidden_state
        h = hidden.shape[-1]
        # rebuild the drawn rows from the pool and walk their link spans by hand
        g = torch.Generator().manual_seed(hash((0, 0, 0, 0)) % (2**63))
        rows = torch.randint(len(pool), (4,), generator=g).tolist()
        sq, n = 0.0, 0
        for r, idx in enumerate(rows):
            xs, ys = pool[idx]["x_link_spans"], pool[idx]["y_link_spans"]
            for k in range(0, len(xs), 2):
                d = _mean_vec(hidden, r, xs[k], xs[k + 1]) - _mean_vec(hidden, 4 + r, ys[k], ys[k + 1])
                sq += float(d.pow(2).sum())
                n += 1
        link = sq / (n * h)
        m = mask[4:].bool()
        anchor = float((hidden[4:][m] - frozen[m]).pow(2).sum()) / (int(m.sum()) * h)
    assert float(loss.detach()) == pytest.approx(float(task) + 0.01 * link + 1.0 * anchor, rel=1e-5)


def test_finetune_with_continual_alignment_end_to_end(tmp_path):
    model_dir = tiny_model_dir("mbert", tmp_path / "tiny")
    (tmp_path / "dev-en.tsv").write_text("".join(f"{p}\t{h}\t{lab}\n" for p, h, lab in
                                                 zip(NLI["premise"], NLI["hypothesis"], NLI["label"])), "utf-8")
    config = _task_config(tmp_path, model_dir, train_data=str(tmp_path / "dev-en.tsv"),
                          eval_data={"en": str(tmp_path / "dev-en.tsv")}, max_steps=2, logging_steps=1,
                          per_device_train_batch_size=2, save_strategy="no")
    report = run_finetune(config)
    assert "eval_nli_en_accuracy" in report["metrics"]
    logged = [h for h in report["log_history"] if "loss" in h]
    assert len(logged) == 2 and all(set(CONTINUAL_PARTS) <= set(h) for h in logged)


def test_continual_without_data_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="continual_data: continual_alignment needs parallel sources"):
        TaskConfig(task="nli", output_dir=str(tmp_path), continual_alignment=True, report_to=[])
    with pytest.raises(ConfigError, match="TaskConfig.link_weight: expected a value >= 0, got -1"):
        TaskConfig(task="nli", output_dir=str(tmp_path), link_weight=-1.0, report_to=[])

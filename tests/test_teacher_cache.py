"""Teacher-output cache for the Cao anchor (``CaoConfig.teacher_cache``): same loss as the live teacher, reused
without a teacher forward, keyed by data and model, never used stale or half-written."""

from __future__ import annotations

import json

import pytest
import torch
from test_cao_trainer import make_trainer

from amber_align.data.teacher_cache import TeacherCache, build_or_load_teacher_cache, teacher_fingerprint
from amber_align.errors import ConfigError
from amber_align.trainers import CaoConfig


def _count_forwards(module: torch.nn.Module) -> list[int]:
    calls = [0]
    module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.mark.parametrize("anchor", ["frozen", "current"])
def test_cached_loss_equals_live_teacher_loss_over_two_steps(tmp_path, anchor):
    cache = str(tmp_path / "cache")
    # plain SGD without warm-up: step 2 sees the moved weights (a non-zero anchor term), and no Adam normalisation
    # blows float noise up into the weights
    common = dict(n=12, dropout=0.0, max_steps=2, anchor=anchor, layer=1, optim="sgd", learning_rate=0.5,
                  warmup_steps=0)
    cached, ds, _ = make_trainer(tmp_path / "a", teacher_cache=cache, **common)
    live, _, _ = make_trainer(tmp_path / "b", **common)
    assert cached.teacher_cache is not None and live.teacher_cache is None
    batch = next(iter(cached.get_train_dataloader()))
    assert batch["teacher_hidden"].shape[:2] == batch["input_ids"][batch["input_ids"].shape[0] // 2:].shape
    with torch.no_grad():  # the same batch, with the cached vectors and with a live teacher forward
        with_cache = cached.compute_loss_parts(cached.model.eval(), batch, None)
        without = cached.compute_loss_parts(cached.model, {k: v for k, v in batch.items() if k != "teacher_hidden"},
                                            None)
    for name in ("cao_link", "cao_anchor"):
        assert with_cache[name].item() == pytest.approx(without[name].item(), abs=1e-5)
    calls = _count_forwards(cached.teacher)
    cached.train()
    live.train()
    assert calls[0] == 0, "the teacher ran although its outputs were cached"
    a = [h for h in cached.state.log_history if "loss" in h]
    b = [h for h in live.state.log_history if "loss" in h]
    assert len(a) == len(b) == 2 and a[1]["cao_anchor"] > 1e-4
    for x, y in zip(a, b):
        for name in ("cao_link", "cao_anchor"):
            assert x[name] == pytest.approx(y[name], abs=1e-5)
    weights = dict(live.model.named_parameters())
    assert max((p - weights[n]).abs().max().item() for n, p in cached.model.named_parameters()) < 1e-5


def test_second_run_reuses_the_cache_without_teacher_forward(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first, ds, _ = make_trainer(tmp_path / "a", n=8, max_steps=2, teacher_cache=str(cache))
    folders = [p.name for p in cache.iterdir()]
    assert len(folders) == 1 and (cache / folders[0] / "cache.json").is_file()
    import amber_align.trainers.alignment_trainer as at

    counted = []
    real_prepare = at.AlignmentTrainer._prepare_teacher

    def prepare(self, teacher):
        prepared = real_prepare(self, teacher)
        counted.append(_count_forwards(prepared))
        return prepared

    monkeypatch.setattr(at.AlignmentTrainer, "_prepare_teacher", prepare)
    second, _, _ = make_trainer(tmp_path / "b", n=8, max_steps=2, teacher_cache=str(cache))
    second.train()
    assert counted and counted[0][0] == 0, "the cache was rebuilt or the teacher ran during training"
    assert [p.name for p in cache.iterdir()] == folders


def test_changed_data_or_model_gives_a_new_fingerprint(tmp_path):
    trainer, ds, _ = make_trainer(tmp_path, n=8)
    teacher, tok = trainer.accelerator.unwrap_model(trainer.teacher), trainer.processing_class
    base = teacher_fingerprint(teacher, tok, ds, layer=-1)
    assert teacher_fingerprint(teacher, tok, ds, layer=-1) == base
    assert teacher_fingerprint(teacher, tok, ds.select(range(7)), layer=-1) != base
    assert teacher_fingerprint(teacher, tok, ds, layer=1) != base
    with torch.no_grad():
        next(teacher.parameters()).view(-1)[0] += 1e-3
    assert teacher_fingerprint(teacher, tok, ds, layer=-1) != base


def test_stale_or_partial_cache_is_never_used(tmp_path):
    trainer, ds, _ = make_trainer(tmp_path, n=8)
    teacher, tok = trainer.accelerator.unwrap_model(trainer.teacher), trainer.processing_class
    folder = tmp_path / "cache"
    cache = build_or_load_teacher_cache(folder, teacher, tok, ds, layer=-1)
    meta = cache.folder / "cache.json"
    record = json.loads(meta.read_text())
    record["fingerprint"] = "0" * 64  # as if another model had been cached under this name
    meta.write_text(json.dumps(record))
    with pytest.raises(ConfigError, match="built for other data or another model"):
        TeacherCache(cache.folder, teacher_fingerprint(teacher, tok, ds, layer=-1))
    rebuilt = build_or_load_teacher_cache(folder, teacher, tok, ds, layer=-1)  # rebuilt, not used
    assert json.loads(meta.read_text())["fingerprint"] == teacher_fingerprint(teacher, tok, ds, layer=-1)
    (rebuilt.folder / "cache.json").unlink()  # a folder without cache.json (killed before the end) is rebuilt
    calls = _count_forwards(teacher)
    build_or_load_teacher_cache(folder, teacher, tok, ds, layer=-1)
    assert calls[0] > 0 and (rebuilt.folder / "cache.json").is_file()


def test_teacher_cache_config_errors(tmp_path):
    afile = tmp_path / "f"
    afile.write_text("x")
    with pytest.raises(ConfigError, match=r"teacher_cache: .*is a file"):
        CaoConfig(output_dir=str(tmp_path / "o"), use_cpu=True, teacher_cache=str(afile))
    with pytest.raises(ConfigError, match=r"teacher_cache: not available with streaming=true"):
        CaoConfig(output_dir=str(tmp_path / "o"), use_cpu=True, teacher_cache=str(tmp_path / "c"), streaming=True,
                  max_steps=2)

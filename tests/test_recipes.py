"""Every recipe parses into its config and trains 2 steps with a tiny local model and fixture data."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import tiny_model_dir
from transformers import AutoModel

from amber_align.config_io import load_config, read_config_file
from amber_align.demo import demo_dir
from amber_align.pipeline import run_alignment

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))
DATA = demo_dir() / "data"


def test_recipes_exist():
    names = {p.name for p in RECIPES}
    assert {"cao_mbert.yaml", "efimov_mbert.yaml", "cao_xlmr.yaml", "amber_mbert.yaml", "amber_xlmr.yaml",
            "sa_cao_mbert.yaml", "awesome_align_mbert.yaml"} <= names


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_runs_two_steps(tmp_path, recipe):
    values = read_config_file(recipe)
    assert values["model_name_or_path"] and "/" not in values["model_name_or_path"]  # Hub ids as users run them
    kind = "xlmr" if "xlm" in values["model_name_or_path"] else "mbert"
    model_dir = tiny_model_dir(kind, tmp_path / "tiny")
    fixture = [{"file": str(DATA / f"{lang}-en.txt"), "format": "bar", "src_lang": lang, "tgt_lang": "en",
                "alignments": str(DATA / f"{lang}-en.pharaoh"), "max_pairs": 12} for lang in ("es", "de")]
    overrides = {
        "model_name_or_path": str(model_dir), "train_data": fixture, "pretokenized": True,
        "output_dir": str(tmp_path / "out"), "max_steps": 2, "per_device_train_batch_size": 2,
        "eval_split_size": 2, "use_cpu": True, "report_to": [], "save_strategy": "no", "logging_steps": 1,
    }
    if values.get("so_weight"):  # the tiny model has 2 layers; recipes name layer 8 of 12
        overrides["so_layer"] = 2
    config = load_config(recipe, overrides)
    assert config.method == values["method"]
    trainer = run_alignment(config)
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert config.loss_parts()
    assert len(logged) == 2 and all(part in h for h in logged for part in config.loss_parts())
    AutoModel.from_pretrained(tmp_path / "out")


TASK_RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes" / "tasks").glob("*.yaml"))


@pytest.mark.parametrize("recipe", TASK_RECIPES, ids=lambda p: p.stem)
def test_task_recipe_parses_and_its_files_read(tmp_path, recipe, shared_data, monkeypatch):
    """Task recipes: the papers' hyper-parameters, and every data file (paths relative to the repo root) reads."""
    from amber_align.config_io import build_config
    from amber_align.tasks.config import TaskConfig
    from amber_align.tasks.runner import load_task_data

    values = read_config_file(recipe)
    config = build_config({**values, "output_dir": str(tmp_path / "o"), "report_to": []}, source=str(recipe),
                          config_class=TaskConfig)
    expected = {"nli": (5e-5, 2), "ner": (2e-5, 3), "qa": (3e-5, 2)}[config.task]  # Efimov et al.
    assert (config.learning_rate, config.num_train_epochs) == expected
    assert config.per_device_train_batch_size == 32
    if config.task == "qa":
        assert (config.max_seq_length, config.doc_stride) == (384, 128)
    repo = Path(__file__).resolve().parents[1]
    if not (repo.parent / "shared" / "data").is_dir():
        pytest.skip("the task recipes read ../shared/data beside the checkout")
    monkeypatch.chdir(repo)
    assert "test-en" not in str(config.train_data)  # never train on XNLI-en test
    load_task_data(config.task, config.train_data, lang=config.train_language, max_examples=1)
    for lang, source in config.eval_data.items():
        assert len(load_task_data(config.task, source, lang=lang, max_examples=1)) == 1

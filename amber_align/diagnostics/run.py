"""Diagnostics end to end: models + a parallel corpus in, numbers + a plot out (``amber-align diagnose …``).

Each function reads a parallel source the way ``amber-align align`` does (files or Hub dataset, links given or
computed by eflomal), runs one diagnostic for one or several models (e.g. ``before``, ``aligned``, ``finetuned``)
and writes, into ``output_dir``: ``results.json`` / ``results.md`` / a bar chart through
:func:`amber_align.tasks.results.write_results` (one run folder per model, so ``amber-align compare`` puts them side
by side), and for distances a table and the histogram PNG of the paired differences.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from amber_align.errors import ConfigError
from amber_align.io_utils import atomic_write_text
from amber_align.logging_utils import get_logger

__all__ = ["linked_pairs", "diagnose_word_retrieval", "diagnose_distances", "score_alignments", "diagnose_bli",
           "fit_and_save_refinement"]

logger = get_logger(__name__)


def _model_and_tokenizer(path: str) -> tuple[Any, Any]:
    from amber_align.modeling import load_encoder, load_tokenizer
    from amber_align.tokenization import check_tokenizer_matches_model

    model, tokenizer = load_encoder(path), load_tokenizer(path)
    check_tokenizer_matches_model(tokenizer, model, name=path)
    return model, tokenizer


def linked_pairs(source: Mapping[str, Any], tokenizer: Any, *, options: Mapping[str, Any] | None = None) -> Any:
    """Encoded, linked, English-anchored pairs of one parallel ``source`` (an ``align`` train_data entry).

    ``options`` are further alignment-pipeline fields (pretokenized, max_words, symmetrization, one_to_one, ...).
    """
    from amber_align.arguments import ParallelDataArguments
    from amber_align.config_io import build_config
    from amber_align.data.prepare import build_alignment_datasets

    data = build_config({**(options or {}), "train_data": [dict(source)]}, source="diagnostics source",
                        config_class=ParallelDataArguments)
    pairs, _ = build_alignment_datasets(data, tokenizer)
    return pairs


def _language(source: Mapping[str, Any], pairs: Any) -> str:
    pair = pairs[0]["pair"] if "pair" in pairs.column_names and len(pairs) else None
    if isinstance(pair, str) and "-" in pair:
        return pair.split("-")[0]
    return str(source.get("src_lang") or "xx")


def _check_models(models: Mapping[str, str]) -> None:
    if not models:
        raise ConfigError("diagnostics: give at least one model (name=path)")
    for name in models:
        if not name or "/" in name or "_" in name:
            raise ConfigError(f"diagnostics: model name {name!r} must be non-empty, without '/' or '_'")


def diagnose_word_retrieval(models: Mapping[str, str], source: Mapping[str, Any], output_dir: str | Path, *,
                            layer: int = -1, k: int = 10, method: str = "csls", options: Mapping | None = None,
                            max_links: int | None = None) -> dict[str, dict[str, float]]:
    """Contextual word retrieval (Cao et al. 2020) for each model; results under ``output_dir/<name>/``."""
    from amber_align.diagnostics.word_retrieval import word_retrieval
    from amber_align.tasks.results import write_results

    _check_models(models)
    out: dict[str, dict[str, float]] = {}
    for name, path in models.items():
        model, tokenizer = _model_and_tokenizer(path)
        pairs = linked_pairs(source, tokenizer, options=options)
        scores = word_retrieval(model, tokenizer, pairs, layer=layer, k=k, method=method, max_links=max_links)
        lang = _language(source, pairs)
        out[name] = {key: float(scores[key]) for key in ("xx2en_accuracy", "en2xx_accuracy")}
        write_results(Path(output_dir) / name, "word-retrieval", {lang: out[name]},
                      meta={"model": path, "layer": layer, "k": k, "method": method,
                            "num_links": int(scores["num_links"])})
    return out


def diagnose_distances(models: Mapping[str, str], source: Mapping[str, Any], output_dir: str | Path, *,
                       layer: int = -1, seed: int = 0, options: Mapping | None = None,
                       max_links: int | None = None) -> dict[str, dict[str, Any]]:
    """Related vs unrelated word distances (Efimov et al. 2022) for each model: ``distances.json``,
    ``distances.md`` and ``distances.png`` (histograms of the paired differences, one colour per model)."""
    import numpy as np

    from amber_align.diagnostics.distances import format_distance_table, plot_distance_histograms, word_pair_distances
    from amber_align.diagnostics.word_vectors import aligned_word_vectors

    _check_models(models)
    results: dict[str, dict[str, Any]] = {}
    for name, path in models.items():
        model, tokenizer = _model_and_tokenizer(path)
        pairs = linked_pairs(source, tokenizer, options=options)
        vectors = aligned_word_vectors(model, tokenizer, pairs, layers=(layer,), max_links=max_links)
        results[name] = word_pair_distances(vectors, layer, seed=seed)
    out = Path(output_dir)
    table = format_distance_table(results)
    summary = {name: {k: float(v) for k, v in r.items() if isinstance(v, (int, float, np.integer, np.floating))}
               for name, r in results.items()}
    atomic_write_text(out / "distances.json", json.dumps({"layer": layer, "seed": seed, "models": dict(models),
                                                          "summary": summary}, indent=2) + "\n")
    atomic_write_text(out / "distances.md", f"# Related vs unrelated word distances (layer {layer})\n\n{table}\n")
    plot_distance_histograms(results, out / "distances.png", title=f"paired distance differences, layer {layer}")
    return results


def score_alignments(pred: str | Path, gold: str | Path, output_dir: str | Path | None = None, *, name: str = "pred",
                     pred_one_based: bool = False, gold_zero_based: bool = False) -> dict[str, Any]:
    """AER / precision / recall / F1 (percent) of a Pharaoh file against gold (sure + possible links;
    docs/methods.md "Evaluation protocols") and the AER of each sentence (``amber-align aer``); with
    ``output_dir``, also ``aer_per_sentence.tsv``, results.json and a bar chart there."""
    from amber_align.data.aer import alignment_scores, per_sentence_aer
    from amber_align.data.alignments import read_gold_alignments, read_pharaoh
    from amber_align.tasks.results import write_results

    sure, possible = read_gold_alignments(gold, one_based=not gold_zero_based)
    predicted = read_pharaoh(pred, one_based=pred_one_based, expected_lines=len(sure))
    scores = {k: 100.0 * v for k, v in alignment_scores(predicted, sure, possible).items()}
    per_sentence = per_sentence_aer(predicted, sure, possible)
    if output_dir is None:
        return {"scores": scores, "per_sentence": per_sentence}
    out = Path(output_dir)
    lines = ["line\taer"] + [f"{i}\t{100.0 * v:.2f}" for i, v in enumerate(per_sentence, 1)]
    atomic_write_text(out / "aer_per_sentence.tsv", "\n".join(lines) + "\n")
    write_results(out, "aer", {name: scores}, meta={"pred": str(pred), "gold": str(gold), "sentences": len(sure)},
                  exclude_from_average=())
    return {"scores": scores, "per_sentence": per_sentence}


def diagnose_bli(models: Mapping[str, str], lang: str, sources: Sequence[Mapping[str, Any]], dictionary_dir: str,
                 output_dir: str | Path, *, layer: int = -1, k: int = 10, refinement: Mapping[str, str] | None = None,
                 pretokenized: bool = False, max_words: int | None = None) -> dict[str, dict[str, Any]]:
    """BLI on MUSE dictionaries with context-averaged word vectors, Procrustes on 0-5000, CSLS P@1 on 5000-6500,
    for each model; results (P@1, coverage) under ``output_dir/<name>/``."""
    from amber_align.diagnostics.bli import bli, read_bli_sentences
    from amber_align.tasks.results import write_results

    _check_models(models)
    sentences = read_bli_sentences(list(sources), lang, max_words=max_words, pretokenized=pretokenized)
    out: dict[str, dict[str, Any]] = {}
    for name, path in models.items():
        model, tokenizer = _model_and_tokenizer(path)
        result = bli(model, tokenizer, lang, dictionary_dir=dictionary_dir, parallel_sentences=sentences,
                     layer=layer, k=k)
        out[name] = result
        metrics = {key: float(result[key]) for key in ("p@1", "p@1_covered", "coverage")}
        write_results(Path(output_dir) / name, "bli", {lang: metrics},
                      meta={"model": path, "layer": layer, "k": k, "label": result.get("label", ""),
                            "num_test_words": int(result.get("num_test_words", 0))})
    return out


def fit_and_save_refinement(model_path: str, sources: Sequence[Mapping[str, Any]], output_dir: str | Path, *,
                            layers: Sequence[int] = (9, 10, 11, 12), method: str = "orthogonal",
                            tau: float | None = 0.9, options: Mapping | None = None,
                            max_links: int | None = None) -> Path:
    """Wang et al. refinement maps fit on ``sources`` and saved as ``alignment_maps.safetensors`` (+ JSON) in
    ``output_dir`` (beside the checkpoint when it is the model folder; the encoder weights are not touched)."""
    import datasets

    from amber_align.refinement.wang import fit_refinement, save_refinement

    if not sources:
        raise ConfigError("refine: no parallel sources given")
    model, tokenizer = _model_and_tokenizer(model_path)
    options = {"symmetrization": "grow-diag-final-and", **(options or {})}  # Wang et al.'s links
    pairs = datasets.concatenate_datasets([linked_pairs(source, tokenizer, options=options) for source in sources])
    maps = fit_refinement(model, tokenizer, pairs, layers=tuple(layers), method=method, tau=tau, max_links=max_links)
    return save_refinement(maps, output_dir)

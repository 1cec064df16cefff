"""Distances of related vs unrelated word pairs (Efimov, Boytsov, Arslanova & Braslavski, 2022, "The Impact of
Cross-Lingual Adjustment of Contextual Word Representations on Zero-Shot Transfer").

Efimov et al. look at how cross-lingual adjustment (Cao-style alignment) and later task fine-tuning change the
geometry: the cosine distance ``1 − cos`` of *related* pairs (a foreign word and the English word it is aligned to)
against *unrelated* pairs (the same foreign word with a random English word of another link). Alignment pulls
related pairs together; fine-tuning partly undoes it. The paired difference ``unrelated − related`` (one value per
link) shows this per word; its histogram, for the model before alignment, after it and after fine-tuning, is the
paper's figure (docs/methods.md "Evaluation protocols").
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from amber_align.diagnostics.word_vectors import AlignedWordVectors
from amber_align.errors import DataFormatError
from amber_align.logging_utils import get_logger
from amber_align.io_utils import atomic_write_bytes

__all__ = ["word_pair_distances", "plot_distance_histograms", "format_distance_table"]

logger = get_logger(__name__)

DPI = 120
_RESAMPLE_TRIES = 10


def _random_partners(n: int, tgt_occurrence: torch.Tensor | None, seed: int) -> torch.Tensor:
    """For every link ``i`` a random other link ``j != i`` (uniform), re-drawn a few times when ``j``'s English end
    is the very occurrence of ``i``'s (one-to-many links); fixed ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.arange(n)
    partner = (base + torch.randint(1, n, (n,), generator=gen)) % n
    if tgt_occurrence is None:
        return partner
    for _ in range(_RESAMPLE_TRIES):
        same = tgt_occurrence[partner] == tgt_occurrence
        if not bool(same.any()):
            break
        redraw = (base[same] + torch.randint(1, n, (int(same.sum()),), generator=gen)) % n
        partner[same] = redraw
    return partner


def word_pair_distances(vectors: AlignedWordVectors, layer: int = -1, *, seed: int = 0) -> dict[str, Any]:
    """Cosine distances of aligned (related) and random (unrelated) word pairs at ``layer``.

    For link ``i``: ``related[i] = 1 − cos(src_i, tgt_i)`` and ``unrelated[i] = 1 − cos(src_i, tgt_j)`` with ``j`` a
    random other link (seeded), so ``difference = unrelated − related`` is paired. Returns those three float64
    numpy arrays, ``random_index`` (the ``j``), ``num_links``, ``layer``, ``seed``, the means and standard
    deviations (``related_mean``, ``related_std``, …) and ``unrelated_farther`` (percent of links whose
    difference is positive).
    """
    src, tgt = vectors.layer(layer)
    n = len(vectors)
    if n < 2:
        raise DataFormatError(f"need at least 2 word links to draw unrelated pairs, got {n}")
    occurrence = None
    if vectors.tgt_word_index is not None:
        occurrence = vectors.pair_index.long() * (int(vectors.tgt_word_index.max()) + 1) + vectors.tgt_word_index
    partner = _random_partners(n, occurrence, seed)
    s = torch.nn.functional.normalize(src.double(), dim=-1)
    t = torch.nn.functional.normalize(tgt.double(), dim=-1)
    related = (1.0 - (s * t).sum(-1).clamp(-1.0, 1.0)).numpy()
    unrelated = (1.0 - (s * t[partner]).sum(-1).clamp(-1.0, 1.0)).numpy()
    result: dict[str, Any] = {"related": related, "unrelated": unrelated, "difference": unrelated - related,
                              "random_index": partner.numpy(), "num_links": n, "layer": layer, "seed": seed}
    result.update(_summary("", result))
    return result


def _arrays(name: str, result: Mapping[str, Any]) -> dict[str, np.ndarray]:
    out = {}
    for key in ("related", "unrelated", "difference"):
        if key not in result:
            raise DataFormatError(f"results[{name!r}] has no {key!r} array (expected word_pair_distances output)")
        values = np.asarray(result[key], dtype=np.float64).reshape(-1)
        if values.size == 0 or not np.isfinite(values).all():
            raise DataFormatError(f"results[{name!r}][{key!r}] is empty or holds NaN/inf values")
        out[key] = values
    if not out["related"].size == out["unrelated"].size == out["difference"].size:
        raise DataFormatError(f"results[{name!r}]: related, unrelated and difference differ in length")
    return out


def _summary(name: str, result: Mapping[str, Any]) -> dict[str, float]:
    arrays = _arrays(name, result)
    stats = {}
    for key, values in arrays.items():
        stats[f"{key}_mean"] = float(values.mean())
        stats[f"{key}_std"] = float(values.std())
    stats["unrelated_farther"] = float(100.0 * (arrays["difference"] > 0).mean())
    return stats


def _check_results(results: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, np.ndarray]]:
    if not isinstance(results, Mapping) or not results:
        raise DataFormatError("results must map at least one model name to word_pair_distances output, e.g. "
                              "{'before': ..., 'after alignment': ...}")
    return {str(name): _arrays(str(name), res) for name, res in results.items()}


def _bins(values: list[np.ndarray], max_bins: int = 50) -> np.ndarray:
    joined = np.concatenate(values)
    edges = np.histogram_bin_edges(joined, bins="auto")
    if len(edges) - 1 > max_bins:
        edges = np.histogram_bin_edges(joined, bins=max_bins)
    return edges


def _histogram_png(arrays: dict[str, dict[str, np.ndarray]], title: str | None) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 7.0), layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1)
    edges = _bins([a["difference"] for a in arrays.values()])
    for i, (name, a) in enumerate(arrays.items()):
        d = a["difference"]
        weights = np.full(d.size, 1.0 / d.size)  # share of pairs: models with different link counts compare
        color = f"C{i % 10}"
        top.hist(d, bins=edges, weights=weights, histtype="stepfilled", alpha=0.3, color=color,
                 label=f"{name} (mean {d.mean():.3f}, {100 * (d > 0).mean():.0f}% > 0)")
        top.hist(d, bins=edges, weights=weights, histtype="step", color=color)
        top.axvline(d.mean(), color=color, linestyle="--", linewidth=1)
    top.axvline(0.0, color="black", linewidth=0.8)
    top.set_xlabel("unrelated − related cosine distance (paired, per link)")
    top.set_ylabel("share of pairs")
    top.legend(fontsize=8)
    top.set_title(title or "Related vs unrelated word pairs (Efimov et al., 2022)")

    edges = _bins([a[k] for a in arrays.values() for k in ("related", "unrelated")])
    for i, (name, a) in enumerate(arrays.items()):
        color = f"C{i % 10}"
        for key, style in (("related", "-"), ("unrelated", "--")):
            v = a[key]
            bottom.hist(v, bins=edges, weights=np.full(v.size, 1.0 / v.size), histtype="step", color=color,
                        linestyle=style, linewidth=1.4, label=f"{name}: {key} (mean {v.mean():.3f})")
    bottom.set_xlabel("cosine distance 1 − cos (solid: aligned pairs, dashed: random pairs)")
    bottom.set_ylabel("share of pairs")
    bottom.legend(fontsize=7)
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        ax.set_axisbelow(True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def plot_distance_histograms(results: dict[str, dict], out_png: str | Path, *, title: str | None = None) -> Path:
    """Draw the distance histograms of one or several models (e.g. ``{"before": ..., "after alignment": ...,
    "after fine-tuning": ...}``, values from :func:`word_pair_distances`) and write ``out_png`` atomically.

    Top panel: overlaid histograms of the paired differences (unrelated − related), one colour per model, dashed at
    each mean; bottom panel: related (solid) and unrelated (dashed) distances. The figure is drawn completely
    before anything is written, and the write goes through a temp file, so a failure leaves no (partial) file.
    Returns the path written.
    """
    arrays = _check_results(results)
    out = Path(out_png)
    atomic_write_bytes(out, _histogram_png(arrays, title))
    logger.info(f"distance histograms of {', '.join(arrays)} written to {out}")
    return out


def _cell(mean: float, std: float) -> str:
    return f"{round(mean, 3) + 0.0:.3f} ± {std:.3f}"  # + 0.0: no "-0.000" for a tiny negative rounding error


def format_distance_table(results: dict[str, dict]) -> str:
    """Markdown table, one row per model: links and mean ± std of related, unrelated and difference distances, and
    the percent of links whose unrelated pair is farther than the aligned one."""
    arrays = _check_results(results)
    lines = ["| model | links | related (1 − cos) | unrelated (1 − cos) | difference | unrelated farther (%) |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, a in arrays.items():
        stats = _summary(name, a)
        name_cell = name.replace("|", "\\|")
        lines.append(f"| {name_cell} | {a['difference'].size} | "
                     f"{_cell(stats['related_mean'], stats['related_std'])} | "
                     f"{_cell(stats['unrelated_mean'], stats['unrelated_std'])} | "
                     f"{_cell(stats['difference_mean'], stats['difference_std'])} | "
                     f"{stats['unrelated_farther']:.1f} |")
    return "\n".join(lines) + "\n"

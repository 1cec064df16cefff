"""Bar charts of run results (``{task}.png``) and run comparisons (``comparison_{task}.png``).

Drawn on a ``Figure`` with an Agg canvas, not pyplot: no global backend switch (a notebook keeps its own) and no
figure registry to leak. Each function returns PNG bytes; ``amber_align.tasks.results`` writes them atomically.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

from amber_align.tasks.registry import non_score_metrics, primary_metric
from amber_align.tasks.results import PerLang, _fmt, _metric_order, sort_languages

__all__ = ["task_chart", "comparison_chart", "DPI"]

DPI = 120


def _figure(width: float, height: float, rows: int = 1) -> tuple[Any, list[Any]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 1, squeeze=False, sharex=True)
    return fig, [row[0] for row in axes]


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _grouped_bars(ax: Any, groups: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]],
                  *, signed: bool = False, first_color: int = 0) -> None:
    """One group per x label, one bar per series; ``None`` draws no bar. Value labels when they still fit."""
    import numpy as np

    x = np.arange(len(groups))
    width = 0.8 / max(len(series), 1)
    labelled = len(groups) * len(series) <= 48
    for i, (label, values) in enumerate(series):
        heights = [math.nan if v is None else v for v in values]
        bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, heights, width, label=label,
                      color=f"C{(first_color + i) % 10}")
        if labelled:
            ax.bar_label(bars, labels=[_fmt(v, 1, signed) if v is not None and math.isfinite(v) else ""
                                       for v in values], fontsize=7, padding=1)
    ax.set_xticks(x, list(groups), rotation=45 if len(groups) > 12 else 0)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(fontsize=8)


def task_chart(task: str, per_lang: PerLang, average: Mapping[str, float], meta: Mapping[str, Any]) -> bytes:
    metrics = [m for m in _metric_order(per_lang.values()) if m not in non_score_metrics(task)]
    metrics = metrics or _metric_order(per_lang.values())
    langs = sort_languages(per_lang)
    rows = [per_lang[lang] for lang in langs] + ([average] if average else [])
    groups = langs + (["average"] if average else [])
    fig, (ax,) = _figure(min(24.0, 3.0 + 0.45 * len(groups) * max(len(metrics), 1.5)), 4.5)
    _grouped_bars(ax, groups, [(m, [row.get(m) for row in rows]) for m in metrics])
    ax.set_title(f"{task} — {meta['model']}" if meta.get("model") else task)
    ax.set_ylabel("score (%)")
    return _png(fig)


def comparison_chart(task: str, table: dict[str, dict[str, list]], names: Sequence[str]) -> bytes:
    metrics = _metric_order(table.values())
    scores = [m for m in metrics if m not in non_score_metrics(task)] or metrics
    metric = primary_metric(task) if primary_metric(task) in metrics else scores[0]
    groups = list(table)
    fig, (top, bottom) = _figure(min(24.0, 3.0 + 0.4 * len(groups) * max(len(names), 1.5)), 7.0, rows=2)
    _grouped_bars(top, groups, [(n, [table[g][metric][i] for g in groups]) for i, n in enumerate(names)])
    top.set_title(f"{task}: {metric} — {' vs '.join(names)}")
    top.set_ylabel("score (%)")
    deltas = [(f"{n} − {names[0]}", [None if table[g][metric][i] is None or table[g][metric][0] is None
                                     else table[g][metric][i] - table[g][metric][0] for g in groups])
              for i, n in enumerate(names) if i > 0]
    _grouped_bars(bottom, groups, deltas, signed=True, first_color=1)  # each run keeps its colour
    bottom.axhline(0.0, color="black", linewidth=0.8)
    bottom.set_ylabel(f"Δ vs {names[0]} (points)")
    return _png(fig)

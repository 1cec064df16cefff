"""Runs side by side: ``compare_runs`` reads each run's ``results.json``, keeps the tasks at least two runs have,
and writes ``comparison.md`` (values and the difference to the baseline per language, with the macro average over
the languages every run has) plus ``comparison_{task}.png`` (``amber-align compare``). Every file is written
atomically.

The baseline is chosen per task: the first run, in the given order, that has the task (e.g. mBERT before
alignment). ``compare mbert-ner aligned-ner mbert-nli aligned-nli`` thus compares NER against ``mbert-ner`` and
XNLI against ``mbert-nli``, and a task's table lists only the runs that have it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from amber_align.errors import ConfigError
from amber_align.io_utils import atomic_write_bytes, atomic_write_text
from amber_align.logging_utils import get_logger
from amber_align.tasks.results import (MISSING, _average_note, _esc, _fmt, _md_row, _metric_order, load_results,
                                       sort_languages)

__all__ = ["ComparisonResult", "compare_runs"]

logger = get_logger(__name__)


@dataclass
class ComparisonResult:
    """What :func:`compare_runs` produced.

    ``table[task][lang][metric]`` is the list of values, one per run in the given order (``None`` where a run
    lacks it); ``lang == "average"`` is the macro average over the languages every run has. ``baselines[task]``
    names the run that task's Δ columns are taken against (the first run that has the task).
    """

    markdown: str
    paths: list[Path]
    table: dict[str, dict[str, dict[str, list[float | None]]]]
    names: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    baselines: dict[str, str] = field(default_factory=dict)


def _run_names(run_dirs: Sequence[Path], names: Sequence[str] | None) -> list[str]:
    if names is not None:
        names = list(names)
        if len(names) != len(run_dirs):
            raise ConfigError(f"compare: {len(names)} names given for {len(run_dirs)} runs")
        if any(not isinstance(n, str) or not n.strip() for n in names) or len(set(names)) != len(names):
            raise ConfigError(f"compare: names must be non-empty and distinct, got {names}")
        return names
    parts = [(p.parent if p.is_file() else p).resolve().parts for p in run_dirs]
    out: list[str] = []
    for i, mine in enumerate(parts):  # the basename, or as many parent folders as it takes to tell runs apart
        for k in range(1, len(mine) + 1):
            name = PurePath(*mine[-k:]).as_posix()
            if all(PurePath(*other[-k:]).as_posix() != name for j, other in enumerate(parts) if j != i):
                break
        n = sum(earlier == name or earlier.startswith(f"{name} (") for earlier in out)
        out.append(name if n == 0 else f"{name} ({n + 1})")  # the same directory given twice
    return out


def _select_tasks(docs: Sequence[dict[str, Any]], names: Sequence[str], run_dirs: Sequence[Path],
                  tasks: Sequence[str] | None) -> list[str]:
    if tasks is not None:
        selected = list(dict.fromkeys(tasks))
        if not selected:
            raise ConfigError("compare: the list of tasks is empty")
        for task in selected:
            for name, path, doc in zip(names, run_dirs, docs):
                if task not in doc["tasks"]:
                    raise ConfigError(f"compare: run {name!r} ({path}) has no results for task {task!r} "
                                      f"(it has: {', '.join(doc['tasks']) or 'none'})")
        return selected
    seen = _metric_order(doc["tasks"] for doc in docs)
    selected = [task for task in seen if sum(task in doc["tasks"] for doc in docs) >= 2]
    if not selected:
        have = "; ".join(f"{n}: {', '.join(d['tasks']) or 'none'}" for n, d in zip(names, docs))
        raise ConfigError(f"compare: no task has results in 2 or more runs ({have})")
    return selected


def _comparison_table(entries: Sequence[dict[str, Any] | None]) -> tuple[dict[str, dict[str, list]], list, list]:
    present = [e for e in entries if e is not None]
    langs = sort_languages(dict.fromkeys(lang for e in present for lang in e["languages"]))
    metrics = _metric_order(e["languages"][lang] for e in present for lang in e["languages"])
    excluded = sorted({lang for e in present for lang in e["average_excludes"]})
    table = {lang: {m: [None if e is None else e["languages"].get(lang, {}).get(m) for e in entries]
                    for m in metrics} for lang in langs}
    common = [lang for lang in langs if lang not in excluded and all(lang in e["languages"] for e in present)]
    average: dict[str, list] = {}
    for m in metrics:
        rows = [lang for lang in common if all(v is not None for v, e in zip(table[lang][m], entries) if e)]
        average[m] = [None if e is None or not rows else math.fsum(table[lang][m][i] for lang in rows) / len(rows)
                      for i, e in enumerate(entries)]
    if common and any(any(v is not None for v in vals) for vals in average.values()):
        table["average"] = average
    return table, common, excluded


def _comparison_markdown(task: str, table: dict[str, dict[str, list]], names: Sequence[str],
                         common: Sequence[str], excluded: Sequence[str]) -> str:
    metrics = _metric_order(table.values())
    header, align = ["language"], ["---"]
    for m in metrics:
        header += [f"{_esc(m)} {_esc(n)}" for n in names]
        header += [f"{_esc(m)} Δ ({_esc(n)} − {_esc(names[0])})" for n in names[1:]]
        align += ["---:"] * (2 * len(names) - 1)
    lines = [f"## {task}", "", _md_row(header), "|" + "|".join(align) + "|"]
    for lang, row in table.items():
        cells = [lang]
        for m in metrics:
            vals = row[m]
            cells += [_fmt(v) for v in vals]
            cells += [_fmt(None if v is None or vals[0] is None else v - vals[0], signed=True) for v in vals[1:]]
        lines.append(_md_row(cells))
    return "\n".join(lines + ["", _average_note(common, excluded, common=True), ""])


def compare_runs(run_dirs: Sequence[str | os.PathLike], *, out_dir: str | os.PathLike | None = None,
                 names: Sequence[str] | None = None, tasks: Sequence[str] | None = None) -> ComparisonResult:
    """Put runs side by side; per task, the first run that has it is the baseline its Δ are taken against
    (Δ = run − baseline).

    Compares ``tasks`` (each must be in every run) or else every task present in 2+ runs. Per task: a Markdown
    table with, per metric, one column per run that has the task and one Δ column per non-baseline run; "—" where
    a run lacks the
    language; an ``average`` row over the languages every run has (so its Δ compares like with like). Writes
    ``comparison.md`` and ``comparison_{task}.png`` (primary metric per language, and Δ vs the baseline) into
    ``out_dir`` (default ``./comparison``) once everything has been built. ``names`` default to the run
    directories' basenames, with parent folders added where two are equal.
    """
    if isinstance(run_dirs, (str, os.PathLike)):
        run_dirs = [run_dirs]
    paths = [Path(p) for p in run_dirs]
    if len(paths) < 2:
        raise ConfigError(f"compare: needs at least 2 runs (the first is the baseline), got {len(paths)}")
    docs = [load_results(p) for p in paths]
    names = _run_names(paths, names)
    selected = _select_tasks(docs, names, paths, tasks)
    out = Path("comparison") if out_dir is None else Path(out_dir)
    runs = [_md_row(["run", "results", "model"]), "|---|---|---|"]
    for name, path, doc in zip(names, paths, docs):
        models = dict.fromkeys(str(e["meta"]["model"]) for e in doc["tasks"].values() if e["meta"].get("model"))
        runs.append(_md_row([_esc(name), f"`{path}`", _esc(", ".join(models)) or MISSING]))
    entries = {task: [doc["tasks"].get(task) for doc in docs] for task in selected}
    have = {task: [i for i, e in enumerate(entries[task]) if e is not None] for task in selected}
    baselines = {task: names[have[task][0]] for task in selected}
    if len(set(baselines.values())) == 1:
        head = f"Baseline: **{_esc(baselines[selected[0]])}**; Δ = run − baseline, in points."
    else:
        head = ("Baseline per task (the first run that has it): "
                + ", ".join(f"{_esc(t)}: **{_esc(b)}**" for t, b in baselines.items()) + "; Δ = run − baseline, "
                "in points.")
    sections = ["# Comparison", "", head, "", *runs, ""]
    from amber_align.tasks.plots import comparison_chart

    tables: dict[str, dict[str, dict[str, list]]] = {}
    files: list[tuple[Path, bytes]] = []
    for task in selected:
        table, common, excluded = _comparison_table(entries[task])
        tables[task] = table
        own = have[task]  # the runs that have this task, the baseline first
        shown = {lang: {m: [vals[i] for i in own] for m, vals in row.items()} for lang, row in table.items()}
        shown_names = [names[i] for i in own]
        sections.append(_comparison_markdown(task, shown, shown_names, common, excluded))
        files.append((out / f"comparison_{task}.png", comparison_chart(task, shown, shown_names)))
    markdown = "\n".join(sections)
    md_path = out / "comparison.md"
    atomic_write_text(md_path, markdown)
    for path, data in files:
        atomic_write_bytes(path, data)
    logger.info("compared %s on %s: wrote %s", ", ".join(names), ", ".join(selected), out)
    return ComparisonResult(markdown=markdown, paths=[md_path, *(p for p, _ in files)], table=tables,
                            names=list(names), tasks=selected, baselines=baselines)

"""Evaluation results of a run: flat metric names, per-language tables, and ``results.json`` / ``results.md`` / plots.

A run directory holds one ``results.json`` for every task evaluated into it (``write_results`` merges, so ``ner``
and ``xsr`` results of one model can share a directory), a ``results.md`` regenerated from it, and one
``{task}.png`` per task. Putting runs side by side is ``amber_align.tasks.compare``; the charts are
``amber_align.tasks.plots``.

Flat names are ``{prefix}_{task}_{lang}_{metric}`` (``eval_ner_es_f1``, ``eval_xsr_de_xx2en_p@1``); metric names may
contain ``_`` and ``@``, so task names and language codes may not contain ``_`` (``zh-CN`` is fine). The macro
average ``{prefix}_{task}_avg_{metric}`` is the unweighted mean over every evaluated language except those in
``exclude_from_average`` (default ``("en",)``: the training language measures in-language fit, not transfer), each
metric over the languages that report it. With no language left there is no average (no ``avg`` keys, no row).

Every file is written atomically (temp file + ``os.replace``): a failure never leaves a half-written file.
"""

from __future__ import annotations

import datetime
import json
import math
import numbers
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from amber_align.errors import ConfigError, DataFormatError
from amber_align.folder_lock import locked_directory
from amber_align.io_utils import atomic_write_bytes, atomic_write_text
from amber_align.logging_utils import get_logger

__all__ = ["SCHEMA_VERSION", "flatten_metrics", "unflatten_metrics", "average_metrics", "sort_languages",
           "format_table", "write_results", "load_results"]

logger = get_logger(__name__)

SCHEMA_VERSION = 1
RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
MISSING = "—"
_RESERVED_LANGS = ("avg", "average")
_TASK_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")

PerLang = dict[str, dict[str, float]]


# ------------------------------------------------------------------ validation
def _check_task(task: Any) -> str:
    if not isinstance(task, str) or not _TASK_RE.match(task):
        raise ConfigError(f"task name {task!r}: expected letters, digits and '-' only ('_' separates the parts of "
                          f"eval_{{task}}_{{lang}}_{{metric}})")
    return task


def _check_lang(task: str, lang: Any) -> str:
    if not isinstance(lang, str) or not lang or "_" in lang or "/" in lang or any(c.isspace() for c in lang):
        raise ConfigError(f"{task}: language code {lang!r}: expected a non-empty code without '_', '/' or spaces, "
                          f"e.g. 'es' or 'zh-CN'")
    if lang in _RESERVED_LANGS:
        raise ConfigError(f"{task}: language code {lang!r} is reserved for the macro average")
    return lang


def _number(value: Any, where: str, path: Path | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise DataFormatError(f"{where}: expected a number, got {value!r} ({type(value).__name__})", path=path)
    return float(value)


def _check_per_lang(task: str, per_lang: Any, path: Path | None = None, where: str = "") -> PerLang:
    """A validated plain-dict copy of ``{lang: {metric: value}}``; errors name the task, language and metric."""
    where = where or task
    if not isinstance(per_lang, Mapping) or not per_lang:
        raise DataFormatError(f"{where}: expected a non-empty {{language: {{metric: value}}}} mapping, "
                              f"got {per_lang!r}", path=path)
    out: PerLang = {}
    for lang, metrics in per_lang.items():
        _check_lang(task, lang)
        if not isinstance(metrics, Mapping) or not metrics:
            raise DataFormatError(f"{where}.{lang}: expected a non-empty {{metric: value}} mapping, got {metrics!r}",
                                  path=path)
        out[lang] = {}
        for metric, value in metrics.items():
            if not isinstance(metric, str) or not metric or any(c.isspace() or c == "|" for c in metric):
                raise DataFormatError(f"{where}.{lang}: metric name {metric!r}: expected a non-empty name "
                                      f"without spaces or '|'", path=path)
            out[lang][metric] = _number(value, f"{where}.{lang}.{metric}", path)
    return out


# ------------------------------------------------------------------ flat names
def _metric_order(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    return list(dict.fromkeys(m for row in rows for m in row))


def sort_languages(langs: Iterable[str]) -> list[str]:
    """English first, then alphabetical: the order of every table and plot."""
    return sorted(langs, key=lambda lang: (lang != "en", lang))


def average_metrics(per_lang: Mapping[str, Mapping[str, float]],
                    exclude_from_average: Iterable[str | None] = ("en",)) -> dict[str, float]:
    """Macro average per metric over the languages not excluded (each metric over the languages that have it)."""
    excluded = {lang for lang in exclude_from_average if lang}
    rows = [metrics for lang, metrics in per_lang.items() if lang not in excluded]
    return {m: math.fsum(row[m] for row in rows if m in row) / sum(m in row for row in rows)
            for m in _metric_order(rows)}


def flatten_metrics(task: str, per_lang: Mapping[str, Mapping[str, float]], *, prefix: str = "eval",
                    exclude_from_average: Iterable[str | None] = ("en",)) -> dict[str, float]:
    """``{lang: {metric: v}}`` -> ``{"eval_{task}_{lang}_{metric}": v, ..., "eval_{task}_avg_{metric}": mean}``.

    The names the Trainer logs and ``results.json`` keeps under ``flat``; see the module docstring for the average.
    """
    data = _check_per_lang(_check_task(task), per_lang)
    head = f"{prefix}_{task}_"
    flat = {f"{head}{lang}_{metric}": value for lang, metrics in data.items() for metric, value in metrics.items()}
    flat.update({f"{head}avg_{metric}": value
                 for metric, value in average_metrics(data, exclude_from_average).items()})
    return flat


def unflatten_metrics(flat: Mapping[str, Any], task: str, *, prefix: str = "eval") -> PerLang:
    """Inverse of :func:`flatten_metrics`: the ``{lang: {metric: v}}`` of ``task``, without the ``avg`` entries.

    Keys of other tasks and other logs (``eval_loss``) are ignored; the language is the part up to the first
    ``_`` after ``{prefix}_{task}_`` (codes have no ``_``), the rest is the metric (``xx2en_p@1``, ``exact_match``).
    """
    head = f"{prefix}_{_check_task(task)}_"
    out: PerLang = {}
    for key, value in flat.items():
        if not isinstance(key, str) or not key.startswith(head):
            continue
        lang, sep, metric = key[len(head):].partition("_")
        if not sep or not lang or not metric:
            raise DataFormatError(f"{key!r}: expected {head}{{lang}}_{{metric}}")
        if lang != "avg":
            out.setdefault(lang, {})[metric] = _number(value, key)
    return out


# ------------------------------------------------------------------ tables
def _fmt(value: float | None, digits: int = 1, signed: bool = False) -> str:
    if value is None:
        return MISSING
    if math.isfinite(value) and round(value, digits) == 0:
        value = 0.0  # no "-0.0"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _esc(text: str) -> str:
    return str(text).replace("|", "\\|")


def _md_row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def format_table(per_lang: Mapping[str, Mapping[str, float]], metrics: Sequence[str] | None = None, *,
                 average: Mapping[str, float] | None = None, exclude_from_average: Iterable[str | None] = ("en",),
                 show_average: bool = True, digits: int = 1) -> str:
    """A Markdown table: one row per language (English first, then alphabetical), one column per metric.

    ``metrics`` picks and orders the columns (default: every metric, in first-seen order). The last row is the
    macro average (``average`` if given, else computed excluding ``exclude_from_average``); missing cells are "—".
    """
    metrics = list(metrics) if metrics is not None else _metric_order(per_lang.values())
    if not metrics:
        raise ConfigError("format_table: no metrics to show")
    lines = [_md_row(["language", *map(_esc, metrics)]), "|---|" + "---:|" * len(metrics)]
    for lang in sort_languages(per_lang):
        lines.append(_md_row([_esc(lang), *(_fmt(per_lang[lang].get(m), digits) for m in metrics)]))
    if show_average:
        average = average_metrics(per_lang, exclude_from_average) if average is None else average
        if average:
            lines.append(_md_row(["average", *(_fmt(average.get(m), digits) for m in metrics)]))
    return "\n".join(lines)


def _average_note(langs: Sequence[str], excluded: Iterable[str], common: bool = False) -> str:
    left_out = ", ".join(sorted(set(excluded)))
    if not langs:
        return f"No average: no language {'every run has' if common else 'left'}" + (f" ({left_out} left out)." if
                                                                                      left_out else ".")
    what = "the languages every run has" if common else "the languages"
    note = f"average: macro average over {what} ({', '.join(sort_languages(langs))})"
    return note + (f"; {left_out} left out." if left_out else ".")


def _meta_value(value: Any) -> str:
    if isinstance(value, Mapping):  # e.g. eval_examples per language
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return str(value)


def _results_markdown(doc: Mapping[str, Any]) -> str:
    parts = ["# Results", ""]
    for task, entry in doc["tasks"].items():
        meta = entry.get("meta", {})
        parts += [f"## {task}", ""]
        if meta:
            parts += [" · ".join(f"{k}: {_meta_value(v)}" for k, v in meta.items() if k != "task"), ""]
        excluded = entry.get("average_excludes", [])
        parts += [format_table(entry["languages"], average=entry["average"]), "",
                  _average_note([lang for lang in entry["languages"] if lang not in excluded], excluded), ""]
    return "\n".join(parts)


# ------------------------------------------------------------------ files
def write_results(run_dir: str | os.PathLike, task: str, per_lang: Mapping[str, Mapping[str, float]], *,
                  meta: Mapping[str, Any] | None = None,
                  exclude_from_average: Iterable[str | None] | None = None) -> dict[str, Path]:
    """Record ``task``'s per-language metrics in ``run_dir``; returns ``{"json", "markdown", "plot"}`` paths.

    ``results.json`` is merged (other tasks kept; this task replaced), ``results.md`` is regenerated from it,
    ``{task}.png`` is drawn. ``meta`` (model, train_language, seconds, ...) is stored with the task; ``date`` is
    added when absent. The average leaves out ``exclude_from_average``, by default ``meta["train_language"]`` or
    else ``"en"``. An unreadable existing ``results.json`` is an error, never overwritten. JSON and Markdown are
    written first (the record of the run); if the plot then fails, a stale ``{task}.png`` that would contradict
    them is removed and the error propagates.
    """
    data = _check_per_lang(_check_task(task), per_lang)
    if meta is not None and not isinstance(meta, Mapping):
        raise ConfigError(f"write_results({task!r}): meta must be a mapping, got {type(meta).__name__}")
    meta = json.loads(json.dumps(dict(meta or {}), default=str))  # Paths, dates... as strings
    meta.setdefault("date", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    if exclude_from_average is None:
        train = meta.get("train_language")
        exclude_from_average = (train,) if isinstance(train, str) and train else ("en",)
    excluded = list(dict.fromkeys(lang for lang in exclude_from_average if lang))
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: not a directory (write_results needs a run directory)")
    json_path, md_path, png_path = run_dir / RESULTS_JSON, run_dir / RESULTS_MD, run_dir / f"{task}.png"
    average = average_metrics(data, excluded)
    with locked_directory(run_dir):  # read-merge-write: two jobs evaluating into one folder must not lose a task
        tasks = load_results(json_path)["tasks"] if json_path.exists() else {}
        tasks[task] = {"languages": data, "average": average, "average_excludes": excluded,
                       "flat": flatten_metrics(task, data, exclude_from_average=excluded), "meta": meta}
        doc = {"schema_version": SCHEMA_VERSION, "tasks": tasks}
        atomic_write_text(json_path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        atomic_write_text(md_path, _results_markdown(doc))
    from amber_align.tasks.plots import task_chart

    try:
        atomic_write_bytes(png_path, task_chart(task, data, average, meta))
    except Exception:
        png_path.unlink(missing_ok=True)
        logger.error("%s: could not draw %s; %s and %s are up to date", task, png_path, json_path, md_path)
        raise
    logger.info("%s results written to %s (%s, %s, %s)", task, run_dir, json_path.name, md_path.name, png_path.name)
    return {"json": json_path, "markdown": md_path, "plot": png_path}


def load_results(run_dir_or_json: str | os.PathLike) -> dict[str, Any]:
    """Read and check a run's ``results.json`` (a run directory or the file itself).

    Raises ``ConfigError`` for a missing file ("not a run directory: no results.json"), ``DataFormatError`` with
    the file and line for invalid JSON, and ``DataFormatError`` naming the key for a wrong schema. Optional keys
    (``average``, ``average_excludes``, ``meta``) are filled in when absent; ``flat`` is rebuilt from ``languages``.
    """
    given = Path(run_dir_or_json)
    path = given / RESULTS_JSON if given.is_dir() else given
    if not path.is_file():
        why = "" if given.is_dir() else (" (no such file or directory)" if not given.exists() else " (not a file)")
        raise ConfigError(f"{given}: not a run directory: no {RESULTS_JSON}{why}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataFormatError(f"not valid UTF-8 (byte {e.start}); expected a results.json", path=path) from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataFormatError(f"not valid JSON: {e.msg} (column {e.colno})", path=path, line=e.lineno) from None
    return _check_doc(doc, path)


def _check_doc(doc: Any, path: Path) -> dict[str, Any]:
    def bad(message: str) -> DataFormatError:
        return DataFormatError(message, path=path)

    if not isinstance(doc, dict) or "tasks" not in doc or "schema_version" not in doc:
        got = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise bad(f"expected a JSON object with 'schema_version' and 'tasks' (a results.json written by "
                  f"amber_align), got {got}")
    version = doc["schema_version"]
    if type(version) is not int or version != SCHEMA_VERSION:
        newer = type(version) is int and version > SCHEMA_VERSION
        raise bad(f"schema_version {version!r} is not {SCHEMA_VERSION}"
                  + ("; it was written by a newer amber_align: upgrade" if newer else ""))
    if not isinstance(doc["tasks"], dict):
        raise bad(f"tasks: expected an object {{task: ...}}, got {type(doc['tasks']).__name__}")
    tasks: dict[str, Any] = {}
    for task, entry in doc["tasks"].items():
        if not isinstance(entry, dict) or "languages" not in entry:
            raise bad(f"tasks.{task}: expected an object with 'languages'")
        meta, average = entry.get("meta", {}), entry.get("average", {})
        excluded = entry.get("average_excludes", [meta.get("train_language") or "en"] if isinstance(meta, dict) else [])
        if not isinstance(meta, dict) or not isinstance(average, dict):
            raise bad(f"tasks.{task}: 'meta' and 'average' must be objects")
        if not isinstance(excluded, list) or not all(isinstance(x, str) for x in excluded):
            raise bad(f"tasks.{task}.average_excludes: expected a list of language codes, got {excluded!r}")
        try:
            languages = _check_per_lang(_check_task(task), entry["languages"], path, where=f"tasks.{task}.languages")
        except ConfigError as e:
            raise bad(f"tasks.{task}: {e}") from None
        average = {m: _number(v, f"tasks.{task}.average.{m}", path) for m, v in average.items()}
        tasks[task] = {**entry, "languages": languages, "average_excludes": excluded, "meta": meta,
                       "average": average if "average" in entry else average_metrics(languages, excluded),
                       "flat": flatten_metrics(task, languages, exclude_from_average=excluded)}
    return {**doc, "tasks": tasks}

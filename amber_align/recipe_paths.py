"""Relative input paths in a config file are read against the file's own folder first.

A recipe such as ``recipes/align/cao.yaml`` naming ``data/de-en.txt`` means the file next to the recipe, wherever
the command is started from (as a Makefile or a Hydra config would): a path that exists relative to the config
file's folder is used from there; one that does not is left as written (relative to the current directory, or a
Hub id). Where both folders hold the path, the recipe's wins and a warning names both. Only *input* fields are
touched: ``output_dir``, ``results_dir`` and cache folders stay relative to the current directory, as in
``transformers.TrainingArguments``. Command-line values are never rewritten (docs/data.md, "Relative paths in a
config file").
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["INPUT_PATH_FIELDS", "SOURCE_PATH_KEYS", "resolve_recipe_paths"]


def _log(level: str, message: str) -> None:
    """Log through the package logger, imported only when there is something to say: reading a config must not
    import torch (the CLI checks its arguments before the heavy imports)."""
    from amber_align.logging_utils import get_logger

    getattr(get_logger(__name__), level)(message)

#: top-level fields whose values are input paths (strings, or lists of strings)
INPUT_PATH_FIELDS = ("model_name_or_path", "tokenizer_name_or_path", "data_dir", "dedup_eval_files")
#: fields holding data sources: a path, a source mapping, a list of mappings, or {lang: path | mapping}
SOURCE_FIELDS = ("train_data", "eval_data", "continual_data")
#: keys of a source mapping (ParallelSource, a task's source) that name input files or folders
SOURCE_PATH_KEYS = ("src_file", "tgt_file", "file", "alignments", "dataset", "hub")


def _is_relative_path(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and not os.path.isabs(value) and ":" not in value \
        and not value.startswith("~")


def _resolve(value: Any, folder: Path, where: str, source: str) -> Any:
    if not _is_relative_path(value):
        return value
    candidate = folder / value
    if folder.resolve() == Path.cwd().resolve() or not candidate.exists():
        return value
    resolved = os.path.normpath(candidate)
    if Path(value).exists():
        _log("warning", f"{source}: {where} {value!r} exists both next to the config file and in the current "
                        f"directory; using the config file's: {resolved}")
    else:
        _log("info", f"{source}: {where} {value!r} read relative to the config file: {resolved}")
    return resolved


def _resolve_source(value: Any, folder: Path, where: str, source: str) -> Any:
    if isinstance(value, str):
        return _resolve(value, folder, where, source)
    if isinstance(value, list):
        return [_resolve_source(item, folder, f"{where}[{i}]", source) for i, item in enumerate(value)]
    if isinstance(value, dict):
        is_source = any(key in value for key in SOURCE_PATH_KEYS)
        out = {}
        for key, item in value.items():
            if is_source:  # a source mapping: only its path keys are paths
                out[key] = _resolve(item, folder, f"{where}.{key}", source) if key in SOURCE_PATH_KEYS else item
            else:  # {lang: path | mapping} (a task's eval_data)
                out[key] = _resolve_source(item, folder, f"{where}.{key}", source)
        return out
    return value


def resolve_recipe_paths(values: dict[str, Any], config_file: str | Path) -> dict[str, Any]:
    """``values`` read from ``config_file`` with every relative input path that exists next to the file rewritten
    to that location (see the module docstring); other values are returned unchanged."""
    folder = Path(config_file).parent
    source = str(config_file)
    out = dict(values)
    for name in INPUT_PATH_FIELDS:
        if name in out:
            value = out[name]
            out[name] = [_resolve(v, folder, f"{name}[{i}]", source) for i, v in enumerate(value)] \
                if isinstance(value, list) else _resolve(value, folder, name, source)
    for name in SOURCE_FIELDS:
        if name in out:
            out[name] = _resolve_source(out[name], folder, name, source)
    return out

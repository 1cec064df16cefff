"""Task data sources shared by the NER, NLI and QA readers: reading text lines (UTF-8, Latin-1 fallback), the
language of a file from its name, source mappings (``{file, ...}`` / ``{hub, name, split}``), and Hub loading.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets

from amber_align.data.languages import is_known_language, normalize_language
from amber_align.errors import ConfigError, DataFormatError
from amber_align.io_utils import read_text_lines
from amber_align.logging_utils import get_logger

__all__ = ["read_lines", "infer_language", "file_language", "merge_lang", "source_fields", "take_first", "load_hub",
           "require_columns", "hub_language"]

logger = get_logger(__name__)

_MLQA = re.compile(r"context[-_.]([A-Za-z]{2,3})[-_.]question[-_.][A-Za-z]{2,3}|^mlqa\.([A-Za-z]{2,3})\.[A-Za-z]{2,3}$")


def read_lines(path: str | os.PathLike, *, encoding: str | None = None,
               fallback: str | None = None) -> tuple[list[str], str]:
    """Lines of a task data file and the encoding used (:func:`amber_align.io_utils.read_text_lines`)."""
    return read_text_lines(path, what="data file", encoding=encoding, fallback=fallback)


def infer_language(name: str) -> str | None:
    """The language a file or config name names: MLQA's context language (``dev-context-de-question-en.json``,
    ``mlqa.de.en``), else the right-most ``.``/``-``/``_`` separated part that is a language code."""
    base = Path(str(name)).name
    match = _MLQA.search(base)
    if match:
        return normalize_language(match.group(1) or match.group(2))
    for part in reversed(re.split(r"[._-]", base)):
        if part and is_known_language(part):
            return normalize_language(part)
    return None


def file_language(path: str | os.PathLike, lang: str | None) -> str:
    """``lang`` normalised, else the language of the file name; a different file-name language is logged."""
    inferred = infer_language(str(path))
    if lang is not None:
        lang = normalize_language(lang)
        if inferred is not None and inferred != lang:
            logger.warning("%s: the file name suggests language %r; using lang %r as given", path, inferred, lang)
        return lang
    if inferred is None:
        raise ConfigError(f"lang is not set and cannot be inferred from the file name {Path(path).name!r}")
    return inferred


def merge_lang(from_source: str | None, given: str | None) -> str | None:
    """One language from the source mapping's ``lang`` and the caller's ``lang``; both given must agree."""
    a = normalize_language(from_source) if from_source is not None else None
    b = normalize_language(given) if given is not None else None
    if a is not None and b is not None and a != b:
        raise ConfigError(f"the data source says lang {a!r} but it is read as language {b!r}")
    return a or b


def source_fields(source: Any, task: str, file_keys: Sequence[str], shared_keys: Sequence[str] = ()) -> dict[str, Any]:
    """A path or a source mapping -> a checked dict with exactly one of ``file``/``hub`` (``split`` with ``hub``).

    ``file_keys`` apply to files only; ``shared_keys`` (and ``lang``, ``max_examples``) to both forms."""
    if isinstance(source, (str, os.PathLike)):
        return {"file": os.fspath(source)}
    if not isinstance(source, Mapping):
        raise ConfigError(f"a {task} data source is a path or a mapping, got {type(source).__name__}: {source!r:.80}")
    valid = ("file", "hub", "name", "split", "lang", "max_examples", *file_keys, *shared_keys)
    unknown = sorted(set(source) - set(valid))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {task} data source; valid keys: {list(valid)}")
    fields = {k: v for k, v in source.items() if v is not None}
    if ("file" in fields) == ("hub" in fields):
        raise ConfigError(f"a {task} data source needs exactly one of 'file' or 'hub', got keys {sorted(fields)}")
    if "file" in fields:
        fields["file"] = os.fspath(fields["file"])
        misplaced = sorted({"name", "split"} & set(fields))
    elif not isinstance(fields["hub"], str) or "split" not in fields:
        raise ConfigError(f"a {task} hub source needs a dataset id and 'split' (e.g. {{hub: xnli, name: es, split: "
                          f"test}}), got {dict(source)!r:.120}")
    else:
        misplaced = sorted(set(file_keys) & set(fields))
    if misplaced:
        form = f"file {fields['file']!r}" if "file" in fields else f"hub {fields['hub']!r}"
        raise ConfigError(f"{task} data source: {misplaced} do(es) not apply with {form}")
    n = fields.get("max_examples")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise ConfigError(f"max_examples must be a positive integer, got {n!r}")
    return fields


def take_first(ds: datasets.Dataset, max_examples: int | None) -> datasets.Dataset:
    return ds.select(range(max_examples)) if max_examples is not None and len(ds) > max_examples else ds


def load_hub(fields: Mapping[str, Any]) -> tuple[datasets.Dataset, str]:
    """``datasets.load_dataset(hub, name, split=split)`` with errors as :class:`ConfigError`; also a description."""
    hub, name, split = fields["hub"], fields.get("name"), fields["split"]
    what = f"hub dataset {hub!r}" + (f" ({name!r}, split {split!r})" if name else f" (split {split!r})")
    try:
        ds = datasets.load_dataset(hub, name, split=split)
    except (OSError, ValueError, ConnectionError, ImportError) as err:
        raise ConfigError(f"cannot load {what}: {type(err).__name__}: {err}") from err
    if not isinstance(ds, datasets.Dataset):
        raise ConfigError(f"{what} is a {type(ds).__name__}, not one split; give 'split'")
    return ds, what


def require_columns(ds: datasets.Dataset, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise DataFormatError(f"{what}: missing column(s) {missing}; columns present: {ds.column_names}")


def hub_language(fields: Mapping[str, Any], what: str) -> str:
    lang = infer_language(fields["name"]) if fields.get("name") else None
    if lang is None:
        raise ConfigError(f"{what}: lang is not set and cannot be inferred from the config name {fields.get('name')!r}")
    return lang

"""Parallel data held in a ``datasets`` dataset: a Hub id or a saved folder (``ParallelSource(dataset=...)``), or a
``datasets.Dataset`` handed to ``load_parallel`` / a trainer, with ``src``/``tgt`` (or named) text columns and
``src_lang``/``tgt_lang``, or the Hub's ``translation`` column of ``{lang: text}`` (WMT, OPUS). Read whole into
:class:`RawPairs`, whose :meth:`RawPairs.rows` are the same ``RawRow`` s as the file readers of
:mod:`amber_align.data.readers` give, checked and filtered by the same ``RowCheck``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets

from amber_align.data.languages import normalize_language
from amber_align.data.readers import RawRow, checked_text
from amber_align.errors import ConfigError, DataFormatError

__all__ = ["RawPairs", "checked_text", "from_dataset", "load_dataset_source"]


@dataclass
class RawPairs:
    """One source as read: texts, 1-based line numbers, languages (one per row), links if the data had them."""

    src: list[str]
    tgt: list[str]
    line: list[int]
    src_lang: list[str]
    tgt_lang: list[str]
    links: list[list[list[int]]] | None = None
    has_links: list[bool] | None = None

    def rows(self) -> Iterator[RawRow]:
        """The pairs as the readers' rows (texts stripped), for ``readers.RowCheck``."""
        links = self.links if self.links is not None else itertools.repeat(None)
        has = self.has_links if self.has_links is not None else itertools.repeat(False)
        for line, src, tgt, src_lang, tgt_lang, row_links, row_has in zip(
                self.line, self.src, self.tgt, self.src_lang, self.tgt_lang, links, has):
            yield RawRow(line, src.strip(), tgt.strip(), src_lang, tgt_lang, row_links, bool(row_has))



def load_dataset_source(source: Any) -> datasets.Dataset:
    """The split ``source.split`` of ``source.dataset`` (a ``ParallelSource``): a ``save_to_disk`` folder, else
    ``datasets.load_dataset`` (a Hub id or a loading-script folder)."""
    name = source.dataset
    local = Path(name)
    if local.is_file():  # else load_dataset would look for it on the Hub
        raise ConfigError(f"dataset {name!r} is a local file: give it as file=... (a .tsv, .jsonl, .csv or bar file)")
    try:
        if not (local.is_dir() and any((local / f).exists() for f in ("state.json", "dataset_dict.json"))):
            return datasets.load_dataset(name, source.dataset_config, split=source.split)
        loaded = datasets.load_from_disk(str(local))
    except (OSError, ValueError, ConnectionError) as err:
        raise ConfigError(f"cannot load dataset {name!r} (config {source.dataset_config!r}, split "
                          f"{source.split!r}): {type(err).__name__}: {err}") from err
    if isinstance(loaded, datasets.DatasetDict):
        if source.split not in loaded:
            raise ConfigError(f"dataset {name!r} has no split {source.split!r}; splits: {list(loaded)}")
        loaded = loaded[source.split]
    return loaded


def _from_translation(ds: datasets.Dataset, src_lang: str | None, tgt_lang: str | None, what: str) -> RawPairs:
    """A ``translation`` column of ``{lang: text}`` (the Hub's WMT/OPUS layout, ``datasets.Translation``): the two
    languages are ``src_lang``/``tgt_lang`` when given, else the feature's (or the first row's) two keys."""
    feature = ds.features["translation"]
    if src_lang and tgt_lang:
        keys = [src_lang, tgt_lang]
    elif isinstance(feature, datasets.Translation):
        keys = list(feature.languages)
    else:
        keys = list(ds[0]["translation"]) if len(ds) else []
    if len(keys) != 2:
        raise DataFormatError(f"{what}: the translation column holds {len(keys)} languages {keys}; set src_lang "
                              "and tgt_lang to pick two")
    texts: dict[str, list[str]] = {"src": [], "tgt": []}
    for number, row in enumerate(ds["translation"], 1):
        for side, key in zip(("src", "tgt"), keys):
            if not isinstance(row, dict) or key not in row:
                found = list(row) if isinstance(row, dict) else type(row).__name__
                raise DataFormatError(f"translation has no {key!r} (found {found})", path=what, line=number)
            texts[side].append(row[key])
    columns = {**texts, **{c: ds[c] for c in ("links", "has_links") if c in ds.column_names}}
    return from_dataset(datasets.Dataset.from_dict(columns), "src", "tgt", keys[0], keys[1], what)


def from_dataset(ds: Any, src_column: str, tgt_column: str, src_lang: str | None, tgt_lang: str | None,
                 what: str) -> RawPairs:
    """Texts, languages (given, else the dataset's columns, normalised) and links (if a ``links`` column exists)."""
    if isinstance(ds, datasets.DatasetDict):
        raise ConfigError(f"{what} is a DatasetDict with splits {list(ds)}; pass one split")
    present = list(ds.column_names)
    if "translation" in present and src_column not in present:
        return _from_translation(ds, src_lang, tgt_lang, what)
    needed = [src_column, tgt_column] + [c for c, v in (("src_lang", src_lang), ("tgt_lang", tgt_lang)) if not v]
    missing = [c for c in needed if c not in present]
    if missing:
        hint = " (or set src_lang/tgt_lang)" if {"src_lang", "tgt_lang"} & set(missing) else ""
        raise DataFormatError(f"{what}: missing column(s) {missing}{hint}; columns present: {present}")
    n = len(ds)
    src = [checked_text(v, what, i, src_column) for i, v in enumerate(ds[src_column], 1)]
    tgt = [checked_text(v, what, i, tgt_column) for i, v in enumerate(ds[tgt_column], 1)]
    langs, cache = [], {}  # normalise each distinct code once
    for column, given in (("src_lang", src_lang), ("tgt_lang", tgt_lang)):
        values = [given] * n if given else [checked_text(v, what, i, column) for i, v in enumerate(ds[column], 1)]
        langs.append([cache[v] if v in cache else cache.setdefault(v, normalize_language(v)) for v in values])
    raw = RawPairs(src, tgt, list(range(1, n + 1)), langs[0], langs[1])
    if "links" in present:
        raw.links = [[list(link) for link in row] if row else [] for row in ds["links"]]
        raw.has_links = [bool(x) for x in ds["has_links"]] if "has_links" in present else [True] * n
    return raw

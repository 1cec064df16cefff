"""NLI task data -> one ``datasets.Dataset`` with the columns ``premise``, ``hypothesis``, ``label``, ``lang``.

Sources: XNLI TSV files (XTREME's ``dev-en.tsv`` / labelled ``test-es.tsv`` with a genre column, or the original
XNLI 1.0 ``xnli.test.tsv`` with a header and a ``language`` column; SICK's header is understood too), or the Hub's
``xnli`` through :func:`load_nli`. Labels are strings from :data:`NLI_LABELS`, whose order is the ClassLabel order
of the Hub's ``xnli`` (0 entailment, 1 neutral, 2 contradiction), so a model trained on either source keeps the
same label ids. Fields are split on tabs only and never unquoted (``csv.QUOTE_NONE``): premises hold quotes.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets

from amber_align.data.languages import normalize_language
from amber_align.errors import ConfigError, DataFormatError
from amber_align.logging_utils import get_logger
from amber_align.tasks.sources import (
    file_language,
    hub_language,
    load_hub,
    merge_lang,
    read_lines,
    source_fields,
    take_first,
)

__all__ = ["NLI_LABELS", "NLI_FEATURES", "read_xnli_tsv", "load_nli"]

logger = get_logger(__name__)

NLI_LABELS = ("entailment", "neutral", "contradiction")
"""The labels, in the Hub ``xnli`` ClassLabel order (label id = index)."""

_STRING = datasets.Value("string")
NLI_FEATURES = datasets.Features({"premise": _STRING, "hypothesis": _STRING, "label": _STRING, "lang": _STRING})
"""The columns (and types) of every dataset this module returns."""

_LABEL_ALIASES = {"contradictory": "contradiction"}
# Header names per column: XTREME/ours, original XNLI 1.0 / MultiNLI, SICK.
_HEADER_NAMES = {
    "premise": ("premise", "sentence1", "sentence_a"),
    "hypothesis": ("hypothesis", "sentence2", "sentence_b"),
    "label": ("label", "gold_label", "entailment_judgment"),
    "lang": ("language", "lang"),
}
_POSITIONAL = "premise<TAB>hypothesis<TAB>label, optionally <TAB>genre"


def _label(value: str, path: str | Path | None, line: int | None, what: str = "") -> str:
    label = value.strip().lower()
    label = _LABEL_ALIASES.get(label, label)
    if label not in NLI_LABELS:
        hint = " (an unlabelled example?)" if label in ("", "-") else ""
        raise DataFormatError(f"{what}unknown label {value!r}{hint}; expected one of {', '.join(NLI_LABELS)} "
                              "('contradictory' is read as 'contradiction')", path=path, line=line)
    return label


def _header_columns(row: list[str], path: str | os.PathLike, line: int) -> dict[str, int] | None:
    """Column positions by name when ``row`` is a header (it names two known columns), else None."""
    lowered = [field.strip().lower() for field in row]
    found = {key: next((lowered.index(n) for n in names if n in lowered), None) for key, names in _HEADER_NAMES.items()}
    if sum(v is not None for v in found.values()) < 2:
        return None
    missing = [key for key in ("premise", "hypothesis", "label") if found[key] is None]
    if missing:
        accepted = {key: _HEADER_NAMES[key] for key in missing}
        raise DataFormatError(f"header row has no column for {missing} (accepted names: {accepted}); columns "
                              f"found: {row}", path=path, line=line)
    return {key: pos for key, pos in found.items() if pos is not None}


def read_xnli_tsv(path: str | os.PathLike, *, lang: str | None = None) -> datasets.Dataset:
    """Read an XNLI-style TSV file (UTF-8).

    Without a header: ``premise<TAB>hypothesis<TAB>label`` with an optional 4th (genre) column, the same count on
    every line. With a header (detected by its column names): columns by name, ``premise``/``sentence1``/
    ``sentence_A``, ``hypothesis``/``sentence2``/``sentence_B``, ``label``/``gold_label``/``entailment_judgment``
    and optionally ``language``. Labels are case-insensitive; ``contradictory`` is ``contradiction``.

    ``lang``: the rows' language; default the ``language`` column, else the file name (``dev-en.tsv`` -> ``en``).
    With a ``language`` column (one XNLI 1.0 file holds all 15 languages) and ``lang`` given, only that
    language's rows are kept.

    Raises:
        DataFormatError: a line with the wrong number of fields, an unknown label (both with ``path:line``; the
            label message lists the expected labels), an empty premise or hypothesis, no row of ``lang``.
        ConfigError: unreadable file, language neither given nor inferable.
    """
    lines, _ = read_lines(path)
    want = normalize_language(lang) if lang is not None else None
    columns: dict[str, int] = {}
    expected_fields: int | None = None
    reference = ""
    rows: dict[str, list[str]] = {"premise": [], "hypothesis": [], "label": [], "lang": []}
    row_langs: list[str] = []
    cache: dict[str, str] = {}
    blank = 0
    reader = csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
    for number, line in enumerate(lines, 1):
        try:
            row = next(reader)
        except csv.Error as err:
            raise DataFormatError(f"unreadable TSV line: {err}", path=path, line=number) from None
        if not line.strip():
            blank += 1
            continue
        if expected_fields is None:  # the first non-blank line: a header, or the first data row
            columns, expected_fields = _header_columns(row, path, number), len(row)
            if columns is not None:
                reference = "the header"
                continue
            if len(row) not in (3, 4):
                hint = " (an unlabelled file? XTREME's test-xx.tsv ship without labels)" if len(row) == 2 else ""
                raise DataFormatError(f"expected 3 or 4 tab-separated fields ({_POSITIONAL}), found "
                                      f"{len(row)}{hint}", path=path, line=number)
            columns, reference = {"premise": 0, "hypothesis": 1, "label": 2}, f"line {number}"
        if len(row) != expected_fields:
            raise DataFormatError(f"expected {expected_fields} tab-separated fields like {reference}, found "
                                  f"{len(row)} (a tab inside a sentence?)", path=path, line=number)
        if "lang" in columns:
            code = row[columns["lang"]].strip()
            try:
                code = cache.get(code) or cache.setdefault(code, normalize_language(code))
            except ConfigError as err:
                raise DataFormatError(f"language column: {err}", path=path, line=number) from None
            if want is not None and code != want:
                continue
            row_langs.append(code)
        for key in ("premise", "hypothesis"):
            if not row[columns[key]].strip():
                raise DataFormatError(f"empty {key}", path=path, line=number)
            rows[key].append(row[columns[key]])
        rows["label"].append(_label(row[columns["label"]], path, number))
    if not rows["label"] and (want is None or not cache):
        raise DataFormatError("no examples: the file is empty" + (" (a header only)" if columns else ""), path=path)
    if "lang" in columns:
        if not row_langs:
            raise DataFormatError(f"no rows with language {want!r}; languages in the file: {sorted(cache.values())}",
                                  path=path)
        rows["lang"] = row_langs
    else:
        rows["lang"] = [file_language(path, lang)] * len(rows["label"])
    counts = Counter(rows["label"])
    logger.info("%s: %d pairs (%s), languages %s%s", path, len(rows["label"]),
                ", ".join(f"{label} {counts[label]}" for label in NLI_LABELS), ", ".join(sorted(set(rows["lang"]))),
                f", {blank} blank lines skipped" if blank else "")
    return datasets.Dataset.from_dict(rows, features=NLI_FEATURES)


def load_nli(source: str | os.PathLike | Mapping[str, Any], *, lang: str | None = None) -> datasets.Dataset:
    """Read NLI data from a path, ``{file, lang, max_examples}`` or ``{hub, name, split, lang, max_examples}``
    (``datasets.load_dataset``, e.g. ``{hub: xnli, name: es, split: test}``; ClassLabel ids become names).
    ``lang`` (e.g. the eval_data key) and the source's ``lang`` must agree when both are given."""
    fields = source_fields(source, "nli", ())
    lang = merge_lang(fields.get("lang"), lang)
    ds = _nli_from_hub(fields, lang) if "hub" in fields else read_xnli_tsv(fields["file"], lang=lang)
    return take_first(ds, fields.get("max_examples"))


def _nli_from_hub(fields: Mapping[str, Any], lang: str | None) -> datasets.Dataset:
    ds, what = load_hub(fields)
    columns = {key: next((n for n in names if n in ds.column_names), None) for key, names in _HEADER_NAMES.items()}
    missing = [key for key in ("premise", "hypothesis", "label") if columns[key] is None]
    if missing:
        raise DataFormatError(f"{what}: no column for {missing} (accepted names: "
                              f"{ {k: _HEADER_NAMES[k] for k in missing} }); columns present: {ds.column_names}")
    premises, hypotheses = list(ds[columns["premise"]]), list(ds[columns["hypothesis"]])
    if premises and not isinstance(premises[0], str):  # xnli 'all_languages': one dict of translations per row
        raise DataFormatError(f"{what}: column {columns['premise']!r} holds {type(premises[0]).__name__}, not text; "
                              "load one language's config (e.g. name: es)")
    feature = ds.features[columns["label"]]
    names = feature.names if isinstance(feature, datasets.ClassLabel) else None
    if lang is not None:
        keep: Sequence[int] = range(len(ds))
        langs = [lang] * len(ds)
        if columns["lang"] is not None:  # one split with every language (xtreme 'XNLI'): keep lang's rows
            keep = [i for i, c in enumerate(ds[columns["lang"]]) if normalize_language(c) == lang]
            premises, hypotheses, langs = [premises[i] for i in keep], [hypotheses[i] for i in keep], [lang] * len(keep)
    elif columns["lang"] is not None:
        keep, cache = range(len(ds)), dict[str, str]()
        langs = [cache.get(c) or cache.setdefault(c, normalize_language(c)) for c in ds[columns["lang"]]]
    else:
        keep, langs = range(len(ds)), [hub_language(fields, what)] * len(ds)
    raw_labels = list(ds[columns["label"]])
    labels = []
    for i in keep:
        value = raw_labels[i]
        if names is not None:
            if not 0 <= value < len(names):
                raise DataFormatError(f"{what}: row {i}: label {value} is not a class id of {names} (unlabelled?)")
            value = names[value]
        labels.append(_label(str(value), None, None, what=f"{what}: row {i}: "))
    if not labels:
        raise DataFormatError(f"{what}: no rows" + (f" with language {lang!r}" if lang else ""))
    return datasets.Dataset.from_dict({"premise": list(premises), "hypothesis": list(hypotheses), "label": labels,
                                       "lang": langs}, features=NLI_FEATURES)


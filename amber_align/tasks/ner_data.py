"""NER task data -> one ``datasets.Dataset`` with the columns ``tokens``, ``ner_tags`` (IOB2 strings), ``lang``.

Sources: CoNLL-2002/2003 files (:func:`read_conll`), WikiANN files of Rahimi et al. (:func:`read_wikiann`), or a
Hub dataset (``wikiann``, ``xtreme`` PAN-X, ``conll2003``, ...) through :func:`load_ner`. Tags stay strings so that
a training label list and an evaluation file can be compared by name (:func:`check_label_set`): CoNLL has MISC,
WikiANN has not, and a silent id mismatch would score the wrong entity types.

Why the care with the raw files: CoNLL-2002 Spanish/Dutch are Latin-1 (decoded as UTF-8 they fail or turn
"Coruña" into mojibake), CoNLL-2003 English is IOB1 (an entity starts with ``I-``; fed as IOB2 its spans are cut
differently and span F1 changes), and columns are split on spaces/tabs only (``str.split`` would also split a
Latin-1 token at a no-break space). Reading lines, the language of a file name, source mappings and Hub loading live in
:mod:`amber_align.tasks.sources`, shared with the NLI and QA readers.
"""

from __future__ import annotations

import codecs
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets

from amber_align.data.languages import normalize_language
from amber_align.errors import ConfigError, DataFormatError
from amber_align.logging_utils import get_logger
from amber_align.tasks.sources import read_lines, file_language, merge_lang, source_fields, take_first, load_hub, require_columns, hub_language

__all__ = ["NER_FEATURES", "read_conll", "read_wikiann", "iob1_to_iob2", "check_label_set", "apply_label_mapping",
           "load_ner"]

logger = get_logger(__name__)

NER_FEATURES = datasets.Features({
    "tokens": datasets.List(datasets.Value("string")),
    "ner_tags": datasets.List(datasets.Value("string")),
    "lang": datasets.Value("string"),
})  # fmt: skip
"""The columns (and types) of every dataset this module returns."""

_TAG = re.compile(r"^(?:O|[BI]-\S+)$")
_COLUMNS = re.compile(r"[ \t]+")  # CoNLL columns: spaces/tabs only (a Latin-1 token may hold U+00A0)
_WIKIANN = re.compile(r"^([A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*):(.*)$", re.S)
_SCHEMES = ("auto", "iob1", "iob2")


# ------------------------------------------------------------------------------------------------------------ IOB
def iob1_to_iob2(tags: Sequence[str]) -> list[str]:
    """IOB1 -> IOB2: an ``I-X`` that starts an entity (after ``O``, another type, or at the start) becomes ``B-X``.

    In IOB1 ``B-X`` only separates two adjacent entities of the same type, and it keeps that meaning in IOB2.
    The conversion leaves valid IOB2 unchanged, so applying it to IOB2 data only repairs stray entity-initial
    ``I-`` tags.
    """
    out: list[str] = []
    previous = "O"
    for tag in tags:
        if tag.startswith("I-") and (previous == "O" or previous[2:] != tag[2:]):
            tag = "B-" + tag[2:]
        out.append(tag)
        previous = tag
    return out


def _entity_starts(tags: Sequence[str]) -> tuple[int, int]:
    """(entities starting with ``I-``, entities starting with ``B-``): IOB1 has only the first, IOB2 the second."""
    i_starts = b_starts = 0
    previous = "O"
    for tag in tags:
        if tag != "O" and (previous == "O" or previous[2:] != tag[2:]):
            if tag[0] == "I":
                i_starts += 1
            else:
                b_starts += 1
        previous = tag
    return i_starts, b_starts


def _apply_scheme(sentences: list[list[str]], scheme: str, where: str) -> list[list[str]]:
    """Convert IOB1 to IOB2 (``iob1``, or ``auto`` when an entity starts with ``I-``) and say what was done."""
    counts = [_entity_starts(tags) for tags in sentences]
    i_starts, b_starts = sum(c[0] for c in counts), sum(c[1] for c in counts)
    if scheme == "iob2" or (scheme == "auto" and i_starts == 0):
        if i_starts:
            logger.warning("%s: %d entities start with I- although scheme='iob2'; kept as they are", where, i_starts)
        return sentences
    if scheme == "auto" and b_starts > i_starts:
        logger.warning("%s: IOB2 tags (%d entities start with B-) with %d entity-initial I- tag(s) (annotation "
                       "slips): those become B-", where, b_starts, i_starts)
    else:
        logger.info("%s: %s -> IOB2: %d entity-initial I- tags became B- (%d entities started with B-)", where,
                    "IOB1" if scheme == "iob1" else "IOB1 (detected)", i_starts, b_starts)
    return [iob1_to_iob2(tags) for tags in sentences]


def _check_tag(tag: str, path: str | Path, line: int | None) -> None:
    if not _TAG.match(tag):
        raise DataFormatError(f"tag {tag!r} is not 'O', 'B-<type>' or 'I-<type>' (IOB1/IOB2 tags expected)",
                              path=path, line=line)


# ----------------------------------------------------------------------------------------------------- the readers
def read_conll(path: str | os.PathLike, *, lang: str | None = None, encoding: str | None = None,
               tag_column: int = -1, scheme: str = "auto") -> datasets.Dataset:
    """Read a CoNLL-2002/2003 file: one token per line (token first, tag in ``tag_column``), blank lines between
    sentences, ``-DOCSTART-`` lines dropped (each also ends a sentence).

    ``encoding``: default UTF-8, falling back to Latin-1 when the file is not valid UTF-8 (CoNLL-2002 esp/ned);
    the encoding used is logged. ``scheme``: ``iob1`` converts to IOB2, ``iob2`` keeps the tags, ``auto``
    converts when any entity starts with ``I-`` (CoNLL-2003 eng.*). ``lang``: default from the file name
    (``esp.testb`` -> ``es``, ``ned.train`` -> ``nl``, ``eng.train`` -> ``en``).

    Raises:
        DataFormatError: a non-blank line with fewer than 2 columns, no column ``tag_column``, or a tag that is not
            ``O``/``B-X``/``I-X`` (the message gives ``path:line`` and the tag).
        ConfigError: unreadable file, bad ``scheme``/``tag_column``/``encoding``, language not inferable.
    """
    if scheme not in _SCHEMES:
        raise ConfigError(f"scheme must be one of {_SCHEMES}, got {scheme!r}")
    if not isinstance(tag_column, int) or isinstance(tag_column, bool) or tag_column == 0:
        raise ConfigError(f"tag_column must be a non-zero integer column index (0 is the token), got {tag_column!r}")
    lines, used = read_lines(path, encoding=encoding, fallback="latin-1")
    row_lang = file_language(path, lang)
    tokens: list[list[str]] = [[]]  # the last sentence is the one being read
    tags: list[list[str]] = [[]]
    docstarts = 0
    for number, line in enumerate(lines, 1):
        stripped = line.strip(" \t")
        cols = _COLUMNS.split(stripped) if stripped else []
        if not cols or cols[0] == "-DOCSTART-":  # a blank line or a -DOCSTART- line ends a sentence
            docstarts += bool(cols)
            if tokens[-1]:
                tokens.append([])
                tags.append([])
            continue
        if len(cols) < 2:
            raise DataFormatError(f"expected at least 2 columns (token ... tag) separated by spaces or tabs, found "
                                  f"1: {line!r:.80}", path=path, line=number)
        index = tag_column if tag_column > 0 else len(cols) + tag_column
        if not 0 < index < len(cols):
            raise DataFormatError(f"tag_column {tag_column} asks for a column this line does not have (it has "
                                  f"{len(cols)} columns): {line!r:.80}", path=path, line=number)
        _check_tag(cols[index], path, number)
        tokens[-1].append(cols[0])
        tags[-1].append(cols[index])
    if not tokens[-1]:
        del tokens[-1], tags[-1]
    if not tokens:
        raise DataFormatError("no sentences: the file is empty", path=path)
    tags = _apply_scheme(tags, scheme, str(path))
    if codecs.lookup(used).name == "iso8859-1":
        controls = sum(1 for sent in tokens for tok in sent if any("\x80" <= ch <= "\x9f" for ch in tok))
        if controls:
            logger.warning("%s: %d token(s) hold C1 control characters (bytes 0x80-0x9f, not text in Latin-1): "
                           "the file has corrupt characters; kept as they are", path, controls)
    logger.info("%s: %d sentences, %d tokens, lang %s, encoding %s, %d -DOCSTART- lines dropped", path,
                len(tokens), sum(map(len, tokens)), row_lang, used, docstarts)
    return datasets.Dataset.from_dict({"tokens": tokens, "ner_tags": tags, "lang": [row_lang] * len(tokens)},
                                      features=NER_FEATURES)


def read_wikiann(path: str | os.PathLike, *, lang: str | None = None) -> datasets.Dataset:
    """Read a WikiANN file of Rahimi et al.: ``lang:token<TAB>tag`` lines (UTF-8, IOB2), blank lines between
    sentences. The prefix up to the first ``:`` is the language (a token may itself hold ``:``); each sentence gets
    its prefix's language (normalised). ``lang`` given: every prefix must name that language.

    Raises:
        DataFormatError: a line without exactly one tab, without an ``xx:`` prefix, with an empty token or a bad
            tag; a sentence whose tokens have different prefixes; a prefix that is not ``lang``.
    """
    lines, _ = read_lines(path)
    want = normalize_language(lang) if lang is not None else None
    tokens: list[list[str]] = [[]]  # the last sentence is the one being read
    tags: list[list[str]] = [[]]
    langs: list[str] = [""]
    seen: dict[str, str] = {}  # prefix -> normalised language
    for number, line in enumerate(lines, 1):
        if not line.strip():
            if tokens[-1]:
                tokens.append([])
                tags.append([])
                langs.append("")
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise DataFormatError(f"expected 'lang:token<TAB>tag', found {len(fields)} tab-separated field(s): "
                                  f"{line!r:.80}", path=path, line=number)
        match = _WIKIANN.match(fields[0])
        if match is None:
            raise DataFormatError(f"token {fields[0]!r:.60} has no 'xx:' language prefix (WikiANN lines are "
                                  "'lang:token<TAB>tag')", path=path, line=number)
        prefix, token = match.groups()
        if not token:
            raise DataFormatError(f"empty token after the prefix {prefix + ':'!r}", path=path, line=number)
        tag = fields[1].strip()
        _check_tag(tag, path, number)
        code = seen.get(prefix) or seen.setdefault(prefix, normalize_language(prefix))
        if want is not None and code != want:
            raise DataFormatError(f"prefix {prefix + ':'!r} names language {code!r}, but lang {want!r} was asked "
                                  "for (wrong file for this language?)", path=path, line=number)
        if langs[-1] and code != langs[-1]:
            raise DataFormatError(f"prefix {prefix + ':'!r} differs from the language {langs[-1]!r} of the "
                                  "sentence's first token", path=path, line=number)
        langs[-1] = code
        tokens[-1].append(token)
        tags[-1].append(tag)
    if not tokens[-1]:
        del tokens[-1], tags[-1], langs[-1]
    if not tokens:
        raise DataFormatError("no sentences: the file is empty", path=path)
    logger.info("%s: %d sentences, %d tokens, languages %s", path, len(tokens), sum(map(len, tokens)),
                ", ".join(sorted(set(langs))) or "-")
    return datasets.Dataset.from_dict({"tokens": tokens, "ner_tags": tags, "lang": langs}, features=NER_FEATURES)


# ------------------------------------------------------------------------------------------------------ label sets
def _check_mapping(mapping: Mapping[str, str]) -> None:
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"label_mapping must be a mapping {{label: label}}, got {type(mapping).__name__}")
    for key, value in mapping.items():
        if not isinstance(key, str) or not isinstance(value, str) or not key or not value:
            raise ConfigError(f"label_mapping entries must be non-empty strings, got {key!r}: {value!r}")
        if not key.startswith(("B-", "I-")) and value != "O" and value.startswith(("B-", "I-")):
            raise ConfigError(f"label_mapping[{key!r}]: an entity-type key maps to 'O' or another type, not to a "
                              f"tag ({value!r}); write {value[2:]!r}")


def _map_tag(tag: str, mapping: Mapping[str, str]) -> str:
    """The tag ``tag`` becomes: full-tag keys (``B-MISC``) first, then entity-type keys (``MISC``, prefix kept)."""
    if tag in mapping:
        value = mapping[tag]
        return value if value == "O" or value[:2] in ("B-", "I-") else f"{tag[:2]}{value}"
    if tag != "O" and tag[2:] in mapping:
        value = mapping[tag[2:]]
        return "O" if value == "O" else f"{tag[:2]}{value}"
    return tag


def check_label_set(found: Iterable[str], expected: Sequence[str], *, source: str,
                    mapping: Mapping[str, str] | None = None) -> list[str]:
    """Check that every tag in ``found`` (after ``mapping``) is in the training label list ``expected``.

    ``mapping`` keys are entity types (``{"MISC": "O"}``, ``{"GPE": "LOC"}``) or full tags (``{"B-MISC": "O"}``);
    mapping to ``"O"`` drops the entity. Returns the distinct tags after mapping, in ``expected`` order.

    Raises:
        ConfigError: a tag outside ``expected``: names the label (entity type), its counts, ``source`` (the file)
            and the expected label set, and suggests a mapping.
    """
    mapping = mapping or {}
    _check_mapping(mapping)
    if not expected:
        raise ConfigError(f"{source}: the label list is empty")
    order = {tag: i for i, tag in enumerate(expected)}
    counts = Counter(found)
    unknown: dict[str, Counter] = {}
    mapped_to_unknown: list[str] = []
    result: set[str] = set()
    for tag, n in counts.items():
        mapped = _map_tag(tag, mapping)
        if mapped in order:
            result.add(mapped)
        elif mapped != tag:
            mapped_to_unknown.append(f"{tag!r} -> {mapped!r}")
        else:
            unknown.setdefault(tag[2:] if tag != "O" else "O", Counter())[tag] += n
    types = sorted({t[2:] for t in expected if t != "O"})
    where = f"label list {list(expected)} (entity types {', '.join(types) or 'none'})"
    if mapped_to_unknown:
        raise ConfigError(f"{source}: label_mapping maps {', '.join(sorted(mapped_to_unknown))}, which the {where} "
                          "does not have")
    if unknown:
        described = "; ".join(f"entity type {kind!r} ({', '.join(f'{t} {n}x' for t, n in sorted(c.items()))})"
                              for kind, c in sorted(unknown.items()))
        example = next(iter(sorted(unknown)))
        raise ConfigError(f"{source}: label(s) not in the training {where}: {described}. Add them to label_list, or "
                          f"map them with label_mapping, e.g. {{{example!r}: 'O'}} drops those entities")
    return sorted(result, key=order.__getitem__)


def apply_label_mapping(ds: datasets.Dataset, label_list: Sequence[str], mapping: Mapping[str, str] | None = None,
                        source: str = "data") -> datasets.Dataset:
    """Check ``ds``'s tags against ``label_list`` (:func:`check_label_set`) and rewrite them through ``mapping``."""
    found = Counter(tag for row in ds["ner_tags"] for tag in row)
    check_label_set(found.elements(), label_list, source=source, mapping=mapping)
    lookup = {tag: _map_tag(tag, mapping or {}) for tag in found}
    changed = {tag: new for tag, new in lookup.items() if new != tag}
    if not changed:
        return ds
    logger.info("%s: label_mapping rewrote %d tags (%s)", source, sum(found[t] for t in changed),
                ", ".join(f"{t}->{n}" for t, n in sorted(changed.items())))
    return ds.map(lambda batch: {"ner_tags": [[lookup[t] for t in row] for row in batch["ner_tags"]]},
                  batched=True, desc=f"label_mapping {source}")


# ----------------------------------------------------------------------------------------------------- load_ner
_NER_FILE_KEYS = ("format", "encoding", "scheme", "tag_column")


def load_ner(source: str | os.PathLike | Mapping[str, Any], *, lang: str | None = None) -> datasets.Dataset:
    """Read NER data from a path (CoNLL or WikiANN, guessed from the first line), ``{file, format, lang, encoding,
    scheme, tag_column, max_examples}`` or ``{hub, name, split, lang, max_examples}`` (``datasets.load_dataset``;
    ``ner_tags`` ClassLabel ids become their names). ``lang`` (e.g. the eval_data key) and the source's ``lang``
    must agree when both are given."""
    fields = source_fields(source, "ner", _NER_FILE_KEYS)
    lang = merge_lang(fields.get("lang"), lang)
    if "hub" in fields:
        ds = _ner_from_hub(fields, lang)
    else:
        path = fields["file"]
        fmt = fields.get("format") or _guess_ner_format(path)
        if fmt == "conll":
            ds = read_conll(path, lang=lang, encoding=fields.get("encoding"),
                            tag_column=fields.get("tag_column", -1), scheme=fields.get("scheme", "auto"))
        elif fmt == "wikiann":
            extra = [k for k in ("encoding", "scheme", "tag_column") if k in fields]
            if extra:
                raise ConfigError(f"ner source {path!r}: {extra} apply to format 'conll', not 'wikiann'")
            ds = read_wikiann(path, lang=lang)
        else:
            raise ConfigError(f"ner source {path!r}: unknown format {fmt!r}; expected 'conll' or 'wikiann'")
    return take_first(ds, fields.get("max_examples"))


def _guess_ner_format(path: str) -> str:
    """``wikiann`` when the first non-blank line looks like ``xx:token<TAB>tag``, else ``conll``."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(65536).decode("utf-8", errors="replace")
    except OSError as err:
        raise ConfigError(f"data file {str(path)!r} cannot be read: {err.strerror or err}") from None
    first = next((line.strip("\r") for line in head.split("\n") if line.strip()), "")
    fields = first.split("\t")
    return "wikiann" if len(fields) == 2 and _WIKIANN.match(fields[0]) and _TAG.match(fields[1].strip()) else "conll"


def _ner_from_hub(fields: Mapping[str, Any], lang: str | None) -> datasets.Dataset:
    ds, what = load_hub(fields)
    require_columns(ds, ("tokens", "ner_tags"), what)
    inner = getattr(ds.features["ner_tags"], "feature", None)
    names = inner.names if isinstance(inner, datasets.ClassLabel) else None
    tags: list[list[str]] = []
    for i, row in enumerate(ds["ner_tags"]):
        if names is not None:
            if any(not 0 <= t < len(names) for t in row):
                raise DataFormatError(f"{what}: row {i}: ner_tags {list(row)} outside the ClassLabel names {names}")
            row = [names[t] for t in row]
        for tag in row:
            if not isinstance(tag, str) or not _TAG.match(tag):
                raise DataFormatError(f"{what}: row {i}: tag {tag!r} is not 'O', 'B-<type>' or 'I-<type>'")
        tags.append(list(row))
    tags = _apply_scheme(tags, "auto", what)
    if lang is not None:
        langs = [lang] * len(tags)
    elif "langs" in ds.column_names:  # wikiann / xtreme PAN-X: one language code per token
        cache: dict[str, str] = {}
        langs = [cache.get(r[0]) or cache.setdefault(r[0], normalize_language(r[0])) if r else "" for r in ds["langs"]]
    else:
        langs = [hub_language(fields, what)] * len(tags)
    return datasets.Dataset.from_dict({"tokens": [list(t) for t in ds["tokens"]], "ner_tags": tags, "lang": langs},
                                      features=NER_FEATURES)


# ------------------------------------------------------------------------- shared with nli_data and qa_data

"""Extractive QA task data -> one ``datasets.Dataset`` in the Hub's SQuAD schema, plus ``lang``.

Columns: ``id``, ``title``, ``context``, ``question``, ``answers`` (``{"text": [...], "answer_start": [...]}``),
``lang``. Sources: SQuAD v1.1-style JSON files (XQuAD, MLQA, TyDiQA-GoldP; :func:`read_squad_json`) or a Hub
dataset (``squad``, ``google/xquad``, ``mlqa``, ...) through :func:`load_qa`.

Why strict: the training features locate each answer by ``answer_start``; a span that does not match its text
trains the model on the wrong tokens without any error, so every span is checked
(``context[start:start + len(text)] == text``). Predictions are matched to gold answers by question id, so ids
must be unique (XTREME's copy of TyDiQA-GoldP English train reuses per-document indices as ids: use
``on_duplicate_id="rename"`` there).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets

from amber_align.errors import ConfigError, DataFormatError
from amber_align.logging_utils import get_logger
from amber_align.tasks.sources import (
    file_language,
    hub_language,
    load_hub,
    merge_lang,
    require_columns,
    source_fields,
    take_first,
)

__all__ = ["QA_FEATURES", "read_squad_json", "load_qa"]

logger = get_logger(__name__)

_STRING = datasets.Value("string")
QA_FEATURES = datasets.Features({
    "id": _STRING, "title": _STRING, "context": _STRING, "question": _STRING,
    "answers": {"text": datasets.List(_STRING), "answer_start": datasets.List(datasets.Value("int32"))},
    "lang": _STRING,
})  # fmt: skip
"""The columns (and types) of every dataset this module returns (``answers`` as in the Hub's ``squad``)."""

_ON_DUPLICATE = ("error", "rename")


@dataclass
class _Rows:
    """Questions as read, with where each came from (``data[3].paragraphs[1].qas[0]`` or ``row 12``)."""

    id: list[str] = field(default_factory=list)
    title: list[str] = field(default_factory=list)
    context: list[str] = field(default_factory=list)
    question: list[str] = field(default_factory=list)
    answers: list[dict[str, list]] = field(default_factory=list)
    where: list[str] = field(default_factory=list)


def _get(obj: Any, key: str, kind: type | tuple[type, ...], where: str, path: str | os.PathLike) -> Any:
    """``obj[key]`` checked: ``obj`` is an object, ``key`` is there, the value is of ``kind`` (bool is no int)."""
    if not isinstance(obj, dict):
        raise DataFormatError(f"{where}: expected a JSON object, found {type(obj).__name__}", path=path)
    if key not in obj:
        raise DataFormatError(f"{where}: missing key {key!r} (keys found: {sorted(obj)})", path=path)
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        names = "/".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise DataFormatError(f"{where}.{key}: expected {names}, found {type(value).__name__} {value!r:.60}",
                              path=path)
    if kind is int and not -2**31 <= value < 2**31:  # offsets are stored as int32
        raise DataFormatError(f"{where}.{key}: {value} is out of range for a character offset", path=path)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:  # JSON may escape a lone surrogate (\ud800), which is no text
            raise DataFormatError(f"{where}.{key}: an unpaired surrogate escape (U+{ord(value[err.start]):04X}) at "
                                  f"character {err.start}: not valid Unicode", path=path) from None
    return value


def _read_json(path: str | os.PathLike) -> Any:
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ConfigError(f"data file {str(path)!r} cannot be read: {err.strerror or err}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataFormatError(f"not valid UTF-8 (byte 0x{data[err.start]:02x})", path=path,
                              line=data.count(b"\n", 0, err.start) + 1) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataFormatError(f"malformed JSON: {err.msg} (column {err.colno})", path=path, line=err.lineno) from None
    except RecursionError:
        raise DataFormatError("JSON nested too deeply to read (not a SQuAD file?)", path=path) from None


def _walk_squad(obj: Any, path: str | os.PathLike) -> tuple[_Rows, int]:
    """The questions of a SQuAD v1.1 document (``data`` -> ``paragraphs`` -> ``qas``), and its paragraph count."""
    rows, paragraphs = _Rows(), 0
    for i, article in enumerate(_get(obj, "data", list, "top level", path)):
        where = f"data[{i}]"
        title = _get(article, "title", str, where, path) if isinstance(article, dict) and "title" in article else ""
        for j, paragraph in enumerate(_get(article, "paragraphs", list, where, path)):
            pwhere = f"{where}.paragraphs[{j}]"
            context = _get(paragraph, "context", str, pwhere, path)
            paragraphs += 1
            for k, qa in enumerate(_get(paragraph, "qas", list, pwhere, path)):
                qwhere = f"{pwhere}.qas[{k}]"
                qid = str(_get(qa, "id", (str, int), qwhere, path))
                question = _get(qa, "question", str, qwhere, path)
                texts, starts = [], []
                for m, answer in enumerate(_get(qa, "answers", list, qwhere, path)):
                    texts.append(_get(answer, "text", str, f"{qwhere}.answers[{m}]", path))
                    starts.append(_get(answer, "answer_start", int, f"{qwhere}.answers[{m}]", path))
                rows.id.append(qid)
                rows.title.append(title)
                rows.context.append(context)
                rows.question.append(question)
                rows.answers.append({"text": texts, "answer_start": starts})
                rows.where.append(qwhere)
    return rows, paragraphs


def _check(rows: _Rows, source: str | os.PathLike, *, check_spans: bool, on_duplicate_id: str) -> None:
    """Answers present, non-empty and (``check_spans``) at their ``answer_start``; ids unique or renamed."""
    for qid, context, answers, where in zip(rows.id, rows.context, rows.answers, rows.where):
        if not answers["text"]:
            raise DataFormatError(f"{where}: question {qid!r} has no answers (SQuAD v2 unanswerable questions are "
                                  "not supported)", path=source)
        for text, start in zip(answers["text"], answers["answer_start"]):
            if not text:
                empty = sum(1 for a in rows.answers if "" in a["text"])
                raise DataFormatError(f"{where}: question {qid!r} has an empty answer text; {empty} of "
                                      f"{len(rows.id)} questions have one (a copy with the gold answers removed?)",
                                      path=source)
            if check_spans and (start < 0 or context[start:start + len(text)] != text):
                found = context[start:start + len(text)] if start >= 0 else ""
                detail = f"the context has {found!r} there" if found else \
                    f"that is outside the context ({len(context)} characters)"
                raise DataFormatError(f"{where}: question {qid!r}: answer {text!r} at answer_start {start} does not "
                                      f"match: {detail}", path=source)
    counts = Counter(rows.id)
    duplicated = {qid: n for qid, n in counts.items() if n > 1}
    if not duplicated:
        return
    extra = sum(duplicated.values()) - len(duplicated)
    if on_duplicate_id == "error":
        qid = max(duplicated, key=duplicated.__getitem__)
        places = [w for i, w in zip(rows.id, rows.where) if i == qid][:2]
        raise DataFormatError(f"question id {qid!r} occurs {duplicated[qid]} times (at {places[0]} and "
                              f"{places[1]}, ...); {extra} question(s) reuse an earlier id ({len(duplicated)} ids "
                              "repeated). Ids must be unique because predictions are matched to gold answers by id; "
                              "set on_duplicate_id: rename to number the repeats", path=source)
    used, seen = set(counts), Counter()
    for index, qid in enumerate(rows.id):
        seen[qid] += 1
        if seen[qid] > 1:
            n = seen[qid]
            while f"{qid}-{n}" in used:
                n += 1
            rows.id[index] = f"{qid}-{n}"
            used.add(rows.id[index])
    logger.warning("%s: %d question(s) reused an earlier id (%d ids repeated); renamed to '<id>-<n>'", source, extra,
                   len(duplicated))


def _to_dataset(rows: _Rows, lang: str) -> datasets.Dataset:
    return datasets.Dataset.from_dict({"id": rows.id, "title": rows.title, "context": rows.context,
                                       "question": rows.question, "answers": rows.answers,
                                       "lang": [lang] * len(rows.id)}, features=QA_FEATURES)


def _check_option(on_duplicate_id: str, check_spans: bool) -> None:
    if on_duplicate_id not in _ON_DUPLICATE:
        raise ConfigError(f"on_duplicate_id must be one of {_ON_DUPLICATE}, got {on_duplicate_id!r}")
    if not isinstance(check_spans, bool):
        raise ConfigError(f"check_spans must be true or false, got {check_spans!r}")


def read_squad_json(path: str | os.PathLike, *, lang: str | None = None, check_spans: bool = True,
                    on_duplicate_id: str = "error") -> datasets.Dataset:
    """Read a SQuAD v1.1-style JSON file (XQuAD, MLQA, TyDiQA-GoldP): one row per question.

    ``lang``: default from the file name (``xquad.es.json``, ``tydiqa.goldp.en.train.json``, MLQA's
    ``dev-context-de-question-de.json`` -> the context language). ``title`` is ``""`` where an article has none
    (TyDiQA-GoldP). ``on_duplicate_id="rename"`` turns the 2nd, 3rd, ... use of an id into ``<id>-2``, ``<id>-3``.

    Raises:
        DataFormatError: malformed JSON (with its line), a missing key or a value of the wrong type (naming the key
            and where: ``data[3].paragraphs[1].qas[0]``), a question without answers, an answer whose text is not
            at its ``answer_start`` (the question id, the start, the expected text and what the context has there),
            a repeated question id (with ``on_duplicate_id="error"``).
        ConfigError: unreadable file, bad option, language neither given nor inferable.
    """
    _check_option(on_duplicate_id, check_spans)
    rows, paragraphs = _walk_squad(_read_json(path), path)
    if not rows.id:
        raise DataFormatError("no questions in the file", path=path)
    row_lang = file_language(path, lang)
    _check(rows, path, check_spans=check_spans, on_duplicate_id=on_duplicate_id)
    logger.info("%s: %d questions, %d paragraphs, %d answers, lang %s%s", path, len(rows.id), paragraphs,
                sum(len(a["text"]) for a in rows.answers), row_lang, "" if check_spans else ", spans not checked")
    return _to_dataset(rows, row_lang)


def load_qa(source: str | os.PathLike | Mapping[str, Any], *, lang: str | None = None) -> datasets.Dataset:
    """Read QA data from a path, ``{file, lang, check_spans, on_duplicate_id, max_examples}`` or ``{hub, name,
    split, lang, check_spans, on_duplicate_id, max_examples}`` (``datasets.load_dataset``, e.g. ``{hub:
    google/xquad, name: xquad.es, split: validation}``). ``lang`` (e.g. the eval_data key) and the source's
    ``lang`` must agree when both are given."""
    fields = source_fields(source, "qa", (), shared_keys=("check_spans", "on_duplicate_id"))
    lang = merge_lang(fields.get("lang"), lang)
    check_spans, on_duplicate_id = fields.get("check_spans", True), fields.get("on_duplicate_id", "error")
    if "hub" not in fields:
        ds = read_squad_json(fields["file"], lang=lang, check_spans=check_spans, on_duplicate_id=on_duplicate_id)
        return take_first(ds, fields.get("max_examples"))
    _check_option(on_duplicate_id, check_spans)
    ds, what = load_hub(fields)
    require_columns(ds, ("id", "context", "question", "answers"), what)
    rows = _Rows(id=[str(i) for i in ds["id"]], context=list(ds["context"]), question=list(ds["question"]),
                 title=list(ds["title"]) if "title" in ds.column_names else [""] * len(ds))
    for i, answers in enumerate(ds["answers"]):
        if isinstance(answers, list):  # a list of {text, answer_start} rather than the squad dict of lists
            answers = {"text": [a.get("text") for a in answers],
                       "answer_start": [a.get("answer_start") for a in answers]}
        if not isinstance(answers, dict) or not {"text", "answer_start"} <= set(answers):
            raise DataFormatError(f"{what}: row {i}: answers must hold 'text' and 'answer_start', got {answers!r:.80}")
        rows.answers.append({"text": list(answers["text"]), "answer_start": list(answers["answer_start"])})
        rows.where.append(f"row {i}")
    _check(rows, what, check_spans=check_spans, on_duplicate_id=on_duplicate_id)
    return take_first(_to_dataset(rows, lang or hub_language(fields, what)), fields.get("max_examples"))

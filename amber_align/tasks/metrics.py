"""Task metrics in percent: seqeval entity F1 (NER), accuracy (NLI), SQuAD/MLQA EM and F1 (QA), P@1 (retrieval).

Each function checks its inputs and returns ``{metric: value}`` with values in percent (0-100), the unit of every
table and ``results.json`` in the package. The ``evaluate`` modules under ``amber_align/evaluate_metrics/`` are thin
wrappers around these functions (``evaluate.load(evaluate_module_path("mlqa_squad"))``), so that numbers computed
inside and outside the package cannot drift apart.

QA normalisation (docs/protocols.md):

* ``mlqa=False``: the official SQuAD v1.1 script: lower-case, drop ``string.punctuation``, drop the English
  articles a/an/the, collapse whitespace; F1 over whitespace tokens. ``lang`` is ignored. XTREME scores XQuAD and
  TyDiQA-GoldP this way (its ``squad`` evaluation), whatever the language.
* ``mlqa=True``: the official MLQA script (``mlqa_evaluation_v1.py``), which XTREME uses for MLQA: lower-case, drop
  punctuation (every character whose Unicode category starts with P, and ``string.punctuation``; other symbols such
  as − ⁄ € ° © stay), drop the language's articles, then tokenize: whitespace, except zh, where every CJK ideograph
  is a token of its own ("mixed segmentation"). Languages MLQA does not cover get no article rule and whitespace
  tokens. ``drop_symbols=True`` (``qa_normalization: mlqa_no_symbols``) also drops every Unicode symbol (S*).
"""

from __future__ import annotations

import re
import string
import sys
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from amber_align.data.languages import normalize_language
from amber_align.errors import ConfigError, DataFormatError
from amber_align.logging_utils import get_logger

__all__ = [
    "EVALUATE_MODULES",
    "accuracy",
    "evaluate_module_path",
    "ner_scores",
    "normalize_answer",
    "precision_at_1",
    "qa_rules",
    "qa_scores",
    "squad_em_f1",
]

logger = get_logger(__name__)

#: The ``evaluate`` modules shipped in ``amber_align/evaluate_metrics/<name>/<name>.py``.
EVALUATE_MODULES = ("xtreme_ner", "nli_accuracy", "mlqa_squad", "tatoeba_p_at_1", "bucc_f1")
_EVALUATE_DIR = Path(__file__).resolve().parent.parent / "evaluate_metrics"
_SHOWN_IDS = 5  # ids named in an error message

# ------------------------------------------------------------------ NER


def _check_tag_sequences(y_true: Any, y_pred: Any) -> tuple[list[list[str]], list[list[str]]]:
    """Plain ``list[list[str]]`` copies (seqeval only recognises nested *lists*); mismatches raise ConfigError."""
    if isinstance(y_true, str) or isinstance(y_pred, str):
        raise ConfigError("ner_scores expects one list of tags per sentence, got a string")
    gold, pred = [list(s) for s in y_true], [list(s) for s in y_pred]
    if len(gold) != len(pred):
        raise ConfigError(f"ner_scores: {len(gold)} gold sentences but {len(pred)} predicted sentences")
    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise ConfigError(f"ner_scores: sentence {i} has {len(g)} gold tags but {len(p)} predicted tags")
        bad = next((t for t in g + p if not isinstance(t, str)), None)
        if bad is not None:
            raise ConfigError(f"ner_scores: sentence {i} has a tag {bad!r} of type {type(bad).__name__}; "
                              f"expected strings such as 'B-PER' (map label ids to names first)")
    return gold, pred


def ner_scores(y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]], *,
               per_type: bool = False) -> dict[str, float]:
    """Entity-level ``{"f1", "precision", "recall"}`` (percent, micro-averaged over entity types) by seqeval.

    seqeval's default mode is conlleval-compatible: an entity is a maximal chunk (``I-X`` after ``O`` also opens
    one) and counts as correct only when its type and both boundaries match. ``per_type`` adds ``f1_<TYPE>`` for
    every type seen in gold or predictions (off by default so result tables keep three columns).
    No gold and no predicted entity gives 0 (with a warning).
    """
    from seqeval.metrics import f1_score, precision_score, recall_score
    from seqeval.metrics.sequence_labeling import get_entities, precision_recall_fscore_support

    gold, pred = _check_tag_sequences(y_true, y_pred)
    if not gold:
        raise ConfigError("ner_scores: no sentences to score")
    if not get_entities(gold):
        logger.warning("ner_scores: the gold tags hold no entity; recall and F1 are reported as 0")
    scores = {
        "f1": 100.0 * float(f1_score(gold, pred, zero_division=0)),
        "precision": 100.0 * float(precision_score(gold, pred, zero_division=0)),
        "recall": 100.0 * float(recall_score(gold, pred, zero_division=0)),
    }
    if per_type:
        types = sorted({t for t, _, _ in get_entities(gold)} | {t for t, _, _ in get_entities(pred)})
        if types:
            _, _, f1s, _ = precision_recall_fscore_support(gold, pred, average=None, zero_division=0)
            scores.update({f"f1_{t}": 100.0 * float(f) for t, f in zip(types, f1s)})
    return scores


# ------------------------------------------------------------------ NLI / retrieval


def accuracy(predictions: Sequence[Any], references: Sequence[Any]) -> dict[str, float]:
    """``{"accuracy": percent}``: the share of positions where prediction and reference are equal."""
    preds, refs = list(predictions), list(references)
    if len(preds) != len(refs):
        raise ConfigError(f"accuracy: {len(preds)} predictions but {len(refs)} references")
    if not refs:
        raise ConfigError("accuracy: no examples to score")
    correct = sum(1 for p, r in zip(preds, refs) if p == r)
    return {"accuracy": 100.0 * correct / len(refs)}


def precision_at_1(predictions: Sequence[int], references: Sequence[int], *,
                   target_texts: Sequence[str] | None = None) -> dict[str, float]:
    """``{"p@1": percent}`` of a retrieval run given as indices: query ``i`` retrieved target ``predictions[i]``,
    its gold target is ``references[i]``. With ``target_texts`` (indexed by target), retrieving a target whose text
    is identical (after stripping) to the gold target's also counts, as in ``retrieval.retrieval_accuracy``."""
    preds, refs = [int(p) for p in predictions], [int(r) for r in references]
    if len(preds) != len(refs):
        raise ConfigError(f"precision_at_1: {len(preds)} predictions but {len(refs)} references")
    if not refs:
        raise ConfigError("precision_at_1: no queries to score")
    if target_texts is None:
        return {"p@1": 100.0 * sum(p == r for p, r in zip(preds, refs)) / len(refs)}
    texts = [str(t).strip() for t in target_texts]
    out_of_range = next((i for i in preds + refs if not 0 <= i < len(texts)), None)
    if out_of_range is not None:
        raise ConfigError(f"precision_at_1: target index {out_of_range} outside target_texts ({len(texts)} texts)")
    correct = sum(p == r or texts[p] == texts[r] for p, r in zip(preds, refs))
    return {"p@1": 100.0 * correct / len(refs)}


# ------------------------------------------------------------------ QA normalisation

_SQUAD_PUNCT = frozenset(string.punctuation)
# mlqa_evaluation_v1.py's PUNCT: Unicode P* and string.punctuation (ASCII symbols such as $ + < = > ^ ` | ~)
_MLQA_PUNCT = frozenset(chr(i) for i in range(sys.maxunicode)
                        if unicodedata.category(chr(i)).startswith("P")) | _SQUAD_PUNCT
_EN_ARTICLES = re.compile(r"\b(a|an|the)\b")
# The article rules of mlqa_evaluation_v1.py, verbatim (ar: the official pattern's first branch can never match,
# so every "ال" is replaced, inside words too; reproduced as is so numbers match the published ones).
_MLQA_ARTICLES: dict[str, re.Pattern[str]] = {
    "en": _EN_ARTICLES,
    "es": re.compile(r"\b(un|una|unos|unas|el|la|los|las)\b"),
    "vi": re.compile(r"\b(của|là|cái|chiếc|những)\b"),
    "de": re.compile(r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b"),
    "ar": re.compile(r"\sال^|ال"),
}
_MIXED_SEGMENTATION_LANGS = frozenset({"zh"})
_CJK = re.compile(r"[\u4e00-\u9fa5]")  # the official script's range


def _is_punct_or_symbol(ch: str) -> bool:
    return ch in _MLQA_PUNCT or unicodedata.category(ch)[0] == "S"


def _mixed_segmentation(text: str) -> list[str]:
    """MLQA's zh tokenizer: each CJK ideograph (or punctuation mark) alone, whitespace tokens in between."""
    tokens: list[str] = []
    run = ""
    for ch in text:
        if _CJK.match(ch) or ch in _MLQA_PUNCT:
            tokens.extend(run.split())
            run = ""
            tokens.append(ch)
        else:
            run += ch
    tokens.extend(run.split())
    return tokens


def _language(lang: str) -> str:
    try:
        return normalize_language(lang)
    except ConfigError as err:
        raise ConfigError(f"QA normalisation: {err}") from err


def normalize_answer(text: str, lang: str = "en", *, mlqa: bool = False, drop_symbols: bool = False) -> str:
    """The answer string that EM compares (and whose whitespace tokens F1 counts).

    ``mlqa=False``: SQuAD v1.1 (``lang`` ignored). ``mlqa=True``: the official MLQA script's language-specific
    rules (``drop_symbols``: also drop Unicode symbols); for zh the result has a space between ideographs, so
    ``.split()`` gives one token per character. See the module docstring.
    """
    if not isinstance(text, str):
        raise ConfigError(f"answer text must be a string, got {type(text).__name__} {text!r}")
    text = text.lower()
    if not mlqa:
        text = "".join(ch for ch in text if ch not in _SQUAD_PUNCT)
        text = _EN_ARTICLES.sub(" ", text)
        return " ".join(text.split())
    code = _language(lang)
    drop = _is_punct_or_symbol if drop_symbols else _MLQA_PUNCT.__contains__
    text = "".join(ch for ch in text if not drop(ch))
    articles = _MLQA_ARTICLES.get(code)
    if articles is not None:
        text = articles.sub(" ", text)
    tokens = _mixed_segmentation(text) if code in _MIXED_SEGMENTATION_LANGS else text.split()
    return " ".join(t for t in tokens if t.strip())


def _em_f1_single(prediction_tokens: list[str], truth_tokens: list[str]) -> tuple[float, float]:
    em = float(prediction_tokens == truth_tokens)
    common = Counter(prediction_tokens) & Counter(truth_tokens)
    same = sum(common.values())
    if same == 0:
        return em, 0.0  # also both empty: the official scripts give F1 0 there (and EM 1)
    precision = same / len(prediction_tokens)
    recall = same / len(truth_tokens)
    return em, 2 * precision * recall / (precision + recall)


def squad_em_f1(prediction: str, ground_truths: Sequence[str], lang: str = "en",
                mlqa: bool = False, drop_symbols: bool = False) -> tuple[float, float]:
    """``(exact_match, f1)`` of one answer, each in [0, 1]: the maximum over the gold answers (official scripts)."""
    if isinstance(ground_truths, str):
        ground_truths = [ground_truths]
    if not ground_truths:
        raise ConfigError("squad_em_f1: no gold answers to compare with")
    pred = normalize_answer(prediction, lang, mlqa=mlqa, drop_symbols=drop_symbols).split()
    best_em = best_f1 = 0.0
    for truth in ground_truths:
        em, f1 = _em_f1_single(pred, normalize_answer(truth, lang, mlqa=mlqa, drop_symbols=drop_symbols).split())
        best_em, best_f1 = max(best_em, em), max(best_f1, f1)
    return best_em, best_f1


def _some(ids: Sequence[str]) -> str:
    shown = ", ".join(repr(i) for i in list(ids)[:_SHOWN_IDS])
    return shown + (f", ... ({len(ids)} in all)" if len(ids) > _SHOWN_IDS else "")


def qa_rules(normalization: str, source: str | None = None) -> dict[str, bool]:
    """``{"mlqa", "drop_symbols"}`` for :func:`qa_scores` from a ``qa_normalization`` setting. ``auto`` follows
    XTREME: the official MLQA script for MLQA test sets (a source named ``mlqa...`` or MLQA's
    ``*-context-xx-question-yy.json``), the SQuAD v1.1 script for everything else (XQuAD, TyDiQA-GoldP)."""
    if normalization == "auto":
        name = Path(str(source or "")).name
        is_mlqa = "mlqa" in str(source or "").lower() or re.search(r"context[-_.][a-z]{2,3}[-_.]question", name)
        normalization = "mlqa" if is_mlqa else "squad"
    if normalization not in ("squad", "mlqa", "mlqa_no_symbols"):
        raise ConfigError(f"qa_normalization: expected auto, squad, mlqa or mlqa_no_symbols, got {normalization!r}")
    return {"mlqa": normalization != "squad", "drop_symbols": normalization == "mlqa_no_symbols"}


def qa_scores(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]], *, lang: str = "en",
              mlqa: bool = False, drop_symbols: bool = False) -> dict[str, float]:
    """``{"exact_match", "f1"}`` in percent over every question of ``references`` (id -> gold answer texts).

    As in the official scripts, a question without a prediction scores 0 and a prediction for an id that
    ``references`` lacks is ignored (a warning gives each count). A question with no gold answer raises
    DataFormatError.
    """
    if not references:
        raise ConfigError("qa_scores: no reference questions to score")
    unknown = [qid for qid in predictions if qid not in references]
    if unknown:
        logger.warning("qa_scores: %d predicted question ids are not in the references and are ignored (e.g. %s); "
                       "do predictions and references come from the same data?", len(unknown), _some(unknown))
    missing = [qid for qid in references if qid not in predictions]
    if missing:
        logger.warning("qa_scores: %d of %d questions have no prediction and score 0 (e.g. %s)", len(missing),
                       len(references), _some(missing))
    total_em = total_f1 = 0.0
    for qid, answers in references.items():
        answers = [answers] if isinstance(answers, str) else list(answers)
        if not answers:
            raise DataFormatError(f"qa_scores: question {qid!r} has no gold answer")
        if qid in predictions:
            em, f1 = squad_em_f1(predictions[qid], answers, lang, mlqa, drop_symbols)
            total_em += em
            total_f1 += f1
    n = len(references)
    return {"exact_match": 100.0 * total_em / n, "f1": 100.0 * total_f1 / n}


# ------------------------------------------------------------------ evaluate modules


def evaluate_module_path(name: str) -> str:
    """Directory of the ``evaluate`` module ``name``, for ``evaluate.load(evaluate_module_path(name))``.

    ``name``: one of :data:`EVALUATE_MODULES`. Loading a local directory needs no network access.
    """
    if name not in EVALUATE_MODULES:
        raise ConfigError(f"unknown evaluate module {name!r}; expected one of {', '.join(EVALUATE_MODULES)}")
    path = _EVALUATE_DIR / name
    if not (path / f"{name}.py").is_file():
        raise ConfigError(f"evaluate module {name!r} is not installed: {path / (name + '.py')} is missing "
                          f"(package data left out of the install?)")
    return str(path)

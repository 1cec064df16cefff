"""QA scoring protocols (docs/protocols.md): the official MLQA script's rules on fixtures in MLQA's format (numbers
worked out by hand), XTREME's choice of script per test set under ``qa_normalization: auto``, and the ``evaluate``
module scoring missing predictions as 0 and ignoring unknown ids, as the official scripts do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from amber_align.errors import ConfigError
from amber_align.tasks.metrics import evaluate_module_path, qa_rules, qa_scores

FIXTURES = Path(__file__).parent / "fixtures" / "qa_protocols"


def _mlqa_file(lang: str) -> tuple[str, dict[str, list[str]], dict[str, str]]:
    """(file name, id -> gold texts, id -> prediction) read from an MLQA-format file and its predictions."""
    path = FIXTURES / f"test-context-{lang}-question-{lang}.json"
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    refs = {qa["id"]: [a["text"] for a in qa["answers"]] for article in data for paragraph in article["paragraphs"]
            for qa in paragraph["qas"]}
    preds = json.loads((FIXTURES / f"predictions-{lang}.json").read_text(encoding="utf-8"))
    return path.name, refs, preds


@pytest.mark.parametrize("lang, normalization, expected", [
    # zh: q1 北京 vs 北京大学: F1 2/3; q2 12杯 vs 1⁄2杯: the fraction slash (Sm) stays: [12, 杯] vs [1⁄2, 杯]: F1 1/2;
    # q3 unanswered: 0; the unknown id is ignored. EM 0, F1 (2/3 + 1/2) / 3 = 7/18
    ("zh", "auto", (0.0, 700 / 18)),
    ("zh", "mlqa_no_symbols", (100 / 3, 500 / 9)),  # the variant drops ⁄: q2 exact
    ("zh", "squad", (0.0, 0.0)),  # one whitespace token per answer: nothing in common
    # en: q1 40 degrees vs −40 degrees (U+2212 stays): F1 1/2; q2 "Snag." vs "Snag": exact. EM 50, F1 75
    ("en", "auto", (50.0, 75.0)),
    ("en", "mlqa_no_symbols", (100.0, 100.0)),
])
def test_official_mlqa_rules_on_mlqa_format_fixtures(lang, normalization, expected):
    name, refs, preds = _mlqa_file(lang)
    scores = qa_scores(preds, refs, lang=lang, **qa_rules(normalization, name))
    assert (scores["exact_match"], scores["f1"]) == pytest.approx(expected)


@pytest.mark.parametrize("source, rule", [
    ("test-context-zh-question-zh.json", "mlqa"), ("/data/MLQA_V1/dev/dev-context-de-question-en.json", "mlqa"),
    ("mlqa", "mlqa"), ("facebook/mlqa", "mlqa"),
    ("xquad.zh.json", "squad"), ("google/xquad", "squad"), ("tydiqa.goldp.ar.dev.json", "squad"), (None, "squad"),
])
def test_auto_scores_xquad_and_tydiqa_with_squad_and_mlqa_with_its_script(source, rule):
    assert qa_rules("auto", source) == qa_rules(rule)
    assert qa_rules("squad") == {"mlqa": False, "drop_symbols": False}
    assert qa_rules("mlqa") == {"mlqa": True, "drop_symbols": False}
    with pytest.raises(ConfigError, match="qa_normalization"):
        qa_rules("official")


def test_evaluate_module_scores_missing_predictions_as_zero_and_ignores_unknown_ids():
    import evaluate

    metric = evaluate.load(evaluate_module_path("mlqa_squad"), keep_in_memory=True)
    name, refs, preds = _mlqa_file("zh")
    references = [{"id": k, "answers": {"text": v, "answer_start": [0] * len(v)}} for k, v in refs.items()]
    predictions = [{"id": k, "prediction_text": v} for k, v in preds.items()]  # 3 entries, one unknown, one missing
    got = metric.compute(predictions=predictions[:2], references=references, lang="zh", normalization="mlqa")
    assert (got["exact_match"], got["f1"]) == pytest.approx((0.0, 700 / 18))
    got = metric.compute(predictions=predictions, references=references[:2], lang="zh", normalization="mlqa")
    assert got["f1"] == pytest.approx(100 * (2 / 3 + 1 / 2) / 2)  # zz-unknown ignored
    got = metric.compute(predictions=predictions, references=references, lang="zh", mlqa=True)  # older spelling
    assert got["f1"] == pytest.approx(700 / 18)

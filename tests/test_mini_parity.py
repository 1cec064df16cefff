"""recipes/comparison/parity.py: two compare.py runs side by side (mBERT vs XLM-R parity)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import load_recipe

parity = load_recipe("recipes/comparison/parity.py")


def _run(directory: Path, xsr_none: float, nli: list[float], ner_only: bool = False) -> Path:
    directory.mkdir(parents=True)
    summary = {"none": {"xsr": xsr_none, "nli": sum(nli) / len(nli), "nli_std": 0.5, "nli_seeds": len(nli)},
               "amber_sa": {"xsr": 2.0}}
    if ner_only:
        summary["none"]["ner"] = 10.0
    raw = {"xsr": {"none": [{"de_xx2en": xsr_none, "fr_xx2en": 1.0, "de_en2xx": 0.0, "fr_en2xx": 0.0}]}}
    (directory / "comparison.json").write_text(json.dumps({"summary": summary, "raw": raw}))
    return directory


def test_parity_rows_are_the_differences_of_the_two_runs(tmp_path):
    a = _run(tmp_path / "a", xsr_none=0.5, nli=[35.0, 36.0], ner_only=True)
    b = _run(tmp_path / "b", xsr_none=1.5, nli=[34.0])
    out = tmp_path / "out"
    markdown = parity.main(["--runs", f"mBERT={a}", f"XLM-R={b}", "--out", str(out), "--xsr_methods", "none"])
    rows = json.loads((out / "parity.json").read_text())
    # Hand-computed: xsr 1.5 - 0.5, NLI 34.0 - 35.5; NER is in one run only, so it has no row.
    assert [(r["method"], r["diff"]) for r in rows["xsr"]] == [("none", 1.0), ("amber_sa", 0.0)]
    assert rows["nli"] == [{"method": "none", "mBERT": 35.5, "XLM-R": 34.0, "diff": -1.5}]
    assert "ner" not in rows
    assert "| none | 35.5 ± 0.5 (2) | 34.0 | -1.5 |" in markdown
    assert rows["xsr_per_language"][0]["b_above_a"] == 1  # de 1.5 > 0.5; fr 1.0 = 1.0
    assert "XLM-R above mBERT in 1 of 2 languages." in markdown
    assert "mean -0.17, 1 above, 1 below" in markdown  # (1.0 + 0.0 - 1.5) / 3
    assert (out / "parity.png").stat().st_size > 0 and (out / "parity.md").read_text().startswith("#### Tatoeba")


@pytest.mark.parametrize("runs, message", [
    (["mBERT=x"], "exactly two LABEL=DIR pairs, got 1"),
    (["mBERT", "XLM-R=y"], "expected LABEL=DIR (e.g. mBERT=runs/mini_comparison), got 'mBERT'"),
    (["mBERT={missing}", "XLM-R={missing}"], "comparison.json: not found; run compare.py --out"),
    (["mBERT={bad}", "XLM-R={bad}"], "not a compare.py comparison.json (expected 'summary' and 'raw')"),
])
def test_parity_refuses_bad_runs(runs, message, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "comparison.json").write_text('{"rows": []}')
    runs = [r.format(missing=tmp_path / "missing", bad=bad) for r in runs]
    with pytest.raises(SystemExit, match="error: .*" + re.escape(message)):
        parity.main(["--runs", *runs, "--out", str(tmp_path / "out")])


def test_parity_refuses_runs_with_nothing_in_common(tmp_path):
    for name, method in (("a", "none"), ("b", "cao_mean")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "comparison.json").write_text(json.dumps({"summary": {method: {"xsr": 1.0}}, "raw": {}}))
    with pytest.raises(SystemExit, match="share no method and task"):
        parity.main(["--runs", f"A={tmp_path / 'a'}", f"B={tmp_path / 'b'}", "--out", str(tmp_path / "out")])

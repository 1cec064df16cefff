"""Results of a run: flat metric names, results.json/.md/.png, loading errors, comparisons, atomic outputs."""

from __future__ import annotations

import json

import pytest

from amber_align.errors import ConfigError, DataFormatError
from amber_align.tasks.compare import compare_runs
from amber_align.tasks.results import (
    average_metrics,
    flatten_metrics,
    format_table,
    load_results,
    unflatten_metrics,
    write_results,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

NER = {"en": {"f1": 90.0, "precision": 91.0, "recall": 89.0},
       "es": {"f1": 70.0, "precision": 72.0, "recall": 68.0},
       "de": {"f1": 61.0, "precision": 60.0, "recall": 62.0}}
XSR = {"de": {"xx2en_p@1": 50.0, "en2xx_p@1": 40.0}, "zh-CN": {"xx2en_p@1": 35.5, "en2xx_p@1": 30.25}}
QA = {"en": {"exact_match": 70.0, "f1": 80.0}, "ar": {"exact_match": 40.0, "f1": 55.0}}


def _assert_png(path):
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 5000  # a real chart, not an empty canvas


def _no_temp_files(directory):
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")] == []


# ---------------------------------------------------------------- flat names
@pytest.mark.parametrize("task,per_lang", [("ner", NER), ("xsr", XSR), ("qa", QA)])
def test_flatten_unflatten_roundtrip(task, per_lang):
    flat = flatten_metrics(task, per_lang)
    assert unflatten_metrics(flat, task) == per_lang
    # other tasks' keys and Trainer keys are ignored
    noisy = {**flat, "eval_loss": 0.3, "eval_runtime": 1.0, "eval_nli_es_accuracy": 50.0}
    assert unflatten_metrics(noisy, task) == per_lang


def test_flat_names_keep_underscores_and_at_signs_in_metrics():
    flat = flatten_metrics("xsr", XSR)
    assert flat["eval_xsr_zh-CN_xx2en_p@1"] == 35.5
    assert flat["eval_xsr_de_en2xx_p@1"] == 40.0
    assert flatten_metrics("qa", QA, prefix="test")["test_qa_ar_exact_match"] == 40.0
    assert unflatten_metrics({"test_qa_ar_exact_match": 40}, "qa", prefix="test") == {"ar": {"exact_match": 40.0}}


def test_macro_average_hand_computed_excludes_english():
    flat = flatten_metrics("ner", NER)
    assert flat["eval_ner_avg_f1"] == pytest.approx((70.0 + 61.0) / 2)
    assert flat["eval_ner_avg_precision"] == pytest.approx((72.0 + 60.0) / 2)
    assert flat["eval_ner_avg_recall"] == pytest.approx((68.0 + 62.0) / 2)
    with_en = flatten_metrics("ner", NER, exclude_from_average=())
    assert with_en["eval_ner_avg_f1"] == pytest.approx((90.0 + 70.0 + 61.0) / 3)
    # the training language None (retrieval tasks) excludes nothing
    assert average_metrics(NER, (None, "de"))["f1"] == pytest.approx((90.0 + 70.0) / 2)
    # only English evaluated: no language left, so no average at all
    assert not [k for k in flatten_metrics("ner", {"en": NER["en"]}) if "_avg_" in k]
    # a metric only some languages report is averaged over those
    assert average_metrics({"de": {"f1": 10.0, "threshold": 0.5}, "fr": {"f1": 20.0}}) == {"f1": 15.0,
                                                                                         "threshold": 0.5}


def test_bad_names_and_values():
    with pytest.raises(ConfigError, match=r"language code 'zh_CN'.*without '_'"):
        flatten_metrics("ner", {"zh_CN": {"f1": 1.0}})
    with pytest.raises(ConfigError, match="'avg' is reserved"):
        flatten_metrics("ner", {"avg": {"f1": 1.0}})
    with pytest.raises(ConfigError, match="task name 'my_task'"):
        flatten_metrics("my_task", NER)
    with pytest.raises(DataFormatError, match=r"ner\.es\.f1: expected a number, got 'high' \(str\)"):
        flatten_metrics("ner", {"es": {"f1": "high"}})
    with pytest.raises(DataFormatError, match="expected eval_ner_"):
        unflatten_metrics({"eval_ner_es": 1.0}, "ner")


# ---------------------------------------------------------------- tables and run directories
SMALL = {"es": {"f1": 70.26, "precision": 71.0}, "en": {"f1": 90.0, "precision": 91.04}, "de": {"f1": 60.0}}
SMALL_TABLE = """\
| language | f1 | precision |
|---|---:|---:|
| en | 90.0 | 91.0 |
| de | 60.0 | — |
| es | 70.3 | 71.0 |
| average | 65.1 | 71.0 |"""


def test_format_table_exact_text():
    assert format_table(SMALL) == SMALL_TABLE
    assert format_table(SMALL, ["precision"], show_average=False) == (
        "| language | precision |\n|---|---:|\n| en | 91.0 |\n| de | — |\n| es | 71.0 |")


def test_write_results_two_tasks_in_one_run_dir(tmp_path):
    run = tmp_path / "run"
    paths = write_results(run, "ner", SMALL, meta={"model": "mbert", "train_language": "en", "seconds": 3.5})
    assert paths == {"json": run / "results.json", "markdown": run / "results.md", "plot": run / "ner.png"}
    write_results(run, "xsr", XSR, meta={"model": "mbert", "config": tmp_path / "c.yaml"})
    doc = load_results(run)
    assert doc["schema_version"] == 1 and list(doc["tasks"]) == ["ner", "xsr"]
    ner = doc["tasks"]["ner"]
    assert ner["languages"] == SMALL
    assert ner["average"] == pytest.approx({"f1": 65.13, "precision": 71.0})
    assert ner["flat"]["eval_ner_avg_f1"] == pytest.approx(65.13)
    assert ner["meta"]["model"] == "mbert" and ner["meta"]["seconds"] == 3.5 and "date" in ner["meta"]
    assert doc["tasks"]["xsr"]["meta"]["config"] == str(tmp_path / "c.yaml")  # Paths stored as strings
    assert doc["tasks"]["xsr"]["average"]["xx2en_p@1"] == pytest.approx((50.0 + 35.5) / 2)

    md = (run / "results.md").read_text(encoding="utf-8")
    assert "## ner" in md and "## xsr" in md
    assert SMALL_TABLE in md
    assert "model: mbert" in md and "average: macro average over the languages (de, es); en left out." in md
    assert "| zh-CN | 35.5 | 30.2 |" in md
    for name in ("ner.png", "xsr.png"):
        _assert_png(run / name)
    assert _no_temp_files(run)

    # rewriting one task replaces it and keeps the other; the average leaves out meta's train_language
    write_results(run, "ner", {"en": {"f1": 1.0}, "es": {"f1": 2.0}, "de": {"f1": 4.0}},
                  meta={"train_language": "de"})
    doc = load_results(run / "results.json")
    assert list(doc["tasks"]) == ["ner", "xsr"]
    assert doc["tasks"]["ner"]["average"] == {"f1": 1.5}
    assert doc["tasks"]["ner"]["average_excludes"] == ["de"]
    assert "## xsr" in (run / "results.md").read_text(encoding="utf-8")


def test_write_results_refuses_to_overwrite_an_unreadable_results_json(tmp_path):
    (tmp_path / "results.json").write_text("{oops", encoding="utf-8")
    with pytest.raises(DataFormatError, match="results.json:1: not valid JSON"):
        write_results(tmp_path, "ner", SMALL)
    assert (tmp_path / "results.json").read_text(encoding="utf-8") == "{oops"


def test_plot_failure_leaves_no_partial_png(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    write_results(tmp_path, "ner", SMALL, meta={"model": "old"})
    write_results(tmp_path / "b", "ner", SMALL)
    assert (tmp_path / "ner.png").exists()

    def broken_savefig(self, *args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_results(tmp_path, "ner", NER, meta={"model": "new"})
    # the numbers are recorded; the figure of the old numbers is gone rather than contradicting them
    assert load_results(tmp_path)["tasks"]["ner"]["languages"] == NER
    assert not (tmp_path / "ner.png").exists()
    assert _no_temp_files(tmp_path)

    # compare_runs builds every file before writing any: nothing appears in out_dir
    with pytest.raises(RuntimeError):
        compare_runs([tmp_path, tmp_path / "b"], out_dir=tmp_path / "cmp")
    assert not (tmp_path / "cmp").exists() or list((tmp_path / "cmp").iterdir()) == []


# ---------------------------------------------------------------- loading errors
def test_missing_results_json(tmp_path):
    with pytest.raises(ConfigError, match="not a run directory: no results.json") as e:
        load_results(tmp_path)
    assert str(tmp_path) in str(e.value)
    with pytest.raises(ConfigError, match=r"not a run directory: no results.json \(no such file or directory\)"):
        load_results(tmp_path / "nowhere")


def test_broken_json_names_file_and_line(tmp_path):
    path = tmp_path / "results.json"
    path.write_text('{\n  "schema_version": 1,\n  "tasks": {,\n}\n', encoding="utf-8")
    with pytest.raises(DataFormatError) as e:
        load_results(tmp_path)
    assert e.value.path == str(path) and e.value.line == 3
    assert str(e.value).startswith(f"{path}:3: not valid JSON")


@pytest.mark.parametrize("doc,message", [
    ([1, 2], "expected a JSON object with 'schema_version' and 'tasks'"),
    ({"schema_version": 2, "tasks": {}}, "schema_version 2 is not 1; it was written by a newer amber_align"),
    ({"schema_version": 1, "tasks": {"ner": {"languages": {"es": {"f1": "x"}}}}},
     r"tasks\.ner\.languages\.es\.f1: expected a number, got 'x'"),
    ({"schema_version": 1, "tasks": {"ner": {"average": {}}}}, "tasks.ner: expected an object with 'languages'"),
])
def test_wrong_schema(tmp_path, doc, message):
    (tmp_path / "results.json").write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(DataFormatError, match=message):
        load_results(tmp_path)


# ---------------------------------------------------------------- comparisons
def _two_runs(tmp_path):
    base, aligned = tmp_path / "mbert", tmp_path / "aligned"
    write_results(base, "ner", {"en": {"f1": 80.0, "precision": 81.0}, "de": {"f1": 60.0, "precision": 62.0},
                                "es": {"f1": 70.0, "precision": 70.0}}, meta={"model": "bert-base-multilingual"})
    write_results(aligned, "ner", {"en": {"f1": 80.5, "precision": 80.0}, "es": {"f1": 74.25, "precision": 71.0},
                                   "fr": {"f1": 66.0, "precision": 65.0}}, meta={"model": "aligned-mbert"})
    write_results(base, "nli", {"en": {"accuracy": 80.0}, "es": {"accuracy": 70.0}})
    return base, aligned


def test_compare_two_runs_deltas_and_missing_languages(tmp_path):
    base, aligned = _two_runs(tmp_path)
    result = compare_runs([base, aligned], out_dir=tmp_path / "cmp")
    assert result.names == ["mbert", "aligned"] and result.tasks == ["ner"]  # nli is in one run only
    ner = result.table["ner"]
    assert list(ner) == ["en", "de", "es", "fr", "average"]
    assert ner["es"]["f1"] == [70.0, 74.25]
    assert ner["de"]["f1"] == [60.0, None] and ner["fr"]["precision"] == [None, 65.0]
    assert ner["average"]["f1"] == [70.0, 74.25]  # es is the only non-English language both runs have
    md = result.markdown
    assert ("| language | f1 mbert | f1 aligned | f1 Δ (aligned − mbert) | precision mbert | precision aligned "
            "| precision Δ (aligned − mbert) |") in md
    assert "| en | 80.0 | 80.5 | +0.5 | 81.0 | 80.0 | -1.0 |" in md
    assert "| de | 60.0 | — | — | 62.0 | — | — |" in md
    assert "| es | 70.0 | 74.2 | +4.2 | 70.0 | 71.0 | +1.0 |" in md
    assert "| fr | — | 66.0 | — | — | 65.0 | — |" in md
    assert "| average | 70.0 | 74.2 | +4.2 | 70.0 | 71.0 | +1.0 |" in md
    assert "Baseline: **mbert**" in md and "aligned-mbert" in md
    assert result.paths == [tmp_path / "cmp" / "comparison.md", tmp_path / "cmp" / "comparison_ner.png"]
    assert (tmp_path / "cmp" / "comparison.md").read_text(encoding="utf-8") == md
    _assert_png(tmp_path / "cmp" / "comparison_ner.png")
    assert _no_temp_files(tmp_path / "cmp")


def test_compare_names_and_task_errors(tmp_path, monkeypatch):
    base, aligned = _two_runs(tmp_path)
    with pytest.raises(ConfigError, match=r"run 'aligned' \(.*aligned\) has no results for task 'nli' "
                                          r"\(it has: ner\)"):
        compare_runs([base, aligned], out_dir=tmp_path / "cmp", tasks=["ner", "nli"])
    with pytest.raises(ConfigError, match="at least 2 runs"):
        compare_runs([base])
    with pytest.raises(ConfigError, match="1 names given for 2 runs"):
        compare_runs([base, aligned], names=["x"])
    with pytest.raises(ConfigError, match="not a run directory: no results.json"):
        compare_runs([base, tmp_path / "missing"])
    # equal basenames are told apart by their parent folder; default out_dir is ./comparison
    other = tmp_path / "seed2" / "mbert"
    write_results(other, "nli", {"en": {"accuracy": 81.0}, "es": {"accuracy": 72.5}})
    monkeypatch.chdir(tmp_path)
    result = compare_runs([base, other], tasks=["nli"], names=None)
    assert result.names[1] == "seed2/mbert" and result.names[0].endswith("/mbert") and result.names[0] != "mbert"
    assert result.table["nli"]["es"]["accuracy"] == [70.0, 72.5]
    assert (tmp_path / "comparison" / "comparison_nli.png").exists()
    named = compare_runs([base, other], out_dir=tmp_path / "c2", names=["before", "after"], tasks=["nli"])
    assert "| es | 70.0 | 72.5 | +2.5 |" in named.markdown and "accuracy Δ (after − before)" in named.markdown


def test_concurrent_writers_of_different_tasks_keep_both(tmp_path, monkeypatch):
    import threading

    import amber_align.tasks.results as results

    import time

    from amber_align.tasks import plots

    monkeypatch.setattr(plots, "task_chart", lambda *args: PNG_SIGNATURE)  # the merge is what is under test
    read = results.load_results

    def slow_read(path):  # widen the read-merge-write window so that an unlocked merge would lose tasks
        doc = read(path)
        time.sleep(0.005)
        return doc

    monkeypatch.setattr(results, "load_results", slow_read)
    errors = []

    def writer(task, per_lang):
        try:
            for i in range(15):
                shifted = {lang: {m: v + i for m, v in ms.items()} for lang, ms in per_lang.items()}
                write_results(tmp_path, task, shifted)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=args) for args in (("ner", NER), ("xsr", XSR), ("qa", QA))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    doc = load_results(tmp_path)
    assert sorted(doc["tasks"]) == ["ner", "qa", "xsr"]
    assert doc["tasks"]["ner"]["languages"]["es"]["f1"] == 70.0 + 14


def test_compare_ner_and_nli_runs_at_once_takes_each_task_baseline_from_its_own_runs(tmp_path):
    """Issue 23 item 8: ``compare mbert-ner aligned-ner mbert-nli aligned-nli`` used the first run (which has no
    NLI) as the baseline of both tasks; each task's Δ is now taken against the first run that has that task."""
    runs = {name: tmp_path / name for name in ("mbert-ner", "aligned-ner", "mbert-nli", "aligned-nli")}
    write_results(runs["mbert-ner"], "ner", {"en": {"f1": 80.0}, "es": {"f1": 60.0}})
    write_results(runs["aligned-ner"], "ner", {"en": {"f1": 81.0}, "es": {"f1": 64.0}})
    write_results(runs["mbert-nli"], "nli", {"en": {"accuracy": 70.0}, "de": {"accuracy": 50.0}})
    write_results(runs["aligned-nli"], "nli", {"en": {"accuracy": 71.0}, "de": {"accuracy": 55.5}})
    result = compare_runs(list(runs.values()), out_dir=tmp_path / "cmp")
    assert result.tasks == ["ner", "nli"]
    assert result.baselines == {"ner": "mbert-ner", "nli": "mbert-nli"}
    md = result.markdown
    assert "ner: **mbert-ner**" in md and "nli: **mbert-nli**" in md
    assert "| es | 60.0 | 64.0 | +4.0 |" in md  # NER: aligned-ner − mbert-ner
    assert "| de | 50.0 | 55.5 | +5.5 |" in md  # NLI: aligned-nli − mbert-nli, not against a run without NLI
    assert "accuracy Δ (aligned-nli − mbert-nli)" in md and "f1 Δ (aligned-ner − mbert-ner)" in md
    _assert_png(tmp_path / "cmp" / "comparison_nli.png")

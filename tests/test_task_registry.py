"""The task registry: a new evaluation task is a handler class (here, in this file) and one registration; the
config accepts it, ``evaluate`` runs it, results and plots use its primary metric; finetune refuses it."""

from __future__ import annotations

import json

import pytest
from helpers import tiny_model_dir

from amber_align.errors import ConfigError
from amber_align.tasks.config import TaskConfig
from amber_align.tasks.handlers import TaskHandler
from amber_align.tasks.registry import (TASK_REGISTRY, Task, get_task, non_score_metrics, primary_metric,
                                        register_task, task_names, unregister_task)
from amber_align.tasks.runner import run_evaluate, run_finetune


class LengthHandler(TaskHandler):
    """Toy encoder task: the share of the model's vocabulary the tokenizer has, as a 'score', per language."""

    def evaluate_encoder(self, model, tokenizer, config):
        share = 100.0 * len(tokenizer) / model.config.vocab_size
        return {lang: {"share": share, "cutoff": 0.5} for lang in config.languages}


@pytest.fixture
def toy_task():
    task = register_task(Task("toy-len", "Vocabulary share (toy)", "feature-extraction", "share",
                              f"{__name__}:LengthHandler", non_score_metrics=frozenset({"cutoff"})))
    yield task
    unregister_task("toy-len")


def test_a_registered_task_is_evaluated_and_reported(tmp_path, toy_task):
    assert "toy-len" in task_names() and "toy-len" in task_names(trainable=False)
    assert primary_metric("toy-len") == "share" and non_score_metrics("toy-len") == {"cutoff"}
    model = tiny_model_dir("mbert", tmp_path / "tiny")
    config = TaskConfig(task="toy-len", model_name_or_path=str(model), languages=["de", "es"], data_dir=str(tmp_path),
                        output_dir=str(tmp_path / "out"), report_to=[], use_cpu=True)
    report = run_evaluate(config)
    assert report["metrics"]["eval_toy-len_de_share"] == pytest.approx(100.0)
    results = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))
    assert set(results["tasks"]["toy-len"]["languages"]) == {"de", "es"}
    with pytest.raises(ConfigError, match="finetune: task 'toy-len' has no training; use evaluate"):
        run_finetune(config)


def test_registry_refuses_duplicates_and_bad_names(toy_task):
    with pytest.raises(ConfigError, match="'toy-len' is registered already"):
        register_task(toy_task)
    with pytest.raises(ConfigError, match="expected letters, digits and '-' only"):
        register_task(Task("a_b", "x", "x", "x", "x:y"))
    with pytest.raises(ConfigError, match=r"TaskConfig.task: expected one of \('ner', 'nli', 'qa', 'xsr', 'bucc', "
                                          r"'toy-len'\) \(the registered tasks\), got 'pos'"):
        TaskConfig(task="pos", output_dir="unused", report_to=[])
    assert "a_b" not in TASK_REGISTRY


def test_builtin_tasks_declare_heads_metrics_and_card_entries():
    assert task_names(trainable=True) == ("ner", "nli", "qa")
    assert {n: get_task(n).primary_metric for n in task_names()} == {
        "ner": "f1", "nli": "accuracy", "qa": "f1", "xsr": "xx2en_p@1", "bucc": "f1"}
    assert get_task("ner").head == "AutoModelForTokenClassification" and get_task("ner").labels
    assert get_task("bucc").dataset == ("bucc18", "BUCC 2018") and non_score_metrics("bucc") == {"threshold"}
    for name in task_names():
        assert get_task(name).load_handler().task is get_task(name)

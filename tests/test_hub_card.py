"""Model cards: written at every save from the package's Jinja templates, metadata that parses with
``huggingface_hub.ModelCard``, per-language results in ``model-index``, an existing README updated (not
overwritten), ``create_model_card`` overridden, and the rendered example in ``model_cards/`` kept current."""

from __future__ import annotations

import importlib.resources
import json
import shutil
from pathlib import Path

import pytest
from helpers import tiny_model_dir
from huggingface_hub import ModelCard

from amber_align.config_io import build_config
from amber_align.demo import demo_dir
from amber_align.hub.card import GENERATED_END, GENERATED_START, refresh_card, render_card, write_card
from amber_align.hub.context import CONTEXT_FILE, non_default_hyperparameters, read_context
from amber_align.pipeline import run_alignment
from amber_align.tasks.results import write_results

REPO = Path(__file__).resolve().parents[1]
DATA = demo_dir() / "data"


def aligned_run(tmp_path: Path, **fields):
    """A tiny Cao run (de-en 24 pairs, fr-en 16, 4 held out, 2 steps) through ``run_alignment``; returns the
    trainer. Fields override the config."""
    values = {
        "method": "cao", "model_name_or_path": str(tiny_model_dir("mbert", tmp_path / "tiny")),
        "output_dir": str(tmp_path / "out"), "pretokenized": True, "max_steps": 2, "per_device_train_batch_size": 4,
        "eval_split_size": 4, "use_cpu": True, "report_to": [], "save_strategy": "no", "logging_steps": 1,
        "learning_rate": 1e-4,
        "train_data": [{"file": str(DATA / "de-en.txt"), "format": "bar", "src_lang": "de", "tgt_lang": "en",
                        "alignments": str(DATA / "de-en.pharaoh"), "max_pairs": 24},
                       {"file": str(DATA / "fr-en.txt"), "format": "bar", "src_lang": "fr", "tgt_lang": "en",
                        "alignments": str(DATA / "fr-en.pharaoh"), "max_pairs": 16}],
        **fields,
    }
    return run_alignment(build_config(values, source="test"))


def test_alignment_run_card_metadata_body_checkpoints_and_token_count(tmp_path):
    trainer = aligned_run(tmp_path, save_strategy="steps", save_steps=1,
                          include_num_input_tokens_seen="non_padding")
    out = tmp_path / "out"
    card = ModelCard.load(out / "README.md")
    data = card.data
    assert data.language == ["en", "de", "fr"] and data.library_name == "transformers"
    assert data.pipeline_tag == "feature-extraction"
    assert {"amber-align", "cao-alignment"} <= set(data.tags)
    assert data.base_model is None  # a local folder is no Hub id: named in the text instead
    # parallel data per language pair: what the trainer saw
    counts = {pair: trainer.train_dataset["pair"].count(pair) for pair in ("de-en", "fr-en")}
    held = {pair: trainer.eval_dataset["pair"].count(pair) for pair in ("de-en", "fr-en")}
    for pair in counts:
        assert f"| {pair} | {counts[pair]} | {held[pair]} |" in card.text
    assert sum(counts.values()) + sum(held.values()) == 40
    # exactly the changed fields, none of the paths / logging / Hub fields
    rows = {r["name"]: r for r in non_default_hyperparameters(trainer.args)}
    assert {"max_steps", "learning_rate", "per_device_train_batch_size", "eval_split_size", "pretokenized"} <= set(rows)
    assert rows["learning_rate"] == {"name": "learning_rate", "value": 1e-4, "default": 5e-5}
    assert not {"output_dir", "train_data", "model_name_or_path", "save_steps", "hub_model_id"} & set(rows)
    assert "| `learning_rate` | `0.0001` | `5e-05` |" in card.text
    # training figures: our token count (no per-step sync) equals the Trainer's own gathered count
    context = read_context(out)
    assert context["training"]["steps"] == 2 and context["training"]["finished"]
    assert trainer._card_tokens == trainer.state.num_input_tokens_seen > 0
    assert context["training"]["tokens"] == trainer.state.num_input_tokens_seen
    assert "eval_cao_link" in context["eval_losses"] and "`eval_cao_link`" in card.text
    assert "cao2020multilingual" in card.text and "Multilingual Alignment of Contextual Word" in card.text
    # every save wrote a card, a checkpoint's says it is one
    for step in (1, 2):
        assert (out / f"checkpoint-{step}" / "README.md").is_file()
    assert "1 of 2 (checkpoint)" in (out / "checkpoint-1" / "README.md").read_text(encoding="utf-8")
    # no absolute path in the card or its context (the tmp folder name would show)
    for name in ("README.md", CONTEXT_FILE):
        assert str(tmp_path) not in (out / name).read_text(encoding="utf-8")


def test_existing_readme_is_updated_not_overwritten(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    user = "---\nlicense: mit\ntags:\n- my-tag\nlanguage:\n- xx\nmy_key: kept\n---\n\n# My model\n\nMy own notes.\n"
    (out / "README.md").write_text(user, encoding="utf-8")
    trainer = aligned_run(tmp_path)
    for _ in range(2):  # run_alignment saved once; a second save must not add a second block
        trainer.save_model()
    trainer.create_model_card(license="cc-by-4.0", tags="extra", model_name="ignored")
    text = (out / "README.md").read_text(encoding="utf-8")
    card = ModelCard(text)
    assert text.count(GENERATED_START) == 1 and text.count(GENERATED_END) == 1
    assert text.count("My own notes.") == 1 and card.text.index("My own notes.") < card.text.index(GENERATED_START)
    assert card.data.license == "cc-by-4.0"  # given explicitly to create_model_card: wins over the user's
    assert {"my-tag", "extra", "amber-align"} <= set(card.data.tags)
    assert card.data.language == ["xx", "en", "de", "fr"] and card.data.get("my_key") == "kept"
    assert "More information needed" not in text  # transformers' generic card did not replace ours
    # without an explicit licence, the user's stays
    (out / "README.md").write_text(user, encoding="utf-8")
    trainer.save_model()
    assert ModelCard.load(out / "README.md").data.license == "mit"


def _task_context(**extra) -> dict:
    context = {"schema": 1, "kind": "task_model", "task": "nli", "model_name": "nli-model",
               "languages": ["en", "de", "es"], "train_language": "en", "train_source": "dev-en.tsv",
               "eval_sources": {"en": "test-en.tsv", "de": "xnli / de / test", "es": "test-es.tsv"},
               "labels": ["entailment", "neutral", "contradiction"], "methods": ["cao", "efimov"],
               "base_model": "google-bert/bert-base-multilingual-cased", "config_class": "TaskConfig",
               "hyperparameters": [], "seed": 42, "model": {"architecture": "BertForSequenceClassification"},
               "training": {"steps": 3, "epochs": 1.0, "tokens": 120, "wall_seconds": 2.0, "finished": True,
                            "hardware": "1 × CPU", "precision": "fp32", "per_device_batch": 2,
                            "gradient_accumulation_steps": 1},
               "versions": {"amber_align": "0", "transformers": "5", "torch": "2"}}
    context.update(extra)
    return context


def test_model_index_has_one_result_per_language_and_metric(tmp_path):
    write_results(tmp_path, "nli", {"en": {"accuracy": 80.0}, "de": {"accuracy": 70.5}, "es": {"accuracy": 71.25}},
                  meta={"train_language": "en"})
    write_results(tmp_path, "xsr", {"de": {"xx2en_p@1": 40.0, "en2xx_p@1": 41.0}})
    write_card(tmp_path, _task_context())
    card = ModelCard.load(tmp_path / "README.md")
    results = {(r.task_type, r.dataset_type, r.dataset_config, r.metric_type): r.metric_value
               for r in card.data.eval_results}
    # a task model shows the task it was trained for, each language with its dataset
    assert results == {("text-classification", "test-en.tsv", "en", "accuracy"): 80.0,
                       ("text-classification", "xnli", "de", "accuracy"): 70.5,
                       ("text-classification", "test-es.tsv", "es", "accuracy"): 71.25}
    assert card.data.base_model == "google-bert/bert-base-multilingual-cased"
    assert card.data.pipeline_tag == "text-classification" and card.data.model_name == "nli-model"
    assert "| de | 70.5 |" in card.text and "average" in card.text
    assert "AutoModelForSequenceClassification" in card.text
    # an encoder's card shows every task evaluated into its folder
    encoder = render_card({**_task_context(), "kind": "aligned_encoder"},
                          results=json.loads((tmp_path / "results.json").read_text())["tasks"])
    assert {r.dataset_type for r in encoder.data.eval_results} == {"tatoeba", "test-en.tsv", "xnli", "test-es.tsv"}


def test_refresh_card_picks_up_new_results_and_refinement_maps(tmp_path):
    trainer = aligned_run(tmp_path)
    out = tmp_path / "out"
    assert ModelCard.load(out / "README.md").data.eval_results is None
    write_results(out, "xsr", {"de": {"xx2en_p@1": 12.5}, "fr": {"xx2en_p@1": 20.0}})
    (out / "alignment_maps.json").write_text("{}", encoding="utf-8")
    refresh_card(out, hub_model_id="org/aligned", extra_metadata={"license": "apache-2.0"})
    card = ModelCard.load(out / "README.md")
    assert [(r.dataset_config, r.metric_value) for r in card.data.eval_results] == [("de", 12.5), ("fr", 20.0)]
    assert card.data.license == "apache-2.0" and card.data.model_name == "aligned"
    assert 'from_pretrained("org/aligned")' in card.text and "wang2020cross" in card.text
    del trainer


def test_templates_are_package_data():
    files = importlib.resources.files("amber_align.hub") / "templates"
    names = {p.name for p in files.iterdir()}
    assert {"aligned_encoder.md.j2", "task_model.md.j2", "_macros.md.j2"} <= names
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert '"hub/templates/*.j2"' in pyproject


def test_rendered_example_in_model_cards_is_current(tmp_path):
    """model_cards/example_minilm/README.md is what the templates render from the saved context and results of
    that run: regenerate it (see model_cards/README.md) when a template changes."""
    example = REPO / "model_cards" / "example_minilm"
    folder = tmp_path / "example"
    folder.mkdir()
    for name in (CONTEXT_FILE, "results.json"):
        shutil.copy(example / name, folder / name)
    write_card(folder, read_context(folder), save_context=False)
    assert (folder / "README.md").read_text(encoding="utf-8") == (example / "README.md").read_text(encoding="utf-8")
    card = ModelCard.load(example / "README.md")
    assert card.data.base_model and card.data.eval_results and card.data.license


@pytest.mark.parametrize("bad", ["not yaml: [", "- a list\n- not a mapping"])
def test_unreadable_readme_metadata_keeps_the_text(tmp_path, bad):
    (tmp_path / "README.md").write_text(f"---\n{bad}\n---\nUser text.\n", encoding="utf-8")
    write_card(tmp_path, _task_context())
    text = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert "User text." in text and text.count(GENERATED_START) == 1
    assert ModelCard(text).data.pipeline_tag == "text-classification"


def test_card_languages_of_a_filtered_dataset_do_not_rewrite_its_token_columns(monkeypatch):
    """A filtered training set has an indices mapping; listing its languages for the card must not flatten the
    token-id and link columns (that took 38 s at 70k pairs, on every checkpoint save)."""
    import datasets

    from amber_align.hub.context import _languages

    rows = 40
    ds = datasets.Dataset.from_dict({
        "src_lang": ["de", "fr"] * (rows // 2), "tgt_lang": ["en"] * rows,
        "x_input_ids": [[1, 2, 3]] * rows, "links": [[[0, 1]]] * rows}).select(range(0, rows, 4))
    flatten = datasets.Dataset.flatten_indices

    def guarded(self, *args, **kwargs):
        if {"x_input_ids", "links"} & set(self.column_names):
            raise AssertionError(f"flattened the heavy columns {self.column_names}")
        return flatten(self, *args, **kwargs)

    monkeypatch.setattr(datasets.Dataset, "flatten_indices", guarded)
    assert _languages([ds, None], "en") == ["en", "de"]

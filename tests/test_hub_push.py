"""Push → ``from_pretrained`` round trip through the local Hub-compatible server (tests/hub_server.py), reached
through ``HF_ENDPOINT``: ``amber-align push`` and the trainers' ``--push_to_hub``; tokens come from the environment
and never reach a file or a log; bad input exits 2."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
import yaml
from helpers import tiny_model_dir
from hub_server import local_hub
from huggingface_hub import ModelCard
from test_hub_card import DATA, aligned_run
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from amber_align.cli import main
from amber_align.tasks.results import write_results

TOKEN = "hf_FakeTokenForTests0123456789abcdefXYZ"
OTHER_TOKEN = "hf_SecondFakeTokenForTestsQWERTYuiop42"
SENTENCES = ["Guten Morgen, wie geht es dir?", "Le chat dort sur le canapé.", "The cat sleeps."]
NLI = ("A man sleeps.\tSomeone rests.\tentailment\nA man sleeps.\tA man runs.\tcontradiction\n"
       "A dog barks.\tThe dog is loud.\tneutral\nA dog barks.\tAn animal makes noise.\tentailment\n")
NLI_DE = "Ein Mann schläft.\tJemand ruht.\tentailment\nEin Hund bellt.\tEine Katze schläft.\tneutral\n"


@pytest.fixture
def hub(monkeypatch):
    """The local Hub, with fake tokens in the environment (the only place tokens come from)."""
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", OTHER_TOKEN)
    with local_hub(monkeypatch) as state:
        yield state


def _same_outputs(local: Path, repo_id: str, cache: Path) -> None:
    """The model and tokenizer downloaded from the Hub give the local checkpoint's outputs, bit for bit."""
    ours, theirs = AutoModel.from_pretrained(local).eval(), AutoModel.from_pretrained(repo_id, cache_dir=cache).eval()
    tok_local, tok_hub = AutoTokenizer.from_pretrained(local), AutoTokenizer.from_pretrained(repo_id, cache_dir=cache)
    assert type(theirs).__name__ == "BertModel"
    a, b = tok_local(SENTENCES, padding=True, return_tensors="pt"), tok_hub(SENTENCES, padding=True, return_tensors="pt")
    assert torch.equal(a["input_ids"], b["input_ids"])
    with torch.no_grad():
        assert torch.equal(ours(**a).last_hidden_state, theirs(**b).last_hidden_state)


def test_push_command_round_trip_with_results_in_model_index(tmp_path, hub, capsys):
    aligned_run(tmp_path, save_strategy="steps", save_steps=1)
    out = tmp_path / "out"
    write_results(out, "xsr", {"de": {"xx2en_p@1": 12.5, "en2xx_p@1": 10.0}, "fr": {"xx2en_p@1": 20.0}})
    assert main(["push", str(out), "--repo-id", "org/tiny-aligned", "--license", "apache-2.0",
                 "--base-model", "google-bert/bert-base-multilingual-cased"]) == 0
    assert "pushed" in capsys.readouterr().out
    files = set(hub.repos["org/tiny-aligned"])
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md", "results.json",
            "amber_align_card.json"} <= files
    assert "training_args.bin" not in files and not any(f.startswith("checkpoint-") for f in files)
    assert hub.authorizations > 0  # the token was sent: it came from HF_TOKEN
    _same_outputs(out, "org/tiny-aligned", tmp_path / "cache")
    card = ModelCard.load("org/tiny-aligned")  # through the same endpoint
    assert card.data.license == "apache-2.0" and card.data.base_model == "google-bert/bert-base-multilingual-cased"
    assert sorted((r.dataset_config, r.metric_type, r.metric_value) for r in card.data.eval_results) == [
        ("de", "en2xx_p@1", 10.0), ("de", "xx2en_p@1", 12.5), ("fr", "xx2en_p@1", 20.0)]
    assert 'AutoModel.from_pretrained("org/tiny-aligned")' in card.text
    # pushing again to the same repo is a new commit, not an error
    assert main(["push", str(out), "--repo-id", "org/tiny-aligned"]) == 0
    assert len(hub.commits["org/tiny-aligned"]) == 2


def test_trainer_push_to_hub_and_no_token_in_any_file_or_log(tmp_path, hub, caplog, capfd):
    """`align` and `finetune` with --push_to_hub: the aligned encoder and the task model (its card carrying the
    per-language results in model-index) reach the Hub; the fake tokens of the environment appear in no file
    written (run folders, download cache, the Hub's copies) and in no log line or output."""
    caplog.set_level(logging.DEBUG)
    model = tiny_model_dir("mbert", tmp_path / "tiny")
    config = {"method": "cao", "model_name_or_path": str(model), "output_dir": str(tmp_path / "aligned"),
              "pretokenized": True, "max_steps": 2, "per_device_train_batch_size": 4, "use_cpu": True,
              "report_to": [], "save_strategy": "no", "logging_steps": 1, "push_to_hub": True,
              "hub_model_id": "org/aligned-by-trainer",
              "train_data": [{"file": str(DATA / "de-en.txt"), "format": "bar", "src_lang": "de", "tgt_lang": "en",
                              "alignments": str(DATA / "de-en.pharaoh"), "max_pairs": 16}]}
    (tmp_path / "align.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    assert main(["-v", "align", "--config", str(tmp_path / "align.yaml")]) == 0
    assert "More information needed" not in hub.repos["org/aligned-by-trainer"]["README.md"].decode()  # ours
    _same_outputs(tmp_path / "aligned", "org/aligned-by-trainer", tmp_path / "cache")

    (tmp_path / "dev-en.tsv").write_text(NLI, encoding="utf-8")
    (tmp_path / "test-de.tsv").write_text(NLI_DE, encoding="utf-8")
    task = {"task": "nli", "train_data": str(tmp_path / "dev-en.tsv"), "max_steps": 2, "max_seq_length": 32,
            "eval_data": {"en": str(tmp_path / "dev-en.tsv"), "de": str(tmp_path / "test-de.tsv")},
            "per_device_train_batch_size": 2, "use_cpu": True, "report_to": [], "save_strategy": "no",
            "push_to_hub": True, "hub_model_id": "org/nli-by-trainer"}
    (tmp_path / "nli.yaml").write_text(yaml.safe_dump(task), encoding="utf-8")
    assert main(["-v", "finetune", "--task", "nli", "--config", str(tmp_path / "nli.yaml"),
                 "--model", str(tmp_path / "aligned"), "--output_dir", str(tmp_path / "nli")]) == 0
    assert len(hub.commits["org/nli-by-trainer"]) == 1  # one upload, after the evaluation
    card = ModelCard.load("org/nli-by-trainer")
    results = {(r.dataset_config, r.metric_type): r.metric_value for r in card.data.eval_results}
    local = json.loads((tmp_path / "nli" / "results.json").read_text(encoding="utf-8"))["tasks"]["nli"]["languages"]
    assert results == {(lang, "accuracy"): pytest.approx(m["accuracy"], abs=1e-4) for lang, m in local.items()}
    head = AutoModelForSequenceClassification.from_pretrained("org/nli-by-trainer", cache_dir=tmp_path / "cache")
    assert head.config.id2label == {0: "entailment", 1: "neutral", 2: "contradiction"}

    captured = capfd.readouterr()
    texts = [captured.out, captured.err, caplog.text, *(r.getMessage() for r in caplog.records)]
    for path in tmp_path.rglob("*"):
        if path.is_file():
            texts.append(path.read_bytes().decode("latin-1"))
    texts += [data.decode("latin-1") for files in hub.repos.values() for data in files.values()]
    for text in texts:
        assert TOKEN not in text and OTHER_TOKEN not in text
    assert hub.authorizations > 0


def test_push_bad_input_exits_2_with_one_line(tmp_path, hub, capsys):
    model = tiny_model_dir("mbert", tmp_path / "model")
    (tmp_path / "empty").mkdir()
    cases = [(["push", str(tmp_path / "missing"), "--repo-id", "org/x"], "is not a directory"),
             (["push", str(tmp_path / "empty"), "--repo-id", "org/x"], "config.json is missing"),
             (["push", str(model), "--repo-id", "org x/bad//id"], "is not a Hub repo id")]
    capsys.readouterr()
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    (model / "model.safetensors").unlink()
    assert main(["push", str(model), "--repo-id", "org/x"]) == 2
    assert "no safetensors weights" in capsys.readouterr().err


def test_unreachable_hub_and_token_in_config_are_errors_that_do_not_print_the_token(tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants as constants

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    model = tiny_model_dir("mbert", tmp_path / "model")
    capsys.readouterr()
    assert main(["push", str(model), "--repo-id", "org/x"]) == 2
    err = capsys.readouterr().err
    assert "push to http://127.0.0.1:9 repo 'org/x' failed" in err and TOKEN not in err
    config = {"method": "cao", "model_name_or_path": str(model), "output_dir": str(tmp_path / "out"),
              "pretokenized": True, "max_steps": 1, "use_cpu": True, "report_to": [], "hub_token": TOKEN,
              "train_data": [{"file": str(DATA / "de-en.txt"), "format": "bar", "src_lang": "de", "tgt_lang": "en",
                              "alignments": str(DATA / "de-en.pharaoh"), "max_pairs": 8}]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    assert main(["align", "--config", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err
    assert "hub_token: a token in the config is saved into training_args.bin" in err and TOKEN not in err
    assert not (tmp_path / "out" / "training_args.bin").exists()

"""The amber-align command line: end-to-end align, word-align, aer, evaluate, and bad-input exits."""

from __future__ import annotations

import json
import sys

import pytest
import torch
import yaml
from helpers import tiny_model_dir
from transformers import AutoModel, AutoTokenizer

from amber_align.cli import main
from amber_align.demo import demo_dir

DATA = demo_dir() / "data"


def _config(tmp_path, model_dir, **fields):
    values = {
        "method": "cao", "model_name_or_path": str(model_dir), "output_dir": str(tmp_path / "out"),
        "train_data": [{"file": str(DATA / "de-en.txt"), "format": "bar", "src_lang": "de", "tgt_lang": "en",
                        "alignments": str(DATA / "de-en.pharaoh"), "max_pairs": 24},
                       {"file": str(DATA / "fr-en.txt"), "format": "bar", "src_lang": "fr", "tgt_lang": "en",
                        "alignments": str(DATA / "fr-en.pharaoh"), "max_pairs": 16}],
        "pretokenized": True, "max_steps": 2, "per_device_train_batch_size": 4, "eval_split_size": 4,
        "use_cpu": True, "report_to": [], "save_strategy": "no", "logging_steps": 1,
    }
    values.update(fields)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


def test_align_end_to_end_checkpoint_loads(tmp_path, capsys):
    d = tiny_model_dir("xlmr", tmp_path / "tiny")
    cfg = _config(tmp_path, d)
    assert main(["align", "--config", str(cfg), "--learning_rate", "1e-4"]) == 0
    out = tmp_path / "out"
    model = AutoModel.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert type(model).__name__ == "XLMRobertaModel"
    with torch.no_grad():
        model(**tok(["Guten Morgen"], return_tensors="pt"))
    assert (out / "eval_results.json").exists()
    assert "saved aligned encoder" in capsys.readouterr().out


def test_align_mismatched_corpus_names_both_files_and_counts(tmp_path, capsys, monkeypatch):
    d = tiny_model_dir("mbert", tmp_path / "tiny")

    def no_model_load(*args, **kwargs):
        raise AssertionError("the corpus must be checked before the model is loaded")

    monkeypatch.setattr("amber_align.trainers.alignment_trainer.load_encoder", no_model_load)
    monkeypatch.setattr("amber_align.trainers.amber.load_masked_lm", no_model_load)
    monkeypatch.setattr("amber_align.trainers.amber.load_encoder", no_model_load)
    (tmp_path / "a.de").write_text("eins\nzwei\ndrei\n", encoding="utf-8")
    (tmp_path / "b.en").write_text("one\ntwo\n", encoding="utf-8")
    cfg = _config(tmp_path, d, train_data=[{"src_file": str(tmp_path / "a.de"), "tgt_file": str(tmp_path / "b.en"),
                                            "src_lang": "de", "tgt_lang": "en"}])
    assert main(["align", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error:")
    assert "a.de" in err and "b.en" in err and "3" in err and "2" in err
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_align_unknown_field_exits_2(tmp_path, capsys):
    d = tiny_model_dir("mbert", tmp_path / "tiny")
    cfg = _config(tmp_path, d)
    assert main(["align", "--config", str(cfg), "--pooling_mode", "mean"]) == 2
    assert "unknown field 'pooling_mode'" in capsys.readouterr().err


def test_align_tokenizer_that_does_not_fit_the_model(tmp_path, capsys):
    from helpers import mbert_tokenizer
    from transformers import BertConfig, BertModel

    d = tmp_path / "small-vocab"
    BertModel(BertConfig(vocab_size=1000, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(d)
    mbert_tokenizer().save_pretrained(d)
    cfg = _config(tmp_path, d)
    assert main(["align", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "1000" in err and "119547" in err


def test_align_without_links_needs_eflomal_and_says_how(tmp_path, capsys, monkeypatch):
    d = tiny_model_dir("mbert", tmp_path / "tiny")
    cfg = _config(tmp_path, d, train_data=[{"file": str(DATA / "es-en.txt"), "format": "bar", "src_lang": "es",
                                            "tgt_lang": "en", "max_pairs": 8}],
                  alignment_cache_dir=str(tmp_path / "cache"))
    monkeypatch.setitem(sys.modules, "eflomal", None)  # as if the 'align' extra were not installed
    assert main(["align", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "word-align" in err and "amber-align[align]" in err


def test_align_without_links_runs_eflomal_and_caches(tmp_path):
    pytest.importorskip("eflomal")
    d = tiny_model_dir("mbert", tmp_path / "tiny")
    cfg = _config(tmp_path, d, train_data=[{"file": str(DATA / "es-en.txt"), "format": "bar", "src_lang": "es",
                                            "tgt_lang": "en", "max_pairs": 64}],
                  alignment_cache_dir=str(tmp_path / "cache"), eval_split_size=0)
    assert main(["align", "--config", str(cfg)]) == 0
    assert any((tmp_path / "cache").rglob("*")), "eflomal result was not cached"


def test_word_align_writes_three_line_parallel_files(tmp_path):
    pytest.importorskip("eflomal")
    src = tmp_path / "c.es"
    tgt = tmp_path / "c.en"
    lines = [l.split(" ||| ") for l in (DATA / "es-en.txt").read_text(encoding="utf-8").splitlines()[:200]]
    src.write_text("\n".join(a for a, _ in lines) + "\n", encoding="utf-8")
    tgt.write_text("\n".join(b for _, b in lines) + "\n", encoding="utf-8")
    assert main(["word-align", "--src_file", str(src), "--tgt_file", str(tgt), "--out", str(tmp_path / "al"),
                 "--symmetrization", "grow-diag-final-and", "--pretokenized"]) == 0
    for suffix in ("fwd", "rev", "grow-diag-final-and"):
        assert len((tmp_path / f"al.{suffix}").read_text().splitlines()) == 200


def test_aer_cli_gold_against_itself(tmp_path, capsys):
    gold = tmp_path / "gold"
    gold.write_text("1-1 2p3 3-2\n1-1\n", encoding="utf-8")
    pred = tmp_path / "pred"
    pred.write_text("0-0 2-1\n0-0\n", encoding="utf-8")  # 0-based: the sure links only
    assert main(["aer", "--pred", str(pred), "--gold", str(gold)]) == 0
    assert '"aer": 0.0' in capsys.readouterr().out


def test_evaluate_xsr_cli(tmp_path, capsys):
    d = tiny_model_dir("mbert", tmp_path / "tiny")
    out = tmp_path / "xsr.json"
    assert main(["evaluate", "--task", "xsr", "--model", str(d), "--languages", "es,de",
                 "--data_dir", str(DATA / "xsr"), "--max_eval_examples", "20", "--output", str(out),
                 "--output_dir", str(tmp_path / "run")]) == 0
    assert "es" in capsys.readouterr().out and out.exists()
    assert set(json.loads(out.read_text())) >= {"eval_xsr_es_xx2en_p@1", "eval_xsr_de_en2xx_p@1", "eval_xsr_avg_xx2en_p@1"}
    assert (tmp_path / "run" / "results.md").exists() and (tmp_path / "run" / "xsr.png").exists()


# What can be checked without torch is checked before it is imported (issue 23 item 9: 35 s of imports, then the
# error). Each case: argv (NOPE = a missing file, BAD = a file with bad YAML, DUP = a duplicate key), last line.
PREFLIGHT_CASES = {
    "align, missing config": (["align", "--config", "NOPE"], "error: config file not found: NOPE"),
    "finetune, missing config": (["finetune", "--task", "nli", "--config", "NOPE"],
                                 "error: config file not found: NOPE"),
    "evaluate, missing config": (["evaluate", "--task", "xsr", "--config=NOPE"], "error: config file not found: NOPE"),
    "align, bad YAML": (["align", "--config", "BAD"], "error: BAD:3: invalid YAML: expected ',' or ']', but got "
                                                      "'<stream end>'"),
    "finetune, duplicate key": (["finetune", "--config", "DUP"], "error: DUP:3: invalid YAML: duplicate key "
                                                                 "'max_steps' (first on line 2)"),
    "finetune without a task": (["finetune", "--max_steps", "2"],
                                "error: finetune: --task is required (or task: in the --config file)"),
    "finetune of an evaluation-only task": (["finetune", "--task", "xsr"], "error: finetune --task: task 'xsr' has "
                                            "no training; use evaluate (fine-tunable tasks: ner, nli, qa)"),
    "evaluate, unknown task": (["evaluate", "--task", "nope"], "error: TaskConfig.task: expected one of ('ner', "
                               "'nli', 'qa', 'xsr', 'bucc') (the registered tasks), got 'nope'"),
}


@pytest.mark.parametrize("case", list(PREFLIGHT_CASES))
def test_arguments_checkable_without_torch_are_refused_before_torch_is_imported(case, tmp_path):
    """Issue 23 item 9: the error took 35 s because torch and transformers were imported first."""
    import subprocess

    files = {"NOPE": tmp_path / "nope.yaml", "BAD": tmp_path / "bad.yaml", "DUP": tmp_path / "dup.yaml"}
    files["BAD"].write_text("task: nli\nmax_steps: [1\n", encoding="utf-8")
    files["DUP"].write_text("task: nli\nmax_steps: 1\nmax_steps: 2\n", encoding="utf-8")
    argv, expected = PREFLIGHT_CASES[case]
    for key, path in files.items():
        argv = [a.replace(key, str(path)) for a in argv]
        expected = expected.replace(key, str(path))
    code = ("import sys; from amber_align.cli import main; rc = main(sys.argv[1:]); "
            "print('HEAVY', sorted(m for m in ('torch', 'transformers') if m in sys.modules)); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == expected
    assert "HEAVY []" in proc.stdout, proc.stdout

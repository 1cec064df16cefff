"""The bad-input matrix of issue 9 through the command line, one case per row (docs/errors.md, "Reliability").

Every case asserts: exit status 2, the last stderr line is one ``error: …`` line naming the file (and line) or the
field and what was expected, no traceback, and no output that looks complete (no ``config.json`` / weights /
``results.json`` in the output folder). The alignment cases fail before any training, most before the model is
loaded; the task cases before fine-tuning starts.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from helpers import tiny_model, tiny_model_dir

from amber_align.cli import main
from amber_align.data.parallel import ParallelSource, load_parallel

LINKS = "0-0 1-1\n0-0\n"
BAR = "Guten Morgen ||| Good morning\nDanke ||| Thanks\n"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return tiny_model_dir("mbert", tmp_path_factory.mktemp("matrix") / "tiny")


def assert_no_complete_output(out: Path) -> None:
    """Nothing in ``out`` that a reader would take for a finished run."""
    if not out.exists():
        return
    for name in ("config.json", "model.safetensors", "results.json", "results.md", "eval_results.json"):
        assert not (out / name).exists(), f"{out / name} looks like a complete output"
    assert not any(out.glob("checkpoint-*")), "no checkpoint before training"


def run_cli(argv: list[str], capsys) -> str:
    """Run the CLI, check exit 2 and one ``error:`` line without traceback; return that line."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("error: "), err[-5:]
    assert not any(line.startswith("Traceback") for line in err)
    return err[-1]


def align_config(tmp_path: Path, model: Path, source: dict | list, **fields) -> Path:
    values = {"method": "cao", "model_name_or_path": str(model), "output_dir": str(tmp_path / "out"),
              "train_data": source if isinstance(source, list) else [source], "pretokenized": True, "max_steps": 1,
              "per_device_train_batch_size": 2, "use_cpu": True, "report_to": [], "save_strategy": "no", **fields}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")
    return path


def _write(path: Path, data: str | bytes) -> str:
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return str(path)


# -------------------------------------------------------------------------------------------- corpus and links
def _two_files(tmp: Path, src: str | bytes, tgt: str | bytes) -> dict:
    return {"src_file": _write(tmp / "a.de", src), "tgt_file": _write(tmp / "b.en", tgt), "src_lang": "de",
            "tgt_lang": "en", "alignments": _write(tmp / "links", LINKS)}


def _bar(tmp: Path, text: str, links: str = LINKS) -> dict:
    return {"file": _write(tmp / "c.txt", text), "format": "bar", "src_lang": "de", "tgt_lang": "en",
            "alignments": _write(tmp / "links", links)}


CORPUS_CASES = {
    "mismatched line counts": (lambda t: _two_files(t, "eins\nzwei\ndrei\n", "one\ntwo\n"),
                               [r"a\.de has 3 lines", r"b\.en has 2"]),
    "empty files": (lambda t: _two_files(t, "", ""), [r"a\.de", r"empty|no pairs"]),
    "invalid UTF-8": (lambda t: _two_files(t, b"Guten Morgen\nsch\xf6n\n", "Good morning\nnice\n"),
                      [r"a\.de:2: invalid UTF-8 \(byte 0xf6 at column 4\)"]),
    "tab inside a TSV field": (lambda t: {"file": _write(t / "c.tsv", "de\ten\nHallo\tHello\nein\tTab\tzu viel\n"),
                                          "src_column": "de", "tgt_column": "en", "src_lang": "de",
                                          "tgt_lang": "en"},
                               [r"c\.tsv:3:", r"2", r"3"]),
    "||| missing on a line": (lambda t: _bar(t, "Guten Morgen ||| Good morning\nkein Trenner hier\n"),
                              [r"c\.txt:2:", r"\|\|\|"]),
    "alignment index out of range": (lambda t: _bar(t, BAR, "0-0 5-1\n0-0\n"),
                                     [r"links:1:", r"'5-1'", r"source index 5", r"2 words"]),
    "alignment index negative": (lambda t: _bar(t, BAR, "0-0\n-1-0\n"), [r"links:2:", r"-1-0"]),
    "alignment index not a number": (lambda t: _bar(t, BAR, "0-0 a-b\n0-0\n"), [r"links:1:", r"'a-b'"]),
    "anchor language on neither side": (lambda t: {**_bar(t, BAR), "tgt_lang": "fr"},
                                        [r"anchor_language", r"'en'", r"de-fr"]),
    # issue 23 item 7: these passed into the tokenizer, or were counted as one line, or were told to try latin-1
    "NUL byte in a line": (lambda t: _two_files(t, b"Guten Morgen\nsch\x00n\n", "Good morning\nnice\n"),
                           [r"a\.de:2: NUL byte at column 4: a binary file, or UTF-16/UTF-32 text\?"]),
    "CR-only line endings": (lambda t: _two_files(t, b"Guten Morgen\rsch\xc3\xb6n\r", "Good morning\nnice\n"),
                             [r"a\.de:1: carriage return inside the line \(column 13\): CR-only \(old Mac\) line "
                              r"endings\?"]),
    "UTF-16 file": (lambda t: _two_files(t, "Guten Morgen\nschön\n".encode("utf-16"), "Good morning\nnice\n"),
                    [r"a\.de:1: a UTF-16 file \(byte-order mark ff fe\); convert it to UTF-8 \(e\.g\. iconv -f "
                     r"UTF-16 -t UTF-8\)"]),
}


@pytest.mark.parametrize("case", list(CORPUS_CASES))
def test_align_bad_corpus_exits_2_naming_file_and_line(case, tmp_path, model_dir, capsys, monkeypatch):
    def no_model_load(*args, **kwargs):
        raise AssertionError("bad data must be reported before the model is loaded")

    monkeypatch.setattr("amber_align.trainers.alignment_trainer.load_encoder", no_model_load)
    build, patterns = CORPUS_CASES[case]
    line = run_cli(["align", "--config", str(align_config(tmp_path, model_dir, build(tmp_path)))], capsys)
    for pattern in patterns:
        assert re.search(pattern, line), f"{pattern!r} not in {line!r}"
    assert_no_complete_output(tmp_path / "out")


def test_windows_line_endings_and_bom_are_accepted(tmp_path):
    lf = _bar(tmp_path, BAR)
    crlf_dir = tmp_path / "crlf"
    crlf_dir.mkdir()
    crlf = _bar(crlf_dir, "\ufeff" + BAR.replace("\n", "\r\n"), LINKS.replace("\n", "\r\n"))
    a, b = load_parallel(ParallelSource.from_dict(lf)), load_parallel(ParallelSource.from_dict(crlf))
    for column in ("src", "tgt", "src_words", "tgt_words", "links"):
        assert a[column] == b[column], column


def test_any_valid_language_code_is_accepted_no_whitelist(tmp_path):
    ds = load_parallel(ParallelSource.from_dict({**_bar(tmp_path, BAR), "src_lang": "zzq"}))
    assert ds["pair"] == ["zzq-en", "zzq-en"]


# ----------------------------------------------------------------------------------------------------- config
@pytest.mark.parametrize("field, value, patterns", [
    ("learning_rat", 1e-4, [r"c\.yaml: unknown field 'learning_rat' for CaoConfig", r"did you mean learning_rate"]),
    ("max_length", "long", [r"CaoConfig\.max_length: expected int, got 'long' \(str\)"]),
    ("pooling", "max", [r"CaoConfig\.pooling: expected one of \('first', 'last', 'mean'\), got 'max'"]),
])
def test_align_bad_config_exits_2_naming_the_field(field, value, patterns, tmp_path, model_dir, capsys):
    config = align_config(tmp_path, model_dir, _bar(tmp_path, BAR), **{field: value})
    line = run_cli(["align", "--config", str(config)], capsys)
    for pattern in patterns:
        assert re.search(pattern, line), f"{pattern!r} not in {line!r}"
    assert_no_complete_output(tmp_path / "out")


# ------------------------------------------------------------------------------------------------------ models
def _no_weights(d: Path) -> None:
    (d / "model.safetensors").unlink()


def _pickle_only(d: Path) -> None:
    torch.save(tiny_model("mbert").state_dict(), d / "pytorch_model.bin")
    _no_weights(d)


def _truncated(d: Path) -> None:
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])


def _no_tokenizer(d: Path) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        (d / name).unlink(missing_ok=True)


def _small_vocab(d: Path) -> None:
    tiny_model("mbert", vocab_size=1000).save_pretrained(d)


def _remote_code(d: Path) -> None:
    config = json.loads((d / "config.json").read_text())
    config.update(model_type="evilbert", auto_map={"AutoConfig": "evil.C", "AutoModel": "evil.M"})
    (d / "config.json").write_text(json.dumps(config))
    (d / "evil.py").write_text(f"open({str(d / 'RAN')!r}, 'w').write('code from the model folder ran')\n")


def _other_hidden_size(d: Path) -> None:
    config = json.loads((d / "config.json").read_text())
    config.update(hidden_size=64)
    (d / "config.json").write_text(json.dumps(config))


def _named_tokenizer_class(d: Path) -> None:
    config = json.loads((d / "config.json").read_text())
    config.update(tokenizer_class="XLMRobertaTokenizer")  # an mBERT folder whose config names XLM-R's tokenizer
    (d / "config.json").write_text(json.dumps(config))


MODEL_CASES = {
    "no weights": (_no_weights, [r"no model weights found \(expected model\.safetensors\)"]),
    "only pickle .bin weights": (_pickle_only, [r"pytorch_model\.bin", r"allow_pickle_weights"]),
    "truncated safetensors": (_truncated, [r"model\.safetensors: truncated or corrupt safetensors file"]),
    "no tokenizer files": (_no_tokenizer, [r"no tokenizer files"]),
    "tokenizer larger than the vocabulary": (_small_vocab, [r"1000", r"119547"]),
    "tokenizer of another class than config.tokenizer_class": (_named_tokenizer_class, [
        r"names tokenizer_class 'XLMRobertaTokenizer' in its config but the tokenizer .* is a BertTokenizer"]),
    "model that needs its own code": (_remote_code, [r"needs its own Python code", r"trust_remote_code is never set"]),
    "config hidden_size other than the weights'": (_other_hidden_size, [
        r"config\.json: hidden_size is 64 but the weights are 32 wide \(embeddings\.word_embeddings\.weight in "
        r"model\.safetensors is \[119547, 32\]\)"]),
}


@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_align_bad_model_folder_exits_2_naming_it(case, tmp_path, model_dir, capsys):
    broken = tmp_path / "model"
    shutil.copytree(model_dir, broken)
    change, patterns = MODEL_CASES[case]
    change(broken)
    line = run_cli(["align", "--config", str(align_config(tmp_path, broken, _bar(tmp_path, BAR)))], capsys)
    assert str(broken) in line
    for pattern in patterns:
        assert re.search(pattern, line), f"{pattern!r} not in {line!r}"
    assert not (broken / "RAN").exists()
    assert_no_complete_output(tmp_path / "out")


def test_resume_from_an_incomplete_checkpoint_exits_2(tmp_path, model_dir, capsys):
    half = tmp_path / "out" / "checkpoint-2"
    half.mkdir(parents=True)
    shutil.copy(model_dir / "config.json", half)
    config = align_config(tmp_path, model_dir, _bar(tmp_path, BAR))
    line = run_cli(["align", "--config", str(config), "--resume_from_checkpoint", str(half)], capsys)
    assert re.search(r"checkpoint-2'? is an incomplete checkpoint: no trainer_state\.json", line), line
    line = run_cli(["align", "--config", str(config), "--resume_from_checkpoint", "true"], capsys)
    assert "no complete checkpoint-N folder" in line


# ------------------------------------------------------------------------------------------------------- tasks
NLI_EN = "A man sleeps.\tSomeone rests.\tentailment\nA dog barks.\tThe dog is loud.\tneutral\n"


def _qa(context: str, answer: str, start: int) -> str:
    return json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": context, "qas": [
        {"id": "q1", "question": "Wer?", "answers": [{"text": answer, "answer_start": start}]}]}]}]})


def _finetune(tmp: Path, model: Path, task: str, train: str, eval_data: dict) -> list[str]:
    values = {"task": task, "model_name_or_path": str(model), "output_dir": str(tmp / "run"), "train_data": train,
              "eval_data": eval_data, "max_steps": 1, "use_cpu": True, "report_to": [], "save_strategy": "no",
              "max_seq_length": 32, "doc_stride": 8}
    path = tmp / "task.yaml"
    path.write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")
    return ["finetune", "--task", task, "--config", str(path)]


TASK_CASES = {
    "NLI file with an unknown label": (
        "nli", lambda t: (_write(t / "dev-en.tsv", NLI_EN), {"de": _write(t / "test-de.tsv", NLI_EN.replace(
            "neutral", "maybe"))}),
        [r"test-de\.tsv:2: unknown label 'maybe'", r"entailment, neutral, contradiction"]),
    "NER file with a tag outside IOB": (
        "ner", lambda t: (_write(t / "eng.train", "EU B-ORG\nrejects O\n"),
                          {"es": _write(t / "esp.testb", "La B-LOC\nCoruña I_LOC\n")}),
        [r"esp\.testb:2: tag 'I_LOC' is not 'O', 'B-<type>' or 'I-<type>'"]),
    "NER entity type the training labels lack": (
        "ner", lambda t: (_write(t / "eng.train", "EU B-ORG\nrejects O\n"),
                          {"es": _write(t / "esp.testb", "La B-LOC\nCoruña I-LOC\n")}),
        [r"esp\.testb", r"label\(s\) not in the training label list", r"'LOC'", r"label_mapping"]),
    "QA answer offsets that do not match the context": (
        "qa", lambda t: (_write(t / "qa.en.json", _qa("Anna liest.", "Anna", 0)),
                         {"de": _write(t / "qa.de.json", _qa("Die Katze schläft.", "Katze", 3))}),
        [r"qa\.de\.json: data\[0\]\.paragraphs\[0\]\.qas\[0\]: question 'q1': answer 'Katze' at answer_start 3 "
         r"does not match: the context has ' Katz' there"]),
    "language asked for but absent from the data": (
        "nli", lambda t: (_write(t / "dev-en.tsv", NLI_EN), {"sw": _write(
            t / "xnli.dev.tsv", "language\tsentence1\tsentence2\tgold_label\nfr\tUn.\tDeux.\tneutral\n")}),
        [r"xnli\.dev\.tsv: no rows with language 'sw'; languages in the file: \['fr'\]"]),
}


@pytest.mark.parametrize("case", list(TASK_CASES))
def test_finetune_bad_task_data_exits_2_before_training(case, tmp_path, model_dir, capsys):
    task, build, patterns = TASK_CASES[case]
    train, eval_data = build(tmp_path)
    line = run_cli(_finetune(tmp_path, model_dir, task, train, eval_data), capsys)
    for pattern in patterns:
        assert re.search(pattern, line), f"{pattern!r} not in {line!r}"
    assert_no_complete_output(tmp_path / "run")


def test_xsr_language_absent_from_the_data_and_an_unlisted_code_accepted(tmp_path, model_dir, capsys):
    data = tmp_path / "xsr"
    data.mkdir()
    _write(data / "tatoeba.zzq-eng.zzq", "Ala ma kota.\nKot ma Alę.\n")
    _write(data / "tatoeba.zzq-eng.eng", "Ala has a cat.\nThe cat has Ala.\n")
    base = ["evaluate", "--task", "xsr", "--model", str(model_dir), "--data_dir", str(data)]
    line = run_cli(base + ["--languages", "kab", "--output_dir", str(tmp_path / "bad")], capsys)
    assert re.search(r"Tatoeba test set for 'kab' .*not found: expected .*tatoeba\.kab-eng\.kab", line), line
    assert_no_complete_output(tmp_path / "bad")
    # 'zzq' is in no table, but it is a valid code and its files are there: accepted
    assert main(base + ["--languages", "zzq", "--output_dir", str(tmp_path / "ok")]) == 0
    assert "zzq" in json.loads((tmp_path / "ok" / "results.json").read_text())["tasks"]["xsr"]["languages"]

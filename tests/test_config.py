"""CaoConfig defaults, validation messages, and YAML + CLI-override loading."""

from __future__ import annotations

import dataclasses

import pytest

from amber_align.config_io import load_config, parse_overrides
from amber_align.errors import ConfigError, DataFormatError
from amber_align.trainers import CaoConfig


def test_cao_defaults_are_the_papers_recipe(tmp_path):
    c = CaoConfig(output_dir=str(tmp_path), model_name_or_path="m")
    assert (c.learning_rate, c.adam_beta1, c.adam_beta2, c.adam_epsilon) == (5e-5, 0.9, 0.98, 1e-9)
    assert c.weight_decay == 0.0 and c.num_train_epochs == 1 and c.warmup_steps == 0.1
    assert getattr(c.lr_scheduler_type, "value", c.lr_scheduler_type) == "constant_with_warmup"
    assert c.per_device_train_batch_size == 8 and c.anchor == "frozen" and c.anchor_weight == 1.0
    assert c.remove_unused_columns is False  # custom columns must reach the collator


def test_every_config_field_has_help():
    import dataclasses

    from amber_align.trainers.alignment_config import AlignmentConfig

    own = {f.name for f in dataclasses.fields(CaoConfig)} - {
        f.name for f in dataclasses.fields(AlignmentConfig.__mro__[1])}
    for f in dataclasses.fields(CaoConfig):
        if f.name in own:
            assert f.metadata.get("help"), f"{f.name} has no help"


@pytest.mark.parametrize("kwargs,match", [
    ({"pooling": "max"}, r"CaoConfig.pooling: expected one of .*'max'"),
    ({"anchor": "teacher"}, r"CaoConfig.anchor: expected one of .*'teacher'"),
    ({"max_length": "long"}, r"CaoConfig.max_length: expected int, got 'long'"),
    ({"anchor_weight": -1.0}, r"anchor_weight: expected a value >= 0, got -1.0"),
    ({"symmetrization": "gdfa"}, r"symmetrization: expected one of"),
    ({"train_data": ["a.txt"]}, r"train_data: expected list"),
])
def test_config_errors_name_field_and_value(tmp_path, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        CaoConfig(output_dir=str(tmp_path), **kwargs)


def test_parse_overrides_types():
    assert parse_overrides(["--max_steps", "3", "--learning_rate=3.0e-5", "--bf16", "--pooling", "last",
                            "--dedup_eval_files", "[a, b]"]) == {
        "max_steps": 3, "learning_rate": 3e-5, "bf16": True, "pooling": "last", "dedup_eval_files": ["a", "b"]}


def test_load_config_yaml_plus_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("method: cao\nmodel_name_or_path: m\nlearning_rate: 1.0e-4\nmax_steps: 5\n"
                 f"output_dir: {tmp_path}/out\n", encoding="utf-8")
    c = load_config(f, ["--max_steps", "2", "--pooling", "last"])
    assert isinstance(c, CaoConfig)
    assert (c.learning_rate, c.max_steps, c.pooling) == (1e-4, 2, "last")


def test_load_config_unknown_field_suggests(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("method: cao\nlearning_rat: 1.0e-4\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"c.yaml: unknown field 'learning_rat' for CaoConfig; did you mean learning_rate"):
        load_config(f)


def test_load_config_wrong_type_and_unknown_method(tmp_path):
    with pytest.raises(ConfigError, match=r"CaoConfig.max_steps: expected int, got 'ten'"):
        load_config(None, {"max_steps": "ten", "output_dir": str(tmp_path)})
    with pytest.raises(ConfigError, match=r"unknown alignment method 'wang2'"):
        load_config(None, {"method": "wang2"})


def test_load_config_bad_yaml_names_file_and_line(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("method: cao\nmax_steps: [1,\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bad.yaml:\d+: invalid YAML"):
        load_config(f)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_yaml_scientific_notation_without_dot_is_a_float(tmp_path):
    # YAML 1.1 reads 3e-5 as a string; numeric fields accept it
    c = load_config(None, {"learning_rate": "3e-5", "max_steps": "4", "output_dir": str(tmp_path)})
    assert c.learning_rate == 3e-5 and c.max_steps == 4


def test_yaml_no_off_stay_strings_true_false_are_bools(tmp_path):
    """YAML 1.1 would read `save_strategy: no` as False, which transformers rejects; we read YAML 1.2 booleans."""
    from amber_align.config_io import parse_overrides, read_config_file

    path = tmp_path / "c.yaml"
    path.write_text("method: cao\nsave_strategy: no\none_to_one: false\nreport_to: []\n", encoding="utf-8")
    assert read_config_file(path)["save_strategy"] == "no"
    assert read_config_file(path)["one_to_one"] is False
    assert parse_overrides(["--save_strategy", "no", "--bf16", "--pretokenized", "True"]) == {
        "save_strategy": "no", "bf16": True, "pretokenized": True}


# ----- HfArgumentParser front end (issue 21, stage 2) ---------------------------------------------------------------
def _help(argv, capsys) -> str:
    from amber_align.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("method, config_class", [("cao", "CaoConfig"), ("amber", "AmberConfig")])
def test_align_help_lists_every_field_with_help_default_and_choices(capsys, method, config_class):
    import dataclasses

    from amber_align.trainers import get_method

    text = _help(["align", "--method", method, "--help"], capsys)
    assert f"{config_class} fields:" in text and "TrainingArguments fields (transformers):" in text
    for f in dataclasses.fields(get_method(method).config_class):
        if f.init and not f.name.startswith("_"):
            assert f"--{f.name} " in text or f"--{f.name}\n" in text or f"--{f.name}," in text, f.name
    assert "--pooling {first,last,mean}" in text and "--anchor {frozen,current}" in text
    assert "Word vector from" in text  # a field's own help
    assert "--train_data LIST[MAPPING]" in text  # the type, as the metavar
    own, inherited = text.split("TrainingArguments fields (transformers):")
    assert "--learning_rate" in own and "--adam_beta1" in inherited  # the method's defaults are listed as its own
    if method == "amber":
        assert "--sa_similarity {dot,cosine}" in text and "--so_guide {self,links}" in text


def test_help_of_the_method_named_in_the_config_file(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("method: amber\n", encoding="utf-8")
    assert "AmberConfig fields:" in _help(["align", "--config", str(cfg), "--help"], capsys)
    assert "TaskConfig fields:" in _help(["finetune", "--help"], capsys)
    assert "--max_eval_examples INT, --max-eval-examples INT" in _help(["evaluate", "-h"], capsys)


def test_command_line_values_are_typed_and_win_over_the_file(tmp_path):
    from amber_align.config_io import alignment_parser

    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"method: cao\noutput_dir: {tmp_path}/out\nmax_steps: 5\none_to_one: true\n", encoding="utf-8")
    argv = ["--config", str(cfg), "--max_steps", "2", "--no_one_to_one", "--model", "m",
            "--train_data", "[{file: a.txt, src_lang: de, tgt_lang: en}]", "--resume_from_checkpoint", "true",
            "--dedup_eval_files", "a.txt", "b.txt", "--learning-rate", "3e-5"]
    config = alignment_parser(argv).parse_config(argv)
    assert (config.max_steps, config.one_to_one, config.model_name_or_path) == (2, False, "m")
    assert config.train_data == [{"file": "a.txt", "src_lang": "de", "tgt_lang": "en"}]
    assert config.resume_from_checkpoint is True and config.dedup_eval_files == ["a.txt", "b.txt"]
    assert config.learning_rate == 3e-5


@pytest.mark.parametrize("argv, match", [
    (["--max_steps", "ten"], r"amber-align align: argument --max_steps.*invalid int value: 'ten'"),
    (["--pooling", "max"], r"argument --pooling: invalid choice: 'max'"),
    (["--learning", "1e-4"], r"unknown field 'learning' for CaoConfig; did you mean"),
    (["stray"], r"unexpected argument\(s\) stray"),
    (["--method", "wang2"], r"unknown alignment method 'wang2'"),
])
def test_bad_command_line_values_are_config_errors(argv, match):
    from amber_align.config_io import alignment_parser

    with pytest.raises(ConfigError, match=match):
        alignment_parser(argv).parse_config(argv)


def test_cli_bad_value_exits_2_with_one_line(tmp_path, capsys):
    from amber_align.cli import main

    assert main(["align", "--max_steps", "ten"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: amber-align align: argument --max_steps/--max-steps: invalid int value: 'ten'"]
    assert main(["finetune", "--task", "xsr"]) == 2
    assert "finetune --task: task 'xsr' has no training; use evaluate" in capsys.readouterr().err
    assert main(["finetune"]) == 2
    assert "--task is required" in capsys.readouterr().err


def test_duplicate_yaml_key_is_refused_naming_both_lines(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("method: cao\nmax_steps: 5\npooling: last\nmax_steps: 50\n", encoding="utf-8")
    message = r"dup.yaml:4: invalid YAML: duplicate key 'max_steps' \(first on line 2\)"
    with pytest.raises(DataFormatError, match=message):
        load_config(path)
    nested = tmp_path / "nested.yaml"
    nested.write_text("train_data:\n  - {file: a, file: b}\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="duplicate key 'file'"):
        load_config(nested)


def test_choices_are_defined_once_and_checked_for_python_and_yaml_values(tmp_path):
    """The fields' `choices` metadata is the one definition: argparse shows it, __post_init__ checks it."""
    import dataclasses

    from amber_align import choices
    from amber_align.trainers import AmberConfig

    meta = {f.name: f.metadata.get("choices") for f in dataclasses.fields(AmberConfig)}
    assert meta["pooling"] is choices.POOLING_MODES and meta["symmetrization"] is choices.SYMMETRIZATIONS
    assert meta["sa_similarity"] is choices.SA_SIMILARITIES and meta["so_guide"] is choices.SO_GUIDES
    with pytest.raises(ConfigError, match=r"AmberConfig.so_guide: expected one of \('self', 'links'\), got 'gold'"):
        load_config(None, {"method": "amber", "so_guide": "gold", "output_dir": str(tmp_path)})


def test_a_renamed_field_names_its_new_spelling(tmp_path, capsys):
    """One spelling per setting: the continual Cao weights are CaoConfig's names; the old ones say so."""
    from amber_align.cli import main
    from amber_align.tasks.config import TaskConfig

    path = tmp_path / "nli.yaml"
    path.write_text("task: nli\ncontinual_link_weight: 0.01\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"nli.yaml: 'continual_link_weight' is now 'link_weight' \(one spelling"):
        load_config(path, config_class=TaskConfig)
    assert main(["finetune", "--task", "nli", "--continual_pooling", "mean"]) == 2
    assert main(["demo", "--eval_sentences", "20"]) == 2
    assert "'eval_sentences' is now 'max_eval_examples'" in capsys.readouterr().err
    config = TaskConfig(task="nli", output_dir=str(tmp_path), report_to=[])
    assert (config.link_weight, config.anchor_weight, config.anchor, config.pooling) == (0.01, 1.0, "current", "mean")


def test_argument_groups_are_shared_and_usable_alone(tmp_path):
    """Model, data and Cao settings are defined once (amber_align.arguments) and shared by the method configs and
    TaskConfig; the data group alone is checked and feeds the data pipeline (diagnostics, continual pool)."""
    import dataclasses

    from amber_align.arguments import CaoArguments, ModelArguments, ParallelDataArguments
    from amber_align.tasks.config import TaskConfig
    from amber_align.trainers import AmberConfig, CaoConfig

    for cls in (CaoConfig, AmberConfig):
        assert issubclass(cls, (ModelArguments)) and issubclass(cls, ParallelDataArguments)
        assert issubclass(cls, CaoArguments)
    assert issubclass(TaskConfig, ModelArguments) and issubclass(TaskConfig, CaoArguments)
    help_of = {f.name: f.metadata["help"] for f in dataclasses.fields(CaoConfig)}
    assert help_of["anchor_weight"] == {f.name: f.metadata["help"] for f in dataclasses.fields(AmberConfig)}[
        "anchor_weight"]
    assert ParallelDataArguments(max_words=3).needs_word_links()
    with pytest.raises(ConfigError, match=r"ParallelDataArguments.max_length: expected a value >= 2, got 1"):
        ParallelDataArguments(max_length=1)


@pytest.mark.parametrize("field, value, match", [
    ("max_steps", 0, r"CaoConfig.max_steps: 0 trains nothing; give a number of steps > 0, or -1"),
    ("learning_rate", float("nan"), r"CaoConfig.learning_rate: expected a finite number >= 0, got nan"),
    ("per_device_train_batch_size", 0, r"CaoConfig.per_device_train_batch_size: expected a value >= 1, got 0"),
])
def test_training_values_that_train_nothing_are_refused(tmp_path, field, value, match):
    from amber_align.tasks.config import TaskConfig

    with pytest.raises(ConfigError, match=match):
        CaoConfig(output_dir=str(tmp_path), report_to=[], **{field: value})
    with pytest.raises(ConfigError, match=match.replace("CaoConfig", "TaskConfig")):
        TaskConfig(task="nli", output_dir=str(tmp_path), report_to=[], **{field: value})


def test_an_output_dir_that_is_a_file_is_refused(tmp_path, capsys):
    from amber_align.cli import main

    (tmp_path / "taken").write_text("a file", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"CaoConfig.output_dir: '.*taken' is a file; give a folder"):
        CaoConfig(output_dir=str(tmp_path / "taken"), report_to=[])
    assert main(["finetune", "--task", "nli", "--output_dir", str(tmp_path / "taken")]) == 2
    assert "TaskConfig.output_dir: " in capsys.readouterr().err


def test_relative_paths_in_a_config_file_are_read_against_its_folder(tmp_path, monkeypatch, caplog):
    """Issue 23 item 7: a recipe's relative input paths resolve against the recipe's folder (and say so); paths
    that exist only under the current directory, Hub ids, output folders and command-line values are left alone."""
    import logging

    from amber_align.config_io import read_config_file
    from amber_align.tasks.config import TaskConfig

    recipe_dir, cwd = tmp_path / "exp", tmp_path / "cwd"
    (recipe_dir / "data").mkdir(parents=True)
    (cwd / "data").mkdir(parents=True)
    for name in ("de-en.de", "de-en.en", "both.txt"):
        (recipe_dir / "data" / name).write_text("a\n", encoding="utf-8")
    (cwd / "data" / "both.txt").write_text("a\n", encoding="utf-8")
    (cwd / "data" / "only-here.txt").write_text("a\n", encoding="utf-8")
    (recipe_dir / "cao.yaml").write_text(
        "model_name_or_path: bert-base-multilingual-cased\n"
        "output_dir: out\n"
        "train_data:\n"
        "  - {src_file: data/de-en.de, tgt_file: data/de-en.en, src_lang: de, tgt_lang: en}\n"
        "  - {file: data/only-here.txt, format: bar, src_lang: fr, tgt_lang: en}\n"
        "dedup_eval_files: [data/both.txt]\n", encoding="utf-8")
    monkeypatch.chdir(cwd)
    with caplog.at_level(logging.INFO, logger="amber_align"):
        values = read_config_file("../exp/cao.yaml")
    first, second = values["train_data"]
    assert first["src_file"] == "../exp/data/de-en.de" and first["tgt_file"] == "../exp/data/de-en.en"
    assert second["file"] == "data/only-here.txt"  # exists only under the current directory: as written
    assert values["dedup_eval_files"] == ["../exp/data/both.txt"]  # in both folders: the recipe's wins ...
    assert any("exists both next to the config file" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)  # ... and a warning names both
    assert any("train_data[0].src_file 'data/de-en.de' read relative to the config file" in r.getMessage()
               for r in caplog.records)
    assert values["model_name_or_path"] == "bert-base-multilingual-cased" and values["output_dir"] == "out"
    config = load_config("../exp/cao.yaml", ["--max_steps", "2"])  # the config built from it sees the same paths
    assert config.train_data[0]["src_file"] == "../exp/data/de-en.de"
    assert config.output_dir == "out"
    # a task recipe: eval_data {lang: path | mapping} and data_dir
    (recipe_dir / "data" / "dev-de.tsv").write_text("x\n", encoding="utf-8")
    (recipe_dir / "nli.yaml").write_text(
        "task: nli\ntrain_data: {file: data/de-en.de, format: xnli}\ndata_dir: data\n"
        "eval_data: {de: data/dev-de.tsv, fr: {file: data/missing.tsv}}\n", encoding="utf-8")
    values = read_config_file(recipe_dir / "nli.yaml")
    assert values["train_data"] == {"file": str(recipe_dir / "data" / "de-en.de"), "format": "xnli"}
    assert values["data_dir"] == str(recipe_dir / "data")
    assert values["eval_data"] == {"de": str(recipe_dir / "data" / "dev-de.tsv"), "fr": {"file": "data/missing.tsv"}}
    from amber_align.recipe_paths import INPUT_PATH_FIELDS  # the fields it reads exist on the configs

    names = {f.name for f in dataclasses.fields(TaskConfig)} | {f.name for f in dataclasses.fields(CaoConfig)}
    assert set(INPUT_PATH_FIELDS) <= names

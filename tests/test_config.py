"""CaoConfig defaults, validation messages, and YAML + CLI-override loading."""

from __future__ import annotations

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

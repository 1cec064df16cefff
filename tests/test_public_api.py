"""The public API (issue 21, stage 1): top-level lazy imports and trainers that take raw parallel data, as TRL's do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import torch
from helpers import mbert_tokenizer, tiny_model_dir, xlmr_tokenizer
from transformers import AutoModel

import amber_align
from amber_align.demo import demo_dir

PAIRS = [
    ("Hola mundo .", "Hello world ."), ("El gato duerme .", "The cat sleeps ."),
    ("Tengo un perro .", "I have a dog ."), ("La casa es grande .", "The house is big ."),
    ("Me gusta el café .", "I like coffee ."), ("Ella lee un libro .", "She reads a book ."),
]
# hand-made one-to-one links of the pairs above (Pharaoh i-j, 0-based)
LINKS = [[[0, 0], [1, 1], [2, 2]], [[0, 0], [1, 1], [2, 2], [3, 3]], [[0, 1], [1, 2], [2, 3], [3, 4]],
         [[0, 0], [1, 1], [2, 2], [3, 3], [4, 4]], [[1, 1], [3, 2], [4, 3]], [[0, 0], [1, 1], [2, 2], [3, 3], [4, 4]]]


def raw_pairs(*, links: bool = True, translation: bool = False) -> datasets.Dataset:
    if translation:
        return datasets.Dataset.from_dict({"translation": [{"es": s, "en": t} for s, t in PAIRS],
                                           **({"links": LINKS} if links else {})})
    return datasets.Dataset.from_dict({"src": [s for s, _ in PAIRS], "tgt": [t for _, t in PAIRS],
                                       "src_lang": ["es"] * len(PAIRS), "tgt_lang": ["en"] * len(PAIRS),
                                       **({"links": LINKS} if links else {})})


def test_import_is_lazy_and_exposes_the_trainers():
    code = ("import sys, amber_align; assert 'torch' not in sys.modules and 'transformers' not in sys.modules; "
            "from amber_align import CaoTrainer, CaoConfig, AmberTrainer, AmberConfig; "
            "print(CaoTrainer.__name__, AmberConfig.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["CaoTrainer", "AmberConfig"]
    for name in amber_align.__all__:
        assert getattr(amber_align, name) is not None, name
    assert set(amber_align.__all__) <= set(dir(amber_align))
    with pytest.raises(AttributeError, match="no attribute 'CaoTrainr'"):
        amber_align.CaoTrainr  # noqa: B018


@pytest.mark.parametrize("kind", ["mbert", "xlmr"])
def test_cao_trainer_trains_from_a_raw_parallel_dataset(tmp_path, kind):
    """model as a folder path, no tokenizer, raw text: the trainer loads and prepares everything itself."""
    from amber_align import CaoConfig, CaoTrainer

    tokenizer = {"mbert": mbert_tokenizer, "xlmr": xlmr_tokenizer}[kind]()
    folder = tiny_model_dir(kind, tmp_path / "tiny")
    args = CaoConfig(output_dir=str(tmp_path / "out"), report_to=[], use_cpu=True, logging_steps=1,
                     save_strategy="no", max_steps=3, per_device_train_batch_size=2, pretokenized=True)
    trainer = CaoTrainer(model=str(folder), args=args, train_dataset=raw_pairs())
    assert args.model_name_or_path == str(folder)  # the teacher is the same model
    assert trainer.processing_class.vocab_size == tokenizer.vocab_size
    assert "x_input_ids" in trainer.train_dataset.column_names and len(trainer.train_dataset) == len(PAIRS)
    # the hand-made links plus [CLS]/[SEP] (special_token_links) reach the encoded rows
    assert trainer.train_dataset["num_links"] == [len(lk) + 2 for lk in LINKS]
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    moved = max((p - before[n]).abs().max().item() for n, p in trainer.model.named_parameters() if n in before)
    assert moved > 0
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logged) == 3 and all({"cao_link", "cao_anchor"} <= h.keys() for h in logged)


def test_raw_dataset_gives_the_same_rows_as_the_encoded_path(tmp_path):
    """The raw path is the pipeline's data half: same encoded rows as build_alignment_datasets on the same file."""
    from amber_align import CaoConfig, CaoTrainer, build_alignment_datasets, load_parallel

    data = demo_dir() / "data"
    source = {"file": str(data / "es-en.txt"), "format": "bar", "src_lang": "es", "tgt_lang": "en",
              "alignments": str(data / "es-en.pharaoh"), "max_pairs": 12}
    folder = tiny_model_dir("mbert", tmp_path / "tiny")
    args = CaoConfig(output_dir=str(tmp_path / "out"), report_to=[], use_cpu=True, save_strategy="no", max_steps=1,
                     model_name_or_path=str(folder), train_data=[source], pretokenized=True)
    encoded, _ = build_alignment_datasets(args, mbert_tokenizer())
    raw = load_parallel(source, pretokenized=True).select_columns(["src", "tgt", "src_lang", "tgt_lang", "links"])
    from_raw = CaoTrainer(args=args, train_dataset=raw).train_dataset
    from_config = CaoTrainer(args=args).train_dataset  # train_dataset=None: args.train_data is read
    for column in ("x_input_ids", "y_input_ids", "x_link_spans", "y_link_spans", "num_links"):
        assert from_raw[column] == encoded[column] == from_config[column], column


def test_translation_column_and_held_out_raw_eval(tmp_path):
    from amber_align import CaoConfig, CaoTrainer

    folder = tiny_model_dir("mbert", tmp_path / "tiny")
    args = CaoConfig(output_dir=str(tmp_path / "out"), report_to=[], use_cpu=True, save_strategy="no", max_steps=1,
                     pretokenized=True)
    trainer = CaoTrainer(model=str(folder), args=args, train_dataset=raw_pairs(translation=True),
                         eval_dataset=raw_pairs())
    assert trainer.train_dataset["pair"] == ["es-en"] * len(PAIRS)
    assert trainer.train_dataset["x_input_ids"] == trainer.eval_dataset["x_input_ids"]
    assert {"eval_cao_link", "eval_cao_anchor"} <= trainer.evaluate().keys()


def test_amber_trainer_from_a_model_id_loads_the_masked_lm_itself(tmp_path):
    from amber_align import AmberConfig, AmberTrainer

    folder = tiny_model_dir("xlmr", tmp_path / "tiny")
    args = AmberConfig(output_dir=str(tmp_path / "out"), report_to=[], use_cpu=True, logging_steps=1,
                       save_strategy="no", max_steps=2, per_device_train_batch_size=3, tlm_weight=1.0,
                       sa_weight=1.0, wa_weight=0.0, pretokenized=True)
    trainer = AmberTrainer(model=str(folder), args=args, train_dataset=raw_pairs(links=False))
    assert type(trainer.model).__name__ == "XLMRobertaForMaskedLM"
    trainer.train()
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logged) == 2 and all({"tlm", "sa"} <= h.keys() for h in logged)


@pytest.mark.parametrize("case, match", [
    ("no_args", "needs args="),
    ("no_model", "no model given"),
    ("two_models", "give the model once"),
    ("translation_three_languages", "3 languages"),
    ("nothing_left", "no pairs left"),
    ("max_length_over_positions", r"max_length: 100000 is longer than model .*tiny accepts \(128 positions, "
                                  r"config.max_position_embeddings=128\); expected max_length <= 128"),
])
def test_bad_inputs_are_package_errors(tmp_path, case, match):
    from amber_align import AmberAlignError, CaoConfig, CaoTrainer

    folder = str(tiny_model_dir("mbert", tmp_path / "tiny"))
    args = CaoConfig(output_dir=str(tmp_path / "out"), report_to=[], use_cpu=True, save_strategy="no", max_steps=1,
                     pretokenized=True)
    kwargs = {"model": folder, "args": args, "train_dataset": raw_pairs()}
    if case == "no_args":
        kwargs["args"] = None
    elif case == "no_model":
        kwargs.pop("model")
    elif case == "two_models":
        args.model_name_or_path = folder + "-other"
    elif case == "translation_three_languages":
        kwargs["train_dataset"] = datasets.Dataset.from_dict({"translation": [{"es": "a", "en": "b", "fr": "c"}]})
    elif case == "max_length_over_positions":  # align used to crash at the step that first sampled a long pair
        args.max_length = 100000
    else:
        args.max_words = 1
    with pytest.raises(AmberAlignError, match=match):
        CaoTrainer(**kwargs)


def test_expert_path_keeps_encoded_data_and_modules(tmp_path):
    """Encoded columns and a loaded model pass through untouched (nothing reloaded, nothing re-encoded)."""
    from amber_align import CaoConfig, CaoTrainer
    from amber_align.data.prepare import prepare_parallel_data

    folder = tiny_model_dir("mbert", tmp_path / "tiny")
    model = AutoModel.from_pretrained(folder)
    args = CaoConfig(output_dir=str(tmp_path / "out"), report_to=[], use_cpu=True, save_strategy="no", max_steps=1,
                     model_name_or_path=str(folder), pretokenized=True)
    encoded = prepare_parallel_data(raw_pairs(), args, mbert_tokenizer())
    trainer = CaoTrainer(model=model, args=args, train_dataset=encoded, processing_class=mbert_tokenizer(),
                         teacher=AutoModel.from_pretrained(folder))
    assert trainer.model is model and trainer.train_dataset is encoded
    assert isinstance(trainer.teacher, torch.nn.Module) and trainer.teacher is not trainer.model


@pytest.mark.parametrize("field, value, match", [
    ("max_words", 1, "train_data: no pairs left after filtering"),
    ("max_length", 3, "train_data: no pairs left after encoding"),
])
def test_a_corpus_filtered_to_nothing_is_one_clear_error(tmp_path, field, value, match):
    """Issue 23 item 1: every pair filtered out was a datasets ValueError ("Column 'too_long' doesn't exist")."""
    from amber_align import ConfigError, build_alignment_datasets, CaoConfig

    data = demo_dir() / "data"
    args = CaoConfig(output_dir=str(tmp_path / "out"), report_to=[], use_cpu=True, pretokenized=True,
                     train_data=[{"file": str(data / "es-en.txt"), "format": "bar", "src_lang": "es",
                                  "tgt_lang": "en", "alignments": str(data / "es-en.pharaoh"), "max_pairs": 4}],
                     **{field: value})
    with pytest.raises(ConfigError, match=match):
        build_alignment_datasets(args, mbert_tokenizer())


def test_every_raise_site_of_the_trainers_uses_a_package_error():
    """Trainers, objectives and the task runner raise only the package's own error types (so the CLI prints one
    `error:` line, exit 2), NotImplementedError for an abstract hook, or re-raise what they caught."""
    import ast

    import amber_align.errors as errors

    allowed = {name for name, obj in vars(errors).items() if isinstance(obj, type) and
               issubclass(obj, errors.AmberAlignError)} | {"NotImplementedError"}
    root = Path(amber_align.__file__).parent
    files = [*sorted((root / "trainers").glob("*.py")), *sorted((root / "objectives").glob("*.py")),
             root / "tasks" / "runner.py", root / "tasks" / "handlers.py", root / "tasks" / "registry.py"]
    bad = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                func = node.exc.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "?")
                if name not in allowed:
                    bad.append(f"{path.relative_to(root)}:{node.lineno}: raise {name}")
    assert len(files) > 10 and not bad, bad

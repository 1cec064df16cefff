"""Safe loading: weights only from safetensors unless ``allow_pickle_weights``; ``trust_remote_code`` never set by
the package (a source scan and a behavioural check); Hub tokens never printed or written (a fake ``HF_TOKEN`` in
the environment, a CLI align + finetune run, then every output, log line and written file is searched for it).
"""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from helpers import tiny_model, tiny_model_dir

from amber_align.cli import main
from amber_align.demo import demo_dir
from amber_align.errors import ConfigError, DataFormatError
from amber_align.modeling import load_encoder, load_masked_lm, load_task_model, load_tokenizer

PACKAGE = Path(__file__).resolve().parents[1] / "amber_align"
DATA = demo_dir() / "data"
FAKE_TOKEN = "hf_FAKEtokenFORtestsONLYdoNOTuse0123456789"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return tiny_model_dir("mbert", tmp_path_factory.mktemp("safety") / "tiny")


def _pickle_only(model_dir: Path, dest: Path) -> dict[str, torch.Tensor]:
    shutil.copytree(model_dir, dest)
    (dest / "model.safetensors").unlink()
    state = tiny_model("mbert").state_dict()
    torch.save(state, dest / "pytorch_model.bin")
    return state


@pytest.mark.parametrize("loader", [load_encoder, load_masked_lm, lambda p, **k: load_task_model("nli", p, **k)],
                         ids=["encoder", "masked_lm", "task_model"])
def test_pickle_only_folder_is_refused_unless_allowed(loader, model_dir, tmp_path):
    folder = tmp_path / "pickled"
    state = _pickle_only(model_dir, folder)
    with pytest.raises(DataFormatError, match=r"pickled: only pickle-based weights found \(pytorch_model\.bin\).*"
                                              r"allow_pickle_weights=true"):
        loader(str(folder))
    model = loader(str(folder), allow_pickle_weights=True)
    loaded = model.base_model.state_dict()
    assert torch.equal(loaded["embeddings.word_embeddings.weight"], state["embeddings.word_embeddings.weight"])


def test_safetensors_win_over_pickle_when_both_are_there(model_dir, tmp_path):
    folder = tmp_path / "both"
    shutil.copytree(model_dir, folder)
    poisoned = {k: torch.full_like(v, 7.0) for k, v in tiny_model("mbert").state_dict().items()}
    torch.save(poisoned, folder / "pytorch_model.bin")
    model = load_encoder(str(folder), allow_pickle_weights=True)
    assert not torch.equal(model.embeddings.word_embeddings.weight, poisoned["embeddings.word_embeddings.weight"])


# --------------------------------------------------------------------------------------------- remote code
def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def test_package_source_never_sets_trust_remote_code_and_never_unpickles():
    """Source scan: every ``trust_remote_code=`` keyword is the constant False; ``from_pretrained`` of a
    transformers class is called only in amber_align/modeling.py (the safe loaders); no ``torch.load`` /
    ``pickle.load(s)`` anywhere."""
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 30
    own_classes = {node.name for f in files for node in ast.walk(ast.parse(f.read_text(encoding="utf-8")))
                   if isinstance(node, ast.ClassDef)}
    seen_false = 0
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for call in _calls(tree):
            for kw in call.keywords:
                if kw.arg == "trust_remote_code":
                    assert isinstance(kw.value, ast.Constant) and kw.value.value is False, \
                        f"{path}:{call.lineno}: trust_remote_code must be the constant False"
                    seen_false += 1
            func = call.func
            if isinstance(func, ast.Attribute) and func.attr == "from_pretrained" and path.name != "modeling.py":
                receiver = func.value.id if isinstance(func.value, ast.Name) else ast.unparse(func.value)
                assert receiver in own_classes, f"{path}:{call.lineno}: {receiver}.from_pretrained outside modeling.py"
            if isinstance(func, ast.Attribute) and (ast.unparse(func) in ("torch.load", "pickle.load", "pickle.loads")):
                pytest.fail(f"{path}:{call.lineno}: {ast.unparse(func)} unpickles (arbitrary code)")
    assert seen_false >= 4  # the loaders in modeling.py


def _remote_code_folder(model_dir: Path, dest: Path) -> Path:
    shutil.copytree(model_dir, dest)
    config = json.loads((dest / "config.json").read_text())
    config.update(model_type="evilbert", auto_map={"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel",
                                                    "AutoModelForMaskedLM": "evil.EvilModel",
                                                    "AutoModelForSequenceClassification": "evil.EvilModel"})
    (dest / "config.json").write_text(json.dumps(config))
    (dest / "evil.py").write_text(f"open({str(dest / 'RAN')!r}, 'w').write('x')\n"
                                  "from transformers import BertConfig as EvilConfig, BertModel as EvilModel\n")
    return dest


@pytest.mark.parametrize("loader", [load_encoder, load_masked_lm, lambda p: load_task_model("nli", p)],
                         ids=["encoder", "masked_lm", "task_model"])
def test_a_model_that_ships_code_is_refused_and_its_code_never_runs(loader, model_dir, tmp_path):
    folder = _remote_code_folder(model_dir, tmp_path / "remote")
    with pytest.raises(ConfigError, match="needs its own Python code .*trust_remote_code is never set"):
        loader(str(folder))
    assert not (folder / "RAN").exists()


def test_every_transformers_load_of_a_cli_run_passes_trust_remote_code_false(model_dir, tmp_path, monkeypatch):
    """Behavioural: spy on AutoConfig.from_pretrained (every Auto* load goes through it) during an AMBER align run
    with an MLM head (load_masked_lm + the pooler graft + the tokenizer); dynamic-module loading must never run."""
    import transformers
    from transformers import dynamic_module_utils

    seen: list[object] = []
    original = transformers.AutoConfig.from_pretrained.__func__

    def spy(cls, *args, **kwargs):
        seen.append(kwargs.get("trust_remote_code", "absent"))
        return original(cls, *args, **kwargs)

    def never(*args, **kwargs):
        raise AssertionError("remote code was about to be imported")

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", classmethod(spy))
    monkeypatch.setattr(dynamic_module_utils, "get_class_from_dynamic_module", never)
    config = {"method": "amber", "model_name_or_path": str(model_dir), "output_dir": str(tmp_path / "out"),
              "train_data": [{"file": str(DATA / "es-en.txt"), "format": "bar", "src_lang": "es", "tgt_lang": "en",
                              "alignments": str(DATA / "es-en.pharaoh"), "max_pairs": 8}],
              "pretokenized": True, "max_steps": 1, "per_device_train_batch_size": 4, "use_cpu": True,
              "report_to": [], "save_strategy": "no", "tlm_weight": 1.0, "sa_weight": 1.0, "wa_weight": 0.0}
    path = tmp_path / "amber.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    assert main(["align", "--config", str(path)]) == 0
    assert seen and all(value is False for value in seen), seen


# ------------------------------------------------------------------------------------------------- tokens
def test_hub_token_in_the_environment_is_never_printed_or_written(model_dir, tmp_path, monkeypatch, capfd, caplog):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", FAKE_TOKEN)
    work = tmp_path / "work"
    work.mkdir()
    align = {"method": "cao", "model_name_or_path": str(model_dir), "output_dir": str(work / "aligned"),
             "train_data": [{"file": str(DATA / "de-en.txt"), "format": "bar", "src_lang": "de", "tgt_lang": "en",
                             "alignments": str(DATA / "de-en.pharaoh"), "max_pairs": 8}],
             "pretokenized": True, "max_steps": 2, "per_device_train_batch_size": 4, "use_cpu": True,
             "report_to": [], "save_strategy": "steps", "save_steps": 1, "logging_steps": 1, "eval_split_size": 2}
    (work / "align.yaml").write_text(yaml.safe_dump(align), encoding="utf-8")
    nli = "A man sleeps.\tSomeone rests.\tentailment\nA dog barks.\tThe dog is loud.\tneutral\n"
    (work / "dev-en.tsv").write_text(nli, encoding="utf-8")
    (work / "test-de.tsv").write_text("Ein Mann schläft.\tJemand ruht.\tentailment\n", encoding="utf-8")
    task = {"task": "nli", "train_data": str(work / "dev-en.tsv"), "eval_data": {"de": str(work / "test-de.tsv")},
            "max_steps": 1, "per_device_train_batch_size": 2, "use_cpu": True, "report_to": [],
            "save_strategy": "steps", "save_steps": 1, "max_seq_length": 32}
    (work / "nli.yaml").write_text(yaml.safe_dump(task), encoding="utf-8")
    with caplog.at_level("DEBUG"):
        assert main(["-v", "align", "--config", str(work / "align.yaml")]) == 0
        assert main(["-v", "finetune", "--task", "nli", "--config", str(work / "nli.yaml"),
                     "--model", str(work / "aligned"), "--output_dir", str(work / "nli")]) == 0
    out, err = capfd.readouterr()
    written = [p for p in work.rglob("*") if p.is_file()]
    assert any(p.name == "trainer_state.json" for p in written) and (work / "nli" / "results.json").exists()
    assert len(out) + len(err) + len(caplog.text) > 200, "the runs printed and logged something"
    for where, text in (("stdout", out), ("stderr", err), ("log records", caplog.text)):
        assert FAKE_TOKEN not in text and FAKE_TOKEN[3:20] not in text, f"the token appears in {where}"
    for path in written:  # every file: text, JSON, model cards, safetensors, the pickled training_args.bin
        data = path.read_bytes()
        assert FAKE_TOKEN.encode() not in data and FAKE_TOKEN[3:20].encode() not in data, f"the token is in {path}"


def test_a_name_that_is_neither_a_folder_nor_a_reachable_hub_id_is_a_config_error(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import time
    for name in ("no-such-org/no-such-model", str(tmp_path / "missing-folder")):
        for loader in (load_encoder, load_tokenizer):
            with pytest.raises(ConfigError, match="is not a local folder and cannot be loaded as a Hub model id"):
                loader(name)

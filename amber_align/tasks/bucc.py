"""BUCC 2018 bitext mining: read the shared-task files, mine with the ratio margin, tune a threshold, score F1.

Protocol (docs/methods.md, "Evaluation protocols"; LASER's ``bucc.sh`` and XTREME's ``utils_retrieve.py``): embed every
sentence of both sides by mean pooling (``retrieval.encode_sentences``), score candidates by the ratio margin of
Artetxe & Schwenk (2019) over k = 4 neighbours, keep each side's best candidate and combine the two directions
(``mode="max"``: LASER's rule), tune the score threshold that maximises F1 against the gold pairs of one split
(``sample``) and report precision/recall/F1 of the other (``training``) with that threshold. As LASER's
``--unify`` does, identical sentences are embedded and mined once and the mined pair stands for every id pair
with those two texts.

Files: ``<lang>-en.<split>.<lang>`` and ``<lang>-en.<split>.en`` hold ``id<TAB>sentence`` lines (ids like
``de-000000001`` / ``en-000000001``), ``<lang>-en.<split>.gold`` holds ``id_xx<TAB>id_en`` lines. They are found
in ``data_dir`` or in ``data_dir/<lang>-en/`` (the layout of the BUCC archives).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from amber_align.data.languages import normalize_language
from amber_align.errors import ConfigError, DataFormatError
from amber_align.logging_utils import get_logger
from amber_align.tasks.retrieval import encode_sentences

__all__ = [
    "BuccData",
    "MINING_MODES",
    "bucc_candidates",
    "bucc_f1",
    "evaluate_bucc",
    "mine_candidates",
    "ratio_margin_scores",
    "read_bucc",
    "tune_threshold",
]

logger = get_logger(__name__)

MINING_MODES = ("max", "union", "intersect", "fwd", "bwd")
_X_CHUNK = 1024  # rows scored at once ...
_Y_CHUNK = 16384  # ... against this many columns: a block is 1024 x 16384 floats (64 MiB)


@dataclass
class BuccData:
    """One split of one language pair: the two sides (ids and sentences, file order) and the gold id pairs."""

    src_ids: list[str]
    src_sentences: list[str]
    tgt_ids: list[str]
    tgt_sentences: list[str]
    gold: set[tuple[str, str]] = field(default_factory=set)

    def truncate(self, max_sentences: int) -> BuccData:
        """The first ``max_sentences`` sentences of each side; gold pairs that lost a side are dropped."""
        src_ids, tgt_ids = self.src_ids[:max_sentences], self.tgt_ids[:max_sentences]
        keep_src, keep_tgt = set(src_ids), set(tgt_ids)
        gold = {(s, t) for s, t in self.gold if s in keep_src and t in keep_tgt}
        return BuccData(src_ids, self.src_sentences[:max_sentences], tgt_ids, self.tgt_sentences[:max_sentences],
                        gold)


# ------------------------------------------------------------------ reading


def _split_dir(data_dir: Path, lang: str, split: str) -> Path:
    nested = data_dir / f"{lang}-en"
    if not (data_dir / f"{lang}-en.{split}.{lang}").is_file() and (nested / f"{lang}-en.{split}.{lang}").is_file():
        return nested
    return data_dir


def _lines(path: Path) -> Iterable[tuple[int, str]]:
    """``(line_number, line)`` of the non-blank lines of a UTF-8 file, line ends removed."""
    if not path.is_file():
        raise ConfigError(f"BUCC file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataFormatError(f"not UTF-8 text ({err})", path=path) from err
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if line.strip():
            yield number, line


def _read_sentences(path: Path) -> tuple[list[str], list[str]]:
    ids: list[str] = []
    sentences: list[str] = []
    seen: dict[str, int] = {}
    for number, line in _lines(path):
        if "\t" not in line:
            raise DataFormatError(f"expected 'id<TAB>sentence', found no tab in {line[:60]!r}", path=path,
                                  line=number)
        sid, sentence = line.split("\t", 1)
        sid = sid.strip()
        if not sid:
            raise DataFormatError("empty sentence id before the tab", path=path, line=number)
        if sid in seen:
            raise DataFormatError(f"duplicate sentence id {sid!r} (first on line {seen[sid]})", path=path,
                                  line=number)
        seen[sid] = number
        ids.append(sid)
        sentences.append(sentence.strip())
    if not ids:
        raise DataFormatError("no sentences", path=path)
    return ids, sentences


def _read_gold(path: Path, src_ids: set[str], tgt_ids: set[str], src_path: Path,
               tgt_path: Path) -> set[tuple[str, str]]:
    gold: set[tuple[str, str]] = set()
    for number, line in _lines(path):
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) != 2 or not all(fields):
            raise DataFormatError(f"expected 'id_xx<TAB>id_en', got {line[:80]!r}", path=path, line=number)
        src, tgt = fields
        if src not in src_ids or tgt not in tgt_ids:
            hint = " (columns swapped? the xx id comes first)" if src in tgt_ids and tgt in src_ids else ""
            unknown = src if src not in src_ids else tgt
            where = src_path if src not in src_ids else tgt_path
            raise DataFormatError(f"gold pair names id {unknown!r}, which is not in {where}{hint}", path=path,
                                  line=number)
        gold.add((src, tgt))
    if not gold:
        raise DataFormatError("no gold pairs", path=path)
    return gold


def _missing_split(data_dir: Path, code: str, split: str, path: Path) -> None:
    """A split that is not there: name the file, the splits that are, and the flags that choose them (a dev-only
    folder failed with 'file not found … sample' and no hint)."""
    found = sorted({p.name[len(f"{code}-en."):-len(f".{code}")]
                    for folder in (data_dir, data_dir / f"{code}-en") if folder.is_dir()
                    for p in folder.glob(f"{code}-en.*.{code}")})
    have = f"splits found for {code}-en: {', '.join(found)}" if found else f"no {code}-en.<split>.{code} files there"
    raise ConfigError(f"BUCC file not found: {path} (split {split!r}; {have}); choose the splits with "
                      "--bucc_dev_split (threshold tuning, default sample) and --bucc_eval_split (scored, default "
                      "training)")


def read_bucc(data_dir: str | Path, lang: str, split: str, *, require_gold: bool = True) -> BuccData:
    """Read ``<lang>-en.<split>.{<lang>,en,gold}`` from ``data_dir`` (or ``data_dir/<lang>-en/``).

    ``lang``: anything ``normalize_language`` understands ("de", "deu"). ``split``: "sample", "training" or
    "test". ``require_gold=False`` accepts a missing gold file (the test split has none): ``gold`` is then empty.
    Raises ConfigError for a missing file, DataFormatError (``path:line:``) for a line without a tab, a duplicate
    id, or a gold pair whose id is not in the sentence files.
    """
    code = normalize_language(lang)
    if code == "en":
        raise ConfigError("BUCC pairs a language with English; give the other language (de, fr, ru, zh)")
    directory = _split_dir(Path(data_dir), code, split)
    stem = directory / f"{code}-en.{split}"
    src_path, tgt_path, gold_path = Path(f"{stem}.{code}"), Path(f"{stem}.en"), Path(f"{stem}.gold")
    if not src_path.is_file():
        _missing_split(Path(data_dir), code, split, src_path)
    src_ids, src_sentences = _read_sentences(src_path)
    tgt_ids, tgt_sentences = _read_sentences(tgt_path)
    gold: set[tuple[str, str]] = set()
    if require_gold or gold_path.is_file():
        gold = _read_gold(gold_path, set(src_ids), set(tgt_ids), src_path, tgt_path)
    logger.info("BUCC %s-en %s: %d + %d sentences, %d gold pairs", code, split, len(src_ids), len(tgt_ids),
                len(gold))
    return BuccData(src_ids, src_sentences, tgt_ids, tgt_sentences, gold)


# ------------------------------------------------------------------ margin and mining


def _normalize(x: Tensor, name: str) -> Tensor:
    if x.ndim != 2:
        raise ConfigError(f"{name}: expected a 2-D [n, dim] tensor, got shape {tuple(x.shape)}")
    return torch.nn.functional.normalize(x.float(), dim=-1)


def _check_pair(x: Tensor, y: Tensor, k: int) -> tuple[Tensor, Tensor]:
    if not isinstance(k, int) or k < 1:
        raise ConfigError(f"k (neighbours in the margin) must be a positive integer, got {k!r}")
    x, y = _normalize(x, "x"), _normalize(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ConfigError(f"x and y must have one width, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[0] == 0 or y.shape[0] == 0:
        raise ConfigError(f"cannot mine with an empty side: x {tuple(x.shape)}, y {tuple(y.shape)}")
    return x, y


def ratio_margin_scores(x: Tensor, y: Tensor, k: int = 4) -> Tensor:
    """The full ``[n, m]`` ratio-margin matrix (Artetxe & Schwenk 2019); for small inputs and checks.

    ``margin(x, y) = cos(x, y) / (Σ_{z∈NN_k(x)} cos(x, z) / 2k + Σ_{z∈NN_k(y)} cos(y, z) / 2k)``, where
    ``NN_k(x)`` are the k nearest rows of ``y`` (and ``NN_k(y)`` of ``x``); k is capped at the other side's size,
    as LASER does. Rows are L2-normalised here. :func:`mine_candidates` computes the same scores in chunks.
    """
    x, y = _check_pair(x, y, k)
    sim = x @ y.T
    fwd_mean = sim.topk(min(k, y.shape[0]), dim=1).values.mean(dim=1)
    bwd_mean = sim.T.topk(min(k, x.shape[0]), dim=1).values.mean(dim=1)
    return sim / ((fwd_mean[:, None] + bwd_mean[None, :]) / 2)


def _knn(x: Tensor, y: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Cosines and indices ``[n, k]`` of each row's k nearest rows of ``y``, in blocks of bounded size."""
    k = min(k, y.shape[0])
    all_sims, all_inds = [], []
    for xs in range(0, x.shape[0], _X_CHUNK):
        xb = x[xs:xs + _X_CHUNK]
        best_s = best_i = None
        for ys in range(0, y.shape[0], _Y_CHUNK):
            block = xb @ y[ys:ys + _Y_CHUNK].T
            s, i = block.topk(min(k, block.shape[1]), dim=1)
            i = i + ys
            if best_s is not None:
                s, i = torch.cat([best_s, s], dim=1), torch.cat([best_i, i], dim=1)
                s, pos = s.topk(min(k, s.shape[1]), dim=1)
                i = i.gather(1, pos)
            best_s, best_i = s, i
        all_sims.append(best_s)
        all_inds.append(best_i)
    return torch.cat(all_sims), torch.cat(all_inds)


def mine_candidates(x: Tensor, y: Tensor, k: int = 4, mode: str = "max", *,
                    device: str | torch.device | None = None) -> list[tuple[int, int, float]]:
    """Mined ``(x_index, y_index, margin)`` pairs, best score first (ties: stable order).

    Each side's candidates are its k nearest neighbours on the other side (cosine), rescored with the ratio
    margin; the best-scoring one is its candidate. ``mode`` combines the two directions as LASER's
    ``mine_bitexts.py`` does: ``"max"`` takes both directions' candidates by descending score and keeps a pair
    only when neither its x nor its y was taken before (one-to-one); ``"union"`` keeps every forward and backward
    candidate once; ``"intersect"`` keeps pairs that are each other's candidate; ``"fwd"`` / ``"bwd"`` one
    direction. The similarity is computed in blocks (at most 1024 x 16384 at a time) on ``device`` (default: the
    device of ``x``), so memory stays O((n + m) k) beyond the embeddings.
    """
    if mode not in MINING_MODES:
        raise ConfigError(f"mining mode {mode!r} unknown; expected one of {', '.join(MINING_MODES)}")
    x, y = _check_pair(x, y, k)
    if device is not None:
        x, y = x.to(device), y.to(device)
    x2y_sim, x2y_ind = _knn(x, y, k)
    y2x_sim, y2x_ind = _knn(y, x, k)
    fwd_mean, bwd_mean = x2y_sim.mean(dim=1), y2x_sim.mean(dim=1)
    fwd_scores = x2y_sim / ((fwd_mean[:, None] + bwd_mean[x2y_ind]) / 2)
    bwd_scores = y2x_sim / ((bwd_mean[:, None] + fwd_mean[y2x_ind]) / 2)
    fwd_score, fwd_pos = fwd_scores.max(dim=1)
    bwd_score, bwd_pos = bwd_scores.max(dim=1)
    fwd_best = x2y_ind.gather(1, fwd_pos[:, None]).squeeze(1).tolist()
    bwd_best = y2x_ind.gather(1, bwd_pos[:, None]).squeeze(1).tolist()
    fwd = [(i, j, s) for i, (j, s) in enumerate(zip(fwd_best, fwd_score.tolist()))]
    bwd = [(i, j, s) for j, (i, s) in enumerate(zip(bwd_best, bwd_score.tolist()))]
    if mode == "fwd":
        pairs = fwd
    elif mode == "bwd":
        pairs = bwd
    elif mode == "intersect":
        pairs = [(i, j, s) for i, j, s in bwd if fwd_best[i] == j]
    elif mode == "union":
        best: dict[tuple[int, int], float] = {}
        for i, j, s in fwd + bwd:
            best[(i, j)] = max(s, best.get((i, j), -math.inf))
        pairs = [(i, j, s) for (i, j), s in best.items()]
    else:  # max: LASER's greedy one-to-one over both directions
        seen_x: set[int] = set()
        seen_y: set[int] = set()
        pairs = []
        for i, j, s in sorted(fwd + bwd, key=lambda p: -p[2]):
            if i not in seen_x and j not in seen_y:
                seen_x.add(i)
                seen_y.add(j)
                pairs.append((i, j, s))
    return sorted(pairs, key=lambda p: -p[2])


# ------------------------------------------------------------------ scoring


def _best_scores(candidates: Iterable[tuple[str, str, float]]) -> dict[tuple[str, str], float]:
    best: dict[tuple[str, str], float] = {}
    for src, tgt, score in candidates:
        score = float(score)
        if math.isnan(score):
            raise ConfigError(f"candidate ({src!r}, {tgt!r}) has a NaN score")
        best[(src, tgt)] = max(score, best.get((src, tgt), -math.inf))
    return best


def _prf(n_predicted: int, n_correct: int, n_gold: int) -> dict[str, float]:
    precision = n_correct / n_predicted if n_predicted else 0.0
    recall = n_correct / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if n_correct else 0.0
    return {"precision": 100.0 * precision, "recall": 100.0 * recall, "f1": 100.0 * f1}


def bucc_f1(candidates: Iterable[tuple[str, str, float]], gold: set[tuple[str, str]],
            threshold: float) -> dict[str, float]:
    """``{"precision", "recall", "f1"}`` (percent) of the candidate pairs scoring ``>= threshold`` against
    ``gold``. A pair listed twice counts once (with its best score)."""
    predicted = [pair for pair, score in _best_scores(candidates).items() if score >= threshold]
    return _prf(len(predicted), sum(1 for pair in predicted if pair in gold), len(gold))


def tune_threshold(candidates: Iterable[tuple[str, str, float]], gold: set[tuple[str, str]]) -> tuple[float, float]:
    """``(threshold, f1)``: the threshold maximising :func:`bucc_f1` on these candidates, and that F1 (percent).

    Scans the distinct candidate scores from the highest down; the threshold is the midpoint between the last
    kept score and the next lower one (the lowest score itself when all are kept), as XTREME/LASER's
    ``bucc_optimize``; ``bucc_f1(candidates, gold, threshold)["f1"]`` equals the returned F1. When no candidate is
    gold the threshold lies above every score (nothing is predicted) and F1 is 0.
    """
    if not gold:
        raise ConfigError("tune_threshold needs gold pairs (the split used for tuning must have a .gold file)")
    items = sorted(_best_scores(candidates).items(), key=lambda item: -item[1])
    if not items:
        logger.warning("tune_threshold: no candidates; F1 is 0")
        return 0.0, 0.0
    best_f1, threshold = 0.0, math.nextafter(items[0][1], math.inf)
    n_correct = 0
    for index, (pair, score) in enumerate(items):
        n_correct += pair in gold
        next_score = items[index + 1][1] if index + 1 < len(items) else None
        if next_score == score or n_correct == 0:
            continue  # equal scores stand or fall together
        f1 = _prf(index + 1, n_correct, len(gold))["f1"]
        if f1 > best_f1:
            best_f1 = f1
            midpoint = score if next_score is None else (score + next_score) / 2
            threshold = midpoint if next_score is None or midpoint > next_score else score
    if best_f1 == 0.0:
        logger.warning("tune_threshold: no candidate is a gold pair; the threshold admits nothing and F1 is 0")
    return threshold, best_f1


# ------------------------------------------------------------------ end to end


def _unique(ids: Sequence[str], sentences: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    texts: dict[str, list[str]] = {}
    for sid, sentence in zip(ids, sentences):
        texts.setdefault(sentence, []).append(sid)
    return list(texts), list(texts.values())


def bucc_candidates(model: torch.nn.Module, tokenizer: Any, data: BuccData, *, layer: int = -1, k: int = 4,
                    mode: str = "max", batch_size: int = 64, device: str | torch.device | None = None,
                    label: str = "BUCC") -> list[tuple[str, str, float]]:
    """Mined ``(src_id, tgt_id, margin)`` candidates of one split (no threshold applied), best first.

    Identical sentences are embedded and mined once; a mined text pair yields every id pair carrying those texts.
    Each side is encoded once, with a progress bar labelled ``label`` and the side (``BUCC de sample: en``).
    """
    src_texts, src_groups = _unique(data.src_ids, data.src_sentences)
    tgt_texts, tgt_groups = _unique(data.tgt_ids, data.tgt_sentences)
    logger.info("%s: encoding %d + %d distinct sentences (layer %d)", label, len(src_texts), len(tgt_texts), layer)
    kwargs = dict(layer=layer, batch_size=batch_size, device=device)
    x = encode_sentences(model, tokenizer, src_texts, desc=f"{label}: source side", **kwargs)
    y = encode_sentences(model, tokenizer, tgt_texts, desc=f"{label}: English side", **kwargs)
    mine_device = device if device is not None else next(model.parameters()).device
    mined = mine_candidates(x, y, k, mode, device=mine_device)
    return [(s, t, score) for i, j, score in mined for s in src_groups[i] for t in tgt_groups[j]]


def evaluate_bucc(model: torch.nn.Module, tokenizer: Any, languages: Sequence[str], data_dir: str | Path, *,
                  layer: int = -1, k: int = 4, max_sentences: int | None = None, dev_split: str = "sample",
                  eval_split: str = "training", mode: str = "max", batch_size: int = 64,
                  device: str | torch.device | None = None) -> dict[str, float]:
    """BUCC F1 per language: threshold tuned on ``dev_split``, precision/recall/F1 (percent) on ``eval_split``.

    Returns ``{"<lang>_f1", "<lang>_precision", "<lang>_recall", "<lang>_threshold", "<lang>_dev_f1", ...,
    "mean_f1"}`` with ``<lang>`` as given. ``max_sentences`` keeps the first N sentences of each side of each
    split (gold pairs losing a side are dropped; quick checks only: fewer distractors make mining easier).
    """
    if not languages:
        raise ConfigError("evaluate_bucc needs at least one language")
    if max_sentences is not None and max_sentences < 1:
        raise ConfigError(f"max_sentences must be >= 1 or None, got {max_sentences}")
    if mode not in MINING_MODES:
        raise ConfigError(f"mining mode {mode!r} unknown; expected one of {', '.join(MINING_MODES)}")
    results: dict[str, float] = {}
    kwargs = dict(layer=layer, k=k, mode=mode, batch_size=batch_size, device=device)
    for lang in languages:
        splits = {}
        for split in dict.fromkeys((dev_split, eval_split)):
            data = read_bucc(data_dir, lang, split)
            if max_sentences is not None:
                data = data.truncate(max_sentences)
                if not data.gold:
                    raise ConfigError(f"BUCC {lang} {split}: no gold pair has both sentences among the first "
                                      f"{max_sentences}; raise max_eval_examples")
            splits[split] = data
        # each split is encoded and mined once: a dev-only folder scored on its own split (dev_split ==
        # eval_split) reuses the candidates instead of encoding both sides again
        mined = {split: bucc_candidates(model, tokenizer, data, label=f"BUCC {lang} {split}", **kwargs)
                 for split, data in splits.items()}
        threshold, dev_f1 = tune_threshold(mined[dev_split], splits[dev_split].gold)
        scores = bucc_f1(mined[eval_split], splits[eval_split].gold, threshold)
        for name, value in scores.items():
            results[f"{lang}_{name}"] = value
        results[f"{lang}_threshold"] = threshold
        results[f"{lang}_dev_f1"] = dev_f1
        logger.info("BUCC %s (layer %d, k %d): threshold %.4f (%s F1 %.1f), %s P %.1f R %.1f F1 %.1f", lang, layer,
                    k, threshold, dev_split, dev_f1, eval_split, scores["precision"], scores["recall"], scores["f1"])
    results["mean_f1"] = sum(results[f"{lang}_f1"] for lang in languages) / len(languages)
    return results

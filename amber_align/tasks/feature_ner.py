"""Feature-based cross-lingual NER on frozen (refined) encoder features (Wang et al., ICLR 2020, "Cross-lingual
Alignment vs Joint Training: A Comparative Study and A Simple Unified Framework", §4, contextual models;
docs/methods.md "Wang et al."): an NER evaluation, hence in ``amber_align.tasks``; the maps it applies come from
``amber_align.refinement``.

The encoder is frozen: every word gets one vector, the feature ``Σ_l h_l W_l`` (layers 9-12 of mBERT) of its first
subword, with ``W_l`` the refinement maps (:mod:`amber_align.refinement.wang`) for a foreign language and ``W = I``
for English. The features are computed once and kept in memory, and a small tagger (2-layer BiLSTM, hidden 384 per
direction, + linear-chain CRF) is trained on the English ones for each seed and applied zero-shot to the other
languages. That is the point of the feature-based protocol: seeds are cheap, and the only thing that differs
between "joint training" and "joint training + alignment refinement" is the input features.

Words without a feature (cut off by ``max_length``, or with no subword at all) get a zero vector and are predicted
``O`` at evaluation, as :func:`amber_align.tasks.preprocess.decode_ner_predictions` does for fine-tuning: the gold
sequence is never shortened. Training uses each sentence up to its last word with a feature.

Defaults that the paper does not fix are ours: Adam (lr 1e-3), 5 epochs, batch 32, dropout 0.5 on the BiLSTM input
and output, gradient-norm clipping at 5, the model after the last epoch (no dev-set selection), IOB2-constrained
transitions (``I-X`` only after ``B-X``/``I-X``, never at the start).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence, pad_sequence
from tqdm.auto import tqdm

from amber_align.data.languages import normalize_language
from amber_align.errors import ConfigError, DataFormatError
from amber_align.logging_utils import get_logger
from amber_align.modeling import max_sequence_length
from amber_align.refinement.wang import RefinementMaps, _normalise_layers, mapped_token_mask, refined_features
from amber_align.tasks.metrics import ner_scores
from amber_align.tasks.ner_data import apply_label_mapping, iob1_to_iob2
from amber_align.tasks.preprocess import ner_label_list

__all__ = [
    "LinearChainCRF",
    "FeatureTagger",
    "iob_allowed_transitions",
    "viterbi_decode",
    "extract_word_features",
    "train_feature_tagger",
    "predict_feature_tags",
    "run_feature_ner",
]

logger = get_logger(__name__)

_PENALTY = -1e4  # score of a forbidden transition: finite, so an (invalid) gold path gives a finite loss
_RESERVED_KEYS = ("label_list", "seeds")


# ------------------------------------------------------------------------------------------------------------ CRF
def iob_allowed_transitions(label_list: Sequence[str]) -> tuple[Tensor, Tensor]:
    """IOB2 constraints: ``(allowed [L, L], allowed_start [L])``, ``allowed[i, j]``: tag j may follow tag i.

    ``I-X`` may only follow ``B-X`` or ``I-X`` and may not start a sentence; everything else is allowed.
    """
    n = len(label_list)
    allowed = torch.ones(n, n, dtype=torch.bool)
    start = torch.ones(n, dtype=torch.bool)
    for j, cur in enumerate(label_list):
        if cur.startswith("I-"):
            start[j] = False
            for i, prev in enumerate(label_list):
                allowed[i, j] = prev in (f"B-{cur[2:]}", f"I-{cur[2:]}")
    return allowed, start


def _check_mask(mask: Tensor, shape: tuple[int, ...]) -> Tensor:
    mask = torch.as_tensor(mask, dtype=torch.bool)
    if tuple(mask.shape) != tuple(shape):
        raise DataFormatError(f"mask must be [batch, seq] = {list(shape)}, got {list(mask.shape)}")
    if mask.shape[1] and not bool(mask[:, 0].all()):
        raise DataFormatError("mask: every sequence needs its first position (empty sequences are not allowed)")
    if mask.shape[1] > 1 and bool((mask[:, 1:] & ~mask[:, :-1]).any()):
        raise DataFormatError("mask: each row must be a prefix of True values followed by False (padding)")
    return mask


def viterbi_decode(emissions: Tensor, mask: Tensor, transitions: Tensor, start: Tensor, end: Tensor) -> list[list[int]]:
    """Best tag sequence per row of ``emissions [b, s, L]`` under ``transitions [L, L]`` (from, to), ``start [L]``
    and ``end [L]`` scores; ``mask [b, s]`` marks the (prefix) positions of each sequence."""
    mask = _check_mask(mask, tuple(emissions.shape[:2])).to(emissions.device)
    b, s, _ = emissions.shape
    if s == 0:
        return [[] for _ in range(b)]
    score = start + emissions[:, 0]
    pointers = []
    for t in range(1, s):
        best, arg = (score[:, :, None] + transitions[None]).max(dim=1)  # [b, L] over the previous tag
        score = torch.where(mask[:, t, None], best + emissions[:, t], score)
        pointers.append(arg)
    last = (score + end).argmax(dim=1).tolist()
    lengths = mask.sum(dim=1).tolist()
    back = torch.stack(pointers, dim=1).tolist() if pointers else [[] for _ in range(b)]
    paths = []
    for row in range(b):
        tag, path = last[row], [last[row]]
        for t in range(int(lengths[row]) - 1, 0, -1):
            tag = back[row][t - 1][tag]
            path.append(tag)
        paths.append(path[::-1])
    return paths


class LinearChainCRF(nn.Module):
    """Linear-chain CRF (Lafferty et al. 2001; Lample et al. 2016): ``score(y) = start[y_1] + Σ_t e_t[y_t] +
    Σ_t T[y_{t-1}, y_t] + end[y_n]``, log-partition by the forward algorithm, decoding by Viterbi.

    ``allowed`` / ``allowed_start`` (bool): forbidden transitions and start tags get a fixed score of -1e4 (see
    :func:`iob_allowed_transitions`), so decoding never produces them while an allowed path exists.
    """

    def __init__(self, num_tags: int, *, allowed: Tensor | None = None, allowed_start: Tensor | None = None):
        super().__init__()
        if num_tags < 1:
            raise ConfigError(f"num_tags must be >= 1, got {num_tags}")
        self.num_tags = num_tags
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags).uniform_(-0.1, 0.1))
        self.start_transitions = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        self.end_transitions = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        allowed = torch.ones(num_tags, num_tags, dtype=torch.bool) if allowed is None else allowed.bool()
        allowed_start = torch.ones(num_tags, dtype=torch.bool) if allowed_start is None else allowed_start.bool()
        if tuple(allowed.shape) != (num_tags, num_tags) or tuple(allowed_start.shape) != (num_tags,):
            raise ConfigError(f"allowed must be [{num_tags}, {num_tags}] and allowed_start [{num_tags}]")
        self.register_buffer("transition_penalty", torch.where(allowed, 0.0, _PENALTY))
        self.register_buffer("start_penalty", torch.where(allowed_start, 0.0, _PENALTY))

    def effective_scores(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(start [L], transitions [L, L], end [L])`` with the constraint penalties added."""
        return (self.start_transitions + self.start_penalty, self.transitions + self.transition_penalty,
                self.end_transitions)

    def log_partition(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """``log Σ_y exp score(y)`` per sequence ``[b]`` (forward algorithm)."""
        mask = _check_mask(mask, tuple(emissions.shape[:2])).to(emissions.device)
        start, trans, end = self.effective_scores()
        alpha = start + emissions[:, 0]
        for t in range(1, emissions.shape[1]):
            nxt = torch.logsumexp(alpha[:, :, None] + trans[None], dim=1) + emissions[:, t]
            alpha = torch.where(mask[:, t, None], nxt, alpha)
        return torch.logsumexp(alpha + end, dim=1)

    def score(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """``score(tags)`` per sequence ``[b]``; ``tags [b, s]`` (values at padded positions are ignored)."""
        mask = _check_mask(mask, tuple(emissions.shape[:2])).to(emissions.device)
        start, trans, end = self.effective_scores()
        tags = tags.clamp_min(0)
        em = emissions.gather(2, tags[:, :, None]).squeeze(2)  # [b, s]
        total = start[tags[:, 0]] + em[:, 0]
        if emissions.shape[1] > 1:
            steps = trans[tags[:, :-1], tags[:, 1:]] + em[:, 1:]
            total = total + (steps * mask[:, 1:]).sum(dim=1)
        last = tags.gather(1, (mask.sum(dim=1, keepdim=True) - 1).clamp_min(0)).squeeze(1)
        return total + end[last]

    def nll(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """Negative log-likelihood per sequence ``[b]``."""
        return self.log_partition(emissions, mask) - self.score(emissions, tags, mask)

    def decode(self, emissions: Tensor, mask: Tensor) -> list[list[int]]:
        """Viterbi paths (one list of tag ids per sequence, its mask's length)."""
        start, trans, end = self.effective_scores()
        return viterbi_decode(emissions, mask, trans, start, end)


# --------------------------------------------------------------------------------------------------------- tagger
class FeatureTagger(nn.Module):
    """2-layer BiLSTM (``hidden`` per direction) over frozen word features, linear emissions, and a CRF
    (``use_crf``) or a softmax (cross-entropy; decoding is then a per-word argmax, or a Viterbi over the
    log-probabilities with the IOB2 constraints when ``constrain_iob``). Wang et al. 2020, §4 (NER)."""

    def __init__(self, input_size: int, label_list: Sequence[str], *, hidden: int = 384, num_layers: int = 2,
                 dropout: float = 0.5, use_crf: bool = True, constrain_iob: bool = True):
        super().__init__()
        if input_size < 1 or hidden < 1 or num_layers < 1 or not 0.0 <= dropout < 1.0 or not label_list:
            raise ConfigError(f"FeatureTagger: need input_size, hidden, num_layers >= 1, 0 <= dropout < 1 and a "
                              f"label list; got {input_size}, {hidden}, {num_layers}, {dropout}, {list(label_list)}")
        self.label_list = list(label_list)
        self.use_crf, self.constrain_iob = use_crf, constrain_iob
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(input_size, hidden, num_layers=num_layers, bidirectional=True, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.proj = nn.Linear(2 * hidden, len(self.label_list))
        allowed, allowed_start = (iob_allowed_transitions(self.label_list) if constrain_iob else (None, None))
        self.crf = LinearChainCRF(len(self.label_list), allowed=allowed, allowed_start=allowed_start) \
            if use_crf else None
        if not use_crf and constrain_iob:
            self.register_buffer("transition_penalty", torch.where(allowed, 0.0, _PENALTY))
            self.register_buffer("start_penalty", torch.where(allowed_start, 0.0, _PENALTY))

    def forward(self, features: Tensor, lengths: Tensor) -> Tensor:
        """Emission scores ``[b, s, L]`` for padded ``features [b, s, d]`` (lengths ``[b]``, all >= 1)."""
        lengths = torch.as_tensor(lengths, dtype=torch.long).cpu()
        packed = pack_padded_sequence(self.dropout(features), lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=features.shape[1])
        return self.proj(self.dropout(out))

    @staticmethod
    def _mask(lengths: Tensor, s: int, device: torch.device) -> Tensor:
        return torch.arange(s, device=device)[None] < torch.as_tensor(lengths, device=device)[:, None]

    def loss(self, features: Tensor, labels: Tensor, lengths: Tensor) -> Tensor:
        """CRF negative log-likelihood averaged over sentences, or token cross-entropy averaged over words."""
        emissions = self(features, lengths)
        mask = self._mask(lengths, features.shape[1], features.device)
        if self.crf is not None:
            return self.crf.nll(emissions, labels, mask).mean()
        return nn.functional.cross_entropy(emissions[mask], labels[mask])

    @torch.no_grad()
    def decode(self, features: Tensor, lengths: Tensor) -> list[list[int]]:
        """Predicted tag ids per sentence (length ``lengths[i]``)."""
        emissions = self(features, lengths)
        mask = self._mask(lengths, features.shape[1], features.device)
        if self.crf is not None:
            return self.crf.decode(emissions, mask)
        if self.constrain_iob:
            zeros = torch.zeros_like(self.start_penalty)
            return viterbi_decode(emissions.log_softmax(-1), mask, self.transition_penalty, self.start_penalty, zeros)
        ids = emissions.argmax(-1).tolist()
        return [row[:n] for row, n in zip(ids, torch.as_tensor(lengths).tolist())]


# ------------------------------------------------------------------------------------------------------- features
def extract_word_features(
    model: Any,
    tokenizer: Any,
    ds: Any,
    *,
    maps: RefinementMaps | Mapping[int, Tensor] | None = None,
    layers: Sequence[int] = (9, 10, 11, 12),
    foreign: bool,
    batch_size: int = 32,
    max_length: int = 128,
    device: str | torch.device | None = None,
    return_mask: bool = False,
    show_progress: bool | None = None,
) -> list[Tensor] | tuple[list[Tensor], list[Tensor]]:
    """One frozen feature per word of ``ds["tokens"]``: ``Σ_l h_l W_l`` of its first subword (float32, CPU).

    ``W_l`` = ``maps`` for a ``foreign`` language (with reallocation, ``maps.tau`` set: only the language-specific
    words, :func:`~amber_align.refinement.wang.mapped_token_mask`), ``I`` for English or when ``maps`` is None.
    Words cut off by ``max_length`` or without subwords get a zero vector (counted, warned). Returns a list of
    ``[n_words, d]`` tensors, and with ``return_mask`` also a list of bool ``[n_words]`` (True: the word has a
    feature). The encoder runs in eval mode without gradients; its mode is restored.
    """
    if batch_size < 1 or max_length < 2:
        raise ConfigError(f"batch_size must be >= 1 and max_length >= 2, got {batch_size} and {max_length}")
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError("extract_word_features needs a fast tokenizer (word_ids() maps subwords to words)")
    if "tokens" not in getattr(ds, "column_names", ["tokens"]):
        raise DataFormatError(f"the NER dataset needs a 'tokens' column; it has {ds.column_names}")
    config = model.config
    layers = _normalise_layers(layers, int(config.num_hidden_layers) + 1, "layers")
    limit = max_sequence_length(config)
    if max_length > limit:
        logger.warning(f"max_length={max_length} exceeds the model's {limit} positions; using {limit}")
        max_length = limit
    if device is not None:
        model.to(device)
    d = int(config.hidden_size)
    table = maps if maps is not None else {layer: torch.eye(d) for layer in layers}
    foreign = bool(foreign) and maps is not None
    reallocate = foreign and isinstance(maps, RefinementMaps) and maps.tau is not None
    sentences = [list(t) for t in ds["tokens"]]
    feats = [torch.zeros(len(s), d) for s in sentences]
    present = [torch.zeros(len(s), dtype=torch.bool) for s in sentences]
    order = sorted((i for i, s in enumerate(sentences) if s), key=lambda i: len(sentences[i]))
    was_training = model.training
    model.eval()
    try:
        for start in tqdm(range(0, len(order), batch_size), total=math.ceil(len(order) / batch_size),
                          desc="word features", unit="batch", leave=False,
                          disable=None if show_progress is None else not show_progress):
            index = order[start:start + batch_size]
            words = [sentences[i] for i in index]
            enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length,
                            padding=True, return_tensors="pt")
            mapped = mapped_token_mask(enc, words, maps) if reallocate else None
            out = refined_features(model, enc, table, layers=layers, language_is_foreign=foreign,
                                   mapped_tokens=mapped).float().cpu()
            for row, i in enumerate(index):
                positions, seen, done = [], [], set()
                for pos, w in enumerate(enc.word_ids(row)):
                    if w is not None and w not in done:  # the word's first subword
                        positions.append(pos)
                        seen.append(w)
                        done.add(w)
                if seen:
                    feats[i][seen] = out[row, positions]
                    present[i][seen] = True
    finally:
        model.train(was_training)
    missing = sum(int((~p).sum()) for p in present)
    if missing:
        logger.warning(f"{missing} of {sum(map(len, sentences))} words have no feature (beyond max_length="
                       f"{max_length} or without subwords): zero vectors, predicted 'O'")
    return (feats, present) if return_mask else feats


# ----------------------------------------------------------------------------------------------- train / predict
def _batches(n: int, batch_size: int, generator: torch.Generator | None) -> list[list[int]]:
    order = torch.randperm(n, generator=generator).tolist() if generator is not None else list(range(n))
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def train_feature_tagger(
    features: Sequence[Tensor],
    tags: Sequence[Sequence[str]],
    label_list: Sequence[str],
    *,
    present: Sequence[Tensor] | None = None,
    seed: int = 1,
    epochs: int = 5,
    lr: float = 1e-3,
    batch_size: int = 32,
    hidden: int = 384,
    dropout: float = 0.5,
    use_crf: bool = True,
    constrain_iob: bool = True,
    clip_norm: float = 5.0,
    device: str | torch.device | None = None,
) -> FeatureTagger:
    """Train a :class:`FeatureTagger` (Adam) on fixed word features and their IOB2 tags; returns it in eval mode.

    Each sentence is used up to its last word with a feature (``present``). With ``constrain_iob``, gold tags that
    break IOB2 (an ``I-X`` opening an entity) are read as ``B-X`` (:func:`iob1_to_iob2`), so the gold path is allowed.
    """
    if epochs < 1 or lr <= 0 or batch_size < 1:
        raise ConfigError(f"epochs and batch_size must be >= 1 and lr > 0; got {epochs}, {batch_size}, {lr}")
    if len(features) != len(tags):
        raise DataFormatError(f"{len(features)} feature sequences for {len(tags)} tag sequences")
    label2id = {t: i for i, t in enumerate(label_list)}
    xs, ys, repaired = [], [], 0
    for i, (x, row) in enumerate(zip(features, tags)):
        if len(row) != x.shape[0]:
            raise DataFormatError(f"sentence {i}: {x.shape[0]} word features for {len(row)} tags")
        keep = x.shape[0] if present is None else (int(present[i].nonzero().max()) + 1 if present[i].any() else 0)
        if keep == 0:
            continue
        row = list(row[:keep])
        if constrain_iob:
            fixed = iob1_to_iob2(row)
            repaired += sum(a != b for a, b in zip(row, fixed))
            row = fixed
        unknown = sorted({t for t in row if t not in label2id})
        if unknown:
            raise ConfigError(f"training tags {unknown} are not in the label list {list(label_list)}")
        xs.append(x[:keep])
        ys.append(torch.tensor([label2id[t] for t in row]))
    if not xs:
        raise DataFormatError("no training sentence with word features")
    if repaired:
        logger.warning(f"{repaired} training tags opened an entity with I-; read as B- (IOB2 constraints)")
    device = torch.device(device) if device is not None else torch.device("cpu")
    torch.manual_seed(seed)
    tagger = FeatureTagger(xs[0].shape[1], label_list, hidden=hidden, dropout=dropout, use_crf=use_crf,
                           constrain_iob=constrain_iob).to(device)
    optimizer = torch.optim.Adam(tagger.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    tagger.train()
    for epoch in tqdm(range(epochs), desc=f"tagger seed {seed}", unit="epoch", leave=False):
        total = 0.0
        for index in _batches(len(xs), batch_size, generator):
            x = pad_sequence([xs[i] for i in index], batch_first=True).to(device)
            y = pad_sequence([ys[i] for i in index], batch_first=True).to(device)
            lengths = torch.tensor([len(ys[i]) for i in index])
            loss = tagger.loss(x, y, lengths)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(tagger.parameters(), clip_norm)
            optimizer.step()
            total += loss.item() * len(index)
        logger.info(f"seed {seed} epoch {epoch + 1}/{epochs}: loss {total / len(xs):.4f}")
    return tagger.eval()


@torch.no_grad()
def predict_feature_tags(tagger: FeatureTagger, features: Sequence[Tensor], *,
                         present: Sequence[Tensor] | None = None, batch_size: int = 64) -> list[list[str]]:
    """Predicted IOB2 tags per sentence; words without a feature (``present`` False) are ``O``."""
    tagger.eval()
    device = next(tagger.parameters()).device
    out: list[list[str]] = [["O"] * x.shape[0] for x in features]
    rows = [i for i, x in enumerate(features) if x.shape[0]]
    for index in _batches(len(rows), batch_size, None):
        index = [rows[j] for j in index]
        x = pad_sequence([features[i] for i in index], batch_first=True).to(device)
        paths = tagger.decode(x, torch.tensor([features[i].shape[0] for i in index]))
        for i, path in zip(index, paths):
            keep = present[i].tolist() if present is not None else [True] * len(path)
            out[i] = [tagger.label_list[t] if k else "O" for t, k in zip(path, keep)]
    return out


# ----------------------------------------------------------------------------------------------------------- run
def run_feature_ner(
    model: Any,
    tokenizer: Any,
    train_ds: Any,
    eval_sets: Mapping[str, Any],
    *,
    maps: RefinementMaps | Mapping[int, Tensor] | None = None,
    layers: Sequence[int] = (9, 10, 11, 12),
    seeds: Sequence[int] = (1, 2, 3, 4, 5),
    epochs: int = 5,
    lr: float = 1e-3,
    batch_size: int = 32,
    hidden: int = 384,
    dropout: float = 0.5,
    use_crf: bool = True,
    constrain_iob: bool = True,
    max_length: int = 128,
    device: str | torch.device | None = None,
    label_list: Sequence[str] | None = None,
    label_mapping: Mapping[str, str] | None = None,
    anchor_language: str = "en",
) -> dict[str, Any]:
    """Wang et al. 2020 NER protocol: train the tagger on English features for each seed, score every eval set.

    ``eval_sets``: ``{language: dataset}`` (``tokens``, ``ner_tags``); a language other than ``anchor_language``
    is mapped with ``maps`` (``W = I`` when ``maps`` is None: the joint-training baseline). Features are computed
    once per dataset and shared by the seeds. ``label_list``: default from the training tags
    (:func:`ner_label_list`); eval tags outside it raise ConfigError unless ``label_mapping`` maps them.
    Returns ``{lang: {"f1_mean", "f1_std", "f1", "precision_mean", "recall_mean", "precision", "recall",
    "mapped", "num_sentences", "words_without_features"}, "label_list": [...], "seeds": [...]}``; scores are seqeval
    entity F1/P/R in percent, ``f1_std`` the sample standard deviation over seeds (0 for one seed).
    """
    seeds = list(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds):
        raise ConfigError(f"seeds must be a non-empty list of ints, got {seeds!r}")
    if not eval_sets:
        raise ConfigError("eval_sets is empty: give at least one {language: dataset}")
    clash = [k for k in eval_sets if k in _RESERVED_KEYS]
    if clash:
        raise ConfigError(f"eval_sets keys {clash} clash with the result keys {_RESERVED_KEYS}")
    if len(train_ds) == 0:
        raise DataFormatError("the NER training set is empty")
    anchor = normalize_language(anchor_language)
    label_list = list(label_list) if label_list is not None else ner_label_list(train_ds["ner_tags"])
    train_ds = apply_label_mapping(train_ds, label_list, label_mapping, source=f"train set ({anchor})")
    if device is None:
        device = next(model.parameters()).device
    common = dict(maps=maps, layers=layers, batch_size=batch_size, max_length=max_length, device=device,
                  return_mask=True)
    train_x, train_present = extract_word_features(model, tokenizer, train_ds, foreign=False, **common)
    train_tags = [list(t) for t in train_ds["ner_tags"]]
    evals: dict[str, tuple] = {}
    for lang, ds in eval_sets.items():
        foreign = normalize_language(lang) != anchor
        if foreign and maps is None:
            logger.info(f"{lang}: no refinement maps, features are Σ_l h_l (W = I)")
        elif foreign and isinstance(maps, RefinementMaps) and maps.languages and \
                normalize_language(lang) not in maps.languages:
            logger.warning(f"{lang}: the maps were fit on {list(maps.languages)}, not on {lang}")
        ds = apply_label_mapping(ds, label_list, label_mapping, source=f"eval set {lang!r}")
        x, present = extract_word_features(model, tokenizer, ds, foreign=foreign, **common)
        evals[lang] = (x, present, [list(t) for t in ds["ner_tags"]], foreign and maps is not None)
    scores: dict[str, dict[str, list[float]]] = {lang: {"f1": [], "precision": [], "recall": []} for lang in evals}
    for seed in tqdm(seeds, desc="seeds", unit="seed"):
        tagger = train_feature_tagger(train_x, train_tags, label_list, present=train_present, seed=seed,
                                      epochs=epochs, lr=lr, batch_size=batch_size, hidden=hidden, dropout=dropout,
                                      use_crf=use_crf, constrain_iob=constrain_iob, device=device)
        for lang, (x, present, gold, _) in evals.items():
            pred = predict_feature_tags(tagger, x, present=present, batch_size=max(batch_size, 64))
            result = ner_scores(gold, pred)
            for key in ("f1", "precision", "recall"):
                scores[lang][key].append(result[key])
            logger.info(f"seed {seed} {lang}: F1 {result['f1']:.2f}")
    out: dict[str, Any] = {}
    for lang, (x, present, gold, mapped) in evals.items():
        s = scores[lang]
        out[lang] = {
            "f1_mean": statistics.fmean(s["f1"]),
            "f1_std": statistics.stdev(s["f1"]) if len(s["f1"]) > 1 else 0.0,
            "f1": s["f1"],
            "precision_mean": statistics.fmean(s["precision"]),
            "recall_mean": statistics.fmean(s["recall"]),
            "precision": s["precision"],
            "recall": s["recall"],
            "mapped": mapped,
            "num_sentences": len(gold),
            "words_without_features": sum(int((~p).sum()) for p in present),
        }
    out["label_list"] = label_list
    out["seeds"] = seeds
    return out

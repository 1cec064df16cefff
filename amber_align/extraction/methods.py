"""Alignment extraction from similarity matrices: batched, on any device, no Python loop over words.

Every function takes a batch of similarity matrices ``sim [B, S, T]`` (rows = source subwords or words, columns =
target ones) with a validity mask ``valid [B, S, T]`` (False for padding rows/columns: the sides of a pair have
different lengths) and returns a bool link matrix ``[B, S, T]``. Special tokens are never in the matrices (the
extractor leaves them out), so they are never linked.

SimAlign's methods (Jalili Sabet et al., 2020, "SimAlign: High Quality Word Alignments without Parallel Training
Data using Static and Contextualized Embeddings") work on SimAlign's similarity ``(cos + 1) / 2`` (in [0, 1]):
:func:`extract_links` maps cosines there (``cosine=True``) before the distortion prior and ``argmax`` / ``itermax``
/ ``mwmf``, exactly as ``simalign.SentenceAligner`` does; on raw cosines IterMax's ``alpha`` and the prior act
differently (negative cosines turn the prior into a bonus far from the diagonal).

- ``argmax``: intersection of the two directions' argmax (SimAlign's ArgMax, "inter").
- ``itermax``: SimAlign's IterMax: argmax intersection, then up to ``max_count - 1`` more rounds in which a pair
  with at least one unaligned end may link, its similarity scaled by ``alpha`` when only one end is unaligned.
- ``mwmf``: SimAlign's Match: a maximum-weight bipartite matching (one link per subword at most, min(S, T) links).
- ``softmax``: awesome-align (Dou & Neubig, 2021, "Word Alignment by Fine-tuning Embeddings on Parallel
  Corpora"): softmax over the target for each source subword and over the source for each target subword; a link
  where both probabilities exceed ``threshold`` (1e-3).
- ``entmax15``: awesome-align's ``--extraction entmax15``: the same with 1.5-entmax (Peters et al., 2019, "Sparse
  Sequence-to-Sequence Models") instead of softmax; a link where both are non-zero (sparse: no threshold).
- ``apply_distortion``: SimAlign's distortion prior, ``sim · (1 − ratio · (i/(S−1) − j/(T−1))²)``, which favours
  links near the diagonal; a pair with a one-subword side is left unchanged (as SimAlign does).
- ``link_scores``: awesome-align's ``--output_prob_file`` heuristic, a score in [0, 1] for every cell.
"""

from __future__ import annotations

import torch
from torch import Tensor

from amber_align.choices import EXTRACTION_METHODS

__all__ = ["EXTRACTION_METHODS", "SIMALIGN_METHODS", "argmax_links", "itermax_links", "mwmf_links", "softmax_links",
           "softmax_probabilities", "entmax15", "entmax15_links", "link_scores", "simalign_similarity",
           "apply_distortion", "extract_links", "valid_mask"]


_NEG = float("-inf")
#: methods that work on SimAlign's (cos + 1) / 2 similarity when the similarity is cosine
SIMALIGN_METHODS = ("argmax", "itermax", "mwmf")


def valid_mask(src_lengths: Tensor, tgt_lengths: Tensor, s: int, t: int) -> Tensor:
    """``[B, S, T]`` bool: True where row ``i < src_lengths[b]`` and column ``j < tgt_lengths[b]``."""
    rows = torch.arange(s, device=src_lengths.device).unsqueeze(0) < src_lengths.unsqueeze(1)  # [B, S]
    cols = torch.arange(t, device=tgt_lengths.device).unsqueeze(0) < tgt_lengths.unsqueeze(1)  # [B, T]
    return rows.unsqueeze(2) & cols.unsqueeze(1)


def simalign_similarity(cosine: Tensor) -> Tensor:
    """SimAlign's similarity ``(cos + 1) / 2`` (``SentenceAligner.get_similarity``), in [0, 1]."""
    return (cosine + 1.0) / 2.0


def _one_hot_argmax(scores: Tensor, dim: int) -> Tensor:
    """Bool tensor with True at the argmax along ``dim`` (first maximum on ties)."""
    index = scores.argmax(dim=dim, keepdim=True)
    return torch.zeros_like(scores, dtype=torch.bool).scatter_(dim, index, True)


def argmax_links(sim: Tensor, valid: Tensor) -> Tensor:
    """Links where ``j`` is the best target for ``i`` and ``i`` the best source for ``j`` (SimAlign ArgMax)."""
    scores = sim.masked_fill(~valid, _NEG)
    return _one_hot_argmax(scores, 2) & _one_hot_argmax(scores, 1) & valid


def itermax_links(sim: Tensor, valid: Tensor, *, max_count: int = 2, alpha: float = 0.9) -> Tensor:
    """SimAlign's IterMax (``SentenceAligner.iter_max``), batched. Pairs whose shorter side has at most 2 subwords
    keep the argmax result. ``sim`` is on SimAlign's scale (:func:`simalign_similarity`).

    Each extra round: ``mask_x[i]`` / ``mask_y[j]`` say whether source ``i`` / target ``j`` is still unaligned;
    every cell's similarity is multiplied by ``clip(alpha·mask_x + alpha·mask_y, 0, 1)`` (1 when both ends are
    free, ``alpha`` when one is, 0 when neither is: such a cell still takes part in the argmax, at 0, as in
    SimAlign); a cell with a free end is linked when it is the argmax of its row and of its column. A pair stops
    when either side has no unaligned subword left or a round adds nothing.
    """
    inter = argmax_links(sim, valid)
    rows_len = valid.any(2).sum(1)  # [B] source lengths
    cols_len = valid.any(1).sum(1)  # [B] target lengths
    active = torch.minimum(rows_len, cols_len) > 2
    for _ in range(max_count - 1):
        free_x = ~inter.any(2) & valid.any(2)  # [B, S]
        free_y = ~inter.any(1) & valid.any(1)  # [B, T]
        active = active & free_x.any(1) & free_y.any(1)
        if not bool(active.any()):
            break
        fx, fy = free_x.unsqueeze(2), free_y.unsqueeze(1)
        scale = (alpha * fx.to(sim.dtype) + alpha * fy.to(sim.dtype)).clamp(max=1.0)
        candidate = (fx | fy) & valid & active.view(-1, 1, 1)
        scores = (sim * scale).masked_fill(~valid, _NEG)
        new = _one_hot_argmax(scores, 2) & _one_hot_argmax(scores, 1) & candidate
        added = new & ~inter
        if not bool(added.any()):
            break
        active = active & added.flatten(1).any(1)
        inter = inter | added
    return inter


def mwmf_links(sim: Tensor, valid: Tensor) -> Tensor:
    """SimAlign's Match (``mwmf``): per pair, the bipartite matching of maximum total similarity among those of
    maximum size (min(S, T) links), via the Hungarian algorithm (``scipy.optimize.linear_sum_assignment``); one
    pair at a time on the CPU. SimAlign's networkx graph drops zero-similarity edges: with (cos + 1) / 2 > 0 the
    two give the same matching."""
    from scipy.optimize import linear_sum_assignment

    out = torch.zeros_like(valid)
    s_len = valid.any(2).sum(1).tolist()
    t_len = valid.any(1).sum(1).tolist()
    matrices = sim.detach().double().cpu().numpy()
    for b, (m, n) in enumerate(zip(s_len, t_len)):
        if m == 0 or n == 0:
            continue
        rows, cols = linear_sum_assignment(matrices[b, :m, :n], maximize=True)
        out[b, torch.as_tensor(rows, device=out.device), torch.as_tensor(cols, device=out.device)] = True
    return out & valid


def softmax_probabilities(sim: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """``(p_src_to_tgt, p_tgt_to_src)``: softmax over the valid targets of each source row, and over the valid
    sources of each target column; 0 outside ``valid``. Float32 whatever the input dtype."""
    scores = sim.float().masked_fill(~valid, _NEG)
    p_st = torch.softmax(scores, dim=2).nan_to_num(0.0)  # a padding row is all -inf: NaN -> 0
    p_ts = torch.softmax(scores, dim=1).nan_to_num(0.0)
    return p_st, p_ts


def softmax_links(sim: Tensor, valid: Tensor, *, threshold: float = 1e-3) -> Tensor:
    """awesome-align's softmax extraction: both directions' probability above ``threshold``."""
    p_st, p_ts = softmax_probabilities(sim, valid)
    return (p_st > threshold) & (p_ts > threshold) & valid


def entmax15(scores: Tensor, valid: Tensor, dim: int) -> Tensor:
    """Exact 1.5-entmax along ``dim`` over the ``valid`` entries (Peters et al., 2019, Algorithm 2: sort, then
    the threshold ``tau`` in closed form; the ``entmax`` package's ``entmax15``); 0 outside ``valid`` and on an
    all-invalid slice. Float32 (float64 in, float64 out)."""
    x = scores.float() if scores.dtype != torch.float64 else scores
    x = x.masked_fill(~valid, _NEG) / 2
    top = x.amax(dim=dim, keepdim=True)
    x = x - top.masked_fill(~torch.isfinite(top), 0.0)
    # entries below -1 (after the shift) are never in the support: a finite floor keeps the sums finite
    x = x.clamp(min=-2.0).masked_fill(~valid, -2.0)
    srt, _ = torch.sort(x, dim=dim, descending=True)
    shape = [1] * x.dim()
    shape[dim] = -1
    rho = torch.arange(1, x.shape[dim] + 1, device=x.device, dtype=x.dtype).view(shape)
    mean = srt.cumsum(dim) / rho
    mean_sq = (srt ** 2).cumsum(dim) / rho
    delta = ((1 - rho * (mean_sq - mean ** 2)) / rho).clamp(min=0)
    tau = mean - delta.sqrt()
    support = (tau <= srt).sum(dim=dim, keepdim=True).clamp(min=1)
    tau_star = tau.gather(dim, support - 1)
    return ((x - tau_star).clamp(min=0) ** 2) * valid


def entmax15_links(sim: Tensor, valid: Tensor) -> Tensor:
    """awesome-align's ``entmax15`` extraction: both directions' 1.5-entmax probability non-zero."""
    return (entmax15(sim, valid, 2) > 0) & (entmax15(sim, valid, 1) > 0) & valid


def link_scores(sim: Tensor, valid: Tensor) -> Tensor:
    """awesome-align's alignment probability (``--output_prob_file``): softmax over the targets of ``sim / √T`` and
    over the sources of ``sim / √S``, combined by their harmonic mean ``2·p·q / (p + q + 1e-9)``; in [0, 1]."""
    s_len = valid.any(2).sum(1).clamp(min=1).float().view(-1, 1, 1)
    t_len = valid.any(1).sum(1).clamp(min=1).float().view(-1, 1, 1)
    scores = sim.float().masked_fill(~valid, _NEG)
    p = torch.softmax(scores / t_len.sqrt(), dim=2).nan_to_num(0.0)
    q = torch.softmax(scores / s_len.sqrt(), dim=1).nan_to_num(0.0)
    return (2 * p * q / (p + q + 1e-9)) * valid


def apply_distortion(sim: Tensor, valid: Tensor, ratio: float) -> Tensor:
    """SimAlign's distortion prior (``SentenceAligner.apply_distortion``): scale ``sim[b, i, j]`` by
    ``1 − ratio · (i/(S_b−1) − j/(T_b−1))²`` with each pair's own lengths; a pair with a side of fewer than 2
    subwords is left unchanged. ``sim`` is on SimAlign's scale (:func:`simalign_similarity`)."""
    if ratio == 0:
        return sim
    s_len = valid.any(2).sum(1)  # [B]
    t_len = valid.any(1).sum(1)
    i = torch.arange(sim.shape[1], device=sim.device, dtype=sim.dtype).unsqueeze(0) / (s_len.clamp(min=2) - 1)[:, None]
    j = torch.arange(sim.shape[2], device=sim.device, dtype=sim.dtype).unsqueeze(0) / (t_len.clamp(min=2) - 1)[:, None]
    prior = 1.0 - ratio * (i.unsqueeze(2) - j.unsqueeze(1)) ** 2
    short = ((s_len < 2) | (t_len < 2)).view(-1, 1, 1)
    return sim * prior.masked_fill(short, 1.0)


def extract_links(sim: Tensor, valid: Tensor, method: str = "softmax", *, threshold: float = 1e-3,
                  distortion: float = 0.0, max_count: int = 2, alpha: float = 0.9, cosine: bool = False) -> Tensor:
    """Dispatch to one of :data:`EXTRACTION_METHODS` after the optional distortion prior.

    ``cosine=True`` says ``sim`` holds cosines: for SimAlign's methods (:data:`SIMALIGN_METHODS`) they are mapped
    to SimAlign's ``(cos + 1) / 2`` first, so that IterMax and the prior give SimAlign's links. Softmax and entmax
    always see ``sim`` as given (awesome-align's raw dot products by default)."""
    if method not in EXTRACTION_METHODS:
        raise ValueError(f"method must be one of {EXTRACTION_METHODS}, got {method!r}")
    if cosine and method in SIMALIGN_METHODS:
        sim = simalign_similarity(sim)
    sim = apply_distortion(sim, valid, distortion)
    if method == "softmax":
        return softmax_links(sim, valid, threshold=threshold)
    if method == "entmax15":
        return entmax15_links(sim, valid)
    if method == "argmax":
        return argmax_links(sim, valid)
    if method == "mwmf":
        return mwmf_links(sim, valid)
    return itermax_links(sim, valid, max_count=max_count, alpha=alpha)

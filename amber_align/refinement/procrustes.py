"""Closed-form linear maps between two sets of paired vectors, and vocabulary reallocation.

Convention (used everywhere in this package): vectors are **rows**. Given paired rows ``z[i]`` (the side to map,
the foreign language) and ``x[i]`` (the fixed side, English), a map ``W`` of shape ``[d, d]`` is applied as
``z @ W`` and fit so that ``z @ W ≈ x``.

* :func:`orthogonal_procrustes` — ``W = argmin_{WᵀW = I} ||Z W − X||_F``. With ``SVD(Zᵀ X) = U Σ Vᵀ`` the solution
  is ``W = U Vᵀ`` (Schönemann 1966): ``||ZW − X||² = const − 2 tr(Wᵀ Zᵀ X) = const − 2 tr(Vᵀ Wᵀ U Σ)``, largest
  when ``Vᵀ Wᵀ U = I``. docs/methods.md "Wang et al." writes the same map as ``W = V Uᵀ``; that is the
  *column*-vector form (``x ≈ W z``), i.e. the transpose of ours. Wang et al. (ICLR 2020) §3.2 and Conneau et al.
  (ICLR 2018) use it for alignment refinement / BLI.
* :func:`least_squares_map` — unconstrained (optionally ridge-regularised) linear map, the "linear" variant.
* :func:`reallocate_vocabulary` — Wang et al. §3.3: a word whose relative frequency on one side is ≥ τ (0.9) is
  language-specific to that side, else shared. :func:`link_mask_for_reallocation` turns that into which word
  links fit the map and which foreign words get mapped (shared words are *not* mapped: joint training already
  put them in one space, and mapping them would move them away from their English occurrences).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from amber_align.errors import ConfigError, DataFormatError

__all__ = [
    "SHARED",
    "SRC_SPECIFIC",
    "TGT_SPECIFIC",
    "orthogonal_procrustes",
    "least_squares_map",
    "reallocate_vocabulary",
    "link_mask_for_reallocation",
    "is_mapped_word",
    "check_tau",
]

SRC_SPECIFIC = "src-specific"
TGT_SPECIFIC = "tgt-specific"
SHARED = "shared"


def _check_pair(x: Tensor, z: Tensor) -> None:
    for name, t in (("x", x), ("z", z)):
        if not isinstance(t, Tensor) or t.dim() != 2:
            raise DataFormatError(f"{name} must be a 2-D tensor [n, d] of paired row vectors, got "
                                  f"{tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__}")
    if x.shape != z.shape:
        raise DataFormatError(f"x and z must have the same shape [n, d] (row i of z is paired with row i of x); "
                              f"got x {tuple(x.shape)}, z {tuple(z.shape)}")
    if x.shape[0] == 0:
        raise DataFormatError("no paired vectors to fit a map on (n = 0)")
    if not (torch.isfinite(x).all() and torch.isfinite(z).all()):
        raise DataFormatError("x or z contains NaN or infinite values")


def orthogonal_procrustes(x: Tensor, z: Tensor) -> Tensor:
    """Orthogonal ``W`` [d, d] minimising ``||z @ W − x||_F`` (rows paired): ``W = U Vᵀ`` from ``SVD(zᵀ x)``.

    Computed in float64 on the CPU (the d×d SVD is cheap; float32 loses orthogonality at d = 768) and returned in
    ``x``'s dtype on ``x``'s device. Apply as ``z @ W``. Fewer pairs than dimensions still give an orthogonal map,
    but not a unique one.
    """
    _check_pair(x, z)
    m = z.detach().to("cpu", torch.float64).T @ x.detach().to("cpu", torch.float64)
    u, _, vh = torch.linalg.svd(m)
    w = u @ vh
    return w.to(device=x.device, dtype=x.dtype if x.is_floating_point() else torch.float32)


def least_squares_map(x: Tensor, z: Tensor, ridge: float = 0.0) -> Tensor:
    """Linear ``W`` [d, d] minimising ``||z @ W − x||² + ridge·||W||²`` (rows paired); apply as ``z @ W``.

    ``ridge = 0``: minimum-norm least squares (``torch.linalg.lstsq``, gelsd), exact for a full-rank ``z`` with
    n ≥ d. ``ridge > 0``: ``(zᵀz + ridge·I)⁻¹ zᵀx``. Float64 on the CPU, returned like ``x``.
    """
    _check_pair(x, z)
    if isinstance(ridge, bool) or not isinstance(ridge, (int, float)) or not ridge >= 0:
        raise ConfigError(f"ridge must be a non-negative number, got {ridge!r}")
    xd = x.detach().to("cpu", torch.float64)
    zd = z.detach().to("cpu", torch.float64)
    if ridge > 0:
        gram = zd.T @ zd + ridge * torch.eye(zd.shape[1], dtype=torch.float64)
        w = torch.linalg.solve(gram, zd.T @ xd)
    else:
        w = torch.linalg.lstsq(zd, xd, driver="gelsd").solution
    return w.to(device=x.device, dtype=x.dtype if x.is_floating_point() else torch.float32)


def check_tau(tau: float) -> float:
    """``tau`` as a float when it is a valid reallocation threshold in (0.5, 1], else a ConfigError."""
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not (0.5 < tau <= 1.0):
        raise ConfigError(f"tau must be a number in (0.5, 1] (Wang et al. use 0.9; at 0.5 or below a word could "
                          f"be specific to both sides), got {tau!r}")
    return float(tau)


def reallocate_vocabulary(
    src_counts: Mapping[str, int], tgt_counts: Mapping[str, int], tau: float = 0.9
) -> dict[str, str]:
    """Category of every word string seen on either side: ``"src-specific"``, ``"tgt-specific"`` or ``"shared"``.

    Wang et al. (ICLR 2020) §3.3, vocabulary reallocation: with ``c_s``/``c_t`` the word's counts on the two
    sides, the word is specific to the source side when ``c_s / (c_s + c_t) ≥ τ``, to the target side when
    ``c_t / (c_s + c_t) ≥ τ``, else shared (τ = 0.9 in the paper). The boundary counts as specific (9 of 10 is
    specific at τ = 0.9); the comparison is ``c_side ≥ τ·total`` with a 1e-9 relative tolerance, so a ratio that
    equals τ mathematically is not lost to floating-point rounding. Word strings are compared exactly (case
    matters; lower-case the counts first for an uncased reading). Words with zero counts on both sides are left out.
    """
    tau = check_tau(tau)
    for side, counts in (("src_counts", src_counts), ("tgt_counts", tgt_counts)):
        for word, c in counts.items():
            if isinstance(c, bool) or not isinstance(c, int) or c < 0:
                raise DataFormatError(f"{side}[{word!r}] must be a non-negative integer count, got {c!r}")
    categories: dict[str, str] = {}
    for word in list(src_counts) + [w for w in tgt_counts if w not in src_counts]:
        cs, ct = src_counts.get(word, 0), tgt_counts.get(word, 0)
        total = cs + ct
        if total == 0:
            continue
        threshold = tau * total * (1 - 1e-9)
        if cs >= threshold:
            categories[word] = SRC_SPECIFIC
        elif ct >= threshold:
            categories[word] = TGT_SPECIFIC
        else:
            categories[word] = SHARED
    return categories


def is_mapped_word(word: str, categories: Mapping[str, str] | None) -> bool:
    """Whether a *foreign-side* word gets the refinement map: yes unless reallocation made it shared or
    target-specific. Words the table has never seen are foreign words (mapped); no table maps every word."""
    if categories is None:
        return True
    return categories.get(word, SRC_SPECIFIC) == SRC_SPECIFIC


def link_mask_for_reallocation(
    src_words: Sequence[str], tgt_words: Sequence[str], categories: Mapping[str, str] | None
) -> tuple[Tensor, Tensor]:
    """``(fit, mapped)`` boolean masks over word links ``(src_words[i], tgt_words[i])`` (src = foreign side).

    Our reading of Wang et al. §3.3 for contextual vectors: only language-specific foreign words are moved, so

    * ``mapped[i]``: the foreign word is source-specific (:func:`is_mapped_word`). Shared words (names, numbers,
      subwords both languages use) and target-specific words (English words inside foreign text) keep their
      jointly trained vectors;
    * ``fit[i]``: ``mapped[i]`` and the English word is not source-specific: a map is fit only on links whose
      foreign end it will be applied to, towards an English end that lives in the English space.

    ``categories=None`` (no reallocation) gives all-True masks.
    """
    if len(src_words) != len(tgt_words):
        raise DataFormatError(f"src_words and tgt_words must pair up: {len(src_words)} vs {len(tgt_words)} words")
    n = len(src_words)
    if categories is None:
        return torch.ones(n, dtype=torch.bool), torch.ones(n, dtype=torch.bool)
    mapped = torch.tensor([is_mapped_word(w, categories) for w in src_words], dtype=torch.bool)
    tgt_ok = torch.tensor([categories.get(w, TGT_SPECIFIC) != SRC_SPECIFIC for w in tgt_words], dtype=torch.bool)
    return mapped & tgt_ok, mapped

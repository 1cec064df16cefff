"""The allowed values of every closed-set setting, defined once.

Configs name them in their fields' ``choices`` metadata (so ``amber-align align --help`` shows them and the command
line refuses others), ``__post_init__`` checks Python and YAML values against the same tuples, and the CLI's own
flags (``word-align``, ``extract-alignments``, ``finetune``, ``evaluate``, ``refine``) read them from here. This
module imports nothing, so building the command line stays fast. Tasks and alignment objectives are open sets: they
live in their registries (``amber_align.tasks.registry``, ``amber_align.objectives``).
"""

from __future__ import annotations

__all__ = ["ANCHOR_MODES", "EXTRACTION_LEVELS", "EXTRACTION_METHODS", "EXTRACTION_SIMILARITIES", "POOLING_MODES",
           "QA_NORMALIZATIONS", "REFINEMENT_METHODS", "SA_SIMILARITIES", "SENTENCE_TRANSFORMERS_MODES", "SO_GUIDES",
           "ST_POOLING_MODES", "SYMMETRIZATIONS"]

POOLING_MODES = ("first", "last", "mean")
"""Word vector from its subwords (Cao et al. 2020: last; Efimov et al. 2022: mean)."""
SYMMETRIZATIONS = ("intersection", "union", "grow-diag", "grow-diag-final", "grow-diag-final-and")
"""How forward and reverse eflomal links are combined (Koehn et al.'s heuristics)."""
ANCHOR_MODES = ("frozen", "current")
"""Cao loss, anchor-side target: the frozen original f0(t) (Cao's code) or the trained model f(t) (Efimov's)."""
SA_SIMILARITIES = ("dot", "cosine")
"""AMBER sentence alignment: raw dot product (the paper) or cosine / temperature."""
SO_GUIDES = ("self", "links")
"""awesome-align self-training guide: the model's own softmax extraction, or the data's word links."""
EXTRACTION_METHODS = ("softmax", "entmax15", "argmax", "itermax", "mwmf")
"""Word alignments from an encoder: awesome-align's softmax and entmax15, SimAlign's argmax, IterMax and Match."""
EXTRACTION_LEVELS = ("subword", "word")
"""Extraction on subword vectors (awesome-align, SimAlign's default) or on word vectors averaged over their
subwords (SimAlign's word-level mode, ``token_type="word"``)."""
EXTRACTION_SIMILARITIES = ("auto", "cosine", "dot")
"""Similarity for extraction; auto = dot for softmax/entmax15, cosine for argmax/itermax/mwmf."""
QA_NORMALIZATIONS = ("auto", "squad", "mlqa", "mlqa_no_symbols")
"""QA answer normalisation: the SQuAD v1.1 script's, the official MLQA script's per-language rules, MLQA's rules
that also drop every Unicode symbol, or auto by test set (mlqa for MLQA, squad for XQuAD/TyDiQA, as XTREME)."""
REFINEMENT_METHODS = ("orthogonal", "least_squares")
"""Wang et al.'s per-layer maps: orthogonal Procrustes or least squares."""
SENTENCE_TRANSFORMERS_MODES = ("auto", "always", "never")
"""sentence-transformers modules in a saved aligned model: the source's when it has them (auto), those or else a
mean-pooling config (always), none (never); amber_align.hub.sentence_transformers."""
ST_POOLING_MODES = ("mean", "cls", "max")
"""Pooling of a written sentence-transformers config (mean = the XSR evaluation's vectors)."""

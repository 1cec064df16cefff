"""Alignment refinement after joint training (Wang et al., ICLR 2020, "Cross-lingual Alignment vs Joint Training:
A Comparative Study and A Simple Unified Framework").

``procrustes``: the closed-form maps (orthogonal Procrustes, least squares) and vocabulary reallocation (§3.3);
``wang``: per-layer foreign→English maps fit on aligned contextual word vectors of a jointly trained encoder
(mBERT), saved beside a checkpoint and applied to hidden states (NER features = Σ_l h_l W_l). The encoder itself
is never changed: the maps live in their own files.
"""

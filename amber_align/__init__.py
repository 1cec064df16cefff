"""amber_align: line up the languages of a multilingual encoder.

Alignment trainers (Cao-style adjustment, AMBER objectives, Wang-style refinement) built on
``transformers.Trainer``, with the data pipeline (parallel corpora, word alignments) and the zero-shot
evaluations that measure the effect.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]

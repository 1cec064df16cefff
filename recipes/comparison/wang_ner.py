"""Wang et al. refinement measured as Wang et al. measured it: feature-based zero-shot NER on the frozen encoder,
with and without the refinement maps (ICLR 2020, "Cross-lingual Alignment vs Joint Training", §4 contextual
models; docs/methods.md "Wang et al.", docs/tasks.md "Wang refinement").

The encoder is frozen; every word's feature is Σ_l h_l W_l over the last four layers (9–12 of mBERT's 12) at its
first subword; a BiLSTM-CRF tagger is trained on the English features per seed
(:func:`amber_align.tasks.feature_ner.run_feature_ner`). "joint" is the encoder as it is (``W = I``: joint
training alone); "refined" maps a foreign language's features with orthogonal Procrustes maps fit on that
language's parallel pairs (eflomal grow-diag-final-and links, vocabulary reallocation τ = 0.9: the paper's
settings, :func:`amber_align.refinement.wang.fit_refinement`). The English features are never mapped, so with the
same seed the two conditions train the same tagger: their F1 differences are paired. A language without parallel
data in the corpus is measured jointly only.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["wang_layers", "feature_ner_scores", "paired_delta"]


def wang_layers(num_layers: int) -> tuple[int, ...]:
    """The last four layers as ``hidden_states`` indices (Wang et al.'s 9–12 of 12), fewer for a shallower model."""
    return tuple(range(max(1, num_layers - 3), num_layers + 1))


def paired_delta(refined: Sequence[float], joint: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std of the per-seed differences refined − joint (0 std for one seed)."""
    deltas = [r - j for r, j in zip(refined, joint, strict=True)]
    return statistics.fmean(deltas), (statistics.stdev(deltas) if len(deltas) > 1 else 0.0)


def feature_ner_scores(model_dir: str, train_file: str, eval_files: Mapping[str, str],
                       map_sources: Sequence[Mapping[str, Any]], *, seeds: Sequence[int],
                       max_train_examples: int | None, links_dir: str) -> dict[str, Any]:
    """Entity F1 per seed of every ``eval_files`` language with the encoder as it is (``joint``) and, for each
    language of ``map_sources`` (``compare.py`` corpus entries), with its refinement maps (``refined``)."""
    from amber_align.diagnostics.run import linked_pairs
    from amber_align.modeling import load_encoder, load_tokenizer
    from amber_align.refinement.wang import fit_refinement
    from amber_align.tasks.feature_ner import run_feature_ner
    from amber_align.tasks.ner_data import load_ner

    model, tokenizer = load_encoder(model_dir).eval(), load_tokenizer(model_dir)
    layers = wang_layers(int(model.config.num_hidden_layers))
    train = load_ner({"file": train_file, "max_examples": max_train_examples}, lang="en")
    evals = {lang: load_ner(path, lang=lang) for lang, path in eval_files.items()}
    joint = run_feature_ner(model, tokenizer, train, evals, layers=layers, seeds=list(seeds))
    refined: dict[str, list[float]] = {}
    fits: dict[str, dict[str, Any]] = {}
    for source in map_sources:
        lang = source["src_lang"]
        pairs = linked_pairs(source, tokenizer, options={"symmetrization": "grow-diag-final-and",
                                                          "alignment_cache_dir": links_dir})
        maps = fit_refinement(model, tokenizer, pairs, layers=layers, method="orthogonal", tau=0.9)
        result = run_feature_ner(model, tokenizer, train, {lang: evals[lang]}, maps=maps, layers=layers,
                                 seeds=list(seeds))
        refined[lang] = result[lang]["f1"]
        fits[lang] = {"pairs": len(pairs), "links": maps.meta.get("num_links"),
                      "links_fit": maps.meta.get("num_links_fit"), "unmapped_words": len(maps.unmapped_words)}
    return {"task": "ner_features", "layers": list(layers), "seeds": list(seeds), "train_sentences": len(train),
            "joint": {lang: joint[lang]["f1"] for lang in evals}, "refined": refined, "maps": fits}

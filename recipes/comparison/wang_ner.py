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
    language of ``map_sources`` (``compare.py`` corpus entries), with its refinement maps (``refined``). One tagger
    per seed scores both conditions (the paired design; the tagger is the costly part on a CPU)."""
    from amber_align.diagnostics.run import linked_pairs
    from amber_align.modeling import load_encoder, load_tokenizer
    from amber_align.refinement.wang import fit_refinement
    from amber_align.tasks.feature_ner import extract_word_features, predict_feature_tags, train_feature_tagger
    from amber_align.tasks.metrics import ner_scores
    from amber_align.tasks.ner_data import apply_label_mapping, load_ner
    from amber_align.tasks.preprocess import ner_label_list

    # every file is read and checked before the encoder runs: a bad file fails in seconds, not after the features
    train = load_ner({"file": train_file, "max_examples": max_train_examples}, lang="en")
    label_list = ner_label_list(train["ner_tags"])
    train = apply_label_mapping(train, label_list, None, source="train set (en)")
    evals = {lang: apply_label_mapping(load_ner(path, lang=lang), label_list, None, source=f"eval set {lang!r}")
             for lang, path in eval_files.items()}
    model, tokenizer = load_encoder(model_dir).eval(), load_tokenizer(model_dir)
    layers = wang_layers(int(model.config.num_hidden_layers))
    train_x, train_present = extract_word_features(model, tokenizer, train, foreign=False, layers=layers,
                                                   return_mask=True)
    # (condition, language) -> (features, present, gold tags)
    sets: dict[tuple[str, str], tuple[Any, Any, list[list[str]]]] = {}
    for lang, ds in evals.items():
        sets["joint", lang] = (*extract_word_features(model, tokenizer, ds, foreign=False, layers=layers,
                                                      return_mask=True), [list(t) for t in ds["ner_tags"]])
    fits: dict[str, dict[str, Any]] = {}
    for source in map_sources:
        lang = source["src_lang"]
        pairs = linked_pairs(source, tokenizer, options={"symmetrization": "grow-diag-final-and",
                                                          "alignment_cache_dir": links_dir})
        maps = fit_refinement(model, tokenizer, pairs, layers=layers, method="orthogonal", tau=0.9)
        sets["refined", lang] = (*extract_word_features(model, tokenizer, evals[lang], maps=maps, foreign=True,
                                                        layers=layers, return_mask=True), sets["joint", lang][2])
        fits[lang] = {"pairs": len(pairs), "links": maps.meta.get("num_links"),
                      "links_fit": maps.meta.get("num_links_fit"), "unmapped_words": len(maps.unmapped_words)}
    scores: dict[str, dict[str, list[float]]] = {"joint": {}, "refined": {}}
    train_tags = [list(t) for t in train["ner_tags"]]  # read once: a datasets column converts on every access
    for seed in seeds:
        tagger = train_feature_tagger(train_x, train_tags, label_list, present=train_present, seed=seed)
        for (condition, lang), (x, present, gold) in sets.items():
            pred = predict_feature_tags(tagger, x, present=present)
            scores[condition].setdefault(lang, []).append(float(ner_scores(gold, pred)["f1"]))
    return {"task": "ner_features", "layers": list(layers), "seeds": list(seeds), "train_sentences": len(train),
            "joint": scores["joint"], "refined": scores["refined"], "maps": fits}

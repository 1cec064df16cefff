"""The methods a model card can name: a one-line description and the BibTeX entry of each paper.

Cards cite exactly the methods a run used (``context["methods"]``): ``cao`` for Cao-style alignment, ``efimov``
when Efimov et al.'s variant or continual learning was used, ``amber`` for AMBER's objectives, ``wang`` when
refinement maps (``alignment_maps.json``) sit beside the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Method", "METHODS", "methods_for_alignment"]


@dataclass(frozen=True)
class Method:
    """A published method: short reference, what it does here, BibTeX."""

    reference: str
    description: str
    bibtex: str


METHODS: dict[str, Method] = {
    "cao": Method(
        reference="Cao, Kitaev & Klein, ICLR 2020",
        description="aligned-word MSE between the foreign word vector and its English partner, plus an anchor "
                    "MSE that keeps English vectors close to the original model's",
        bibtex="""@inproceedings{cao2020multilingual,
  title     = {Multilingual Alignment of Contextual Word Representations},
  author    = {Cao, Steven and Kitaev, Nikita and Klein, Dan},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2020}
}""",
    ),
    "efimov": Method(
        reference="Efimov, Boytsov, Arslanova & Braslavski, 2022",
        description="Cao-style adjustment studied on typologically diverse languages and more tasks, with their "
                    "variants (subwords mean-pooled, the current model as anchor) and continual learning (the "
                    "alignment loss kept on during task fine-tuning)",
        bibtex="""@article{efimov2022impact,
  title   = {The Impact of Cross-Lingual Adjustment of Contextual Word Representations on Zero-Shot Transfer},
  author  = {Efimov, Pavel and Boytsov, Leonid and Arslanova, Elena and Braslavski, Pavel},
  journal = {arXiv preprint arXiv:2204.06457},
  year    = {2022}
}""",
    ),
    "amber": Method(
        reference="Hu, Johnson, Firat, Siddhant & Neubig, NAACL 2021 (AMBER)",
        description="masked and translation language modelling, sentence alignment with in-batch negatives and "
                    "bidirectional word-alignment agreement of attention; here continuing the training of a "
                    "released checkpoint (the paper pretrained from scratch)",
        bibtex="""@inproceedings{hu2021explicit,
  title     = {Explicit Alignment Objectives for Multilingual Bidirectional Encoders},
  author    = {Hu, Junjie and Johnson, Melvin and Firat, Orhan and Siddhant, Aditya and Neubig, Graham},
  booktitle = {Proceedings of the 2021 Conference of the North American Chapter of the Association for
               Computational Linguistics: Human Language Technologies (NAACL-HLT)},
  year      = {2021},
  eprint    = {2010.07972},
  archivePrefix = {arXiv}
}""",
    ),
    "wang": Method(
        reference="Wang, Xie, Xu, Yang, Neubig & Carbonell, ICLR 2020",
        description="per-layer linear maps (orthogonal Procrustes) fitted on aligned words, with vocabulary "
                    "reallocation; stored beside the encoder as alignment_maps.safetensors",
        bibtex="""@inproceedings{wang2020cross,
  title     = {Cross-lingual Alignment vs Joint Training: A Comparative Study and A Simple Unified Framework},
  author    = {Wang, Zirui and Xie, Jiateng and Xu, Ruochen and Yang, Yiming and Neubig, Graham and
               Carbonell, Jaime},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2020}
}""",
    ),
}


def methods_for_alignment(method: str, *, pooling: str | None = None, anchor: str | None = None,
                          cao_weight: float = 0.0) -> list[str]:
    """The method keys an alignment config uses: ``cao`` (+ ``efimov`` for mean pooling or the current model as
    anchor), ``amber`` (+ ``cao`` when its Cao part is on)."""
    keys: list[str] = []
    if method == "amber":
        keys.append("amber")
        if cao_weight > 0:
            keys.append("cao")
    elif method == "cao":
        keys.append("cao")
    if "cao" in keys and (pooling == "mean" or anchor == "current"):
        keys.append("efimov")
    return keys

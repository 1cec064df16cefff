"""The methods a model card can name: a one-line description and the BibTeX entry of each paper.

Cards cite exactly the methods a run used (``context["methods"]``). For an alignment run they come from the
registered objectives it turned on (``amber_align.objectives``: each objective names its keys here, by default its
loss module's ``citations``): ``cao`` for Cao-style alignment, ``efimov`` when Efimov et al.'s variant was used,
``amber`` for AMBER's objectives, ``xlm`` for TLM, ``awesome-align`` for the self-training objective. Task cards add
``cao``/``efimov`` for continual learning, and ``wang`` when refinement maps (``alignment_maps.json``) sit beside
the checkpoint. A new objective citing a new paper adds its entry with :func:`register_method`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amber_align.errors import ConfigError

__all__ = ["Method", "METHODS", "methods_for_alignment", "register_method"]


@dataclass(frozen=True)
class Method:
    """A published method: short reference, what it does here, BibTeX, and the card's tag (default
    ``<key>-alignment``)."""

    reference: str
    description: str
    bibtex: str
    tag: str = ""


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
    "xlm": Method(
        reference="Conneau & Lample, NeurIPS 2019 (XLM)",
        description="translation language modelling (TLM): masked language modelling on a translation pair joined "
                    "into one input, so that a masked word can be predicted from either language",
        bibtex="""@inproceedings{conneau2019cross,
  title     = {Cross-lingual Language Model Pretraining},
  author    = {Conneau, Alexis and Lample, Guillaume},
  booktitle = {Advances in Neural Information Processing Systems (NeurIPS)},
  year      = {2019}
}""",
        tag="translation-language-modeling",
    ),
    "awesome-align": Method(
        reference="Dou & Neubig, EACL 2021 (awesome-align)",
        description="the self-training objective: the softmax alignment probabilities of a middle layer are "
                    "trained towards the links extracted from them (or towards given word links)",
        bibtex="""@inproceedings{dou2021word,
  title     = {Word Alignment by Fine-tuning Embeddings on Parallel Corpora},
  author    = {Dou, Zi-Yi and Neubig, Graham},
  booktitle = {Proceedings of the 16th Conference of the European Chapter of the Association for Computational
               Linguistics (EACL)},
  year      = {2021}
}""",
        tag="awesome-align",
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


def register_method(key: str, method: Method, *, replace: bool = False) -> Method:
    """Add a citable method (for a new objective's ``cites``); an existing key is refused unless ``replace``."""
    if key in METHODS and not replace:
        raise ConfigError(f"method {key!r} is registered already (pass replace=True)")
    METHODS[key] = method
    return method


def methods_for_alignment(config: Any) -> list[str]:
    """The method keys an alignment config cites: those of the objectives it turns on, in order, each once
    (``AlignmentConfig.objectives()``)."""
    keys: list[str] = []
    for objective in config.objectives():
        keys += [k for k in objective.citations(config) if k not in keys]
    return keys

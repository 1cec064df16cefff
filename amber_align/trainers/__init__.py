"""Alignment trainers, one file per method, and the registry that ``amber-align align`` dispatches on."""

from __future__ import annotations

from dataclasses import dataclass

from amber_align.errors import ConfigError
from amber_align.trainers.alignment_config import AlignmentConfig
from amber_align.trainers.alignment_trainer import AlignmentTrainer
from amber_align.trainers.amber import AmberConfig, AmberTrainer
from amber_align.trainers.cao import CaoConfig, CaoTrainer

__all__ = ["AlignmentConfig", "AlignmentTrainer", "AmberConfig", "AmberTrainer", "CaoConfig", "CaoTrainer", "METHODS",
           "get_method", "MethodSpec"]


@dataclass(frozen=True)
class MethodSpec:
    """A config class and the trainer that runs it."""

    config_class: type[AlignmentConfig]
    trainer_class: type[AlignmentTrainer]


METHODS: dict[str, MethodSpec] = {
    "cao": MethodSpec(CaoConfig, CaoTrainer),
    "amber": MethodSpec(AmberConfig, AmberTrainer),
}


def get_method(name: str) -> MethodSpec:
    """The registered method ``name``; an unknown name is a ``ConfigError`` listing the known ones."""
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError(f"method: unknown alignment method {name!r}; expected one of {sorted(METHODS)}") from None

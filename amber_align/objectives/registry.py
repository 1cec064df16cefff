"""The registry of alignment objectives: what ``AmberTrainer`` can train, each declared once.

An :class:`Objective` says everything the trainer, its config, its collator and the model card need to know about one
weighted part of the loss: its weight field, the config fields it reads (type-checked with the config), what it needs
from the batch (``collator_needs``), the item counts it is normalised by (``count_keys``, summed over the
gradient-accumulation window and gathered over processes), whether it needs a frozen teacher, word links or an MLM
head, the keys of ``amber_align.hub.methods.METHODS`` its card cites, how its loss module is built from the config
and how its parts are computed from a batch. A new objective is one file that builds on this module and one
:func:`register_objective` call; ``tests/test_objectives.py`` adds one in the test file alone and trains it.

Computing parts goes through an :class:`ObjectiveStep`: the forwards several objectives share (the separate-sentence
batch used by SA, Cao and SO) run once per step, through the prepared (possibly DDP-wrapped) model, so DDP syncs
gradients once for the single backward.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from amber_align.errors import ConfigError
from amber_align.families import model_family

__all__ = ["Objective", "ObjectiveStep", "OBJECTIVES", "register_objective", "unregister_objective",
           "get_objective", "enabled_objectives", "objectives_of", "COLLATOR_NEEDS"]

#: what ``AmberCollator`` can build: ``pair`` = the joined [x; y] batch (TLM, WA), ``tlm`` / ``mlm`` = masked copies
#: of the pair / separate batch, ``so`` = the content mask of the separate batch, ``so_links`` = SO's guide from links
COLLATOR_NEEDS = frozenset({"pair", "tlm", "mlm", "so", "so_links"})


def _nothing(config: Any) -> tuple:
    return ()


def _never(config: Any) -> bool:
    return False


@dataclass(frozen=True)
class Objective:
    """One weighted alignment objective (see the module docstring)."""

    name: str
    weight_field: str
    parts: tuple[str, ...]
    build: Callable[[Any], torch.nn.Module]
    compute: Callable[[ObjectiveStep, torch.nn.Module], dict[str, torch.Tensor]]
    cites: tuple[str, ...] | Callable[[Any], tuple[str, ...]] = ()
    fields: tuple[str, ...] = ()
    validate: Callable[[Any], None] | None = None
    collator_needs: Callable[[Any], Iterable[str]] = _nothing
    count_keys: tuple[str, ...] = ()
    sentence_layers: Callable[[Any], Iterable[int]] = _nothing
    needs_teacher: bool = False
    needs_links: Callable[[Any], bool] = _never
    masked_lm: bool = False
    attention_probabilities: bool = False
    description: str = ""

    def weight(self, config: Any) -> float:
        """The objective's weight in ``config`` (0 when the config has no such field: the objective is off)."""
        return float(getattr(config, self.weight_field, 0.0) or 0.0)

    def enabled(self, config: Any) -> bool:
        return self.weight(config) > 0

    def citations(self, config: Any) -> tuple[str, ...]:
        return tuple(self.cites(config) if callable(self.cites) else self.cites)


#: name -> objective, in registration order (the order parts are computed, logged and listed)
OBJECTIVES: dict[str, Objective] = {}


def register_objective(objective: Objective, *, replace: bool = False) -> Objective:
    """Add ``objective`` to the registry; a second objective of the same name or weight field is refused unless
    ``replace``. Returns the objective (so that a module can keep it as a constant)."""
    if not objective.name or not objective.parts:
        raise ConfigError(f"objective {objective.name!r}: needs a name and at least one part name")
    for other in OBJECTIVES.values():
        if other.name == objective.name and not replace:
            raise ConfigError(f"objective {objective.name!r} is registered already (pass replace=True)")
        if other.name != objective.name:
            if other.weight_field == objective.weight_field:
                raise ConfigError(f"objective {objective.name!r}: weight field {objective.weight_field!r} is "
                                  f"taken by {other.name!r}")
            clash = set(other.parts) & set(objective.parts)
            if clash:
                raise ConfigError(f"objective {objective.name!r}: part name(s) {sorted(clash)} taken by "
                                  f"{other.name!r}")
    OBJECTIVES[objective.name] = objective
    return objective


def unregister_objective(name: str) -> None:
    """Remove a registered objective (tests and plugins that register their own)."""
    OBJECTIVES.pop(name, None)


def get_objective(name: str) -> Objective:
    try:
        return OBJECTIVES[name]
    except KeyError:
        raise ConfigError(f"unknown objective {name!r}; registered: {', '.join(OBJECTIVES)}") from None


def objectives_of(config: Any) -> list[Objective]:
    """The registered objectives whose weight field ``config`` has (on or off)."""
    return [o for o in OBJECTIVES.values() if hasattr(config, o.weight_field)]


def enabled_objectives(config: Any) -> list[Objective]:
    """The objectives ``config`` turns on (weight > 0), in registration order."""
    return [o for o in objectives_of(config) if o.enabled(config)]


@contextlib.contextmanager
def _vocab_projection_on(head: torch.nn.Module, index: torch.Tensor) -> Iterator[None]:
    """Within the block, the output-embedding layer ``head`` projects only the flat positions ``index`` of its
    ``[B, T, H]`` input (logits ``[len(index), V]``): the masked tokens, or none when only hidden states are
    needed, instead of a ``[B, T, V]`` tensor (V = 120k for mBERT, 250k for XLM-R)."""

    def select(module: torch.nn.Module, args: tuple) -> tuple:
        hidden = args[0]
        return (hidden.reshape(-1, hidden.shape[-1]).index_select(0, index),) + tuple(args[1:])

    handle = head.register_forward_pre_hook(select)
    try:
        yield
    finally:
        handle.remove()


class ObjectiveStep:
    """One batch as the objectives see it: the trainer, its config and frozen teacher, the (prepared) model, the
    batch, the global counts, and the forwards that objectives share, each run at most once.

    ``masked_lm``: the model is a ``*ForMaskedLM``; every forward then projects to the vocabulary only at the
    ``positions`` asked for (none for hidden states alone). ``want_states``: the separate-sentence forward returns
    every layer's hidden states (some objective reads a layer other than the last, or the model has an MLM head).
    ``family``: what the model's family needs (``amber_align.families``: token types, WA's attention probabilities).
    """

    def __init__(self, trainer: Any, model: torch.nn.Module, inputs: dict[str, Any],
                 counts: dict[str, torch.Tensor] | None, *, masked_lm: bool, want_states: bool):
        self.trainer, self.model, self.inputs, self.counts = trainer, model, inputs, counts
        self.args, self.teacher = trainer.args, getattr(trainer, "teacher", None)
        self.masked_lm, self.want_states = masked_lm, want_states
        self.family = getattr(trainer, "model_family", None) or model_family(model)
        self._sentences: Any = None

    def count(self, key: str) -> torch.Tensor | None:
        """The global count ``key`` (None outside training: the losses then use local counts)."""
        return None if self.counts is None else self.counts.get(key)

    def forward(self, positions: torch.Tensor | None = None, **inputs: Any) -> Any:
        """One forward through the model; with an MLM head, project ``positions`` (flat indices) only."""
        if not self.masked_lm:
            return self.model(**inputs)
        head = self.trainer.accelerator.unwrap_model(self.model).get_output_embeddings()
        if positions is None:
            positions = torch.zeros(0, dtype=torch.long, device=inputs["input_ids"].device)
        with _vocab_projection_on(head, positions):
            return self.model(**inputs)

    def sentences(self) -> Any:
        """The forward of x and y as separate sentences (``[2B, T]``, x rows first), shared by the objectives."""
        if self._sentences is None:
            self._sentences = self.forward(input_ids=self.inputs["input_ids"],
                                           attention_mask=self.inputs["attention_mask"],
                                           output_hidden_states=self.want_states)
        return self._sentences

"""Pieces every trainer with named loss parts shares: logging the parts, and preparing a frozen teacher.

- ``LossPartsLogging``: a ``Trainer`` mixin; ``record_parts`` accumulates detached parts each training step and
  ``log()`` reports each as its mean over the logging window and over processes (the way the Trainer reports
  ``loss``), so ``cao_link`` or ``task`` sit next to ``loss`` in every log line.
- ``prepare_frozen_teacher``: a frozen original model is never a submodule of the trained one: it is loaded
  separately, put in eval mode, frozen and prepared with ``accelerator.prepare_model(..., evaluation_mode=True)``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch

__all__ = ["LossPartsLogging", "prepare_frozen_teacher"]


class LossPartsLogging:
    """Mixin for ``transformers.Trainer`` subclasses (put it first in the bases)."""

    def _init_parts(self) -> None:
        self._train_parts: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros((), device=self.args.device))
        self._parts_last_step = 0

    def record_parts(self, parts: dict[str, torch.Tensor], scale: float = 1.0) -> None:
        """Add this step's parts (detached) to the running sums logged by ``log()``."""
        for name, value in parts.items():
            self._train_parts[name] = self._train_parts[name] + value.detach() * scale

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._train_parts:
            steps = max(self.state.global_step - self._parts_last_step, 1)
            names = sorted(self._train_parts)
            values = torch.stack([self._train_parts[n] for n in names])
            if self.accelerator.num_processes > 1:
                values = self.accelerator.gather(values.unsqueeze(0)).mean(0)
            for n, v in zip(names, values.tolist()):
                logs[n] = round(v / steps, 6)
            self._train_parts.clear()
            self._parts_last_step = self.state.global_step
        super().log(logs, start_time)


def prepare_frozen_teacher(accelerator: Any, teacher: torch.nn.Module, trained: torch.nn.Module) -> torch.nn.Module:
    """Freeze ``teacher`` (a separate object from ``trained``) and prepare it for evaluation-only use."""
    if teacher is trained:
        raise ValueError("the teacher must be a separate model object, not the trained model")
    teacher.eval()
    teacher.requires_grad_(False)
    return accelerator.prepare_model(teacher, evaluation_mode=True)

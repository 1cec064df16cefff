"""``ModelCardMixin``: every save of a trainer writes (or updates) the model card beside the weights.

Put it first in a ``transformers.Trainer`` subclass's bases. It

- writes ``README.md`` (and the card context ``amber_align_card.json``) into every folder the trainer saves to:
  the output folder and each ``checkpoint-N`` (``_save``), after ``save_metrics`` (held-out losses), and into
  the output folder before each in-training push (``_push_from_checkpoint`` copies only the weights);
- overrides ``create_model_card``, which ``Trainer.push_to_hub`` calls and which would otherwise overwrite the
  README with transformers' generic card: ours merges into the existing README instead;
- counts the non-padding tokens of the training batches (``attention_mask``) without a per-step
  synchronisation: the count is summed over processes when the Trainer logs (every process logs together);
- refuses ``hub_token`` in the config: the Trainer pickles its arguments into ``training_args.bin`` and uploads
  that file, so a token there would be published. Tokens come from the environment (``HF_TOKEN``) or
  ``hf auth login``.

Subclasses set ``card_kind`` ("aligned_encoder" or "task_model"); extra result folders come from
``card_results_dirs``. Only the process that saves writes the card; the card never holds a path or a token.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from amber_align.errors import ConfigError
from amber_align.logging_utils import get_logger

__all__ = ["ModelCardMixin", "check_no_token_in_args"]

logger = get_logger(__name__)


def check_no_token_in_args(args: Any) -> None:
    """``ConfigError`` when the training arguments carry a Hub token (it would be saved and uploaded)."""
    if getattr(args, "hub_token", None):
        raise ConfigError(
            f"{type(args).__name__}.hub_token: a token in the config is saved into training_args.bin and uploaded "
            "with the model; leave hub_token unset and give the token through the environment (HF_TOKEN) or "
            "`hf auth login`")


class ModelCardMixin:
    """Mixin for ``transformers.Trainer`` subclasses: a model card at every save (see the module docstring)."""

    #: which card template: "aligned_encoder" (alignment trainers) or "task_model" (fine-tuned task heads)
    card_kind: str = "aligned_encoder"

    def __init__(self, *args: Any, **kwargs: Any):
        training_args = kwargs.get("args", args[1] if len(args) > 1 else None)
        if training_args is not None:
            check_no_token_in_args(training_args)
        super().__init__(*args, **kwargs)
        self._card_tokens_local = torch.zeros((), dtype=torch.long, device=self.args.device)
        self._card_tokens = 0
        self._card_started: float | None = None

    # ----- figures --------------------------------------------------------------------------------------------
    def train(self, *args: Any, **kwargs: Any) -> Any:
        self._card_started = time.time()
        return super().train(*args, **kwargs)

    def training_step(self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> torch.Tensor:
        mask = inputs.get("attention_mask") if isinstance(inputs, Mapping) else None  # dict or BatchEncoding
        if isinstance(mask, torch.Tensor):
            self._card_tokens_local = self._card_tokens_local + mask.detach().sum().to(self._card_tokens_local)
        return super().training_step(model, inputs, num_items_in_batch)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs or "train_loss" in logs:  # step logs and the final metrics: every process logs them
            local = self._card_tokens_local.reshape(1)
            total = self.accelerator.gather(local).sum() if self.accelerator.num_processes > 1 else local.sum()
            self._card_tokens += int(total.item())
            self._card_tokens_local = torch.zeros_like(self._card_tokens_local)
        super().log(logs, start_time)

    def card_tokens(self) -> int | None:
        """Non-padding training tokens seen so far (the Trainer's own count when it keeps one)."""
        seen = int(getattr(self.state, "num_input_tokens_seen", 0) or 0)
        return seen or self._card_tokens or None

    # ----- the card -------------------------------------------------------------------------------------------
    def card_context(self) -> dict[str, Any]:
        """The card context of this run (``amber_align.hub.context``)."""
        from amber_align.hub import context as ctx

        build = ctx.task_context if self.card_kind == "task_model" else ctx.alignment_context
        return build(self, tokens=self.card_tokens(), started=self._card_started)

    def card_results_dirs(self) -> list[str]:
        """Other folders whose ``results.json`` the card reads (the task runner's ``results_dir``)."""
        results_dir = getattr(self.args, "results_dir", None)
        return [results_dir] if results_dir else []

    def write_model_card(self, output_dir: str | None = None, **extra_metadata: Any) -> Path | None:
        """Write or update ``README.md`` in ``output_dir`` (default: the output folder), on the saving process only.

        A failure to write the card is logged and does not stop training (the weights are already saved).
        """
        if not self.args.should_save:
            return None
        from amber_align.hub.card import write_card

        folder = Path(output_dir or self.args.output_dir)
        final = Path(self.args.output_dir)
        # a hidden folder inside the output folder is a staging copy of its next save (e.g. .incomplete-model,
        # moved into place afterwards): its card is merged with the output folder's README, which it replaces
        merge_with = final / "README.md" if folder.parent == final and folder.name.startswith(".") else None
        try:
            return write_card(folder, self.card_context(), results_dirs=[final, *self.card_results_dirs()],
                              extra_metadata=extra_metadata, merge_with=merge_with)
        except (OSError, ValueError) as exc:
            logger.error(f"could not write the model card in {folder}: {type(exc).__name__}: {exc}")
            return None

    # ----- Trainer hooks --------------------------------------------------------------------------------------
    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        super()._save(output_dir, state_dict=state_dict)
        self.write_model_card(output_dir)

    def save_metrics(self, split: str, metrics: dict[str, float], combined: bool = True) -> None:
        super().save_metrics(split, metrics, combined)
        if (Path(self.args.output_dir) / "config.json").is_file():
            self.write_model_card()

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        if self.is_world_process_zero():
            self.write_model_card()
        super()._push_from_checkpoint(checkpoint_folder)

    def create_model_card(self, language: str | list[str] | None = None, license: str | None = None,  # noqa: A002
                          tags: str | list[str] | None = None, model_name: str | None = None,
                          finetuned_from: str | None = None, tasks: str | list[str] | None = None,
                          dataset_tags: str | list[str] | None = None, dataset: str | list[str] | None = None,
                          dataset_args: str | list[str] | None = None) -> None:
        """Our card instead of transformers' generic one (``push_to_hub`` calls this): it updates the README in
        the output folder; the arguments are merged into the metadata (``finetuned_from`` is ``base_model``)."""
        if not self.is_world_process_zero():
            return
        datasets = [*([dataset] if isinstance(dataset, str) else dataset or []),
                    *([dataset_tags] if isinstance(dataset_tags, str) else dataset_tags or [])]
        self.write_model_card(language=language, license=license, tags=[tags] if isinstance(tags, str) else tags,
                              base_model=finetuned_from, datasets=list(dict.fromkeys(datasets)) or None)

"""What every trainer of the package shares, the task trainers included: atomic checkpoints, the non-finite guard
and loss-part logging, as three small ``transformers.Trainer`` mixins stacked in one base (``SharedTrainerMixin``),
and preparing a frozen teacher.

- ``AtomicCheckpoints``: each ``checkpoint-N`` is written into ``<output_dir>/.incomplete-checkpoints/`` and renamed
  into place once every file (weights, optimizer, scheduler, RNG states of every process, ``trainer_state.json``) is
  written, so a run killed during a save never leaves a ``checkpoint-N`` that looks complete, and
  ``--resume_from_checkpoint`` never picks up a half-written one. A callback cannot do this (callbacks run after
  the checkpoint is written), so the mixin redirects the Trainer's own ``_save_checkpoint`` through class-level
  overrides of the folder it writes into and of the Hub push it starts; no method is swapped on an instance.
- ``NonFiniteGuard``: ``check_finite_parts`` checks the loss parts on every process *before* the backward pass; a
  NaN/Inf stops the run with ``NonFiniteLossError`` naming the step and the part, after saving the last good state
  as a checkpoint (the weights have not been touched by the bad step). A non-finite gradient norm stops the run
  before the optimizer step unless fp16's GradScaler, which skips such steps itself, is active (docs/errors.md,
  "Numerics").
- ``LossPartsLogging``: ``record_parts`` accumulates the detached parts of each training step (after the guard's
  check) and ``log()`` reports each as its mean over the logging window and over processes (the way the Trainer
  reports ``loss``), so ``cao_link`` or ``task`` sit next to ``loss`` in every log line.
- ``SavedWeightsDtype``: the saved weights are in ``save_dtype`` (float32 unless the config says otherwise), also
  when DeepSpeed trained the model in bf16 (the fp32 master weights are saved, ``amber_align.trainers.
  deepspeed_support``).
- ``prepare_frozen_teacher``: a frozen original model is never a submodule of the trained one: it is loaded
  separately, put in eval mode, frozen and prepared with ``accelerator.prepare_model(..., evaluation_mode=True)``,
  or under DeepSpeed as TRL prepares its reference models (ZeRO-3: an inference engine of its own).

The alignment trainers, the continual-learning trainer and the task trainer of ``finetune`` all derive from
``ModelCardMixin`` (``amber_align.hub.mixin``: the card at every save) and ``SharedTrainerMixin``.
"""

from __future__ import annotations

import contextlib
import math
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

from amber_align.errors import ConfigError, NonFiniteLossError
from amber_align.io_utils import replace_directory
from amber_align.logging_utils import get_logger
from amber_align.trainers.deepspeed_support import SAVE_DTYPES, deepspeed_stage, full_precision_state_dict, \
    drop_tied_copies, names_as_loaded, prepare_deepspeed_teacher

__all__ = ["AtomicCheckpoints", "NonFiniteGuard", "LossPartsLogging", "SavedWeightsDtype", "SharedTrainerMixin",
           "prepare_frozen_teacher", "STAGING_DIR"]

logger = get_logger(__name__)

#: folder under ``output_dir`` where checkpoints are written before they are renamed into place
STAGING_DIR = ".incomplete-checkpoints"


class AtomicCheckpoints:
    """Mixin for ``transformers.Trainer`` subclasses: ``checkpoint-N`` appears with one rename once complete.

    The Trainer's own ``_save_checkpoint`` does the saving (model, optimizer, scheduler, scaler, RNG, state and
    rotation); while it runs, ``_get_output_dir`` names the staging folder on the same filesystem (so it rotates
    nothing there) and ``_push_from_checkpoint`` only notes the push, which starts once the folder is renamed. With a
    hyper-parameter search (per-trial folders) the Trainer's direct write is kept.
    """

    _staging_root: str | None = None
    _staged_pushes: list[str] | None = None

    def _get_output_dir(self, trial: Any) -> str:
        if self._staging_root is not None:
            return self._staging_root
        return super()._get_output_dir(trial=trial)

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        if self._staged_pushes is not None:
            self._staged_pushes.append(checkpoint_folder)
            return
        super()._push_from_checkpoint(checkpoint_folder)

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        if trial is not None or getattr(self, "hp_search_backend", None) is not None:
            return super()._save_checkpoint(model, trial)
        run_dir = Path(self._get_output_dir(trial=None))
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        staging_root = run_dir / STAGING_DIR
        staged = staging_root / name
        if self.args.should_save:
            shutil.rmtree(staged, ignore_errors=True)  # left by a save that was killed
        self.accelerator.wait_for_everyone()
        self._staging_root, self._staged_pushes = str(staging_root), []
        try:
            super()._save_checkpoint(model, trial)
            pushes = self._staged_pushes
        finally:
            self._staging_root, self._staged_pushes = None, None
        best = self.state.best_model_checkpoint
        if best and Path(best).parent == staging_root:
            self.state.best_model_checkpoint = str(run_dir / Path(best).name)
            if self.args.should_save:
                self.state.save_to_json(str(staged / "trainer_state.json"))
        self.accelerator.wait_for_everyone()  # every process wrote its files (rng_state_{rank}.pth, shards)
        if self.args.should_save:
            replace_directory(staged, run_dir / name)
            with contextlib.suppress(OSError):
                staging_root.rmdir()  # only when empty
            rotate_checkpoints(output_dir=str(run_dir), save_total_limit=self.args.save_total_limit,
                               best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=True)
        self.accelerator.wait_for_everyone()
        for _ in pushes:
            self._push_from_checkpoint(str(run_dir / name))


class NonFiniteGuard(AtomicCheckpoints):
    """Mixin for ``transformers.Trainer`` subclasses: stop on a non-finite loss part or gradient norm."""

    def check_finite_parts(self, parts: dict[str, torch.Tensor]) -> None:
        """Raise ``NonFiniteLossError`` when a part is NaN/Inf on any process, after saving the last good state.

        The parts are gathered from every process (one small collective per micro-batch under DDP) so that all
        processes stop at the same step and take part in the checkpoint save together. The error is raised before
        the backward pass, so the bad step never reaches the weights or the optimizer state.
        """
        if not parts:
            return
        names = sorted(parts)
        values = torch.stack([parts[n].detach().float().reshape(()) for n in names]).unsqueeze(0)
        if self.accelerator.num_processes > 1:
            values = self.accelerator.gather(values)  # (processes, parts)
        table = values.cpu().tolist() if not bool(torch.isfinite(values).all()) else None
        if table is None:
            self._last_finite_parts = dict(zip(names, values[0].tolist()))
            return
        bad: dict[str, float] = {}
        where: list[str] = []
        for rank, row in enumerate(table):
            for name, value in zip(names, row):
                if not math.isfinite(value):
                    bad.setdefault(name, value)
                    where.append(f"{name} = {value}" + (f" on process {rank}" if len(table) > 1 else ""))
        finite = [f"{n} = {v:.6g}" for n, v in zip(names, table[0]) if n not in bad]
        others = f" (other parts: {', '.join(finite)})" if finite else ""
        self._stop_non_finite("loss", f"loss part(s) {', '.join(where)}{others}", bad)

    def _get_grad_norm(self, model: Any, grad_norm: Any = None) -> Any:
        """The Trainer's gradient norm (computed before every optimizer step); a non-finite one stops the run
        before the optimizer step, unless a GradScaler (fp16 on CUDA) is active: it skips such steps itself."""
        grad_norm = super()._get_grad_norm(model, grad_norm=grad_norm)
        if grad_norm is not None and getattr(self.accelerator, "scaler", None) is None:
            value = float(grad_norm)
            if not math.isfinite(value):
                parts = ", ".join(f"{n} = {v:.6g}" for n, v in getattr(self, "_last_finite_parts", {}).items())
                after = f" after finite loss parts ({parts})" if parts else ""
                self._stop_non_finite("gradient", f"gradient norm = {value}{after}: an overflow in the backward pass",
                                      {"grad_norm": value})
        return grad_norm

    def _stop_non_finite(self, kind: str, what: str, bad: dict[str, float]) -> None:
        step = self.state.global_step + 1
        checkpoint = self.save_last_good_checkpoint()
        message = (f"non-finite {kind} at step {step} (of {self.state.max_steps}): {what}; training stopped before "
                   "this update. ")
        if checkpoint is None:
            message += ("No step had completed, so no checkpoint was saved: check the data, the model weights and "
                        "the learning rate.")
        else:
            message += (f"The last good state (after step {step - 1}) is in {checkpoint}: lower the learning rate, "
                        "use bf16 rather than fp16, or check this step's data, then resume with "
                        f"--resume_from_checkpoint {checkpoint}")
        logger.error(message)
        raise NonFiniteLossError(message, step=step, parts=bad, checkpoint=checkpoint)

    def save_last_good_checkpoint(self) -> str | None:
        """Save ``checkpoint-{global_step}`` (the state after the last completed step) unless it exists already;
        return its folder, or None when no step has completed yet."""
        step = self.state.global_step
        if step == 0:
            return None
        folder = Path(self._get_output_dir(trial=None)) / f"{PREFIX_CHECKPOINT_DIR}-{step}"
        if not (folder / "trainer_state.json").is_file():
            self._save_checkpoint(self.model, trial=None)
        return str(folder)


class LossPartsLogging(NonFiniteGuard):
    """Mixin for ``transformers.Trainer`` subclasses: log every loss part next to ``loss`` (and guard it)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._init_parts()

    def _init_parts(self) -> None:
        self._train_parts: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros((), device=self.args.device))
        self._parts_last_step = 0

    def record_parts(self, parts: dict[str, torch.Tensor], scale: float = 1.0) -> None:
        """Check that this step's parts are finite (``check_finite_parts``), then add them (detached) to the
        running sums logged by ``log()``. Called before the backward pass. The logging window starts at the step of
        its first record, so the first window after a resume spans the steps since the checkpoint, not since 0."""
        self.check_finite_parts(parts)
        if not self._train_parts:
            self._parts_last_step = self.state.global_step
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


class SavedWeightsDtype:
    """Mixin for ``transformers.Trainer`` subclasses: the weights every save writes (final model and checkpoints)
    are in ``args.save_dtype`` (``float32`` when the config has no such field).

    Why: under DeepSpeed with ``bf16: true`` the engine holds the model in bf16, so the Trainer wrote bf16 weights
    (a bf16-rounded copy of what the fp32 optimizer trained); DDP/FSDP autocast keeps fp32 weights. Under DeepSpeed
    the fp32 master weights come from the ZeRO optimizer (a collective: ``save_model`` calls ``_save`` on every
    process); elsewhere a model held in another dtype is cast. PEFT models are left to ``amber_align.peft_support``.
    """

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        dtype = SAVE_DTYPES[getattr(self.args, "save_dtype", "float32")]
        module = self.accelerator.unwrap_model(self.model)
        differs = any(p.is_floating_point() and p.dtype != dtype for p in module.parameters())
        if getattr(self, "is_deepspeed_enabled", False) and state_dict is not None:
            if differs:
                state_dict = full_precision_state_dict(self.model_wrapped, state_dict, dtype,
                                                       keep=self.args.should_save)
            state_dict = drop_tied_copies(module, state_dict)
        elif differs and state_dict is None and self.args.should_save and not hasattr(module, "peft_config"):
            state_dict = drop_tied_copies(module, {name: tensor.to(dtype) if tensor.is_floating_point() else tensor
                                                   for name, tensor in module.state_dict().items()})
        with names_as_loaded(module) if deepspeed_stage(self.accelerator) == 3 else contextlib.nullcontext():
            super()._save(output_dir, state_dict=state_dict)


class SharedTrainerMixin(SavedWeightsDtype, LossPartsLogging):
    """The base every trainer of the package puts before ``transformers.Trainer`` (after ``ModelCardMixin``):
    atomic checkpoints, the non-finite guard, loss-part logging, the saved weights' dtype, and the launch check (a
    process launched as one of N never trains alone: ``amber_align.launch_guard``)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        from amber_align.launch_guard import check_launch_is_one_job
        from amber_align.trainers.deepspeed_support import check_deepspeed_support

        check_launch_is_one_job(self.accelerator)
        check_deepspeed_support(self)


def prepare_frozen_teacher(accelerator: Any, teacher: torch.nn.Module, trained: torch.nn.Module) -> torch.nn.Module:
    """Freeze ``teacher`` (a separate object from ``trained``) and prepare it for evaluation-only use.

    Under DeepSpeed it is prepared as TRL prepares its reference models (``trl/models/utils.py::prepare_deepspeed``
    in huggingface/trl; here ``deepspeed_support.prepare_deepspeed_teacher``): ZeRO-3 gives it an inference-only
    engine with the run's stage-3 partitioning (a teacher loaded while ZeRO-3's config is alive is partitioned,
    and only an engine's hooks gather its weights for a forward); ZeRO-1/2 keep it a plain module on the device in
    eval mode. Elsewhere ``accelerator.prepare_model(..., evaluation_mode=True)`` (device placement, no DDP)."""
    if teacher is trained:
        raise ConfigError("the teacher must be a separate model object, not the trained model (load it again, or "
                          "pass teacher=None to load the original from model_name_or_path)")
    teacher.eval()
    teacher.requires_grad_(False)
    if deepspeed_stage(accelerator) is not None:
        return prepare_deepspeed_teacher(accelerator, teacher)
    return accelerator.prepare_model(teacher, evaluation_mode=True)

"""Parameter-efficient alignment with PEFT (LoRA): settings, wrapping, the adapter-free teacher, merged weights.

``peft: {method: lora, r: 8, alpha: 16}`` in any alignment config trains LoRA adapters (Hu et al. 2021, "LoRA:
Low-Rank Adaptation of Large Language Models", arXiv:2106.09685) instead of every weight, through Hugging Face
``peft`` (``get_peft_model``), as TRL's trainers take a ``peft_config``:

- **The frozen teacher** (Cao's anchor) is the trained model itself with its adapters disabled
  (:class:`AdapterDisabledTeacher`, ``PeftModel.disable_adapter``): the base weights never change under LoRA, so
  no second copy of the model is loaded. This is the one sanctioned exception to "the teacher is never part of the
  trained model"; it runs in eval mode (no dropout) and under ``no_grad``.
- **Checkpoints** (``checkpoint-N``) hold the adapters, as the Trainer saves a ``PeftModel``, and resume with them.
- **The final model** is merged (``save: merged``, the default): base weights plus each adapter's ``B·A·alpha/r``,
  written as the plain model class, so ``AutoModel.from_pretrained`` loads it with no PEFT installed. ``save:
  adapters`` writes the adapters alone (``PeftModel.from_pretrained(base, folder)``), ``save: both`` writes both.

docs/peft.md shows the measured memory, trainable parameters and alignment effect beside full fine-tuning.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from amber_align.errors import ConfigError

__all__ = ["PEFT_METHODS", "PEFT_SAVE_MODES", "check_peft_settings", "apply_peft", "is_peft_model",
           "AdapterDisabledTeacher", "merged_state_dict", "save_merged", "trainable_parameters"]

PEFT_METHODS = ("lora",)
PEFT_SAVE_MODES = ("merged", "adapters", "both")
#: key -> (default, what it is); ``target_modules: null`` = PEFT's default for the architecture (BERT: query, value)
_LORA_KEYS: dict[str, tuple[Any, str]] = {
    "method": ("lora", "the PEFT method"),
    "r": (8, "an int >= 1 (the adapters' rank)"),
    "alpha": (16, "a number > 0 (the scale is alpha / r)"),
    "dropout": (0.0, "a number in [0, 1)"),
    "target_modules": (None, "a list of module names, 'all-linear', or null for PEFT's default"),
    "modules_to_save": (None, "a list of module names trained in full beside the adapters, or null"),
    "save": ("merged", f"one of {PEFT_SAVE_MODES}"),
}


def check_peft_settings(value: Any, owner: str = "AlignmentConfig") -> dict[str, Any] | None:
    """``value`` (the ``peft`` field) checked and completed with defaults; None stays None. Every bad key or value
    is a ``ConfigError`` naming ``owner.peft.<key>`` and the value."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"{owner}.peft: expected a mapping such as {{method: lora, r: 8}}, got {value!r}")
    unknown = sorted(set(value) - set(_LORA_KEYS))
    if unknown:
        raise ConfigError(f"{owner}.peft: unknown key(s) {unknown}; expected some of {sorted(_LORA_KEYS)}")
    out = {key: value.get(key, default) for key, (default, _) in _LORA_KEYS.items()}

    def bad(key: str) -> ConfigError:
        return ConfigError(f"{owner}.peft.{key}: expected {_LORA_KEYS[key][1]}, got {out[key]!r}")

    if out["method"] not in PEFT_METHODS:
        raise ConfigError(f"{owner}.peft.method: expected one of {PEFT_METHODS}, got {out['method']!r}")
    if not isinstance(out["r"], int) or isinstance(out["r"], bool) or out["r"] < 1:
        raise bad("r")
    if not isinstance(out["alpha"], (int, float)) or isinstance(out["alpha"], bool) or out["alpha"] <= 0:
        raise bad("alpha")
    if not isinstance(out["dropout"], (int, float)) or isinstance(out["dropout"], bool) or \
            not 0 <= out["dropout"] < 1:
        raise bad("dropout")
    for key in ("target_modules", "modules_to_save"):
        names = out[key]
        if names is None or (key == "target_modules" and names == "all-linear"):
            continue
        if isinstance(names, str):
            out[key] = names = [names]
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            raise bad(key)
    if out["save"] not in PEFT_SAVE_MODES:
        raise bad("save")
    return out


def _import_peft() -> Any:
    try:
        import peft
    except ImportError:
        raise ConfigError("peft: LoRA alignment needs the package peft (pip install 'amber-align[peft]')") from None
    return peft


def is_peft_model(model: Any) -> bool:
    """Whether ``model`` is a ``peft.PeftModel`` (False when peft is not installed)."""
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


def apply_peft(model: torch.nn.Module, settings: Mapping[str, Any]) -> torch.nn.Module:
    """``model`` wrapped by ``peft.get_peft_model`` with the LoRA adapters ``settings`` describe (every other weight
    frozen). A target module the model lacks is one ``ConfigError`` naming the model class."""
    peft = _import_peft()
    config = peft.LoraConfig(r=settings["r"], lora_alpha=settings["alpha"], lora_dropout=settings["dropout"],
                             target_modules=settings["target_modules"], modules_to_save=settings["modules_to_save"],
                             bias="none")
    try:
        wrapped = peft.get_peft_model(model, config)
    except ValueError as err:
        raise ConfigError(f"peft: cannot add LoRA adapters to {type(model).__name__}: {err}") from None
    return wrapped


def trainable_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts of ``model``."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def _encoder_of(model: torch.nn.Module) -> torch.nn.Module:
    """The plain encoder inside ``model`` (a ``*ForMaskedLM``'s ``bert``/``roberta``), or ``model`` itself."""
    base = getattr(model, "base_model", model)
    return base if base is not model and isinstance(base, torch.nn.Module) else model


class AdapterDisabledTeacher:
    """The frozen teacher of a LoRA run: the trained model's encoder with its adapters disabled.

    Called like the encoder (``teacher(input_ids=..., attention_mask=...)``); every call runs in eval mode (no
    dropout) under ``no_grad`` and ``disable_adapter()``, then restores the training mode. Not a ``nn.Module``: it
    holds no weights of its own, so nothing prepares, moves or saves it. ``state_dict()`` gives the base weights
    under their plain names (the teacher cache's fingerprint), equal to the original model's."""

    def __init__(self, peft_model: torch.nn.Module, *, config: Any = None):
        self._peft = peft_model
        self._encoder = _encoder_of(peft_model.get_base_model())
        self.config = config if config is not None else self._encoder.config  # the original's, when given

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        was_training = self._encoder.training
        self._encoder.eval()
        try:
            with torch.no_grad(), self._peft.disable_adapter():
                return self._encoder(*args, **kwargs)
        finally:
            self._encoder.train(was_training)

    def parameters(self) -> Any:
        return self._encoder.parameters()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return merged_state_dict(self._peft, include_adapters=False, module=self._encoder)

    def eval(self) -> AdapterDisabledTeacher:  # already evaluated in eval mode, call by call
        return self


def merged_state_dict(peft_model: torch.nn.Module, *, include_adapters: bool = True,
                      module: torch.nn.Module | None = None) -> dict[str, torch.Tensor]:
    """The weights of ``peft_model``'s base model under their plain names (``query.base_layer.weight`` ->
    ``query.weight``; LoRA tensors and the untrained originals of ``modules_to_save`` left out), with each active
    adapter's delta (``B·A·alpha/r``) added when ``include_adapters``; computed without changing the model.
    ``module``: a submodule of the base model to take them from (names relative to it)."""
    from peft.tuners.lora import LoraLayer

    root = module if module is not None else peft_model.get_base_model()
    deltas: dict[str, torch.Tensor] = {}
    if include_adapters:
        for name, layer in root.named_modules():
            if isinstance(layer, LoraLayer):
                for adapter in layer.active_adapters:
                    if adapter in layer.lora_A:
                        delta = layer.get_delta_weight(adapter).detach()
                        deltas[name] = deltas[name] + delta if name in deltas else delta
    out: dict[str, torch.Tensor] = {}
    for key, tensor in root.state_dict().items():
        if ".lora_" in key or key.startswith("lora_") or (".original_module." in key and include_adapters):
            continue
        if ".modules_to_save." in key:
            if not include_adapters:
                continue
            head, _, tail = key.partition(".modules_to_save.")
            key = f"{head}.{tail.partition('.')[2]}"
        clean = key.replace(".original_module.", ".").replace(".base_layer.", ".")
        owner, _, leaf = clean.rpartition(".")
        if leaf == "weight" and owner in deltas:
            tensor = tensor + deltas[owner].to(tensor.dtype)
        out[clean] = tensor.detach()
    return out


def save_merged(peft_model: torch.nn.Module, output_dir: str | os.PathLike, *, keep_adapters: bool = False) -> Path:
    """Write ``peft_model`` merged into its base model's class (config + ``model.safetensors``) in ``output_dir``:
    ``AutoModel.from_pretrained`` loads it without PEFT. Adapter files there are removed unless ``keep_adapters``."""
    output_dir = Path(output_dir)
    base = peft_model.get_base_model()
    base.save_pretrained(str(output_dir), state_dict=merged_state_dict(peft_model))
    if not keep_adapters:
        for name in ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"):
            (output_dir / name).unlink(missing_ok=True)
    return output_dir

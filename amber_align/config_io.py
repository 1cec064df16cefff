"""Configs from YAML files plus ``--field value`` overrides, as ``amber-align align --config FILE`` reads them.

The ``method`` field picks the config class. Override values are parsed as YAML scalars/lists (``3`` → int,
``true`` → bool, ``[a, b]`` → list). An unknown field or a value of the wrong type is a ``ConfigError`` naming the
file, the field and what was expected; unknown fields get a "did you mean" suggestion.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from amber_align.errors import ConfigError, DataFormatError
from amber_align.trainers import get_method
from amber_align.trainers.config_utils import check_type

__all__ = ["read_config_file", "parse_overrides", "build_config", "load_config", "ConfigLoader"]


class ConfigLoader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false are bools, so ``save_strategy: no`` stays the string "no"
    (YAML 1.1 reads yes/no/on/off as bools, which breaks transformers' string-valued choices)."""


ConfigLoader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=ConfigLoader)  # noqa: S506 - a SafeLoader subclass


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a dict (errors name the file and the YAML problem)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = _load_yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"not valid UTF-8 ({exc.reason} at byte {exc.start})", path=path) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise DataFormatError(f"invalid YAML: {getattr(exc, 'problem', exc)}", path=path,
                              line=mark.line + 1 if mark else None) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DataFormatError(f"expected a mapping of config fields at the top level, got {type(data).__name__}",
                              path=path)
    return data


def parse_overrides(argv: Sequence[str]) -> dict[str, Any]:
    """``["--lr", "3e-5", "--max_steps=2", "--bf16"]`` → ``{"lr": 3e-5, "max_steps": 2, "bf16": True}``."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise ConfigError(f"expected --field value, got {arg!r}")
        key, eq, value = arg[2:].partition("=")
        key = key.replace("-", "_")
        if not eq:
            if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                value = argv[i + 1]
                i += 1
            else:
                value = "true"
        try:
            out[key] = _load_yaml(value) if value != "" else ""
        except yaml.YAMLError:
            out[key] = value
        i += 1
    return out


def _coerce_number(value: Any, annotation: Any) -> Any:
    """YAML 1.1 reads ``3e-5`` as a string and ``1`` as an int: convert them for float/int fields."""
    numeric = {float: float, int: int}
    args = typing.get_args(annotation) or (annotation,)
    for kind in (float, int):
        if kind in args and not isinstance(value, bool):
            if isinstance(value, str):
                try:
                    return numeric[kind](value)
                except ValueError:
                    return value
            if kind is float and isinstance(value, int):
                return float(value)
    return value


def build_config(values: Mapping[str, Any], *, source: str = "config", config_class: type | None = None) -> Any:
    """Build the config dataclass from ``values``, checking names and types first: ``config_class`` when given
    (e.g. ``TaskConfig``), else the alignment method's config chosen by the ``method`` field."""
    values = dict(values)
    cls = config_class if config_class is not None else get_method(values.get("method", "cao")).config_class
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"{source}: unknown field {key!r} for {cls.__name__}{hint}")
        values[key] = value = _coerce_number(value, hints.get(key))
        check_type(f"{source}: {cls.__name__}", key, value, hints.get(key, Any))
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{source}: invalid {cls.__name__}: {exc}") from None


def load_config(path: str | Path | None = None, overrides: Sequence[str] | Mapping[str, Any] = (), *,
                config_class: type | None = None) -> Any:
    """YAML file (optional) + overrides (``--field value`` strings or a mapping) → config (see ``build_config``)."""
    values = read_config_file(path) if path is not None else {}
    extra = dict(overrides) if isinstance(overrides, Mapping) else parse_overrides(overrides)
    values.update(extra)
    return build_config(values, source=str(path) if path is not None else "config", config_class=config_class)

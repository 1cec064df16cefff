"""Field checks shared by the config dataclasses: types from annotations, choices, ranges.

``TrainingArguments`` subclasses are plain dataclasses; a YAML file or a CLI override can hand any field any
value. These checks turn a wrong type into a ``ConfigError`` that names the class, the field, the expected type and
the bad value, instead of a failure somewhere inside training.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from amber_align.errors import ConfigError

__all__ = ["check_type", "validate_fields", "check_choice", "check_range"]


def _matches(value: Any, annotation: Any) -> bool:
    if annotation is Any or annotation is typing.Any:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if origin in (list, tuple, set, frozenset, Iterable, typing.Sequence):
        args = typing.get_args(annotation)
        if not isinstance(value, (list, tuple)):
            return False
        return not args or all(_matches(v, args[0]) for v in value)
    if origin in (dict, Mapping):
        return isinstance(value, Mapping)
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum):
            return isinstance(value, (annotation, str))
        if annotation is float:
            return isinstance(value, (int, float)) and not isinstance(value, bool)
        if annotation is int:
            return isinstance(value, int) and not isinstance(value, bool)
        return isinstance(value, annotation)
    if isinstance(annotation, str):  # unresolved forward reference: do not guess
        return True
    return True


def _describe(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def check_type(owner: str, name: str, value: Any, annotation: Any) -> None:
    """Raise ``ConfigError`` when ``value`` does not fit ``annotation``."""
    if not _matches(value, annotation):
        raise ConfigError(
            f"{owner}.{name}: expected {_describe(annotation)}, got {value!r} ({type(value).__name__})"
        )


def validate_fields(obj: Any, names: Iterable[str] | None = None) -> None:
    """Type-check the dataclass fields ``names`` of ``obj`` (default: all) against their annotations, and check
    the value of every field whose metadata names its ``choices`` (the one definition ``--help`` shows too)."""
    hints = typing.get_type_hints(type(obj))
    owner = type(obj).__name__
    wanted = set(names) if names is not None else None
    for f in dataclasses.fields(obj):
        if wanted is not None and f.name not in wanted:
            continue
        value = getattr(obj, f.name)
        check_type(owner, f.name, value, hints.get(f.name, Any))
        if "choices" in f.metadata and value is not None:
            check_choice(owner, f.name, value, f.metadata["choices"])


def check_choice(owner: str, name: str, value: Any, choices: Iterable[Any]) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"{owner}.{name}: expected one of {choices}, got {value!r}")


def check_range(owner: str, name: str, value: float | int | None, *, low: float | None = None,
                high: float | None = None, inclusive_low: bool = True) -> None:
    if value is None:
        return
    if low is not None and (value < low if inclusive_low else value <= low):
        op = ">=" if inclusive_low else ">"
        raise ConfigError(f"{owner}.{name}: expected a value {op} {low}, got {value!r}")
    if high is not None and value > high:
        raise ConfigError(f"{owner}.{name}: expected a value <= {high}, got {value!r}")

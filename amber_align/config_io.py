"""Configs from YAML files plus ``--field value`` overrides, parsed with ``transformers.HfArgumentParser``.

TRL's ``TrlParser`` pattern: :class:`ConfigParser` is an ``HfArgumentParser`` over one config class, so
``amber-align align --help`` lists every field with its help, type, default and allowed values (the fields'
``choices`` metadata, defined once in :mod:`amber_align.choices`), and command-line values are converted by
argparse from the field types. A YAML file (``--config``) gives the values the command line does not; what
``HfArgumentParser``'s own YAML path does not do is kept here:

- YAML 1.2 booleans: only ``true``/``false`` are booleans, so ``save_strategy: no`` stays the string ``"no"``;
- a duplicate key in a file is refused (PyYAML would keep the last one silently);
- YAML values are type-checked against the field annotations (numbers written ``3e-5``, which PyYAML reads as
  strings, are converted for float/int fields); an unknown field gets a "did you mean" suggestion.

Fields whose type argparse cannot convert (lists of source mappings, ``str | bool`` unions, mappings) take a YAML
value on the command line: ``--train_data '[{file: a.txt, src_lang: de, tgt_lang: en}]'``. Every problem is a
``ConfigError`` (or ``DataFormatError`` naming the file and line), never argparse's exit.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import difflib
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser

from amber_align.config_files import ConfigLoader, _load_yaml, read_config_file
from amber_align.errors import ConfigError
from amber_align.validation import check_type


def get_method(name: str):  # noqa: ANN201 - the trainers' registry, imported when a config is built (torch)
    from amber_align.trainers import get_method as lookup

    return lookup(name)

__all__ = ["ConfigLoader", "ConfigParser", "build_config", "load_config", "parse_overrides", "read_config_file"]


def _yaml_value(text: str) -> Any:
    """A command-line value for a field argparse cannot convert: read as YAML (``[a, b]``, ``{k: v}``, ``true``)."""
    if text == "":
        return ""
    try:
        return _load_yaml(text)
    except yaml.YAMLError:
        return text


def _argparse_friendly(annotation: Any) -> bool:
    """Whether ``HfArgumentParser`` converts this type itself: a scalar, an enum, ``Optional`` of one, a list of
    scalars, ``str | X``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        every = typing.get_args(annotation)
        args = [a for a in every if a is not type(None)]
        if len(args) == 1:
            return _argparse_friendly(args[0])
        # `str | X` (no None) is converted as X; `str | X | None` is not converted at all
        return len(every) == 2 and str in args and _argparse_friendly([a for a in args if a is not str][0])
    if origin is list:
        (item,) = typing.get_args(annotation) or (str,)
        return item in (str, int, float)
    if origin is typing.Literal:
        return True
    return annotation in (str, int, float, bool) or (isinstance(annotation, type) and issubclass(annotation, Enum))


def _type_label(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_label(a) for a in typing.get_args(annotation) if a is not type(None)) or "none"
    if origin is list:
        return f"list[{', '.join(_type_label(a) for a in typing.get_args(annotation)) or 'str'}]"
    if origin is dict:
        return "mapping"
    if origin is typing.Literal:
        return "str"
    return getattr(annotation, "__name__", str(annotation)).replace("typing.", "")


class ConfigParser(HfArgumentParser):
    """``HfArgumentParser`` over one config class, with a YAML file for the values the command line does not give.

    ``parse_config(argv)`` → the config object; ``parse_values(argv)`` → only what the command line said (typed).
    ``--config FILE`` is read first; command-line values win. Every error is a :class:`ConfigError`.
    """

    def __init__(self, config_class: type, *, prog: str | None = None, description: str | None = None,
                 config_help: str = "YAML file of config fields (command-line values win over it)", **kwargs: Any):
        self.config_class = config_class
        self._hints = typing.get_type_hints(config_class)
        kwargs.setdefault("allow_abbrev", False)  # --learning must not silently mean --learning_rate
        kwargs.setdefault("usage", f"{prog or '%(prog)s'} [--config FILE] [--field VALUE ...]")
        super().__init__(config_class, prog=prog, description=description, **kwargs)
        self._group_fields(config_help)

    def _group_fields(self, config_help: str) -> None:
        """``--help`` in groups: the config's own fields (with the method's defaults) first, then each argument
        group it includes (``amber_align.arguments``: model, parallel data, Cao loss), then the fields of the
        ``transformers`` base class (``TrainingArguments``) that the config leaves as they are."""
        cls = self.config_class
        base = next((k for k in cls.__mro__ if k.__module__.startswith("transformers")), None)

        def home(k: type) -> type:  # the config and its own bases below TrainingArguments form one group
            return cls if base is not None and k is not base and issubclass(k, base) else k

        owners: dict[str, type] = {}
        for k in reversed(cls.__mro__):  # the most derived declaration wins
            for name in vars(k).get("__annotations__", {}):
                owners[name] = home(k)
        order = [cls] + [k for k in cls.__mro__ if home(k) is k and k not in (cls, base) and k in owners.values()]
        groups = {k: self.add_argument_group(f"{k.__name__} fields") for k in order}
        if base is not None:
            groups[base] = self.add_argument_group(f"{base.__name__} fields (transformers)")
        groups[cls].add_argument("--config", default=None, metavar="FILE", help=config_help)
        for action in list(self._optionals._group_actions):
            name = action.dest
            if name == "help" or name == "config":
                continue
            target = groups.get(owners.get(name, cls), groups[cls])
            self._optionals._group_actions.remove(action)
            target._group_actions.append(action)

    @staticmethod
    def _parse_dataclass_field(parser: Any, field: dataclasses.Field) -> None:
        """``HfArgumentParser``'s conversion, plus YAML values for the types it cannot convert, and the type shown
        as the metavar in ``--help``."""
        yaml_typed = not _argparse_friendly(field.type)
        label = _type_label(field.type)
        if yaml_typed:
            field = copy.copy(field)
            field.type = str
        HfArgumentParser._parse_dataclass_field(parser, field)
        for action in parser._actions:
            if action.dest == field.name and f"--{field.name}" in action.option_strings:
                if yaml_typed:
                    action.type, action.nargs = _yaml_value, None
                if action.help and "%(" not in action.help:  # "10 %" in a help text is no format directive
                    action.help = action.help.replace("%", "%%")
                if action.choices is None and action.nargs != 0:
                    action.metavar = "|".join(dict.fromkeys(label.upper().split(" | ")))
                break

    def error(self, message: str) -> typing.NoReturn:
        raise ConfigError(f"{self.prog}: {message}")

    # ----- parsing ---------------------------------------------------------------------------------------------
    def parse_values(self, argv: Sequence[str]) -> tuple[dict[str, Any], str | None]:
        """The fields the command line gives, typed, and the ``--config`` path. Prints help and exits 0 on
        ``-h``/``--help``."""
        argv = list(argv)
        if "-h" in argv or "--help" in argv:
            self.print_help()
            sys.exit(0)
        saved = {id(a): a.default for a in self._actions}
        for action in self._actions:
            action.default = argparse.SUPPRESS  # only what was given reaches the namespace
        try:
            namespace, rest = self.parse_known_args(argv)
        finally:
            for action in self._actions:
                action.default = saved[id(action)]
        if rest:
            self._unknown(rest)
        values = vars(namespace)
        config_path = values.pop("config", None)
        for name, value in values.items():  # `--dedup_eval_files "[a, b]"`: one YAML list for a list field
            if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str) \
                    and value[0].startswith("[") and typing.get_origin(self._hints.get(name)) is list:
                values[name] = _yaml_value(value[0])
        return values, config_path

    def _unknown(self, rest: Sequence[str]) -> typing.NoReturn:
        flags = [a for a in rest if a.startswith("--")]
        known = [o for a in self._actions for o in a.option_strings if o.startswith("--")]
        if flags:
            name = flags[0].split("=")[0][2:].replace("-", "_")
            _renamed(name, {f.name for f in dataclasses.fields(self.config_class)}, self.prog)
            close = difflib.get_close_matches(name, [k[2:] for k in known if "-" not in k[2:]], n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"{self.prog}: unknown field {name!r} for {self.config_class.__name__}{hint} "
                              "(--help lists every field)")
        raise ConfigError(f"{self.prog}: unexpected argument(s) {' '.join(rest)} (expected --field value)")

    def parse_config(self, argv: Sequence[str] = (), *, values: Mapping[str, Any] | None = None) -> Any:
        """``--config`` file (if given) + ``values`` + the command line → the config (command line wins)."""
        cli, path = self.parse_values(argv)
        merged = read_config_file(path) if path else {}
        merged.update(values or {})
        merged.update(cli)
        return build_config(merged, source=path or "command line", config_class=self.config_class)


def parse_overrides(argv: Sequence[str], config_class: type | None = None) -> dict[str, Any]:
    """``["--learning_rate", "3e-5", "--max_steps=2", "--bf16"]`` → ``{"learning_rate": 3e-5, "max_steps": 2,
    "bf16": True}``: the typed values the command line gives for ``config_class``'s fields (default: the config
    of the method named by ``--method``, else Cao's)."""
    argv = list(argv)
    if config_class is None:
        config_class = get_method(_method_in(argv) or "cao").config_class
    values, path = ConfigParser(config_class, prog="overrides").parse_values(argv)
    if path is not None:
        raise ConfigError("overrides: --config is not an override; give the file to load_config")
    return values


def _method_in(argv: Sequence[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--method" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--method="):
            return arg.split("=", 1)[1]
    return None


def alignment_parser(argv: Sequence[str], *, prog: str = "amber-align align") -> ConfigParser:
    """The ``ConfigParser`` of the method that ``argv`` names (``--method``, else the ``--config`` file's
    ``method``, else ``cao``)."""
    method = _method_in(argv)
    if method is None:
        path = next((argv[i + 1] for i, a in enumerate(argv) if a == "--config" and i + 1 < len(argv)),
                    next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None))
        method = read_config_file(path, resolve_paths=False).get("method", "cao") if path else "cao"
    from amber_align.trainers import METHODS

    spec = get_method(method)
    description = (f"Align an encoder on parallel data with {spec.config_class.__name__}'s fields below (method "
                   f"{method!r}; methods: {', '.join(sorted(METHODS))}: `--method NAME --help` shows another's). "
                   "A YAML --config gives the values the command line does not.")
    return ConfigParser(spec.config_class, prog=prog, description=description)


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


#: former spellings of settings: refused with the new name (one spelling per setting)
RENAMED_FIELDS = {"continual_link_weight": "link_weight", "continual_anchor_weight": "anchor_weight",
                  "continual_pooling": "pooling", "max_sentences": "max_eval_examples",
                  "eval_sentences": "max_eval_examples"}


def _renamed(key: str, fields: Any, source: str) -> None:
    new = RENAMED_FIELDS.get(key)
    if new is not None and new in fields:
        raise ConfigError(f"{source}: {key!r} is now {new!r} (one spelling per setting, as in CaoConfig)")


def build_config(values: Mapping[str, Any], *, source: str = "config", config_class: type | None = None) -> Any:
    """Build the config dataclass from ``values``, checking names and types first: ``config_class`` when given
    (e.g. ``TaskConfig``), else the alignment method's config chosen by the ``method`` field."""
    values = dict(values)
    cls = config_class if config_class is not None else get_method(values.get("method", "cao")).config_class
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        if key not in fields:
            _renamed(key, fields, source)
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
    if isinstance(overrides, Mapping):
        extra = dict(overrides)
    else:
        argv = list(overrides)
        cls = config_class or get_method(_method_in(argv) or values.get("method", "cao")).config_class
        extra = parse_overrides(argv, cls)
    values.update(extra)
    return build_config(values, source=str(path) if path is not None else "config", config_class=config_class)

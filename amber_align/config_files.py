"""Reading YAML config files: the light half of :mod:`amber_align.config_io`.

It imports neither torch nor transformers, so the CLI can read a ``--config`` file and refuse a missing file, bad
YAML or a duplicate key at once, before the seconds of heavy imports that building a config takes (issue 23 item
9). YAML is read as YAML 1.2 for booleans (only ``true``/``false``; ``no``/``off`` stay strings, as
``save_strategy: no`` needs) and a key given twice in one mapping is an error naming both lines.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from amber_align.errors import ConfigError, DataFormatError
from amber_align.recipe_paths import resolve_recipe_paths

__all__ = ["ConfigLoader", "read_config_file"]


class ConfigLoader(yaml.SafeLoader):
    """YAML 1.2 booleans (only true/false), and a duplicate key in a mapping is an error naming both lines."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {seen[key]})", key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


ConfigLoader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=ConfigLoader)  # noqa: S506 - a SafeLoader subclass


def read_config_file(path: str | Path, *, resolve_paths: bool = True) -> dict[str, Any]:
    """Read a YAML config file into a dict (errors name the file and the YAML problem). With ``resolve_paths``,
    relative input paths that exist next to the file are read from there (:mod:`amber_align.recipe_paths`)."""
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
    return resolve_recipe_paths(data, path) if resolve_paths else data

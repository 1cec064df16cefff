"""Checks the command line makes before its heavy imports (issue 23 item 9: 35 s of torch and transformers imports,
then the error). Only what needs neither is checked here, with the messages the full parse would give; it imports
nothing heavy itself (tests/test_cli.py asserts that neither torch nor transformers is imported)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["preflight"]


def _flag_value(extra: Sequence[str], flag: str) -> str | None:
    """The value of ``--flag value`` / ``--flag=value`` in ``extra`` (the last one given), else None."""
    found = None
    for i, arg in enumerate(extra):
        if arg == flag and i + 1 < len(extra):
            found = extra[i + 1]
        elif arg.startswith(flag + "="):
            found = arg.partition("=")[2]
    return found


#: commands whose arguments are checked by :func:`preflight` before their heavy imports
_CONFIG_COMMANDS = ("align", "finetune", "evaluate")


def preflight(command: str, extra: Sequence[str]) -> None:
    """What can be checked before torch and transformers are imported (seconds; issue 23 item 9) is checked here,
    with the messages the full parse would give: the ``--config`` file exists and is a YAML mapping without
    duplicate keys, and ``finetune``/``evaluate`` name a registered ``--task`` (fine-tunable for ``finetune``).
    Field values are checked by the config dataclasses, ``TrainingArguments`` subclasses, after the imports."""
    if command not in _CONFIG_COMMANDS or "-h" in extra or "--help" in extra:
        return
    from amber_align.config_files import read_config_file
    from amber_align.errors import ConfigError

    path = _flag_value(extra, "--config")
    values = read_config_file(path, resolve_paths=False) if path else {}
    if command in ("finetune", "evaluate"):
        from amber_align.tasks.registry import get_task

        task = _flag_value(extra, "--task") or values.get("task")
        if task is None:
            raise ConfigError(f"{command}: --task is required (or task: in the --config file)")
        get_task(str(task), trainable=command == "finetune",
                 what="finetune --task" if command == "finetune" else "TaskConfig.task")

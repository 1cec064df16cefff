"""Package logger: ``accelerate.logging.get_logger`` that also works before any ``Accelerator`` exists.

accelerate's adapter refuses to log until ``PartialState`` is initialised; data loading and the CLI log before a
trainer is built, so the first call here initialises the (cheap, process-local) state.
"""

from __future__ import annotations

import logging

from accelerate.logging import MultiProcessAdapter
from accelerate.logging import get_logger as _accelerate_get_logger
from accelerate.state import PartialState

__all__ = ["get_logger"]


class _StateInitialisingAdapter(MultiProcessAdapter):
    def log(self, level, msg, *args, **kwargs):  # noqa: D102 - same contract as the parent
        if not PartialState._shared_state:
            PartialState()
        super().log(level, msg, *args, **kwargs)


def get_logger(name: str, log_level: str | None = None) -> logging.LoggerAdapter:
    """Return the package logger ``name``; messages go to the main process only unless ``main_process_only=False``."""
    adapter = _accelerate_get_logger(name, log_level)
    return _StateInitialisingAdapter(adapter.logger, {})

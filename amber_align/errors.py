"""Error types raised for bad input.

Every user-facing failure in the package raises one of these, with a message that names the file, line or field
and says what was expected, so that a bad corpus or config never surfaces as an ``IndexError`` deep inside torch.
They subclass ``ValueError`` (or ``ImportError``) so that generic handlers keep working.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "AmberAlignError",
    "DataFormatError",
    "AlignmentIndexError",
    "ConfigError",
    "MissingDependencyError",
    "TokenizerMismatchError",
    "NonFiniteLossError",
    "TrainingInterruptedError",
]


class AmberAlignError(Exception):
    """Base class of every error the package raises on purpose."""


class DataFormatError(AmberAlignError, ValueError):
    """A data file (or dataset) is not in the expected format.

    ``path`` and ``line`` (1-based) are kept as attributes and prefixed to the message as ``path:line: ...``.
    """

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.path = str(path) if path is not None else None
        self.line = line
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        super().__init__(f"{where}{message}")


class AlignmentIndexError(DataFormatError):
    """A word-alignment link points outside its sentence (or is negative / not a number)."""


class ConfigError(AmberAlignError, ValueError):
    """A configuration field has an unknown name, a wrong type or an invalid value."""


class TokenizerMismatchError(AmberAlignError, ValueError):
    """The tokenizer does not fit the model (e.g. it produces ids beyond the embedding matrix)."""


class MissingDependencyError(AmberAlignError, ImportError):
    """An optional dependency is needed; the message names the pip extra that provides it."""


class NonFiniteLossError(AmberAlignError, FloatingPointError):
    """A loss part became NaN or infinite: training stopped before that update, after saving the last good state.

    ``step`` (1-based, the step that failed), ``parts`` (``{name: value}`` of the non-finite parts) and
    ``checkpoint`` (the folder holding the last good state, or None when no step had completed) are attributes.
    """

    def __init__(self, message: str, *, step: int, parts: dict[str, float], checkpoint: str | None):
        self.step, self.parts, self.checkpoint = step, parts, checkpoint
        super().__init__(message)


class TrainingInterruptedError(AmberAlignError, RuntimeError):
    """Training stopped before its last step (e.g. SIGTERM with ``enable_jit_checkpoint``): no final model was
    written; the message names the checkpoint to resume from."""

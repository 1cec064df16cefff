"""One place that appends a benchmark's table to ``benchmarks/RESULTS.md`` (atomically, keeping every earlier
table), shared by the scripts in ``benchmarks/``."""

from __future__ import annotations

from pathlib import Path

from amber_align.io_utils import atomic_write_text

__all__ = ["RESULTS", "record"]

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def record(table: str, path: Path = RESULTS) -> None:
    """Append ``table`` (markdown) to ``path`` after one blank line."""
    existing = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n\n"
    atomic_write_text(path, existing.rstrip("\n") + "\n\n" + table)

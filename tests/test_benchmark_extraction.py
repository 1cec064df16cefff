"""CI smoke run of the extraction benchmark: the script runs end to end and its table says the batched aligner's
links are identical to the one-pair loop's (the real figures come from a GPU; see benchmarks/RESULTS.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_extraction_benchmark_smoke_run():
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "extraction_throughput.py"), "--smoke",
                             "--no_record"], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "| one-pair loop (SimAlign-style) | 8 |" in out and "| WordAligner batch 8 | 24 |" in out
    assert "links identical to the loop's on 100.0 % of 8 pairs" in out

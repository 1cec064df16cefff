"""CI smoke run of benchmarks/streaming_memory.py: both data paths train on a small synthetic corpus and report
their peak memory (the real table, 10k to 1M pairs, is in benchmarks/RESULTS.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # 25 s: the benchmark end to end; the streaming behaviour itself is in test_streaming.py
def test_streaming_memory_smoke_run():
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "streaming_memory.py"), "--smoke",
                             "--no_record"], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert {r["path"] for r in rows} == {"streaming", "map-style"}
    assert all(r["steps"] == 3 and r["peak_rss_mib"] > 0 for r in rows)
    assert "| streaming | 2000 |" in result.stdout and "| map-style | 2000 |" in result.stdout

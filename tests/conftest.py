"""Shared test fixtures: where the research data lives, and skips when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SHARED_DATA = Path(os.environ.get("AMBER_ALIGN_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session", autouse=True)
def _offline_model_cache(tmp_path_factory):
    """Converted offline models (offline:e5-small) go to one cache per test session, not the user's ~/.cache; the
    first test that needs e5-small converts it (~5 s), the others reuse it."""
    if "AMBER_ALIGN_CACHE" not in os.environ:
        os.environ["AMBER_ALIGN_CACHE"] = str(tmp_path_factory.mktemp("amber_align_cache"))
    yield


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data (research-only sets); tests that need it skip with a reason when it is missing."""
    if not (SHARED_DATA / "README.md").exists():
        pytest.skip(f"research data not found at {SHARED_DATA} (set AMBER_ALIGN_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES

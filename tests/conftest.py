"""Shared test fixtures: where the real MR data lives, and the phantom study cache for tests."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# autosaves (XDG_DATA_HOME) and settings (XDG_CONFIG_HOME) of tests never touch the user's folders
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="discviewer-test-data-")

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("DISCVIEWER_REAL_DATA", REPO.parent / "shared" / "data" / "real"))


def pytest_configure(config):
    # CI sets DISCVIEWER_REQUIRE_REAL_DATA=1: a missing data folder must fail, never silently skip.
    if os.environ.get("DISCVIEWER_REQUIRE_REAL_DATA") == "1" and not (REAL_DATA / "SOURCES.md").exists():
        raise pytest.UsageError(f"real test data required but not found at {REAL_DATA} "
                                "(set DISCVIEWER_REAL_DATA to its folder)")


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not (REAL_DATA / "SOURCES.md").exists():
        pytest.skip(f"real MR data not found at {REAL_DATA} (set DISCVIEWER_REAL_DATA)")
    return REAL_DATA


@pytest.fixture
def affine_factory():
    from tests.synthetic import make_affine

    return make_affine

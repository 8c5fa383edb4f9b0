from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The project's real reference data (PALMARES_SHARED_DATA, else ../shared/data beside the repo)."""
    path = Path(
        os.environ.get("PALMARES_SHARED_DATA") or Path(__file__).resolve().parents[4] / "shared" / "data"
    )
    if not path.is_dir():
        pytest.fail(f"Reference data not found at {path}; set PALMARES_SHARED_DATA.")
    return path

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The project's real reference data (PALMARES_SHARED_DATA, else ../shared/data beside the repo)."""
    from palmares_desktop.core.paths import shared_data_dir

    path = shared_data_dir()
    if not path.is_dir():
        pytest.fail(f"Reference data not found at {path}; set PALMARES_SHARED_DATA.")
    return path

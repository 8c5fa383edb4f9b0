"""Shared fixtures: the real reference data and an isolated user home for every test."""

from __future__ import annotations

from pathlib import Path

import pytest

from palmares_desktop.core.paths import shared_data_dir


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Never touch the real user's data, logs, config or napari settings."""
    home = tmp_path_factory.mktemp("palmares_home")
    monkeypatch.setenv("PALMARES_HOME", str(home))
    monkeypatch.setenv("NAPARI_CONFIG", str(home / "napari.yaml"))
    return home


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` (override with PALMARES_SHARED_DATA). Tests using it fail loudly if absent."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.fail(f"Reference data not found at {path}; set PALMARES_SHARED_DATA.")
    return path


@pytest.fixture
def store(tmp_path):
    """A fresh real store with a system reader at site IT03."""
    from palmares_desktop.core.store import Store

    s = Store.open(tmp_path / "store")
    s.use_system_reader("test-suite", site_code="IT03")
    yield s
    s.close()

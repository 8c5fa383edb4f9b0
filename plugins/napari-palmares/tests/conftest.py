"""Fixtures: the real reference data, the plugin's manifest registered with npe2 (CI runs the tests
with the plugin's src on PYTHONPATH, not pip-installed), an isolated home, and one demo store."""

from __future__ import annotations

from pathlib import Path

import npe2
import pytest

MANIFEST = Path(__file__).resolve().parents[1] / "src" / "napari_palmares" / "napari.yaml"
PLUGIN = "napari-palmares"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The project's real reference data (PALMARES_SHARED_DATA, else ../shared/data beside the repo)."""
    from palmares_desktop.core.paths import shared_data_dir

    path = shared_data_dir()
    if not path.is_dir():
        pytest.fail(f"Reference data not found at {path}; set PALMARES_SHARED_DATA.")
    return path


@pytest.fixture(scope="session", autouse=True)
def registered_manifest() -> npe2.PluginManifest:
    """napari-palmares known to npe2 from its napari.yaml (already known when pip-installed)."""
    manager = npe2.PluginManager.instance()
    try:
        return manager.get_manifest(PLUGIN)
    except KeyError:
        manager.register(npe2.PluginManifest.from_file(MANIFEST))
    return manager.get_manifest(PLUGIN)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Never touch the real user's data, logs, config or napari settings; no subject chosen."""
    home = tmp_path_factory.mktemp("palmares_home")
    monkeypatch.setenv("PALMARES_HOME", str(home))
    monkeypatch.setenv("NAPARI_CONFIG", str(home / "napari.yaml"))
    monkeypatch.delenv("PALMARES_SUBJECT", raising=False)
    return home


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory) -> Path:
    """A one-subject demo store built through the workstation's real import path, once per session
    (about 25 s on 2 cores)."""
    from palmares_desktop.core.demo.demo_store import build_demo_store

    return build_demo_store(tmp_path_factory.mktemp("napari_demo") / "store", n_subjects=1)


@pytest.fixture(scope="session")
def demo_subject(demo_store):
    """The demo manifest's first subject: its code, SUV factor and planted lesions."""
    from palmares_desktop.core.demo.demo_store import load_manifest

    return load_manifest(demo_store / "demo-source").subjects[0]

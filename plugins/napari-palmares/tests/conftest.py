"""Fixtures: the real reference data, the plugin's manifest registered with npe2 (CI runs the tests
with the plugin's src on PYTHONPATH, not pip-installed), an isolated home, and one demo store."""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

import npe2
import pytest

MANIFEST = Path(__file__).resolve().parents[1] / "src" / "napari_palmares" / "napari.yaml"
PLUGIN = "napari-palmares"


def _survive_borrowed_singletons() -> None:
    """PySide6 6.12.0 on CPython 3.11 drops one reference to None on every call of a void Qt method
    and one to True on every signal emit (shiboken treats them as immortal, as they are only from
    Python 3.12). A napari session makes enough such calls to bring None's count to zero: "Fatal
    Python error: none_dealloc" aborts the run, mid-test or at exit. Where the leak is measured here,
    add references to None, True and False that are never given back. The real fix is outside this
    plugin: a PySide6 without the bug, or Python >= 3.12 (see the plugin's README)."""
    if (
        sys.version_info >= (3, 12)
        or sys.implementation.name != "cpython"
        or hasattr(sys, "gettotalrefcount")
    ):
        return
    from qtpy.QtCore import QObject, Signal

    class Probe(QObject):
        ping = Signal()

    probe = Probe()
    before = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(100):
        probe.setObjectName("probe")
        probe.ping.emit()
    lost_none, lost_true = before[0] - sys.getrefcount(None), before[1] - sys.getrefcount(True)
    for singleton, lost in ((None, lost_none), (True, lost_true), (False, lost_true)):
        if lost >= 100:  # ob_refcnt is the first field of every object in a release build of CPython 3.11
            ctypes.c_ssize_t.from_address(id(singleton)).value += 100_000_000


_survive_borrowed_singletons()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The project's real reference data (PALMARES_SHARED_DATA, else ../shared/data beside the repo)."""
    path = Path(
        os.environ.get("PALMARES_SHARED_DATA") or Path(__file__).resolve().parents[4] / "shared" / "data"
    )
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

"""GUI test fixtures: the real demo store (built once per session) and the real main window.

Teardown is explicit (PLATFORM.md): background threads joined, napari layers cleared, QtViewers
closed and deleted, events processed, before pytest-qt's late cleanup can see leaked viewers.
"""

from __future__ import annotations

import json

import pytest

from palmares_desktop.core.profile import ReaderProfile


@pytest.fixture(autouse=True)
def settings_dir(tmp_path_factory):
    """QSettings (window geometry, recent stores) go to a fresh INI folder, never the user's own."""
    from qtpy.QtCore import QSettings

    folder = tmp_path_factory.mktemp("qsettings")
    previous = QSettings.defaultFormat()
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder))
    yield folder
    QSettings.setDefaultFormat(previous)


@pytest.fixture(scope="session")
def demo_store_dir(tmp_path_factory):
    """The demo study imported through the real import path, built once for the whole session."""
    from palmares_desktop.core.demo.demo_store import build_demo_store

    root = tmp_path_factory.mktemp("gui_demo") / "store"
    return build_demo_store(root)


@pytest.fixture
def radiologist() -> ReaderProfile:
    return ReaderProfile("Test Radiologist", "radiologist", "IT03")


def _close_window(window, qtbot) -> None:
    window.shutdown()
    window.close()
    window.deleteLater()
    qtbot.wait(50)


@pytest.fixture
def close_window():
    """Explicit teardown of a MainWindow a test made itself: `close_window(window, qtbot)`."""
    return _close_window


@pytest.fixture
def open_window(qtbot):
    """`open_window(root, reader, size)`: a shown real MainWindow on the store at `root` (made when
    new); every window it opened is torn down explicitly after the test, with its store."""
    from palmares_desktop.core.store import Store
    from palmares_desktop.gui.main_window import MainWindow

    opened = []

    def open_(root, reader, size=(1400, 900)):
        store = Store.open(root, create=not (root / Store.DB_NAME).exists())
        window = MainWindow(store, reader)
        window.resize(*size)
        window.show()
        qtbot.waitExposed(window)
        opened.append((window, store))
        return window

    yield open_
    for window, store in reversed(opened):
        _close_window(window, qtbot)
        store.close()


@pytest.fixture
def main_window(open_window, demo_store_dir, radiologist):
    """The real MainWindow on the shared demo store, with a reader set."""
    return open_window(demo_store_dir, radiologist)


@pytest.fixture
def copy_window(open_window, demo_store_dir, tmp_path, radiologist):
    """The real MainWindow on a copy of the demo store, for tests that write (nothing they save may
    reach the other tests' shared store)."""
    import shutil

    shutil.copytree(demo_store_dir, tmp_path / "store")
    return open_window(tmp_path / "store", radiologist)


@pytest.fixture
def new_store_window(open_window, tmp_path, radiologist):
    """The real MainWindow on a new, empty store (for import tests)."""
    return open_window(tmp_path / "store", radiologist)


def series_geometry(row: dict) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """(size xyz, spacing xyz) recorded in a series row."""
    return tuple(json.loads(row["size_json"])), tuple(json.loads(row["spacing_json"]))

"""Desktop conventions: the window reopens where it was, and File → Open recent store is bounded.

Settings are redirected to a temporary INI folder by the autouse `settings_dir` fixture.
"""

from __future__ import annotations

import shutil

import pytest

from palmares_desktop.core.store import Store
from palmares_desktop.gui.settings import MAX_RECENT_STORES, recent_stores

pytestmark = pytest.mark.gui


def make_stores(root, count: int) -> list:
    """`count` real (empty) stores: migrations run, ready to open."""
    paths = []
    for number in range(count):
        path = root / f"store-{number:02d}"
        Store.open(path, create=True).close()
        paths.append(path.resolve())
    return paths


def recent_menu_paths(window) -> list[str]:
    """Folder paths shown in File → Open recent store (mnemonic and separator/clear items left out)."""
    texts = [a.text() for a in window.recent_menu.actions() if not a.isSeparator()]
    return [text.split(" ", 1)[1].replace("&&", "&") for text in texts if text != "&Clear list"]


def test_recent_stores_are_remembered_newest_first_and_bounded(
    main_window, qtbot, tmp_path, demo_store_dir, settings_dir
):
    assert recent_stores() == [demo_store_dir.resolve()]
    stores = make_stores(tmp_path, MAX_RECENT_STORES + 2)
    for path in stores:
        assert main_window.open_store(path)
    expected = list(reversed(stores))[:MAX_RECENT_STORES]
    assert recent_stores() == expected  # the demo store and the oldest one dropped out
    assert recent_menu_paths(main_window) == [str(p) for p in expected]
    assert list(settings_dir.rglob("*.ini")), "settings were not written to the redirected folder"

    # Choosing an entry opens that store and moves it to the top, without duplicates.
    third = next(a for a in main_window.recent_menu.actions() if a.text().startswith("&3 "))
    third.trigger()
    assert main_window.store.root.resolve() == expected[2]
    assert recent_stores() == [expected[2], *expected[:2], *expected[3:]]
    assert len(set(recent_stores())) == MAX_RECENT_STORES


def test_a_recent_store_that_is_gone_leaves_the_list_with_a_message(
    main_window, qtbot, tmp_path, monkeypatch
):
    from qtpy.QtWidgets import QMessageBox

    gone, kept = make_stores(tmp_path, 2)
    main_window.open_store(gone)
    main_window.open_store(kept)
    shutil.rmtree(gone)
    # Qt's modal box is replaced by a recorder: a polling closer could race other tests' timers.
    seen: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda _parent, _title, text, *rest: seen.append(text))
    assert not main_window.open_recent_store(gone)
    assert seen and "no longer exists" in seen[0]
    assert gone not in recent_stores()
    assert main_window.store.root.resolve() == kept  # still on the store that was open
    assert str(gone) not in recent_menu_paths(main_window)

    clear = next(a for a in main_window.recent_menu.actions() if a.text() == "&Clear list")
    clear.trigger()
    assert recent_stores() == []
    assert recent_menu_paths(main_window) == []


def test_window_geometry_is_restored_at_next_start(qtbot, demo_store_dir, radiologist, close_window):
    from palmares_desktop.gui.main_window import MainWindow

    store = Store.open(demo_store_dir, create=False)
    try:
        first = MainWindow(store, radiologist)
        first.show()
        qtbot.waitExposed(first)
        first.resize(1111, 777)
        qtbot.wait(50)
        close_window(first, qtbot)  # closing saves the geometry
        second = MainWindow(store, radiologist)
        second.show()
        qtbot.waitExposed(second)
        assert (second.width(), second.height()) == (1111, 777)
        close_window(second, qtbot)
    finally:
        store.close()


def test_software_opengl_is_a_saved_setting_the_next_start_applies(main_window, settings_dir, monkeypatch):
    """View → Software OpenGL is remembered; at start the flag, PALMARES_SOFTWARE_GL or the setting
    select Mesa's llvmpipe (Linux) or Qt's opengl32sw (Windows) before Qt starts."""
    from qtpy.QtWidgets import QMessageBox

    from palmares_desktop.gui.settings import software_opengl, software_opengl_wanted, use_software_opengl

    monkeypatch.delenv("PALMARES_SOFTWARE_GL", raising=False)
    said = []
    monkeypatch.setattr(QMessageBox, "information", lambda *args: said.append(args[2]))
    assert not software_opengl() and not software_opengl_wanted()
    main_window.software_gl_action.trigger()  # the reader ticks it
    assert main_window.software_gl_action.isChecked() and software_opengl()
    assert software_opengl_wanted() and "next start" in said[-1]
    monkeypatch.setenv("PALMARES_SOFTWARE_GL", "0")  # the environment may refuse it for one run
    assert not software_opengl_wanted() and software_opengl_wanted(flag=True)
    main_window.software_gl_action.trigger()  # and unticks it
    monkeypatch.setenv("PALMARES_SOFTWARE_GL", "1")
    assert not software_opengl() and software_opengl_wanted()
    env: dict[str, str] = {}
    use_software_opengl(env)
    assert env == {"LIBGL_ALWAYS_SOFTWARE": "1", "QT_OPENGL": "software"}
    # Help → About names the OpenGL that draws, for support: Mesa's llvmpipe under Xvfb.
    assert "llvmpipe" in main_window.ct_pet.viewer.opengl_renderer()

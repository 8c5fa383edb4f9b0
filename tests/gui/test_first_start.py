"""First start with --demo: the window is usable at once and the demo subjects arrive in the worklist
one by one while the study is built in the background (issue 9, first start).

Runs under Xvfb; the real builder writes and imports the real demo study into a new store.
"""

from __future__ import annotations

import pytest

from palmares_desktop.core.demo.demo_store import BUILT_SETTING, subject_ready
from palmares_desktop.gui.app import build_demo_in_background

pytestmark = pytest.mark.gui

BUILD_TIMEOUT_MS = 240_000  # three subjects on a busy 2-core machine


def test_the_window_is_usable_while_the_demo_builds_and_subjects_arrive_one_by_one(new_store_window, qtbot):
    window = new_store_window
    assert window.worklist.visible_codes() == []
    build = build_demo_in_background(window, window.store.root)
    assert "Building the demo study" in window.statusBar().currentMessage()
    arrived: list[int] = []  # worklist length each time the builder says one more subject is in
    build.progress.connect(
        lambda step: arrived.append(len(window.worklist.visible_codes())) if subject_ready(step) else None
    )

    # The first subject is on the worklist (and opens in the CT/PET room) before the whole study is
    # built; the event loop keeps running meanwhile.
    qtbot.waitUntil(lambda: len(window.worklist.visible_codes()) >= 1, timeout=BUILD_TIMEOUT_MS)
    first = window.worklist.visible_codes()[0]
    with qtbot.waitSignal(window.ct_pet.subject_loaded, timeout=BUILD_TIMEOUT_MS):
        window.open_subject(first)
    assert window.ct_pet.loaded.subject.code == first and window.ct_pet.loaded.masks

    with qtbot.waitSignal(build.finished, timeout=BUILD_TIMEOUT_MS):
        pass
    qtbot.waitUntil(lambda: len(window.worklist.visible_codes()) == 3, timeout=10_000)
    assert window.statusBar().currentMessage() == "The demo study is ready."
    assert window.store.setting(BUILT_SETTING)
    assert sorted(window.worklist.visible_codes()) == ["IT99-0001", "IT99-0002", "IT99-0003"]
    # One by one, each as soon as its CT, PET and lesions are in; the worklist refreshes again when its
    # H&E slide follows.
    assert arrived == [1, 1, 2, 2, 3, 3]

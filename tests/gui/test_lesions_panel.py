"""The CT/PET room's lesions panel on the real window and a private copy of the real demo store:
one row per lesion with core's numbers, and add / rename / describe / delete / undo through core,
checked in the store. Only Qt's own dialogs are answered by the test (QInputDialog, QMessageBox).

Runs under Xvfb (pytest-xvfb); napari draws with Mesa llvmpipe.
"""

from __future__ import annotations

from dataclasses import asdict

import pytest
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication, QInputDialog, QMessageBox

from palmares_desktop.core.lesions import (
    LesionError,
    add_lesion,
    bone_character_text,
    lesion_numbers,
    recist_check,
)
from palmares_desktop.core.model import Subject
from palmares_desktop.core.store import records
from palmares_desktop.gui.lesions_panel import NO_BREACH, NewLesionDialog

pytestmark = pytest.mark.gui

LOAD_TIMEOUT_MS = 60_000
NAME, SITE, RECIST, SUV_MAX, MTV, DIAMETER, OUTLINES = range(7)


def open_subject(window, qtbot) -> Subject:
    """Open the first demo subject with CT and PET from the worklist; wait for the panel's numbers."""
    code = next(r["code"] for r in window.store.worklist() if {"CT", "PT"} <= set(r["modalities"]))
    with qtbot.waitSignal(window.ct_pet.subject_loaded, timeout=LOAD_TIMEOUT_MS):
        window.worklist.table.doubleClicked.emit(
            window.worklist.proxy.index(window.worklist.visible_codes().index(code), 0)
        )
    qtbot.waitUntil(lambda: not window.ct_pet.lesion_panel.measuring(), timeout=LOAD_TIMEOUT_MS)
    return window.store.subject_by_code(code)


def column(panel, index: int) -> list[str]:
    return [panel.table.item(row, index).text() for row in range(panel.table.rowCount())]


def select(panel, name: str) -> None:
    panel.table.selectRow(column(panel, NAME).index(name))


def answer_new_lesion(name: str, site: str | None) -> None:
    """Fill and accept the Add… dialog once it is up (it runs its own event loop)."""

    def fill() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, NewLesionDialog):
            QTimer.singleShot(20, fill)
            return
        dialog.name.setText(name)
        dialog.site.setCurrentIndex(dialog.site.findData(site))
        dialog.accept()

    QTimer.singleShot(0, fill)


def add_through_panel(room, qtbot, name: str, site: str | None) -> None:
    answer_new_lesion(name, site)
    with qtbot.waitSignal(room.subject_loaded, timeout=LOAD_TIMEOUT_MS):  # `changed`: the room reloads
        room.lesion_panel.add_button.click()


def set_status(room, qtbot, name: str, status: str) -> None:
    panel = room.lesion_panel
    select(panel, name)
    panel.status.setCurrentIndex(panel.status.findData(status))
    with qtbot.waitSignal(room.subject_loaded, timeout=LOAD_TIMEOUT_MS):
        panel.apply_button.click()


def test_lesions_panel_lists_lesions_with_core_numbers_and_edits_them_in_the_store(
    copy_window, qtbot, monkeypatch
):
    window, store = copy_window, copy_window.store
    subject = open_subject(window, qtbot)
    room = window.ct_pet
    panel = room.lesion_panel
    room.tools.setCurrentIndex([room.tools.tabText(i) for i in range(room.tools.count())].index("Lesions"))

    # One row per lesion (the room's table has one per segmentation), numbers as core computes them.
    lesions = records.lesions_of_subject(store, subject.id)
    numbers = lesion_numbers(store, subject.code)
    assert column(panel, NAME) == [x.name for x in lesions]
    assert len(lesions) >= 4 and room.lesions.rowCount() == 2 * len(lesions)  # demo: CT + PET each
    for row, lesion in enumerate(lesions):
        expected = numbers[lesion.id]
        assert panel.table.item(row, SUV_MAX).text() == f"{expected['suv_max']:.2f}"
        assert panel.table.item(row, MTV).text() == f"{expected['mtv_ml']:.2f}"
        node = lesion.organ == "lymph node"
        key, word = ("recist_short_axis_mm", "SA") if node else ("recist_long_axis_mm", "LD")
        assert panel.table.item(row, DIAMETER).text() == f"{word} {expected[key]:.1f}"
        assert panel.table.item(row, OUTLINES).text() == "CT\u00a0v1, PET\u00a0v1"
        assert panel.table.item(row, SITE).text() == lesion.organ
    assert panel.recist.text().startswith(NO_BREACH)

    # Selecting a lesion selects its first segmentation in the room (the views centre on it).
    with qtbot.waitSignal(panel.lesion_selected) as selected:
        select(panel, "liver metastasis")
    assert selected.args == ["liver metastasis"]
    assert room.selected_mask().segmentation.lesion_name == "liver metastasis"

    # Add a lesion with a site: listed, selected, stored; no outline, so no numbers.
    add_through_panel(room, qtbot, "Liver segment 7", "liver")
    added = records.lesion_named(store, subject.id, "Liver segment 7")
    assert added is not None and added.organ == "liver"
    row = column(panel, NAME).index("Liver segment 7")
    assert panel.selected_id() == added.id
    assert [panel.table.item(row, c).text() for c in (SITE, SUV_MAX, MTV, DIAMETER, OUTLINES)] == [
        "liver",
        "",
        "",
        "",
        "",
    ]

    # A duplicate name: core's sentence, and nothing changes.
    with pytest.raises(LesionError) as refused:
        add_lesion(store, subject.code, "liver metastasis", "liver")
    before = records.lesions_of_subject(store, subject.id)
    changes = []
    panel.changed.connect(lambda: changes.append(1))
    answer_new_lesion("liver metastasis", "liver")
    panel.add_button.click()
    assert panel.message.text() == str(refused.value)
    assert records.lesions_of_subject(store, subject.id) == before and not changes
    assert column(panel, NAME) == [x.name for x in before]

    # Rename a lesion with outlines: stored, and the room's layers follow after the reload.
    monkeypatch.setattr(QInputDialog, "getText", lambda *args, **kwargs: ("Left breast primary", True))
    select(panel, "breast primary")
    breast_id = panel.selected_id()
    with qtbot.waitSignal(room.subject_loaded, timeout=LOAD_TIMEOUT_MS):
        panel.rename_button.click()
    assert records.lesion_row(store, breast_id).name == "Left breast primary"
    assert "Left breast primary" in column(panel, NAME) and "breast primary" not in column(panel, NAME)
    assert room.viewer.layer("Left breast primary (CT v1)") is not None
    assert panel.selected_id() == breast_id  # the reader stays on the lesion they renamed

    # RECIST: six targets (two more lesions first), then core's sentences under the table.
    add_through_panel(room, qtbot, "Right lung nodule", "lung")
    add_through_panel(room, qtbot, "Rib 5 metastasis", "bone")
    targets = [n for n in column(panel, NAME) if n != "Rib 5 metastasis"]
    assert len(targets) == 6
    for name in targets:
        set_status(room, qtbot, name, "target")
    qtbot.waitUntil(lambda: not panel.measuring(), timeout=LOAD_TIMEOUT_MS)
    rows = records.lesions_of_subject(store, subject.id)
    assert sum(x.recist_status == "target" for x in rows) == 6
    assert column(panel, RECIST).count("target") == 6
    ct = records.series_of_subject_oldest_first(store, subject.id, "CT")[0]
    measured = [{**numbers.get(x.id, {}), **asdict(x)} for x in rows]
    breaches = [n.text for n in recist_check(measured, ct.grid.spacing[2]) if n.level == "breach"]
    assert any(text.startswith("6 target lesions: RECIST 1.1 allows at most 5") for text in breaches)
    assert any("vertebral metastasis is a bone lesion without a soft-tissue component" in t for t in breaches)
    for text in breaches:
        assert text in panel.recist.text()

    # Bone character with a soft-tissue component: core's words stored, that breach gone.
    select(panel, "vertebral metastasis")
    panel.bone.setCurrentIndex(panel.bone.findData("blastic"))
    panel.soft_tissue.setChecked(True)
    panel.notes.setText("T12, posterior elements")
    with qtbot.waitSignal(room.subject_loaded, timeout=LOAD_TIMEOUT_MS):
        panel.apply_button.click()
    vertebra = records.lesion_named(store, subject.id, "vertebral metastasis")
    assert vertebra.bone_character == bone_character_text("blastic", True)
    assert vertebra.notes == "T12, posterior elements" and vertebra.recist_status == "target"
    assert "vertebral metastasis is a bone lesion" not in panel.recist.text()
    assert "6 target lesions" in panel.recist.text()

    # Delete asks first: No keeps the lesion, Yes marks it deleted in the store.
    select(panel, "Rib 5 metastasis")
    rib_id = panel.selected_id()
    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kwargs: QMessageBox.StandardButton.No)
    panel.delete_button.click()
    assert "Rib 5 metastasis" in column(panel, NAME) and not panel.undo_button.isEnabled()
    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kwargs: QMessageBox.StandardButton.Yes)
    with qtbot.waitSignal(room.subject_loaded, timeout=LOAD_TIMEOUT_MS):
        panel.delete_button.click()
    assert "Rib 5 metastasis" not in column(panel, NAME)
    assert records.lesion_row(store, rib_id).deleted_at is not None
    assert records.lesion_named(store, subject.id, "Rib 5 metastasis") is None
    assert panel.undo_button.isEnabled()

    # Undo delete brings it back, in the store and in the panel.
    with qtbot.waitSignal(room.subject_loaded, timeout=LOAD_TIMEOUT_MS):
        panel.undo_button.click()
    assert records.lesion_row(store, rib_id).deleted_at is None
    assert "Rib 5 metastasis" in column(panel, NAME) and panel.selected_id() == rib_id
    assert not panel.undo_button.isEnabled()
    actions = [r["action"] for r in store.rows("audit_log", "table_name = 'lesions'", order_by="seq")]
    assert actions.count("delete") == 1 and actions.count("restore") == 1 and "rename" in actions


def test_without_a_reader_the_panel_refuses_in_words_and_the_window_stays_short(
    open_window, demo_store_dir, qtbot
):
    window = open_window(demo_store_dir, None)  # browsing without a reader: nothing may be written
    subject = open_subject(window, qtbot)
    room = window.ct_pet
    panel = room.lesion_panel
    before = records.lesions_of_subject(window.store, subject.id)
    answer_new_lesion("Liver segment 7", "liver")
    panel.add_button.click()
    assert panel.message.text().startswith("No reader is selected")
    assert "Traceback" not in panel.message.text()
    assert records.lesions_of_subject(window.store, subject.id) == before
    # Whichever tool tab is shown, the window fits a 768-pixel screen (the Lesions page scrolls).
    for index in range(room.tools.count()):
        room.tools.setCurrentIndex(index)
        assert window.minimumSizeHint().height() <= 700, room.tools.tabText(index)

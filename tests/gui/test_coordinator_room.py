"""The coordinating centre's room on a real central store: merge the three demo sites' packages with
progress, see packages, completeness and the diverged lesion side by side, keep one version, write
the analysis table."""

from __future__ import annotations

import os

import pyarrow.parquet as pq
import pytest

from palmares_desktop.core.profile import ReaderProfile
from palmares_desktop.core.store import Store, records
from tests.core.exchange_fixture import centre_copy, exchange_world

pytestmark = [pytest.mark.gui, pytest.mark.slow]
TIMEOUT_MS = 300_000


def test_merge_completeness_conflict_and_table_in_the_coordinator_room(qtbot, tmp_path_factory, close_window):
    from palmares_desktop.gui.main_window import MainWindow

    world = exchange_world(tmp_path_factory)
    root = centre_copy(world, tmp_path_factory.mktemp("room") / "centre")
    store = Store.open(root)
    window = MainWindow(store, ReaderProfile("Dr Coordinator", "coordinator", "IT00"))
    window.show()
    try:
        room = window.show_coordinator_room()
        assert room.packages.rowCount() == 0 and "0 packages" in room.status.text()
        names = ("IT99", "IT01", "IT01a", "IT01b", "IT02")
        with qtbot.waitSignal(room.merged, timeout=TIMEOUT_MS) as got:
            room.merge([world.packages[n] for n in names])
        assert [o.status for o in got.args[0].outcomes] == ["merged"] * 5
        assert room.progress.value() == 5
        assert room.packages.rowCount() == 5 and room.completeness.rowCount() == 5
        sites = sorted({room.completeness.item(r, 0).text() for r in range(5)})
        assert sites == ["IT01", "IT02", "IT99"]
        assert room.tabs.tabText(2) == "Conflicts (1)"
        shown = {room.versions.item(r, 0).text(): room.versions.item(r, 1).text() + "|" + room.versions.item(r, 2).text()
                 for r in range(room.versions.rowCount())}  # fmt: skip
        assert set(shown["recist_status"].split("|")) == {"target", "non-target"}
        (conflict,) = room.conflict_list
        room.tabs.setCurrentIndex(2)
        qtbot.wait(100)
        shots = os.environ.get("PALMARES_SCREENSHOT_DIR")
        if shots:
            room.grab().save(f"{shots}/coordinator_room.png")
        # Either version can be looked at in its room: the lesion's subject opens in the CT/PET room
        # with the lesion selected (at the centre its rows are readable though pixels do not travel).
        room.open_in_room.click()
        qtbot.waitUntil(
            lambda: window.ct_pet.lesion_panel.selected_id() == conflict.row_id, timeout=TIMEOUT_MS
        )
        assert window.tabs.currentWidget() is window.ct_pet
        assert window.current_subject.id == conflict.version_a["subject_id"]
        assert "opened in the CT/PET room" in room.status.text()
        room.keep_b.click()
        assert room.tabs.tabText(2) == "Conflicts (0)" and "resolved: version B" in room.status.text()
        assert records.lesion_row(store, conflict.row_id).recist_status == conflict.version_b["recist_status"]
        out = tmp_path_factory.mktemp("table") / "table.parquet"
        with qtbot.waitSignal(room.table_written, timeout=TIMEOUT_MS) as table:
            room.write_table(out)
        assert table.args[0][0] == 32 and pq.read_table(out).num_rows == 32
        room.close()
    finally:
        close_window(window, qtbot)
        store.close()

"""The real main window on the real demo store: worklist, CT/PET room, slide room, error dialog.

Runs under Xvfb (pytest-xvfb starts it when there is no display): napari needs OpenGL.
"""

from __future__ import annotations

import logging
import logging.handlers
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from palmares_desktop.core.ct.windows import WINDOW_PRESETS
from palmares_desktop.core.model import Subject
from palmares_desktop.core.profile import load_profile
from palmares_desktop.core.store import Store
from palmares_desktop.gui.napari_adapter import CT_LAYER, PET_LAYER

pytestmark = pytest.mark.gui

LOAD_TIMEOUT_MS = 60_000


def nrrd_geometry(path) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Size and spacing (x, y, z) from the volume file's header, without reading the pixels."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    return reader.GetSize(), reader.GetSpacing()


def open_first_subject(window, qtbot) -> Subject:
    rows = window.store.worklist()
    imaged = [r for r in rows if {"CT", "PT"} <= set(r["modalities"])]
    assert imaged, f"no subject with CT and PET in {rows}"
    code = imaged[0]["code"]
    with qtbot.waitSignal(window.ct_pet.subject_loaded, timeout=LOAD_TIMEOUT_MS):
        # The same slot as a double-click on the worklist row.
        index = window.worklist.proxy.index(window.worklist.visible_codes().index(code), 0)
        window.worklist.table.doubleClicked.emit(index)
    return window.store.subject_by_code(code)


def test_worklist_lists_demo_subjects_with_modalities_and_status(main_window):
    rows = main_window.store.worklist()
    assert len(rows) >= 3
    model = main_window.worklist.model
    assert model.rowCount() == len(rows)
    first = rows[0]
    assert model.index(0, 0).data() == first["code"]
    assert model.index(0, 2).data() == ", ".join(
        {"CT": "CT", "PT": "PET", "HE": "H&E"}[m] for m in first["modalities"]
    )
    assert {"CT", "PT", "HE"} <= set(first["modalities"])
    assert model.index(0, 3).data() == "not started"  # CT status of a fresh demo subject
    # The filter box narrows the list to one subject code.
    main_window.worklist.filter.setText(rows[1]["code"])
    assert main_window.worklist.visible_codes() == [rows[1]["code"]]
    main_window.worklist.filter.clear()
    assert len(main_window.worklist.visible_codes()) == len(rows)
    # Status changes go through the store with the reader, and show up colour-coded.
    main_window._set_status(first["subject_id"], "CT", "in progress")
    assert main_window.worklist.model.index(0, 3).data() == "in progress"
    audit = main_window.store.rows("audit_log", "table_name = 'subject_status'", order_by="seq desc")
    assert audit[0]["reader_id"] == main_window.store.reader.id
    assert "Test Radiologist (radiologist, IT03)" in main_window.windowTitle()


def test_open_subject_shows_fused_ct_pet_in_physical_space(main_window, qtbot, tmp_path):
    subject = open_first_subject(main_window, qtbot)
    store = main_window.store
    viewer = main_window.ct_pet.viewer
    for modality, name in (("CT", CT_LAYER), ("PT", PET_LAYER)):
        row = store.rows("series", "subject_id = ? and modality = ?", [subject.id, modality])[0]
        size, spacing = nrrd_geometry(store.path(row["pixel_path"]))
        layer = viewer.layer(name)
        assert layer is not None, f"no {name} layer"
        assert layer.data.shape == tuple(reversed(size))
        np.testing.assert_allclose(layer.scale, tuple(reversed(spacing)), rtol=1e-6)
    ct, pet = viewer.layer(CT_LAYER), viewer.layer(PET_LAYER)
    # Same frame of reference: the PET's physical extent sits inside the CT's (demo: same study).
    ct_extent, pet_extent = ct.extent.world, pet.extent.world
    assert np.all(pet_extent[0] >= ct_extent[0] - 5) and np.all(pet_extent[1] <= ct_extent[1] + 5)
    assert pet.blending == "translucent_no_depth" and 0.3 <= pet.opacity <= 0.7
    assert tuple(ct.contrast_limits) == WINDOW_PRESETS["abdomen"].limits
    main_window.ct_pet.set_window("lung")
    assert tuple(ct.contrast_limits) == (-1350.0, 150.0)
    main_window.ct_pet.set_window("abdomen")
    # The demo's planted lesions arrive as label layers, listed in the lesion table.
    assert main_window.ct_pet.lesions.rowCount() >= 1
    assert len(main_window.ct_pet.loaded.masks) == main_window.ct_pet.lesions.rowCount()

    qtbot.wait(300)  # let the canvas draw
    shot = tmp_path / "main_window.png"
    assert main_window.grab().save(str(shot))
    image = sitk.GetArrayFromImage(sitk.ReadImage(str(shot)))
    assert image.shape[0] > 500 and image.shape[1] > 800
    assert float(image[..., :3].std()) > 20, "screenshot looks blank"
    canvas = viewer.screenshot()[..., :3].astype(float)
    assert canvas.std() > 10, "the napari canvas rendered a uniform image"
    h, w = canvas.shape[:2]
    centre = canvas[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4]
    assert centre.std() > 10 and centre.max() > 100, "no anatomy in the middle of the canvas"


def test_slide_room_shows_the_pyramid_lazily_in_micrometres(main_window, qtbot):
    subject = open_first_subject(main_window, qtbot)
    slide_row = main_window.store.rows("slides", "subject_id = ?", [subject.id])[0]
    main_window.tabs.setCurrentIndex(2)  # the slide room draws its slide once shown
    qtbot.waitUntil(lambda: main_window.slide.slide_layer() is not None, timeout=LOAD_TIMEOUT_MS)
    layer = main_window.slide.slide_layer()
    assert layer.multiscale and layer.rgb
    assert len(layer.data) == slide_row["levels"] >= 4
    assert layer.data[0].shape[:2] == (slide_row["height"], slide_row["width"])
    assert not isinstance(layer.data[0], np.ndarray), "level 0 must stay lazy, not loaded whole"
    np.testing.assert_allclose(layer.scale, (slide_row["mpp_y"], slide_row["mpp_x"]), rtol=1e-6)
    assert main_window.slide.viewer.model.scale_bar.visible
    # The scale bar names its unit only when every layer (slide, outlines, points) is in µm.
    assert [str(u) for u in main_window.slide.viewer.model.layers.units] == ["micrometer"] * 2
    ct_units = main_window.ct_pet.viewer.model.layers.units  # CT, PET, outlines and the cursor
    assert ct_units is not None and {str(u) for u in ct_units} == {"millimeter"}
    main_window.tabs.setCurrentIndex(2)
    qtbot.wait(300)
    canvas = main_window.slide.viewer.screenshot()[..., :3].astype(float)
    assert canvas.std() > 5, "the slide canvas is uniform"


def test_radiomics_panel_shows_feature_sets_of_the_selected_lesion(main_window, qtbot):
    with qtbot.waitSignal(main_window.ct_pet.features_ready, timeout=LOAD_TIMEOUT_MS):
        subject = open_first_subject(main_window, qtbot)
    room = main_window.ct_pet
    # Opening the subject computed, in the background, the features its segmentations lacked.
    seg_ids = {m.segmentation.id for m in room.loaded.masks}
    with Store.open(main_window.store.root, create=False) as fresh:
        computed = {r["segmentation_id"] for r in fresh.rows("feature_sets")}
        assert seg_ids <= computed, (
            f"no features for {len(seg_ids - computed)} segmentation(s) of {subject.code}"
        )
    room.lesions.selectRow(0)
    mask = room.selected_mask()
    panel = room.radiomics
    assert panel.segmentation.id == mask.segmentation.id
    assert panel.current_set() is not None and panel.compute_button.isEnabled()
    with qtbot.waitSignal(panel.computed, timeout=LOAD_TIMEOUT_MS):
        panel.compute()
    row = panel.current_set()
    assert row is not None and row.segmentation_id == mask.segmentation.id
    assert row.status == "ok", row.error  # planted demo lesions are well-formed
    assert row.params_name == {"CT": "ct", "PT": "pet"}[mask.segmentation.series_modality]
    names = {
        panel.features.item(r, 0).text(): panel.features.item(r, 1).text()
        for r in range(panel.features.rowCount())
    }
    assert len(names) > 50 and "original_firstorder_Mean" in names
    assert float(names["original_shape_VoxelVolume"]) > 0
    assert panel.provenance.topLevelItemCount() >= 2  # feature-set summary + details
    # Computing again reuses the current feature set instead of adding a duplicate.
    with qtbot.waitSignal(panel.computed, timeout=LOAD_TIMEOUT_MS):
        panel.compute()
    assert panel.set_picker.count() == 1


def test_reader_dialog_validates_and_remembers_the_profile(qtbot):
    from palmares_desktop.gui.reader_dialog import ReaderDialog

    dialog = ReaderDialog()
    qtbot.addWidget(dialog)
    dialog.fill("Anna Rossi", "pathologist", "it3")
    dialog.accept()
    assert dialog.profile() is None and "not valid" in dialog.error.text()
    dialog.fill("Anna Rossi", "pathologist", "it03")
    dialog.accept()
    profile = dialog.profile()
    assert (profile.name, profile.role, profile.site_code) == ("Anna Rossi", "pathologist", "IT03")


def test_switching_reader_changes_title_and_author(main_window):
    from palmares_desktop.core.profile import ReaderProfile

    pathologist = ReaderProfile("Paola Bianchi", "pathologist", "IT05")
    main_window.set_profile(pathologist)
    assert main_window.windowTitle() == "PALMARES Desktop — Paola Bianchi (pathologist, IT05)"
    assert main_window.store.reader.name == "Paola Bianchi" and main_window.store.reader.site_code == "IT05"
    assert load_profile() == pathologist


@pytest.mark.qt_no_exception_capture
def test_uncaught_exception_shows_a_dialog_and_is_logged(qtbot, tmp_path):
    from qtpy.QtCore import QTimer

    from palmares_desktop.core.logs import setup_logging
    from palmares_desktop.gui import excepthook

    log_file = setup_logging()  # the file the root logger really writes to (set up once per process)
    previous = sys.excepthook
    excepthook.install_excepthook(log_file)
    try:

        def broken_slot():
            raise ValueError("deliberate test failure 4711")

        QTimer.singleShot(0, broken_slot)
        qtbot.waitUntil(lambda: bool(excepthook.open_error_boxes), timeout=5000)
        box = excepthook.open_error_boxes[-1]
        assert "deliberate test failure 4711" in box.text()
        assert str(log_file) in box.informativeText()
        assert "Traceback" in box.detailedText()
        box.done(0)  # auto-close
        qtbot.waitUntil(lambda: not excepthook.open_error_boxes, timeout=2000)
        for handler in logging.getLogger().handlers:
            handler.flush()
        text = log_file.read_text(encoding="utf-8")
        assert "deliberate test failure 4711" in text and "broken_slot" in text
    finally:
        sys.excepthook = previous


@pytest.mark.qt_no_exception_capture
def test_bad_store_path_gives_a_message_not_a_traceback(qtbot, tmp_path):
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication, QMessageBox

    from palmares_desktop.gui.app import main

    seen: list[str] = []
    finished = False  # stops the polling once main() has returned: it must not outlive this test

    def close_message():
        if finished:
            return
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            seen.append(box.text())
            box.done(0)
        else:
            QTimer.singleShot(100, close_message)

    previous = sys.excepthook
    try:
        QTimer.singleShot(100, close_message)
        assert main(["--store", str(tmp_path / "no-such-store")]) == 2
    finally:
        finished = True
        sys.excepthook = previous
    assert seen and "There is no PALMARES store" in seen[0]


def _scanned_dialog(qtbot, window, folder):
    """The window's import dialog after scanning `folder`."""
    dialog = window.show_import_dialog()
    with qtbot.waitSignal(dialog.scanned, timeout=LOAD_TIMEOUT_MS):
        dialog.folder.setText(str(folder))
        dialog.scan()
    return dialog


def test_import_dialog_previews_imports_and_summarises(qtbot, shared_data, new_store_window):
    window = new_store_window
    dialog = _scanned_dialog(qtbot, window, shared_data / "petct_sts_001")
    assert dialog.subject.text() == "IT03-0001"  # next progressive code at the reader's site
    modalities = sorted(dialog.series.item(r, 0).text() for r in range(dialog.series.rowCount()))
    assert modalities == ["CT", "PET"]
    assert dialog.series.item(0, 2).text() == "59"
    assert not dialog.patient.isVisible()  # one patient: no picker
    assert "skipped" in dialog.scan_note.text()  # the RTSTRUCTs and text files
    assert dialog.import_button.isEnabled()
    with qtbot.waitSignal(dialog.imported, timeout=LOAD_TIMEOUT_MS):
        dialog.start_import()
    assert dialog.summary_text.toPlainText().strip()
    rows = window.store.worklist()
    assert [r["code"] for r in rows] == ["IT03-0001"] and rows[0]["modalities"] == ["CT", "PT"]
    assert window.worklist.model.rowCount() == 1
    dialog.close()


def test_import_dialog_judges_like_the_cli_and_picks_one_of_two_patients(
    qtbot, shared_data, new_store_window
):
    """pet_bqml_orthanc: a 1-slice PET, a 2-of-83-slice PET with weight 0, two patients."""
    from palmares_desktop.gui.import_dialog import SERIES_COLUMNS

    window = new_store_window
    dialog = _scanned_dialog(qtbot, window, shared_data / "pet_bqml_orthanc")
    col = {name: SERIES_COLUMNS.index(name) for name in SERIES_COLUMNS}
    rows = {
        dialog.series.item(r, col["Description"]).text(): {
            name: dialog.series.item(r, c).text() for name, c in col.items()
        }
        for r in range(dialog.series.rowCount())
    }
    assert rows["F18 FDG"]["Usable"] == "limited" and "Only one slice" in rows["F18 FDG"]["Problems"]
    assert rows["PET WB"]["Usable"] == "limited" and "No SUV (PatientWeight" in rows["PET WB"]["Problems"]
    assert rows["CT HEAD/NK 5.0 B30s"]["Usable"] == "yes"
    assert rows["CT HEAD/NK 5.0 B30s"]["Matrix"] == "512 × 512"
    assert dialog.patient.isVisible()
    assert [dialog.patient.itemText(i) for i in range(dialog.patient.count())] == [
        "13020110201186",
        "fYET5.0",
    ]
    dialog.patient.setCurrentIndex(1)
    with qtbot.waitSignal(dialog.imported, timeout=LOAD_TIMEOUT_MS):
        dialog.start_import()
    assert "2 series imported" in dialog.summary_text.toPlainText()
    # Only the chosen patient's CT and PET (the de-identified description drops "HEAD/NK").
    assert sorted(r["modality"] for r in window.store.rows("series")) == ["CT", "PT"]
    assert "PET WB" in [r["description"] for r in window.store.rows("series")]
    dialog.close()


def _marker_volume() -> sitk.Image:
    """LPS volume with three markers: superior (bright), patient-left (half), anterior (quarter)."""
    a = np.zeros((40, 50, 60), np.float32)  # (z, y, x)
    a[35:40, 20:30, 25:35] = 1.0  # superior slab (high z)
    a[15:25, 20:30, 52:60] = 0.5  # patient's left (high x)
    a[15:25, 0:6, 25:35] = 0.25  # anterior (low y)
    image = sitk.GetImageFromArray(a)
    image.SetSpacing((1.5, 1.0, 2.5))
    image.SetOrigin((-40.0, -25.0, 100.0))
    return image


def _where(canvas: np.ndarray, lo: int, hi: int) -> tuple[float, float]:
    grey = canvas[..., 0].astype(float)
    ys, xs = np.where((grey >= lo) & (grey < hi))
    assert len(ys), f"no pixels between {lo} and {hi}"
    return ys.mean() / grey.shape[0], xs.mean() / grey.shape[1]


def test_volumes_are_shown_in_radiological_orientation_whatever_their_direction(qtbot):
    from palmares_desktop.gui.napari_adapter import EmbeddedViewer, volume_from_sitk

    lps = _marker_volume()
    # The same object stored with the y axis flipped (rows running posterior -> anterior).
    flipped = sitk.Flip(lps, (False, True, False))
    assert flipped.GetDirection()[4] == -1.0
    a, b = volume_from_sitk(lps), volume_from_sitk(flipped)
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_allclose(a.translate, b.translate)
    assert a.scale == (2.5, 1.0, 1.5) and a.translate == (100.0, -25.0, -40.0) and a.rotate is None

    viewer = EmbeddedViewer("orientation")
    viewer.widget.resize(500, 500)
    viewer.widget.show()
    qtbot.waitExposed(viewer.widget)
    try:
        viewer.model.add_image(
            b.data,
            scale=b.scale,
            translate=b.translate,
            colormap="gray",
            contrast_limits=(0, 1),
            rendering="mip",
            interpolation2d="nearest",
        )
        viewer.reset_view()
        viewer.model.dims.set_point(0, 100.0 + 20 * 2.5)  # an axial slice through left and anterior markers
        qtbot.wait(100)
        canvas = viewer.screenshot()
        left_y, left_x = _where(canvas, 100, 160)
        front_y, front_x = _where(canvas, 40, 90)
        assert left_x > 0.75, "patient's left must be on the right of the screen"
        assert front_y < 0.3, "anterior must be at the top of an axial slice"
        viewer.set_3d(True)  # coronal MIP seen from the front
        qtbot.wait(100)
        canvas = viewer.screenshot()
        top_y, _ = _where(canvas, 200, 256)
        _, left_x = _where(canvas, 100, 160)
        assert top_y < 0.3 and left_x > 0.7, "3D view must show the head up, patient's left on the right"
    finally:
        viewer.close()
        qtbot.wait(20)


def test_cancelling_an_import_stops_it_and_leaves_the_store_consistent(
    qtbot, tmp_path, shared_data, radiologist, close_window
):
    from palmares_desktop.core.store import Store
    from palmares_desktop.gui.main_window import MainWindow

    store = Store.open(tmp_path / "store")
    window = MainWindow(store, radiologist)
    try:
        dialog = window.show_import_dialog(shared_data / "petct_sts_001")
        qtbot.waitUntil(dialog.import_button.isEnabled, timeout=LOAD_TIMEOUT_MS)

        def cancel_after_first_series(_step):
            # The worker commits each series on its own connection; WAL makes it visible here.
            thread = dialog._import_thread
            if thread is not None and not thread.cancel_requested and store.db["series"].count == 1:
                dialog.cancel_import()

        dialog.progressed.connect(cancel_after_first_series)
        dialog.start_import()
        qtbot.waitUntil(lambda: dialog._import_thread is None, timeout=LOAD_TIMEOUT_MS)
        dialog.progressed.disconnect(cancel_after_first_series)
        assert "cancelled" in dialog.progress_text.text()
        assert dialog.summary is None  # the import did not finish
        series = store.rows("series")
        assert len(series) == 1, "the series finished before the cancel stays, the other never starts"
        assert store.path(series[0]["pixel_path"]).is_file()
        # Importing again adds the rest and skips what is already there.
        with qtbot.waitSignal(dialog.imported, timeout=LOAD_TIMEOUT_MS):
            dialog.start_import()
        assert sorted(r["modality"] for r in store.rows("series")) == ["CT", "PT"]
        assert "1 series imported, 1 not imported" in dialog.summary_text.toPlainText()
        assert "already imported" in dialog.summary_text.toPlainText()
        dialog.close()
    finally:
        close_window(window, qtbot)
        store.close()


def test_screenshot_mode_opens_the_first_subject_saves_every_room_and_quits(demo_store_dir, tmp_path):
    # Its own process, as users run it: quitting a QApplication inside the test process would leave
    # queued worker signals undelivered in every later test.
    command = [sys.executable, "-m", "palmares_desktop.gui.app", "--store", str(demo_store_dir)]
    command += ["--screenshot", str(tmp_path / "shot.png"), "--room", "all"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    # The worklist is mostly white table; the rooms are mostly image.
    for room, least_std in (("worklist", 5), ("ct-pet", 20), ("slide", 20)):
        image = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / f"shot-{room}.png")))
        assert image.shape[:2] == (1000, 1600)
        assert float(image[..., :3].std()) > least_std, f"{room} screenshot looks blank"


def test_no_display_gives_a_sentence_not_a_qt_abort(monkeypatch, capsys, tmp_path):
    from palmares_desktop.gui.app import main

    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    assert main(["--store", str(tmp_path / "store")]) == 2
    assert "needs a graphical display" in capsys.readouterr().err
    assert not (tmp_path / "store").exists()  # nothing was started or created

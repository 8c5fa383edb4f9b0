"""A two-reader blinded PET round on the demo store, through the real Study panel.

Reader A's masks are the demo's planted PET lesions; reader B's are A's grown by one voxel in-plane
(a known margin). While the round is open B cannot see A's work; the panel's agreement numbers
equal SimpleITK's overlap filter and the volumes counted by hand; the plots are saved as PNG/PDF.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from palmares_desktop.core.radiomics.store_features import compute_features_for_segmentation
from palmares_desktop.core.reading_set import subject_segmentations
from palmares_desktop.core.segmentation.labelmaps import add_segmentation
from palmares_desktop.core.store import Store
from palmares_desktop.core.study.rounds import (
    BlindedError,
    check_visible,
    create_round,
    current_assignment,
    finish,
    record_work,
)

pytestmark = pytest.mark.gui
SUBJECT = "IT99-0001"
TIMEOUT_MS = 180_000


def _grow(mask: sitk.Image) -> sitk.Image:
    return sitk.BinaryDilate(mask, [1, 1, 0])  # one voxel in-plane, none through slices


@pytest.fixture
def round_store(demo_store_dir, tmp_path):
    root = tmp_path / "store"
    shutil.copytree(demo_store_dir, root)
    manifest = json.loads((root / "demo-source" / "demo_manifest.json").read_text())
    subject = manifest["subjects"][0]
    labels = sitk.ReadImage(str(root / "demo-source" / subject["pet_labels"]))
    with Store.open(root) as store:
        store.use_system_reader("coordinator", site_code="IT99")
        readers = {n: store.add_reader(n, "radiologist", "IT99") for n in ("Dr A", "Dr B")}
        create_round(store, "PET pair", "pet", [SUBJECT], list(readers), repeats=1, blinded=True)
        subject_id = store.subject_by_code(SUBJECT).id
        masks, segs = {}, {}
        for name in ("Dr A", "Dr B"):
            store.use_reader(readers[name])
            current = current_assignment(store, readers[name].id, subject_id)
            if name == "Dr B":  # blinded: B sees none of A's finished work, and opening it is refused
                assert not {s.id for s in subject_segmentations(store, subject_id)} & {
                    s.id for s in segs["Dr A"]
                }
                with pytest.raises(BlindedError, match="blinded round"):
                    check_visible(store, readers[name].id, subject_id, segs["Dr A"][0])
            for lesion in subject["lesions"]:
                mask = sitk.Cast(labels == lesion["label"], sitk.sitkUInt8)
                mask = _grow(mask) if name == "Dr B" else mask
                masks[(name, lesion["name"])] = sitk.GetArrayFromImage(mask).astype(bool)
                seg = add_segmentation(
                    store, SUBJECT, "PT", mask, lesion_name=lesion["name"], organ=lesion["organ"]
                )
                record_work(store, current["id"], seg)
                compute_features_for_segmentation(store, seg.id, "pet")
                segs.setdefault(name, []).append(seg)
            finish(store, current["id"])
    return root, masks, labels


def test_two_reader_blinded_pet_round_in_the_study_panel(
    qtbot, round_store, radiologist, close_window, tmp_path
):
    from palmares_desktop.gui.main_window import MainWindow

    root, masks, labels = round_store
    store = Store.open(root)
    window = MainWindow(store, radiologist)
    window.show()
    try:
        panel = window.show_study_panel()
        assert panel.round.count() == 1 and panel.round.currentData() == "PET pair"
        with qtbot.waitSignal(panel.reported, timeout=TIMEOUT_MS) as got:
            panel.compute()
        report = got.args[0]
        pet_voxel_ml = float(np.prod(labels.GetSpacing())) / 1000.0
        overlap = sitk.LabelOverlapMeasuresImageFilter()
        lesions = sorted({lesion for _, lesion in masks})
        assert len(report.pairs) == len(lesions) and panel.masks.rowCount() == len(lesions)
        for row in report.pairs:
            a, b = masks[("Dr A", row["lesion"])], masks[("Dr B", row["lesion"])]
            overlap.Execute(
                sitk.GetImageFromArray(a.astype(np.uint8)), sitk.GetImageFromArray(b.astype(np.uint8))
            )
            assert row["dice"] == pytest.approx(overlap.GetDiceCoefficient(), abs=1e-9)
            assert row["volume_b_ml"] - row["volume_a_ml"] == pytest.approx(
                (b.sum() - a.sum()) * pet_voxel_ml
            )
            assert row["volume_difference_ml"] > 0  # B grew every lesion
            assert row["suv_mean_a"] > row["suv_mean_b"] > 0  # the grown rim adds cooler voxels
        shown = {
            panel.masks.item(r, 0).text(): panel.masks.item(r, 4).text()
            for r in range(panel.masks.rowCount())
        }
        assert shown == {p["lesion"]: f"{p['dice']:.3f}" for p in report.pairs}
        ranking = report.icc_ranking("ICC(2,1)")
        assert ranking and panel.features.rowCount() == len(report.features)
        assert all(-1.0 <= f["icc"] <= 1.0 for f in ranking)
        volume = report.bland_altman("volume_ml")
        assert volume.n == len(lesions) and volume.bias > 0
        assert "limits" in panel.figure.axes[0].get_title()
        png, pdf = panel.save_plots(tmp_path / "agreement.png"), panel.save_plots(tmp_path / "agreement.pdf")
        assert png.read_bytes()[:4] == b"\x89PNG" and pdf.read_bytes()[:4] == b"%PDF"
        written = panel.save_report(tmp_path / "round.csv")
        assert [p.name for p in written] == ["round.csv", "round_masks.csv"]
        panel.tabs.setCurrentIndex(2)
        qtbot.wait(200)
        panel.grab().save(str(os.environ.get("PALMARES_SCREENSHOT_DIR", tmp_path)) + "/study_panel.png")
        panel.close()
    finally:
        close_window(window, qtbot)
        store.close()


def test_coordinator_defines_and_closes_a_round_in_the_panel(copy_window, qtbot, monkeypatch):
    """New round…: a refusal is core's sentence with the dialog kept open; the created round has an
    assignment per subject, reader and repeat; Close round… lifts blinding after confirmation."""
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QMessageBox

    from palmares_desktop.core.store import rounds as round_rows
    from palmares_desktop.core.study.rounds import is_blinded
    from palmares_desktop.gui.round_dialog import checked, set_checked

    window = copy_window
    store = window.store
    for name in ("Dr Verdi", "Dr Neri"):
        store.add_reader(name, "radiologist", "IT99")
    panel = window.show_study_panel()
    seen = {}

    def fill_and_create():
        dialog = panel._round_dialog
        dialog.name.setText("PET pilot")
        set_checked(dialog.subjects, ["IT99-0001", "IT99-0002"])
        set_checked(dialog.readers, ["Dr Verdi"])
        dialog.repeats.setValue(1)
        dialog.create_button.click()  # one reader, no repeat: refused in words, dialog stays
        seen["refusal"], seen["open"] = dialog.message.text(), dialog.isVisible()
        set_checked(dialog.readers, ["Dr Verdi", "Dr Neri"])
        seen["readers"] = checked(dialog.readers)
        dialog.repeats.setValue(2)
        dialog.delay.setValue(14)
        dialog.create_button.click()

    QTimer.singleShot(0, fill_and_create)
    created = panel.new_round()
    assert (
        seen["refusal"]
        == "Agreement needs two readers, or one reader reading each subject twice (2 repeats)."
    )
    assert seen["open"] and sorted(seen["readers"]) == ["Dr Neri", "Dr Verdi"]
    assert created["name"] == "PET pilot" and created["modality"] == "PT" and created["min_delay_days"] == 14
    assert panel.round.currentData() == "PET pilot" and "created" in panel.status.text()
    assignments = round_rows.assignments(store, round_id=created["id"])
    assert len(assignments) == 2 * 2 * 2  # subjects x readers x repeats
    verdi = next(r for r in store.readers() if r.name == "Dr Verdi")
    subject_id = store.subject_by_code("IT99-0001").id
    assert is_blinded(store, verdi.id, subject_id)

    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    panel.close_round()
    assert round_rows.round_named(store, "PET pilot")["status"] == "closed"
    assert not is_blinded(store, verdi.id, subject_id)
    assert panel.status.text() == "Round 'PET pilot' is closed."
    panel.close()

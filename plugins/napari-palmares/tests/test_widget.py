"""The "PET threshold" dock widget in a real napari viewer: its numbers are core's, its refusals are
core's sentences."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk
from napari.layers import Labels
from napari_palmares._layers import placement_of_grid
from napari_palmares._widget import PetThresholdWidget

from palmares_desktop.core.errors import PalmaresError
from palmares_desktop.core.pet.threshold import PetVolume, Region, threshold_in_region
from palmares_desktop.core.segmentation.geometry import Grid

PLUGIN = "napari-palmares"


def open_widget(viewer) -> PetThresholdWidget:
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "PET threshold")
    assert isinstance(widget, PetThresholdWidget)
    return widget


def click(widget, viewer, world_zyx) -> None:
    """A left click in the canvas at a world point, as napari hands it to mouse callbacks."""
    widget.arm.setChecked(True)
    widget.on_press(viewer, SimpleNamespace(position=tuple(world_zyx), button=1, type="mouse_press"))


def choose(widget, rule: str, box_mm: float = 60.0) -> None:
    widget.rule.setCurrentIndex(widget.rule.findData(rule))
    widget.box_mm.setValue(box_mm)


def core_result(store_path, code, centre_xyz, rule, size_mm=60.0):
    """Core's own threshold on the stored PET (the workstation's load_pet), for comparison."""
    from palmares_desktop.core.pet.subject_pet import load_pet
    from palmares_desktop.core.store import Store

    with Store.open(store_path, create=False, read_only=True) as store:
        _, _, pet, _ = load_pet(store, code)
    return threshold_in_region(pet, Region(tuple(centre_xyz), size_mm, "box"), rule)


@pytest.mark.parametrize("rule", ["41%", "suv2.5"])
def test_clicking_a_planted_lesion_gives_cores_threshold(make_napari_viewer, demo_store, demo_subject, rule):
    viewer = make_napari_viewer()
    layers = viewer.open(demo_store, plugin=PLUGIN)
    pet = next(layer for layer in layers if layer.metadata.get("units") == "SUVbw")
    widget = open_widget(viewer)
    lesion = next(item for item in demo_subject.lesions if item["name"] == "vertebral metastasis")
    viewer.layers.selection.active = pet
    choose(widget, rule)
    added = []
    widget.thresholded.connect(added.append)
    click(widget, viewer, lesion["centre_mm"][::-1])  # LPS (x, y, z) -> world (z, y, x)
    assert not widget.arm.isChecked()  # one click, one lesion
    (labels,) = added
    assert isinstance(labels, Labels) and labels in viewer.layers
    direct = core_result(demo_store, demo_subject.code, lesion["centre_mm"], rule)
    metrics = labels.metadata["metrics"]
    assert metrics["mtv_ml"] == pytest.approx(direct.metrics.mtv_ml, rel=1e-12)
    for key in ("suv_max", "suv_mean", "suv_peak", "tlg", "voxel_count"):
        assert metrics[key] == pytest.approx(getattr(direct.metrics, key), rel=1e-9), key
    assert metrics["suv_max"] == pytest.approx(lesion["planted_suv_max"], rel=0.05)
    # The labels layer is core's mask, on the PET's grid and at the PET's place.
    back = placement_of_grid(pet.metadata["grid"]).to_stored_array(labels.data)
    np.testing.assert_array_equal(back.astype(bool), direct.mask)
    assert tuple(labels.scale) == tuple(pet.scale) and tuple(labels.translate) == tuple(pet.translate)
    assert labels.metadata["subject_code"] == demo_subject.code
    assert labels.metadata["threshold_suv"] == pytest.approx(direct.threshold_suv)
    text = widget.results.text()
    assert f"SUVmax {direct.metrics.suv_max:.2f}" in text and f"MTV {direct.metrics.mtv_ml:.2f} mL" in text
    assert "SUVmean" in text and "SUVpeak" in text and "TLG" in text
    # Not armed: a click does nothing.
    widget.on_press(viewer, SimpleNamespace(position=tuple(lesion["centre_mm"][::-1]), button=1))
    assert len(added) == 1


def test_refusals_are_cores_sentences(make_napari_viewer, demo_store, demo_subject, shared_data):
    viewer = make_napari_viewer()
    ct, pet = (layer for layer in viewer.open(demo_store, plugin=PLUGIN) if layer.metadata.get("modality"))
    widget = open_widget(viewer)
    failures = []
    widget.failed.connect(failures.append)
    n_layers = len(viewer.layers)
    outside = (5000.0, 0.0, 0.0)  # world (z, y, x): far above the head
    viewer.layers.selection.active = pet
    click(widget, viewer, outside)
    with pytest.raises(PalmaresError) as core_says:
        core_result(demo_store, demo_subject.code, outside[::-1], "41%")
    assert widget.message.text() == str(core_says.value) and "outside the PET" in failures[-1]
    # Fixed SUV 4.0 in normal liver (SUV about 2.4) finds nothing: refused in words too.
    choose(widget, "suv4.0", 20.0)
    liver = demo_subject.liver_reference["centre_mm"]
    widget.threshold_at(liver[::-1])
    assert failures[-1].startswith("No voxel of the region reaches the threshold 4.00")
    # The CT is not a PET; nor is a PET that could not be calibrated.
    viewer.layers.selection.active = ct
    widget.threshold_at(liver[::-1])
    assert "is in HU, not SUVbw" in failures[-1]
    (uncalibrated,) = viewer.open(shared_data / "pet_bqml_orthanc" / "comunix_petct" / "PET", plugin=PLUGIN)
    viewer.layers.selection.active = uncalibrated
    widget.threshold_at(uncalibrated.data_to_world(np.array(uncalibrated.data.shape) // 2))
    assert "not SUVbw" in failures[-1] and "weight" in failures[-1]
    assert len(viewer.layers) == n_layers + 1  # no labels layer was added by any refusal
    assert "Traceback" not in widget.message.text()


def test_a_plain_napari_pet_layer_is_thresholded_from_its_scale_and_translate(
    make_napari_viewer, shared_data
):
    """A PET added without this plugin's reader (no stored grid in metadata): an axis-aligned layer
    whose world is patient (z, y, x) mm."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(shared_data / "petct_sts_001" / "PET" / "image")))
    image = reader.Execute()  # Units GML: the values are SUVbw
    suv = sitk.GetArrayFromImage(image).astype(np.float32)
    viewer = make_napari_viewer()
    layer = viewer.add_image(
        suv, scale=image.GetSpacing()[::-1], translate=image.GetOrigin()[::-1], name="STS PET"
    )
    widget = open_widget(viewer)
    inner = np.full(suv.shape, -np.inf, dtype=np.float32)
    inner[5:-5, 5:-5, 5:-5] = suv[5:-5, 5:-5, 5:-5]
    hottest = np.unravel_index(int(np.argmax(inner)), suv.shape)  # the sarcoma, away from the crop's faces
    world = layer.data_to_world(hottest)
    choose(widget, "50%", 40.0)
    labels = widget.threshold_at(world)
    assert labels is not None, widget.message.text()
    direct = threshold_in_region(
        PetVolume(suv, Grid.of(image)), Region(tuple(world[::-1]), 40.0, "box"), "50%"
    )
    assert labels.metadata["metrics"]["mtv_ml"] == pytest.approx(direct.metrics.mtv_ml, rel=1e-12)
    np.testing.assert_array_equal(labels.data.astype(bool), direct.mask)

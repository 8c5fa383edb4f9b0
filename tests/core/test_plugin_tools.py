"""A plugin segmentation tool on a subject of the demo store (core/plugins/tools.py): the real tiny
plugin's "Above a level" tool keeps exactly the CT voxels numpy keeps on the stored CT, saved as the
reader's final version with the plugin's method, typed values and provenance; empty masks, bad values,
the wrong image and unallowed plugins are refused in words. A second tiny plugin runs on the PET."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest
import SimpleITK as sitk
from plugin_fixture import PLUGINS, install_plugins

from palmares_desktop.core.plugins import PluginError, plugin_tool_lesion
from palmares_desktop.core.plugins.manager import allow_plugin
from palmares_desktop.core.segmentation.labelmaps import find_series
from palmares_desktop.core.store import Store
from palmares_desktop.core.store.segmentations import segmentation as stored_segmentation
from tests.core.demo_fixture import demo_store, writable_copy

PET_PLUGIN = """
from dataclasses import dataclass

from palmares_desktop.core.plugins import SegmentationTool, hookimpl, parameter


@dataclass(frozen=True)
class SuvParams:
    suv: float = parameter(4.0, "SUV", unit="SUV", minimum=0)


def above(volume, params):
    assert "sul_ratio" in volume.context and volume.modality == "PT" and volume.seed_mm is not None
    return volume.image >= params.suv


@hookimpl
def palmares_segmentation_tools():
    return [SegmentationTool("suv", "SUV above", above, SuvParams, modalities=("PT",))]
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    """The tiny plugin and a PET-only one on sys.path (forgotten afterwards)."""
    folder = install_plugins(tmp_path / "site", ("tiny",))
    package = folder / "petty_palmares_plugin"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent(PET_PLUGIN), encoding="utf-8")
    info = folder / "petty_palmares_plugin-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: petty-palmares-plugin\nVersion: 1.2\n")
    (info / "entry_points.txt").write_text("[palmares_desktop.plugins]\npetty = petty_palmares_plugin\n")
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    for module in (PLUGINS["tiny"][2], "petty_palmares_plugin"):
        sys.modules.pop(module, None)


@pytest.fixture
def demo_copy(tmp_path_factory, tmp_path):
    source, manifest = demo_store(tmp_path_factory)
    root = writable_copy(source, tmp_path / "store")
    with Store.open(root, create=False) as store:
        store.use_system_reader("test-suite", site_code="IT99")
        yield store, manifest.subjects[0].code


def _stored(store, code, modality) -> np.ndarray:
    series = find_series(store, store.subject_by_code(code).id, modality)
    return sitk.GetArrayFromImage(sitk.ReadImage(str(store.path(series.pixel_path))))


def _mask(store, segmentation_id) -> np.ndarray:
    row = stored_segmentation(store, segmentation_id)
    return sitk.GetArrayFromImage(sitk.ReadImage(str(store.path(row.mask_path)))) > 0


def test_a_plugin_tool_saves_what_numpy_keeps_on_the_stored_ct(site, demo_copy):
    store, code = demo_copy
    with pytest.raises(PluginError, match="palmares plugins allow NAME"):
        plugin_tool_lesion(store, code, "above", "ct", {"level": "400"})
    allow_plugin(store, "tiny")
    row, result, report = plugin_tool_lesion(
        store, code, "above", "ct", {"level": "400"}, lesion_name="bone (plugin)", lesion_site="bone"
    )
    expected = _stored(store, code, "CT") >= 400
    assert row.voxel_count == report["voxel_count"] == int(expected.sum()) > 0
    assert np.array_equal(_mask(store, row.id), expected)
    saved = stored_segmentation(store, row.id)
    assert saved.status == "final" and saved.reader_id == store.reader.id
    assert saved.method == report["method"] == "plugin:tiny/above"
    p = report["parameters"]
    assert p["values"] == {"level": 400.0, "keep_largest": False, "shape": "any"}
    assert p["provenance"] == {
        "plugin": "tiny",
        "plugin_version": "0.3.1",
        "distribution": "tiny-palmares-plugin",
        "contribution": "above",
    }
    assert p["image"] == "CT (HU)" and p["seed_mm"] is None
    assert report["lesion"] == "bone (plugin)" and report["unit"] == "HU"
    assert report["image_min"] >= 400 and not result.kept_existing
    assert report["sentence"].startswith(f"{code} lesion 'bone (plugin)': CT segmentation version 1 saved")
    # The same again: the same mask, kept as it is.
    again, _, said = plugin_tool_lesion(
        store, code, "tiny/above", "CT", {"level": 400}, lesion_name="bone (plugin)"
    )
    assert again.id == row.id and said["kept_existing"]


def test_plugin_tool_refusals_are_sentences(site, demo_copy):
    store, code = demo_copy
    allow_plugin(store, "tiny")
    with pytest.raises(PluginError, match=r"kept no voxel of the CT .*level 100000.0.*nothing was saved"):
        plugin_tool_lesion(store, code, "above", "ct", {"level": 100000})
    with pytest.raises(PluginError, match="must be at least -1024"):
        plugin_tool_lesion(store, code, "above", "ct", {"level": -5000})
    with pytest.raises(PluginError, match="The parameter level of AboveParams"):
        plugin_tool_lesion(store, code, "above", "ct", {"level": "high"})
    with pytest.raises(PluginError, match="has no parameter colour"):
        plugin_tool_lesion(store, code, "above", "ct", {"colour": "red"})
    with pytest.raises(PluginError, match="works on the CT, not the PET"):
        plugin_tool_lesion(store, code, "above", "pet", {})
    with pytest.raises(PluginError, match="No loaded plugin offers ghost"):
        plugin_tool_lesion(store, code, "ghost", "ct", {})
    with pytest.raises(Exception, match="The seed .* lies outside the CT"):
        plugin_tool_lesion(store, code, "above", "ct", {}, seed_mm=(1e5, 0, 0))
    assert all(r["method"] != "plugin:tiny/above" for r in store.rows("segmentations"))


def test_a_pet_plugin_tool_gets_suv_and_the_seed(site, demo_copy):
    store, code = demo_copy
    allow_plugin(store, "petty")
    suv = _stored(store, code, "PT")
    series = find_series(store, store.subject_by_code(code).id, "PT")
    image = sitk.ReadImage(str(store.path(series.pixel_path)))
    seed = image.TransformIndexToPhysicalPoint([int(n // 2) for n in image.GetSize()])
    row, _, report = plugin_tool_lesion(store, code, "suv", "pet", {"suv": "3"}, seed_mm=seed)
    assert row.voxel_count == int((suv >= 3.0).sum()) > 0
    assert report["method"] == "plugin:petty/suv" and report["parameters"]["image"] == "PET (SUVbw)"
    assert report["parameters"]["seed_mm"] == pytest.approx(list(seed))
    assert report["lesion"].startswith("PET lesion") and report["modality"] == "pet"

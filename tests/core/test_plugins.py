"""The plugin interface: real tiny plugins installed into a temporary site folder (entry-point
metadata as pip writes it), loaded through the public interface; broken ones are skipped in words."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from plugin_fixture import PLUGINS, install_plugins

from palmares_desktop.core.plugins import (
    PluginError,
    VolumeInput,
    describe_parameters,
    make_parameters,
    private_imports,
)
from palmares_desktop.core.plugins.manager import (
    ALLOWED_SETTING,
    PluginManager,
    allow_plugin,
    allowed_plugins,
    installed_plugins,
    run_extractor,
    run_tool,
)

ALL = tuple(PLUGINS)


@pytest.fixture
def site(tmp_path, monkeypatch):
    """Every test plugin installed on sys.path (and forgotten afterwards)."""
    folder = install_plugins(tmp_path / "site")
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    for _, _, module, _ in PLUGINS.values():
        sys.modules.pop(module, None)


def _status(manager, name):
    return next(s for s in manager.statuses if s.plugin.name == name)


def test_installed_plugins_are_found_through_their_entry_points(site):
    found = {p.name: p for p, _ in installed_plugins()}
    assert set(ALL) <= set(found)
    assert (found["tiny"].distribution, found["tiny"].version) == ("tiny-palmares-plugin", "0.3.1")


def test_nothing_outside_the_allowed_list_is_imported(site):
    manager = PluginManager(allowed=[])
    manager.load()
    assert all(not s.loaded and not s.allowed for s in manager.statuses if s.plugin.name in ALL)
    assert "tiny_palmares_plugin" not in sys.modules and "broken_palmares_plugin" not in sys.modules
    assert "palmares plugins allow tiny" in _status(manager, "tiny").reason
    assert manager.feature_extractors() == [] and manager.segmentation_tools() == []


def test_broken_plugins_are_skipped_in_words_and_the_rest_loads(site):
    manager = PluginManager(allowed=ALL)
    manager.load()
    tiny = _status(manager, "tiny")
    assert tiny.loaded and tiny.contributes == {
        "palmares_segmentation_tools": ["above"],
        "palmares_feature_extractors": ["counts"],
    }
    reasons = {name: _status(manager, name).reason for name in ALL if name != "tiny"}
    assert (
        reasons["broken"] == "failed to load (RuntimeError: this plugin needs a licence file that is missing)"
    )
    assert (
        reasons["raiser"]
        == "its palmares_feature_extractors hook failed (ValueError: model weights not found)"
    )
    assert "not a Importer" in reasons["wrongtype"]
    assert (
        "does not follow the plugin interface" in reasons["coffee"]
        and "palmares_make_coffee" in reasons["coffee"]
    )
    assert not any(_status(manager, n).loaded for n in reasons)
    # Only the good plugin contributes.
    assert [c.name for c in manager.feature_extractors()] == ["tiny/counts"]
    assert [c.name for c in manager.segmentation_tools("CT")] == ["tiny/above"]
    assert manager.segmentation_tools("PT") == [] and manager.importers() == []


def test_a_tool_runs_with_typed_parameters_from_strings(site):
    manager = PluginManager(allowed=["tiny"])
    manager.load()
    tool = manager.find("palmares_segmentation_tools", "above")
    fields = describe_parameters(tool.item.parameters)
    assert [(f.name, f.type, f.default, f.unit) for f in fields] == [
        ("level", "float", 100.0, "HU"),
        ("keep_largest", "bool", False, ""),
        ("shape", "choice", "any", ""),
    ]
    image = np.arange(24, dtype=float).reshape(2, 3, 4) * 10  # 0 .. 230
    mask, params = run_tool(
        tool, VolumeInput(image, (1.0, 1.0, 1.0)), {"level": "150", "keep_largest": "yes"}
    )
    assert int(mask.sum()) == 9 and params.level == 150.0 and params.keep_largest is True
    with pytest.raises(PluginError, match="at least -1024"):
        make_parameters(tool.item.parameters, {"level": -2000})
    with pytest.raises(PluginError, match="not one of any, round"):
        make_parameters(tool.item.parameters, {"shape": "square"})
    with pytest.raises(PluginError, match="has no parameter radius"):
        make_parameters(tool.item.parameters, {"radius": 3})


def test_an_extractor_failure_is_returned_in_words_never_raised(site):
    manager = PluginManager(allowed=["tiny"])
    manager.load()
    counts = manager.find("palmares_feature_extractors", "tiny/counts")
    image = np.ones((2, 2, 2))
    ok = run_extractor(counts, VolumeInput(image, (1, 1, 1), mask=image > 0))
    assert ok.error is None and ok.values == {"voxels": 8.0, "mean": 1.0, "nothing": None}
    assert ok.provenance["plugin"] == "tiny" and ok.provenance["plugin_version"] == "0.3.1"
    bad = run_extractor(counts, VolumeInput(image, (1, 1, 1), mask=None))  # the plugin indexes None
    assert bad.values is None and bad.error.startswith("The plugin tiny/counts failed (")


def test_the_site_list_lives_in_the_store_and_is_audited(store):
    assert allowed_plugins(store) == []
    assert allow_plugin(store, "tiny") == ["tiny"]
    assert allow_plugin(store, "other") == ["other", "tiny"]
    assert allow_plugin(store, "other", allowed=False) == ["tiny"]
    assert json.loads(store.setting(ALLOWED_SETTING)) == ["tiny"]
    actions = [r["detail_json"] for r in store.rows("audit_log", "action = ?", ["setting"])]
    assert sum(ALLOWED_SETTING in (a or "") for a in actions) == 3


def test_plugin_features_are_stored_with_the_plugin_name_and_version(store, site, shared_data):
    from series_fixture import import_ct

    from palmares_desktop.core.plugins.features import compute_plugin_features, params_name
    from palmares_desktop.core.segmentation.labelmaps import add_segmentation
    from palmares_desktop.core.store import records

    folder = shared_data / "ibsi_ct_lung_pat1"
    import_ct(store, folder / "dicom" / "image", "IT03-0002")
    seg = add_segmentation(
        store, "IT03-0002", "CT", folder / "nifti" / "mask" / "mask.nii.gz", lesion_name="GTV-1"
    )
    allow_plugin(store, "tiny")
    manager = PluginManager.for_store(store)
    counts = manager.feature_extractors("CT")[0]
    row = compute_plugin_features(store, seg.id, counts)
    fs = records.as_feature_set(row)
    assert fs.status == "ok" and fs.params_name == params_name(counts) == "plugin:tiny/counts"
    assert fs.features["voxels"] == seg.voxel_count > 1000
    assert -1000 < fs.features["mean"] < 500  # HU inside a lung tumour
    assert fs.provenance["plugin"] == "tiny" and fs.provenance["plugin_version"] == "0.3.1"
    assert fs.provenance["store"]["segmentation_version"] == 1
    # Current: asked again, the same row comes back.
    assert compute_plugin_features(store, seg.id, counts)["id"] == row["id"]


def test_private_imports_are_found(tmp_path):
    (tmp_path / "a.py").write_text(
        "from palmares_desktop.core.plugins import hookimpl\n"
        "from palmares_desktop.core.pet.threshold import Region\n"
        "from palmares_desktop.core.session import ReadingSession\n"
        "import palmares_desktop.gui.app\n"
        "from palmares_desktop.core import lesions\n"
        "from palmares_desktop.core.store import Store\n"
    )
    assert private_imports(tmp_path) == [
        "a.py:3 imports palmares_desktop.core.session",
        "a.py:4 imports palmares_desktop.gui.app",
        "a.py:5 imports palmares_desktop.core.lesions",
    ]
    assert private_imports(Path(__file__).parent / "nonexistent") == []

"""The real plugins in plugins/, installed with pip into a test folder (their own pyproject.toml and
entry points), load through the public interface only and contribute what they claim."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage
from series_fixture import insert_series

from palmares_desktop.core.plugins import private_imports
from palmares_desktop.core.plugins.manager import PluginManager, allow_plugin

ROOT = Path(__file__).resolve().parents[2]
PET_METRICS = ROOT / "plugins" / "palmares-pet-metrics"


@pytest.fixture(scope="session")
def pip_site(tmp_path_factory) -> Path:
    """plugins/palmares-pet-metrics installed by pip (a real wheel build) into a folder."""
    target = tmp_path_factory.mktemp("plugin_site")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--quiet",
            "--target",
            str(target),
            str(PET_METRICS),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return target


@pytest.fixture
def installed(pip_site, monkeypatch):
    monkeypatch.syspath_prepend(str(pip_site))
    yield pip_site
    for name in [m for m in sys.modules if m.startswith("palmares_pet_metrics")]:
        sys.modules.pop(name)


def test_the_plugins_import_nothing_private():
    for plugin in sorted((ROOT / "plugins").iterdir()):
        if (plugin / "pyproject.toml").is_file():
            assert private_imports(plugin / "src") == [], plugin.name


@pytest.mark.slow  # a real pip install (wheel build), once per session
def test_pet_metrics_loads_from_its_wheel_and_stores_its_family(installed, store, shared_data):
    from palmares_desktop.core.plugins.features import compute_plugin_features
    from palmares_desktop.core.segmentation.labelmaps import add_segmentation
    from palmares_desktop.core.store import records

    allow_plugin(store, "pet-metrics")
    manager = PluginManager.for_store(store)
    status = next(s for s in manager.statuses if s.plugin.name == "pet-metrics")
    assert status.loaded and status.plugin.distribution == "palmares-pet-metrics"
    assert status.contributes == {"palmares_feature_extractors": ["pet_thresholds"]}
    assert str(installed) in sys.modules["palmares_pet_metrics"].__file__  # the installed copy
    assert manager.feature_extractors("CT") == []

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(shared_data / "petct_sts_001" / "PET" / "image")))
    image = sitk.Cast(reader.Execute(), sitk.sitkFloat32)  # Units GML: SUVbw already
    suv = sitk.GetArrayFromImage(image)
    labels, _ = ndimage.label(suv >= 3.0, structure=np.ones((3, 3, 3)))
    lesion = labels == labels[28, 28, 14]  # the sarcoma (2246 voxels)
    mask = sitk.GetImageFromArray(lesion.astype(np.uint8))
    mask.CopyInformation(image)
    mask_path = store.root.parent / "sarcoma.nrrd"
    sitk.WriteImage(mask, str(mask_path))
    insert_series(store, "IT03-0007", image, modality="PT")
    seg = add_segmentation(store, "IT03-0007", "PT", mask_path, lesion_name="sarcoma")

    family = manager.find("palmares_feature_extractors", "pet-metrics/pet_thresholds")
    fs = records.as_feature_set(compute_plugin_features(store, seg.id, family))
    assert fs.status == "ok", fs.error
    assert fs.params_name == "plugin:pet-metrics/pet_thresholds" and fs.modality == "PT"
    assert fs.provenance["plugin"] == "pet-metrics" and fs.provenance["plugin_version"] == "0.1.0"
    assert fs.provenance["parameters"] == {"margin_mm": 10.0, "liver_at": ""}
    assert fs.features["lesion_voxels"] == 2246 and fs.features["suv2_5_voxels"] == 3305
    assert fs.features["percist_mtv_ml"] is None  # no liver in the crop
    assert len(fs.features) == 43

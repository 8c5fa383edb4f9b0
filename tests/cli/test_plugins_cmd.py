"""`palmares plugins`: installed, allowed, loaded and why not; allow/disallow in the store (the real
command in a subprocess, with tiny real plugins on its PYTHONPATH)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from plugin_fixture import install_plugins

CLI = "from palmares_desktop.cli.main import cli; cli()"


def _run(site, *args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-c", CLI, "plugins", *args], capture_output=True, text=True, timeout=120, env=env
    )


@pytest.mark.slow  # eight real command runs (~20 s on the shared 2-core machine)
def test_list_allow_and_disallow(store, tmp_path):
    site = install_plugins(tmp_path / "site", ("tiny", "broken"))
    store.close()
    root = str(store.root)

    done = _run(site, "--store", root, "--json")
    assert done.returncode == 0, done.stderr
    listed = {p["name"]: p for p in json.loads(done.stdout)["plugins"]}
    assert listed["tiny"]["allowed"] is False and listed["tiny"]["loaded"] is False
    assert "allowed list" in listed["tiny"]["reason"]

    for name in ("tiny", "broken", "ghost"):
        done = _run(site, "allow", name, "--store", root, "--reader", "Dr Rossi")
        assert done.returncode == 0, done.stderr
    assert "no installed plugin is named ghost" in done.stderr

    done = _run(site, "--store", root)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "tiny 0.3.1 (tiny-palmares-plugin): allowed, loaded" in lines
    assert "    feature extractors: counts" in lines
    assert any(
        line.startswith(
            "broken 1.0 (broken-palmares-plugin): allowed, not loaded: failed to load (RuntimeError"
        )
        for line in lines
    )
    assert "ghost: allowed by the site but not installed." in lines

    done = _run(site, "disallow", "tiny", "--store", root)
    assert done.returncode == 0 and "Allowed: broken, ghost" in done.stdout
    report = json.loads(_run(site, "--store", root, "--json").stdout)
    assert report["allowed"] == ["broken", "ghost"] and report["allowed_not_installed"] == ["ghost"]


def test_without_a_store_nothing_runs(tmp_path):
    site = install_plugins(tmp_path / "site", ("tiny",))
    done = _run(site)
    assert done.returncode == 0
    assert "tiny 0.3.1 (tiny-palmares-plugin): allowed: unknown, not loaded" in done.stdout
    assert "No --store given" in done.stdout


def test_a_missing_store_is_one_sentence(tmp_path):
    done = _run(tmp_path, "allow", "tiny", "--store", str(tmp_path / "nowhere"))
    assert done.returncode == 1 and "Traceback" not in done.stderr and done.stderr.count("\n") == 1


@pytest.mark.slow  # builds (or reuses) the demo store, then four real command runs
def test_run_a_plugin_tool_on_a_subject(tmp_path_factory, tmp_path):
    import numpy as np
    import SimpleITK as sitk

    from palmares_desktop.core.plugins.manager import allow_plugin
    from palmares_desktop.core.segmentation.labelmaps import find_series
    from palmares_desktop.core.store import Store
    from palmares_desktop.core.store.segmentations import segmentation as stored_segmentation
    from tests.core.demo_fixture import demo_store, writable_copy

    source, manifest = demo_store(tmp_path_factory)
    root = writable_copy(source, tmp_path / "store")
    code = manifest.subjects[0].code
    site = install_plugins(tmp_path / "site", ("tiny",))
    args = ("run", "above", "--store", str(root), "--subject", code, "--modality", "ct")

    done = _run(site, *args, "--param", "level=400")
    assert done.returncode == 1 and "palmares plugins allow NAME" in done.stderr
    with Store.open(root, create=False) as store:
        store.use_system_reader("test-suite", site_code="IT99")
        allow_plugin(store, "tiny")

    done = _run(site, *args, "--param", "level=400", "--lesion", "bone", "--reader", "Dr Rossi", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    with Store.open(root, create=False, read_only=True) as store:
        series = find_series(store, store.subject_by_code(code).id, "CT")
        ct = sitk.GetArrayFromImage(sitk.ReadImage(str(store.path(series.pixel_path))))
        row = stored_segmentation(store, report["segmentation_id"])
    assert report["voxel_count"] == row.voxel_count == int(np.sum(ct >= 400)) > 0
    assert report["method"] == row.method == "plugin:tiny/above" and row.status == "final"
    assert report["parameters"]["values"]["level"] == 400.0
    assert report["parameters"]["provenance"]["plugin_version"] == "0.3.1"

    more = ("--param", "shape=round", "--lesion", "bone", "--reader", "Dr Rossi")
    done = _run(site, *args, "--param", "level=600", *more)
    assert done.returncode == 0, done.stderr
    first, *rest = done.stdout.splitlines()
    assert first.startswith(f"{code} lesion 'bone': CT segmentation version 2 saved (plugin:tiny/above)")
    assert "  Parameters: level = 600.0, keep_largest = False, shape = round." in rest
    done = _run(site, *args, "--param", "level=5000", *more)
    assert done.returncode == 1 and "kept no voxel of the CT" in done.stderr

    done = _run(site, *args, "--param", "level=high")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "The parameter level of AboveParams" in done.stderr
    done = _run(site, *args, "--param", "level")
    assert done.returncode == 2 and "is not NAME=VALUE" in done.stderr

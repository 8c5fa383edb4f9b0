"""The plugin keeps to the workstation's public interface, and its manifest is what napari reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from palmares_desktop.core.plugins import private_imports

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "napari_palmares"


def test_only_public_modules_are_imported():
    assert private_imports(SRC) == []


def test_the_manifest_and_the_entry_point_agree(registered_manifest):
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == registered_manifest.name == "napari-palmares"
    assert project["entry-points"]["napari.manifest"] == {"napari-palmares": "napari_palmares:napari.yaml"}
    contributions = registered_manifest.contributions
    assert [w.display_name for w in contributions.widgets] == ["PET threshold"]
    assert all(r.accepts_directories for r in contributions.readers)
    for command in contributions.commands:  # every command's python_name resolves
        module, _, name = command.python_name.partition(":")
        assert callable(getattr(__import__(module, fromlist=[name]), name)), command.id

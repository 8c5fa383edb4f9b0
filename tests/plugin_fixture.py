"""Real, tiny plugins installed into a temporary folder: a package plus its `*.dist-info` (METADATA
and entry_points.txt), exactly what pip leaves in site-packages, put on sys.path."""

from __future__ import annotations

import textwrap
from pathlib import Path

TINY = '''
"""A tiny real plugin: a fixed-threshold tool and a voxel-count feature family."""
from dataclasses import dataclass

import numpy as np

from palmares_desktop.core.plugins import FeatureExtractor, SegmentationTool, hookimpl, parameter


@dataclass(frozen=True)
class AboveParams:
    level: float = parameter(100.0, "Level", help="keep voxels at or above", unit="HU", minimum=-1024)
    keep_largest: bool = parameter(False, "Largest part only")
    shape: str = parameter("any", "Shape", choices=("any", "round"))


def above(volume, params):
    return volume.image >= params.level


def counts(volume, params):
    inside = volume.image[volume.mask]
    return {"voxels": int(volume.mask.sum()), "mean": float(inside.mean()), "nothing": None}


@hookimpl
def palmares_segmentation_tools():
    return [SegmentationTool("above", "Above a level", above, AboveParams, modalities=("CT",))]


@hookimpl
def palmares_feature_extractors():
    return [FeatureExtractor("counts", "Voxel counts", counts, modalities=("CT", "PT"))]
'''

BROKEN_IMPORT = """
raise RuntimeError("this plugin needs a licence file that is missing")
"""

RAISING = """
from palmares_desktop.core.plugins import hookimpl

@hookimpl
def palmares_feature_extractors():
    raise ValueError("model weights not found")
"""

WRONG_TYPE = """
from palmares_desktop.core.plugins import hookimpl

@hookimpl
def palmares_importers():
    return ["not an importer"]
"""

UNKNOWN_HOOK = """
from palmares_desktop.core.plugins import hookimpl

@hookimpl
def palmares_make_coffee():
    return []
"""

PLUGINS = {
    # entry-point name: (distribution, version, module, source)
    "tiny": ("tiny-palmares-plugin", "0.3.1", "tiny_palmares_plugin", TINY),
    "broken": ("broken-palmares-plugin", "1.0", "broken_palmares_plugin", BROKEN_IMPORT),
    "raiser": ("raising-palmares-plugin", "2.0", "raising_palmares_plugin", RAISING),
    "wrongtype": ("wrongtype-palmares-plugin", "0.1", "wrongtype_palmares_plugin", WRONG_TYPE),
    "coffee": ("coffee-palmares-plugin", "0.1", "coffee_palmares_plugin", UNKNOWN_HOOK),
}


def install_plugins(target: Path, names=tuple(PLUGINS)) -> Path:
    """Write the plugins `names` into `target` (a site folder) and return it."""
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        dist, version, module, source = PLUGINS[name]
        package = target / module
        package.mkdir()
        (package / "__init__.py").write_text(textwrap.dedent(source), encoding="utf-8")
        info = target / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8"
        )
        (info / "entry_points.txt").write_text(
            f"[palmares_desktop.plugins]\n{name} = {module}\n", encoding="utf-8"
        )
    return target

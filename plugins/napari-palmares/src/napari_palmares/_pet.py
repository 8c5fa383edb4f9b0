"""A napari image layer as core's `PetVolume`, and core's PET threshold around a world point.

No number is computed here: the threshold, the mask and its metrics are core's
(`core.pet.threshold.threshold_in_region`); this module only maps the layer's voxels onto the
stored grid and back. It duck-types the layer (data, scale, translate, rotate, metadata), so it
needs no napari import and tests can hand it a plain object.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_palmares._layers import placement_of_grid
from palmares_desktop.core.errors import PalmaresError
from palmares_desktop.core.pet.threshold import PetVolume, Region, ThresholdResult, threshold_in_region
from palmares_desktop.core.segmentation.geometry import Grid

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


class PetLayerError(PalmaresError):
    """The layer cannot serve as a PET for the threshold tool; the message says why."""


@dataclass
class LayerPet:
    """A PET layer seen as core's PetVolume, with the map from a stored-grid mask to the layer."""

    volume: PetVolume
    to_display: Callable[[np.ndarray], np.ndarray]


def pet_of_layer(layer: Any) -> LayerPet:
    """Core's PetVolume of an image layer holding SUVbw: exact on a layer this plugin read (its
    stored grid is in metadata["grid"]); otherwise from the layer's scale and translate (a 3-D,
    axis-aligned layer in (z, y, x) mm, world = patient LPS)."""
    name, metadata = layer.name, dict(getattr(layer, "metadata", {}) or {})
    units = metadata.get("units")
    if units and units != "SUVbw":
        why = f" ({metadata['suv_error']})" if metadata.get("suv_error") else ""
        raise PetLayerError(
            f"The layer {name!r} is in {units}, not SUVbw{why}: the PET threshold rules need an "
            "SUV-calibrated PET."
        )
    if getattr(layer, "multiscale", False):
        raise PetLayerError(f"The layer {name!r} is multiscale; the PET threshold needs a plain 3-D volume.")
    data = np.asarray(layer.data)
    if data.ndim != 3:
        raise PetLayerError(
            f"The layer {name!r} has {data.ndim} dimensions; the PET threshold needs 3 (z, y, x)."
        )
    grid = metadata.get("grid")
    if grid:
        placement = placement_of_grid(grid)
        if tuple(data.shape) != tuple(placement.display_shape):
            raise PetLayerError(
                f"The layer {name!r} no longer has the shape of its PET grid ({data.shape} vs "
                f"{placement.display_shape}); open the PET again."
            )
        stored = placement.to_stored_array(data)
        core_grid = Grid(*(tuple(grid[k]) for k in ("size", "spacing", "origin", "direction")))
        return LayerPet(PetVolume(stored.astype(np.float32, copy=False), core_grid), placement.to_display)
    scale, translate = np.asarray(layer.scale, float), np.asarray(layer.translate, float)
    rotate = np.asarray(getattr(layer, "rotate", np.eye(3)), float)
    if np.any(scale <= 0) or not np.allclose(rotate, np.eye(3)):
        raise PetLayerError(
            f"The layer {name!r} is flipped or rotated in the viewer; the PET threshold needs an "
            "axis-aligned PET with positive voxel sizes."
        )
    core_grid = Grid(
        tuple(int(n) for n in data.shape[::-1]), tuple(scale[::-1]), tuple(translate[::-1]), IDENTITY
    )
    return LayerPet(PetVolume(data.astype(np.float32, copy=False), core_grid), lambda mask: mask)


def threshold_layer(
    layer: Any, world_zyx: Sequence[float], rule: str, box_mm: float
) -> tuple[ThresholdResult, np.ndarray]:
    """Core's threshold in a `box_mm` box centred on a world point (z, y, x mm, as napari gives it),
    seeded by the box's hottest voxel; the result and its mask on the layer's (display) grid."""
    pet = pet_of_layer(layer)
    centre = tuple(float(v) for v in reversed(tuple(world_zyx)[-3:]))  # (z, y, x) world -> (x, y, z) LPS
    result = threshold_in_region(pet.volume, Region(centre, float(box_mm), "box"), rule)
    return result, np.ascontiguousarray(pet.to_display(result.mask.astype(np.uint8)))


def result_lines(result: ThresholdResult) -> list[str]:
    """What the reader reads about a threshold result, first line first."""
    m, p = result.metrics, result.parameters
    lines = [
        f"{p['rule_words']}: threshold SUV {result.threshold_suv:.2f} ({m.voxel_count} voxels).",
        f"SUVmax {m.suv_max:.2f}   SUVmean {m.suv_mean:.2f}   SUVpeak {m.suv_peak:.2f}",
        f"MTV {m.mtv_ml:.2f} mL   TLG {m.tlg:.2f} g",
    ]
    if m.smaller_than_peak_sphere:
        lines.append(
            "The lesion is smaller than the 1 mL peak sphere: its SUVpeak includes surrounding tissue."
        )
    if p.get("touches_region_edge"):
        lines.append("The result reaches the edge of the box: it may have leaked into the surroundings.")
    return lines

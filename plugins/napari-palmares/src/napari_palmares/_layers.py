"""Layer data for napari from workstation volumes: placement, display defaults, metadata.

Geometry is core's `Placement` (the workstation's reading room uses the same one): a stored
(SimpleITK) grid is shown as a (z, y, x) array along the patient's LPS axes, with scale and
translate (and rotate for an oblique grid) in mm, so CT, PET and masks that share a frame of
reference overlay in world space. A layer's `metadata["grid"]` is the stored grid, so a tool can
map the layer's data back onto it voxel for voxel (see `stored_pet`).

Nothing here imports napari: the readers return plain `(data, kwargs, layer_type)` tuples.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import SimpleITK as sitk

from napari_palmares._workstation import (
    DEFAULT_SUV_MAX,
    DEFAULT_WINDOW,
    Placement,
    uncalibrated_display_max,
    window_limits,
)

LayerData = tuple[Any, dict[str, Any], str]

#: Inverted grey, as nuclear-medicine physicians read a PET on its own.
PET_COLORMAP = "gray_r"
#: Over a CT (a store subject), the PET is a hot overlay added to the grey.
PET_FUSED_COLORMAP = "hot"
PET_FUSED_OPACITY = 0.7


def grid_of(image: sitk.Image) -> dict[str, list]:
    """The stored grid of an image, JSON-safe (SimpleITK's x, y, z order, mm)."""
    return {
        "size": [int(v) for v in image.GetSize()],
        "spacing": [float(v) for v in image.GetSpacing()],
        "origin": [float(v) for v in image.GetOrigin()],
        "direction": [float(v) for v in image.GetDirection()],
    }


def placement_of_grid(grid: dict) -> Placement:
    return Placement.for_grid(grid["size"], grid["spacing"], grid["origin"], grid["direction"])


def placement_kwargs(placement: Placement) -> dict[str, Any]:
    """napari's scale, translate (and rotate when oblique) for a placement, in mm."""
    kwargs: dict[str, Any] = {
        "scale": tuple(placement.scale),
        "translate": tuple(placement.translate),
        "units": ("mm",) * 3,
    }
    if placement.rotate is not None:
        kwargs["rotate"] = placement.rotate
    return kwargs


def _display(image: sitk.Image, dtype) -> tuple[np.ndarray, Placement]:
    placement = Placement.of(image)
    # Contiguous: vispy uploads textures from it, and napari paints labels into it in place.
    data = np.ascontiguousarray(placement.to_display(image)).astype(dtype, copy=False)
    return data, placement


def ct_layer(image: sitk.Image, name: str, metadata: dict[str, Any]) -> LayerData:
    """A CT in HU, in the workstation's opening window (soft tissue)."""
    data, placement = _display(image, np.float32)
    metadata = {**metadata, "grid": grid_of(image), "window": DEFAULT_WINDOW}
    kwargs = {
        "name": name,
        "metadata": metadata,
        "colormap": "gray",
        "contrast_limits": tuple(float(v) for v in window_limits(DEFAULT_WINDOW)),
        **placement_kwargs(placement),
    }
    return data, kwargs, "image"


def pet_layer(image: sitk.Image, name: str, metadata: dict[str, Any], over_ct: bool = False) -> LayerData:
    """A PET: SUVbw from 0 to 6 (core's display range) when calibrated, else its stored units from 0
    to a high percentile. Alone in inverted grey; over a CT, a hot additive overlay."""
    data, placement = _display(image, np.float32)
    calibrated = metadata.get("units") == "SUVbw"
    top = DEFAULT_SUV_MAX if calibrated else uncalibrated_display_max(data)
    kwargs: dict[str, Any] = {
        "name": name,
        "metadata": {**metadata, "grid": grid_of(image)},
        "colormap": PET_FUSED_COLORMAP if over_ct else PET_COLORMAP,
        "contrast_limits": (0.0, float(top) if top > 0 else 1.0),
        **placement_kwargs(placement),
    }
    if over_ct:
        kwargs.update(blending="additive", opacity=PET_FUSED_OPACITY)
    return data, kwargs, "image"


def labels_layer(mask: np.ndarray, image: sitk.Image, name: str, metadata: dict[str, Any]) -> LayerData:
    """A labels layer from a (z, y, x) mask on `image`'s stored grid (0 outside, the label inside)."""
    placement = Placement.of(image)
    data = np.ascontiguousarray(placement.to_display(mask))
    kwargs = {
        "name": name,
        "metadata": {**metadata, "grid": grid_of(image)},
        "opacity": 0.5,
        **placement_kwargs(placement),
    }
    return data, kwargs, "labels"

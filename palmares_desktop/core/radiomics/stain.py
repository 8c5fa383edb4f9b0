"""The single stain channel the H&E radiomics preset (`he.yaml`) is computed on.

Ruifrok & Johnston colour deconvolution with the H&E-DAB matrix, the same arithmetic as
`skimage.color.rgb2hed(rgb)[..., 0]` (scikit-image >= 0.19), written out here so core does not
depend on scikit-image: intensities in [0, 1] are clipped at 1e-6, converted to optical density
log(I) / log(1e-6), projected on the hematoxylin vector and clipped at 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from palmares_desktop.core.radiomics.errors import RadiomicsError

# Rows: the RGB optical-density vectors of hematoxylin, eosin and DAB (Ruifrok & Johnston 2001).
RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED)
_LOG_ADJUST = np.log(1e-6)


def hematoxylin(rgb: np.ndarray) -> np.ndarray:
    """Hematoxylin channel (float64, >= 0) of an RGB array (..., 3), uint8 or float in [0, 1]."""
    rgb = np.asarray(rgb)
    if rgb.ndim < 2 or rgb.shape[-1] != 3:
        raise RadiomicsError(f"Colour deconvolution needs an RGB image (..., 3); got shape {rgb.shape}.")
    if rgb.dtype == np.uint8:
        values = rgb.astype(np.float64) / 255.0
    elif np.issubdtype(rgb.dtype, np.floating):
        values = rgb.astype(np.float64, copy=True)
    else:
        raise RadiomicsError(f"RGB pixels must be 8-bit or floating point in [0, 1], not {rgb.dtype}.")
    np.maximum(values, 1e-6, out=values)
    stains = (np.log(values) / _LOG_ADJUST) @ HED_FROM_RGB
    return np.maximum(stains[..., 0], 0)


def hematoxylin_image(rgb: np.ndarray, mpp_um: float | Sequence[float]) -> sitk.Image:
    """The hematoxylin channel of a slide region as a 2D SimpleITK image with spacing in mm.

    `rgb` is (rows, columns, 3) read at the study's fixed resolution; `mpp_um` its microns per
    pixel (one value, or (x, y)). Pair it with a 2D label map of the same shape (origin 0).
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3:
        raise RadiomicsError(f"A slide region must be (rows, columns, 3); got shape {rgb.shape}.")
    mpp = (float(mpp_um), float(mpp_um)) if np.isscalar(mpp_um) else tuple(float(v) for v in mpp_um)
    if len(mpp) != 2 or min(mpp) <= 0:
        raise RadiomicsError("The slide's microns per pixel must be known and positive.")
    image = sitk.GetImageFromArray(hematoxylin(rgb))
    image.SetSpacing((mpp[0] / 1000.0, mpp[1] / 1000.0))
    return image


def label_map_image(labels: np.ndarray, like: sitk.Image) -> sitk.Image:
    """A label map (rows, columns) of integers placed on the grid of `like` (e.g. a stain channel)."""
    labels = np.asarray(labels)
    if labels.shape != sitk.GetArrayViewFromImage(like).shape:
        raise RadiomicsError(f"The label map has shape {labels.shape}, the image {like.GetSize()[::-1]}.")
    mask = sitk.GetImageFromArray(labels.astype(np.uint8 if labels.max(initial=0) < 256 else np.uint32))
    mask.CopyInformation(like)
    return mask

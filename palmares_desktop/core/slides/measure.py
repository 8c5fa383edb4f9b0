"""Per-annotation measurements: area and perimeter (µm², mm², µm), stain and intensity features.

Stain features are the mean and SD of hematoxylin and eosin optical density (scikit-image units,
see stain.py) over the pixels of the annotation, after colour deconvolution with vectors estimated
once per slide by Macenko on the slide's tissue at low resolution, falling back to Ruifrok's
defaults (recorded, with the reason). Intensity features: mean and SD of the RGB channels and of
the luminance. Everything is computed at one stated resolution (`STAIN_MPP`, 1 µm/px, or level 0
when the slide is coarser) and stored with provenance: slide fingerprint, stain vectors and their
method, level and reduction read, µm per pixel, versions, time.

Radiomics features: pyradiomics 2D features of the `he` preset on the hematoxylin channel of the
region read at `RADIOMICS_MPP` (2 µm/px, as he.yaml asks), stored with the provenance CT/PET features
carry (parameter file and its sha256, versions, image and mask fingerprints) plus the read.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import shapely
import skimage

from palmares_desktop.core.model import Slide
from palmares_desktop.core.slides.reader import SlideError, SlideInfo, require_mpp
from palmares_desktop.core.slides.regions import read_at, region_of
from palmares_desktop.core.slides.stain import StainVectors, deconvolve, macenko

STAIN_MPP = 1.0  # µm per pixel for stain and intensity features
RADIOMICS_MPP = 2.0  # µm per pixel for the `he` radiomics preset (one resolution for the whole study)
ESTIMATE_PIXELS = 4_000_000  # the stain vectors are estimated on a level of at most this many pixels
_LUMA = np.array([0.2125, 0.7154, 0.0721])  # as skimage.color.rgb2gray


@dataclass
class Measured:
    annotation_id: str | None
    values: dict[str, dict] = field(default_factory=dict)  # kind -> name -> number
    provenance: dict[str, dict] = field(default_factory=dict)  # kind -> provenance
    refused: list[str] = field(default_factory=list)  # one sentence per measurement refused


def versions() -> dict[str, str]:
    from palmares_desktop import __version__

    return {
        "palmares": __version__,
        "numpy": np.__version__,
        "scikit-image": skimage.__version__,
        "shapely": shapely.__version__,
        "python": ".".join(map(str, sys.version_info[:3])),
    }


def shape_features(geometry, info: SlideInfo) -> dict[str, float]:
    """Area (µm², mm²) and perimeter (µm); SlideError in words when the slide has no MPP."""
    mpp_x, mpp_y = require_mpp(info)
    scaled = shapely.affinity.scale(geometry, mpp_x, mpp_y, origin=(0, 0))
    return {
        "area_um2": float(scaled.area),
        "area_mm2": float(scaled.area / 1e6),
        "perimeter_um": float(scaled.length),
        "area_px": float(geometry.area),
    }


def low_level(
    path: str | Path, info: SlideInfo, max_pixels: int = ESTIMATE_PIXELS
) -> tuple[np.ndarray, float]:
    """(RGB, downsample) of the whole slide at the finest level with at most `max_pixels` pixels,
    block-reduced from the coarsest level when even that is larger (a single-level slide)."""
    need = max(np.sqrt(info.width * info.height / max_pixels), 1.0)
    region = read_at(path, info, (0, 0, info.width, info.height), downsample=need, max_pixels=max_pixels * 4)
    return region.rgb, region.downsample


def slide_stains(path: str | Path, info: SlideInfo) -> StainVectors:
    """Macenko vectors of the slide's tissue at low resolution (Ruifrok's when not trustworthy)."""
    from palmares_desktop.core.slides.tissue import tissue_mask

    rgb, _ = low_level(path, info)
    return macenko(rgb, mask=tissue_mask(rgb))


def stain_features(rgb: np.ndarray, mask: np.ndarray, stains: StainVectors) -> dict[str, float]:
    """Mean/SD of hematoxylin and eosin OD and of RGB and luminance intensity over `mask`."""
    pixels = rgb[mask]
    if len(pixels) == 0:
        raise SlideError("The annotation covers no pixel at the measurement resolution.")
    hed = deconvolve(pixels, stains)
    values = {"pixels": float(len(pixels))}
    for n, name in enumerate(("hematoxylin_od", "eosin_od")):
        values[f"{name}_mean"] = float(hed[:, n].mean())
        values[f"{name}_sd"] = float(hed[:, n].std())
    as_float = pixels.astype(np.float64)
    for n, name in enumerate(("red", "green", "blue")):
        values[f"{name}_mean"] = float(as_float[:, n].mean())
        values[f"{name}_sd"] = float(as_float[:, n].std())
    luma = as_float @ _LUMA
    values["luminance_mean"], values["luminance_sd"] = float(luma.mean()), float(luma.std())
    return values


def radiomics_features(path: str | Path, info: SlideInfo, geometry) -> tuple[dict, dict]:
    """(values, provenance) of the `he` preset on the outline's hematoxylin channel at RADIOMICS_MPP.
    SlideError or RadiomicsError (a sentence) when the slide has no MPP or the region is too small."""
    from palmares_desktop.core.radiomics.extract import extract_features
    from palmares_desktop.core.radiomics.params import load_params
    from palmares_desktop.core.radiomics.stain import hematoxylin_image, label_map_image

    if not info.mpp_x:
        raise SlideError(
            f"{info.path.name} has no known pixel size (MPP): H&E radiomics features are computed at "
            f"{RADIOMICS_MPP:g} µm per pixel, so they cannot be computed on it."
        )
    region, mask = region_of(path, info, geometry, target_mpp=RADIOMICS_MPP)
    image = hematoxylin_image(region.rgb, region.mpp)
    result = extract_features(
        image, label_map_image(mask.astype(np.uint8), image), load_params("he"), label=1
    )
    return result.values, {**result.provenance, "read": region.provenance()}


def measure_geometry(
    path: str | Path,
    info: SlideInfo,
    geometry,
    stains: StainVectors,
    slide_sha256: str = "",
    annotation_id: str | None = None,
    radiomics: bool = True,
) -> Measured:
    """Shape, stain/intensity and (`radiomics`) pyradiomics features of one outline, each with
    provenance; each one refused in words when it cannot be measured, the others still are."""
    from palmares_desktop.core.radiomics.errors import RadiomicsError

    out = Measured(annotation_id)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    common = {
        "slide_sha256": slide_sha256,
        "geometry_sha256": hashlib.sha256(shapely.to_wkb(geometry)).hexdigest(),
        "versions": versions(),
        "computed_at": stamp,
    }
    try:
        out.values["shape"] = shape_features(geometry, info)
        out.provenance["shape"] = {
            **common,
            "mpp_um": [info.mpp_x, info.mpp_y],
            "mpp_source": info.mpp_source,
        }
    except SlideError as exc:
        out.refused.append(str(exc))
    kwargs = {"target_mpp": STAIN_MPP} if info.mpp_x else {"downsample": 1.0}
    try:
        region, mask = region_of(path, info, geometry, **kwargs)
        out.values["stain"] = stain_features(region.rgb, mask, stains)
        out.provenance["stain"] = {
            **common,
            "stains": stains.to_dict(),
            "od_units": "skimage rgb2hed: log(I)/log(1e-6)",
            "read": region.provenance(),
        }
    except SlideError as exc:
        out.refused.append(str(exc))
    if radiomics:
        try:
            values, provenance = radiomics_features(path, info, geometry)
            out.values["radiomics"] = values
            out.provenance["radiomics"] = {**common, **provenance}
        except (SlideError, RadiomicsError) as exc:
            out.refused.append(str(exc))
    return out


def measure_annotations(
    store, slide: Slide, path: str | Path, annotation_ids=None, radiomics: bool = True
) -> list[Measured]:
    """Measure the slide's annotations (all, or those ids) and store each kind with its provenance."""
    from palmares_desktop.core.slides.reader import open_slide
    from palmares_desktop.core.store.slide_objects import add_measurement, annotations_of

    info = open_slide(path)
    objects = [  # regions only: a cell point has no area, stain or texture
        o
        for o in annotations_of(store, slide.id, kind="annotation")
        if o["geometry"].geom_type in ("Polygon", "MultiPolygon")
    ]
    if annotation_ids is not None:
        wanted = set(annotation_ids)
        objects = [o for o in objects if o["id"] in wanted]
    if not objects:
        raise SlideError(f"Slide {slide.display_name} has no annotation to measure.")
    stains = slide_stains(path, info)
    results = []
    with store.transaction():
        for obj in objects:
            measured = measure_geometry(
                path, info, obj["geometry"], stains, slide.sha256, obj["id"], radiomics
            )
            for kind, values in measured.values.items():
                add_measurement(store, slide.id, obj["id"], kind, values, measured.provenance[kind])
            results.append(measured)
    return results

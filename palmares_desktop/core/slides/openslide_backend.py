"""The OpenSlide backend (NDPI, MRXS, Philips, SCN, BIF, VMS...): describe a slide, read its levels.

`openslide-bin` from the package index provides the library, so no system package is needed.
OpenSlide's `read_region` takes the origin in level-0 pixels and returns premultiplied RGBA;
pixels outside the scanned area are transparent and shown as white glass here.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from palmares_desktop.core.slides.levels import LevelView
from palmares_desktop.core.slides.reader import PLAUSIBLE_MPP, SlideError, SlideInfo


def openslide_format(path: Path) -> str | None:
    """OpenSlide's vendor name for a file it can read ('aperio', 'hamamatsu', 'mirax'...), else None."""
    import openslide

    try:
        return openslide.OpenSlide.detect_format(str(path))
    except openslide.OpenSlideError:
        return None


@lru_cache(maxsize=8)  # one open handle per recently used slide: opening an MRXS costs ~100 ms
def _handle(path: str):
    import openslide

    try:
        return openslide.OpenSlide(path)
    except openslide.OpenSlideError as exc:
        raise SlideError(f"{Path(path).name} could not be opened by OpenSlide ({exc}).") from exc


def _mpp(props) -> tuple[float | None, float | None]:
    try:
        x, y = float(props["openslide.mpp-x"]), float(props["openslide.mpp-y"])
    except (KeyError, ValueError):
        return None, None
    plausible = all(PLAUSIBLE_MPP[0] <= v <= PLAUSIBLE_MPP[1] for v in (x, y))
    return (x, y) if plausible else (None, None)


def open_openslide(path: Path) -> SlideInfo:
    slide = _handle(str(path))
    props = slide.properties
    mpp_x, mpp_y = _mpp(props)
    try:
        power = float(props["openslide.objective-power"])
    except (KeyError, ValueError):
        power = None
    levels = [(h, w) for w, h in slide.level_dimensions]
    vendor = openslide_format(path) or "openslide"
    return SlideInfo(
        path=path,
        format=vendor,
        width=levels[0][1],
        height=levels[0][0],
        levels=levels,
        mpp_x=mpp_x,
        mpp_y=mpp_y,
        vendor=vendor,
        mpp_source="openslide properties" if mpp_x else "",
        backend="openslide",
        objective_power=power,
        associated=sorted(slide.associated_images),
    )


def openslide_level(path: Path, level: int) -> LevelView:
    slide = _handle(str(path))
    if not 0 <= level < slide.level_count:
        raise SlideError(f"{path.name} has {slide.level_count} levels; level {level} does not exist.")
    width, height = slide.level_dimensions[level]
    downsample = slide.level_downsamples[level]

    def read(x: int, y: int, w: int, h: int) -> np.ndarray:
        origin = (round(x * downsample), round(y * downsample))  # OpenSlide wants level-0 coordinates
        rgba = np.asarray(slide.read_region(origin, level, (w, h)))
        rgb = rgba[..., :3].copy()
        rgb[rgba[..., 3] == 0] = 255  # transparent = outside the scan = glass
        return rgb

    return LevelView(height, width, read)


def openslide_associated(path: Path, name: str) -> np.ndarray:
    """An associated image (label, macro, thumbnail) as RGB. Site-only: labels show patient data."""
    images = _handle(str(path)).associated_images
    if name not in images:
        raise SlideError(f"{path.name} has no {name} image.")
    return np.asarray(images[name].convert("RGB"))

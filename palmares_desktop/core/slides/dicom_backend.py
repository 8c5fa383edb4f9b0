"""The DICOM WSI backend (VL Whole Slide Microscopy): wsidicom, with a pydicom frame reader as fallback.

A DICOM slide is a set of instances (one per pyramid level, plus label/overview/thumbnail) sharing
a SeriesInstanceUID. Given one .dcm file, its siblings of the same series are opened with it;
given a folder, every instance in it. wsidicom refuses single-file objects without the
functional groups and ImageType it needs (e.g. pydicom-converted TCGA slides); those are read
here frame by frame, assuming TILED_FULL (frames row-major, the standard default). Pixel size comes
from PixelSpacing (mm) in the shared functional groups; without it the MPP is unknown.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import pydicom

from palmares_desktop.core.slides.levels import LevelView
from palmares_desktop.core.slides.reader import PLAUSIBLE_MPP, SlideError, SlideInfo

VL_WSM = "1.2.840.10008.5.1.4.1.1.77.1.6"


def _header(path: Path):
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except (pydicom.errors.InvalidDicomError, OSError, ValueError):
        return None


@lru_cache(maxsize=8)
def _instances(path: str) -> tuple[Path, ...]:
    """The WSM instances of the slide `path` names (a file and its same-series siblings, or a folder)."""
    path = Path(path)
    candidates = sorted(path.glob("*")) if path.is_dir() else sorted(path.parent.glob("*"))
    headers = {p: _header(p) for p in candidates if p.is_file()}
    wsm = {p: h for p, h in headers.items() if h is not None and h.get("SOPClassUID") == VL_WSM}
    if not path.is_dir():
        if path not in wsm:
            raise SlideError(f"{path.name} is not a DICOM whole-slide image (VL Whole Slide Microscopy).")
        series = wsm[path].SeriesInstanceUID
        wsm = {p: h for p, h in wsm.items() if h.SeriesInstanceUID == series}
    if not wsm:
        raise SlideError(f"{path.name} contains no DICOM whole-slide image.")
    return tuple(wsm)


def _image_types(files) -> set[str]:
    return {str(t) for f in files for t in (_header(f).get("ImageType") or [])}


@lru_cache(maxsize=8)
def _wsidicom(path: str):
    """An open WsiDicom, or None when wsidicom does not accept these instances."""
    import wsidicom

    try:
        return wsidicom.WsiDicom.open([str(p) for p in _instances(path)])
    except Exception:  # noqa: BLE001 - wsidicom raises many types for objects it rejects; fall back
        return None


def _objective(header) -> float | None:
    for item in header.get("OpticalPathSequence") or []:
        if item.get("ObjectiveLensPower"):
            return float(item.ObjectiveLensPower)
    return None


def _pixel_spacing_um(header) -> tuple[float | None, float | None]:
    try:
        spacing = header.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
    except (AttributeError, IndexError):
        return None, None
    row, col = float(spacing[0]) * 1e3, float(spacing[1]) * 1e3  # mm -> µm; (row, column) order
    return (col, row) if all(PLAUSIBLE_MPP[0] <= v <= PLAUSIBLE_MPP[1] for v in (row, col)) else (None, None)


def open_dicom(path: Path) -> SlideInfo:
    files = _instances(str(path))
    header = _header(files[0])
    types = _image_types(files)
    associated = [
        n for n, t in (("label", "LABEL"), ("macro", "OVERVIEW"), ("thumbnail", "THUMBNAIL")) if t in types
    ]
    common = {
        "path": path,
        "format": "dicom",
        "vendor": str(header.get("Manufacturer") or "dicom"),
        "objective_power": _objective(header),
        "associated": associated,
    }
    wsi = _wsidicom(str(path))
    if wsi is not None:
        levels = [(lv.size.height, lv.size.width) for lv in wsi.levels]
        mpp = wsi.levels[0].mpp  # wsidicom reports µm per pixel
        known = mpp is not None and all(
            PLAUSIBLE_MPP[0] <= v <= PLAUSIBLE_MPP[1] for v in (mpp.width, mpp.height)
        )
        return SlideInfo(
            width=levels[0][1],
            height=levels[0][0],
            levels=levels,
            mpp_x=float(mpp.width) if known else None,
            mpp_y=float(mpp.height) if known else None,
            mpp_source="dicom pixel spacing" if known else "",
            backend="wsidicom",
            **common,
        )
    volume = _single_volume(files)
    mpp_x, mpp_y = _pixel_spacing_um(volume)
    height, width = int(volume.TotalPixelMatrixRows), int(volume.TotalPixelMatrixColumns)
    return SlideInfo(
        width=width,
        height=height,
        levels=[(height, width)],
        mpp_x=mpp_x,
        mpp_y=mpp_y,
        mpp_source="dicom pixel spacing" if mpp_x else "",
        backend="dicom-frames",
        **common,
    )


def _single_volume(files):
    if len(files) != 1:
        raise SlideError(
            f"{files[0].name}: wsidicom cannot read this DICOM slide and it is not a single file."
        )
    header = _header(files[0])
    organisation = header.get("DimensionOrganizationType", "TILED_FULL")
    if organisation != "TILED_FULL" or int(header.get("TotalPixelMatrixFocalPlanes", 1)) != 1:
        raise SlideError(f"{files[0].name}: only TILED_FULL single-focal-plane DICOM slides are supported.")
    return header


def dicom_level(path: Path, level: int) -> LevelView:
    info = open_dicom(path)
    if not 0 <= level < len(info.levels):
        raise SlideError(f"{path.name} has {len(info.levels)} levels; level {level} does not exist.")
    height, width = info.levels[level]
    wsi = _wsidicom(str(path))
    if wsi is not None:
        scale = wsi.levels[level].level  # wsidicom addresses levels by log2 of their downsample

        def read(x: int, y: int, w: int, h: int) -> np.ndarray:
            return np.asarray(wsi.read_region((x, y), scale, (w, h)).convert("RGB"))

        return LevelView(height, width, read)
    return LevelView(height, width, _FrameReader(_instances(str(path))[0]).read)


class _FrameReader:
    """Regions of a TILED_FULL single-file slide assembled from decoded frames (cached)."""

    def __init__(self, path: Path) -> None:
        self.dataset = pydicom.dcmread(path)
        self.tile_h, self.tile_w = int(self.dataset.Rows), int(self.dataset.Columns)
        self.across = math.ceil(int(self.dataset.TotalPixelMatrixColumns) / self.tile_w)
        self.frame = lru_cache(maxsize=256)(self._decode)

    def _decode(self, index: int) -> np.ndarray:
        from pydicom.pixels import pixel_array

        return pixel_array(self.dataset, index=index)

    def read(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        out = np.full((h, w, 3), 255, np.uint8)
        for row in range(y // self.tile_h, (y + h - 1) // self.tile_h + 1):
            for col in range(x // self.tile_w, (x + w - 1) // self.tile_w + 1):
                tile = self.frame(row * self.across + col)
                ty, tx = row * self.tile_h, col * self.tile_w
                y0, y1 = max(y, ty), min(y + h, ty + self.tile_h)
                x0, x1 = max(x, tx), min(x + w, tx + self.tile_w)
                out[y0 - y : y1 - y, x0 - x : x1 - x] = tile[y0 - ty : y1 - ty, x0 - tx : x1 - tx, :3]
        return out

"""Whole-slide image access through tifffile: what a slide is, and lazy arrays of its levels.

Handles Aperio SVS, OME-TIFF (pyramid in SubIFDs) and generic tiled TIFF pyramids (levels as
reduced-resolution pages), plus the other TIFF flavours tifffile recognises (NDPI, Philips, Leica
SCN, Ventana BIF). Pixel size (MPP, micrometres per level-0 pixel) comes from, in order:
the Aperio description (`MPP = ...`), OME-XML `PhysicalSizeX/Y` (with units), the Philips
`DICOM_PIXEL_SPACING` (mm), and the TIFF resolution tags. Resolution tags are trusted only when
they give a microscope-like pixel size (0.05-50 um): many writers put a meaningless 72 dpi there.
A slide without a trustworthy MPP gets `mpp_x = mpp_y = None`; measurements in um must refuse it.

Level arrays are read lazily: `level_array` returns a read-only zarr array backed by the file's
tiles, so `array[y0:y1, x0:x1]` decodes only the tiles it touches.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path

import tifffile
import zarr

PLAUSIBLE_MPP = (0.05, 50.0)
_UM_PER = {"pm": 1e-6, "nm": 1e-3, "µm": 1.0, "um": 1.0, "\u03bcm": 1.0, "mm": 1e3, "cm": 1e4, "m": 1e6}


class SlideError(Exception):
    """A slide file that cannot be used (message is a plain sentence)."""


@dataclass(frozen=True)
class SlideInfo:
    path: Path
    format: str  # svs | ome-tiff | ndpi | philips-tiff | scn | bif | tiff
    width: int  # level 0
    height: int
    levels: list[tuple[int, int]]  # (height, width) of every level, largest first
    mpp_x: float | None  # micrometres per level-0 pixel
    mpp_y: float | None
    vendor: str  # aperio | ome | hamamatsu | philips | leica | ventana | generic-tiff
    mpp_source: str = ""  # where the MPP came from (aperio description, ome, resolution tags...)

    @property
    def downsamples(self) -> list[float]:
        return [self.width / w for _, w in self.levels]

    def to_dict(self) -> dict:
        out = asdict(self)
        out["path"] = str(self.path)
        out["levels"] = [list(level) for level in self.levels]
        return out


_FLAVOURS = (  # tifffile flag, format, vendor
    ("is_svs", "svs", "aperio"),
    ("is_ome", "ome-tiff", "ome"),
    ("is_ndpi", "ndpi", "hamamatsu"),
    ("is_philips", "philips-tiff", "philips"),
    ("is_scn", "scn", "leica"),
    ("is_bif", "bif", "ventana"),
)


def _flavour(tif: tifffile.TiffFile) -> tuple[str, str]:
    for flag, fmt, vendor in _FLAVOURS:
        if getattr(tif, flag, False):
            return fmt, vendor
    return "tiff", "generic-tiff"


def _mpp_aperio(description: str) -> tuple[float, float] | None:
    match = re.search(r"\|\s*MPP\s*=\s*([0-9.eE+-]+)", description)
    return (float(match.group(1)),) * 2 if match else None  # type: ignore[return-value]


def _mpp_ome(xml: str) -> tuple[float, float] | None:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    pixels = next((el for el in root.iter() if el.tag.endswith("}Pixels") or el.tag == "Pixels"), None)
    if pixels is None or "PhysicalSizeX" not in pixels.attrib:
        return None
    values = []
    for axis in ("X", "Y"):
        size = float(pixels.attrib.get(f"PhysicalSize{axis}", pixels.attrib["PhysicalSizeX"]))
        unit = pixels.attrib.get(f"PhysicalSize{axis}Unit", "µm")  # OME's default unit is the micrometre
        values.append(size * _UM_PER.get(unit, 1.0))
    return values[0], values[1]


def _mpp_philips(description: str) -> tuple[float, float] | None:
    match = re.search(r'DICOM_PIXEL_SPACING"[^>]*>\s*"?([0-9.eE+-]+)"?\s+"?([0-9.eE+-]+)', description)
    return (float(match.group(2)) * 1e3, float(match.group(1)) * 1e3) if match else None  # mm -> um


def _mpp_resolution(page: tifffile.TiffPage) -> tuple[float, float] | None:
    unit = {2: 25400.0, 3: 10000.0}.get(int(page.resolutionunit or 0))  # um per inch / per cm
    x, y = page.resolution if page.resolution else (0.0, 0.0)
    if not unit or x <= 0 or y <= 0:
        return None
    return unit / x, unit / y


def _read_mpp(tif: tifffile.TiffFile, fmt: str) -> tuple[float | None, float | None, str]:
    page = tif.pages.first
    description = page.description or ""
    candidates = []
    if fmt == "svs":
        candidates.append(("aperio description", _mpp_aperio(description)))
    if fmt == "ome-tiff" and tif.ome_metadata:
        candidates.append(("ome physical size", _mpp_ome(tif.ome_metadata)))
    if fmt == "philips-tiff":
        candidates.append(("philips pixel spacing", _mpp_philips(description)))
    candidates.append(("resolution tags", _mpp_resolution(page)))
    for source, mpp in candidates:
        if mpp and all(PLAUSIBLE_MPP[0] <= v <= PLAUSIBLE_MPP[1] for v in mpp):
            return mpp[0], mpp[1], source
    return None, None, ""


def _yx(shape: tuple[int, ...], axes: str) -> tuple[int, int]:
    return shape[axes.index("Y")], shape[axes.index("X")]


def open_slide(path: str | Path) -> SlideInfo:
    """Describe a slide file (levels, size, pixel size, vendor) without reading its pixels."""
    path = Path(path)
    if not path.is_file():
        raise SlideError(f"The slide file {path} does not exist.")
    try:
        with tifffile.TiffFile(path) as tif:
            fmt, vendor = _flavour(tif)
            if not tif.series:
                raise SlideError(f"{path.name} contains no image.")
            series = tif.series[0]
            if "Y" not in series.axes or "X" not in series.axes:
                raise SlideError(f"{path.name} is not a 2D image (axes {series.axes}).")
            levels = [_yx(level.shape, level.axes) for level in series.levels]
            mpp_x, mpp_y, source = _read_mpp(tif, fmt)
    except SlideError:
        raise
    except (tifffile.TiffFileError, OSError, ValueError, KeyError, IndexError) as exc:
        raise SlideError(f"{path.name} is not a readable TIFF slide ({exc}).") from exc
    height, width = levels[0]
    return SlideInfo(path, fmt, width, height, levels, mpp_x, mpp_y, vendor, source)


def level_array(path: str | Path, level: int = 0) -> zarr.Array:
    """A lazy, read-only zarr array of one pyramid level: (height, width[, samples]).

    Only the tiles a slice touches are read and decoded. The file is reopened on demand by
    tifffile's store, so the array stays usable after this function returns.
    """
    path = Path(path)
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            if not 0 <= level < len(series.levels):
                raise SlideError(
                    f"{path.name} has {len(series.levels)} levels; level {level} does not exist."
                )
            store = series.aszarr(level=level)
    except SlideError:
        raise
    except (tifffile.TiffFileError, OSError, ValueError) as exc:
        raise SlideError(f"{path.name} is not a readable TIFF slide ({exc}).") from exc
    return zarr.open_array(store, mode="r")


def level_arrays(path: str | Path) -> list[zarr.Array]:
    """Lazy arrays of every level, largest first (what a multiscale viewer layer takes)."""
    return [level_array(path, level) for level in range(len(open_slide(path).levels))]

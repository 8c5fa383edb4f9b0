"""A pyramidal H&E-like whole-slide image, written tile by tile in a few seconds.

The file is an Aperio-style SVS: a tiled JPEG TIFF whose first ImageDescription starts with
"Aperio" and carries `MPP = 0.5` and `AppMag = 20`, a stripped thumbnail as the second page, then
one tiled page per 2x-downsampled level (the layout OpenSlide, QuPath/Bio-Formats and tifffile
all recognise as SVS). Resolution tags (pixels per centimetre) are written on every level too.

How it stays fast and small in memory: the tissue layout is a handful of low-resolution random
fields (tissue, tumour, lymphocytes, fat) shared by all levels. For each level a small library of
textured 512x512 tiles is drawn procedurally at that level's scale (pink stroma with fibres,
purple tumour nuclei, dark lymphocytes, white fat cells); each output tile is a library tile in
one of 4 orientations, or, on a class boundary, a per-pixel mix of library tiles chosen by the
fields sampled at that tile. Tiles are produced by a generator and JPEG-encoded by tifffile in a
thread pool; only the smallest level (about 5 MB) is held whole, to make the thumbnail.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage

TILE = 512
CELL = 64  # level-0 pixels per cell of the low-resolution layout fields
MPP = 0.5  # micrometres per level-0 pixel (20x)
JPEG_QUALITY = 80
BACKGROUND = np.array([243, 243, 241], np.uint8)

# Class codes in the tissue layout.
GLASS, STROMA, TUMOUR, INFLAMED, FAT = range(5)
CLASS_NAMES = ("background", "tumour stroma", "invasive tumour", "lymphocytic infiltrate", "fat")


@dataclass
class SlideResult:
    path: Path
    width: int
    height: int
    levels: list[tuple[int, int]]  # (height, width) per level
    mpp: float
    seconds: float
    tissue_fraction: float

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "width": self.width,
            "height": self.height,
            "levels": [list(level) for level in self.levels],
            "mpp": self.mpp,
            "seconds": round(self.seconds, 2),
            "tissue_fraction": round(self.tissue_fraction, 3),
        }


# --------------------------------------------------------------------------- textures
def _blobs(rng: np.random.Generator, shape: tuple[int, int], density: float, radius_px: float) -> np.ndarray:
    """Coverage (0..1) of round dark bodies (nuclei) of `radius_px` at `density` per pixel."""
    count = rng.poisson(density * shape[0] * shape[1])
    flat = rng.integers(0, shape[0] * shape[1], count)
    points = np.bincount(flat, weights=rng.uniform(0.6, 1.0, count), minlength=shape[0] * shape[1])
    sigma = radius_px / 1.5
    field = ndimage.gaussian_filter(points.reshape(shape).astype(np.float32), max(sigma, 0.7))
    return 1.0 - np.exp(-field * np.float32(2.3 * 2 * math.pi * sigma**2))


def _smooth(rng: np.random.Generator, shape: tuple[int, int], sigma) -> np.ndarray:
    """Unit-variance smooth noise; wide kernels are applied on a coarser grid, then interpolated."""
    coarse = max(1, int(min(np.atleast_1d(sigma)) // 4))
    small = (math.ceil(shape[0] / coarse), math.ceil(shape[1] / coarse))
    field = ndimage.gaussian_filter(rng.standard_normal(small).astype(np.float32), np.divide(sigma, coarse))
    if coarse > 1:
        field = ndimage.zoom(field, coarse, order=1)[: shape[0], : shape[1]]
    return field / (field.std() + 1e-6)


def _texture(kind: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """One 512x512 RGB tile of `kind` at `scale` level-0 pixels per pixel."""
    shape = (TILE, TILE)
    um = MPP * scale  # micrometres per pixel at this level
    stain = 1.0 + 0.035 * _smooth(rng, shape, 40 / scale + 2)[..., None]
    if kind == FAT:
        seeds = np.ones(shape, bool)
        n = max(4, int(TILE * TILE * um * um / 70.0**2))
        seeds[rng.integers(0, TILE, n), rng.integers(0, TILE, n)] = False
        _, (iy, ix) = ndimage.distance_transform_edt(seeds, return_indices=True)
        owner = iy * TILE + ix
        # Membranes between cells; not np.roll, whose wrap-around drew a line along every tile's edge.
        edge = np.zeros(shape, bool)
        edge[1:] |= owner[1:] != owner[:-1]
        edge[:, 1:] |= owner[:, 1:] != owner[:, :-1]
        membrane = ndimage.gaussian_filter(edge.astype(np.float32), max(0.6, 1.0 / um)) * min(
            1.0, 2.5 / um + 0.5
        )
        alpha = np.clip(membrane * 2.0, 0, 1)[..., None]
        rgb = (1 - alpha) * np.float32([250, 247, 249]) + alpha * np.float32([226, 150, 192])
        nuclei = _blobs(rng, shape, um * um / 9000.0, 2.5 / um)[..., None]
        rgb = (1 - nuclei) * rgb + nuclei * np.float32([95, 60, 140])
        return np.clip(rgb * stain, 0, 255).astype(np.uint8)
    if kind == TUMOUR:
        base = np.float32([214, 150, 200]) + 10 * _smooth(rng, shape, 3 / scale + 0.7)[..., None]
        nuclei = _blobs(rng, shape, um * um / 110.0, 4.2 / um)[..., None]
        dark = np.float32([70, 40, 125])
    else:
        fibres = _smooth(rng, shape, (max(0.6, 1.5 / scale), max(0.6, 9 / scale)))
        if rng.uniform() < 0.5:
            fibres = fibres.T
        f = (1 / (1 + np.exp(-1.5 * fibres)))[..., None]
        base = (1 - 0.6 * f) * np.float32([242, 182, 214]) + 0.6 * f * np.float32([218, 118, 170])
        if kind == INFLAMED:
            nuclei = np.maximum(
                _blobs(rng, shape, um * um / 130.0, 2.6 / um), _blobs(rng, shape, um * um / 900.0, 3.0 / um)
            )[..., None]
            dark = np.float32([48, 30, 105])
        else:
            nuclei = _blobs(rng, shape, um * um / 900.0, 2.8 / um)[..., None]
            dark = np.float32([90, 55, 140])
    rgb = (1 - 0.92 * nuclei) * base + 0.92 * nuclei * dark
    return np.clip(rgb * stain, 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=8)
def texture_library(level: int, seed: int = 7) -> dict[int, list[np.ndarray]]:
    """Textured tiles per class at this level's scale, each also stored transposed (C-contiguous),
    so that picking a tile in one of 4 orientations never needs a slow strided copy. Cached: shared
    by all slides of a run (13-19 MB per level; `texture_library.cache_clear()` frees it)."""
    rng = np.random.default_rng([seed, level])
    variants = 3 if level < 3 else 2
    library: dict[int, list[np.ndarray]] = {}
    for kind in (STROMA, TUMOUR, INFLAMED, FAT):
        tiles = [_texture(kind, 2.0**level, rng) for _ in range(variants)]
        library[kind] = tiles + [np.ascontiguousarray(t.transpose(1, 0, 2)) for t in tiles]
    library[GLASS] = [np.ascontiguousarray(np.broadcast_to(BACKGROUND, (TILE, TILE, 3)))]
    for tiles in library.values():
        for tile in tiles:
            tile.flags.writeable = False
    return library


# --------------------------------------------------------------------------- layout
def _interpolation(span: int, n: int, step: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Lower cell index and (float32) weight of the upper cell for a tile's n sample points."""
    positions = (np.arange(n) * step + step / 2) * scale  # in cells from the tile's first cell
    lower = np.minimum(np.floor(positions).astype(int), span - 1)
    return lower, (positions - lower).astype(np.float32)


def _bilinear(values: np.ndarray, lower: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Bilinear upsampling of a window of cells, in float32 (separable: rows first, then columns).
    Gathers, not matrix products: BLAS threads spin and fight tifffile's encoder threads."""
    values = values.astype(np.float32, copy=False)
    rows = values[lower] * (1 - weight)[:, None] + values[lower + 1] * weight[:, None]
    return rows[:, lower] * (1 - weight)[None, :] + rows[:, lower + 1] * weight[None, :]


class TissueLayout:
    """Low-resolution random fields (one value per 64x64 level-0 pixels) that decide every pixel's class.

    A field minus its threshold is > 0 where its class applies; classes are decided in a fixed
    priority. Every level samples the same fields, so the levels agree with each other.
    """

    def __init__(self, width: int, height: int, n_levels: int, rng: np.random.Generator):
        top = TILE * 2 ** (n_levels - 1)  # the fields cover whole tiles of every level
        gh, gw = math.ceil(height / top) * top // CELL + 1, math.ceil(width / top) * top // CELL + 1
        yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float32)
        th, tw = height / CELL, width / CELL
        tissue = 0.6 * _smooth(rng, (gh, gw), 9)
        for _ in range(int(rng.integers(2, 4))):  # a few large tissue pieces
            cy, cx = rng.uniform(0.3, 0.7) * th, rng.uniform(0.25, 0.75) * tw
            ry, rx = rng.uniform(0.18, 0.3) * th, rng.uniform(0.15, 0.28) * tw
            tissue += 2.2 * np.exp(-(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2))
        self.fields = {
            GLASS: 1.1 - tissue,
            FAT: _smooth(rng, (gh, gw), 8) - 1.0,
            TUMOUR: _smooth(rng, (gh, gw), 8) - 0.4,
            INFLAMED: _smooth(rng, (gh, gw), 5) - 1.1,
        }
        self.cells = self.classify(self.fields)
        self._fields32 = {kind: field.astype(np.float32) for kind, field in self.fields.items()}
        self._interpolation: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    @staticmethod
    def classify(f: dict[int, np.ndarray]) -> np.ndarray:
        out = np.full(f[GLASS].shape, STROMA, np.uint8)
        for kind in (INFLAMED, TUMOUR, FAT, GLASS):  # later wins
            out[f[kind] > 0] = kind
        return out

    def _window(self, level: int, ty: int, tx: int, margin: int = 0) -> tuple[slice, slice]:
        span = TILE * 2**level // CELL
        return (
            slice(max(0, ty * span - margin), (ty + 1) * span + 1 + margin),
            slice(max(0, tx * span - margin), (tx + 1) * span + 1 + margin),
        )

    def tile_class(self, level: int, ty: int, tx: int) -> int | None:
        """The class of a tile whose cells (and their neighbours) all agree, else None."""
        cells = self.cells[self._window(level, ty, tx, margin=1)]
        first = int(cells.flat[0])
        return first if (cells == first).all() else None

    def sample_classes(self, level: int, ty: int, tx: int, step: int = 1) -> np.ndarray:
        """Class of every `step` x `step` block of a tile (bilinear fields, then thresholds)."""
        if (level, step) not in self._interpolation:
            self._interpolation[level, step] = _interpolation(
                TILE * 2**level // CELL, TILE // step, step, 2**level / CELL
            )
        lower, weight = self._interpolation[level, step]
        window = self._window(level, ty, tx)
        out = np.full((len(lower),) * 2, STROMA, np.uint8)
        for kind in (INFLAMED, TUMOUR, FAT, GLASS):  # later wins
            cells = self._fields32[kind][window]
            if (cells <= 0).all():  # a linear mix of values of one sign keeps that sign: no need
                continue  # to interpolate fields that do not cross their threshold in this tile
            if (cells > 0).all():
                out.fill(kind)
            else:
                out[_bilinear(cells, lower, weight) > 0] = kind
        return out

    def tissue_fraction(self) -> float:
        return float((self.cells != GLASS).mean())


def _pixels(tile: np.ndarray) -> np.ndarray:
    """A (512, 512) view of a tile whose items are whole RGB pixels (3 bytes): masked copies of
    3-byte items are ~2x faster than per-byte masking with a broadcast (512, 512, 1) mask."""
    return tile.view("V3")[..., 0]


def _tiles(
    layout: TissueLayout, level: int, shape: tuple[int, int], rng: np.random.Generator
) -> Iterator[np.ndarray]:
    """Row-major 512x512 tiles of one level (edge tiles are padded by tifffile's crop)."""
    library = texture_library(level)
    rows, cols = math.ceil(shape[0] / TILE), math.ceil(shape[1] / TILE)

    def pick(kind: int) -> np.ndarray:
        options = library[kind]
        tile = options[int(rng.integers(len(options)))]
        return tile[::-1] if rng.integers(2) else tile  # a row flip is a cheap copy; column flips are not

    for ty in range(rows):
        for tx in range(cols):
            kind = layout.tile_class(level, ty, tx)
            if kind is not None:
                yield pick(kind)
                continue
            # One class per pixel, at every level: coarser sampling shows as stair steps at overview zoom.
            classes = layout.sample_classes(level, ty, tx)
            present = np.flatnonzero(np.bincount(classes.ravel(), minlength=5))
            tile = np.array(pick(int(present[0])))
            for kind in present[1:]:
                np.copyto(_pixels(tile), _pixels(pick(int(kind))), where=classes == kind)
            yield tile


def _description(
    n: int, width: int, height: int, level_shape: tuple[int, int] | None, thumbnail: bool = False
) -> str:
    head = f"Aperio Image Library v12.0.16 \r\n{width}x{height} [0,0 {width}x{height}] ({TILE}x{TILE})"
    if thumbnail and level_shape:
        return f"Aperio Image Library v12.0.16 \r\n{width}x{height} -> {level_shape[1]}x{level_shape[0]} - "
    if level_shape:
        return f"{head} -> {level_shape[1]}x{level_shape[0]} JPEG/RGB Q={JPEG_QUALITY}"
    # Filename/Date/User look like what a scanner writes (and what slide de-identification must strip).
    return (
        f"{head} JPEG/RGB Q={JPEG_QUALITY}|AppMag = 20|StripeWidth = 2048|ScanScope ID = DEMO-SCANNER"
        f"|Filename = DEMO-SUBJECT{n}-HE|Date = 06/1{n % 10}/25|Time = 11:2{n % 10}:00|Time Zone = GMT+01:00"
        f"|User = demo-technician|MPP = {MPP}|Left = 21.5|Top = 17.2|ImageID = {n}"
        f"|OriginalWidth = {width}|OriginalHeight = {height}"
    )


def write_slide(
    path: str | Path,
    subject_index: int = 1,
    width: int = 22528,
    height: int = 20480,
    n_levels: int = 5,
    seed: int = 2025,
    maxworkers: int = 2,
) -> SlideResult:
    """Write a pyramidal H&E-like SVS of `width` x `height` with `n_levels` levels; returns what it wrote."""
    start = time.perf_counter()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, subject_index, 99])
    layout = TissueLayout(width, height, n_levels, rng)
    shapes = [(math.ceil(height / 2**k), math.ceil(width / 2**k)) for k in range(n_levels)]
    options = dict(
        photometric="rgb",
        compression="jpeg",
        compressionargs={"level": JPEG_QUALITY},
        resolutionunit="CENTIMETER",
        metadata=None,
        maxworkers=maxworkers,
        buffersize=32 * 2**20,
    )
    smallest = shapes[-1]
    smallest_tiles = list(_tiles(layout, n_levels - 1, smallest, rng))  # small; also gives the thumbnail
    rows, cols = math.ceil(smallest[0] / TILE), math.ceil(smallest[1] / TILE)
    mosaic = np.vstack([np.hstack(smallest_tiles[r * cols : (r + 1) * cols]) for r in range(rows)])
    mosaic = mosaic[: smallest[0], : smallest[1]]
    with tifffile.TiffWriter(path, bigtiff=False) as tif:
        for level, shape in enumerate(shapes):
            per_cm = 1e4 / (MPP * 2**level)
            tiles = iter(smallest_tiles) if level == n_levels - 1 else _tiles(layout, level, shape, rng)
            tif.write(
                tiles,
                shape=(*shape, 3),
                dtype=np.uint8,
                tile=(TILE, TILE),
                resolution=(per_cm, per_cm),
                description=_description(subject_index, width, height, shape if level else None),
                **options,
            )
            if level == 0:  # SVS: the thumbnail is the second page, stripped
                thumb = mosaic[::2, ::2]
                tif.write(
                    np.ascontiguousarray(thumb),
                    rowsperstrip=16,
                    resolution=(per_cm / 2**n_levels,) * 2,
                    description=_description(subject_index, width, height, thumb.shape[:2], thumbnail=True),
                    **{**options, "maxworkers": 1},
                )
    return SlideResult(
        path, width, height, shapes, MPP, time.perf_counter() - start, layout.tissue_fraction()
    )

"""A pyramidal H&E-like whole-slide image, written tile by tile in a few seconds.

The file is an Aperio-style SVS: a tiled JPEG TIFF whose first ImageDescription starts with
"Aperio" and carries `MPP = 0.5` and `AppMag = 20`, a stripped thumbnail as the second page, then
one tiled page per 2x-downsampled level (the layout OpenSlide, QuPath/Bio-Formats and tifffile
all recognise as SVS). Resolution tags (pixels per centimetre) are written on every level too.

How it stays fast and small in memory: the tissue layout is a handful of low-resolution random
fields (tissue, tumour, lymphocytes, fat) shared by all levels. For each level a small library of
textured 512x512 tiles is drawn procedurally at that level's scale (pink stroma with fibres,
purple tumour nuclei, dark lymphocytes, white fat cells); each output tile is a library tile in
one of 8 orientations, or, on a class boundary, a per-pixel mix of library tiles chosen by the
fields sampled at that tile. Tiles are produced by a generator and JPEG-encoded by tifffile in a
thread pool; no level is ever held whole (the thumbnail comes from the smallest level).
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
        return {"path": str(self.path), "width": self.width, "height": self.height,
                "levels": [list(level) for level in self.levels], "mpp": self.mpp,
                "seconds": round(self.seconds, 2), "tissue_fraction": round(self.tissue_fraction, 3)}


# --------------------------------------------------------------------------- textures
def _blobs(rng: np.random.Generator, shape: tuple[int, int], density: float, radius_px: float) -> np.ndarray:
    """Coverage (0..1) of round dark bodies (nuclei) of `radius_px` at `density` per pixel."""
    count = rng.poisson(density * shape[0] * shape[1])
    points = np.zeros(shape, np.float32)
    np.add.at(points, (rng.integers(0, shape[0], count), rng.integers(0, shape[1], count)),
              rng.uniform(0.6, 1.0, count).astype(np.float32))
    sigma = radius_px / 1.5
    field = ndimage.gaussian_filter(points, max(sigma, 0.7))
    return 1.0 - np.exp(-field * 2.3 * 2 * math.pi * sigma**2)


def _smooth(rng: np.random.Generator, shape: tuple[int, int], sigma) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
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
        edge = (owner != np.roll(owner, 1, 0)) | (owner != np.roll(owner, 1, 1))
        membrane = ndimage.gaussian_filter(edge.astype(np.float32), max(0.6, 1.0 / um)) * min(1.0, 2.5 / um + 0.5)
        alpha = np.clip(membrane * 2.0, 0, 1)[..., None]
        rgb = (1 - alpha) * np.array([250, 247, 249]) + alpha * np.array([226, 150, 192])
        nuclei = _blobs(rng, shape, um * um / 9000.0, 2.5 / um)[..., None]
        rgb = (1 - nuclei) * rgb + nuclei * np.array([95, 60, 140])
        return np.clip(rgb * stain, 0, 255).astype(np.uint8)
    if kind == TUMOUR:
        base = np.array([214, 150, 200]) + 10 * _smooth(rng, shape, 3 / scale + 0.7)[..., None]
        nuclei = _blobs(rng, shape, um * um / 110.0, 4.2 / um)[..., None]
        dark = np.array([70, 40, 125])
    else:
        fibres = _smooth(rng, shape, (max(0.6, 1.5 / scale), max(0.6, 9 / scale)))
        if rng.uniform() < 0.5:
            fibres = fibres.T
        f = (1 / (1 + np.exp(-1.5 * fibres)))[..., None]
        base = (1 - 0.6 * f) * np.array([242, 182, 214]) + 0.6 * f * np.array([218, 118, 170])
        if kind == INFLAMED:
            nuclei = np.maximum(_blobs(rng, shape, um * um / 130.0, 2.6 / um),
                                _blobs(rng, shape, um * um / 900.0, 3.0 / um))[..., None]
            dark = np.array([48, 30, 105])
        else:
            nuclei = _blobs(rng, shape, um * um / 900.0, 2.8 / um)[..., None]
            dark = np.array([90, 55, 140])
    rgb = (1 - 0.92 * nuclei) * base + 0.92 * nuclei * dark
    return np.clip(rgb * stain, 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=8)
def texture_library(level: int, seed: int = 7) -> dict[int, list[np.ndarray]]:
    """A few textured tiles per class, drawn at this level's scale (cached: shared by all slides)."""
    rng = np.random.default_rng([seed, level])
    variants = 3 if level < 3 else 2
    library = {kind: [_texture(kind, 2.0**level, rng) for _ in range(variants)]
               for kind in (STROMA, TUMOUR, INFLAMED, FAT)}
    library[GLASS] = [np.broadcast_to(BACKGROUND, (TILE, TILE, 3))]
    for tiles in library.values():
        for tile in tiles:
            tile.flags.writeable = False
    return library


# --------------------------------------------------------------------------- layout
class TissueLayout:
    """Low-resolution random fields that decide the class of every point of the slide."""

    def __init__(self, width: int, height: int, rng: np.random.Generator):
        gh, gw = math.ceil(height / CELL) + 1, math.ceil(width / CELL) + 1
        yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float32)
        tissue = 0.6 * _smooth(rng, (gh, gw), 9)
        for _ in range(int(rng.integers(2, 4))):  # a few large tissue pieces
            cy, cx = rng.uniform(0.25, 0.75) * gh, rng.uniform(0.2, 0.8) * gw
            ry, rx = rng.uniform(0.18, 0.32) * gh, rng.uniform(0.15, 0.3) * gw
            tissue += 2.2 * np.exp(-(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2))
        # Field minus its threshold: > 0 means "inside"; classes are decided in a fixed priority.
        self.fields = {
            GLASS: 1.1 - tissue,
            FAT: _smooth(rng, (gh, gw), 5) - 1.0,
            TUMOUR: _smooth(rng, (gh, gw), 7) - 0.35,
            INFLAMED: _smooth(rng, (gh, gw), 3) - 0.9,
        }
        self.shape = (gh, gw)

    def classify(self, f: dict[int, np.ndarray]) -> np.ndarray:
        out = np.full(f[GLASS].shape, STROMA, np.uint8)
        for kind in (INFLAMED, TUMOUR, FAT, GLASS):  # later wins
            out[f[kind] > 0] = kind
        return out

    def tile_class(self, level: int, ty: int, tx: int) -> int | None:
        """The single class of a tile, or None when the tile straddles a boundary."""
        span = TILE * 2**level / CELL
        y0, x0 = int(ty * span) - 1, int(tx * span) - 1
        y1, x1 = int((ty + 1) * span) + 2, int((tx + 1) * span) + 2
        window = (slice(max(0, y0), y1), slice(max(0, x0), x1))
        corners = {}
        for kind, field in self.fields.items():
            part = field[window]
            if part.size == 0:
                return GLASS
            if part.min() > 0:
                corners[kind] = np.ones((1, 1), np.float32)
            elif part.max() <= 0:
                corners[kind] = -np.ones((1, 1), np.float32)
            else:
                return None  # bilinear samples inside could fall on either side
        return int(self.classify(corners)[0, 0])

    def sample_classes(self, level: int, ty: int, tx: int, step: int = 4) -> np.ndarray:
        """Class of every `step`-th pixel of a tile (bilinear fields, then thresholds)."""
        n = TILE // step
        scale = 2**level / CELL
        coords = (np.arange(n) * step + step / 2) * scale
        gy = (ty * TILE * scale + coords)[:, None] * np.ones((1, n))
        gx = (tx * TILE * scale + coords)[None, :] * np.ones((n, 1))
        sampled = {kind: ndimage.map_coordinates(field, [gy, gx], order=1, mode="nearest")
                   for kind, field in self.fields.items()}
        return self.classify(sampled)

    def tissue_fraction(self) -> float:
        return float((self.fields[GLASS] <= 0).mean())


_ORIENT = [lambda t: t, np.fliplr, np.flipud, lambda t: t[::-1, ::-1],
           lambda t: t.transpose(1, 0, 2), lambda t: t.transpose(1, 0, 2)[::-1],
           lambda t: t.transpose(1, 0, 2)[:, ::-1], lambda t: t.transpose(1, 0, 2)[::-1, ::-1]]


def _tiles(layout: TissueLayout, level: int, shape: tuple[int, int], rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Row-major 512x512 tiles of one level (edge tiles are padded by tifffile's crop)."""
    library = texture_library(level)
    rows, cols = math.ceil(shape[0] / TILE), math.ceil(shape[1] / TILE)

    def pick(kind: int) -> np.ndarray:
        options = library[kind]
        return _ORIENT[int(rng.integers(8))](options[int(rng.integers(len(options)))])

    for ty in range(rows):
        for tx in range(cols):
            kind = layout.tile_class(level, ty, tx)
            if kind is not None:
                yield pick(kind)
                continue
            classes = np.repeat(np.repeat(layout.sample_classes(level, ty, tx), 4, 0), 4, 1)
            tile = np.empty((TILE, TILE, 3), np.uint8)
            for present in np.unique(classes):
                mask = classes == present
                tile[mask] = pick(int(present))[mask]
            yield tile


def _description(n: int, width: int, height: int, level_shape: tuple[int, int] | None, thumbnail: bool = False) -> str:
    head = f"Aperio Image Library v12.0.16 \r\n{width}x{height} [0,0 {width}x{height}] ({TILE}x{TILE})"
    if thumbnail and level_shape:
        return f"Aperio Image Library v12.0.16 \r\n{width}x{height} -> {level_shape[1]}x{level_shape[0]} - "
    if level_shape:
        return f"{head} -> {level_shape[1]}x{level_shape[0]} JPEG/RGB Q={JPEG_QUALITY}"
    # Filename/Date/User look like what a scanner writes (and what slide de-identification must strip).
    return (f"{head} JPEG/RGB Q={JPEG_QUALITY}|AppMag = 20|StripeWidth = 2048|ScanScope ID = DEMO-SCANNER"
            f"|Filename = DEMO-SUBJECT{n}-HE|Date = 06/1{n % 10}/25|Time = 11:2{n % 10}:00|Time Zone = GMT+01:00"
            f"|User = demo-technician|MPP = {MPP}|Left = 21.5|Top = 17.2|ImageID = {n}"
            f"|OriginalWidth = {width}|OriginalHeight = {height}")


def write_slide(path: str | Path, subject_index: int = 1, width: int = 22528, height: int = 20480,
                n_levels: int = 5, seed: int = 2025, maxworkers: int = 2) -> SlideResult:
    """Write a pyramidal H&E-like SVS of `width` x `height` with `n_levels` levels; returns what it wrote."""
    start = time.perf_counter()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, subject_index, 99])
    layout = TissueLayout(width, height, rng)
    shapes = [(math.ceil(height / 2**k), math.ceil(width / 2**k)) for k in range(n_levels)]
    options = dict(photometric="rgb", compression="jpeg", compressionargs={"level": JPEG_QUALITY},
                   resolutionunit="CENTIMETER", metadata=None, maxworkers=maxworkers, buffersize=32 * 2**20)
    smallest = shapes[-1]
    smallest_tiles = list(_tiles(layout, n_levels - 1, smallest, rng))  # small; also gives the thumbnail
    rows, cols = math.ceil(smallest[0] / TILE), math.ceil(smallest[1] / TILE)
    mosaic = np.vstack([np.hstack(smallest_tiles[r * cols:(r + 1) * cols]) for r in range(rows)])
    mosaic = mosaic[: smallest[0], : smallest[1]]
    with tifffile.TiffWriter(path, bigtiff=False) as tif:
        for level, shape in enumerate(shapes):
            per_cm = 1e4 / (MPP * 2**level)
            tiles = iter(smallest_tiles) if level == n_levels - 1 else _tiles(layout, level, shape, rng)
            tif.write(tiles, shape=(*shape, 3), dtype=np.uint8, tile=(TILE, TILE), resolution=(per_cm, per_cm),
                      description=_description(subject_index, width, height, shape if level else None), **options)
            if level == 0:  # SVS: the thumbnail is the second page, stripped
                thumb = mosaic[::2, ::2]
                tif.write(np.ascontiguousarray(thumb), rowsperstrip=16, resolution=(per_cm / 2**n_levels,) * 2,
                          description=_description(subject_index, width, height, thumb.shape[:2], thumbnail=True),
                          **{**options, "maxworkers": 1})
    return SlideResult(path, width, height, shapes, MPP, time.perf_counter() - start, layout.tissue_fraction())

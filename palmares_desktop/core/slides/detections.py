"""Detections (cells, nuclei) as compact arrays, packed per slide tile for the store.

QuPath keeps detections apart from annotations because there are hundreds of thousands of them;
here a set of detections is a few numpy arrays, never one Python object per cell:

    centroids     (n, 2) float64   level-0 x, y
    offsets       (n + 1,) int64   detection i's outline is vertices[offsets[i]:offsets[i + 1]]
    vertices      (m, 2) float64   level-0 x, y (exact: float64 round-trips QuPath coordinates)
    classes       (n,) int16       index into `class_names` (-1: unclassified)
    measurements  (n, k) float64   columns named by `measurement_names`

`pack_tiles` splits them by the 2048-px slide tile holding each centroid and writes each tile as one
blob of raw little-endian arrays behind a small header (`_blob`; no pickle, read back without a copy
by `unpack`). A viewport then reads only the tiles it overlaps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely

TILE = 2048  # level-0 pixels per side of a storage tile


@dataclass
class Detections:
    centroids: np.ndarray
    offsets: np.ndarray
    vertices: np.ndarray
    measurements: np.ndarray
    measurement_names: list[str]
    classes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))
    class_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.classes) != len(self.centroids):
            self.classes = np.full(len(self.centroids), -1, np.int16)

    def __len__(self) -> int:
        return len(self.centroids)

    @classmethod
    def empty(cls, names: Sequence[str] = ()) -> Detections:
        return cls(
            np.zeros((0, 2)), np.zeros(1, np.int64), np.zeros((0, 2)), np.zeros((0, len(names))), list(names)
        )

    @classmethod
    def from_outlines(
        cls,
        centroids: np.ndarray,
        outlines: Sequence[np.ndarray],
        measurements: np.ndarray,
        names: Sequence[str],
        classes: np.ndarray | None = None,
        class_names: Sequence[str] = (),
    ) -> Detections:
        lengths = np.fromiter((len(o) for o in outlines), np.int64, len(outlines))
        offsets = np.zeros(len(outlines) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        vertices = np.concatenate(outlines).astype(np.float64) if outlines else np.zeros((0, 2))
        return cls(
            np.asarray(centroids, np.float64).reshape(-1, 2),
            offsets,
            vertices,
            np.asarray(measurements, np.float64).reshape(len(outlines), len(names)),
            list(names),
            np.asarray(classes, np.int16) if classes is not None else np.zeros(0, np.int16),
            list(class_names),
        )

    @classmethod
    def from_geometries(
        cls,
        geometries: Sequence,
        measurements: np.ndarray | None = None,
        names: Sequence[str] = (),
        classes: np.ndarray | None = None,
        class_names: Sequence[str] = (),
    ) -> Detections:
        """From shapely polygons (exterior rings; e.g. QuPath detections) or points."""
        geoms = np.asarray(geometries, dtype=object)
        outlines = [
            np.asarray(g.exterior.coords) if g.geom_type == "Polygon" else np.asarray(g.coords) for g in geoms
        ]
        centroids = shapely.get_coordinates(shapely.centroid(geoms)) if len(geoms) else np.zeros((0, 2))
        values = measurements if measurements is not None else np.zeros((len(geoms), len(names)))
        return cls.from_outlines(centroids, outlines, values, names, classes, class_names)

    def outline(self, i: int) -> np.ndarray:
        return self.vertices[self.offsets[i] : self.offsets[i + 1]]

    def geometries(self) -> np.ndarray:
        """Shapely polygons (points where an outline has fewer than 4 vertices), vectorised."""
        counts = np.diff(self.offsets)
        if len(self) and counts.min() >= 4:
            rings = shapely.linearrings(self.vertices, indices=np.repeat(np.arange(len(self)), counts))
            return shapely.polygons(rings)
        return np.array(
            [
                shapely.Polygon(self.outline(i)) if counts[i] >= 4 else shapely.Point(self.centroids[i])
                for i in range(len(self))
            ],
            dtype=object,
        )

    def column(self, name: str) -> np.ndarray:
        return self.measurements[:, self.measurement_names.index(name)]

    def subset(self, index: np.ndarray) -> Detections:
        """The detections at `index` (ints or a boolean mask), outlines gathered without a Python loop."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        counts = np.diff(self.offsets)[index]
        offsets = np.zeros(len(index) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        gather = np.repeat(self.offsets[index] - offsets[:-1], counts) + np.arange(offsets[-1])
        return Detections(
            self.centroids[index],
            offsets,
            np.take(self.vertices, gather, axis=0),  # 3x faster than vertices[gather] for 2-column rows
            self.measurements[index],
            self.measurement_names,
            self.classes[index],
            self.class_names,
        )

    @staticmethod
    def concatenate(parts: Sequence[Detections]) -> Detections:
        """One set from many (e.g. tiles, runs): class indices remapped onto one class list; measurement
        columns are those of the first part (parts with other columns get NaN where they lack one)."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return Detections.empty()
        names = list(parts[0].measurement_names)
        class_names: list[str] = []
        for p in parts:
            class_names += [c for c in p.class_names if c not in class_names]
        classes, values = [], []
        for p in parts:
            lookup = np.array([class_names.index(c) for c in p.class_names] + [-1], np.int16)
            classes.append(lookup[p.classes] if p.class_names else p.classes)
            if p.measurement_names == names:
                values.append(p.measurements)
            else:
                cols = np.full((len(p), len(names)), np.nan)
                for j, name in enumerate(names):
                    if name in p.measurement_names:
                        cols[:, j] = p.measurements[:, p.measurement_names.index(name)]
                values.append(cols)
        offsets = [np.zeros(1, np.int64)]
        base = 0
        for p in parts:
            offsets.append(p.offsets[1:] + base)
            base += p.offsets[-1]
        return Detections(
            np.concatenate([p.centroids for p in parts]),
            np.concatenate(offsets),
            np.concatenate([p.vertices for p in parts]),
            np.concatenate(values),
            names,
            np.concatenate(classes),
            class_names,
        )


_MAGIC = b"PDT1"  # packed detection tile, version 1: little-endian, no pickle


def _blob(d: Detections) -> bytes:
    """MAGIC, then n, m (vertices), k (measurements) as int64, then centroids f8 (n, 2), offsets i8
    (n + 1), vertices f8 (m, 2), classes i2 (n), measurements f8 (n, k)."""
    n, m, k = len(d), len(d.vertices), d.measurements.shape[1] if d.measurements.ndim == 2 else 0
    return b"".join(
        [
            _MAGIC,
            np.array([n, m, k], "<i8").tobytes(),
            np.ascontiguousarray(d.centroids, "<f8").tobytes(),
            np.ascontiguousarray(d.offsets, "<i8").tobytes(),
            np.ascontiguousarray(d.vertices, "<f8").tobytes(),
            np.ascontiguousarray(d.classes, "<i2").tobytes(),
            np.ascontiguousarray(d.measurements, "<f8").tobytes(),
        ]
    )


def pack_tiles(d: Detections, tile: int = TILE) -> list[dict]:
    """Storage tiles: {tile_x, tile_y, bounds (level-0 box of the outlines), count, data}."""
    if not len(d):
        return []
    keys = np.floor(d.centroids / tile).astype(np.int64)
    order = np.lexsort((keys[:, 0], keys[:, 1]))
    ordered = d.subset(order)  # one gather: each tile is then a contiguous slice
    keys = keys[order]
    starts = np.r_[0, np.flatnonzero(np.any(np.diff(keys, axis=0) != 0, axis=1)) + 1, len(order)]
    # Each tile's outline box, vectorised: per-tile vertex ranges are contiguous after the gather.
    first_vertex = ordered.offsets[starts[:-1]]
    lows = np.minimum.reduceat(ordered.vertices, first_vertex, axis=0).tolist()
    highs = np.maximum.reduceat(ordered.vertices, first_vertex, axis=0).tolist()
    tiles = []
    for n, (a, b) in enumerate(zip(starts[:-1].tolist(), starts[1:].tolist(), strict=True)):
        va, vb = ordered.offsets[a], ordered.offsets[b]
        part = Detections(
            ordered.centroids[a:b],
            ordered.offsets[a : b + 1] - va,
            ordered.vertices[va:vb],
            ordered.measurements[a:b],
            d.measurement_names,
            ordered.classes[a:b],
            d.class_names,
        )
        tiles.append(
            {
                "tile_x": int(keys[a, 0]),
                "tile_y": int(keys[a, 1]),
                "bounds": (*lows[n], *highs[n]),
                "count": b - a,
                "data": _blob(part),
            }
        )
    return tiles


def unpack(data: bytes, names: Sequence[str], class_names: Sequence[str] = ()) -> Detections:
    if data[:4] != _MAGIC:
        raise ValueError("not a packed detection tile")
    n, m, k = (int(v) for v in np.frombuffer(data, "<i8", 3, 4))
    at = 28
    out = []
    for dtype, count, shape in (
        ("<f8", 2 * n, (n, 2)),
        ("<i8", n + 1, (n + 1,)),
        ("<f8", 2 * m, (m, 2)),
        ("<i2", n, (n,)),
        ("<f8", n * k, (n, k)),
    ):
        out.append(np.frombuffer(data, dtype, count, at).reshape(shape))
        at += count * np.dtype(dtype).itemsize
    centroids, offsets, vertices, classes, measurements = out
    return Detections(centroids, offsets, vertices, measurements, list(names), classes, list(class_names))

"""Detections (cells, nuclei) as compact arrays, packed per slide tile for the store.

QuPath keeps detections apart from annotations because there are hundreds of thousands of them;
here a set of detections is a few numpy arrays, never one Python object per cell:

    centroids     (n, 2) float64   level-0 x, y
    offsets       (n + 1,) int64   detection i's outline is vertices[offsets[i]:offsets[i + 1]]
    vertices      (m, 2) float64   level-0 x, y (exact: float64 round-trips QuPath coordinates)
    classes       (n,) int16       index into `class_names` (-1: unclassified)
    measurements  (n, k) float64   columns named by `measurement_names`

`pack_tiles` splits them by the 2048-px slide tile holding each centroid and writes each tile as an
uncompressed `.npz` blob (numpy's own format: self-describing, no pickle); `unpack` reads a blob
back. A viewport then reads only the tiles it overlaps.
"""

from __future__ import annotations

import io
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
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        outlines = [self.outline(i) for i in index]
        return Detections.from_outlines(
            self.centroids[index],
            outlines,
            self.measurements[index],
            self.measurement_names,
            self.classes[index],
            self.class_names,
        )

    @staticmethod
    def concatenate(parts: Sequence[Detections]) -> Detections:
        parts = [p for p in parts if len(p)]
        if not parts:
            return Detections.empty()
        names, class_names = parts[0].measurement_names, parts[0].class_names
        offsets = [np.zeros(1, np.int64)]
        base = 0
        for p in parts:
            offsets.append(p.offsets[1:] + base)
            base += p.offsets[-1]
        return Detections(
            np.concatenate([p.centroids for p in parts]),
            np.concatenate(offsets),
            np.concatenate([p.vertices for p in parts]),
            np.concatenate([p.measurements for p in parts]),
            list(names),
            np.concatenate([p.classes for p in parts]),
            list(class_names),
        )


def _blob(d: Detections) -> bytes:
    out = io.BytesIO()
    np.savez(
        out,
        centroids=d.centroids,
        offsets=d.offsets,
        vertices=d.vertices,
        classes=d.classes,
        measurements=d.measurements,
    )
    return out.getvalue()


def pack_tiles(d: Detections, tile: int = TILE) -> list[dict]:
    """Storage tiles: {tile_x, tile_y, bounds (level-0 box of the outlines), count, data}."""
    if not len(d):
        return []
    keys = np.floor(d.centroids / tile).astype(np.int64)
    order = np.lexsort((keys[:, 0], keys[:, 1]))
    keys = keys[order]
    splits = np.flatnonzero(np.any(np.diff(keys, axis=0) != 0, axis=1)) + 1
    tiles = []
    for chunk in np.split(order, splits):
        part = d.subset(chunk)
        lo, hi = part.vertices.min(axis=0), part.vertices.max(axis=0)
        tx, ty = (int(v) for v in np.floor(part.centroids[0] / tile))
        tiles.append(
            {"tile_x": tx, "tile_y": ty, "bounds": (*lo, *hi), "count": len(part), "data": _blob(part)}
        )
    return tiles


def unpack(data: bytes, names: Sequence[str], class_names: Sequence[str] = ()) -> Detections:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return Detections(
            z["centroids"],
            z["offsets"],
            z["vertices"],
            z["measurements"],
            list(names),
            z["classes"],
            list(class_names),
        )

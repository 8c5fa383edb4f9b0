"""The slide room's annotation logic, Qt-free: tools that make outlines, one undo history, the store.

Each tool is a small function from what the pathologist drew (level-0 pixel coordinates, x right,
y down) to a shapely geometry: polygon, rectangle, ellipse, freehand (a closed lasso) and brush (a
stroke widened to a brush size in µm, which needs the slide's MPP). `AnnotationSession` holds the
slide's annotations; every change is written to the store at once (so nothing is lost whatever
happens to the window: autosave with 0 s at risk), and undo/redo replay the inverse change through
the store too. Per-class area totals are in mm² (refused in words without MPP).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.validation import make_valid

from palmares_desktop.core.errors import PalmaresError
from palmares_desktop.core.slides.annotations import study_classes
from palmares_desktop.core.store import slide_objects as repo

TOOLS = ("polygon", "rectangle", "ellipse", "freehand", "brush")


class ToolError(PalmaresError):
    """An outline that cannot be made into an annotation (message is a plain sentence)."""


def _clean(geometry, width: int, height: int):
    """A valid polygonal geometry clipped to the slide; ToolError when nothing is left."""
    if not geometry.is_valid:
        geometry = make_valid(geometry)
    if geometry.geom_type == "GeometryCollection":
        geometry = shapely.unary_union(
            [g for g in geometry.geoms if g.geom_type in ("Polygon", "MultiPolygon")]
        )
    geometry = geometry.intersection(shapely.box(0, 0, width, height))
    if geometry.is_empty or geometry.area <= 0 or geometry.geom_type not in ("Polygon", "MultiPolygon"):
        raise ToolError("The outline encloses no area on the slide: draw it again inside the slide.")
    return geometry


def polygon(xy, width: int, height: int):
    points = np.asarray(xy, float)
    if len(points) < 3:
        raise ToolError("A polygon needs at least three points.")
    return _clean(shapely.Polygon(points), width, height)


def rectangle(x0: float, y0: float, x1: float, y1: float, width: int, height: int):
    return _clean(shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), width, height)


def ellipse(cx: float, cy: float, rx: float, ry: float, width: int, height: int, vertices: int = 64):
    angle = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    return _clean(
        shapely.Polygon(np.c_[cx + abs(rx) * np.cos(angle), cy + abs(ry) * np.sin(angle)]), width, height
    )


def brush(path_xy, size_um: float, mpp: tuple[float | None, float | None], width: int, height: int):
    """A stroke through `path_xy`, `size_um` wide (its µm need the slide's MPP)."""
    if not mpp[0] or not mpp[1]:
        raise ToolError(
            "The brush size is in µm, and this slide has no known pixel size (MPP): use the polygon tool."
        )
    if size_um <= 0:
        raise ToolError("The brush size must be more than 0 µm.")
    points = np.asarray(path_xy, float)
    radius_px = size_um / 2 / float(mpp[0])
    stroke = shapely.Point(points[0]) if len(points) == 1 else shapely.LineString(points)
    return _clean(stroke.buffer(radius_px, quad_segs=8), width, height)


@dataclass
class _Change:
    kind: str  # add | delete | update
    before: list[dict] = field(default_factory=list)  # objects as they were (delete, update)
    after: list[dict] = field(default_factory=list)  # objects as they became (add, update)


class AnnotationSession:
    """The annotations of one slide, edited through tools, with undo/redo; every change is stored."""

    def __init__(self, store, slide: dict) -> None:
        self.store = store
        self.slide = slide
        self.mpp = (slide.get("mpp_x"), slide.get("mpp_y"))
        self.width, self.height = int(slide["width"]), int(slide["height"])
        self.classes = {c["name"]: tuple(c["colour"]) for c in study_classes()}
        found = repo.annotations_of(store, slide["id"], kind="annotation")
        if store.reader is not None:  # a blinded reading round hides the others' work (core/study)
            from palmares_desktop.core.study.rounds import visible_annotations

            found = visible_annotations(store, store.reader.id, slide["subject_id"], found)
        self.objects: dict[str, dict] = {o["id"]: o for o in found}
        self._undo: list[_Change] = []
        self._redo: list[_Change] = []

    # ------------------------------------------------------------------ edits
    def add(self, geometry, classification: str | None, name: str | None = None) -> dict:
        obj = self._insert([{"geometry": geometry, "classification": classification, "name": name}])[0]
        self._record(_Change("add", after=[obj]))
        return obj

    def delete(self, ids) -> int:
        gone = [self.objects[i] for i in ids if i in self.objects]
        if gone:
            repo.delete_annotations(self.store, [o["id"] for o in gone])
            for o in gone:
                self.objects.pop(o["id"])
            self._record(_Change("delete", before=gone))
        return len(gone)

    def reclassify(self, annotation_id: str, classification: str | None) -> dict:
        before = self.objects[annotation_id]
        after = self._update(
            annotation_id, {"classification": classification, "color": self._colour(classification)}
        )
        self._record(_Change("update", before=[before], after=[after]))
        return after

    def reshape(self, annotation_id: str, geometry) -> dict:
        before = self.objects[annotation_id]
        after = self._update(annotation_id, {"geometry": _clean(geometry, self.width, self.height)})
        self._record(_Change("update", before=[before], after=[after]))
        return after

    def merge(self, ids) -> dict:
        """One annotation from several (their union; the first one's class and name)."""
        parts = [self.objects[i] for i in ids if i in self.objects]
        if len(parts) < 2:
            raise ToolError("Select at least two annotations to merge.")
        union = _clean(shapely.unary_union([p["geometry"] for p in parts]), self.width, self.height)
        repo.delete_annotations(self.store, [p["id"] for p in parts])
        for p in parts:
            self.objects.pop(p["id"])
        merged = self._insert(
            [{"geometry": union, "classification": parts[0]["classification"], "name": parts[0]["name"]}]
        )
        self._record(_Change("update", before=parts, after=merged))
        return merged[0]

    # ------------------------------------------------------------------- undo
    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> None:
        if self._undo:
            change = self._undo.pop()
            self._redo.append(self._replay(change, backwards=True))

    def redo(self) -> None:
        if self._redo:
            change = self._redo.pop()
            self._undo.append(self._replay(change, backwards=False))

    def _replay(self, change: _Change, backwards: bool) -> _Change:
        """Remove what the change made (or unmade) and put back the other side; returns the change
        with the ids the objects have now (a re-added object gets a new id)."""
        remove, restore = (change.after, change.before) if backwards else (change.before, change.after)
        live = [o["id"] for o in remove if o["id"] in self.objects]
        if live:
            repo.delete_annotations(self.store, live)
            for i in live:
                self.objects.pop(i)
        restored = self._insert(restore) if restore else []
        if backwards:
            return _Change(change.kind, before=restored, after=change.after)
        return _Change(change.kind, before=change.before, after=restored)

    # ---------------------------------------------------------------- helpers
    def _colour(self, classification):
        return self.classes.get(classification) if classification else None

    def _insert(self, objects: list[dict]) -> list[dict]:
        rows = [
            {
                "geometry": o["geometry"],
                "classification": o.get("classification"),
                "color": o.get("color") or self._colour(o.get("classification")),
                "name": o.get("name"),
            }
            for o in objects
        ]
        ids = repo.save_annotations(self.store, self.slide, rows)
        made = [repo.annotation(self.store, i) for i in ids]
        self.objects.update({o["id"]: o for o in made})
        return made

    def _update(self, annotation_id: str, changes: dict) -> dict:
        after = repo.update_annotation(self.store, annotation_id, changes)
        self.objects[annotation_id] = after
        return after

    def _record(self, change: _Change) -> None:
        self._undo.append(change)
        self._redo.clear()

    # --------------------------------------------------------------- reports
    def class_areas_mm2(self) -> dict[str, float]:
        """Area per class in mm² (overlaps within a class counted once); refused without MPP."""
        if not self.mpp[0] or not self.mpp[1]:
            raise ToolError("The slide has no known pixel size (MPP): areas in mm² cannot be measured.")
        by_class: dict[str, list] = {}
        for o in self.objects.values():
            by_class.setdefault(o["classification"] or "Unclassified", []).append(o["geometry"])
        scale = self.mpp[0] * self.mpp[1] / 1e6
        return {name: shapely.unary_union(parts).area * scale for name, parts in sorted(by_class.items())}

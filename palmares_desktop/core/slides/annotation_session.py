"""The slide room's annotation logic, Qt-free: tools that make outlines, one undo history, the store.

Each tool is a small function from what the pathologist drew (level-0 pixel coordinates, x right,
y down) to a shapely geometry: polygon, rectangle, ellipse, freehand (a closed lasso), brush (a
stroke widened to a brush size in µm, which needs the slide's MPP), point (a cell, counted per
class) and split (an outline cut in pieces by a line drawn across it); the wand's region comes from
core.slides.wand. `AnnotationSession` holds the slide's annotations; every change is written to the
store at once (so nothing is lost whatever happens to the window: autosave with 0 s at risk), and
undo/redo replay the inverse change through the store too (a split, a merge or a multi-shape move
is one step). Per-class area totals are in mm² (refused in words without MPP); points have no area
and are counted instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.ops import split as split_by
from shapely.validation import make_valid

from palmares_desktop.core.errors import PalmaresError
from palmares_desktop.core.history import UndoHistory
from palmares_desktop.core.model import Slide
from palmares_desktop.core.slides.annotations import study_classes
from palmares_desktop.core.store import slide_objects as repo

TOOLS = ("polygon", "rectangle", "ellipse", "freehand", "brush", "wand", "point", "split")
POINT_TYPES = ("Point", "MultiPoint")


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


def point(x: float, y: float, width: int, height: int):
    """A point annotation (a cell) at level-0 (x, y); refused outside the slide."""
    if not (0 <= x <= width and 0 <= y <= height):
        raise ToolError("The point is outside the slide: click on the tissue.")
    return shapely.Point(float(x), float(y))


def split(geometry, line_xy) -> list:
    """The pieces of a polygonal `geometry` cut by the line through `line_xy` (level-0 pixels), in
    order of area (largest first). A part of a MultiPolygon the line misses stays whole, and those
    parts are kept together as one piece. Refused in words when the line does not cut it in two."""
    if geometry.geom_type not in ("Polygon", "MultiPolygon"):
        raise ToolError("Only an outline can be split, not a point.")
    xy = np.asarray(line_xy, float)
    if len(xy) < 2 or shapely.LineString(xy).length == 0:
        raise ToolError("Draw a line of at least two points across the annotation to split it.")
    line = shapely.LineString(xy)
    pieces, untouched = [], []
    for part in getattr(geometry, "geoms", [geometry]):
        cut = [g for g in split_by(part, line).geoms if g.geom_type == "Polygon" and g.area > 0]
        if len(cut) > 1:
            pieces += cut
        else:
            untouched.append(part)
    if not pieces:
        raise ToolError(
            "The line does not cut the annotation: draw it across the whole outline, from outside it on "
            "one side to outside it on the other."
        )
    if untouched:
        pieces.append(untouched[0] if len(untouched) == 1 else shapely.MultiPolygon(untouched))
    return sorted(pieces, key=lambda g: -g.area)


def is_point(geometry) -> bool:
    return geometry.geom_type in POINT_TYPES


@dataclass
class _Change:
    kind: str  # add | delete | update
    before: list[dict] = field(default_factory=list)  # objects as they were (delete, update)
    after: list[dict] = field(default_factory=list)  # objects as they became (add, update)


class AnnotationSession:
    """The annotations of one slide, edited through tools, with undo/redo; every change is stored."""

    def __init__(self, store, slide: Slide) -> None:
        self.store = store
        self.slide = slide
        self.mpp = (slide.mpp_x, slide.mpp_y)
        self.width, self.height = int(slide.width), int(slide.height)
        self.classes = {c["name"]: tuple(c["colour"]) for c in study_classes()}
        found = repo.annotations_of(store, slide.id, kind="annotation")
        if store.reader is not None:  # a blinded reading round hides the others' work (core/study)
            from palmares_desktop.core.study.rounds import visible_annotations

            found = visible_annotations(store, store.reader.id, slide.subject_id, found)
        self.objects: dict[str, dict] = {o["id"]: o for o in found}
        self.history: UndoHistory[_Change] = UndoHistory()  # core's one undo history (core/history.py)
        self._alias: dict[str, str] = {}  # id of a removed-then-restored object -> its id now

    # ------------------------------------------------------------------ edits
    def add(
        self, geometry, classification: str | None, name: str | None = None, measurements: dict | None = None
    ) -> dict:
        """One new annotation (an outline or a point); `measurements` keep how a tool made it (the wand)."""
        row = {"geometry": geometry, "classification": classification, "name": name}
        obj = self._insert([{**row, "measurements": measurements or {}}])[0]
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
        return self.reshape_many({annotation_id: geometry})[0]

    def reshape_many(self, geometries: dict) -> list[dict]:
        """New outlines (or point positions) for several annotations, as one undo step."""
        if not geometries:
            return []
        cleaned = {}
        for annotation_id, geometry in geometries.items():
            if is_point(geometry):
                xy = shapely.get_coordinates(geometry)
                if not (
                    (xy >= 0).all() and (xy[:, 0] <= self.width).all() and (xy[:, 1] <= self.height).all()
                ):
                    raise ToolError("The point is outside the slide: move it back onto the tissue.")
                cleaned[annotation_id] = geometry
            else:
                cleaned[annotation_id] = _clean(geometry, self.width, self.height)
        before = [self.objects[i] for i in cleaned]
        after = [self._update(i, {"geometry": g}) for i, g in cleaned.items()]
        self._record(_Change("update", before=before, after=after))
        return after

    def split(self, annotation_id: str, line_xy) -> list[dict]:
        """The annotation cut by a line into separate annotations of its class and name (one undo step)."""
        original = self.objects.get(annotation_id)
        if original is None:
            raise ToolError("Select the annotation to split first.")
        pieces = split(original["geometry"], line_xy)
        repo.delete_annotations(self.store, [annotation_id])
        self.objects.pop(annotation_id)
        made = self._insert(
            [
                {
                    "geometry": piece,
                    "classification": original["classification"],
                    "color": original["color"],
                    "name": original["name"],
                }
                for piece in pieces
            ]
        )
        self._record(_Change("update", before=[original], after=made))
        return made

    def crossing(self, line_xy) -> list[str]:
        """Ids of the outlines (not points) that the line through `line_xy` crosses."""
        xy = np.asarray(line_xy, float)
        if len(xy) < 2:
            return []
        line = shapely.LineString(xy)
        return [
            i for i, o in self.objects.items() if not is_point(o["geometry"]) and o["geometry"].crosses(line)
        ]

    def merge(self, ids) -> dict:
        """One annotation from several (their union; the first one's class and name)."""
        parts = [self.objects[i] for i in ids if i in self.objects]
        if any(is_point(p["geometry"]) for p in parts):
            raise ToolError("Points cannot be merged: select outlines only (a point has no area to join).")
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

    def nearest_point(
        self, x: float, y: float, within: float, hidden: frozenset | set = frozenset()
    ) -> str | None:
        """Id of the point annotation nearest level-0 (x, y) within `within` pixels (classes in `hidden`
        are not on screen and are skipped), or None."""
        best, best_d = None, float(within)
        for i, o in self.objects.items():
            if not is_point(o["geometry"]) or (o["classification"] or "Unclassified") in hidden:
                continue
            xy = shapely.get_coordinates(o["geometry"])
            d = float(np.hypot(xy[:, 0] - x, xy[:, 1] - y).min())
            if d <= best_d:
                best, best_d = i, d
        return best

    # ------------------------------------------------------------------- undo
    @property
    def can_undo(self) -> bool:
        return self.history.can_undo

    @property
    def can_redo(self) -> bool:
        return self.history.can_redo

    def undo(self) -> None:
        self.history.undo(lambda change: self._replay(change, backwards=True))

    def redo(self) -> None:
        self.history.redo(lambda change: self._replay(change, backwards=False))

    def _replay(self, change: _Change, backwards: bool) -> _Change:
        """Remove what the change made (or unmade) and put back the other side; returns the change
        with the ids the objects have now. An edit of the same objects (reshape, reclassify) is
        replayed in place, keeping their ids; otherwise a re-added object gets a new id, and the old
        one is remembered as its alias so older steps of the history still find it."""
        remove, restore = (change.after, change.before) if backwards else (change.before, change.after)
        remove_ids = [self._resolve(o["id"]) for o in remove]
        restore_ids = [self._resolve(o["id"]) for o in restore]
        if (
            change.kind == "update"
            and remove_ids == restore_ids
            and all(i in self.objects for i in remove_ids)
        ):
            fields = ("geometry", "classification", "color", "name")
            restored = [
                self._update(i, {k: o[k] for k in fields}) for i, o in zip(restore_ids, restore, strict=True)
            ]
        else:
            live = [i for i in remove_ids if i in self.objects]
            if live:
                repo.delete_annotations(self.store, live)
                for i in live:
                    self.objects.pop(i)
            restored = self._insert(restore) if restore else []
            for old, new in zip(restore, restored, strict=True):
                if old["id"] != new["id"]:
                    self._alias[old["id"]] = new["id"]
        if backwards:
            return _Change(change.kind, before=restored, after=change.after)
        return _Change(change.kind, before=change.before, after=restored)

    def _resolve(self, annotation_id: str) -> str:
        """The id an annotation has now (undo and redo re-add removed objects under new ids)."""
        seen = set()
        while annotation_id in self._alias and annotation_id not in seen:
            seen.add(annotation_id)
            annotation_id = self._alias[annotation_id]
        return annotation_id

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
                "measurements": {k: v for k, v in (o.get("measurements") or {}).items() if k != "mpp"},
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
        self.history.push(change)

    # --------------------------------------------------------------- reports
    def class_areas_mm2(self) -> dict[str, float]:
        """Area per class of its outlines in mm² (overlaps within a class counted once; points have no
        area and are left out); refused without MPP."""
        if not self.mpp[0] or not self.mpp[1]:
            raise ToolError("The slide has no known pixel size (MPP): areas in mm² cannot be measured.")
        by_class: dict[str, list] = {}
        for o in self.objects.values():
            if not is_point(o["geometry"]):
                by_class.setdefault(o["classification"] or "Unclassified", []).append(o["geometry"])
        scale = self.mpp[0] * self.mpp[1] / 1e6
        return {name: shapely.unary_union(parts).area * scale for name, parts in sorted(by_class.items())}

    def class_summary(self) -> dict[str, dict]:
        """Per class present: `shapes` (outlines), `points` (cells: a MultiPoint counts each of its
        points) and `area_mm2` of the outlines (None without MPP or without outlines)."""
        try:
            areas: dict[str, float] | None = self.class_areas_mm2()
        except ToolError:
            areas = None
        out: dict[str, dict] = {}
        for o in self.objects.values():
            entry = out.setdefault(o["classification"] or "Unclassified", {"shapes": 0, "points": 0})
            g = o["geometry"]
            if is_point(g):
                entry["points"] += len(shapely.get_coordinates(g))
            else:
                entry["shapes"] += 1
        for name, entry in out.items():
            entry["area_mm2"] = areas.get(name) if areas is not None else None
        return out

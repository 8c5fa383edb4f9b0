"""A room's reading session, Qt-free: the subject, its reading set, the working mask, one undo history
and the autosave timing. The CT/PET and slide rooms are views over it; a CLI tool or a napari plugin
can drive the same object.

The working mask is held in DISPLAY order (the array a viewer edits, see core/placement.py), so a
viewer's labels layer can share its memory; `stored_mask()` maps it back onto the stored grid voxel
for voxel.

Undo keeps memory bounded: each step stores only what changed, as the before/after values of the
changed voxels' bounding box, or as their flat indices and values when a thin stroke leaves most of
the box untouched (whichever is smaller). The oldest steps are dropped past `max_bytes`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

from palmares_desktop.core.history import UndoHistory
from palmares_desktop.core.placement import Placement
from palmares_desktop.core.segmentation import strokes
from palmares_desktop.core.segmentation.geometry import Grid

DEFAULT_HISTORY_BYTES = 256 * 2**20  # a few hundred brush strokes on a CT, well under a full copy each
DEFAULT_IDLE_S = 3.0  # save once the reader pauses this long...
DEFAULT_MAX_DELAY_S = 30.0  # ...but never leave an edit unsaved longer than this


@dataclass(frozen=True)
class Step:
    """One undoable change: where (a box of the mask) and the voxel values before and after it."""

    box: tuple[slice, ...]
    before: np.ndarray  # the box's values, or (with `flat`) only the changed voxels' values
    after: np.ndarray
    flat: np.ndarray | None = None  # flat indices inside the box of the changed voxels (sparse form)

    @property
    def nbytes(self) -> int:
        return self.before.nbytes + self.after.nbytes + (0 if self.flat is None else self.flat.nbytes)

    def write(self, mask: np.ndarray, values: np.ndarray) -> None:
        if self.flat is None:
            mask[self.box] = values
        else:
            region = mask[self.box]  # a view: writing into it writes the mask
            region.flat[self.flat] = values  # (.flat on a view writes through)

    @classmethod
    def between(cls, before_box: np.ndarray, after_box: np.ndarray, box: tuple[slice, ...]) -> Step | None:
        """The step that turns `before_box` into `after_box` (both the values of `box`), tightened."""
        changed = before_box != after_box
        if not changed.any():
            return None
        hit = np.argwhere(changed)
        low, high = hit.min(axis=0), hit.max(axis=0) + 1
        inner = tuple(slice(int(lo), int(hi)) for lo, hi in zip(low, high, strict=True))
        tight = tuple(slice(s.start + i.start, s.start + i.stop) for s, i in zip(box, inner, strict=True))
        before, after, changed = before_box[inner], after_box[inner], changed[inner]
        flat = np.flatnonzero(changed)
        dense_bytes = 2 * before.nbytes
        sparse_bytes = flat.astype(np.int32).nbytes + 2 * flat.size * before.itemsize
        if sparse_bytes < dense_bytes:
            return cls(tight, before.ravel()[flat].copy(), after.ravel()[flat].copy(), flat.astype(np.int32))
        return cls(tight, before.copy(), after.copy())


class EditHistory(UndoHistory[Step]):
    """Undo/redo of changes to one label array, bounded in memory (see the module docstring): core's
    one history (core/history.py), with steps that write voxels."""

    def __init__(self, max_bytes: int = DEFAULT_HISTORY_BYTES) -> None:
        super().__init__(max_bytes, size_of=lambda step: step.nbytes)

    def undo(self, mask: np.ndarray) -> tuple[slice, ...] | None:
        """Put the last step's before-values back; returns the box changed (for the view), or None."""
        step = super().undo(lambda step: _written(step, mask, step.before))
        return step.box if step is not None else None

    def redo(self, mask: np.ndarray) -> tuple[slice, ...] | None:
        step = super().redo(lambda step: _written(step, mask, step.after))
        return step.box if step is not None else None


def _written(step: Step, mask: np.ndarray, values: np.ndarray) -> Step:
    step.write(mask, values)
    return step


@dataclass
class AutosaveClock:
    """When the working mask should be saved as a draft: after `idle_s` without edits, and at the
    latest `max_delay_s` after the first unsaved edit (a reader painting without pause still gets
    saves). Time is injectable (`clock`) so that tests and a GUI timer agree."""

    idle_s: float = DEFAULT_IDLE_S
    max_delay_s: float = DEFAULT_MAX_DELAY_S
    clock: Callable[[], float] = time.monotonic
    _first_unsaved: float | None = None
    _last_edit: float | None = None

    @property
    def dirty(self) -> bool:
        return self._first_unsaved is not None

    def touched(self) -> None:
        now = self.clock()
        if self._first_unsaved is None:
            self._first_unsaved = now
        self._last_edit = now

    def due(self) -> bool:
        if self._first_unsaved is None or self._last_edit is None:
            return False
        now = self.clock()
        return now - self._last_edit >= self.idle_s or now - self._first_unsaved >= self.max_delay_s

    def seconds_until_due(self) -> float | None:
        """For a single-shot GUI timer: how long until `due()` turns true (None when clean)."""
        if self._first_unsaved is None or self._last_edit is None:
            return None
        now = self.clock()
        wait = min(self._last_edit + self.idle_s, self._first_unsaved + self.max_delay_s) - now
        return max(0.0, wait)

    def saved(self) -> None:
        self._first_unsaved = self._last_edit = None


@dataclass
class ReadingSession:
    """One subject open in a room. `reading_set` is what the room shows (series, segmentations);
    `mask` the working label array in display order, on `placement`'s grid."""

    subject: Any
    reading_set: Any
    mask: np.ndarray
    placement: Placement
    history: EditHistory = field(default_factory=EditHistory)
    autosave: AutosaveClock = field(default_factory=AutosaveClock)

    def __post_init__(self) -> None:
        if self.mask.shape != self.placement.display_shape:
            raise ValueError(
                f"Mask shape {self.mask.shape} is not the display shape {self.placement.display_shape}."
            )

    @classmethod
    def for_mask(
        cls, subject: Any, reading_set: Any, stored_mask: sitk.Image, **kwargs: Any
    ) -> ReadingSession:
        """A session whose working mask starts as `stored_mask` (a copy, in display order)."""
        placement = Placement.of(stored_mask)
        mask = np.ascontiguousarray(placement.to_display(stored_mask))
        return cls(subject, reading_set, mask, placement, **kwargs)

    # -------------------------------------------------------------- edits
    def change(self, box: tuple[slice, ...], values: np.ndarray | int) -> bool:
        """Write `values` into `box` of the mask as one undoable step. False when nothing changed."""
        before = self.mask[box].copy()
        after = np.broadcast_to(np.asarray(values, dtype=self.mask.dtype), before.shape)
        step = Step.between(before, after, _absolute(box, self.mask.shape))
        if step is None:
            return False
        self.mask[box] = after
        self._record(step)
        return True

    def record_region(
        self, box: tuple[slice, ...], before: np.ndarray, after: np.ndarray | None = None
    ) -> bool:
        """Record an edit a viewer makes in place: `before` holds the values `box` had before it and
        `after` those it gets (default: what the mask holds now). One undoable step, so a viewer's
        history joins this one."""
        box = _absolute(box, self.mask.shape)
        after = self.mask[box].copy() if after is None else np.asarray(after, dtype=self.mask.dtype)
        step = Step.between(np.asarray(before, dtype=self.mask.dtype), after, box)
        if step is None:
            return False
        self._record(step)
        return True

    def record_painted(self, indices: tuple[np.ndarray, ...], old_values: np.ndarray) -> bool:
        """`record_region` for voxels given as index arrays and their old values."""
        indices = tuple(np.asarray(i) for i in indices)
        if not indices or indices[0].size == 0:
            return False
        low = [int(i.min()) for i in indices]
        box = tuple(slice(lo, int(i.max()) + 1) for lo, i in zip(low, indices, strict=True))
        before = self.mask[box].copy()
        before[tuple(i - lo for i, lo in zip(indices, low, strict=True))] = old_values
        return self.record_region(box, before)

    # ------------------------------------------------- strokes (core/segmentation/strokes.py)
    def begin_stroke(self) -> StrokeGroup:
        """Gather the dabs of one drag (e.g. spheres along the mouse path) into one undo step:
        pass it to `paint_sphere` and call its `end()` on release."""
        return StrokeGroup(self)

    def paint_sphere(
        self,
        centre_world_zyx,
        diameter_mm: float,
        value: int = 1,
        stroke: StrokeGroup | None = None,
        from_world_zyx=None,
    ) -> int:
        """Paint (`value` > 0) or erase (0) a sphere of `diameter_mm` (world mm, anisotropic spacing
        honoured) around the voxel under a world (z, y, x) point. With `from_world_zyx` (the previous
        point of a drag) spheres are laid along the way too, close enough to leave no gap. Without
        `stroke` it is one undo step at once; with one, part of that stroke's step. Returns how many
        voxels changed (0: none, and no step)."""
        centres = (
            [centre_world_zyx]
            if from_world_zyx is None
            else strokes.dab_centres(self.placement, from_world_zyx, centre_world_zyx, diameter_mm)
        )
        group = stroke if stroke is not None else StrokeGroup(self)
        changed = 0
        for centre in centres:
            done = strokes.sphere_stroke(self.mask, self.placement, centre, diameter_mm, value)
            if done is not None:
                group.add(done)
                changed += done.changed
        if stroke is None:
            group.end()
        return changed

    def fill(self, seed_world_zyx, three_d: bool = False, value: int = 1) -> strokes.Stroke:
        """Fill the background region the outline encloses under a world point (on its axial slice,
        or in 3D) with `value`, as one undo step. Raises `StrokeError` (a sentence) when the region
        is not enclosed or the click is on the lesion. Returns what changed."""
        done = strokes.fill_stroke(self.mask, self.placement, seed_world_zyx, three_d, value)
        self.record_region(done.box, done.before)
        return done

    def _record(self, step: Step) -> None:
        self.history.push(step)
        self.autosave.touched()

    def undo(self) -> tuple[slice, ...] | None:
        box = self.history.undo(self.mask)
        if box is not None:
            self.autosave.touched()
        return box

    def redo(self) -> tuple[slice, ...] | None:
        box = self.history.redo(self.mask)
        if box is not None:
            self.autosave.touched()
        return box

    # ------------------------------------------------------------- saving
    @property
    def dirty(self) -> bool:
        return self.autosave.dirty

    def autosave_due(self) -> bool:
        return self.autosave.due()

    def stored_mask(self) -> sitk.Image:
        """The working mask on the stored grid, voxel for voxel (what a draft save writes)."""
        return self.placement.to_stored(self.mask)

    def snapshot(self) -> MaskSnapshot:
        """The working mask as it is now, cheap enough for a GUI thread (a few ms on a 512x512x300
        CT): the box holding every nonzero voxel and a copy of its values. A worker then rebuilds
        the full mask on the stored grid from it (`MaskSnapshot.binary`), voxel for voxel what
        `stored_mask()` gives, while editing goes on."""
        box = _nonzero_box(self.mask)
        return MaskSnapshot(self.placement, box, self.mask[box].copy())

    def mark_saved(self) -> None:
        self.autosave.saved()


@dataclass(frozen=True)
class MaskSnapshot:
    """A working mask at one moment: `values` are its voxels inside `box` (display order), every
    voxel outside the box is 0. Taken by `ReadingSession.snapshot()`; rebuilt in full on the stored
    grid by `binary` (a worker's job: the full array is allocated there, not on the GUI thread)."""

    placement: Placement
    box: tuple[slice, ...]  # display (z, y, x) order, holds every nonzero voxel
    values: np.ndarray

    @property
    def grid(self) -> Grid:
        """The stored grid the mask lies on (for `check_geometry`)."""
        p = self.placement
        return Grid(p.size, p.spacing, p.origin, p.direction)

    def stored_box(self) -> tuple[slice, ...]:
        """`box` on the stored array (numpy z, y, x order of `sitk.GetArrayFromImage`)."""
        out: list[slice] = [slice(0, 0)] * 3
        for a, (axis, flip) in enumerate(
            zip(self.placement.stored_axis, self.placement.flipped, strict=True)
        ):
            start, stop, n = self.box[a].start, self.box[a].stop, self.placement.size[axis]
            out[2 - axis] = slice(n - stop, n - start) if flip else slice(start, stop)
        return tuple(out)

    def binary(self, label: int = 1) -> tuple[np.ndarray, int]:
        """(the stored-order uint8 array, 1 where the mask equals `label`, else 0; how many 1s)."""
        p = self.placement
        full = np.zeros(tuple(reversed(p.size)), dtype=np.uint8)  # calloc: untouched pages cost nothing
        inside = self.values == label
        flips = tuple(a for a, f in enumerate(p.flipped) if f)
        inside = np.flip(inside, flips) if flips else inside
        full[self.stored_box()] = np.transpose(inside, np.argsort([2 - i for i in p.stored_axis]))
        return full, int(np.count_nonzero(inside))


class StrokeGroup:
    """The dabs of one stroke, each already written into the session's mask, recorded as ONE undo
    step by `end()` (the union box, its values before the first dab rebuilt last-first)."""

    def __init__(self, session: ReadingSession) -> None:
        self.session = session
        self._dabs: list[strokes.Stroke] = []
        self.ended = False

    @property
    def changed(self) -> int:
        """Voxels changed so far (each dab counts only the voxels whose value it changed)."""
        return sum(d.changed for d in self._dabs)

    def add(self, dab: strokes.Stroke) -> None:
        if self.ended:
            raise ValueError("This stroke has ended; begin a new one.")
        self._dabs.append(dab)
        self.session.autosave.touched()  # a long drag keeps the draft save waiting for the pause

    def end(self) -> tuple[slice, ...] | None:
        """Record the stroke as one undo step; returns its box, or None when it changed nothing."""
        if self.ended:
            return None
        self.ended = True
        if not self._dabs:
            return None
        low = [min(d.box[a].start for d in self._dabs) for a in range(self.session.mask.ndim)]
        high = [max(d.box[a].stop for d in self._dabs) for a in range(self.session.mask.ndim)]
        box = tuple(slice(lo, hi) for lo, hi in zip(low, high, strict=True))
        before = self.session.mask[box].copy()
        for dab in reversed(self._dabs):
            local = tuple(slice(s.start - lo, s.stop - lo) for s, lo in zip(dab.box, low, strict=True))
            before[local] = dab.before
        self._dabs.clear()
        return box if self.session.record_region(box, before) else None


def _nonzero_box(mask: np.ndarray) -> tuple[slice, ...]:
    """The smallest box holding every nonzero voxel of a 3D mask (an empty box when there is none).
    The slices are found on 8-byte words of each slice (the mask is read once, fast); the rows and
    columns only within those slices."""
    flat = np.ascontiguousarray(mask).reshape(mask.shape[0], -1).view(np.uint8)
    words = flat.view(np.uint64) if flat.shape[1] % 8 == 0 else flat
    slices = np.flatnonzero(words.max(axis=1)) if words.size else np.empty(0, dtype=np.intp)
    if slices.size == 0:
        return (slice(0, 0),) * mask.ndim
    z = slice(int(slices[0]), int(slices[-1]) + 1)
    block = mask[z]
    plane = (block.max(axis=0) if block.dtype.kind in "bu" else np.any(block != 0, axis=0)) != 0
    rows, cols = np.flatnonzero(plane.any(axis=1)), np.flatnonzero(plane.any(axis=0))
    return (z, slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))


def _absolute(box: tuple[slice, ...], shape: tuple[int, ...]) -> tuple[slice, ...]:
    """`box` with explicit, non-negative starts and stops (steps of 1 only)."""
    out = []
    for s, n in zip(box, shape, strict=True):
        start, stop, step = s.indices(n)
        if step != 1:
            raise ValueError("An edit box must be a plain block (slices with step 1).")
        out.append(slice(start, stop))
    return tuple(out)

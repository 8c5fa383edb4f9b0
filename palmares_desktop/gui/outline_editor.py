"""The CT/PET room's outline editor: brush, eraser and fill on the selected segmentation, in 2D (the
axial slice) or 3D (a sphere of the brush diameter; the enclosed volume), brush size in mm.

Editing opens a core `ReadingSession` on the stored mask: the napari labels layer paints the session's
array in place and its undo/redo are the session's (Ctrl+Z / Ctrl+Shift+Z). The 2D brush and eraser
are napari's own (its paint events join the session's history); the 3D sphere and both fills are a
mouse callback on the editing layer that asks core (`ReadingSession.paint_sphere`, `.fill`, computed in
core/segmentation/strokes.py) for the voxels, one undo step per click or drag. Every few seconds of
idle editing the working mask is autosaved as the reader's draft (core/segmentation/drafts.py: one
draft row per chain, no version flood, no feature job); **Save** makes the draft the chain's next
final version; **Cancel** throws the draft away. Saving runs in a worker on its own store connection.
"""

from __future__ import annotations

import logging
from typing import Any

import SimpleITK as sitk
from qtpy.QtCore import QEvent, QObject, Qt, QTimer, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QWidget,
)

from palmares_desktop.core.errors import PalmaresError
from palmares_desktop.core.model import Segmentation, Subject
from palmares_desktop.core.segmentation.drafts import drawn_method
from palmares_desktop.core.segmentation.strokes import voxels_ml
from palmares_desktop.core.session import ReadingSession, StrokeGroup
from palmares_desktop.gui.workers import WorkerPool, worker_store

log = logging.getLogger(__name__)

EDIT_LAYER = "editing"
AUTOSAVE_POLL_MS = 1000
TOOLS = ("paint", "erase", "fill")


class _HoldSpace(QObject):
    """Holding Space pans, as in napari's own paint modes. napari's hold-to-pan does nothing for our
    sphere and fill tools (their layer is already in pan_zoom mode, with the mouse taken), so the
    editor hears the key on the canvas itself and hands the mouse back to napari while it is held."""

    def __init__(self, editor: OutlineEditor) -> None:
        super().__init__(editor)
        self.editor = editor

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt API
        kind = event.type()
        if kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease) and event.key() == Qt.Key.Key_Space:
            if not event.isAutoRepeat():
                self.editor.hold_space(kind == QEvent.Type.KeyPress)
        elif kind == QEvent.Type.FocusOut:
            self.editor.hold_space(False)  # a release the canvas never saw
        return False


class OutlineEditor(QGroupBox):
    saved = Signal(dict)  # {"segmentation_id", "version", "lesion"} of the new final version
    closed = Signal()  # editing ended (saved or cancelled)

    def __init__(self, workers: WorkerPool, parent: QWidget | None = None) -> None:
        super().__init__("Edit outline", parent)
        self.workers = workers
        self.session: ReadingSession | None = None
        self.layer = None
        self._target: dict[str, Any] = {}
        self._store = None
        self._viewer = None
        self._draft_id: str | None = None
        self._saving = False
        self._tool: str | None = "paint"  # paint, erase, fill; None: napari's own mode (e.g. pan)
        self._applying = False  # set_mode is changing the layer's mode (not the reader's keys)
        self._space_held = False  # Space pans while held, whatever the tool
        self._image, self._pet_unit, self._live_revision = None, "SUVbw", -1  # see show_live
        self._space = _HoldSpace(self)
        self.edit = QPushButton("Edit selected")
        self.edit.setToolTip("Paint or erase the selected lesion's outline; Ctrl+Z undoes")
        self.brush_mm = QDoubleSpinBox()
        self.brush_mm.setRange(0.5, 50.0)
        self.brush_mm.setValue(5.0)
        self.brush_mm.setSuffix(" mm")
        self.brush_mm.valueChanged.connect(lambda _v: self._apply_brush())
        self.paint = QPushButton("Brush")
        self.erase = QPushButton("Eraser")
        self.fill = QPushButton("Fill")
        self.fill.setToolTip(
            "Click inside a closed outline to fill it: on this slice, or with 3D the enclosed volume"
        )
        for button in (self.paint, self.erase, self.fill):
            button.setCheckable(True)
        self.paint.clicked.connect(lambda: self.set_mode("paint"))
        self.erase.clicked.connect(lambda: self.set_mode("erase"))
        self.fill.clicked.connect(lambda: self.set_mode("fill"))
        self.sphere = QCheckBox("3D (sphere brush, volume fill)")
        self.sphere.setToolTip(
            "Brush and eraser paint a sphere of the brush diameter in mm (through slices); "
            "Fill fills the region the outline encloses in 3D"
        )
        self.sphere.toggled.connect(lambda _on: self._tool is not None and self.set_mode(self._tool))
        self.save = QPushButton("Save")
        self.save.setToolTip("Save the outline as this lesion's next final version (features follow)")
        self.cancel = QPushButton("Cancel")
        self.save.clicked.connect(self.save_final)
        self.cancel.clicked.connect(self.cancel_edit)
        self.message = QLabel("Select a lesion, then Edit selected.")
        self.message.setWordWrap(True)
        tools = QHBoxLayout()
        for button in (self.paint, self.erase, self.fill):
            tools.addWidget(button)
        saving = QHBoxLayout()
        for button in (self.save, self.cancel):
            saving.addWidget(button)
        form = QFormLayout(self)
        form.addRow(self.edit)
        form.addRow("Brush", self.brush_mm)
        form.addRow(tools)
        form.addRow(self.sphere)
        form.addRow(saving)
        form.addRow(self.message)
        # The outline's numbers after every stroke (core/segmentation/live.py, on the lesion's box).
        self.live = QLabel("")
        self.live.setWordWrap(True)
        form.addRow(self.live)
        self._autosave = QTimer(self)
        self._autosave.setInterval(AUTOSAVE_POLL_MS)
        self._autosave.timeout.connect(self._autosave_if_due)
        self._enable(False)

    # ----------------------------------------------------------------- start
    def start(
        self,
        store,
        viewer,
        subject: Subject,
        segmentation: Segmentation,
        color: str,
        values=None,
        pet_unit: str = "SUVbw",
    ) -> None:
        """Edit `segmentation` (a room mask's version: with lesion_name, organ, series_modality)."""
        if store.reader is None:
            self.message.setText(
                "Choose a reader first (Reader → Switch reader…): every outline has an author."
            )
            return
        if self.session is not None:
            self.cancel_edit()
        from palmares_desktop.core.segmentation.drafts import reader_draft

        # The reader's own draft of this outline, if an earlier session left one (a crash, a subject
        # switch): editing goes on from it rather than from the saved version.
        draft = reader_draft(store, segmentation.lesion_id, segmentation.series_id)
        image = sitk.ReadImage(str(store.path(draft.mask_path if draft else segmentation.mask_path)))
        label = 1 if draft else int(segmentation.label or 1)
        binary = sitk.Cast(sitk.Equal(image, label), sitk.sitkUInt8)  # the lesion's voxels as 1
        self.session = ReadingSession.for_mask(subject, None, binary)
        self._store, self._viewer, self._draft_id = store, viewer, draft.id if draft else None
        self._target = {
            "code": subject.code,
            "modality": segmentation.series_modality,
            "series_id": segmentation.series_id,
            "lesion": segmentation.lesion_name,
            "organ": segmentation.organ,
            "spacing": min(image.GetSpacing()),
        }
        self.layer = viewer.add_session_labels(self.session, EDIT_LAYER, color)
        self.layer.selected_label = 1
        self.layer.mouse_drag_callbacks.append(self._on_press)
        self.layer.events.mode.connect(self._layer_mode_changed)
        viewer.widget.canvas.native.installEventFilter(self._space)
        self._tools_used: list[str] = []  # the tool chain the saved version records
        self.layer.events.paint.connect(
            lambda _e: self._used("eraser" if self.layer.mode == "erase" else "brush")
        )
        # `values`: the series' display array (HU or SUV) the outline lies on, for its live numbers.
        self._image, self._pet_unit, self._live_revision = values, pet_unit, -1
        self.layer.events.paint.connect(lambda _e: self.show_live())
        self.show_live()
        self.set_mode("paint")
        self._enable(True)
        self._autosave.start()
        self.message.setText(
            f"Resumed your draft of {self._target['lesion']} ({self._target['modality']}), as last "
            "autosaved: Save makes it your next version, Cancel throws it away."
            if draft
            else f"Editing {self._target['lesion']} ({self._target['modality']}): paint with the brush "
            "(tick 3D for a sphere), Ctrl+Z undoes; autosaved as your draft."
        )

    def set_mode(self, mode: str) -> None:
        """`paint`, `erase` or `fill` (in 2D, or 3D with the 3D box ticked); another napari mode
        (e.g. `pan_zoom`) hands the mouse back to napari."""
        if self.layer is None:
            return
        self._tool = mode if mode in TOOLS else None
        ours = self._ours()
        self._applying = True
        try:
            # Ours: napari must neither paint nor pan on a drag; the layer's callback takes it.
            self.layer.mode = "pan_zoom" if ours else mode
            self.layer.mouse_pan = self.layer.mode == "pan_zoom" and not ours
        finally:
            self._applying = False
        self.paint.setChecked(self._tool == "paint")
        self.erase.setChecked(self._tool == "erase")
        self.fill.setChecked(self._tool == "fill")
        self._apply_brush()

    def _ours(self) -> bool:
        """True when the editor (core) makes the voxels: the sphere brush/eraser and both fills."""
        return self._tool == "fill" or (self._tool in ("paint", "erase") and self.sphere.isChecked())

    def hold_space(self, held: bool) -> None:
        """While Space is held the mouse pans (napari's own), then the tool comes back."""
        if held == self._space_held:
            return
        self._space_held = held
        if self.layer is None or not self._ours():
            return  # napari's own modes: its hold-to-pan switches the layer's mode itself
        self.layer.mouse_pan = held
        if held:
            self.layer.cursor = "standard"
        else:
            self._apply_brush()

    def _layer_mode_changed(self, _event=None) -> None:
        """napari's own keys changed the layer's mode (P, E, F, Z, holding Space): follow them."""
        if self._applying or self.layer is None:
            return
        mode = str(self.layer.mode)
        self.set_mode(mode)

    def _apply_brush(self) -> None:
        if self.layer is not None and self._target:
            # napari's brush size is in voxels of the layer's data; the reader thinks in mm.
            self.layer.brush_size = max(1.0, self.brush_mm.value() / self._target["spacing"])
            if self._ours() and self._tool != "fill":
                self.layer.cursor = "circle"  # the sphere's cut through this slice, in mm
                self.layer.cursor_size = self.brush_mm.value()
            elif self._tool == "fill":
                self.layer.cursor = "cross"

    # --------------------------------------------------------- sphere, fill
    def _on_press(self, layer, event):
        """napari drag callback on the editing layer: a click or drag of the sphere brush/eraser
        (one undo step per drag), or a fill click. 2D brushing stays napari's."""
        if self.session is None or layer is not self.layer or getattr(event, "button", 1) != 1:
            return
        if not self._ours() or self._space_held:
            return  # napari's own tool, or Space held: napari pans
        if self._viewer is not None and self._viewer.model.dims.ndisplay != 2:
            self.message.setText("Untick 3D view to edit: outlines are edited on the slice.")
            return
        if self._tool == "fill":
            self.fill_at(tuple(event.position)[-3:])
            return
        stroke = self.session.begin_stroke()
        last = tuple(event.position)[-3:]
        self._dab(stroke, last)
        yield
        while event.type == "mouse_move":
            here = tuple(event.position)[-3:]
            self._dab(stroke, here, last)
            last = here
            yield
        self._end_stroke(stroke)

    def _dab(self, stroke: StrokeGroup, world_zyx, previous=None) -> None:
        value = 0 if self._tool == "erase" else int(self.layer.selected_label)
        if self.session.paint_sphere(world_zyx, self.brush_mm.value(), value, stroke, previous):
            self.layer.refresh()

    def _used(self, tool: str) -> None:
        self._tools_used.append(tool)

    def show_live(self) -> None:
        """The outline's volume and HU or SUV numbers now (once per change of the session's history:
        strokes, fills, undo and redo)."""
        if self.session is None or self.session.history.revision == self._live_revision:
            return
        self._live_revision = self.session.history.revision
        from palmares_desktop.core.segmentation.live import live_numbers

        numbers = live_numbers(
            self.session.mask, self._image, self.session.placement.scale, self._target["modality"]
        )
        self.live.setText(numbers.sentence(self._pet_unit))

    def _end_stroke(self, stroke: StrokeGroup) -> None:
        changed = stroke.changed
        if stroke.end() is None:
            self.message.setText("The sphere changed nothing there.")
            return
        self.show_live()
        self._used("sphere eraser" if self._tool == "erase" else "sphere brush")
        verb = "erased" if self._tool == "erase" else "painted"
        ml = voxels_ml(self.session.placement, changed)
        self.message.setText(
            f"Sphere of {self.brush_mm.value():g} mm: {changed} voxels ({ml:.2f} mL) {verb} through "
            "the slices it crosses; Ctrl+Z undoes."
        )

    def sphere_at(self, world_zyx) -> int:
        """One click of the sphere brush (or eraser, in erase mode) at a world (z, y, x) point, as the
        mouse callback makes it; returns the voxels changed."""
        if self.session is None:
            return 0
        stroke = self.session.begin_stroke()
        self._dab(stroke, tuple(world_zyx)[-3:])
        changed = stroke.changed
        self._end_stroke(stroke)
        return changed

    def fill_at(self, world_zyx) -> bool:
        """Fill the region the outline encloses under a world (z, y, x) point: on its slice, or the
        enclosed volume with 3D ticked. A region that is not enclosed is refused in words."""
        if self.session is None:
            return False
        three_d = self.sphere.isChecked()
        try:
            done = self.session.fill(tuple(world_zyx)[-3:], three_d, int(self.layer.selected_label))
        except PalmaresError as exc:
            self.message.setText(str(exc))
            return False
        self.layer.refresh()
        self.show_live()
        self._used("fill 3D" if three_d else "fill 2D")
        where = "in 3D" if three_d else "on this slice"
        ml = voxels_ml(self.session.placement, done.changed)
        self.message.setText(f"Filled {done.changed} voxels ({ml:.2f} mL) {where}; Ctrl+Z undoes.")
        return True

    # ---------------------------------------------------------------- saving
    def _job(self, final: bool):
        session, target, root, reader = self.session, dict(self._target), self._store.root, self._store.reader
        # Only a snapshot here, on the GUI thread (the nonzero box, copied: a few ms); the worker
        # rebuilds the mask on the stored grid and writes it (core drafts.save_draft).
        mask = session.snapshot()
        tools = list(dict.fromkeys(self._tools_used))
        method, parameters = drawn_method(tools), {"tools": tools, "brush_mm": self.brush_mm.value()}

        def job() -> dict:
            from palmares_desktop.core.segmentation.drafts import finalize, save_draft

            with worker_store(root, reader) as store:
                draft = save_draft(
                    store, target["code"], target["modality"], mask, target["lesion"], target["organ"],
                    method=method, parameters=parameters, series_id=target["series_id"],
                )  # fmt: skip
                result = finalize(store, draft.id) if final else draft
            return {"segmentation_id": result.id, "version": result.version, "lesion": target["lesion"]}

        return job

    def _autosave_if_due(self) -> None:
        if self.session is None or self._saving or not self.session.autosave_due():
            return
        self._saving = True
        self.session.mark_saved()  # edits from now on make it due again

        def done(result: dict) -> None:
            self._saving = False
            self._draft_id = result["segmentation_id"]
            self.message.setText(f"Draft of {result['lesion']} autosaved.")

        self.workers.start(
            self._job(final=False), on_success=done, on_failure=self._failed, name="autosave draft"
        )

    def save_final(self) -> None:
        if self.session is None:
            return
        self._autosave.stop()
        self._enable(False)
        self.message.setText("Saving…")

        def done(result: dict) -> None:
            self.message.setText(f"{result['lesion']}: version {result['version']} saved.")
            self._close()
            self.saved.emit(result)

        self.workers.start(
            self._job(final=True), on_success=done, on_failure=self._failed, name="save outline"
        )

    def cancel_edit(self) -> None:
        """Stop editing; the draft (if autosaved) is thrown away, final versions stay."""
        if self.session is None:
            return
        draft_id, root, reader = self._draft_id, self._store.root, self._store.reader
        if draft_id is not None:
            from palmares_desktop.core.segmentation.drafts import discard_draft

            with worker_store(root, reader) as store:
                discard_draft(store, draft_id)
        self.message.setText("Editing cancelled; the saved versions are unchanged.")
        self._close()

    def leave(self) -> None:
        """The room moves on (another subject, closing): unsaved edits become the reader's draft
        now, in this thread (a quick write), so nothing drawn is lost; then editing stops."""
        if self.session is None:
            return
        if self.session.dirty:
            try:
                self._job(final=False)()
            except Exception as exc:  # noqa: BLE001 - the reader must hear it; the room goes on
                log.exception("draft save on leaving failed")
                self.message.setText(f"The draft could not be saved: {exc}")
        self._close()

    def _failed(self, exc: Exception) -> None:
        self._saving = False
        self._enable(self.session is not None)
        self.message.setText(f"The outline could not be saved: {exc}")

    def _close(self) -> None:
        self._autosave.stop()
        if self._viewer is not None:
            self._viewer.widget.canvas.native.removeEventFilter(self._space)
            self._viewer.remove(EDIT_LAYER)
        self._space_held = False
        self.session, self.layer, self._target, self._draft_id = None, None, {}, None
        self._image = None
        self.live.setText("")
        self._enable(False)
        self.closed.emit()

    def _enable(self, editing: bool) -> None:
        for widget in (self.paint, self.erase, self.fill, self.sphere, self.save, self.cancel, self.brush_mm):
            widget.setEnabled(editing)
        self.edit.setEnabled(not editing)

"""The one place that talks to napari: embedded viewers, CT/PET/label/slide layers, teardown.

Embedding follows napari's recommended route, `QtViewer(ViewerModel())` (never the private
`viewer.window._qt_window`). A napari upgrade should touch this file only.

Geometry: `core.placement.Placement` owns it (Qt-free, with an exact inverse). A stored image is
shown as a (z, y, x) array permuted/flipped to LPS (no resampling) so that axial slices show
anterior up and patient right on the viewer's left, as radiologists read them; napari gets its
scale, translate and, for an oblique grid, rotate, so CT, PET and masks that share a frame of
reference overlay in physical space. `stored_image` maps a layer's data (e.g. edited labels) back
onto the stored grid, voxel for voxel.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk
from napari.components import ViewerModel
from napari.qt import QtViewer
from qtpy.QtCore import QEvent, QObject, Qt, QTimer
from qtpy.QtWidgets import QLabel

from palmares_desktop.core.pet.display import DEFAULT_FUSION_OPACITY, fusion_positions, fusion_table
from palmares_desktop.core.placement import Placement
from palmares_desktop.core.session import ReadingSession

log = logging.getLogger(__name__)

CT_LAYER = "CT"
PET_LAYER = "PET"
SLIDE_LAYER = "H&E slide"
CURSOR_LAYER = "Cursor"
CURSOR_RGB = "#ffd600"  # amber, as the companion views draw it
CURSOR_GAP_MM, CURSOR_ARM_MM = 4.0, 12.0  # the cross leaves the voxel under the cursor uncovered
PET_COLORMAPS = ("inferno", "hot", "magma", "turbo", "gray")
#: napari camera angles for a 3D view of (z, y, x) LPS data as a coronal MIP seen from the front
#: (checked with markers: superior at the top, patient's left on the right of the screen).
CORONAL_FROM_FRONT = (0.0, 0.0, -90.0)


@dataclass
class NapariVolume:
    """A volume ready for napari: display (z, y, x) array plus the placement that puts it in world mm."""

    data: np.ndarray
    placement: Placement

    @property
    def scale(self) -> tuple[float, float, float]:  # (sz, sy, sx) mm
        return self.placement.scale

    @property
    def translate(self) -> tuple[float, float, float]:  # world (z, y, x) mm of display voxel 0
        return self.placement.translate

    @property
    def rotate(self) -> np.ndarray | None:  # 3x3 in (z, y, x) order when the volume is oblique
        return self.placement.rotate


def _display_view(image: sitk.Image) -> tuple[Placement, np.ndarray]:
    """The image's placement and a display-order view of SimpleITK's own buffer (no copy; valid
    while `image` lives)."""
    placement = Placement.of(image)
    return placement, placement.to_display(sitk.GetArrayViewFromImage(image))


def volume_from_sitk(image: sitk.Image, dtype: Any | None = None) -> NapariVolume:
    """Convert a SimpleITK 3D image to napari placement. Safe to call in a worker thread."""
    placement, view = _display_view(image)
    # One pass from SimpleITK's buffer to a contiguous array of the wanted type (vispy uploads
    # textures from it, napari paints labels into it in place): a 512x512x300 CT in 0.07 s, not 1 s.
    array = np.empty(view.shape, view.dtype if dtype is None else dtype)
    np.copyto(array, view, casting="unsafe")
    return NapariVolume(array, placement)


def labels_from_sitk(image: sitk.Image, label: int, number: int) -> NapariVolume:
    """A stored mask's `label` voxels as display labels valued `number` (uint8 below 256), in one
    pass over SimpleITK's buffer: masks are as large as the CT, and a subject has several."""
    placement, view = _display_view(image)
    data = np.empty(view.shape, np.uint8 if number < 256 else np.uint16)
    np.equal(view, label, out=data, casting="unsafe")  # 1 at the label, else 0
    data *= data.dtype.type(number)
    return NapariVolume(data, placement)


def stored_image(volume: NapariVolume, data: np.ndarray | None = None) -> sitk.Image:
    """`data` (a layer's display array, default the volume's own) as an image on the stored grid."""
    return volume.placement.to_stored(volume.data if data is None else data)


def _painted_step(data: np.ndarray, atoms: Sequence[Any]) -> tuple[tuple[slice, ...], np.ndarray, np.ndarray]:
    """From one napari history item (its atoms): the box it changes, its values before and after.

    napari 0.9 records brush/fill/polygon edits as `_MaskedPaintAtom(slice_key, mask, old_values,
    new_value)` and `data_setitem` edits as (indices, old values, new values). It emits the paint
    event before writing a single edit but after a grouped drag, so both states are rebuilt from the
    atoms (old values last-first, then new values first-last), whatever the data holds now.
    """
    boxes = []
    for atom in atoms:
        if hasattr(atom, "slice_key"):
            boxes.append([(s.start, s.stop) for s in atom.slice_key])
        else:
            boxes.append([(int(np.min(i)), int(np.max(i)) + 1) for i in atom[0]])
    low = [min(b[a][0] for b in boxes) for a in range(data.ndim)]
    high = [max(b[a][1] for b in boxes) for a in range(data.ndim)]
    box = tuple(slice(lo, hi) for lo, hi in zip(low, high, strict=True))

    def put(target: np.ndarray, atom: Any, old: bool) -> None:
        if hasattr(atom, "slice_key"):
            local = tuple(slice(s.start - lo, s.stop - lo) for s, lo in zip(atom.slice_key, low, strict=True))
            values = atom.old_values if old else atom.new_value
            if atom.mask is None:
                target[local] = values
            else:
                region = target[local]  # a view into target
                region[atom.mask] = values
        else:
            target[tuple(np.asarray(i) - lo for i, lo in zip(atom[0], low, strict=True))] = atom[
                1 if old else 2
            ]

    before = np.array(data[box])
    for atom in reversed(atoms):
        put(before, atom, old=True)
    after = before.copy()
    for atom in atoms:
        put(after, atom, old=False)
    return box, before, after


def bridge_history(layer, session: ReadingSession) -> None:
    """Make `session` the one undo history of a labels layer painting its working mask in place.

    Each napari paint item becomes one session step (then napari's own copy is dropped: one history,
    bounded by the session), and the layer's undo/redo (Ctrl+Z, Ctrl+Shift+Z) go to the session.
    """
    if not np.shares_memory(layer.data, session.mask):
        raise ValueError("The labels layer must paint the session's own mask (use add_session_labels).")

    def on_paint(event) -> None:
        box, before, after = _painted_step(session.mask, event.value)
        session.record_region(box, before, after)
        layer._reset_history()  # private napari API, kept to this adapter: no second copy of the edit

    def undo() -> None:
        if session.undo() is not None:
            layer.refresh()

    def redo() -> None:
        if session.redo() is not None:
            layer.refresh()

    layer.events.paint.connect(on_paint)
    layer.undo, layer.redo = undo, redo  # napari's key bindings call layer.undo() / layer.redo()


def fusion_colormap(name: str):
    """`name` as the fused view's colour table (core/pet/display.py): an alpha ramp at its low end, so
    cold tissue leaves the CT untouched, and a saturated top, so the hottest colour shows over bone."""
    from napari.utils.colormaps import Colormap, ensure_colormap

    base = ensure_colormap(name)
    positions, samples = fusion_positions()
    table = fusion_table(np.asarray(base.map(samples), dtype=np.float32), positions)
    return Colormap(table, name=f"{name} (fusion)", display_name=f"{name} (fusion)", controls=positions)


def _placement(volume: NapariVolume) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"scale": volume.scale, "translate": volume.translate, "units": ("mm",) * 3}
    if volume.rotate is not None:
        kwargs["rotate"] = volume.rotate
    return kwargs


class _CanvasLetters(QObject):
    """Orientation letters (top, bottom, left, right) and a title drawn over a napari canvas, kept at
    its edges as it resizes (pan and zoom never turn a 2D view, so the letters stay true)."""

    STYLE = "color: white; background: transparent; font-weight: bold; font-size: 14px;"

    def __init__(self, canvas) -> None:
        super().__init__(canvas)
        self.canvas = canvas
        self.labels = [QLabel(canvas) for _ in range(5)]  # top, bottom, left, right, title
        for label in self.labels:
            label.setStyleSheet(self.STYLE)
            label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
            label.hide()
        self.labels[4].setStyleSheet("color: #e6e6e6; background: transparent; font-size: 12px;")
        canvas.installEventFilter(self)

    def show(self, letters: tuple[str, str, str, str] | None, title: str = "") -> None:
        for label, text in zip(self.labels, (*(letters or ("",) * 4), title), strict=True):
            label.setText(text)
            label.adjustSize()
            label.setVisible(bool(text))
        self.place()

    def place(self) -> None:
        w, h = self.canvas.width(), self.canvas.height()
        top, bottom, left, right, title = self.labels
        top.move((w - top.width()) // 2, 4)
        bottom.move((w - bottom.width()) // 2, h - bottom.height() - 4)
        left.move(6, (h - left.height()) // 2)
        right.move(w - right.width() - 6, (h - right.height()) // 2)
        title.move(6, 4)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt API
        if event.type() == QEvent.Type.Resize:
            self.place()
        return False


class EmbeddedViewer:
    """A napari viewer living inside one of our widgets. Use `.widget` in layouts; `close()` at the end."""

    def __init__(self, title: str = "viewer") -> None:
        self.model = ViewerModel(title=title)
        self.widget = QtViewer(self.model)
        self.model.axes.visible = False
        self._letters = _CanvasLetters(self.widget.canvas.native)
        self._closed = False

    # ------------------------------------------------------------------ layers
    @property
    def layers(self):
        return self.model.layers

    def layer(self, name: str):
        return self.model.layers[name] if name in self.model.layers else None  # noqa: SIM401 - LayerList has no .get

    def remove(self, name: str) -> None:
        if name in self.model.layers:
            self.model.layers.remove(name)

    def clear(self) -> None:
        self.model.layers.clear()

    def opengl_renderer(self) -> str:
        """The OpenGL that draws this viewer, e.g. 'llvmpipe (LLVM 15.0.6, 256 bits), OpenGL 4.5 ...
        Mesa 22.3.6' when software OpenGL is in use (Help → About shows it, for support)."""
        from vispy.gloo import gl

        try:
            self.widget.canvas._scene_canvas.set_current()
            return f"{gl.glGetParameter(gl.GL_RENDERER)}, OpenGL {gl.glGetParameter(gl.GL_VERSION)}"
        except Exception as exc:  # noqa: BLE001 - no context yet, or a driver that refuses: say so
            return f"unknown ({exc})"

    def after_next_paint(self, callback, limit_ms: int = 500) -> None:
        """Call `callback` once, right after the canvas's next paint (or after `limit_ms` if no paint
        comes, e.g. a hidden canvas): what the user must see first is drawn first."""
        draw = self.widget.canvas._scene_canvas.events.draw
        called = []

        def once(*_args) -> None:
            if called:
                return
            called.append(True)
            with contextlib.suppress(Exception):  # already disconnected
                draw.disconnect(painted)
            callback()

        def painted(_event) -> None:
            QTimer.singleShot(0, once)  # after the paint has finished, not inside it

        draw.connect(painted)
        QTimer.singleShot(limit_ms, once)

    def world_units(self) -> tuple | None:
        """The bottom layer's units (the CT's mm, the slide's µm). Every layer of a viewer carries
        them: napari's scale bar shows a unit only when all layers agree, else a bare number."""
        return self.model.layers[0].units if len(self.model.layers) else None

    def batch(self):
        """Context manager: layers added or removed inside it update the scene graph once, at the
        end, instead of once per layer (~0.1 s each with overlays; a subject has a dozen layers)."""
        return self.model.layers.batched_update()

    def _label_axes(self) -> None:
        # napari's default labels are "-3", "-2", "-1"; readers expect anatomical axis names.
        names = ("z", "y", "x")[-self.model.dims.ndim :] if self.model.dims.ndim <= 3 else None
        if names:
            self.model.dims.axis_labels = names

    def add_ct(self, volume: NapariVolume, limits: tuple[float, float]):
        self.remove(CT_LAYER)
        layer = self.model.add_image(
            volume.data,
            name=CT_LAYER,
            colormap="gray",
            contrast_limits=limits,
            blending="opaque",
            interpolation2d="linear",
            **_placement(volume),
        )
        # The slider must reach beyond the current window (e.g. lung after liver).
        layer.contrast_limits_range = (
            min(float(volume.data.min()), limits[0]),
            max(float(volume.data.max()), limits[1]),
        )
        self.model.layers.move(self.model.layers.index(layer), 0)  # CT at the bottom of the stack
        self._label_axes()
        return layer

    def add_pet(
        self,
        volume: NapariVolume,
        suv_max: float,
        colormap: str = "inferno",
        opacity: float = DEFAULT_FUSION_OPACITY,
    ):
        self.remove(PET_LAYER)
        # A translucent colour overlay (not additive: CT + colour saturates to white over bone).
        layer = self.model.add_image(
            volume.data,
            name=PET_LAYER,
            colormap=fusion_colormap(colormap),
            contrast_limits=(0.0, suv_max),
            opacity=opacity,
            blending="translucent_no_depth",
            interpolation2d="linear",
            **_placement(volume),
        )
        layer.contrast_limits_range = (0.0, max(float(volume.data.max()), suv_max))
        self._label_axes()
        return layer

    def add_labels(self, mask: NapariVolume, name: str, color: str, contour: int = 1, opacity: float = 1.0):
        """A segmentation drawn as an outline in `color` so the PET/CT under it stays readable.

        napari's default label colours are random (label 1 is a dark brown, invisible on CT), so
        each lesion gets an explicit bright colour chosen by the caller.
        """
        from napari.utils.colormaps import DirectLabelColormap

        self.remove(name)
        # Every label value in `color` and 0 transparent: no scan of the volume for its values (a
        # full-size CT mask takes ~0.5 s) and no int32 copy (napari shows uint8/uint16 labels as is).
        data = mask.data if mask.data.dtype.kind in "iu" else mask.data.astype(np.int32)
        colormap = DirectLabelColormap(color_dict={None: color, 0: "transparent"})
        # No depth test: with it, the CT slice (drawn first) hides the outlines in the embedded canvas.
        layer = self.model.add_labels(
            data,
            name=name,
            opacity=opacity,
            colormap=colormap,
            blending="translucent_no_depth",
            **_placement(mask),
        )
        layer.contour = contour
        return layer

    def add_session_labels(self, session: ReadingSession, name: str, color: str, contour: int = 0):
        """The session's working mask as an editable labels layer that paints it in place, with the
        session as its undo history."""
        from napari.utils.colormaps import DirectLabelColormap

        self.remove(name)
        layer = self.model.add_labels(
            session.mask,
            name=name,
            colormap=DirectLabelColormap(color_dict={None: color, 0: "transparent"}),
            blending="translucent_no_depth",
            **_placement(NapariVolume(session.mask, session.placement)),
        )
        layer.contour = contour
        bridge_history(layer, session)
        return layer

    def add_slide(
        self,
        levels: Sequence[Any],
        mpp: tuple[float, float],
        name: str = SLIDE_LAYER,
        units: tuple[str, str] = ("um", "um"),
    ):
        """A multiscale RGB slide from lazy level arrays (level 0 first); scale in µm per pixel (y, x)."""
        self.remove(name)
        levels = list(levels)
        # A single-level slide (a region crop such as CMU-1-Small-Region.svs) is one plain image:
        # napari given a one-element list without multiscale tries to treat the list as the image.
        layer = self.model.add_image(
            levels if len(levels) > 1 else levels[0],
            name=name,
            rgb=True,
            multiscale=len(levels) > 1,
            scale=mpp,
            units=units,
            contrast_limits=(0, 255),
        )
        self._label_axes()
        return layer

    def set_contrast(self, name: str, limits: tuple[float, float]) -> None:
        layer = self.layer(name)
        if layer is not None:
            low, high = layer.contrast_limits_range
            layer.contrast_limits_range = (min(low, limits[0]), max(high, limits[1]))
            layer.contrast_limits = limits

    def set_opacity(self, name: str, opacity: float) -> None:
        layer = self.layer(name)
        if layer is not None:
            layer.opacity = float(opacity)

    def set_colormap(self, name: str, colormap: str) -> None:
        layer = self.layer(name)
        if layer is not None:
            layer.colormap = fusion_colormap(colormap) if name == PET_LAYER else colormap

    def set_visible(self, name: str, visible: bool) -> None:
        layer = self.layer(name)
        if layer is not None and layer.visible != visible:
            layer.visible = visible  # napari refreshes a layer at every visible=True, even a shown one

    # ------------------------------------------------------------------- view
    def set_3d(self, on: bool) -> None:
        """3D: volume rendering seen from the front (coronal: head up, patient's left on the right)."""
        self.model.dims.ndisplay = 3 if on else 2
        self.model.reset_view()  # (this also resets the camera angles, so set them after)
        if on:
            self.model.scene.camera.angles = CORONAL_FROM_FRONT

    def set_rendering(self, name: str, rendering: str) -> None:
        layer = self.layer(name)
        if layer is not None:
            layer.rendering = rendering

    def show_scale_bar(self, visible: bool = True) -> None:
        self.model.scale_bar.visible = visible
        self.model.scale_bar.colored = False
        # White on a dark box: readable over bright glass and dark tissue alike.
        self.model.scale_bar.box = True
        self.model.scale_bar.box_color = (0.0, 0.0, 0.0, 0.65)
        self.model.scale_bar.color = (1.0, 1.0, 1.0, 1.0)
        self.model.scale_bar.font_size = 12

    def set_background(self, color: str) -> None:
        """Canvas colour around the image (e.g. grey for slides, so the glass edge shows)."""
        self.model.canvas.background_color_override = color

    def reset_view(self) -> None:
        self.model.reset_view()

    def go_to_slice(self, point_zyx: Sequence[float]) -> None:
        """Show the axial slice through a world point (mm); the camera (zoom, pan) stays as the reader left it."""
        if self.model.dims.ndim >= 3:
            self.model.dims.set_point(0, float(point_zyx[0]))

    def show_cursor(self, world_zyx: Sequence[float] | None, create: bool = True) -> None:
        """The linked cursor on its own slice: four short arms with a gap, so the voxel under it stays
        visible (a Shapes layer that never takes the selection: the outline editor paints into
        whichever layer is active)."""
        layer = self.layer(CURSOR_LAYER)
        if world_zyx is None or self.model.dims.ndim < 3 or (layer is None and not create):
            if layer is not None:
                layer.visible = False
            return
        z, y, x = (float(v) for v in world_zyx)
        gap, arm = CURSOR_GAP_MM, CURSOR_GAP_MM + CURSOR_ARM_MM
        arms = [
            np.array([[z, y - arm, x], [z, y - gap, x]]),
            np.array([[z, y + gap, x], [z, y + arm, x]]),
            np.array([[z, y, x - arm], [z, y, x - gap]]),
            np.array([[z, y, x + gap], [z, y, x + arm]]),
        ]
        if layer is None:
            active = self.model.layers.selection.active
            layer = self.model.add_shapes(
                arms,
                shape_type="line",
                name=CURSOR_LAYER,
                edge_color=CURSOR_RGB,
                edge_width=1.2,  # mm
                blending="translucent_no_depth",
                units=self.world_units(),
            )
            self.model.layers.selection.active = active
        else:
            layer.data = arms
        layer.visible = self.model.dims.ndisplay == 2

    def show_orientation(self, letters: tuple[str, str, str, str] | None, title: str = "") -> None:
        """Orientation letters at the canvas edges (top, bottom, left, right) and a title; None hides."""
        self._letters.show(letters if self.model.dims.ndisplay == 2 else None, title)

    def orientation_letters(self) -> tuple[str, ...]:
        """The letters and title shown (empty strings where none), as the reader sees them."""
        return tuple(label.text() if label.isVisible() else "" for label in self._letters.labels)

    def step_slice(self, steps: int) -> None:
        """Move `steps` slices along the first axis (positive: superior)."""
        if self.model.dims.ndim >= 3:
            current = self.model.dims.current_step[0]
            top = self.model.dims.nsteps[0] - 1
            self.model.dims.set_current_step(0, int(min(max(current + steps, 0), top)))

    def zoom_by(self, factor: float) -> None:
        self.model.scene.camera.zoom = float(self.model.scene.camera.zoom) * factor

    def middle_slice(self) -> None:
        """Show the middle slice of the world extent along the first axis."""
        extent = self.model.layers.extent.world
        if self.model.dims.ndim >= 3:
            self.model.dims.set_point(0, float((extent[0][0] + extent[1][0]) / 2))

    def canvas_pixel(self, world_zyx: Sequence[float], shape: Sequence[int]) -> tuple[int, int]:
        """(row, column) of a world point (mm) in a canvas screenshot of `shape` (2D slice view)."""
        center = np.asarray(self.model.scene.camera.center, dtype=float)[-2:]
        offset = (np.asarray(world_zyx, dtype=float)[-2:] - center) * float(self.model.scene.camera.zoom)
        return int(round(shape[0] / 2 + offset[0])), int(round(shape[1] / 2 + offset[1]))

    def screenshot(self) -> np.ndarray:
        """RGBA image of the canvas only."""
        return np.asarray(self.widget.screenshot(flash=False))

    # ---------------------------------------------------------------- teardown
    def close(self) -> None:
        """Explicit teardown (napari checks for leaked viewers; Qt's late cleanup is not enough)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.model.layers.clear()
            self.widget.close()
            self.widget.deleteLater()
        except RuntimeError:  # the C++ object is already gone (application shutting down)
            log.debug("napari widget already deleted", exc_info=True)

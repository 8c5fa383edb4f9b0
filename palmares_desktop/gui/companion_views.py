"""The 2x2 layout's companion views (coronal, sagittal, PET MIP) and the PET colour bar.

Every pixel comes from core (`core/planes.py`); these widgets only paint it, draw the linked
cursor and the orientation letters, and turn a click back into a world point.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QPointF, QRectF, Qt, Signal
from qtpy.QtGui import QColor, QFont, QImage, QLinearGradient, QPainter, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

from palmares_desktop.core import planes
from palmares_desktop.core.pet.display import fuse
from palmares_desktop.core.planes import PLANES, PlaneGrid, Volume

CURSOR_COLOUR = QColor(255, 214, 0)  # amber: visible over grey CT, the PET colours and the white MIP


def wheel_steps(delta_y: int) -> int:
    """Planes or slices to move for a wheel turn: one per notch (120), at least one for any turn (a
    touchpad sends small deltas), up and down alike."""
    if not delta_y:
        return 0
    return int(np.sign(delta_y)) * max(1, round(abs(delta_y) / 120))


class PlaneView(QWidget):
    """One companion view: a core-rendered RGB plane, kept square-pixelled, with the cursor's lines."""

    clicked = Signal(object)  # world (z, y, x) mm under the click
    scrolled = Signal(int)  # wheel steps (+ away from the reader's side of the fixed axis)

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.grid: PlaneGrid | None = None
        self.rgb: np.ndarray | None = None
        self.cursor_zyx: np.ndarray | None = None
        self.dark = True  # the MIP is drawn on white: its letters are dark
        self.setMinimumSize(160, 120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setToolTip(f"{title}: click to move the cursor there; the wheel moves through the planes")

    def show_image(self, rgb: np.ndarray | None, grid: PlaneGrid | None, dark: bool = True) -> None:
        self.rgb, self.grid, self.dark = rgb, grid, dark
        self.update()

    def set_cursor(self, world_zyx) -> None:
        self.cursor_zyx = None if world_zyx is None else np.asarray(world_zyx, dtype=float)
        self.update()

    def image_rect(self) -> QRectF:
        """Where the image is drawn: as large as fits, centred, pixels square."""
        if self.rgb is None:
            return QRectF()
        rows, cols = self.rgb.shape[:2]
        scale = min(self.width() / cols, self.height() / rows)
        w, h = cols * scale, rows * scale
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def widget_point(self, world_zyx) -> QPointF | None:
        """Where a world point falls on this widget (None before an image is shown)."""
        if self.grid is None or self.rgb is None:
            return None
        rect = self.image_rect()
        row, col = self.grid.pixel_of(world_zyx)
        scale = rect.width() / self.rgb.shape[1]
        return QPointF(rect.left() + (col + 0.5) * scale, rect.top() + (row + 0.5) * scale)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(0, 0, 0) if self.dark else QColor(255, 255, 255))
        if self.rgb is not None and self.grid is not None:
            rect = self.image_rect()
            rows, cols = self.rgb.shape[:2]
            image = QImage(self.rgb.data, cols, rows, 3 * cols, QImage.Format.Format_RGB888)
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            painter.drawImage(rect, image)
            self._paint_cursor(painter, rect)
            self._paint_letters(painter, rect)
        painter.setPen(QColor(230, 230, 230) if self.dark else QColor(40, 40, 40))
        painter.setFont(QFont(self.font().family(), 9))
        painter.drawText(QPointF(6, 14), self.title)
        painter.end()

    def _paint_cursor(self, painter: QPainter, rect: QRectF) -> None:
        point = None if self.cursor_zyx is None else self.widget_point(self.cursor_zyx)
        if point is None:
            return
        pen = QPen(CURSOR_COLOUR)
        pen.setWidthF(1.0)
        pen.setStyle(Qt.PenStyle.DashLine)
        painter.setPen(pen)
        painter.drawLine(QPointF(rect.left(), point.y()), QPointF(rect.right(), point.y()))
        painter.drawLine(QPointF(point.x(), rect.top()), QPointF(point.x(), rect.bottom()))

    def _paint_letters(self, painter: QPainter, rect: QRectF) -> None:
        top, bottom, left, right = self.grid.kind.labels
        painter.setPen(QColor(255, 255, 255) if self.dark else QColor(30, 30, 30))
        font = QFont(self.font().family(), 11)
        font.setBold(True)
        painter.setFont(font)
        metrics = painter.fontMetrics()
        mid_x, mid_y = rect.center().x(), rect.center().y()
        painter.drawText(
            QPointF(mid_x - metrics.horizontalAdvance(top) / 2, rect.top() + metrics.ascent() + 2), top
        )
        painter.drawText(QPointF(mid_x - metrics.horizontalAdvance(bottom) / 2, rect.bottom() - 4), bottom)
        painter.drawText(QPointF(rect.left() + 4, mid_y + metrics.ascent() / 2), left)
        painter.drawText(
            QPointF(rect.right() - metrics.horizontalAdvance(right) - 4, mid_y + metrics.ascent() / 2), right
        )

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.button() != Qt.MouseButton.LeftButton or self.grid is None or self.rgb is None:
            return
        rect = self.image_rect()
        if not rect.contains(event.position()):
            return
        scale = rect.width() / self.rgb.shape[1]
        col = (event.position().x() - rect.left()) / scale - 0.5
        row = (event.position().y() - rect.top()) / scale - 0.5
        cursor = self.cursor_zyx if self.cursor_zyx is not None else np.zeros(3)
        self.clicked.emit(self.grid.world_of(row, col, cursor))

    def wheelEvent(self, event) -> None:  # noqa: N802 - Qt API
        steps = wheel_steps(event.angleDelta().y())
        if steps:
            self.scrolled.emit(steps)


class CompanionViews:
    """The views beside napari's axial one, linked to one cursor: for the 2x2 layout coronal and
    sagittal planes through it and a coronal PET MIP; for the side-by-side layout the axial CT alone
    and the axial PET alone."""

    def __init__(self, parent: QWidget) -> None:
        self.coronal = PlaneView("Coronal", parent)
        self.sagittal = PlaneView("Sagittal", parent)
        self.mip = PlaneView("PET MIP", parent)
        self.ct_axial = PlaneView("CT", parent)
        self.pet_axial = PlaneView("PET", parent)
        self.layout = "2x2"  # or "side": which views render() draws
        self.ct: Volume | None = None
        self.pet: Volume | None = None
        self.masks: list[tuple[Volume, tuple[float, float, float]]] = []
        self.cursor = np.zeros(3)
        self.ct_limits = (-150.0, 250.0)
        self.suv_max, self.opacity, self.table = 6.0, 0.6, np.zeros((2, 4), np.float32)
        self.pet_visible = self.masks_visible = self.ct_visible = True
        self._mip_values: np.ndarray | None = None

    @property
    def views(self) -> tuple[PlaneView, PlaneView, PlaneView]:
        """The 2x2 layout's views."""
        return self.coronal, self.sagittal, self.mip

    @property
    def side_views(self) -> tuple[PlaneView, PlaneView]:
        """The side-by-side layout's views (CT alone, PET alone)."""
        return self.ct_axial, self.pet_axial

    @property
    def all_views(self) -> tuple[PlaneView, ...]:
        return (*self.views, *self.side_views)

    def set_volumes(self, ct: Volume | None, pet: Volume | None, masks) -> None:
        self.ct, self.pet, self.masks = ct, pet, list(masks)
        self._mip_values = None

    def set_masks(self, masks) -> None:
        """(volume, rgb) outlines drawn in the planes (e.g. the outline being edited, live)."""
        self.masks = list(masks)

    def set_display(
        self, ct_limits, suv_max, table, opacity, pet_visible, masks_visible, ct_visible=True
    ) -> None:
        self.ct_limits, self.suv_max, self.table = tuple(ct_limits), float(suv_max), np.asarray(table)
        self.opacity, self.pet_visible, self.masks_visible = float(opacity), pet_visible, masks_visible
        self.ct_visible = ct_visible

    def set_cursor(self, world_zyx) -> None:
        self.cursor = np.asarray(world_zyx, dtype=float)
        for view in self.all_views:
            view.set_cursor(self.cursor)

    def clear(self) -> None:
        self.set_volumes(None, None, [])
        for view in self.all_views:
            view.show_image(None, None)

    # ------------------------------------------------------------ rendering
    def render(self) -> None:
        """Re-draw the current layout's views through the cursor (call it only when they are on screen)."""
        self.show(self.frames())

    def frames(self) -> list[tuple[PlaneView, np.ndarray | None, PlaneGrid | None, bool]]:
        """What each view of the layout shows now: (view, RGB bytes or None, grid, dark). Pixels only,
        no widget touched, so a worker may compute them (`show` then puts them on screen)."""
        reference = self.ct or self.pet
        if reference is None:
            return [(view, None, None, True) for view in self.all_views]
        if self.layout == "side":
            grid = PlaneGrid.covering(PLANES["axial"], reference)
            return [
                (self.ct_axial, self.plane_rgb(grid, pet=False) if self.ct is not None else None, grid, True),
                (
                    self.pet_axial,
                    self.plane_rgb(grid, ct=False) if self.pet is not None else None,
                    grid,
                    True,
                ),
            ]
        out = []
        for view, name in ((self.coronal, "coronal"), (self.sagittal, "sagittal")):
            grid = PlaneGrid.covering(PLANES[name], reference)
            out.append((view, self.plane_rgb(grid), grid, True))
        if self.pet is None:
            return [*out, (self.mip, None, None, True)]
        grid = PlaneGrid.covering(PLANES["coronal"], self.pet)
        if self._mip_values is None or self._mip_values.shape != (grid.rows, grid.cols):
            self._mip_values = planes.projection(self.pet, grid)
        mip = planes.to_bytes(planes.mip_grey(self._mip_values, self.suv_max))
        return [*out, (self.mip, mip, grid, False)]

    def show(self, frames: list[tuple[PlaneView, np.ndarray | None, PlaneGrid | None, bool]]) -> None:
        for view, rgb, grid, dark in frames:
            view.show_image(rgb, grid, dark=dark)

    def plane_rgb(self, grid: PlaneGrid, ct: bool = True, pet: bool = True) -> np.ndarray:
        """The plane through the cursor: CT in its window, PET fused over it, outlines on top (`ct` /
        `pet` False leave that image out, as the display's CT and PET ticks do)."""
        fixed = float(self.cursor[grid.kind.fixed_axis])
        shared: dict = {}  # a series' image and masks share its grid: one voxel look-up for all

        def indices(volume: Volume) -> planes.PlaneIndices:
            key = (volume.placement, volume.data.shape)
            if key not in shared:
                shared[key] = planes.PlaneIndices.of(volume, grid, fixed)
            return shared[key]

        with_ct = ct and self.ct is not None and self.ct_visible
        if with_ct:
            rgb = planes.grey(planes.sample(self.ct, grid, fixed, indices=indices(self.ct)), self.ct_limits)
        else:
            rgb = np.zeros((grid.rows, grid.cols, 3))
        if pet and self.pet is not None and (self.pet_visible or not ct):
            suv = planes.sample(self.pet, grid, fixed, outside=0.0, indices=indices(self.pet))
            # Without a CT under it, the PET is the image: full colour, not a translucent overlay.
            rgb = fuse(rgb, suv, self.suv_max, self.table, self.opacity if with_ct else 1.0)
        if self.masks_visible:
            for mask, colour in self.masks:
                rgb[planes.outline(indices(mask).take(mask.data, 0.0) > 0)] = colour
        return planes.to_bytes(rgb)


class ColourBar(QWidget):
    """The PET colour scale in SUV (or the stored unit), top = the display maximum."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.colours: np.ndarray | None = None
        self.top, self.unit = 6.0, "SUVbw"
        self.setFixedWidth(58)
        self.setToolTip("PET colour scale; below the dashed line the colour fades into the CT")

    def set_scale(self, colours: np.ndarray, top: float, unit: str) -> None:
        self.colours, self.top, self.unit = np.asarray(colours, dtype=float), float(top), unit
        self.update()

    def ticks(self) -> list[float]:
        return planes.colour_bar_ticks(self.top)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(20, 20, 20))
        if self.colours is None or self.top <= 0:
            painter.end()
            return
        bar = QRectF(6, 24, 14, self.height() - 34)
        gradient = QLinearGradient(bar.bottomLeft(), bar.topLeft())
        n = len(self.colours)
        for i, (r, g, b) in enumerate(self.colours[:, :3]):
            gradient.setColorAt(i / max(n - 1, 1), QColor.fromRgbF(float(r), float(g), float(b)))
        painter.fillRect(bar, gradient)
        painter.setPen(QColor(220, 220, 220))
        painter.setFont(QFont(self.font().family(), 8))
        painter.drawText(QPointF(4, 14), self.unit)
        for value in self.ticks():
            y = bar.bottom() - value / self.top * bar.height()
            painter.drawLine(QPointF(bar.right(), y), QPointF(bar.right() + 4, y))
            painter.drawText(QPointF(bar.right() + 6, y + 4), f"{value:g}")
        fade = bar.bottom() - planes.fade_in_suv(self.top) / self.top * bar.height()
        pen = QPen(QColor(220, 220, 220))
        pen.setStyle(Qt.PenStyle.DashLine)
        painter.setPen(pen)
        painter.drawLine(QPointF(bar.left(), fade), QPointF(bar.right(), fade))
        painter.end()

"""The CT/PET room: CT with window presets, PET fused over it, lesions, segmentations, radiomics panel.

Volumes and masks are read from the store in a worker thread (`TaskThread`); layers are only
created in the GUI thread, in the success slot. A generation counter drops results of a subject
the user has already left.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from qtpy.QtCore import QEvent, QObject, QSize, Qt, QTimer, Signal
from qtpy.QtGui import QColor, QIcon, QKeySequence, QPixmap, QShortcut
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from palmares_desktop.core.ct.windows import DEFAULT_WINDOW, WINDOW_PRESETS
from palmares_desktop.core.model import Segmentation, Series, Subject
from palmares_desktop.core.pet.display import (
    DEFAULT_FUSION_OPACITY,
    DEFAULT_SUV_MAX,
    uncalibrated_display_max,
)
from palmares_desktop.core.planes import PLANES, Volume, readout
from palmares_desktop.core.reading_set import subject_segmentations, subject_series
from palmares_desktop.core.segmentation.drafts import drafts_sentence, unsaved_drafts
from palmares_desktop.core.store import Store
from palmares_desktop.gui.caliper import CaliperTool
from palmares_desktop.gui.companion_views import ColourBar, CompanionViews, wheel_steps
from palmares_desktop.gui.ct_tools import CtTools
from palmares_desktop.gui.lesions_panel import LesionsPanel
from palmares_desktop.gui.napari_adapter import (
    CT_LAYER,
    PET_COLORMAPS,
    PET_LAYER,
    EmbeddedViewer,
    NapariVolume,
    fusion_colormap,
    labels_from_sitk,
    volume_from_sitk,
)
from palmares_desktop.gui.outline_editor import OutlineEditor
from palmares_desktop.gui.pet_candidates_tool import PetCandidatesTool
from palmares_desktop.gui.pet_threshold_tool import PetThresholdTool
from palmares_desktop.gui.plugin_tools_tab import PluginTools
from palmares_desktop.gui.radiomics_panel import RadiomicsPanel
from palmares_desktop.gui.workers import WorkerPool, worker_store

log = logging.getLogger(__name__)

DEFAULT_PET_OPACITY = DEFAULT_FUSION_OPACITY
MODALITY_NAMES = {"CT": "CT", "PT": "PET"}
#: Lesion outline colours: bright, and away from the PET's inferno/hot hues and from CT greys.
LESION_COLOURS = ("#00e5ff", "#76ff03", "#ff4dff", "#4d9fff", "#00ffa3", "#c6a4ff", "#ffffff", "#b2ff59")


@dataclass
class LoadedMask:
    segmentation: Segmentation  # with lesion_name, organ, series_modality
    volume: NapariVolume
    centroid_zyx: tuple[float, float, float] | None  # world mm, to jump to the lesion
    lesion_number: int = 1  # 1-based order of the lesion in the subject: picks its outline colour

    @property
    def color(self) -> str:
        return LESION_COLOURS[(self.lesion_number - 1) % len(LESION_COLOURS)]


@dataclass
class LoadedSubject:
    subject: Subject
    ct: Series | None = None
    pet: Series | None = None
    ct_volume: NapariVolume | None = None
    pet_volume: NapariVolume | None = None
    masks: list[LoadedMask] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _read_mask(path: Path, label: int, number: int) -> tuple[NapariVolume, tuple[float, float, float] | None]:
    """A stored mask's `label` voxels as lesion `number`'s display mask, and their centroid (world
    mm) or None when there are none. Raises RuntimeError when the file cannot be read."""
    mask = labels_from_sitk(sitk.ReadImage(str(path)), label, number)
    voxels = np.flatnonzero(mask.data)
    centroid = None
    if voxels.size:
        index = np.array(np.unravel_index(voxels, mask.data.shape)).mean(axis=1)
        centroid = tuple(float(v) for v in mask.placement.display_to_world(index))  # oblique too
    return mask, centroid


def _read_volume(path: Path) -> NapariVolume:
    return volume_from_sitk(sitk.ReadImage(str(path)), np.float32)


def read_subject(
    root: Path,
    subject: Subject,
    ct: Series | None,
    pet: Series | None,
    segmentations: list[Segmentation],
    notes: list[str],
) -> LoadedSubject:
    """Worker-thread part: read volumes and masks from disk (no widgets, no layers here). Two files
    are read at a time (SimpleITK's readers and numpy release the GIL): the masks meanwhile the CT."""
    loaded = LoadedSubject(subject, ct, pet, notes=list(notes))
    lesion_numbers: dict[str, int] = {}
    # One number (and so one colour) per lesion, shared by its CT and PET segmentations.
    numbers = [lesion_numbers.setdefault(seg.lesion_id, len(lesion_numbers) + 1) for seg in segmentations]
    paths = [root / (seg.mask_path or "") for seg in segmentations]
    with ThreadPoolExecutor(max_workers=2) as pool:
        volumes = [None if s is None else pool.submit(_read_volume, root / s.pixel_path) for s in (ct, pet)]
        reads = [
            pool.submit(_read_mask, path, int(seg.label or 1), number)
            for seg, path, number in zip(segmentations, paths, numbers, strict=True)
        ]
        loaded.ct_volume, loaded.pet_volume = (None if f is None else f.result() for f in volumes)
        for seg, path, number, read in zip(segmentations, paths, numbers, reads, strict=True):
            try:
                mask, centroid = read.result()
            except RuntimeError as exc:
                loaded.notes.append(
                    f"Mask of {seg.lesion_name} could not be read ({path.name}): {exc}".strip()
                )
                continue
            loaded.masks.append(LoadedMask(seg, mask, centroid, number))
    return loaded


def _plane_volume(volume: NapariVolume | None) -> Volume | None:
    return None if volume is None else Volume(volume.data, volume.placement)


def _centre_of(loaded: LoadedSubject) -> tuple[float, float, float]:
    """World centre of the subject's CT (else PET): where the cursor starts."""
    return _plane_volume(loaded.ct_volume or loaded.pet_volume).centre()


def _swatch(color: str) -> QIcon:
    pixmap = QPixmap(12, 12)
    pixmap.fill(QColor(color))
    return QIcon(pixmap)


class FitTabs(QTabWidget):
    """Tabs as tall as the page shown, not as the tallest page (Lesions is taller than Display): the
    other pages' heights count neither in the size hint nor in the window's minimum height."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.currentChanged.connect(self._fit)

    def _fit(self, index: int) -> None:
        for i in range(self.count()):
            page = self.widget(i)
            vertical = QSizePolicy.Policy.Preferred if i == index else QSizePolicy.Policy.Ignored
            page.setSizePolicy(page.sizePolicy().horizontalPolicy(), vertical)  # the stack's minimum
        self.updateGeometry()

    def tabInserted(self, index: int) -> None:  # noqa: N802 - Qt API
        super().tabInserted(index)
        self._fit(self.currentIndex())

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        hint = super().sizeHint()  # the tallest page's hint, plus the tab bar and frame
        pages = [self.widget(i) for i in range(self.count())]
        if not pages:
            return hint
        current = self.currentWidget()
        inner = current.widget() if isinstance(current, QScrollArea) else current  # not capped
        tallest = max(p.sizeHint().height() for p in pages)
        return QSize(hint.width(), hint.height() - tallest + inner.sizeHint().height())


class _WheelSlices(QObject):
    """The wheel moves through slices and Ctrl+wheel zooms, as radiologists expect (napari's own
    default is the other way round)."""

    def __init__(self, viewer: EmbeddedViewer) -> None:
        super().__init__()
        self.viewer = viewer

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt API
        if event.type() != QEvent.Type.Wheel or self.viewer.model.dims.ndisplay != 2:
            return False
        steps = wheel_steps(event.angleDelta().y())
        if not steps:
            return False
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.viewer.zoom_by(1.15**steps)
        else:
            self.viewer.step_slice(steps)
        return True


class CtPetRoom(QWidget):
    """Embedded napari viewer + display controls + lesion list + radiomics panel."""

    subject_loaded = Signal(str)  # subject code, once its layers are on screen
    load_failed = Signal(str)
    features_ready = Signal()  # background feature computation for the open subject finished

    def __init__(self, workers: WorkerPool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workers = workers
        self.viewer = EmbeddedViewer("CT/PET")
        self.store: Store | None = None
        self.loaded: LoadedSubject | None = None
        self._generation = 0
        self._fit_pending = False
        self._pet_in_suv = True  # the PET max box holds an SUV (False after an uncalibrated PET)
        self._select_after_load: str | None = None  # segmentation id to select once reloaded
        self._cursor_live = False  # the cursor is placed once the subject's layers are on screen
        self._fusion_colours: dict[str, np.ndarray] = {}  # PET colour map -> its fusion table

        self.title = QLabel("No subject open. Double-click a subject in the worklist.")
        self.title.setStyleSheet("font-weight: bold; font-size: 14px;")
        self.title.setWordWrap(True)
        self.notes = QLabel()
        self.notes.setWordWrap(True)
        self.notes.setStyleSheet("color: #b9770e;")

        # --- display controls
        self.window_combo = QComboBox()
        for preset in WINDOW_PRESETS.values():
            self.window_combo.addItem(preset.label(), preset.name)
        self.window_combo.setCurrentIndex(list(WINDOW_PRESETS).index(DEFAULT_WINDOW))
        self.window_combo.currentIndexChanged.connect(self._window_changed)
        self.ct_visible = QCheckBox("Show CT")
        self.ct_visible.setChecked(True)
        self.ct_visible.setToolTip("Untick for the PET alone")
        self.ct_visible.toggled.connect(lambda on: self.viewer.set_visible(CT_LAYER, on))
        self.pet_visible = QCheckBox("Show PET")
        self.pet_visible.setChecked(True)
        self.pet_visible.toggled.connect(lambda on: self.viewer.set_visible(PET_LAYER, on))
        self.pet_colormap = QComboBox()
        self.pet_colormap.addItems(list(PET_COLORMAPS))
        self.pet_colormap.currentTextChanged.connect(lambda name: self.viewer.set_colormap(PET_LAYER, name))
        self.pet_opacity = QSlider(Qt.Orientation.Horizontal)
        self.pet_opacity.setRange(0, 100)
        self.pet_opacity.setValue(int(DEFAULT_PET_OPACITY * 100))
        self.pet_opacity.valueChanged.connect(self._opacity_changed)
        self.suv_max = QDoubleSpinBox()
        self.suv_max.setRange(0.5, 100.0)
        self.suv_max.setSingleStep(0.5)
        self.suv_max.setDecimals(1)
        self.suv_max.setValue(DEFAULT_SUV_MAX)
        self.suv_max.valueChanged.connect(lambda v: self.viewer.set_contrast(PET_LAYER, (0.0, float(v))))
        self.suv_label = QLabel("PET max (SUVbw)")
        self.masks_visible = QCheckBox("Show segmentations")
        self.masks_visible.setChecked(True)
        self.masks_visible.toggled.connect(self._toggle_masks)
        for signal in (
            self.ct_visible.toggled,
            self.window_combo.currentIndexChanged,
            self.pet_visible.toggled,
            self.pet_colormap.currentTextChanged,
            self.pet_opacity.valueChanged,
            self.suv_max.valueChanged,
            self.masks_visible.toggled,
        ):
            signal.connect(lambda *_: self._refresh_companions())
        self.view_3d = QCheckBox("3D view")
        self.view_3d.setToolTip(
            "Slice view (2D) or a rotatable maximum-intensity projection (3D) of the PET, seen from the front"
        )
        self.view_3d.toggled.connect(self._toggle_3d)
        self.layout_combo = QComboBox()
        self.layout_combo.addItem("One view (axial)", "single")
        self.layout_combo.addItem("2x2: axial, coronal, sagittal, PET MIP", "2x2")
        self.layout_combo.addItem("Side by side: fused | CT | PET (axial)", "side")
        self.layout_combo.setToolTip("L (with the images focused) goes to the next layout")
        self.layout_combo.currentIndexChanged.connect(self._layout_changed)

        display = QGroupBox("Display")
        form = QFormLayout(display)
        form.addRow("Layout", self.layout_combo)
        form.addRow("CT window", self.window_combo)
        pet_row = QHBoxLayout()
        pet_row.addWidget(self.ct_visible)
        pet_row.addWidget(self.pet_visible)
        pet_row.addWidget(self.pet_colormap, 1)
        form.addRow("PET", pet_row)
        form.addRow("PET opacity", self.pet_opacity)
        form.addRow(self.suv_label, self.suv_max)
        toggles = QHBoxLayout()
        toggles.addWidget(self.masks_visible)
        toggles.addWidget(self.view_3d)
        self.caliper = CaliperTool(self)
        self.caliper.bind(self.viewer)
        toggles.addWidget(self.caliper)
        form.addRow(toggles)

        # --- tools
        self.threshold = PetThresholdTool(workers, self)
        self.threshold.bind(self._open_pet)
        self.threshold.saved.connect(self._segmentation_saved)
        self.viewer.model.mouse_drag_callbacks.append(self.threshold.on_press)
        self.candidates = PetCandidatesTool(workers, self)
        self.candidates.bind(self._candidates_context)
        self.candidates.saved.connect(self._segmentation_saved)
        self.candidates.jump.connect(self.viewer.go_to_slice)
        self.ct_tools = CtTools(workers, self)
        self.ct_tools.bind(self._ct_context)
        self.ct_tools.saved.connect(self._segmentation_saved)
        self.viewer.model.mouse_drag_callbacks.append(self.ct_tools.on_press)
        self.plugin_tools = PluginTools(workers, self)
        self.plugin_tools.bind(lambda: self._ct_context() or self._open_pet())
        self.plugin_tools.saved.connect(self._segmentation_saved)
        self.viewer.model.mouse_drag_callbacks.append(self.plugin_tools.on_press)
        self.editor = OutlineEditor(workers, self)
        self.editor.edit.clicked.connect(self.edit_selected)
        self.editor.saved.connect(self._segmentation_saved)
        self.editor.closed.connect(lambda: self._toggle_masks(self.masks_visible.isChecked()))
        self.editor.closed.connect(self._edit_ended)
        # While an outline is edited the 2x2 planes follow its strokes (polled: napari paints in place).
        self._planes_running = self._planes_again = False  # the edit's planes in a worker
        self._edit_poll = QTimer(self)
        self._edit_poll.setInterval(300)
        self._edit_poll.timeout.connect(self._follow_edit)
        self._edit_revision = -1

        # --- lesions
        self.lesions = QTableWidget(0, 4)
        self.lesions.setHorizontalHeaderLabels(["Lesion", "Organ", "On", "Volume mL"])
        self.lesions.verticalHeader().setVisible(False)
        self.lesions.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)  # compact rows
        self.lesions.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.lesions.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.lesions.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.lesions.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.lesions.itemSelectionChanged.connect(self._lesion_selected)
        lesion_box = QGroupBox("Segmentations")
        QVBoxLayout(lesion_box).addWidget(self.lesions)

        self.radiomics = RadiomicsPanel(workers, self)
        self.lesion_panel = LesionsPanel(workers, self)
        self.lesion_panel.changed.connect(self._lesions_changed)
        self.lesion_panel.lesion_selected.connect(self._select_lesion_named)

        side_split = QSplitter(Qt.Orientation.Vertical)
        side_split.addWidget(lesion_box)
        side_split.addWidget(self.radiomics)
        side_split.setStretchFactor(0, 1)
        side_split.setStretchFactor(1, 2)
        side_split.setSizes([270, 480])  # a demo subject's 8 segmentations fit without scrolling
        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(4, 0, 0, 0)
        side_layout.addWidget(self.title)
        side_layout.addWidget(self.notes)
        # Display and the tools share one tabbed box: stacked, they would make the window too tall
        # for a 768-pixel laptop screen.
        self.tools = FitTabs()
        self.tools.addTab(display, "Display")
        self.tools.addTab(self.threshold, "PET")
        self.tools.addTab(self.editor, "Edit")
        self.tools.addTab(self.ct_tools, "CT")
        self.tools.addTab(self.candidates, "Candidates")
        self.tools.addTab(self.plugin_tools, "Plugins")
        for box in (display, self.threshold, self.ct_tools, self.editor, self.candidates, self.plugin_tools):
            box.setTitle("")
            box.setFlat(True)
        # The lesions page scrolls rather than setting the window's minimum height.
        lesions_page = QScrollArea()
        lesions_page.setWidget(self.lesion_panel)
        lesions_page.setWidgetResizable(True)
        lesions_page.setFrameShape(QScrollArea.Shape.NoFrame)
        self.tools.addTab(lesions_page, "Lesions")
        # Short tab titles so that all seven fit a 1400-pixel window; the tooltip says what each holds.
        tips = {
            "Display": "Layout, CT window, PET colours and range",
            "PET": "PET threshold: click a lesion (41 %, 50 %, SUV 2.5/4.0, PERCIST)",
            "Edit": "Edit outline: brush, eraser, sphere, fill; drafts and Save",
            "CT": "CT tools: HU range, region growing, clean-up and logical operations",
            "Candidates": "Whole-body PET candidates to accept or reject",
            "Plugins": "Segmentation tools of the allowed plugins",
            "Lesions": "The subject's lesions: site, RECIST, numbers",
        }
        for index in range(self.tools.count()):
            self.tools.setTabToolTip(index, tips.get(self.tools.tabText(index), ""))
        side_layout.addWidget(self.tools)
        side_layout.addWidget(side_split, 1)
        side.setMinimumWidth(360)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self._build_view_area())
        splitter.addWidget(side)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([900, 520])  # the lesions table's 7 columns fit a 1400-pixel-wide window
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)

    # ------------------------------------------------------------ viewing area
    def _build_view_area(self) -> QWidget:
        """napari's axial view, the companion views of the 2x2 layout, the colour bar, the status line."""
        self.companions = CompanionViews(self)
        self.colour_bar = ColourBar()
        self.status = QLabel("Move the mouse over the images: position (mm), HU and SUV show here.")
        self.status.setStyleSheet("font-family: monospace; padding: 2px 4px;")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        area = QWidget()
        grid = QGridLayout(area)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(2)
        grid.addWidget(self.viewer.widget, 0, 0)
        grid.addWidget(self.companions.coronal, 0, 1)
        grid.addWidget(self.companions.sagittal, 1, 0)
        grid.addWidget(self.companions.mip, 1, 1)
        # Side by side shares the first row (one layout's views are hidden while the other's show).
        grid.addWidget(self.companions.ct_axial, 0, 1)
        grid.addWidget(self.companions.pet_axial, 0, 2)
        grid.addWidget(self.colour_bar, 0, 3, 2, 1)
        status_row = QHBoxLayout()
        status_row.addWidget(self.status, 1)
        status_row.addWidget(self.caliper.readout)
        grid.addLayout(status_row, 2, 0, 1, 4)
        self._view_grid = grid
        for view in self.companions.all_views:
            view.clicked.connect(self.move_cursor)
        self.companions.coronal.scrolled.connect(lambda n: self._scroll_plane(1, n))
        self.companions.sagittal.scrolled.connect(lambda n: self._scroll_plane(2, n))
        self._companions_due = QTimer(self)
        self._companions_due.setSingleShot(True)
        self._companions_due.setInterval(0)  # many changes in one event-loop turn: one redraw
        self._companions_due.timeout.connect(self._render_companions)
        self.viewer.model.mouse_move_callbacks.append(self._mouse_moved)
        self.viewer.model.mouse_drag_callbacks.append(self._click_moves_cursor)
        self.viewer.model.dims.events.current_step.connect(self._slice_moved)
        self._wheel = _WheelSlices(self.viewer)
        self.viewer.widget.canvas.native.installEventFilter(self._wheel)
        self._shortcuts(area)
        self._layout_changed()
        return area

    def _shortcuts(self, area: QWidget) -> None:
        def key(sequence: str, slot) -> None:
            shortcut = QShortcut(QKeySequence(sequence), area)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(slot)

        for number, name in enumerate(WINDOW_PRESETS, start=1):
            key(str(number), lambda name=name: self.set_window(name))
        key("Up", lambda: self.viewer.step_slice(1))
        key("Down", lambda: self.viewer.step_slice(-1))
        key("PgUp", lambda: self.viewer.step_slice(10))
        key("PgDown", lambda: self.viewer.step_slice(-10))
        # (Ctrl+1..3 are the window's room tabs.)
        key("L", lambda: self.layout_combo.setCurrentIndex((self.layout_combo.currentIndex() + 1) % 3))

    def show_tab(self, title: str) -> None:
        """Bring a tool tab (e.g. "Lesions") to the front."""
        for index in range(self.tools.count()):
            if self.tools.tabText(index) == title:
                self.tools.setCurrentIndex(index)

    def set_layout(self, name: str) -> None:
        self.layout_combo.setCurrentIndex(self.layout_combo.findData(name))

    def _layout_changed(self, *_: Any) -> None:
        layout = self.layout_combo.currentData()
        self.companions.layout = layout
        for view in self.companions.views:
            view.setVisible(layout == "2x2")
        for view in self.companions.side_views:
            view.setVisible(layout == "side")
        # 2x2: four equal views; side by side: three in a row; one view: napari's takes the area.
        rows = {"single": (1, 0), "2x2": (1, 1), "side": (1, 0)}[layout]
        columns = {"single": (1, 0, 0), "2x2": (1, 1, 0), "side": (1, 1, 1)}[layout]
        for index, stretch in enumerate(rows):
            self._view_grid.setRowStretch(index, stretch)
        for index, stretch in enumerate(columns):
            self._view_grid.setColumnStretch(index, stretch)
        self._refresh_companions()
        if self.loaded is not None:
            QTimer.singleShot(0, self.viewer.reset_view)  # fit the axial view to its new size

    def _refresh_companions(self) -> None:
        """Pass the display settings on to the companion views and the colour bar, then redraw."""
        pet = self.viewer.layer(PET_LAYER)
        name = self.pet_colormap.currentText()
        if name not in self._fusion_colours:  # built once per colour map, not per slider step
            self._fusion_colours[name] = np.asarray(fusion_colormap(name).colors)
        colours = self._fusion_colours[name]
        unit = self.loaded.pet.units if self.loaded and self.loaded.pet else None
        self.colour_bar.setVisible(pet is not None)
        self.colour_bar.set_scale(colours, self.suv_max.value(), unit or "SUVbw")
        self.companions.set_display(
            self._window_limits(),
            self.suv_max.value(),
            colours,
            self.pet_opacity.value() / 100,
            self.pet_visible.isChecked(),
            self.masks_visible.isChecked(),
            self.ct_visible.isChecked(),
        )
        self._companions_due.start()

    def _render_companions(self) -> None:
        if self.layout_combo.currentData() != "single":
            self.companions.render()

    def move_cursor(self, world_zyx) -> None:
        """The linked cursor: every view goes through this world point (mm)."""
        world = tuple(float(v) for v in world_zyx)
        self._cursor_live = True
        moved_planes = not np.allclose(world[1:], self.companions.cursor[1:])
        self.companions.set_cursor(world)
        self.viewer.show_cursor(world)
        self.viewer.go_to_slice(world)
        self.status.setText(self.readout_at(world))
        if moved_planes or self.companions.layout == "side":  # side by side: axial planes
            self._companions_due.start()

    def _forget_cursor(self) -> None:
        self._cursor_live = False
        self.companions.clear()
        self.colour_bar.setVisible(False)
        self.status.setText("")
        self.viewer.show_orientation(None)

    def _scroll_plane(self, axis: int, steps: int) -> None:
        reference = self.companions.ct or self.companions.pet
        if reference is None:
            return
        world = self.companions.cursor.copy()
        world[axis] += steps * reference.spacing(axis)
        self.move_cursor(world)

    def _slice_moved(self, *_: Any) -> None:
        if not self._cursor_live or self.viewer.model.dims.ndim < 3:
            return
        z = float(self.viewer.model.dims.point[0])
        if abs(z - self.companions.cursor[0]) > 1e-6:
            cursor = self.companions.cursor.copy()
            cursor[0] = z
            self.companions.set_cursor(cursor)
            # Never create the cursor here: layers being removed (a teardown) move the slice too.
            self.viewer.show_cursor(cursor, create=False)
            if self.companions.layout == "side":
                self._companions_due.start()  # its axial views show the new slice

    def _click_moves_cursor(self, _viewer, event):
        """napari: a left click without a drag (a drag pans) moves the linked cursor there."""
        if getattr(event, "button", 1) != 1 or self.loaded is None or self.viewer.model.dims.ndisplay != 2:
            return
        start = np.asarray(event.position, dtype=float)
        yield
        while event.type == "mouse_move":
            yield
        if np.linalg.norm(np.asarray(event.position, dtype=float) - start) < 1.0:  # mm
            self.move_cursor(tuple(event.position)[-3:])

    def _mouse_moved(self, _viewer, event) -> None:
        if self.loaded is not None and len(event.position) >= 3:
            self.status.setText(self.readout_at(tuple(event.position)[-3:]))

    def readout_at(self, world_zyx) -> str:
        """The status line for a world point: its position, HU and PET value (from core)."""
        ct, pet = self.companions.ct, self.companions.pet
        unit = self.loaded.pet.units if self.loaded and self.loaded.pet else None
        return readout(
            world_zyx,
            ct.value_at(world_zyx) if ct is not None else None,
            pet.value_at(world_zyx) if pet is not None else None,
            unit or "SUVbw",
        )

    # ------------------------------------------------------------ loading
    def load_subject(self, store: Store, subject: Subject) -> None:
        """Start reading a subject's CT, PET and masks; layers appear when the worker is done."""
        self.editor.leave()  # unsaved strokes become the reader's draft first
        if self.candidates.subject_code != subject.code:
            self.candidates.forget()  # another subject's candidates are not this one's
        shown = self.lesion_panel.subject
        if shown is None or shown.id != subject.id or self.lesion_panel.store is not store:
            self.lesion_panel.clear()  # never another subject's lesions while this one loads
        self.store = store
        self.plugin_tools.refresh(store)  # the tools of the plugins this store's site allows
        self._generation += 1
        generation = self._generation
        ct, pet, notes = subject_series(store, subject.id)
        segmentations = subject_segmentations(store, subject.id)
        name = subject.label  # a blinded case: its label (main_window)
        if ct is not None or pet is not None:
            # Reading starts first: the previous subject's layers are torn down (~0.4 s) meanwhile.
            root = store.root
            self.workers.start(
                lambda: read_subject(root, subject, ct, pet, segmentations, notes),
                on_success=lambda loaded: self._show(loaded, generation),
                on_failure=lambda exc: self._failed(name, exc, generation, subject),
                name=f"load {name}",
            )
        self.view_3d.setChecked(False)  # a new subject opens in slice view
        self._forget_cursor()
        self.viewer.clear()
        self.caliper.forget()
        self.lesions.setRowCount(0)
        self.radiomics.clear()
        self.radiomics.set_background_busy(False)  # a previous subject's job no longer counts
        self.loaded = None
        self.title.setText(f"{name} — loading CT/PET…")
        self.notes.setText("")
        if ct is None and pet is None:
            self.title.setText(f"{name} — no CT or PET in the store for this subject.")
            self.lesion_panel.set_subject(store, subject)

    def _failed(self, code: str, exc: Exception, generation: int, subject: Subject | None = None) -> None:
        if generation != self._generation:
            return
        message = f"The images of {code} could not be read: {exc}"
        self.title.setText(f"{code} — images not available")
        self.notes.setText(message)
        if subject is not None and self.store is not None:
            # The lesions and their numbers are rows: readable without the images (e.g. at the
            # coordinating centre, where pixel files do not travel).
            self.lesion_panel.set_subject(self.store, subject)
        self.load_failed.emit(message)

    def _show(self, loaded: LoadedSubject, generation: int) -> None:
        if generation != self._generation:
            return  # the user opened another subject meanwhile
        self.loaded = loaded
        with self.viewer.batch():
            self._add_layers(loaded)
        self._fill_lesions(loaded.masks)
        self.companions.set_volumes(
            _plane_volume(loaded.ct_volume),
            _plane_volume(loaded.pet_volume),
            self._mask_outlines(),
        )
        self._refresh_companions()
        self.lesion_panel.set_subject(self.store, loaded.subject)
        keep = self.lesion_panel.selected_id()  # e.g. a new lesion, without outlines yet
        self.viewer.show_scale_bar(True)  # in mm: the layers carry physical units
        self._fit_view()
        self.viewer.middle_slice()
        self.move_cursor(_centre_of(loaded))
        self.viewer.show_orientation(PLANES["axial"].labels, "Axial")
        wanted = [i for i, m in enumerate(loaded.masks) if m.segmentation.id == self._select_after_load]
        self._select_after_load = None
        if wanted:
            self.lesions.selectRow(wanted[0])  # the segmentation the reader just made
        elif loaded.masks and loaded.masks[0].centroid_zyx is not None:
            self.lesions.selectRow(0)  # jump to the first lesion: a slice with something to see
        if keep is not None:
            self.lesion_panel.select_lesion(keep)  # the lesion the reader was working on stays selected
        parts = [MODALITY_NAMES[series.modality] for series in (loaded.ct, loaded.pet) if series]
        self.title.setText(
            f"{loaded.subject.label} — {' + '.join(parts)}, {len(loaded.masks)} segmentation(s)"
        )
        self._show_notes()
        self._compute_missing_features([mask.segmentation.id for mask in loaded.masks], generation)
        self.subject_loaded.emit(loaded.subject.code)

    def _add_layers(self, loaded: LoadedSubject) -> None:
        if loaded.ct_volume is not None:
            self.viewer.add_ct(loaded.ct_volume, self._window_limits())
        if loaded.pet_volume is not None:
            self._configure_pet_units(loaded.pet)
            self.viewer.add_pet(
                loaded.pet_volume,
                self.suv_max.value(),
                self.pet_colormap.currentText(),
                self.pet_opacity.value() / 100,
            )
            self.viewer.set_visible(PET_LAYER, self.pet_visible.isChecked())
        for mask in loaded.masks:
            name = self._mask_layer_name(mask.segmentation)
            self.viewer.add_labels(mask.volume, name, mask.color)
            self.viewer.set_visible(name, self.masks_visible.isChecked())

    def _ct_context(self) -> tuple[Store, str, dict | None] | None:
        """(store, subject code, the selected segmentation row or None) when a CT is open."""
        if self.store is None or self.loaded is None or self.loaded.ct_volume is None:
            return None
        mask = self.selected_mask()
        return self.store, self.loaded.subject.code, mask.segmentation if mask else None

    def _candidates_context(self) -> tuple[Store, str, Any] | None:
        """(store, subject code, the liver reference the reader placed for this subject or None)."""
        context = self._open_pet()
        if context is None:
            return None
        store, code = context
        liver = self.threshold.liver_at if self.threshold.liver_subject == code else None
        return store, code, liver

    def _open_pet(self) -> tuple[Store, str] | None:
        """(store, subject code) when the open subject has a PET to threshold."""
        if self.store is None or self.loaded is None or self.loaded.pet_volume is None:
            return None
        return self.store, self.loaded.subject.code

    def edit_selected(self) -> None:
        """Open the selected lesion's outline in the editor (its shown outline is hidden meanwhile)."""
        mask = self.selected_mask()
        if mask is None or self.store is None or self.loaded is None:
            self.editor.message.setText("Select a lesion in the list first.")
            return
        loaded, seg = self.loaded, mask.segmentation
        on = [
            v
            for row, v in ((loaded.ct, loaded.ct_volume), (loaded.pet, loaded.pet_volume))
            if row and row.id == seg.series_id
        ]
        unit = loaded.pet.units if loaded.pet else "SUVbw"
        self.editor.start(
            self.store,
            self.viewer,
            loaded.subject,
            seg,
            mask.color,
            on[0].data if on and on[0] else None,
            unit,
        )
        session = self.editor.session
        if session is not None:
            self.viewer.set_visible(self._mask_layer_name(mask.segmentation), False)
            working = Volume(session.mask, session.placement)  # the array napari paints into
            self.companions.set_masks(
                [(working, QColor(mask.color).getRgbF()[:3])] + self._mask_outlines(exclude=mask)
            )
            self._edit_revision = -1
            self._edit_poll.start()

    def _mask_outlines(self, exclude: LoadedMask | None = None) -> list:
        """(volume, rgb) of the shown outlines for the companion views."""
        masks = self.loaded.masks if self.loaded else []
        return [(_plane_volume(m.volume), QColor(m.color).getRgbF()[:3]) for m in masks if m is not exclude]

    def _follow_edit(self) -> None:
        session = self.editor.session
        if session is None:
            self._edit_poll.stop()
        elif session.history.revision != self._edit_revision:
            self._edit_revision = session.history.revision
            self._planes_in_background()
            self.editor.show_live()  # after an undo or redo too

    def _planes_in_background(self) -> None:
        """While an outline is edited, the 2x2 planes (~90 ms on a 512x512x300 CT) are computed in a
        worker, so no brush dab or autosave waits for them. One at a time: edits made meanwhile get
        one more render when it is done."""
        if self.layout_combo.currentData() == "single":
            return
        if self._planes_running:
            self._planes_again = True
            return
        self._planes_running, self._planes_again = True, False
        generation = self._generation

        def done(frames) -> None:
            self._planes_running = False
            if generation == self._generation:
                self.companions.show(frames)
                if self._planes_again:
                    self._planes_in_background()

        def failed(exc: Exception) -> None:
            self._planes_running = False
            log.warning("the 2x2 planes could not follow the edit: %s", exc)

        self.workers.start(self.companions.frames, on_success=done, on_failure=failed, name="planes")

    def _show_notes(self) -> None:
        """The subject's notes, and the reader's unsaved drafts (e.g. work left by a crash) offered back."""
        if self.loaded is None or self.store is None:
            return
        offer = drafts_sentence(unsaved_drafts(self.store, self.loaded.subject.id))
        lines = [*self.loaded.notes, *([offer] if offer else [])]
        self.notes.setText("\n".join(lines))
        self.notes.setVisible(bool(lines))

    def _edit_ended(self) -> None:
        self._show_notes()  # a draft saved or thrown away is no longer offered
        self._edit_poll.stop()
        self.companions.set_masks(self._mask_outlines())
        self._companions_due.start()

    def _segmentation_saved(self, result: dict) -> None:
        """A tool stored a segmentation: reload the subject's masks and select the new one."""
        if self.store is not None and self.loaded is not None:
            self._select_after_load = result["segmentation_id"]
            self.load_subject(self.store, self.loaded.subject)

    def _lesions_changed(self) -> None:
        """The lesions panel changed a lesion: reload, so layer names and the lists follow, and stay on
        the lesion the reader works on (else on the segmentation shown)."""
        if self.store is None or self.loaded is None:
            return
        lesion_id = self.lesion_panel.selected_id()
        keep = next((m for m in self.loaded.masks if m.segmentation.lesion_id == lesion_id), None)
        keep = keep or self.selected_mask()
        self._select_after_load = keep.segmentation.id if keep else None
        self.load_subject(self.store, self.loaded.subject)

    def _select_lesion_named(self, name: str) -> None:
        """The reader picked a lesion in the lesions panel: select its first segmentation (the views
        centre on it); a lesion without outlines has nothing to show."""
        masks = self.loaded.masks if self.loaded else []
        row = next((i for i, m in enumerate(masks) if m.segmentation.lesion_name == name), None)
        if row is not None:
            self.lesions.selectRow(row)
            self.lesions.scrollTo(self.lesions.model().index(row, 0))

    def _compute_missing_features(self, segmentation_ids: list[str], generation: int) -> None:
        """Segmentations saved without features (imported, or made before a lock changed) get
        them in the background; the radiomics panel refreshes when they are stored."""
        if not segmentation_ids or self.store is None:
            return
        root, reader = self.store.root, self.store.reader

        def job():
            from palmares_desktop.core.radiomics.store_features import iter_compute_missing

            with worker_store(root, reader) as store:
                return (yield from iter_compute_missing(store, segmentation_ids))

        def finished(*_: Any) -> None:
            if generation == self._generation:
                self.radiomics.set_background_busy(False)
                self.features_ready.emit()

        self.radiomics.set_background_busy(True)
        self.workers.start(job, on_success=finished, on_failure=finished, name="radiomics (background)")

    def _fit_view(self) -> None:
        # A hidden tab's canvas has no real size yet: fit now, and again when the tab is first shown.
        self.viewer.reset_view()
        self._fit_pending = not self.isVisible()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        if self._fit_pending:
            self._fit_pending = False
            QTimer.singleShot(0, self.viewer.reset_view)

    def _configure_pet_units(self, pet: Series | None) -> None:
        units = (pet.units if pet else None) or "unknown units"
        is_suv = units.upper().startswith("SUV")
        self.suv_label.setText("PET max (SUVbw)" if is_suv else f"PET max ({units})")
        self.suv_max.blockSignals(True)
        if is_suv and not self._pet_in_suv:
            # Back from an uncalibrated PET: the SUV range the study reads with.
            self.suv_max.setMaximum(100.0)
            self.suv_max.setValue(DEFAULT_SUV_MAX)
        elif not is_suv and self.loaded and self.loaded.pet_volume is not None:
            # Not calibrated to SUV: a display range from the data (a robust upper bound), not SUV 6.
            top = uncalibrated_display_max(self.loaded.pet_volume.data)
            self.suv_max.setMaximum(max(100.0, top * 10))
            self.suv_max.setValue(top)
            self.loaded.notes.append(
                f"The PET is not calibrated to SUV (units: {units}); values are shown as stored."
            )
        self.suv_max.blockSignals(False)
        self._pet_in_suv = is_suv

    @staticmethod
    def _mask_layer_name(seg: Segmentation) -> str:
        modality = MODALITY_NAMES.get(seg.series_modality or "", seg.series_modality or "?")
        return f"{seg.lesion_name} ({modality} v{seg.version or 1})"

    def _fill_lesions(self, masks: list[LoadedMask]) -> None:
        self.lesions.setRowCount(len(masks))
        for row, mask in enumerate(masks):
            seg = mask.segmentation
            volume = seg.volume_ml
            cells = [
                seg.lesion_name or "?",
                seg.organ or "",
                f"{MODALITY_NAMES.get(seg.series_modality or '', '?')} v{seg.version or 1}",
                f"{volume:.2f}" if isinstance(volume, (int, float)) else "",
            ]
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, row)
                self.lesions.setItem(row, column, item)
            # The lesion name cell carries its outline colour, so list and image match at a glance.
            self.lesions.item(row, 0).setIcon(_swatch(mask.color))

    # ------------------------------------------------------------ reactions
    def _window_limits(self) -> tuple[float, float]:
        return WINDOW_PRESETS[self.window_combo.currentData()].limits

    def _opacity_changed(self, value: int) -> None:
        if not self.view_3d.isChecked():  # the 3D MIP is always drawn opaque
            self.viewer.set_opacity(PET_LAYER, value / 100)

    def _window_changed(self, *_: Any) -> None:
        self.viewer.set_contrast(CT_LAYER, self._window_limits())

    def set_window(self, name: str) -> None:
        self.window_combo.setCurrentIndex(list(WINDOW_PRESETS).index(name))

    def _toggle_3d(self, on: bool) -> None:
        has_pet = self.viewer.layer(PET_LAYER) is not None
        # Outlines do not exist in 3D (napari would draw solid blobs over the hot spots): hide them.
        for mask in self.loaded.masks if self.loaded else []:
            self.viewer.set_visible(
                self._mask_layer_name(mask.segmentation), self.masks_visible.isChecked() and not on
            )
        # 3D = the classic PET MIP (CT would only fog it); without PET, a CT MIP (bones).
        self.viewer.set_visible(CT_LAYER, self.ct_visible.isChecked() and not (on and has_pet))
        self.viewer.set_rendering(CT_LAYER, "mip")
        self.viewer.set_rendering(PET_LAYER, "mip")
        self.viewer.set_opacity(PET_LAYER, 1.0 if on else self.pet_opacity.value() / 100)
        self.viewer.set_3d(on)
        self.viewer.show_cursor(self.companions.cursor if self._cursor_live else None)
        self.viewer.show_orientation(None if on else PLANES["axial"].labels, "" if on else "Axial")
        if not on and self.selected_mask() is not None and self.selected_mask().centroid_zyx is not None:
            self.viewer.go_to_slice(self.selected_mask().centroid_zyx)

    def _toggle_masks(self, on: bool) -> None:
        for mask in self.loaded.masks if self.loaded else []:
            self.viewer.set_visible(
                self._mask_layer_name(mask.segmentation), on and not self.view_3d.isChecked()
            )

    def selected_mask(self) -> LoadedMask | None:
        rows = self.lesions.selectionModel().selectedRows()
        if not rows or not self.loaded:
            return None
        return self.loaded.masks[rows[0].row()]

    def _lesion_selected(self) -> None:
        mask = self.selected_mask()
        if mask is None:
            self.radiomics.clear()
            return
        if mask.centroid_zyx is not None:
            self.move_cursor(mask.centroid_zyx)  # all views through the lesion
        self.ct_tools.refresh_others()  # the lesions it can be combined with
        self.lesion_panel.select_lesion(mask.segmentation.lesion_id)
        if self.store is not None:
            self.radiomics.show_segmentation(self.store, mask.segmentation)

    def reset(self) -> None:
        """Forget the subject (e.g. another store was opened)."""
        self.editor.leave()
        self.candidates.forget()
        self._generation += 1
        self.view_3d.setChecked(False)
        self._forget_cursor()
        self.viewer.clear()
        self.caliper.forget()
        self.lesions.setRowCount(0)
        self.radiomics.clear()
        self.radiomics.set_background_busy(False)
        self.radiomics.store = None
        self.lesion_panel.clear()
        self.loaded = None
        self.store = None
        self.title.setText("No subject open. Double-click a subject in the worklist.")
        self.notes.clear()

    def close_viewer(self) -> None:
        self.editor.leave()
        self._cursor_live = False
        self._generation += 1
        self.lesion_panel.clear()  # numbers still on their way are dropped
        self.viewer.close()

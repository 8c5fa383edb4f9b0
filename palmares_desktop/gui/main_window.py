"""The main window: worklist and the two reading rooms as tabs, menus, reader and store status."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from qtpy.QtCore import Signal
from qtpy.QtGui import QAction, QCloseEvent, QKeySequence
from qtpy.QtWidgets import QFileDialog, QLabel, QMainWindow, QMessageBox, QTabWidget, QWidget

from palmares_desktop import __version__
from palmares_desktop.core.logs import log_file_path
from palmares_desktop.core.model import Subject
from palmares_desktop.core.profile import ReaderProfile, save_profile, use_profile
from palmares_desktop.core.store import Store, StoreError
from palmares_desktop.gui.ct_pet_room import CtPetRoom
from palmares_desktop.gui.reader_dialog import ask_profile
from palmares_desktop.gui.settings import (
    clear_recent_stores,
    forget_store,
    recent_stores,
    remember_store,
    save_geometry,
    saved_geometry,
    set_software_opengl,
    software_opengl,
    software_opengl_in_use,
)
from palmares_desktop.gui.slide_room import SlideRoom
from palmares_desktop.gui.workers import WorkerPool
from palmares_desktop.gui.worklist import WorklistPanel

log = logging.getLogger(__name__)

WORKLIST_TAB, CT_PET_TAB, SLIDE_TAB = 0, 1, 2


class MainWindow(QMainWindow):
    subject_opened = Signal(str)

    def __init__(
        self, store: Store, profile: ReaderProfile | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.profile: ReaderProfile | None = None
        self.current_subject: Subject | None = None
        self.workers = WorkerPool(self)

        self.worklist = WorklistPanel()
        self.worklist.subject_activated.connect(self.open_subject)
        self.worklist.status_change_requested.connect(self._set_status)
        self.ct_pet = CtPetRoom(self.workers)
        self.slide = SlideRoom(self.workers)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.worklist, "Worklist")
        self.tabs.addTab(self.ct_pet, "CT/PET")
        self.tabs.addTab(self.slide, "Slide")
        self.setCentralWidget(self.tabs)

        self.store_label = QLabel()
        self.subject_label = QLabel()
        self.statusBar().addWidget(self.store_label, 1)
        self.statusBar().addPermanentWidget(self.subject_label)
        self._build_menus()
        geometry = saved_geometry()
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(1500, 950)
        self.setAcceptDrops(True)  # drop a DICOM folder on the window to import it
        if profile is not None:
            self.set_profile(profile)
        self._show_store()

    # ------------------------------------------------------------------ menus
    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self._action(file_menu, "&Open store…", self.choose_store, QKeySequence.StandardKey.Open)
        self.recent_menu = file_menu.addMenu("Open &recent store")
        self._action(file_menu, "&Import DICOM folder…", self.show_import_dialog, "Ctrl+I")
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        reader_menu = self.menuBar().addMenu("&Reader")
        self._action(reader_menu, "&Switch reader…", self.switch_reader)
        view_menu = self.menuBar().addMenu("&View")
        self._action(view_menu, "&Worklist", lambda: self.tabs.setCurrentIndex(WORKLIST_TAB), "Ctrl+1")
        self._action(view_menu, "&CT/PET", lambda: self.tabs.setCurrentIndex(CT_PET_TAB), "Ctrl+2")
        self._action(view_menu, "&Slide", lambda: self.tabs.setCurrentIndex(SLIDE_TAB), "Ctrl+3")
        self._action(view_menu, "&Refresh worklist", self.refresh_worklist, QKeySequence.StandardKey.Refresh)
        view_menu.addSeparator()
        self.software_gl_action = self._action(
            view_menu, "Software &OpenGL (remote desktop, VM)", self._toggle_software_gl
        )
        self.software_gl_action.setCheckable(True)
        self.software_gl_action.setChecked(software_opengl())
        study_menu = self.menuBar().addMenu("&Study")
        self._action(study_menu, "&Reading rounds…", self.show_study_panel)
        self._action(study_menu, "&Coordinating centre…", self.show_coordinator_room)
        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "Show &log file location", self._show_log_location)
        self._action(help_menu, "&About", self._about)

    def _action(self, menu, text: str, slot, shortcut=None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(lambda _=False: slot())
        menu.addAction(action)
        return action

    # ---------------------------------------------------------------- reader
    def set_profile(self, profile: ReaderProfile, remember: bool = True) -> None:
        """Make `profile` the author of every following write (registered in the store)."""
        use_profile(self.store, profile)
        self.profile = profile
        if remember:
            save_profile(profile)
        self._update_title()
        log.info("reader is now %s", profile.label())

    def switch_reader(self) -> None:
        profile = ask_profile(self, self.profile)
        if profile is not None:
            self.set_profile(profile)

    def _update_title(self) -> None:
        who = self.profile.label() if self.profile else "no reader selected"
        self.setWindowTitle(f"PALMARES Desktop — {who}")

    # ----------------------------------------------------------------- store
    def _show_store(self) -> None:
        self.store_label.setText(f"Store: {self.store.root}")
        remember_store(self.store.root)
        self._rebuild_recent_menu()
        self.refresh_worklist()

    def _rebuild_recent_menu(self) -> None:
        self.recent_menu.clear()
        paths = recent_stores()
        for number, path in enumerate(paths, start=1):
            label = f"&{number} {str(path).replace('&', '&&')}"  # a number as mnemonic; a literal & stays
            self._action(self.recent_menu, label, lambda path=path: self.open_recent_store(path))
        if paths:
            self.recent_menu.addSeparator()
        clear = self._action(self.recent_menu, "&Clear list", self._clear_recent)
        clear.setEnabled(bool(paths))

    def _clear_recent(self) -> None:
        clear_recent_stores()
        self._rebuild_recent_menu()

    def open_recent_store(self, path: Path) -> bool:
        """Open a store from File → Open recent store; a folder that is gone leaves the list."""
        if not Path(path).is_dir():
            forget_store(path)
            self._rebuild_recent_menu()
            QMessageBox.warning(
                self,
                "Store not found",
                f"The store folder {path} no longer exists; it was removed from the list.",
            )
            return False
        return self.open_store(Path(path))

    def refresh_worklist(self) -> None:
        from palmares_desktop.core.study.rounds import reader_worklist

        self.worklist.set_rows(reader_worklist(self.store))

    def choose_store(self) -> None:
        chosen = QFileDialog.getExistingDirectory(
            self, "Open a PALMARES store folder", str(self.store.root.parent)
        )
        if chosen:
            self.open_store(Path(chosen))

    def open_store(self, path: Path) -> bool:
        try:
            store = Store.open(path, create=False)
        except StoreError as exc:
            QMessageBox.warning(self, "Cannot open store", str(exc))
            return False
        if self.workers.running():
            QMessageBox.information(
                self, "Busy", "Wait for the background work to finish before switching store."
            )
            store.close()
            return False
        old = self.store
        self.store = store
        self.current_subject = None
        self.ct_pet.reset()
        self.slide.reset()
        self.subject_label.clear()
        old.close()
        if self.profile is not None:
            use_profile(self.store, self.profile)
        self._show_store()
        self.tabs.setCurrentIndex(WORKLIST_TAB)
        return True

    def _set_status(self, subject_id: str, modality: str, status: str) -> None:
        if self.store.reader is None:
            QMessageBox.warning(self, "No reader", "Choose a reader first (Reader → Switch reader…).")
            return
        self.store.set_status(subject_id, modality, status)
        self.refresh_worklist()

    # --------------------------------------------------------------- subjects
    def open_subject(self, code: str) -> None:
        subject = self.store.subject_by_code(code)
        if subject is None:
            QMessageBox.warning(self, "Unknown subject", f"There is no subject {code} in this store.")
            return
        from palmares_desktop.core.study.rounds import subject_shown

        self.current_subject = subject
        # In a blinded reading round the rooms name the case, never the subject code.
        shown = dataclasses.replace(subject, shown=subject_shown(self.store, subject))
        self.subject_label.setText(f"Subject {shown.label}")
        self.ct_pet.load_subject(self.store, shown)
        self.slide.load_subject(self.store, shown)
        # Each reader lands in their own room: a pathologist in the slide room when there is a slide.
        pathologist = self.profile is not None and self.profile.role == "pathologist"
        self.tabs.setCurrentIndex(SLIDE_TAB if pathologist and self.slide.slides else CT_PET_TAB)
        self.subject_opened.emit(code)
        log.info("opened subject %s", shown.label)

    def show_import_dialog(self, folder: str | Path | None = None):
        from palmares_desktop.gui.import_dialog import ImportDialog

        if self.store.reader is None:
            QMessageBox.warning(self, "No reader", "Choose a reader first (Reader → Switch reader…).")
            return None
        dialog = ImportDialog(self.store, self.workers, self, folder)
        dialog.imported.connect(lambda _code: self.refresh_worklist())
        dialog.show()
        self._import_dialog = dialog  # keep a reference while it is open
        return dialog

    def show_study_panel(self):
        """Reading rounds: the coordinator's agreement report and plots, the reader's own readings."""
        from palmares_desktop.gui.study_panel import StudyPanel

        panel = StudyPanel(self.store, self.workers, self)
        panel.show()
        self._study_panel = panel  # keep a reference while it is open
        return panel

    def show_coordinator_room(self):
        """The centre's packages per site, completeness, conflicts, merge and table (central store)."""
        from palmares_desktop.gui.coordinator_room import CoordinatorRoom

        room = CoordinatorRoom(self.store, self.workers, self)
        room.open_requested.connect(self.show_in_room)
        room.show()
        self._coordinator_room = room
        return room

    def show_in_room(self, target) -> None:
        """Open a subject in the room a core ConflictTarget names, selecting its lesion once loaded."""
        if target.lesion_id is not None:

            def select(_what: str) -> None:  # once, whether the images could be shown or not
                self.ct_pet.subject_loaded.disconnect(select)
                self.ct_pet.load_failed.disconnect(select)
                self.ct_pet.lesion_panel.select_lesion(target.lesion_id)
                self.ct_pet.show_tab("Lesions")

            self.ct_pet.subject_loaded.connect(select)
            self.ct_pet.load_failed.connect(select)
        self.open_subject(target.subject_code)
        self.tabs.setCurrentIndex(CT_PET_TAB if target.room == "ct-pet" else SLIDE_TAB)
        self.raise_()

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt API
        if any(Path(url.toLocalFile()).is_dir() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt API
        folders = [
            Path(url.toLocalFile()) for url in event.mimeData().urls() if Path(url.toLocalFile()).is_dir()
        ]
        if folders:
            event.acceptProposedAction()
            self.show_import_dialog(folders[0])

    # ------------------------------------------------------------------ misc
    def _show_log_location(self) -> None:
        QMessageBox.information(self, "Log file", f"The log file is:\n{log_file_path()}")

    def _toggle_software_gl(self) -> None:
        on = self.software_gl_action.isChecked()
        set_software_opengl(on)
        QMessageBox.information(
            self,
            "Software OpenGL",
            (
                "From the next start, PALMARES Desktop draws with software OpenGL (Mesa llvmpipe): "
                "slower, but it works on remote desktops and virtual machines without a usable "
                "graphics driver."
                if on
                else "From the next start, PALMARES Desktop draws with the graphics driver's OpenGL."
            )
            + " Restart the program for the change to take effect.",
        )

    def _about(self) -> None:
        QMessageBox.about(
            self,
            "About PALMARES Desktop",
            f"PALMARES Desktop {__version__}\nImaging workstation of the PALMARES-2 study (CT, FDG-PET, H&E).\n"
            f"Store: {self.store.root}\nDrawing with: {self.ct_pet.viewer.opengl_renderer()}"
            + (" (software OpenGL selected)" if software_opengl_in_use() else ""),
        )

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        save_geometry(self.saveGeometry())  # reopened where the user left it
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop background work and tear napari down explicitly (idempotent)."""
        self.workers.shutdown()
        self.ct_pet.close_viewer()
        self.slide.close_viewer()

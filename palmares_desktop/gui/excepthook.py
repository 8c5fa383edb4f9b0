"""Uncaught exceptions: logged with their traceback and shown in a dialog, never a silent crash."""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from pathlib import Path
from types import TracebackType

from qtpy.QtCore import QUrl
from qtpy.QtGui import QDesktopServices
from qtpy.QtWidgets import QApplication, QMessageBox

log = logging.getLogger("palmares_desktop.crash")

#: Boxes currently shown (kept referenced so they are not garbage-collected while open).
open_error_boxes: list[QMessageBox] = []


def error_box(
    message: str, log_file: Path, details: str = "", title: str = "PALMARES Desktop — error"
) -> QMessageBox:
    """A non-blocking error dialog with the message, the log file path and a button to open it."""
    box = QMessageBox(QApplication.activeWindow())
    box.setIcon(QMessageBox.Icon.Critical)
    box.setWindowTitle(title)
    box.setText(message)
    box.setInformativeText(
        f"The details were written to the log file:\n{log_file}\n\n"
        "Your data in the store is safe: every change is saved in a transaction."
    )
    if details:
        box.setDetailedText(details)
    open_log = box.addButton("Open log file", QMessageBox.ButtonRole.ActionRole)
    box.addButton(QMessageBox.StandardButton.Close)
    open_log.clicked.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(log_file))))
    open_error_boxes.append(box)
    box.finished.connect(lambda _=0, b=box: open_error_boxes.remove(b) if b in open_error_boxes else None)
    box.show()
    return box


def install_excepthook(log_file: Path) -> None:
    """Route uncaught exceptions (GUI thread and Python threads) to the log and a dialog."""

    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        details = "".join(traceback.format_exception(exc_type, exc, tb))
        log.error("uncaught exception\n%s", details)
        if QApplication.instance() is None:
            sys.__excepthook__(exc_type, exc, tb)
            return
        message = (
            f"Something went wrong: {exc}" if str(exc) else f"Something went wrong ({exc_type.__name__})."
        )
        error_box(message, log_file, details)

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        # Other threads cannot open dialogs; log it (TaskThread reports its own failures to the GUI).
        details = "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))
        log.error("uncaught exception in thread %s\n%s", getattr(args.thread, "name", "?"), details)

    sys.excepthook = hook
    threading.excepthook = thread_hook

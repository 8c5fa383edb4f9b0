"""`palmares-desktop`: start the workstation on a store (the demo, a given one, or the default).

palmares-desktop                      the default store in the user data directory
palmares-desktop --demo               build the demo store once (≈1 min), then open it
palmares-desktop --store PATH         any existing store folder
palmares-desktop --demo --screenshot docs/img/main.png [--room ct-pet|worklist|slide|all]
                                      open the first subject, save a screenshot, quit
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from palmares_desktop import __version__
from palmares_desktop.core import paths
from palmares_desktop.core.logs import setup_logging

log = logging.getLogger(__name__)

ROOMS = ("worklist", "ct-pet", "slide", "all")
SCREENSHOT_TIMEOUT_MS = 180_000


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="palmares-desktop", description="PALMARES Desktop imaging workstation."
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--demo", action="store_true", help="open the demo store (built on first use)")
    where.add_argument("--store", type=Path, metavar="PATH", help="open the store in folder PATH")
    parser.add_argument(
        "--screenshot",
        type=Path,
        metavar="FILE",
        help="open the first subject, save a PNG screenshot of the window to FILE and quit",
    )
    parser.add_argument(
        "--room",
        choices=ROOMS,
        default="ct-pet",
        help="which tab --screenshot captures; 'all' writes FILE-worklist/-ct-pet/-slide",
    )
    parser.add_argument(
        "--subject", metavar="CODE", help="subject to open at start (default with --screenshot: the first)"
    )
    parser.add_argument(
        "--software-gl",
        action="store_true",
        help="draw with software OpenGL (Mesa llvmpipe), for remote desktops and virtual machines "
        "(also PALMARES_SOFTWARE_GL=1, or View → Software OpenGL)",
    )
    parser.add_argument("--version", action="version", version=f"palmares-desktop {__version__}")
    return parser.parse_args(argv)


def demo_store_ready(path: Path) -> bool:
    """True when the demo store at `path` was completely built (the builder marks it at the end)."""
    if not (path / "palmares.db").exists():
        return False
    from palmares_desktop.core.demo.demo_store import BUILT_SETTING
    from palmares_desktop.core.store import Store, StoreError

    try:
        with Store.open(path, create=False, read_only=True) as store:
            return bool(store.setting(BUILT_SETTING))
    except StoreError:
        return False


def build_demo_with_progress(app, path: Path) -> Path:
    """Build the demo store in a worker thread behind a busy dialog (the GUI stays responsive)."""
    from qtpy.QtCore import QEventLoop, Qt
    from qtpy.QtWidgets import QProgressDialog

    from palmares_desktop.core.demo.demo_store import iter_build_demo_store
    from palmares_desktop.gui.workers import TaskThread

    intro = "Building the demo study (CT, PET and an H&E slide for 3 subjects).\nThis happens once and takes about a minute."
    dialog = QProgressDialog(intro, "", 0, 0)
    dialog.setCancelButton(None)  # the builder is not interruptible; closing would leave half a store
    dialog.setWindowTitle("PALMARES Desktop — first start")
    dialog.setWindowModality(Qt.WindowModality.ApplicationModal)
    dialog.setMinimumDuration(0)
    dialog.setMinimumWidth(460)
    dialog.show()
    loop = QEventLoop()
    outcome: dict = {}
    thread = TaskThread(lambda: iter_build_demo_store(path), name="demo store")
    thread.succeeded.connect(lambda result: outcome.update(result=result))
    thread.failed.connect(lambda exc: outcome.update(error=exc))
    thread.progress.connect(
        lambda step: dialog.setLabelText(getattr(step, "message", "") or dialog.labelText())
    )
    thread.finished.connect(loop.quit)
    thread.start()
    loop.exec()
    thread.wait()
    dialog.close()
    if "error" in outcome:
        raise outcome["error"]
    return Path(outcome.get("result") or path)


def build_demo_in_background(window, path: Path):
    """First start: the window is usable at once and each demo subject appears in the worklist as
    soon as it is imported (the first after about 10 s); closing the window stops the build between
    two steps, and the next start resumes it."""
    from qtpy.QtWidgets import QMessageBox

    from palmares_desktop.core.demo.demo_store import iter_build_demo_store, subject_ready

    bar = window.statusBar()
    bar.showMessage("Building the demo study in the background (CT, PET and an H&E slide for 3 subjects)…")

    def progress(step) -> None:
        bar.showMessage(f"Building the demo study in the background: {step.message}…")
        if subject_ready(step):
            window.refresh_worklist()

    def done(_path) -> None:
        window.refresh_worklist()
        bar.showMessage("The demo study is ready.", 10_000)

    def failed(exc: Exception) -> None:
        log.error("demo build failed: %s", exc, exc_info=exc)
        bar.clearMessage()
        QMessageBox.warning(
            window, "PALMARES Desktop — demo study", f"The demo study could not be built: {exc}"
        )

    return window.workers.start(
        lambda: iter_build_demo_store(path),
        on_success=done,
        on_failure=failed,
        on_progress=progress,
        on_cancel=lambda: log.info("demo build stopped with the window; the next start resumes it"),
        name="demo store",
    )


def _refuse(args: argparse.Namespace, title: str, message: str) -> int:
    """Tell the user why we cannot start: a dialog, or stderr when running unattended (--screenshot)."""
    if args.screenshot:
        print(f"{title}: {message}", file=sys.stderr)
    else:
        from qtpy.QtWidgets import QMessageBox

        QMessageBox.critical(None, title, message)
    return 2


def no_display_reason() -> str | None:
    """Why Qt cannot open a window here (Linux without X11/Wayland), in words; None when it can.
    Checked first, because Qt itself would abort the process with a cryptic plugin message."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return None
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    return (
        "neither DISPLAY nor WAYLAND_DISPLAY is set. Run it in a desktop session, or on a server "
        'under a virtual display: xvfb-run -s "-screen 0 1600x1000x24" palmares-desktop ...'
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    log_file = setup_logging()
    log.info("palmares-desktop %s starting: %s", __version__, " ".join(sys.argv))

    if no_display_reason():
        print(f"PALMARES Desktop needs a graphical display: {no_display_reason()}", file=sys.stderr)
        return 2

    from qtpy.QtWidgets import QApplication

    from palmares_desktop.core.profile import ReaderProfile, load_profile
    from palmares_desktop.core.store import Store, StoreError
    from palmares_desktop.gui.excepthook import install_excepthook
    from palmares_desktop.gui.settings import software_opengl_wanted, use_software_opengl

    if software_opengl_wanted(args.software_gl) and QApplication.instance() is None:
        use_software_opengl()  # must come before the QApplication
        log.info("software OpenGL selected (Mesa llvmpipe / Qt opengl32sw)")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("PALMARES Desktop")
    app.setOrganizationName(paths.APP_AUTHOR)
    install_excepthook(log_file)

    building = False  # the demo study is still to be built (first start)
    try:
        if args.demo:
            path = paths.demo_store_path()
            building = not demo_store_ready(path)
            if building and args.screenshot:
                path, building = build_demo_with_progress(app, path), False  # unattended: wait for it
            store = Store.open(path, create=building)
        elif args.store is not None:
            store = Store.open(args.store, create=False)
        else:
            store = Store.open(paths.default_store_path())
    except StoreError as exc:
        log.warning("cannot open store: %s", exc)
        return _refuse(args, "PALMARES Desktop — cannot open the store", str(exc))
    except Exception as exc:  # noqa: BLE001 - e.g. the demo build failed: say so, log the traceback
        log.exception("start-up failed")
        return _refuse(
            args, "PALMARES Desktop — start-up failed", f"{exc}\n\nDetails are in the log file:\n{log_file}"
        )

    from palmares_desktop.gui.main_window import MainWindow
    from palmares_desktop.gui.reader_dialog import ask_profile

    window = MainWindow(store, None)
    if building:
        build_demo_in_background(window, store.root)  # under way while the reader is asked who they are
    profile = load_profile()
    remember = True
    if profile is None and args.screenshot:
        profile, remember = ReaderProfile("Demo Reader", "radiologist", "IT03"), False
    elif profile is None:
        profile = ask_profile(None)  # first start: who is working? (Cancel: browse without writing)
    if profile is not None:
        window.set_profile(profile, remember=remember)
    window.show()
    freeze_startup_heap()

    if args.screenshot:
        return _screenshot_run(app, window, args)
    if args.subject:
        window.open_subject(args.subject)
    code = app.exec()
    store.close()
    return code


def freeze_startup_heap() -> None:
    """Move what start-up made (modules, Qt wrappers, the viewers) out of the garbage collector's
    sight: napari runs a full gc.collect() at every layer removal and scene-graph update, three per
    subject opened, each ~0.35 s over the start-up heap and a few ms without it."""
    import gc

    gc.collect()
    gc.freeze()


def _screenshot_run(app, window, args: argparse.Namespace) -> int:
    """Open a subject, wait until both rooms have rendered it, save the screenshot(s), quit."""
    from qtpy.QtCore import QTimer

    window.resize(1600, 1000)
    rows = window.store.worklist()
    if not rows:
        log.error("screenshot: the store has no subjects")
        return 1
    code = args.subject or rows[0]["code"]
    if window.store.subject_by_code(code) is None:
        print(f"screenshot: there is no subject {code} in this store", file=sys.stderr)
        return 1
    pending = {"ct-pet", "slide"}
    result = {"code": 1}

    def finish() -> None:
        window.close()
        app.quit()  # explicit: other top-level widgets (e.g. in a test session) must not keep us running

    def done(room: str) -> None:
        pending.discard(room)
        if pending == {"slide"}:
            window.tabs.setCurrentIndex(2)  # the slide room draws its slide once it is shown
        if not pending:
            QTimer.singleShot(1500, save)  # let the canvases draw a few frames

    def save() -> None:
        rooms = ("worklist", "ct-pet", "slide") if args.room == "all" else (args.room,)
        for room in rooms:
            window.tabs.setCurrentIndex({"worklist": 0, "ct-pet": 1, "slide": 2}[room])
            for _ in range(20):
                app.processEvents()
            target = args.screenshot
            if args.room == "all":
                target = target.with_name(f"{target.stem}-{room}{target.suffix or '.png'}")
            target.parent.mkdir(parents=True, exist_ok=True)
            window.grab().save(str(target))
            print(f"screenshot saved: {target}")
        result["code"] = 0
        finish()

    def ct_pet_loaded() -> None:
        # Features still being computed would show an empty radiomics panel: wait for them too.
        if window.ct_pet.radiomics.background_busy:
            pending.add("features")
        done("ct-pet")

    window.ct_pet.subject_loaded.connect(lambda _c: ct_pet_loaded())
    window.ct_pet.features_ready.connect(lambda: done("features"))
    window.ct_pet.load_failed.connect(lambda _m: done("ct-pet"))
    window.slide.slide_loaded.connect(lambda _n: done("slide"))
    window.slide.load_failed.connect(lambda _m: done("slide"))
    window.open_subject(code)
    if not window.slide.slides:
        done("slide")

    def timed_out() -> None:
        if result["code"] != 0:
            log.error("screenshot: the subject did not render within %d s", SCREENSHOT_TIMEOUT_MS // 1000)
            print("screenshot: timed out waiting for the subject to render", file=sys.stderr)
            finish()

    timer = QTimer()
    timer.setSingleShot(True)
    timer.timeout.connect(timed_out)
    timer.start(SCREENSHOT_TIMEOUT_MS)
    app.exec()
    timer.stop()
    window.store.close()
    return result["code"]


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the CT/PET room's layouts on a real store (issue 12's viewing targets).

Opens the first subject of a store (default: a demo store built here) in the real main window and
measures, in the same run:

  open      double-click -> subject_loaded -> the 2x2 companion views drawn (target < 3 s)
  step      one slice step (dims step + the canvas and companion views painted) in the one-view
            layout (the baseline: napari's own single view) and in the 2x2 layout (target <= 1.5x)
  click     a click in the coronal view: every view moved and redrawn

Run under a display, e.g.  xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/bench_room.py [--store S]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    from qtpy.QtCore import QEventLoop, QTimer
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    from palmares_desktop.core.demo.demo_store import build_demo_store
    from palmares_desktop.core.profile import ReaderProfile
    from palmares_desktop.core.store import Store
    from palmares_desktop.gui.main_window import MainWindow

    def wait(ms: int) -> None:
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    tmp = tempfile.TemporaryDirectory()
    root = args.store or build_demo_store(Path(tmp.name) / "store", n_subjects=1)
    store = Store.open(root)
    window = MainWindow(store, ReaderProfile("Bench Reader", "radiologist", "IT99"))
    window.resize(1600, 1000)
    window.show()
    wait(500)
    room = window.ct_pet
    room.set_layout("2x2")
    code = store.worklist()[0]["code"]
    loaded: list[str] = []
    room.subject_loaded.connect(loaded.append)
    start = time.perf_counter()
    window.open_subject(code)
    while not loaded or room.companions.coronal.rgb is None:
        app.processEvents()
    app.processEvents()
    opened = time.perf_counter() - start
    ct = room.loaded.ct_volume.data.shape if room.loaded.ct_volume is not None else None
    pet = room.loaded.pet_volume.data.shape if room.loaded.pet_volume is not None else None

    def step_times(layout: str) -> list[float]:
        room.set_layout(layout)
        wait(300)
        times = []
        for i in range(args.steps):
            t = time.perf_counter()
            room.viewer.step_slice(1 if i % 2 == 0 else -1)
            room.viewer.widget.canvas.native.repaint()
            for view in room.companions.all_views:
                if view.isVisible():
                    view.repaint()
            app.processEvents()
            times.append(time.perf_counter() - t)
        return times

    single = statistics.median(step_times("single"))
    two = statistics.median(step_times("2x2"))
    coronal = room.companions.coronal
    t = time.perf_counter()
    room.move_cursor(
        coronal.grid.world_of(coronal.grid.rows / 3, coronal.grid.cols / 3, room.companions.cursor)
    )
    room._render_companions()
    for view in room.companions.views:
        view.repaint()
    room.viewer.widget.canvas.native.repaint()
    app.processEvents()
    click = time.perf_counter() - t
    print(f"subject {code}: CT {ct}, PET {pet} (display z, y, x)")
    print(f"open to a drawn 2x2: {opened:.2f} s (target 3 s)")
    print(
        f"slice step, median of {args.steps}: one view {single * 1000:.0f} ms, 2x2 {two * 1000:.0f} ms, ratio {two / single:.2f} (target <= 1.5)"
    )
    print(f"a click in the coronal view, every view redrawn: {click * 1000:.0f} ms")
    window.close()
    store.close()


if __name__ == "__main__":
    main()

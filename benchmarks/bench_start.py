"""Benchmark: how soon the workstation is usable on a first and a second start (issue 9).

Each start is a new process under the current display (run under xvfb-run on a server) that does
what `palmares-desktop --demo` does, minus the reader dialog: QApplication, the store, MainWindow,
show, and (first start) the demo built in the background by `gui.app.build_demo_in_background`.

  first start   process start -> window shown; -> first subject on the worklist; -> whole demo built
  second start  process start -> window shown with the 3 demo subjects on the worklist
  baseline      process start -> `import PySide6.QtWidgets` + an empty QMainWindow shown (the floor
                any Qt desktop program pays), measured in the same run

Targets from the issue: first subject usable within 10 s; second start < 3 s to a usable worklist.

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/bench_start.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = r"""
import time
t0 = time.perf_counter()
import json, sys
from pathlib import Path
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication
app = QApplication([])
out = {}
if sys.argv[1] == "baseline":
    from qtpy.QtWidgets import QMainWindow
    w = QMainWindow(); w.resize(1600, 1000); w.show(); app.processEvents()
    out["shown"] = time.perf_counter() - t0
    print(json.dumps(out)); sys.exit(0)
from palmares_desktop.core.store import Store
from palmares_desktop.gui.app import build_demo_in_background, demo_store_ready
from palmares_desktop.gui.main_window import MainWindow
path = Path(sys.argv[2])
building = not demo_store_ready(path)
store = Store.open(path, create=building)
window = MainWindow(store, None)
window.resize(1600, 1000)
build = build_demo_in_background(window, path) if building else None
built = [build is None]  # the thread object is deleted once it ends: hear its end, never poll it
if build is not None:
    build.finished.connect(lambda: built.__setitem__(0, True))
window.show()
app.processEvents()
out["shown"] = time.perf_counter() - t0
def poll():
    rows = len(window.worklist.visible_codes())
    if rows >= 1 and "first_subject" not in out:
        out["first_subject"] = time.perf_counter() - t0
    if rows == 3 and built[0]:
        out["all"] = time.perf_counter() - t0
        window.close(); app.quit()
timer = QTimer(); timer.timeout.connect(poll); timer.start(50)
app.exec()
store.close()
print(json.dumps(out))
"""


def _start(*args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", _CHILD, *args], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        sys.exit(f"start failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = str(Path(tmp) / "demo")
        base = _start("baseline")["shown"]
        first = _start("demo", store)
        second = _start("demo", store)
    print(f"baseline: empty Qt window shown {base:.2f} s after process start")
    print(
        f"first start:  window shown {first['shown']:.2f} s, first subject on the worklist "
        f"{first['first_subject']:.1f} s (target 10 s), whole demo {first['all']:.1f} s"
    )
    print(
        f"second start: window with the worklist {second['all']:.2f} s (target 3 s), "
        f"ratio to the bare Qt window {second['all'] / base:.1f}"
    )


if __name__ == "__main__":
    main()

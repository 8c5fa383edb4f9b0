"""Kill the workstation mid-session: the reader's autosaved draft comes back (issue 12, Saving).

A child process runs the real window on a copy of the demo store, brushes a lesion until the draft
is autosaved and is then killed with SIGKILL, as a crash or a power cut would. The next session on
that store offers the draft in the CT/PET room and Edit outline resumes it voxel for voxel.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from tests.gui.test_ct_pet_room import LOAD_TIMEOUT_MS, open_subject

pytestmark = pytest.mark.gui

CHILD_TIMEOUT_S = 300  # the child builds napari, opens the subject and autosaves: slow on a busy CI

_CHILD = r"""
import json, sys, time
from pathlib import Path
import numpy as np
from qtpy.QtCore import QEventLoop, QTimer
from qtpy.QtWidgets import QApplication
app = QApplication([])
from palmares_desktop.core.profile import ReaderProfile
from palmares_desktop.core.store import Store
from palmares_desktop.core.store import segmentations as chains
from palmares_desktop.gui.main_window import MainWindow
from palmares_desktop.gui.outline_editor import EDIT_LAYER

def wait_until(done, timeout_s=240):
    end = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > end:
            sys.exit("the child timed out")
        loop = QEventLoop(); QTimer.singleShot(50, loop.quit); loop.exec()

store = Store.open(Path(sys.argv[1]), create=False)
window = MainWindow(store, None)
window.set_profile(ReaderProfile("Test Radiologist", "radiologist", "IT03"), remember=False)
window.resize(1400, 900); window.show()
room = window.ct_pet
loaded = []
room.subject_loaded.connect(loaded.append)
window.open_subject(sys.argv[2])
wait_until(lambda: loaded)
row = next(i for i, m in enumerate(room.loaded.masks) if m.segmentation.series_modality == "CT")
room.lesions.selectRow(row)
seg = room.selected_mask().segmentation
room.editor.edit.click()
empty = np.argwhere(room.editor.session.mask == 0)[0]
room.viewer.layer(EDIT_LAYER).paint(tuple(int(v) for v in empty), 1, refresh=False)
painted = int(room.editor.session.mask.sum())
room.editor.session.autosave.idle_s = 0.0  # the next poll autosaves
wait_until(lambda: chains.draft(store, seg.lesion_id, seg.series_id, store.reader.id) is not None)
print(json.dumps({"lesion": seg.lesion_name, "lesion_id": seg.lesion_id,
                  "series_id": seg.series_id, "voxels": painted}), flush=True)
time.sleep(3600)  # mid-session: the test kills us here
"""


def test_a_killed_session_s_draft_is_offered_back_and_resumed(
    open_window, demo_store_dir, tmp_path, radiologist, qtbot
):
    from palmares_desktop.core.store import segmentations as chains

    root = tmp_path / "store"
    shutil.copytree(demo_store_dir, root)
    code = "IT99-0001"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(root), code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PALMARES_HOME": str(tmp_path / "child_home")},
    )
    try:
        ready, _, _ = select.select([child.stdout], [], [], CHILD_TIMEOUT_S)
        line = child.stdout.readline() if ready else ""
        assert line, f"the child never autosaved: {child.stderr.read() if child.poll() is not None else ''}"
        drawn = json.loads(line)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL  # killed, not exited: nothing was saved on the way out

    window = open_window(root, radiologist)
    open_subject(window, qtbot)
    room, editor = window.ct_pet, window.ct_pet.editor
    assert room.loaded.subject.code == code
    assert f"Unsaved draft of {drawn['lesion']} (CT" in room.notes.text(), room.notes.text()
    row = next(
        i
        for i, m in enumerate(room.loaded.masks)
        if m.segmentation.lesion_id == drawn["lesion_id"] and m.segmentation.series_id == drawn["series_id"]
    )
    room.lesions.selectRow(row)
    editor.edit.click()
    assert editor.session is not None and int(np.sum(editor.session.mask)) == drawn["voxels"]
    assert "Resumed your draft" in editor.message.text(), editor.message.text()
    with qtbot.waitSignal(editor.saved, timeout=LOAD_TIMEOUT_MS) as saved:
        editor.save.click()
    assert saved.args[0]["segmentation_id"]
    assert chains.draft(window.store, drawn["lesion_id"], drawn["series_id"], window.store.reader.id) is None
    final = chains.latest_final(window.store, drawn["lesion_id"], drawn["series_id"], window.store.reader.id)
    assert final.voxel_count == drawn["voxels"]

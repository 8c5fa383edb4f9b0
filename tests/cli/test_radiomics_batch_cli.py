"""`palmares radiomics batch` as a user runs it: the real `palmares` process, Ctrl-C, re-run."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from series_fixture import import_ct  # noqa: E402

from palmares_desktop.core.segmentation.labelmaps import add_segmentation  # noqa: E402

# Enough work that a busy machine cannot finish it between the first stored result and Ctrl-C.
N_LESIONS = 10


def _stored(root: Path) -> int:
    with sqlite3.connect(root / "palmares.db") as db:
        return db.execute("select count(*) from feature_sets").fetchone()[0]


@pytest.mark.slow  # two local clusters and two `palmares` start-ups: ~20 s
def test_ctrl_c_keeps_finished_results_and_a_rerun_computes_the_rest(store, shared_data):
    lung = shared_data / "ibsi_ct_lung_pat1"
    import_ct(store, lung / "dicom" / "image", "IT03-0001")
    gtv = sitk.ReadImage(str(lung / "nifti" / "mask" / "mask.nii.gz"))
    add_segmentation(store, "IT03-0001", "CT", gtv, lesion_name="GTV-1")
    for radius in range(1, N_LESIONS):
        add_segmentation(
            store, "IT03-0001", "CT", sitk.BinaryErode(gtv, [radius] * 3), lesion_name=f"e{radius}"
        )
    command = ["palmares", "radiomics", "batch", "--store", str(store.root), "--workers", "2"]

    # Ctrl-C reaches the whole process group, as in a terminal.
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while _stored(store.root) == 0 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=120)
    kept = _stored(store.root)
    assert process.returncode == 130, err
    assert f"Interrupted after {kept} feature set(s); they are stored." in err
    assert "Traceback" not in err and 1 <= kept < N_LESIONS

    rerun = subprocess.run([*command, "--json"], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert (summary["computed"], summary["skipped_current"], summary["failed"]) == (
        N_LESIONS - kept,
        kept,
        [],
    )
    assert _stored(store.root) == N_LESIONS

"""Batch radiomics on Dask: interrupt and resume, one worker vs two, an existing scheduler.

Real data: the IBSI lung CT (PAT1) with its GTV and three erosions of it (four lesion masks), plus
the dcmqi 3-slice liver, whose extraction fails for a real reason (too thin for 3-D texture).
Each Dask run starts a local cluster (~2 s), so the runs are grouped into few tests.
"""

from __future__ import annotations

import json
import shutil
import signal
import threading
import time

import pytest
import SimpleITK as sitk
from series_fixture import import_ct

from palmares_desktop.core.radiomics.batch import BatchError, _connect, iter_batch, run_batch
from palmares_desktop.core.radiomics.store_features import pending_work
from palmares_desktop.core.segmentation.labelmaps import add_segmentation
from palmares_desktop.core.store import Store


@pytest.fixture
def batch_store(store, shared_data):
    """A store with 5 segmentations pending: 4 extract fine, the thin liver fails. Returns its path."""
    lung = shared_data / "ibsi_ct_lung_pat1"
    import_ct(store, lung / "dicom" / "image", "IT03-0001")
    gtv = sitk.ReadImage(str(lung / "nifti" / "mask" / "mask.nii.gz"))
    add_segmentation(store, "IT03-0001", "CT", gtv, lesion_name="GTV-1", organ="lung")
    for radius in (1, 2, 3):
        add_segmentation(
            store,
            "IT03-0001",
            "CT",
            sitk.BinaryErode(gtv, [radius] * 3),
            lesion_name=f"GTV-1 eroded {radius}",
            organ="lung",
        )
    liver = shared_data / "ct_3slice_seg_dcmqi"
    import_ct(store, liver / "ct", "IT03-0002")
    add_segmentation(store, "IT03-0002", "CT", liver / "seg" / "liver.dcm", organ="liver")
    assert len(pending_work(store)) == 5
    return store.root


def _features(root) -> dict[str, tuple[str, str | None]]:
    with Store.open(root, create=False) as s:
        return {
            r["segmentation_id"]: (r["status"], r["features_json"] or r["error"])
            for r in s.rows("feature_sets")
        }


def test_interrupt_resume_and_nothing_left(batch_store, tmp_path):
    pristine = tmp_path / "pristine"
    shutil.copytree(batch_store, pristine)

    task = iter_batch(batch_store, workers=2)
    finished = 0
    for step in task:
        finished = step.done
        if finished == 2:
            task.close()  # the user cancels: queued tasks are cancelled, the cluster shut down
            break
    assert len(_features(batch_store)) == 2  # what finished is stored, nothing else

    summary = run_batch(batch_store, workers=2)
    assert summary.skipped_current == 2 and summary.computed + len(summary.failed) == 3
    assert len(summary.timings) == 3 and all(t.elapsed_s > 0 for t in summary.timings)
    stored = _features(batch_store)
    assert len(stored) == 5
    assert sorted(s for s, _ in stored.values()) == ["error", "ok", "ok", "ok", "ok"]
    failed = [reason for _, _, reason in summary.failed] or [v for s, v in stored.values() if s == "error"]
    assert "extends in only 2 dimension(s)" in failed[0]

    # Nothing stale: the re-run computes nothing and does not even start a cluster.
    again = run_batch(batch_store, workers=2)
    assert (again.computed, again.failed, again.skipped_current, again.cluster) == (0, [], 5, "")

    # One worker on an untouched copy of the store gives exactly the same numbers as two.
    one = run_batch(pristine, workers=1)
    assert one.computed == 4 and len(one.failed) == 1
    assert _features(pristine) == stored
    gtv = next(json.loads(v) for s, v in stored.values() if s == "ok")
    assert len(gtv) > 100


def test_an_existing_scheduler_and_an_unreachable_one(batch_store):
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        summary = run_batch(batch_store, scheduler=cluster.scheduler_address, presets=["ct"])
    assert summary.computed == 4 and len(summary.failed) == 1
    assert summary.cluster == cluster.scheduler_address

    with pytest.raises(BatchError, match=r"Cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        with Store.open(batch_store) as s:
            s.use_system_reader("test", "IT03")
            s.update("series", s.rows("series")[0]["id"], {"pixel_sha256": "0" * 64})  # make work
        run_batch(batch_store, scheduler="tcp://127.0.0.1:9", connect_timeout_s=1)


def test_starting_a_single_thread_worker_never_ignores_ctrl_c():
    """Ctrl-C is ignored only while worker *processes* start (they inherit that). A thread worker
    has no process to protect: ignoring it there lost a Ctrl-C pressed during start-up."""
    seen: list = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.append(signal.getsignal(signal.SIGINT))
            time.sleep(0.0005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        client, cluster = _connect(1, None, 10.0)
        client.close()
        cluster.close()
    finally:
        stop.set()
        watcher.join()
    assert len(seen) > 10 and signal.SIG_IGN not in seen


def test_two_batches_at_once_store_each_feature_set_once(batch_store):
    """Two coordinators (or a coordinator and a GUI) start a batch on one store at the same time."""
    import subprocess
    import sys

    cli = "from palmares_desktop.cli.main import cli; cli()"
    args = [sys.executable, "-c", cli, "radiomics", "batch", "--store", str(batch_store), "--workers", "1"]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all("Traceback" not in err for _, err in outs), outs
    with Store.open(batch_store, read_only=True) as s:
        ok = [r for r in s.rows("feature_sets") if r["status"] == "ok"]
    keys = [(r["segmentation_id"], r["params_sha256"], r["image_sha256"], r["mask_sha256"]) for r in ok]
    assert len(keys) == 4 == len(set(keys)), "4 lesions extract: each feature set exactly once"

"""The CLI under hostile input (issue 11): one sentence, no traceback, no hang, nothing left behind;
exit statuses that say whether everything asked was done; the author never taken from $LOGNAME."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from series_fixture import import_ct  # noqa: E402

from palmares_desktop.cli import exit_codes  # noqa: E402
from palmares_desktop.cli.main import _register, main  # noqa: E402
from palmares_desktop.core.store import Store  # noqa: E402


@pytest.fixture
def palmares():
    _register()
    return lambda *args, **kw: CliRunner().invoke(main, [str(a) for a in args], **kw)


def _timed(palmares, *args, **kw):
    started = time.perf_counter()
    result = palmares(*args, **kw)
    return result, time.perf_counter() - started


# ------------------------------------------------------------------------------ segmentation add
def test_label_zero_is_refused_before_any_work(palmares, store, shared_data):
    folder = shared_data / "ct_3slice_seg_dcmqi"
    import_ct(store, folder / "ct", "IT03-0001")
    result, elapsed = _timed(
        palmares, "segmentation", "add", folder / "seg" / "liver_seg.nrrd", "--store", store.root,
        "--subject", "IT03-0001", "--modality", "ct", "--label", "0",
    )  # fmt: skip
    assert result.exit_code == exit_codes.REFUSED and elapsed < 10
    assert "Error: Label 0 is the background (every voxel outside the lesions), not a lesion" in result.output
    assert "Traceback" not in result.output
    assert store.rows("segmentations") == [] and store.rows("lesions") == []
    assert list(store.path("masks").iterdir()) == []


# ------------------------------------------------------------------------------ batch --scheduler
@pytest.fixture
def http_port():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_bad_scheduler_is_one_sentence_without_a_hang(palmares, store, http_port):
    audit_before = len(store.rows("audit_log"))
    cases = {
        "not a url": "'not a url' is not a Dask scheduler address: give it as tcp://HOST:PORT or HOST:PORT",
        f"127.0.0.1:{http_port}": f"Something is listening at tcp://127.0.0.1:{http_port}, but it is not a Dask scheduler",
        # Unroutable: no answer (or, behind a proxy that accepts every connection, no Dask greeting).
        "10.255.255.1:8786": "tcp://10.255.255.1:8786",
    }  # fmt: skip
    for address, sentence in cases.items():
        result, elapsed = _timed(
            palmares, "radiomics", "batch", "--store", store.root, "--scheduler", address
        )
        assert result.exit_code == exit_codes.REFUSED, result.output
        assert elapsed < 15, (address, elapsed)
        assert sentence in result.output and result.output.count("\n") == 1, result.output
        assert "Traceback" not in result.output and "EiB" not in result.output
    assert len(store.rows("audit_log")) == audit_before  # not even a reader was recorded


# ------------------------------------------------------------------------------ import
def test_refused_imports_leave_no_store_behind(palmares, shared_data, tmp_path):
    masks = tmp_path / "masks"  # nothing importable: RTSTRUCTs only
    shutil.copytree(shared_data / "petct_sts_001" / "CT" / "mask", masks)
    cases = [
        (tmp_path / "nowhere", "Folder not found"),
        (masks, "Nothing new imported"),
        (shared_data / "pet_bqml_orthanc", "2 different patients"),
    ]
    for folder, message in cases:
        store = tmp_path / "new store"
        result = palmares("import", folder, "--subject", "IT03-0001", "--store", store)
        assert result.exit_code == exit_codes.REFUSED and message in result.output, result.output
        assert not store.exists()

    # A folder holding only a damaged key table: the refusal removes the palmares.db it made, and
    # leaves the key table (someone's, to restore) as it was.
    kept = tmp_path / "kept"
    (kept / "keys.db").mkdir(parents=True)  # a key table that cannot be opened
    result = palmares(
        "import", shared_data / "ct_3slice_seg_dcmqi" / "ct", "--subject", "IT03-0001", "--store", kept
    )
    assert result.exit_code == exit_codes.REFUSED and "Cannot open the key table" in result.output
    assert sorted(p.name for p in kept.iterdir()) == ["keys.db"]


def _broken_pet_copy(shared_data, tmp_path) -> Path:
    """The real CT, and a copy of the real PET whose slice 19 lost its last kilobyte."""
    folder = tmp_path / "export"
    for part in ("CT", "PET"):
        shutil.copytree(shared_data / "petct_sts_001" / part / "image", folder / part)
    broken = folder / "PET" / "000019.dcm"
    os.chmod(broken, 0o644)
    with open(broken, "r+b") as handle:
        handle.truncate(broken.stat().st_size - 1000)
    return folder


def test_import_partial_success_exits_3_and_says_what_failed(palmares, shared_data, tmp_path):
    store = tmp_path / "store"
    folder = _broken_pet_copy(shared_data, tmp_path)
    result = palmares("import", folder, "--subject", "IT03-0001", "--store", store, "--json")
    assert result.exit_code == exit_codes.PARTIAL, result.output
    summary = json.loads(result.stdout)
    assert [(s["modality"], s["n_instances"]) for s in summary["imported"]] == [("CT", 59)]
    assert summary["ok"] and not summary["complete"]
    assert summary["skipped"][0]["reason"].startswith("not a usable volume: 1 gap(s) in the stack")
    assert [Path(p).name for p, _ in summary["files_skipped"]] == ["000019.dcm"]

    complete = palmares(
        "import", shared_data / "petct_sts_001", "--subject", "IT03-0002", "--store", tmp_path / "s2"
    )
    assert complete.exit_code == exit_codes.OK, complete.output


def test_links_and_fifos_in_an_import_folder_are_listed(palmares, shared_data, tmp_path):
    folder = tmp_path / "export"
    shutil.copytree(shared_data / "ct_3slice_seg_dcmqi" / "ct", folder / "ct")
    (folder / "elsewhere").symlink_to(shared_data / "petct_sts_001", target_is_directory=True)
    os.mkfifo(folder / "pipe")
    (folder / "zero").symlink_to("/dev/zero")
    result, elapsed = _timed(
        palmares, "import", folder, "--subject", "IT03-0001", "--store", tmp_path / "s", "--json"
    )
    assert result.exit_code == exit_codes.OK and elapsed < 10, result.output
    skipped = {Path(p).name: r for p, r in json.loads(result.stdout)["files_skipped"]}
    assert skipped == {
        "elsewhere": "link to a folder, not followed (it may lead outside the export, or in a loop)",
        "pipe": "a named pipe (FIFO), not a file: not read",
        "zero": "link to a device, not a file: not read",
    }
    text = palmares("import", folder, "--subject", "IT03-0001", "--store", tmp_path / "s")
    assert "3 file(s) are not images of a volume:" in text.output
    assert f"  {folder / 'pipe'}: a named pipe (FIFO), not a file: not read" in text.output


# ------------------------------------------------------------------------------ --reader
def test_the_author_is_the_named_reader_never_logname(palmares, shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("LOGNAME", "Dr Someone Else")
    monkeypatch.setenv("USER", "Dr Someone Else")
    store = tmp_path / "store"
    ct = shared_data / "ct_3slice_seg_dcmqi"
    result = palmares("import", ct / "ct", "--subject", "IT03-0001", "--store", store, "--reader", "Dr Rossi")
    assert result.exit_code == 0, result.output
    assert "Recorded as reader: Dr Rossi (coordinator, IT03); given with --reader." in result.stderr
    added = palmares(
        "segmentation", "add", ct / "seg" / "liver_seg.nrrd", "--store", store, "--subject", "IT03-0001",
        "--modality", "ct", "--no-features", "--reader", "Dr Rossi",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    anonymous = palmares("radiomics", "lock", "--store", store, "--modality", "ct", "--preset", "ct")
    assert anonymous.exit_code == 0, anonymous.output
    assert "Recorded as reader: palmares command line (no reader named) (system, IT03)" in anonymous.stderr
    with Store.open(store) as s:
        names = {r["id"]: r["name"] for r in s.rows("readers")}
        assert sorted(names.values()) == ["Dr Rossi", "palmares command line (no reader named)"]
        assert not any("Someone Else" in json.dumps(row) for row in s.rows("audit_log"))
        series, segmentation = s.rows("series")[0], s.rows("segmentations")[0]
        assert names[series["author_id"]] == names[segmentation["author_id"]] == "Dr Rossi"
        audit = [
            names[r["reader_id"]] for r in s.rows("audit_log", "table_name in ('series', 'segmentations')")
        ]
        assert audit and set(audit) == {"Dr Rossi"}
    as_json = palmares(
        "import", ct / "ct", "--subject", "IT03-0001", "--store", store, "--reader", "Dr Rossi", "--json"
    )
    assert json.loads(as_json.stdout)["reader"] == {
        "name": "Dr Rossi", "role": "coordinator", "site_code": "IT03", "source": "--reader",
    }  # fmt: skip


# ------------------------------------------------------------------------------ batch: exit 3, quiet close
@pytest.mark.slow  # one local cluster of 2 worker processes and a `palmares` start-up: ~25 s
def test_a_batch_with_failures_exits_3_and_closes_its_cluster_quietly(store, shared_data):
    import subprocess

    import SimpleITK as sitk

    from palmares_desktop.core.segmentation.labelmaps import add_segmentation

    lung = shared_data / "ibsi_ct_lung_pat1"
    import_ct(store, lung / "dicom" / "image", "IT03-0001")
    gtv = sitk.ReadImage(str(lung / "nifti" / "mask" / "mask.nii.gz"))
    add_segmentation(store, "IT03-0001", "CT", gtv, lesion_name="GTV-1")
    add_segmentation(store, "IT03-0001", "CT", sitk.BinaryErode(gtv, [2] * 3), lesion_name="GTV-1 eroded")
    liver = shared_data / "ct_3slice_seg_dcmqi"  # 3 slices: too thin for the 3-D CT preset, fails
    import_ct(store, liver / "ct", "IT03-0002")
    add_segmentation(store, "IT03-0002", "CT", liver / "seg" / "liver.dcm")

    env = {**os.environ, "LOGNAME": "Dr Someone Else"}
    command = ["palmares", "radiomics", "batch", "--store", str(store.root), "--workers", "2"]
    run = subprocess.run(
        [*command, "--json", "--reader", "Dr Bianchi"], capture_output=True, text=True, env=env, timeout=300
    )
    assert run.returncode == exit_codes.PARTIAL, run.stderr
    summary = json.loads(run.stdout)
    assert summary["computed"] == 2 and len(summary["failed"]) == 1
    assert summary["reader"]["name"] == "Dr Bianchi" and summary["reader"]["source"] == "--reader"
    for noise in ("Traceback", "CommClosedError", "Stream is closed", "distributed."):
        assert noise not in run.stderr, run.stderr
    names = {r["id"]: r["name"] for r in store.rows("readers")}
    assert {names[f["author_id"]] for f in store.rows("feature_sets")} == {"Dr Bianchi"}
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == exit_codes.OK, again.stderr  # the failure is stored: nothing left to do
    assert "Computed 0, failed 0, already current 3" in again.stdout

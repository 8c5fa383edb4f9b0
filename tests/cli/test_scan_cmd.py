"""`palmares scan` on real data: the table, the JSON, problems, and no patient identifiers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pydicom
import pytest
from click.testing import CliRunner

from palmares_desktop.cli.main import _register, main

PLANTED_NAME = "ROSSI^MARIA^PLANTED"
PLANTED_ID = "PID-4711-PLANTED"


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    _register()
    return CliRunner()


@pytest.fixture
def planted_ct(tmp_path, shared_data):
    """The 3-slice CT with identifying values planted, and an RTSTRUCT beside it."""
    folder = tmp_path / "export"
    folder.mkdir()
    for f in sorted((shared_data / "ct_3slice_seg_dcmqi/ct").glob("*.dcm")):
        ds = pydicom.dcmread(f)
        ds.PatientName, ds.PatientID = PLANTED_NAME, PLANTED_ID
        ds.save_as(folder / f.name)
    shutil.copy(shared_data / "petct_sts_001/CT/mask/RS.dcm", folder / "RS.dcm")
    return folder


def test_table_lists_pet_and_ct_of_the_sts_study(runner, shared_data):
    result = runner.invoke(main, ["scan", str(shared_data / "petct_sts_001")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("2 series (2 usable as volumes: 2 ready to read, 0 limited), 5 files skipped")
    pet = next(line for line in lines if "IBSI_1_STS_001_PET_image" in line).split()
    ct = next(line for line in lines if "IBSI_1_STS_001_CT_image" in line).split()
    assert pet[1:] == ["PT", "IBSI_1_STS_001_PET_image", "59", "41x43", "4.688x4.688x3.27", "3.27",
                       "…04118088", "GE", "MEDICAL", "SYST…", "yes"]  # fmt: skip
    # Matrix is columns x rows (width x height), as in the import dialog.
    assert ct[1:5] == ["CT", "IBSI_1_STS_001_CT_image", "59", "198x202"] and ct[-1] == "yes"
    assert "  2 x non-image object (RTSTRUCT): CT/mask/RS.dcm, PET/mask/RS.dcm" in lines
    assert "STS_001" not in result.output.replace("IBSI_1_STS_001", "")  # PatientName/PatientID


def test_json_has_series_and_skipped_and_no_identifiers(runner, planted_ct):
    result = runner.invoke(main, ["scan", str(planted_ct), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == {"root", "series", "skipped"}
    (series,) = report["series"]
    assert series["modality"] == "CT" and series["n_instances"] == 3 and series["usable"] is True
    assert series["rows"] == series["cols"] == 512
    assert series["spacing"] == pytest.approx([0.810547, 0.810547, 1.0], abs=1e-6)
    assert series["slice_thickness"] == 1.25 and series["problems"] == []
    assert series["frame_of_reference_uid"].endswith(".23882.1")
    assert report["skipped"] == [
        {"path": str(planted_ct / "RS.dcm"), "reason": "non-image object (RTSTRUCT)"}
    ]
    human = runner.invoke(main, ["scan", str(planted_ct)]).output
    for text in (result.stdout, human):
        assert "ROSSI" not in text and "PLANTED" not in text and "patient" not in text.lower()


def test_problems_are_shown_and_exit_status_stays_zero(runner, shared_data, tmp_path):
    files = (shared_data / "ibsi_ct_lung_pat1/dicom/image").glob("*.dcm")
    by_z = sorted(
        files, key=lambda f: float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2])
    )
    for f in by_z[:8]:
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / by_z[4].name).unlink()  # a slice in the middle: a gap
    result = runner.invoke(main, ["scan", str(tmp_path)])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].startswith("1 series (0 usable as volumes: 0 ready to read, 0 limited), 0 files skipped")
    assert lines[4].split()[1:5] == ["CT", "(no", "description)", "7"] and lines[4].split()[-1] == "NO"
    assert lines[5] == (
        "      - 1 gap(s) in the stack, about 1 slice(s) missing: e.g. 6.00 mm between the slices at "
        "(-174.39, -79.63, -91.40) and (-174.39, -79.63, -85.40) mm, where the regular step is 3.00 mm."
    )


def test_missing_folder_is_a_clear_usage_error(runner, tmp_path):
    result = runner.invoke(main, ["scan", str(tmp_path / "no-such-folder")])
    assert result.exit_code == 2
    assert "does not exist" in result.output and "Traceback" not in result.output


def test_a_text_file_is_refused_not_listed_as_dot(runner, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not DICOM")
    result = runner.invoke(main, ["scan", str(text)])
    assert result.exit_code == 1
    assert "is a file, not a folder" in result.output and "Traceback" not in result.output


def test_end_to_end_through_the_installed_entry_point(shared_data, tmp_path):
    """The real `cli()` entry point in a subprocess (argument parsing, JSON on stdout, exit code)."""
    code = "from palmares_desktop.cli.main import cli; cli()"
    folder = shared_data / "pet_bqml_orthanc"
    done = subprocess.run([sys.executable, "-c", code, "scan", str(folder), "--json"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    by_description = {s["description"]: s for s in report["series"]}
    assert set(by_description) == {"F18 FDG", "CT HEAD/NK 5.0 B30s", "PET WB"}
    assert by_description["F18 FDG"]["problems"][0].startswith("Only one slice")
    comunix_pet, comunix_ct = by_description["PET WB"], by_description["CT HEAD/NK 5.0 B30s"]
    assert comunix_pet["frame_of_reference_uid"] != comunix_ct["frame_of_reference_uid"]
    assert "COMUNIX" not in done.stdout  # PatientName: never
    # Two patients: their IDs are shown (at the site, on screen only) to pick one with --patient-id.
    assert (
        comunix_pet["patient_id"] == "fYET5.0" and by_description["F18 FDG"]["patient_id"] == "13020110201186"
    )
    # The same rule as `palmares suv` and the import dialog: these PET series are limited, not "usable: yes".
    assert by_description["F18 FDG"]["verdict"]["word"] == "limited"
    assert comunix_pet["verdict"]["word"] == "limited"
    assert any(
        r.startswith("No SUV (PatientWeight (0010,1030) is 0 kg") for r in comunix_pet["verdict"]["reasons"]
    )
    assert comunix_ct["verdict"] == {"word": "yes", "reasons": []}
    missing = subprocess.run([sys.executable, "-c", code, "scan", str(tmp_path / "nope")],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert missing.returncode == 2 and "does not exist" in missing.stderr

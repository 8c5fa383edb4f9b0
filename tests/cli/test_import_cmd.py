"""`palmares import DIR --subject CODE` on real folders: summary, exit status, plain errors."""

from __future__ import annotations

import json
import shutil

from click.testing import CliRunner

from palmares_desktop.cli import commands
from palmares_desktop.cli.import_cmd import import_
from palmares_desktop.core.store import Store


def _run(*args: str):
    return CliRunner().invoke(import_, [str(a) for a in args])


def test_import_then_reimport(shared_data, tmp_path):
    store = tmp_path / "store"
    first = _run(shared_data / "petct_sts_001", "--subject", "IT03-0001", "--store", store)
    assert first.exit_code == 0, first.output
    assert "Imported 2 series as IT03-0001" in first.output
    assert "PT     59 images  SUVbw" in first.output and "CT     59 images  HU" in first.output
    assert "5 file(s) are not images of a volume" in first.output  # 2 RTSTRUCTs and 3 text files
    again = _run(shared_data / "petct_sts_001", "--subject", "IT03-0001", "--store", store, "--json")
    assert again.exit_code == 0, again.output
    summary = json.loads(again.output)
    assert summary["ok"] and summary["imported"] == [] and len(summary["skipped"]) == 2
    with Store.open(store) as s:
        assert len(s.rows("series")) == 2
        assert s.rows("readers")[0]["role"] == "system" and s.rows("readers")[0]["site_code"] == "IT03"


def test_refused_pet_suv_is_a_warning_not_a_failure(shared_data, tmp_path):
    result = _run(
        shared_data / "pet_bqml_orthanc" / "comunix_petct",
        "--subject",
        "IT03-0005",
        "--store",
        tmp_path / "store",
    )
    assert result.exit_code == 0, result.output
    assert "BQML" in result.output and "WARNING: SUV could not be computed" in result.output


def test_errors_are_plain_sentences_with_exit_1(shared_data, tmp_path):
    store = tmp_path / "store"
    cases = [
        ((shared_data / "pet_bqml_orthanc", "--subject", "IT03-0001"), "2 different patients"),
        ((tmp_path / "nowhere", "--subject", "IT03-0001"), "Folder not found"),
        ((shared_data / "petct_sts_001", "--subject", "ROSSI"), "is not valid"),
        ((shared_data / "petct_sts_001", "--subject", "IT03-0001", "--site", "IT05"), "must start with IT05"),
    ]
    for args, message in cases:
        result = _run(*args, "--store", store)
        assert result.exit_code == 1 and message in result.output, result.output
        assert "Traceback" not in result.output
    with Store.open(store) as s:
        assert s.rows("series") == [] and s.rows("subjects") == []
        # only the CLI's reader (and its site) were recorded, nothing about the refused imports
        assert {r["table_name"] for r in s.rows("audit_log")} <= {"readers", "sites"}


def test_nothing_importable_exits_1(shared_data, tmp_path):
    folder = tmp_path / "masks"
    shutil.copytree(shared_data / "petct_sts_001" / "CT" / "mask", folder)
    result = _run(folder, "--subject", "IT03-0001", "--store", tmp_path / "store")
    assert result.exit_code == 1 and "Nothing new imported" in result.output


def test_patient_id_picks_one_patient(shared_data, tmp_path):
    result = _run(
        shared_data / "pet_bqml_orthanc",
        "--subject",
        "IT03-0001",
        "--store",
        tmp_path / "store",
        "--patient-id",
        "13020110201186",
    )
    assert result.exit_code == 0 and "Imported 1 series" in result.output, result.output


def test_a_saved_reader_profile_is_the_author(shared_data, tmp_path):
    from palmares_desktop.core.profile import make_profile, save_profile

    save_profile(make_profile("Dr Test", "radiologist", "IT03"))
    store = tmp_path / "store"
    result = _run(
        shared_data / "pet_bqml_orthanc" / "siemens_mct_single_slice",
        "--subject",
        "IT03-0002",
        "--store",
        store,
    )
    assert result.exit_code == 0, result.output
    with Store.open(store) as s:
        reader = s.get("readers", s.rows("series")[0]["author_id"])
        assert (reader["name"], reader["role"]) == ("Dr Test", "radiologist")


def test_registered_as_palmares_import():
    assert commands.COMMANDS["import"] == "palmares_desktop.cli.import_cmd:import_"
    assert import_.name == "import"


def test_empty_folder_says_no_dicom_files(tmp_path):
    from click.testing import CliRunner

    from palmares_desktop.cli.main import _register, main

    _register()
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(
        main, ["import", str(empty), "--subject", "IT03-0001", "--store", str(tmp_path / "s")]
    )
    assert result.exit_code == 1, result.output
    assert "no DICOM files in" in result.output and "Could not import" not in result.output

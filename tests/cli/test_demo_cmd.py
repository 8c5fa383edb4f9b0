"""`palmares demo`: writes the demo study, reports what it wrote and how long it took; bad options fail in words."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from palmares_desktop.cli.main import _register, main


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    _register()
    return CliRunner()


def test_demo_is_listed_with_help(runner):
    result = runner.invoke(main, ["demo", "--help"])
    assert result.exit_code == 0
    assert "--out" in result.output and "--subjects" in result.output and "--store" in result.output


def test_bad_options_are_plain_errors(runner, tmp_path):
    result = runner.invoke(main, ["demo", "--out", str(tmp_path), "--subjects", "0"])
    assert result.exit_code == 2 and "0 is not in the range 1<=x<=99" in result.output
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from palmares_desktop.cli.main import cli; cli()",
            "demo",
            "--out",
            str(blocker / "demo"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "Cannot create the demo folder" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_one_subject_demo_and_store(runner, tmp_path, monkeypatch):
    out, store = tmp_path / "demo", tmp_path / "store"
    monkeypatch.setenv("LOGNAME", "Dr Someone Else")  # must never become the author
    result = runner.invoke(
        main,
        ["demo", "--out", str(out), "--subjects", "1", "--store", str(store), "--reader", "Dr Demo Builder"],
    )
    assert result.exit_code == 0, result.output
    assert "recorded as Dr Demo Builder (given with --reader)" in result.output
    from palmares_desktop.core.store import Store, records

    with Store.open(store, read_only=True) as opened:
        by_id = {r.id: r.name for r in opened.readers()}
        assert "Dr Someone Else" not in by_id.values()
        subject = opened.subject_by_code("IT99-0001")
        lesions = records.lesions_of_subject(opened, subject.id)
        assert len(lesions) == 4 and {by_id[lesion.author_id] for lesion in lesions} == {"Dr Demo Builder"}
    assert "Demo study with 1 subjects written to" in result.output
    assert "IT99-0001  siemens PET BQML" in result.output and "Done in" in result.output
    assert f"Demo store ready at {store.resolve()}" in result.output
    manifest = json.loads((out / "demo_manifest.json").read_text())
    assert manifest["subjects"][0]["code"] == "IT99-0001"
    assert len(list((out / "dicom" / "subject1" / "SE0002_CT").glob("*.dcm"))) == 120

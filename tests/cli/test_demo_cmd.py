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
def test_one_subject_demo_and_store(runner, tmp_path):
    out, store = tmp_path / "demo", tmp_path / "store"
    result = runner.invoke(main, ["demo", "--out", str(out), "--subjects", "1", "--store", str(store)])
    assert result.exit_code == 0, result.output
    assert "Demo study with 1 subjects written to" in result.output
    assert "IT99-0001  siemens PET BQML" in result.output and "Done in" in result.output
    assert f"Demo store ready at {store.resolve()}" in result.output
    manifest = json.loads((out / "demo_manifest.json").read_text())
    assert manifest["subjects"][0]["code"] == "IT99-0001"
    assert len(list((out / "dicom" / "subject1" / "SE0002_CT").glob("*.dcm"))) == 120

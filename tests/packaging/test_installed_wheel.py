"""A non-editable `pip install .` keeps the radiomics presets (they are package data now).

The venv sees the system site-packages (numpy, SimpleITK, pyradiomics are heavy to reinstall),
but palmares_desktop itself must come from the venv, not from the source tree or the editable
install: the test checks `__file__` and runs from a temporary folder with PYTHONPATH cleared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2]


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.mark.slow
def test_pip_install_dot_runs_radiomics_preset_ct(tmp_path, shared_data):
    prefix = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(prefix)
    python = prefix / "bin" / "python"
    env = _clean_env()
    # The system pip installs into the venv (a normal isolated build: a wheel, then its contents).
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--quiet",
            str(SOURCE),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr

    where = subprocess.run(
        [
            str(python),
            "-c",
            "import palmares_desktop, pathlib; print(pathlib.Path(palmares_desktop.__file__).resolve())",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(prefix.resolve()), where
    assert not Path(where).is_relative_to(SOURCE), where
    installed_preset = Path(where).parent / "resources" / "radiomics" / "ct.yaml"
    assert (
        installed_preset.read_bytes()
        == (SOURCE / "palmares_desktop/resources/radiomics/ct.yaml").read_bytes()
    )

    folder = shared_data / "ibsi_digital_phantom"
    image, mask = folder / "image" / "phantom.nii.gz", folder / "mask" / "mask.nii.gz"
    args = ["radiomics", str(image), str(mask), "--preset", "ct"]
    installed = subprocess.run(
        [str(prefix / "bin" / "palmares"), *args], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert installed.returncode == 0, installed.stderr
    editable = subprocess.run(
        [sys.executable, "-c", "from palmares_desktop.cli.main import cli; cli()", *args],
        cwd=SOURCE,
        env={**env, "PYTHONPATH": str(SOURCE)},
        capture_output=True,
        text=True,
    )
    assert editable.returncode == 0, editable.stderr
    ours, reference = json.loads(installed.stdout), json.loads(editable.stdout)
    features = [k for k in reference if k.startswith("original_")]
    assert len(features) == 107
    assert {k: ours[k] for k in features} == {k: reference[k] for k in features}
    assert ours["provenance"]["params"]["sha256"] == reference["provenance"]["params"]["sha256"]

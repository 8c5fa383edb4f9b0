"""`palmares pet threshold | metrics | candidates` and `palmares segmentation export`, end to end on
a real store: a hand-checkable synthetic PET (three cubes of known size, uptake and position) and a
copy of the demo store (PERCIST on the demo liver, candidates from the stored liver sphere)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from series_fixture import insert_series  # noqa: E402

from palmares_desktop.cli.main import _register, main  # noqa: E402
from palmares_desktop.core.store import Store  # noqa: E402
from tests.core.demo_fixture import demo_store, writable_copy  # noqa: E402


@pytest.fixture
def palmares():
    _register()
    runner = CliRunner()
    return lambda *args: runner.invoke(main, [str(a) for a in args])


# cubes: centre (x, y, z) mm on a 4 mm grid from 0, half-width in voxels, SUV
CUBES = {"A": ((40, 40, 40), 1, 6.0), "B": ((88, 104, 40), 2, 5.0), "C": ((40, 40, 160), 0, 8.0)}


@pytest.fixture
def cubes_store(store):
    suv = np.ones((50, 50, 50), np.float32)
    for (x, y, z), h, value in CUBES.values():
        i, j, k = x // 4, y // 4, z // 4
        suv[k - h : k + h + 1, j - h : j + h + 1, i - h : i + h + 1] = value
    image = sitk.GetImageFromArray(suv)
    image.SetSpacing((4.0, 4.0, 4.0))
    insert_series(store, "IT03-0001", image, modality="PT")
    return store


def test_threshold_metrics_and_totals_on_a_hand_checkable_pet(palmares, cubes_store, tmp_path):
    root = cubes_store.root
    for name, ((x, y, z), h, value) in CUBES.items():
        result = palmares(
            "pet", "threshold", "--store", root, "--subject", "IT03-0001", "--at", f"{x},{y},{z}",
            "--rule", "suv4.0", "--box-mm", 40, "--lesion", name, "--json",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        out = json.loads(result.output)
        side = 2 * h + 1
        assert out["voxel_count"] == side**3
        assert out["mtv_ml"] == pytest.approx(side**3 * 0.064)
        assert out["suv_max"] == out["suv_mean"] == value
        assert out["tlg"] == pytest.approx(value * side**3 * 0.064)
        assert out["suv_peak"] <= value and {"suv_peak", "sul_peak", "parameters"} <= set(out)
        assert out["centroid_mm"] == pytest.approx([x, y, z])
        assert out["parameters"]["rule"] == "suv4.0" and out["parameters"]["threshold_suv"] == 4.0
        assert out["lesion"] == name and out["version"] == 1
    rows = cubes_store.rows("segmentations")
    assert len(rows) == 3 and {r["method"] for r in rows} == {"PET threshold: fixed SUV 4.0"}
    assert json.loads(rows[0]["parameters_json"])["connectivity"].startswith("26")

    result = palmares("pet", "metrics", "--store", root, "--subject", "IT03-0001", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["lesion_count"] == 3
    assert out["total_mtv_ml"] == pytest.approx((27 + 125 + 1) * 0.064)  # 9.792 mL
    assert out["total_tlg"] == pytest.approx(27 * 0.064 * 6 + 125 * 0.064 * 5 + 0.064 * 8)  # 50.88
    assert out["dmax_mm"] == pytest.approx(math.sqrt(48**2 + 64**2 + 120**2))  # B to C: 144.2 mm
    assert [x["name"] for x in out["lesions"]] == ["A", "B", "C"]
    text = palmares("pet", "metrics", "--store", root, "--subject", "IT03-0001").output
    assert "total MTV 9.79 mL, total TLG 50.88, 3 lesions (unspecified 3), Dmax 144.2 mm" in text

    result = palmares(
        "pet", "candidates", "--store", root, "--subject", "IT03-0001", "--rule", "suv2.5", "--json"
    )
    out = json.loads(result.output)
    assert [c["suv_max"] for c in out["candidates"]] == [8.0, 6.0, 5.0]
    assert out["candidates"][0]["hottest_mm"] == [40.0, 40.0, 160.0]

    result = palmares(
        "segmentation",
        "export",
        "--store",
        root,
        "--subject",
        "IT03-0001",
        "--format",
        "nifti",
        "--out",
        tmp_path,
    )
    assert result.exit_code == 0, result.output
    assert "3 files written" in result.output
    exported = sitk.ReadImage(str(tmp_path / "IT03-0001_PET_b.nii.gz"))
    assert int(sitk.GetArrayFromImage(exported).sum()) == 125


def test_refusals_are_plain_sentences(palmares, cubes_store):
    root = cubes_store.root
    base = ["pet", "threshold", "--store", root, "--subject", "IT03-0001"]
    cases = [
        (
            base + ["--at", "40,40,40", "--rule", "percist"],
            "PERCIST needs a reference region: place the 3 cm liver sphere",
        ),
        (
            base + ["--at", "40,40,900", "--rule", "41%"],
            "The region centre (40.0, 40.0, 900.0 mm) lies outside the PET",
        ),
        (base + ["--at", "40,40", "--rule", "41%"], "'40,40' is not a point X,Y,Z in mm"),
        (
            base + ["--at", "120,120,120", "--rule", "suv4.0"],
            "No voxel of the region reaches the threshold 4.00",
        ),
        (
            ["pet", "metrics", "--store", root, "--subject", "IT03-0404"],
            "There is no subject IT03-0404 in this store.",
        ),
        (
            ["pet", "candidates", "--store", root, "--subject", "IT03-0001"],
            "PERCIST needs a reference region",
        ),
    ]
    cases.append(
        (
            [
                "pet",
                "candidates",
                "--store",
                root,
                "--subject",
                "IT03-0001",
                "--rule",
                "suv2.5",
                "--accept",
                9,
            ],
            "There is no candidate 9; the ranks run from 1 to 3.",
        )
    )
    for args, sentence in cases:
        result = palmares(*args)
        assert result.exit_code != 0 and sentence in result.output, (args, result.output)
        assert "Traceback" not in result.output
    assert cubes_store.rows("segmentations") == []


def test_percist_on_the_demo_liver_then_candidates_from_the_stored_sphere(
    palmares, tmp_path_factory, tmp_path
):
    source, manifest = demo_store(tmp_path_factory)
    root = writable_copy(source, tmp_path / "store")
    subject = manifest.subjects[2]
    liver = ",".join(str(v) for v in subject.liver_reference["centre_mm"])
    lesion = subject.lesions[0]  # liver metastasis, SUVmax 8.28
    at = ",".join(str(v) for v in lesion["centre_mm"])
    result = palmares(
        "pet", "threshold", "--store", root, "--subject", subject.code, "--at", at, "--rule", "percist",
        "--liver-at", liver, "--box-mm", 40, "--lesion", lesion["name"], "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    reference = out["parameters"]["reference"]
    assert reference["kind"] == "liver" and reference["suv_mean"] == pytest.approx(
        subject.liver_reference["suv_mean"], rel=1e-6
    )
    assert out["parameters"]["threshold_suv"] == pytest.approx(
        1.5 * reference["suv_mean"] + 2 * reference["suv_sd"]
    )
    assert out["parameters"]["sul"]["lbm_formula"] == "Janmahasatian 2005"
    assert out["suv_max"] == pytest.approx(lesion["expected"]["suv_max"], abs=1e-4)
    assert out["version"] == 1  # the first of this reader's chain (the planted mask is another reader's)
    assert out["voxel_count"] <= lesion["expected"]["pet_voxels"]

    result = palmares(
        "pet", "candidates", "--store", root, "--subject", subject.code, "--json", "--accept", 1
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert (
        out["parameters"]["reference"]["source"]
        == "the liver reference of the last PERCIST threshold on this PET"
    )
    assert out["parameters"]["reference"]["centre_mm"] == subject.liver_reference["centre_mm"]
    assert out["candidates"][0]["suv_max"] == pytest.approx(lesion["expected"]["suv_max"], abs=1e-4)
    assert out["accepted"][0]["lesion"] == "PET lesion 1"
    with Store.open(root, create=False) as store:
        (accepted,) = store.rows("segmentations", "id = ?", [out["accepted"][0]["segmentation_id"]])
        assert accepted["method"].startswith("PET whole-body candidate")
        assert accepted["voxel_count"] == out["candidates"][0]["voxel_count"]
    text = palmares("pet", "candidates", "--store", root, "--subject", subject.code).output
    assert "likely physiological (bladder)" in text

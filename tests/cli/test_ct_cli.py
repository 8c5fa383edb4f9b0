"""`palmares ct threshold | grow` and `palmares segmentation clean`, end to end on a copy of the demo
store: the planted lesions (core/demo/phantom.py, with their label maps and the manifest) are the truth
each result is checked against, with SimpleITK or scipy.ndimage doing the same on the same arrays."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from click.testing import CliRunner
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))

from palmares_desktop.cli import exit_codes  # noqa: E402
from palmares_desktop.cli.main import _register, main  # noqa: E402
from palmares_desktop.core.store import Store  # noqa: E402
from tests.core.demo_fixture import demo_store, writable_copy  # noqa: E402

CT_SPACING_ZYX = (2.5, 1.5625, 1.5625)  # core/demo/dicom_writer.py CT_GRID
VOXEL_MM3 = float(np.prod(CT_SPACING_ZYX))


@pytest.fixture
def palmares():
    _register()
    runner = CliRunner()
    return lambda *args: runner.invoke(main, [str(a) for a in args])


@pytest.fixture
def demo_copy(tmp_path_factory, tmp_path):
    source, manifest = demo_store(tmp_path_factory)
    return writable_copy(source, tmp_path / "store"), manifest


def _xyz(point) -> str:
    return ",".join(f"{v:g}" for v in point)


def _planted(manifest, subject, lesion) -> np.ndarray:
    """The planted lesion's CT voxels, from the demo's own label map (not from the store)."""
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(manifest.path(subject.ct_labels))))
    return labels == lesion["label"]


def _stored_mask(root: Path, segmentation_id: str) -> np.ndarray:
    with Store.open(root, create=False) as store:
        (row,) = store.rows("segmentations", "id = ?", [segmentation_id])
        return sitk.GetArrayFromImage(sitk.ReadImage(str(store.path(row["mask_path"])))) > 0


def _count(root: Path) -> int:
    with Store.open(root, create=False) as store:
        return len(store.rows("segmentations"))


def _ellipsoid_area(a: float, b: float, c: float, p: float = 1.6075) -> float:
    """Knud Thomsen's approximation of an ellipsoid's surface area (within about 1 %)."""
    return 4 * math.pi * (((a * b) ** p + (a * c) ** p + (b * c) ** p) / 3) ** (1 / p)


def _voxel_tolerance_ml(lesion) -> float:
    """A shell of half a voxel (geometric mean side) over the planted lesion's surface, in mL."""
    return _ellipsoid_area(*lesion["radii_mm"]) * 0.5 * VOXEL_MM3 ** (1 / 3) / 1000.0


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def _ball(mm: float, spacing_zyx) -> np.ndarray:
    reach = [int(mm // s) for s in spacing_zyx]
    offsets = np.meshgrid(
        *[np.arange(-r, r + 1) * s for r, s in zip(reach, spacing_zyx, strict=True)], indexing="ij"
    )
    return sum(o**2 for o in offsets) <= mm**2 + 1e-6


def _json(result) -> dict:
    assert result.exit_code == exit_codes.OK, result.output
    return json.loads(result.stdout)


def test_hu_threshold_and_region_grow_recover_the_planted_liver_metastases(palmares, demo_copy):
    root, manifest = demo_copy
    for subject in manifest.subjects:
        lesion = next(x for x in subject.lesions if x["name"] == "liver metastasis")  # 38 HU in 60 HU liver
        planted = _planted(manifest, subject, lesion)
        assert planted.sum() == lesion["expected"]["ct_voxels"]
        planted_ml = planted.sum() * VOXEL_MM3 / 1000.0
        centre = _xyz(lesion["centre_mm"])
        # Halfway between lesion and liver (49 HU), after smoothing the 12 HU noise away (sigma 1 mm)
        out = _json(
            palmares(
                "ct", "threshold", "--store", root, "--subject", subject.code, "--at", centre,
                "--hu", "-100,49", "--box-mm", 60, "--seed-at", centre, "--smooth-mm", 1,
                "--lesion", lesion["name"], "--json",
            )
        )  # fmt: skip
        assert {
            "segmentation_id",
            "version",
            "lesion",
            "voxel_count",
            "volume_ml",
            "method",
            "parameters",
        } <= set(out)
        assert out["lesion"] == "liver metastasis" and out["version"] == 1 and not out["kept_existing"]
        assert out["method"] == "CT threshold: -100 to 49 HU, smoothed 1 mm"
        p = out["parameters"]
        assert (p["lower_hu"], p["upper_hu"], p["smooth_mm"]) == (-100, 49, 1.0)
        assert p["region"] == {"centre_mm": lesion["centre_mm"], "size_mm": 60.0, "shape": "box"}
        assert not p["touches_region_edge"]
        mask = _stored_mask(root, out["segmentation_id"])
        assert mask.sum() == out["voxel_count"] and out["volume_ml"] == pytest.approx(
            mask.sum() * VOXEL_MM3 / 1000
        )
        assert abs(out["volume_ml"] - planted_ml) < _voxel_tolerance_ml(lesion), (
            subject.code,
            out["volume_ml"],
        )
        assert _dice(mask, planted) > 0.9
        # HU statistics of the original (unsmoothed) CT inside the mask, planted 38 HU + noise
        ct = _ct_array(root, subject.code)
        assert out["hu_mean"] == pytest.approx(float(ct[mask].mean()))
        assert out["hu_mean"] == pytest.approx(38.0, abs=3.0)

        out = _json(
            palmares(
                "ct", "grow", "--store", root, "--subject", subject.code, "--seed-at", centre,
                "--tolerance-hu", 11, "--max-radius-mm", 30, "--smooth-mm", 1, "--lesion", "grown", "--json",
            )
        )  # fmt: skip
        p = out["parameters"]
        assert out["method"] == "CT region grow: ±11 HU within 30 mm, smoothed 1 mm"
        assert p["upper_hu"] - p["lower_hu"] == pytest.approx(22.0) and not p["touches_max_radius"]
        assert p["seed_mean_hu"] == pytest.approx(38.0, abs=3.0)
        grown = _stored_mask(root, out["segmentation_id"])
        assert abs(out["volume_ml"] - planted_ml) < _voxel_tolerance_ml(lesion), (
            subject.code,
            out["volume_ml"],
        )
        assert _dice(grown, planted) > 0.9

    text = palmares(
        "ct", "threshold", "--store", root, "--subject", subject.code, "--at", centre, "--hu", "-100,49",
        "--seed-at", centre, "--smooth-mm", 1, "--lesion", lesion["name"],
    ).output  # fmt: skip
    assert f"{subject.code} lesion 'liver metastasis': same mask as CT segmentation version 1" in text
    assert "HU mean" in text and "Recorded as reader:" in text


def _ct_array(root: Path, code: str) -> np.ndarray:
    from palmares_desktop.core.segmentation.labelmaps import find_series

    with Store.open(root, create=False) as store:
        series = find_series(store, store.subject_by_code(code).id, "CT")
        return sitk.GetArrayFromImage(sitk.ReadImage(str(store.path(series.pixel_path))))


def test_clean_up_grow_shrink_holes_islands_combine_and_interpolate(palmares, demo_copy, tmp_path):
    root, manifest = demo_copy
    subject = manifest.subjects[1]  # IT99-0002: two liver metastases
    node = next(x for x in subject.lesions if x["name"] == "mediastinal node")
    planted = _planted(manifest, subject, node)
    base = ["segmentation", "clean", "--store", root, "--subject", subject.code, "--modality", "ct", "--json"]

    # grow 2 mm: the version in use is the planted mask (another reader's); the new version is the 2 mm
    # shell SimpleITK's signed Maurer distance map (in mm) finds around it, voxel for voxel
    out = _json(palmares(*base, "--lesion", "mediastinal node", "--grow-mm", 2))
    assert out["method"] == "clean-up: grow 2 mm" and out["voxels_before"] == planted.sum()
    assert out["parameters"]["from_method"] == "planted (demo phantom)"
    image = sitk.GetImageFromArray(planted.astype(np.uint8))
    image.SetSpacing(CT_SPACING_ZYX[::-1])
    distance = sitk.GetArrayFromImage(
        sitk.SignedMaurerDistanceMap(
            image, insideIsPositive=False, squaredDistance=False, useImageSpacing=True
        )
    )
    shell = (distance > 0) & (distance <= 2.0 + 1e-6)
    grown = _stored_mask(root, out["segmentation_id"])
    assert np.array_equal(grown, planted | shell)
    assert out["volume_ml"] - planted.sum() * VOXEL_MM3 / 1000 == pytest.approx(
        shell.sum() * VOXEL_MM3 / 1000
    )
    # on 1.5625 x 1.5625 x 2.5 mm a 2 mm ball reaches the 4 in-plane neighbours and no other slice
    assert out["parameters"]["reach_mm_zyx"] == [0.0, 1.5625, 1.5625]
    cross = np.zeros((1, 3, 3), bool)
    cross[0, 1, :] = cross[0, :, 1] = True
    assert np.array_equal(grown, ndimage.binary_dilation(planted, cross))

    # shrink 2 mm of that: the erosion by the same ball (here the planted ellipsoid comes back)
    out = _json(palmares(*base, "--lesion", "mediastinal node", "--shrink-mm", 2))
    assert out["version"] == 2 and out["parameters"]["from_version"] == 1
    shrunk = _stored_mask(root, out["segmentation_id"])
    assert np.array_equal(shrunk, ndimage.binary_erosion(grown, _ball(2.0, CT_SPACING_ZYX), border_value=0))
    assert np.array_equal(shrunk, planted)  # a convex digital ellipsoid: the closing is itself

    # a thresholded lesion with noise holes and islands: fill holes vs SimpleITK, islands vs its relabel
    liver = next(x for x in subject.lesions if x["name"] == "liver metastasis")
    centre = _xyz(liver["centre_mm"])
    raw = _json(
        palmares(
            "ct", "threshold", "--store", root, "--subject", subject.code, "--at", centre, "--hu", "10,70",
            "--sphere-mm", 24, "--lesion", "raw", "--json",
        )
    )  # fmt: skip
    raw_mask = _stored_mask(root, raw["segmentation_id"])
    out = _json(palmares(*base, "--lesion", "raw", "--fill-holes"))
    filled = (
        sitk.GetArrayFromImage(sitk.BinaryFillhole(sitk.GetImageFromArray(raw_mask.astype(np.uint8)))) > 0
    )
    assert np.array_equal(_stored_mask(root, out["segmentation_id"]), filled)
    out = _json(palmares(*base, "--lesion", "raw", "--fill-holes", "--per-slice"))
    per_slice = np.stack([ndimage.binary_fill_holes(plane) for plane in filled])
    assert np.array_equal(_stored_mask(root, out["segmentation_id"]), per_slice)
    assert out["method"] == "clean-up: fill holes (per axial slice)"

    # combine: the two planted liver metastases of this subject are disjoint
    first, second = (_planted(manifest, subject, x) for x in subject.lesions if x["organ"] == "liver")
    out = _json(palmares(*base, "--lesion", "liver metastasis", "--union", "liver metastasis 2"))
    assert (
        out["voxel_count"] == first.sum() + second.sum()
        and out["method"] == "clean-up: union with 'liver metastasis 2'"
    )
    assert np.array_equal(_stored_mask(root, out["segmentation_id"]), first | second)
    out = _json(palmares(*base, "--lesion", "liver metastasis", "--subtract", "liver metastasis 2"))
    assert np.array_equal(_stored_mask(root, out["segmentation_id"]), first)
    out = _json(palmares(*base, "--lesion", "liver metastasis", "--remove-islands"))
    assert out["parameters"]["islands_removed"] == 0 and out["kept_existing"] and out["unchanged"]

    # interpolate: a reader drew every other slice of the planted metastasis
    slices = np.flatnonzero(first.any(axis=(1, 2)))
    drawn = set(slices[::2]) | {slices[-1]}
    sparse = first.copy()
    sparse[[k for k in slices if k not in drawn]] = False
    path = tmp_path / "sparse.nrrd"
    reference = sitk.ReadImage(str(manifest.path(subject.ct_labels)))
    out_image = sitk.GetImageFromArray(sparse.astype(np.uint8))
    out_image.CopyInformation(reference)
    sitk.WriteImage(out_image, str(path))
    added = palmares(
        "segmentation", "add", path, "--store", root, "--subject", subject.code, "--modality", "ct",
        "--lesion", "sparse", "--no-features",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    out = _json(palmares(*base, "--lesion", "sparse", "--interpolate"))
    interpolated = _stored_mask(root, out["segmentation_id"])
    assert out["parameters"]["drawn_slices"] == sorted(int(k) for k in drawn)
    assert np.array_equal(interpolated[sorted(drawn)], first[sorted(drawn)])  # drawn slices untouched
    filled_in = [k for k in slices if k not in drawn]
    assert _dice(interpolated[filled_in], first[filled_in]) > 0.85
    # linear between drawn slices undercuts the ellipsoid's convex profile a little (552 of 599 voxels)
    assert abs(int(interpolated.sum()) - int(first.sum())) < 0.1 * first.sum()


def test_bad_input_is_refused_in_words_with_the_right_exit_code(palmares, demo_copy):
    root, manifest = demo_copy
    subject = manifest.subjects[2]
    lesion = subject.lesions[0]
    centre = _xyz(lesion["centre_mm"])
    made = palmares(
        "pet", "threshold", "--store", root, "--subject", subject.code, "--at", centre, "--rule", "41%",
        "--box-mm", 40, "--lesion", "PET only",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    before = _count(root)
    threshold = ["ct", "threshold", "--store", root, "--subject", subject.code]
    clean = ["segmentation", "clean", "--store", root, "--subject", subject.code, "--modality", "ct"]
    refused, usage = exit_codes.REFUSED, exit_codes.USAGE
    cases = [
        (threshold + ["--at", "0,0,400", "--hu", "-100,200"], refused,
         "The region centre (0.0, 0.0, 400.0 mm) lies outside the CT, which spans -249.2, -249.2, -300.0 to "
         "249.2, 249.2, -2.5 mm."),
        (threshold + ["--at", centre, "--hu", "500,600", "--box-mm", 20], refused,
         f"No voxel between 500 and 600 HU around {', '.join(f'{v:.1f}' for v in lesion['centre_mm'])} mm "
         "(a 20 mm box)."),
        (threshold + ["--at", centre, "--hu", "200,-100"], usage, "give the lower bound first, e.g. -100,200"),
        (threshold + ["--at", centre, "--hu", "-100"], usage, "'-100' is not an HU range LO,HI"),
        (threshold + ["--at", "1,2", "--hu", "-100,200"], usage, "'1,2' is not a point X,Y,Z in mm"),
        (threshold + ["--at", centre, "--hu", "-100,200", "--box-mm", 20, "--sphere-mm", 20], usage,
         "Give --box-mm or --sphere-mm, not both."),
        (threshold + ["--at", centre, "--hu", "-100,200", "--seed-at", "0,0,-150"], refused,
         "The seed lies outside the region"),
        (["ct", "grow", "--store", root, "--subject", subject.code, "--seed-at", "0,0,-900", "--tolerance-hu", 20],
         refused, "The seed (0.0, 0.0, -900.0 mm) lies outside the CT"),
        (["ct", "grow", "--store", root, "--subject", "IT99-0404", "--seed-at", centre, "--tolerance-hu", 20],
         refused, "There is no subject IT99-0404 in this store."),
        (clean + ["--lesion", "nope", "--fill-holes"], refused,
         f"{subject.code} has no lesion 'nope'; its lesions are 'PET only', 'axillary node', "),
        (clean + ["--lesion", "PET only", "--fill-holes"], refused,
         f"Lesion 'PET only' of {subject.code} has no final CT segmentation on this series (it is drawn on "
         "another grid: PET)."),
        (clean + ["--lesion", "liver metastasis", "--union", "PET only"], refused,
         f"Lesion 'PET only' of {subject.code} has no final CT segmentation on this series (it is drawn on "
         "another grid: PET)."),
        (clean + ["--lesion", "liver metastasis", "--shrink-mm", 30], refused,
         "Shrink 30 mm leaves lesion 'liver metastasis' with no voxel; nothing was saved."),
        (clean + ["--lesion", "liver metastasis", "--interpolate"], refused, "there is no gap to interpolate"),
        (clean + ["--lesion", "liver metastasis", "--intersect", "liver metastasis"], refused,
         "cannot be combined with itself"),
        (clean + ["--lesion", "liver metastasis", "--grow-mm", 2, "--fill-holes"], usage,
         "Give exactly one of --fill-holes, --remove-islands"),
        (clean + ["--lesion", "liver metastasis"], usage, "Give exactly one of"),
        (clean + ["--lesion", "liver metastasis", "--grow-mm", 0], refused, "The distance (0 mm) must be positive."),
        (clean + ["--lesion", "liver metastasis", "--grow-mm", 2, "--per-slice"], usage,
         "--per-slice goes with --fill-holes."),
    ]  # fmt: skip
    for args, code, sentence in cases:
        result = palmares(*args)
        assert result.exit_code == code and sentence in result.output, (args, result.output)
        assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    assert _count(root) == before  # nothing was written by a refusal

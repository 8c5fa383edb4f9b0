"""Viewing placement and its inverse: stored demo masks (CT and PET grids), an oblique grid and an
LPS-flipped grid come back bit for bit, and every voxel keeps its world position."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from palmares_desktop.core.placement import Placement

FIXTURE = Path(__file__).parents[1] / "fixtures" / "store_v1" / "store_v1_db_masks.tar.xz"


@pytest.fixture(scope="module")
def demo_masks(tmp_path_factory) -> dict[str, sitk.Image]:
    """The real demo label maps, one image per grid (demo CT 320x320x120, demo PET 128x128x75), each
    of its 4 lesions with its own label value 1..4."""
    root = tmp_path_factory.mktemp("v1")
    with tarfile.open(FIXTURE) as archive:
        archive.extractall(root, filter="data")
    out: dict[str, sitk.Image] = {}
    for path in sorted((root / "masks").glob("*.nrrd")):
        image = sitk.ReadImage(str(path))
        key = {(320, 320, 120): "CT", (128, 128, 75): "PT"}[image.GetSize()]
        if key in out:
            label = int(sitk.GetArrayViewFromImage(out[key]).max()) + 1
            image = sitk.Maximum(out[key], sitk.Cast(image, out[key].GetPixelID()) * label)
        out[key] = image
    return out


def _oblique(image: sitk.Image) -> sitk.Image:
    """The same voxels on a grid turned 20 degrees about z and 10 degrees about x (a tilted gantry)."""
    a, b = np.radians(20.0), np.radians(10.0)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    out = sitk.Image(image)
    out.SetDirection(tuple((rz @ rx).ravel()))
    return out


def _flipped(image: sitk.Image) -> sitk.Image:
    """The same object stored RAS-like: x and y indices running right->left' and anterior<-posterior."""
    out = sitk.Flip(image, (True, True, False))
    assert out.GetDirection()[0] == -1.0 and out.GetDirection()[4] == -1.0
    return out


def _permuted(image: sitk.Image) -> sitk.Image:
    """Stored with its axes permuted (a sagittal-first acquisition): index i runs along z."""
    out = sitk.PermuteAxes(image, (2, 0, 1))
    assert out.GetDirection() != image.GetDirection()
    return out


def _grids(demo_masks) -> dict[str, sitk.Image]:
    ct, pt = demo_masks["CT"], demo_masks["PT"]
    return {
        "CT": ct,
        "PT": pt,
        "oblique CT": _oblique(ct),
        "flipped PT": _flipped(pt),
        "oblique flipped PT": _oblique(_flipped(pt)),
        "permuted PT": _permuted(pt),
    }


@pytest.mark.parametrize(
    "name", ["CT", "PT", "oblique CT", "flipped PT", "oblique flipped PT", "permuted PT"]
)
def test_placement_then_inverse_returns_the_stored_mask_bit_for_bit(demo_masks, name):
    image = _grids(demo_masks)[name]
    placement = Placement.of(image)
    display = placement.to_display(image)
    back = placement.to_stored(display.copy())
    stored = sitk.GetArrayViewFromImage(image)
    assert sorted(np.unique(stored)) == [0, 1, 2, 3, 4]  # four real lesions
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(back), stored)
    assert sitk.GetArrayViewFromImage(back).dtype == stored.dtype
    assert (back.GetSize(), back.GetSpacing(), back.GetOrigin(), back.GetDirection()) == (
        image.GetSize(),
        image.GetSpacing(),
        image.GetOrigin(),
        image.GetDirection(),
    )


@pytest.mark.parametrize(
    "name", ["CT", "PT", "oblique CT", "flipped PT", "oblique flipped PT", "permuted PT"]
)
def test_every_voxel_keeps_its_world_position(demo_masks, name):
    image = _grids(demo_masks)[name]
    placement = Placement.of(image)
    display = placement.to_display(image)
    # The lesion's voxels and the eight corners of the grid, through both routes.
    points = [tuple(int(v) for v in p) for p in np.argwhere(display)[::7]]
    points += [
        tuple((n - 1) * c for n, c in zip(display.shape, corner, strict=True))
        for corner in np.ndindex(2, 2, 2)
    ]
    for point in points:
        stored = placement.display_to_stored_index(point).astype(int)
        assert display[point] == sitk.GetArrayViewFromImage(image)[tuple(stored[::-1])]
        world_lps = image.TransformIndexToPhysicalPoint([int(v) for v in stored])
        np.testing.assert_allclose(placement.display_to_world(point), world_lps[::-1], atol=1e-9)
    worlds = placement.display_to_world(np.array(points, float))
    np.testing.assert_allclose(placement.world_to_display(worlds), points, atol=1e-9)


def test_display_is_read_as_radiologists_read_axial_slices(demo_masks):
    for name, image in _grids(demo_masks).items():
        placement = Placement.of(image)
        step = placement.linear  # columns: world (z, y, x) mm per display index step
        # Slices go superior (+z), rows go posterior (+y: anterior up), columns go to the patient's
        # left (+x: patient's right on the screen's left); oblique grids within their tilt.
        assert all(step[a, a] > 0.9 * placement.scale[a] for a in range(3)), name
        assert (placement.rotate is None) == (name in ("CT", "PT", "flipped PT", "permuted PT")), name
    ct = Placement.of(demo_masks["CT"])
    assert ct.scale == (2.5, 1.5625, 1.5625) and ct.translate == (-300.0, -249.21875, -249.21875)
    flipped = Placement.of(_flipped(demo_masks["PT"]))
    # The flipped grid is shown exactly as the original: the same array at the same place.
    np.testing.assert_array_equal(
        flipped.to_display(_flipped(demo_masks["PT"])),
        Placement.of(demo_masks["PT"]).to_display(demo_masks["PT"]),
    )
    assert flipped.translate == (-298.0, -254.0, -254.0) and flipped.scale == (4.0, 4.0, 4.0)


def test_rotate_and_scale_compose_to_the_affine_and_rotate_is_a_rotation(demo_masks):
    placement = Placement.of(_oblique(_flipped(demo_masks["PT"])))
    rotate = placement.rotate
    assert rotate is not None
    np.testing.assert_allclose(rotate @ np.diag(placement.scale), placement.affine[:3, :3], atol=1e-12)
    np.testing.assert_allclose(rotate @ rotate.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotate) == pytest.approx(1.0)


def test_wrong_shapes_are_refused(demo_masks):
    placement = Placement.of(demo_masks["PT"])
    with pytest.raises(ValueError, match="Display shape"):
        placement.to_stored(np.zeros((3, 3, 3), np.uint8))
    with pytest.raises(ValueError, match="stored grid"):
        placement.to_display(np.zeros((3, 3, 3), np.uint8))

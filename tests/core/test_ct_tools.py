"""The CT tools (core/ct/hu_tools.py) and the mask clean-up (core/segmentation/cleanup.py), each checked
against an independent computation on the same arrays (SimpleITK filters, scipy.ndimage with an
explicit structuring element) or a hand-checkable geometric case; region growing also on the demo CT."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from palmares_desktop.core.ct.hu_tools import (
    CtToolError,
    CtVolume,
    Region,
    RegionVoxels,
    hu_statistics,
    hu_threshold,
    region_grow,
    smooth_hu,
)
from palmares_desktop.core.segmentation import cleanup
from palmares_desktop.core.segmentation.cleanup import CleanupError
from palmares_desktop.core.segmentation.geometry import Grid
from palmares_desktop.core.segmentation.labelmaps import find_series

FULL = np.ones((3, 3, 3), dtype=bool)


def _radius_mm(shape, spacing_zyx, centre_zyx):
    axes = [(np.arange(n) - c) * s for n, c, s in zip(shape, centre_zyx, spacing_zyx, strict=True)]
    zz, yy, xx = np.meshgrid(*axes, indexing="ij", sparse=True)
    return np.sqrt(zz**2 + yy**2 + xx**2)


def _ball(mm, spacing_zyx):
    """The structuring element of all offsets whose centre lies within `mm` (independent of cleanup)."""
    reach = [int(mm // s) for s in spacing_zyx]
    offsets = np.meshgrid(
        *[np.arange(-r, r + 1) * s for r, s in zip(reach, spacing_zyx, strict=True)], indexing="ij"
    )
    return sum(o**2 for o in offsets) <= mm**2 + 1e-6


def _sitk(array, spacing_zyx=(1.0, 1.0, 1.0)):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in spacing_zyx[::-1]))
    return image


def _connected_threshold(values, lower, upper, seed_zyx):
    """SimpleITK's ConnectedThreshold, full (26) connectivity, seeded at the same voxel."""
    grow = sitk.ConnectedThresholdImageFilter()
    grow.SetLower(float(lower))
    grow.SetUpper(float(upper))
    grow.SetSeedList([tuple(int(v) for v in seed_zyx[::-1])])
    grow.SetConnectivity(sitk.ConnectedThresholdImageFilter.FullConnectivity)
    return sitk.GetArrayFromImage(grow.Execute(_sitk(values.astype(np.float64)))) > 0


@pytest.fixture
def noisy_ct():
    """A 40x64x64 CT at 2.5 x 0.8 x 0.8 mm: 60 HU 'liver', a 40 HU sphere of 8 mm radius, noise SD 4."""
    rng = np.random.default_rng(11)
    spacing = (2.5, 0.8, 0.8)
    shape = (40, 64, 64)
    centre = (20.0, 32.0, 32.0)
    hu = np.full(shape, 60.0)
    hu[_radius_mm(shape, spacing, centre) <= 8.0] = 40.0
    hu += rng.normal(0, 4.0, shape)
    return np.rint(hu).astype(np.int16), spacing, tuple(int(c) for c in centre)


# ----------------------------------------------------------------------------- threshold
def test_hu_threshold_in_a_box_is_sitk_connected_threshold_with_the_same_seed(noisy_ct):
    hu, spacing, seed = noisy_ct
    box = (slice(8, 33), slice(10, 55), slice(12, 50))
    result = hu_threshold(hu, -100, 50, box, seed)
    crop = hu[box]
    local = tuple(s - b.start for s, b in zip(seed, box, strict=True))
    expected = np.zeros(hu.shape, bool)
    expected[box] = _connected_threshold(crop, -100, 50, local)
    assert result.mask.sum() > 100 and np.array_equal(result.mask, expected)
    assert result.parameters["keep"] == "given voxel" and result.parameters["connectivity"].startswith("26")


def test_hu_threshold_without_a_seed_keeps_the_largest_component_as_sitk_relabel_does(noisy_ct):
    hu, _, _ = noisy_ct
    box = (slice(0, 40), slice(0, 64), slice(0, 64))
    result = hu_threshold(hu, 45, 70, box)  # the 'liver' and many noise specks inside the sphere
    within = sitk.BinaryThreshold(_sitk(hu), 45, 70)
    labels = sitk.RelabelComponent(sitk.ConnectedComponent(within, True))  # 1 = the largest
    assert np.array_equal(result.mask, sitk.GetArrayFromImage(labels) == 1)
    assert result.parameters["keep"] == "largest component"


def test_hu_threshold_in_a_sphere_region_around_a_point_in_mm(noisy_ct):
    hu, spacing, seed = noisy_ct
    grid = Grid(hu.shape[::-1], spacing[::-1], (-25.6, -25.6, -50.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    ct = CtVolume(hu, grid)
    centre_mm = ct.point_of(seed)
    region = Region(centre_mm, 30.0, "sphere").voxels(ct)
    # the sphere: every voxel centre within 15 mm of the point, and nothing else
    distance = _radius_mm(hu.shape, spacing, seed)
    assert region.inside.sum() == (distance <= 15.0).sum()
    result = hu_threshold(hu, 0, 50, region, seed)
    inside_full = distance <= 15.0
    values = np.where(inside_full, hu, 10_000)  # outside the sphere: never in range
    assert np.array_equal(result.mask, _connected_threshold(values, 0, 50, seed))
    # the 40 HU sphere (radius 8 mm) is recovered, less noise outliers: planted 8 mm sphere volume
    planted = (distance <= 8.0).sum()
    assert abs(int(result.mask.sum()) - planted) <= 0.02 * planted
    assert not result.parameters["touches_region_edge"]


def test_hu_threshold_smoothed_equals_the_threshold_of_the_whole_scan_smoothed(noisy_ct):
    hu, spacing, seed = noisy_ct
    box = (slice(10, 30), slice(15, 50), slice(15, 50))
    result = hu_threshold(hu, -100, 50, box, seed, spacing_zyx=spacing, smooth_mm=1.0)
    smoothed = ndimage.gaussian_filter(hu.astype(np.float32), [1.0 / s for s in spacing], mode="nearest")
    assert np.array_equal(smooth_hu(hu, 1.0, spacing), smoothed)
    expected = np.zeros(hu.shape, bool)
    local = tuple(s - b.start for s, b in zip(seed, box, strict=True))
    expected[box] = _connected_threshold(smoothed[box], -100, 50, local)
    assert np.array_equal(result.mask, expected)


def test_hu_threshold_refusals_are_sentences(noisy_ct):
    hu, spacing, seed = noisy_ct
    grid = Grid(hu.shape[::-1], spacing[::-1], (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    ct = CtVolume(hu, grid)
    region = Region((25.6, 25.6, 50.0), 20.0).voxels(ct)
    with pytest.raises(CtToolError, match=r"^No voxel between 500 and 600 HU around 25.6, 25.6, 50.0 mm"):
        hu_threshold(hu, 500, 600, region)
    with pytest.raises(
        CtToolError, match="lies outside the CT, which spans 0.0, 0.0, 0.0 to 50.4, 50.4, 97.5 mm"
    ):
        Region((25.6, 25.6, 900.0), 20.0).voxels(ct)
    with pytest.raises(CtToolError, match=r"^The seed voxel has \d+ HU, outside 55 to 80 HU"):
        hu_threshold(hu, 55, 80, region, seed)
    with pytest.raises(CtToolError, match="lower bound first"):
        hu_threshold(hu, 50, -100, region)
    far = (0, 0, 0)
    with pytest.raises(CtToolError, match="The seed lies outside the region"):
        hu_threshold(hu, 0, 100, region, far)


def test_hu_statistics_are_those_of_the_original_hu(noisy_ct):
    hu, _, seed = noisy_ct
    mask = np.zeros(hu.shape, bool)
    mask[seed[0], 30:35, 30:35] = True
    stats = hu_statistics(hu, mask, 0.0016)
    values = hu[mask].astype(float)
    assert stats["voxel_count"] == 25 and stats["volume_ml"] == pytest.approx(0.04)
    assert stats["hu_mean"] == pytest.approx(values.mean()) and stats["hu_sd"] == pytest.approx(values.std())
    assert (stats["hu_min"], stats["hu_max"]) == (values.min(), values.max())


# ----------------------------------------------------------------------------- region growing
def test_region_grow_is_sitk_connected_threshold_with_the_same_bounds_inside_the_sphere(noisy_ct):
    hu, spacing, seed = noisy_ct
    z, y, x = seed
    mean = hu[z - 1 : z + 2, y - 1 : y + 2, x - 1 : x + 2].astype(float).mean()  # the rule, by hand
    result = region_grow(hu, seed, 10.0, 25.0, spacing)
    assert result.parameters["seed_mean_hu"] == pytest.approx(mean)
    assert (result.parameters["lower_hu"], result.parameters["upper_hu"]) == pytest.approx(
        (mean - 10, mean + 10)
    )
    inside = _radius_mm(hu.shape, spacing, seed) <= 25.0
    expected = _connected_threshold(np.where(inside, hu, -10_000), mean - 10, mean + 10, seed)
    assert np.array_equal(result.mask, expected)
    planted = (_radius_mm(hu.shape, spacing, seed) <= 8.0).sum()
    assert abs(int(result.mask.sum()) - planted) <= 0.02 * planted


def test_region_grow_cannot_leak_past_the_maximum_radius(noisy_ct):
    hu, spacing, seed = noisy_ct
    result = region_grow(hu, seed, 40.0, 12.0, spacing)  # +-40 HU: the whole 'liver' qualifies
    distance = _radius_mm(hu.shape, spacing, seed)
    assert distance[result.mask].max() <= 12.0 + 1e-6
    assert result.mask.sum() == (distance <= 12.0 + 1e-6).sum()  # every voxel of the sphere is in range
    assert result.parameters["touches_max_radius"]


def test_region_grow_on_the_demo_ct_matches_sitk(demo):
    store, manifest = demo
    subject = manifest.subjects[2]
    series = find_series(store, store.subject_by_code(subject.code).id, "CT")
    image = sitk.ReadImage(str(store.path(series.pixel_path)))
    ct = CtVolume(sitk.GetArrayFromImage(image), Grid.of(image))
    lesion = next(x for x in subject.lesions if x["name"] == "vertebral metastasis")  # blastic, 480 HU
    seed = ct.index_of(lesion["centre_mm"])
    result = region_grow(ct.hu, seed, 150.0, 20.0, ct.spacing_zyx)
    z, y, x = seed
    mean = ct.hu[z - 1 : z + 2, y - 1 : y + 2, x - 1 : x + 2].astype(float).mean()
    # SimpleITK on the whole CT, with the voxels outside the sphere excluded
    inside = _radius_mm(ct.hu.shape, ct.spacing_zyx, seed) <= 20.0
    box = tuple(slice(max(v - 14, 0), v + 15) for v in seed)  # the sphere's bounding box, for speed
    local = tuple(v - b.start for v, b in zip(seed, box, strict=True))
    expected = np.zeros(ct.hu.shape, bool)
    expected[box] = _connected_threshold(np.where(inside, ct.hu, -10_000)[box], mean - 150, mean + 150, local)
    assert np.array_equal(result.mask, expected)
    planted = lesion["expected"]["ct_voxels"]
    assert abs(int(result.mask.sum()) - planted) <= 0.05 * planted  # 480 HU in 200 HU marrow


def test_region_grow_refusals(noisy_ct):
    hu, spacing, seed = noisy_ct
    with pytest.raises(CtToolError, match="lies outside the CT"):
        region_grow(hu, (99, 0, 0), 10, 20, spacing)
    with pytest.raises(CtToolError, match="cannot be negative"):
        region_grow(hu, seed, -1, 20, spacing)
    with pytest.raises(CtToolError, match="must be positive"):
        region_grow(hu, seed, 10, 0, spacing)
    spike = hu.copy()
    spike[seed] = 2000
    with pytest.raises(CtToolError, match=r"is more than 10 HU from the mean of its neighbourhood"):
        region_grow(spike, seed, 10, 20, spacing)


# ----------------------------------------------------------------------------- holes and islands
def test_fill_holes_3d_and_per_slice():
    spacing = (1.0, 1.0, 1.0)
    r = _radius_mm((31, 31, 31), spacing, (15, 15, 15))
    shell = (r <= 12) & (r > 9)
    filled = cleanup.fill_holes(shell)
    assert np.array_equal(filled, r <= 12)
    assert np.array_equal(
        filled, sitk.GetArrayFromImage(sitk.BinaryFillhole(_sitk(shell.astype(np.uint8)))) > 0
    )
    # a tube open along z: no 3-D hole, but a hole on every slice
    yy, xx = np.mgrid[-15:16, -15:16]
    ring = (xx**2 + yy**2 <= 144) & (xx**2 + yy**2 > 81)
    tube = np.repeat(ring[None], 10, axis=0)
    assert np.array_equal(cleanup.fill_holes(tube), tube)
    disc = xx**2 + yy**2 <= 144
    assert np.array_equal(cleanup.fill_holes(tube, per_slice=True), np.repeat(disc[None], 10, axis=0))


def test_remove_islands_keeps_the_largest_or_those_above_a_volume():
    spacing = (2.0, 1.0, 1.0)  # 2 mm3 voxels
    mask = np.zeros((20, 40, 40), bool)
    mask[2:8, 2:12, 2:12] = True  # 600 voxels, 1.2 mL
    mask[12:15, 20:30, 20:30] = True  # 300 voxels, 0.6 mL
    mask[18, 38, 38] = True  # a speck
    mask[15, 30, 30] = True  # touches the second block by a corner only: 26-connected to it
    largest = cleanup.remove_islands(mask)
    labels = sitk.RelabelComponent(sitk.ConnectedComponent(_sitk(mask.astype(np.uint8)), True))
    assert np.array_equal(largest, sitk.GetArrayFromImage(labels) == 1) and largest.sum() == 600
    kept = cleanup.remove_islands(mask, 0.5, spacing)
    assert kept.sum() == 600 + 301 and not kept[18, 38, 38]
    with pytest.raises(
        CleanupError, match=r"No part of the mask is as large as 5 mL \(the largest is 1.2 mL\)"
    ):
        cleanup.remove_islands(mask, 5.0, spacing)
    with pytest.raises(CleanupError, match="is empty"):
        cleanup.remove_islands(np.zeros((3, 3, 3), bool))


# ----------------------------------------------------------------------------- grow and shrink
SPACING = (2.5, 0.8, 0.8)  # z, y, x: 0.8 x 0.8 mm pixels, 2.5 mm slices


def _sphere(radius, shape=(24, 70, 70), centre=(11.7, 34.3, 35.1)):
    return _radius_mm(shape, SPACING, centre) <= radius


def test_grow_mm_is_the_dilation_by_the_mm_ball_and_gives_the_larger_sphere():
    small = _sphere(10.0)
    grown = cleanup.grow_mm(small, 5.0, SPACING)
    assert np.array_equal(grown, ndimage.binary_dilation(small, _ball(5.0, SPACING)))
    voxel = float(np.prod(SPACING))
    expected = 4.0 / 3.0 * math.pi * 15.0**3
    # within voxel tolerance: the surface moved by less than half the smallest voxel side on average
    tolerance = 4.0 * math.pi * 15.0**2 * min(SPACING) / 2
    assert abs(grown.sum() * voxel - expected) < tolerance
    assert abs(grown.sum() * voxel - _sphere(15.0).sum() * voxel) < tolerance
    # not a voxel count: 5 mm is 6 pixels in-plane but only 2 slices along z
    assert cleanup.reach_mm(5.0, SPACING) == (5.0, pytest.approx(4.8), pytest.approx(4.8))
    slices, grown_slices = cleanup.drawn_slices(small), cleanup.drawn_slices(grown)
    assert (grown_slices[0], grown_slices[-1]) == (slices[0] - 2, slices[-1] + 2)


def test_shrink_mm_is_the_erosion_by_the_mm_ball_and_gives_the_smaller_sphere():
    big = _sphere(15.0)
    shrunk = cleanup.shrink_mm(big, 5.0, SPACING)
    assert np.array_equal(shrunk, ndimage.binary_erosion(big, _ball(5.0, SPACING), border_value=0))
    voxel = float(np.prod(SPACING))
    tolerance = 4.0 * math.pi * 10.0**2 * min(SPACING) / 2
    assert abs(shrunk.sum() * voxel - 4.0 / 3.0 * math.pi * 10.0**3) < tolerance
    # a mask touching the scan's edge shrinks from that edge too (outside counts as background)
    edge = np.zeros((5, 10, 10), bool)
    edge[:, :, :4] = True
    assert np.array_equal(
        cleanup.shrink_mm(edge, 1.0, (1.0, 1.0, 1.0)),
        ndimage.binary_erosion(edge, _ball(1.0, (1, 1, 1)), border_value=0),
    )
    assert not cleanup.shrink_mm(_sphere(2.0), 5.0, SPACING).any()


def test_grow_then_shrink_is_a_closing_that_keeps_the_mask():
    mask = _sphere(8.0) | _sphere(6.0, centre=(11.7, 34.3, 52.0))
    closed = cleanup.shrink_mm(cleanup.grow_mm(mask, 3.0, SPACING), 3.0, SPACING)
    assert np.array_equal(
        closed, ndimage.binary_closing(np.pad(mask, 8), _ball(3.0, SPACING))[8:-8, 8:-8, 8:-8]
    )
    assert (closed | mask).sum() == closed.sum()


def test_combine_and_its_refusals():
    a, b = _sphere(8.0), _sphere(8.0, centre=(11.7, 34.3, 45.0))
    assert np.array_equal(cleanup.combine(a, b, "union"), np.logical_or(a, b))
    assert np.array_equal(cleanup.combine(a, b, "intersection"), np.logical_and(a, b))
    assert np.array_equal(cleanup.combine(a, b, "subtract"), a & ~b)
    assert cleanup.combine(a, b, "subtract").sum() + cleanup.combine(a, b, "intersection").sum() == a.sum()
    with pytest.raises(CleanupError, match=r"different grids \(70x70x24 and 70x70x23 voxels\)"):
        cleanup.combine(a, b[:-1], "union")
    with pytest.raises(CleanupError, match="not one of union, intersection, subtract"):
        cleanup.combine(a, b, "xor")


# ----------------------------------------------------------------------------- interpolation
def test_interpolation_between_a_small_and_a_large_disc_gives_the_middle_disc():
    yy, xx = np.mgrid[-30:31, -30:31]
    mask = np.zeros((11, 61, 61), bool)
    mask[0] = xx**2 + yy**2 <= 10**2
    mask[10] = xx**2 + yy**2 <= 20**2
    out = cleanup.interpolate_slices(mask)
    assert np.array_equal(out[0], mask[0]) and np.array_equal(out[10], mask[10])
    radius = [math.sqrt(out[k].sum() / math.pi) for k in range(11)]
    assert radius[5] == pytest.approx(15.0, abs=0.5)
    assert (out[5] ^ (xx**2 + yy**2 <= 15**2)).sum() <= 8  # the disc of radius 15, to a few edge pixels
    for k in range(11):
        assert radius[k] == pytest.approx(10.0 + k, abs=0.6)  # linear in between, not a nearest copy
    assert not np.array_equal(out[5], mask[0]) and not np.array_equal(out[5], mask[10])


def test_interpolation_follows_a_moving_disc():
    yy, xx = np.mgrid[0:40, 0:80]
    mask = np.zeros((5, 40, 80), bool)
    mask[0] = (xx - 20) ** 2 + (yy - 20) ** 2 <= 100
    mask[4] = (xx - 28) ** 2 + (yy - 20) ** 2 <= 100  # overlapping slices, as a reader draws them
    out = cleanup.interpolate_slices(mask, (3.0, 0.5, 0.5))
    for k in (1, 2, 3):
        centroid_x = np.argwhere(out[k])[:, 1].mean()
        assert centroid_x == pytest.approx(20 + 2 * k, abs=0.3)
        assert out[k].sum() == pytest.approx(mask[0].sum(), rel=0.15)


def test_interpolation_refusals():
    mask = np.zeros((6, 10, 10), bool)
    mask[2, 3:6, 3:6] = True
    with pytest.raises(CleanupError, match="at least two drawn axial slices; the mask has 1"):
        cleanup.interpolate_slices(mask)
    mask[3, 3:6, 3:6] = True
    with pytest.raises(CleanupError, match="Every slice from 2 to 3 is drawn"):
        cleanup.interpolate_slices(mask)


def test_region_voxels_of_a_plain_box():
    region = RegionVoxels.of_box((slice(2, 5), slice(None), slice(-3, None)), (10, 8, 6))
    assert region.box == (slice(2, 5), slice(0, 8), slice(3, 6)) and region.inside.shape == (3, 8, 3)
    assert region.local((2, 0, 3)) == (0, 0, 0) and region.local((5, 0, 3)) is None

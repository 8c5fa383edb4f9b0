"""The companion views' planes, MIP, fusion and status line (core/planes.py), on grids checked by hand."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from palmares_desktop.core import planes
from palmares_desktop.core.pet.display import fuse, fused_pixel
from palmares_desktop.core.placement import Placement
from palmares_desktop.core.planes import PLANES, PlaneGrid, Volume


def _volume(size_xyz, spacing, origin, fill=None) -> Volume:
    array = (
        np.arange(np.prod(size_xyz[::-1]), dtype=np.float32).reshape(size_xyz[::-1]) if fill is None else fill
    )
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    placement = Placement.of(image)
    return Volume(placement.to_display(image), placement)


def test_a_coronal_plane_is_the_slice_through_the_point_with_superior_at_the_top():
    ct = _volume((6, 5, 4), (1.0, 2.0, 3.0), (-10.0, 20.0, -100.0))  # x 6 @1 mm, y 5 @2 mm, z 4 @3 mm
    grid = PlaneGrid.covering(PLANES["coronal"], ct)
    assert (grid.rows, grid.cols, grid.pixel_mm) == (10, 6, 1.0)  # z 9 mm at 1 mm pixels, x 5 mm
    plane = planes.sample(ct, grid, fixed_mm=20.0 + 2 * 2)  # y index 2
    assert plane[0, 0] == ct.data[3, 2, 0]  # top row: the most superior slice (z index 3)
    assert plane[-1, -1] == ct.data[0, 2, 5]
    assert plane[:, 0].tolist() == sorted(plane[:, 0].tolist(), reverse=True)  # z falls down the rows
    sagittal = PlaneGrid.covering(PLANES["sagittal"], ct)
    plane = planes.sample(ct, sagittal, fixed_mm=-10.0 + 4)  # x index 4
    assert plane[0, 0] == ct.data[3, 0, 4] and plane[0, -1] == ct.data[3, 4, 4]  # anterior on the left


def test_ct_and_pet_on_different_grids_put_one_world_point_on_one_pixel():
    marker = (-40.0, 12.0, 30.0)  # (z, y, x) mm
    fine = np.zeros((40, 40, 40), np.float32)
    coarse = np.zeros((10, 10, 10), np.float32)
    ct = _volume((40, 40, 40), (2.0, 2.0, 2.0), (-20.0, -20.0, -80.0), fine)
    pet = _volume((10, 10, 10), (8.0, 8.0, 8.0), (-22.0, -22.0, -84.0), coarse)
    for volume in (ct, pet):
        index, inside = volume.indices(np.array(marker))
        assert inside
        volume.data[tuple(index)] = 1.0
    grid = PlaneGrid.covering(PLANES["coronal"], ct)
    row, col = (int(round(v)) for v in grid.pixel_of(marker))
    assert planes.sample(ct, grid, marker[1])[row, col] == 1.0
    assert planes.sample(pet, grid, marker[1], outside=0.0)[row, col] == 1.0
    assert planes.sample(ct, grid, marker[1] + 10)[row, col] == 0.0  # another plane
    np.testing.assert_allclose(grid.world_of(row, col, marker), marker, atol=grid.pixel_mm / 2)
    assert pet.value_at(marker) == 1.0 and pet.value_at((500.0, 0.0, 0.0)) is None


def test_the_mip_is_the_maximum_along_anterior_posterior():
    pet = _volume((5, 6, 7), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    grid = PlaneGrid.covering(PLANES["coronal"], pet)
    mip = planes.projection(pet, grid)
    expected = pet.data.max(axis=1)[::-1]  # (z, x), superior first
    np.testing.assert_array_equal(mip, expected)
    grey = planes.mip_grey(np.array([[0.0, 3.0, 12.0]]), suv_max=6.0)
    assert grey[0, :, 0].tolist() == [1.0, 0.5, 0.0]  # white background, black at and above the top


def test_plane_fusion_is_a_translucent_overlay_checked_by_hand():
    # A two-entry table: SUV 0 transparent black, SUV >= max opaque pure red.
    table = np.array([[0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 1.0]], dtype=np.float32)
    base = planes.grey(np.array([[50.0, 450.0, np.nan]]), (-150.0, 250.0))  # 0.5 grey, white, outside
    assert base[0, :, 0].tolist() == [0.5, 1.0, 0.0]
    fused = fuse(base, np.array([[0.0, 9.0, 9.0]]), 6.0, table, 0.6)
    np.testing.assert_allclose(fused[0, 0], [0.5, 0.5, 0.5])  # cold: the CT untouched
    np.testing.assert_allclose(fused[0, 1], [1.0, 0.4, 0.4])  # hot over white bone: 0.4 white + 0.6 red
    np.testing.assert_allclose(fused[0, 2], [0.6, 0.0, 0.0])  # hot outside the CT: red over black
    for r in range(3):  # the room's one-pixel form is the same formula
        np.testing.assert_allclose(fused_pixel(base[0, r], [0.0, 9.0, 9.0][r], 6.0, table, 0.6), fused[0, r])


def test_outline_keeps_only_the_boundary():
    mask = np.zeros((6, 6), bool)
    mask[1:5, 1:5] = True
    edge = planes.outline(mask)
    assert edge.sum() == 12 and not edge[2:4, 2:4].any() and edge[1, 1]


@pytest.mark.parametrize(
    ("top", "ticks"),
    [
        (6.0, [0, 2, 4, 6]),
        (9.3, [0, 2, 4, 6, 8, 9.3]),
        (2.5, [0, 0.5, 1, 1.5, 2, 2.5]),
        (0.7, [0, 0.2, 0.4, 0.6, 0.7]),
    ],
)
def test_colour_bar_ticks_are_round_and_end_at_the_display_maximum(top, ticks):
    assert planes.colour_bar_ticks(top) == pytest.approx(ticks)


def test_the_status_line_reads_position_hu_and_suv():
    assert planes.readout((-206.0, -18.0, -26.0), 41.6, 9.2234) == (
        "x -26.0  y -18.0  z -206.0 mm (LPS)    HU 42    SUVbw 9.22"
    )
    assert planes.readout((0, 0, 0), None, 1234.5, "BQML").endswith("PET 1234 BQML")
    assert planes.readout((0, 0, 0), None, None).endswith("outside the images")

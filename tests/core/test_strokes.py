"""3D sphere brush/eraser and 2D/3D fill of the reading session (core/segmentation/strokes.py).

The sphere's voxels are checked against an independent computation: SimpleITK's own physical points
of the stored grid (PhysicalPointSource) and its own point -> index rounding, on an anisotropic and
an oblique grid, stored with flipped axes. Every stroke is one undo step that restores the mask bit
for bit, and the autosave clock sees it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from palmares_desktop.core.segmentation.strokes import StrokeError, sphere_stroke, voxels_ml
from palmares_desktop.core.session import ReadingSession

SIZE = (48, 40, 26)  # stored (nx, ny, nz)
SPACING = (0.7, 0.9, 2.5)  # anisotropic: thick axial slices, non-square pixels


def _grid(direction=(-1, 0, 0, 0, -1, 0, 0, 0, 1)) -> sitk.Image:
    image = sitk.Image(SIZE, sitk.sitkUInt8)
    image.SetSpacing(SPACING)
    image.SetOrigin((12.5, -30.25, 101.0))
    image.SetDirection(direction)
    return image


def _oblique() -> sitk.Image:
    a = math.radians(20.0)  # tilted about z: the display keeps a rotate, distances stay in mm
    return _grid((math.cos(a), -math.sin(a), 0, math.sin(a), math.cos(a), 0, 0, 0, 1))


def _sitk_ball(image: sitk.Image, click_lps, diameter_mm: float) -> np.ndarray:
    """Independent: the stored voxels whose SimpleITK physical point lies within the radius of the
    physical point of the voxel SimpleITK puts the click in; (z, y, x) bool, stored order."""
    centre_index = image.TransformPhysicalPointToIndex(tuple(float(v) for v in click_lps))
    centre = np.asarray(image.TransformIndexToPhysicalPoint(centre_index))
    points = sitk.PhysicalPointSource(
        sitk.sitkVectorFloat64, image.GetSize(), image.GetOrigin(), image.GetSpacing(), image.GetDirection()
    )
    xyz = sitk.GetArrayFromImage(points)  # (z, y, x, 3) LPS mm
    return np.linalg.norm(xyz - centre, axis=-1) <= diameter_mm / 2 + 1e-9


def _stored(session: ReadingSession) -> np.ndarray:
    return sitk.GetArrayFromImage(session.stored_mask())


def _world_zyx(image: sitk.Image, index_xyz, offset=(0.0, 0.0, 0.0)) -> tuple[float, float, float]:
    x, y, z = np.asarray(image.TransformContinuousIndexToPhysicalPoint(
        tuple(float(i) + o for i, o in zip(index_xyz, offset, strict=True))
    ))  # fmt: skip
    return z, y, x


@pytest.mark.parametrize("grid", [_grid, _oblique], ids=["anisotropic", "oblique"])
@pytest.mark.parametrize(
    ("index", "offset", "diameter"),
    [
        ((24, 20, 13), (0.0, 0.0, 0.0), 12.0),  # in the middle, on a voxel centre
        ((20, 17, 10), (0.3, -0.4, 0.45), 9.0),  # a click off the voxel centre: the voxel under it
        ((1, 38, 1), (0.0, 0.0, 0.0), 15.0),  # at a corner: the sphere is cut by the grid's edge
        ((30, 10, 5), (0.0, 0.0, 0.0), 0.5),  # smaller than a voxel: the voxel under the click
    ],
)
def test_sphere_voxels_match_an_independent_distance_check_in_mm(grid, index, offset, diameter):
    image = grid()
    session = ReadingSession.for_mask({}, None, image)
    click = _world_zyx(image, index, offset)
    changed = session.paint_sphere(click, diameter)
    expected = _sitk_ball(image, tuple(reversed(click)), diameter)
    assert changed == int(expected.sum()) > 0
    np.testing.assert_array_equal(_stored(session) == 1, expected)
    assert int(session.mask.sum()) == int(expected.sum())
    assert session.history.depth == 1 and session.dirty  # one undo step; autosave sees it


def test_a_sphere_is_round_in_mm_not_in_voxels():
    image = _grid()
    session = ReadingSession.for_mask({}, None, image)
    centre = _world_zyx(image, (24, 20, 13))
    session.paint_sphere(centre, 20.0)
    count = int(session.mask.sum())
    volume = count * math.prod(SPACING)
    assert voxels_ml(session.placement, count) == pytest.approx(volume / 1000.0)
    assert volume == pytest.approx(4 / 3 * math.pi * 10.0**3, rel=0.05)  # 4.19 mL, within 5 %
    stored = _stored(session)
    z, y, x = (np.flatnonzero(stored.any(axis=axes)) for axes in ((1, 2), (0, 2), (0, 1)))
    extents_mm = [(a[-1] - a[0]) * s for a, s in zip((x, y, z), SPACING, strict=True)]
    assert extents_mm == pytest.approx([20.0, 20.0, 20.0], abs=max(SPACING))  # same width in mm
    assert len(z) < len(x) / 3  # ...through about a third as many slices as columns


def test_sphere_undo_redo_restore_the_mask_bit_for_bit_and_eraser_erases_a_sphere():
    image = _grid()
    session = ReadingSession.for_mask({}, None, image)
    session.mask[8:18, 10:30, 10:40] = 1  # a block already drawn
    original = session.mask.copy()
    centre = _world_zyx(image, (10, 20, 13))
    assert session.paint_sphere(centre, 14.0) > 0
    painted = session.mask.copy()
    assert int(painted.sum()) > int(original.sum())
    assert session.paint_sphere(centre, 8.0, value=0) > 0  # the sphere eraser
    erased = session.mask.copy()
    expected_hole = _sitk_ball(image, tuple(reversed(centre)), 8.0)
    assert not (_stored(session)[expected_hole]).any()
    assert session.paint_sphere(centre, 8.0, value=0) == 0 and session.history.depth == 2  # no-op
    session.undo()
    np.testing.assert_array_equal(session.mask, painted)
    session.undo()
    np.testing.assert_array_equal(session.mask, original)
    session.redo()
    session.redo()
    np.testing.assert_array_equal(session.mask, erased)


def test_a_drag_of_spheres_is_one_undo_step():
    image = _grid()
    session = ReadingSession.for_mask({}, None, image)
    session.mask[12, 5:10, 5:10] = 1
    original, original_stored = session.mask.copy(), _stored(session) == 1
    stroke = session.begin_stroke()
    expected = original_stored.copy()
    for i in range(10, 36, 3):  # overlapping dabs along a line, as a mouse drag makes them
        centre = _world_zyx(image, (i, 20, 12))
        session.paint_sphere(centre, 6.0, stroke=stroke)
        expected |= _sitk_ball(image, tuple(reversed(centre)), 6.0)
    assert session.history.depth == 0  # nothing recorded until the drag ends...
    assert stroke.end() is not None and session.history.depth == 1  # ...then one step
    np.testing.assert_array_equal(_stored(session) == 1, expected)
    session.undo()
    np.testing.assert_array_equal(session.mask, original)
    assert session.undo() is None
    session.redo()
    np.testing.assert_array_equal(_stored(session) == 1, expected)


def test_a_fast_drag_lays_spheres_along_the_way_without_gaps():
    image = _grid()
    session = ReadingSession.for_mask({}, None, image)
    start, end = _world_zyx(image, (5, 20, 13)), _world_zyx(image, (42, 20, 13))  # 26 mm apart
    stroke = session.begin_stroke()
    session.paint_sphere(start, 6.0, stroke=stroke)
    assert session.paint_sphere(end, 6.0, stroke=stroke, from_world_zyx=start) > 0  # one mouse move
    stroke.end()
    stored = _stored(session) == 1
    assert stored[13, 20, 5:43].all()  # the whole way, not two dabs
    _, pieces = ndimage.label(stored)
    assert pieces == 1 and session.history.depth == 1
    capsule = _sitk_ball(image, tuple(reversed(start)), 6.0)
    for i in range(5, 43):
        capsule |= _sitk_ball(image, tuple(reversed(_world_zyx(image, (i, 20, 13)))), 6.0)
    np.testing.assert_array_equal(stored, capsule)  # the spheres' union along the way, no more


def test_sphere_outside_the_grid_changes_nothing_and_a_bad_diameter_is_refused():
    image = _grid()
    session = ReadingSession.for_mask({}, None, image)
    far = _world_zyx(image, (-40, -40, -40))
    assert session.paint_sphere(far, 10.0) == 0 and not session.dirty
    with pytest.raises(StrokeError, match="positive size in mm"):
        session.paint_sphere(_world_zyx(image, (5, 5, 5)), 0.0)
    with pytest.raises(StrokeError, match="grid"):
        sphere_stroke(np.zeros((3, 3, 3), np.uint8), session.placement, far, 5.0)


# --------------------------------------------------------------------------- fill
def _ring(shape_yx, centre, r_out, r_in) -> np.ndarray:
    yy, xx = np.ogrid[: shape_yx[0], : shape_yx[1]]
    d2 = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2
    return (d2 <= r_out**2) & (d2 > r_in**2)


def _display_world(session: ReadingSession, index_zyx) -> np.ndarray:
    return session.placement.display_to_world(np.asarray(index_zyx, dtype=float))


def test_2d_fill_fills_the_enclosed_hole_on_the_clicked_slice_only():
    session = ReadingSession.for_mask({}, None, _grid())
    ring = _ring(session.mask.shape[1:], (20, 24), 9, 6)
    session.mask[10:14][:, ring] = 1  # the same ring on four slices
    original = session.mask.copy()
    hole = ndimage.binary_fill_holes(ring) & ~ring  # independent: scipy's hole filling
    filled = session.fill(_display_world(session, (12, 20, 24)))
    assert filled.box[0] == slice(12, 13) and filled.changed == int(hole.sum())
    np.testing.assert_array_equal(session.mask[12] == 1, ring | hole)
    np.testing.assert_array_equal(np.delete(session.mask, 12, axis=0), np.delete(original, 12, axis=0))
    assert int(session.mask.sum() - original.sum()) == int(hole.sum()) and session.history.depth == 1
    assert session.dirty
    session.undo()
    np.testing.assert_array_equal(session.mask, original)
    session.redo()
    assert int(session.mask[12].sum()) == int((ring | hole).sum())


def test_2d_fill_is_4_connected_so_a_diagonal_outline_encloses():
    session = ReadingSession.for_mask({}, None, _grid())
    yy, xx = np.ogrid[:40, :48]
    diamond = (np.abs(yy - 20) + np.abs(xx - 24)) == 8  # touching only at corners (8-connected)
    session.mask[5][diamond] = 1
    session.fill(_display_world(session, (5, 20, 24)))
    assert int(session.mask[5].sum()) == int(((np.abs(yy - 20) + np.abs(xx - 24)) <= 8).sum())


def test_2d_fill_refuses_an_open_region_and_a_click_on_the_outline():
    session = ReadingSession.for_mask({}, None, _grid())
    ring = _ring(session.mask.shape[1:], (20, 24), 9, 6)
    ring[20, 15:21] = False  # a gap through the ring's wall: the inside leaks out
    session.mask[7][ring] = 1
    original = session.mask.copy()
    for where, message in [
        ((7, 20, 24), "not enclosed"),  # inside the broken ring
        ((7, 2, 2), "not enclosed"),  # outside every outline
        ((8, 20, 24), "not enclosed"),  # a slice with no outline at all
        ((7, 20, 33), "on the lesion"),  # the ring itself
    ]:
        with pytest.raises(StrokeError, match=message):
            session.fill(_display_world(session, where))
    np.testing.assert_array_equal(session.mask, original)
    assert session.history.depth == 0 and not session.dirty


def test_fill_along_the_slice_edge_the_outline_touches():
    session = ReadingSession.for_mask({}, None, _grid())
    box_outline = np.zeros(session.mask.shape[1:], dtype=bool)
    box_outline[0:8, 0:10] = True
    box_outline[1:7, 1:9] = False  # a closed rectangle drawn against the slice's corner
    session.mask[3][box_outline] = 1
    session.fill(_display_world(session, (3, 4, 4)))
    assert int(session.mask[3].sum()) == 8 * 10
    cup = np.zeros_like(box_outline)
    cup[0:8, 20:30] = True
    cup[0:7, 21:29] = False  # open at the slice's top edge
    session.mask[4][cup] = 1
    with pytest.raises(StrokeError, match="edge of the slice"):
        session.fill(_display_world(session, (4, 3, 25)))


def _shell(shape, centre, r_out, r_in) -> np.ndarray:
    zz, yy, xx = np.ogrid[tuple(slice(0, n) for n in shape)]
    d2 = sum((a - c) ** 2 for a, c in zip((zz, yy, xx), centre, strict=True))
    return (d2 <= r_out**2) & (d2 > r_in**2)


def test_3d_fill_fills_the_enclosed_volume_and_refuses_an_open_one():
    session = ReadingSession.for_mask({}, None, _grid())
    shell = _shell(session.mask.shape, (13, 20, 24), 9, 6)
    session.mask[shell] = 1
    original = session.mask.copy()
    inside = ndimage.binary_fill_holes(shell) & ~shell  # independent: scipy's 3-D hole filling
    session.fill(_display_world(session, (13, 20, 24)), three_d=True)
    np.testing.assert_array_equal(session.mask == 1, shell | inside)
    assert session.history.depth == 1
    session.undo()
    np.testing.assert_array_equal(session.mask, original)
    # A hole through the top of the shell: the inside is no longer enclosed in 3-D...
    session.mask[20:24, 19:22, 23:26] = 0
    with pytest.raises(StrokeError, match="edge of the volume"):
        session.fill(_display_world(session, (13, 20, 24)), three_d=True)
    # ...but the middle slice's ring still encloses its disc, so the 2-D fill works there.
    session.fill(_display_world(session, (13, 20, 24)))
    disc = ndimage.binary_fill_holes(shell[13])
    np.testing.assert_array_equal(session.mask[13] == 1, disc)

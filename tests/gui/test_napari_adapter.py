"""The napari adapter places layers with core.placement, and an edit painted on screen maps back onto
the stored grid voxel for voxel, on an oblique, flipped grid too."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk


def _oblique_flipped_mask() -> sitk.Image:
    """A 40x30x20 label map stored with x and y reversed and turned 15 degrees about z."""
    a = np.zeros((20, 30, 40), np.uint8)
    a[8:12, 10:14, 5:9] = 1
    image = sitk.GetImageFromArray(a)
    image.SetSpacing((0.8, 0.9, 3.0))
    image.SetOrigin((30.0, 20.0, -50.0))
    t = np.radians(15.0)
    turn = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    image.SetDirection(tuple((turn @ np.diag([-1.0, -1.0, 1.0])).ravel()))
    return image


def test_painting_in_the_viewer_maps_back_to_the_stored_voxel(qtbot):
    from palmares_desktop.gui.napari_adapter import EmbeddedViewer, stored_image, volume_from_sitk

    image = _oblique_flipped_mask()
    volume = volume_from_sitk(image)
    assert volume.rotate is not None and volume.scale == (3.0, 0.9, 0.8)
    viewer = EmbeddedViewer("placement")
    try:
        layer = viewer.add_labels(volume, "lesion", "#00e5ff")
        # napari's own data -> world transform is the placement's, voxel for voxel.
        for index in [(0, 0, 0), (19, 29, 39), (9, 11, 7)]:
            np.testing.assert_allclose(
                layer.data_to_world(index), volume.placement.display_to_world(index), atol=1e-9
            )
        # Paint one voxel through napari, at the display index of a world point.
        world_lps = image.TransformIndexToPhysicalPoint((30, 4, 15))
        display_index = np.rint(layer.world_to_data(world_lps[::-1])).astype(int)
        layer.brush_size = 1
        layer.paint(tuple(display_index), 7, refresh=False)
        back = stored_image(volume, layer.data)
        stored = sitk.GetArrayViewFromImage(back)
        assert stored[15, 4, 30] == 7 and int((stored == 7).sum()) == 1
        assert int((stored == 1).sum()) == 64  # the original lesion, untouched
        assert (back.GetOrigin(), back.GetDirection(), back.GetSpacing()) == (
            image.GetOrigin(),
            image.GetDirection(),
            image.GetSpacing(),
        )
    finally:
        viewer.close()
        qtbot.wait(10)


def test_napari_painting_and_undo_go_through_the_one_session_history(qtbot):
    from palmares_desktop.core.session import ReadingSession
    from palmares_desktop.gui.napari_adapter import EmbeddedViewer

    image = _oblique_flipped_mask()
    session = ReadingSession.for_mask({"code": "IT03-0001"}, None, image)
    original = session.mask.copy()
    viewer = EmbeddedViewer("session")
    try:
        layer = viewer.add_session_labels(session, "working mask", "#00e5ff")
        assert np.shares_memory(layer.data, session.mask)
        layer.brush_size = 3
        layer.paint((10, 12, 20), 2, refresh=False)  # a brush dab: napari's masked atom
        layer.data_setitem((np.array([3, 4]), np.array([5, 6]), np.array([7, 8])), 9)  # index atoms
        dab = int((session.mask == 2).sum())
        assert dab >= 5 and int((session.mask == 9).sum()) == 2
        assert len(layer._undo_history) == 0 and session.history.can_undo  # one history: the session's
        painted = session.mask.copy()
        layer.undo()  # what napari's Ctrl+Z calls
        assert int((session.mask == 9).sum()) == 0 and int((session.mask == 2).sum()) == dab
        layer.undo()
        np.testing.assert_array_equal(session.mask, original)
        assert session.dirty  # the autosave clock saw the edits
        layer.redo()
        layer.redo()
        np.testing.assert_array_equal(session.mask, painted)
        stored = sitk.GetArrayFromImage(session.stored_mask())  # (a view would outlive the image)
        assert int((stored == 2).sum()) == dab and int((stored == 9).sum()) == 2
        # Every painted voxel lands on the stored voxel at the same world point.
        for display_index in np.argwhere(painted == 9):
            i, j, k = session.placement.display_to_stored_index(display_index).astype(int)
            assert stored[k, j, i] == 9
        # A drag: napari groups its dabs into one item and emits after writing them; one undo step.
        steps = session.history.depth
        with layer.block_history():
            layer.paint((10, 12, 21), 4, refresh=False)
            layer.paint((10, 12, 23), 5, refresh=False)
        assert session.history.depth == steps + 1 and int((session.mask == 5).sum()) >= 5
        layer.undo()
        np.testing.assert_array_equal(session.mask, painted)
    finally:
        viewer.close()
        qtbot.wait(10)

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

"""Masks travel with their full geometry: the direct NRRD reader of the export gives exactly what
SimpleITK reads (voxels, size, spacing, origin, direction), and other layouts fall back to SimpleITK."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from palmares_desktop.core.exchange.package import _read_mask, _read_nrrd


def test_the_direct_mask_reader_matches_simpleitk_on_an_oblique_grid(tmp_path):
    rng = np.random.default_rng(3)
    array = (rng.random((7, 9, 11)) > 0.7).astype(np.uint8) * 3
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.8, 1.1, 2.5))
    image.SetOrigin((-120.5, 33.25, -400.0))
    c, s = np.cos(0.3), np.sin(0.3)
    image.SetDirection((c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0))
    path = tmp_path / "mask.nrrd"
    sitk.WriteImage(image, str(path), useCompression=True)
    fast = _read_nrrd(path)
    assert fast is not None
    voxels, geometry = fast
    assert np.array_equal(voxels, array)
    assert geometry["size"] == [11, 9, 7]
    assert np.allclose(geometry["spacing"], image.GetSpacing())
    assert np.allclose(geometry["origin"], image.GetOrigin())
    assert np.allclose(geometry["direction"], image.GetDirection())
    # another layout (NIfTI) is read through SimpleITK, with the same geometry
    other = tmp_path / "mask.nii.gz"
    sitk.WriteImage(image, str(other))
    slow_voxels, slow = _read_mask(other)
    assert np.array_equal(slow_voxels, array) and np.allclose(
        slow["direction"], image.GetDirection(), atol=1e-6
    )

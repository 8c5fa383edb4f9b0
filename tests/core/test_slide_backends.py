"""Every real slide in ../shared/data/wsi_*: backend, levels, sizes, MPP, and each level's pixels
against an independent reader (tifffile pages vs OpenSlide; wsidicom or our frame reader vs pydicom)."""

from __future__ import annotations

import io

import numpy as np
import openslide
import pydicom
import pytest
import tifffile
from PIL import Image

from palmares_desktop.core.slides.reader import SlideError, open_slide, read_region, require_mpp

SLIDES = {  # relative path -> (backend, levels (h, w), mpp, objective, associated)
    "wsi_svs/CMU-1-Small-Region.svs": (
        "tifffile",
        [(2967, 2220)],
        0.499,
        20.0,
        ["label", "macro", "thumbnail"],
    ),
    "wsi_ome_tiff/CMU-1-Small-Region.derived-pyramid.ome.tif": (
        "tifffile",
        [(2967, 2220), (1483, 1110), (741, 555)],
        0.499,
        None,
        [],
    ),
    "wsi_tiny_fixtures_openslide/boxes.tiff": (
        "tifffile",
        [(250, 300), (125, 150), (62, 75), (31, 37)],
        None,
        None,
        [],
    ),
    "wsi_tiny_fixtures_openslide/small.svs": ("tifffile", [(16, 16)], 0.499, 20.0, ["thumbnail"]),
    "wsi_tiny_fixtures_openslide/boxes_0.dcm": ("wsidicom", [(16, 16)], 0.499, 20.0, ["thumbnail"]),
    # pydicom-converted TCGA slide: no functional groups, so wsidicom refuses it and no pixel size exists.
    "wsi_dicom/pathml_small_dicom_TCGA-XK-AAJU.dcm": ("dicom-frames", [(2638, 3236)], None, None, []),
}


@pytest.mark.parametrize("relative", sorted(SLIDES))
def test_levels_sizes_and_mpp(shared_data, relative):
    backend, levels, mpp, objective, associated = SLIDES[relative]
    info = open_slide(shared_data / relative)
    assert info.backend == backend
    assert info.levels == levels
    assert (info.width, info.height) == (levels[0][1], levels[0][0])
    assert info.objective_power == objective
    assert sorted(info.associated) == associated
    if mpp is None:
        assert info.mpp_x is None and info.mpp_y is None
        with pytest.raises(SlideError, match="no known pixel size"):
            require_mpp(info)
    else:
        assert require_mpp(info) == pytest.approx((mpp, mpp))
        assert info.magnification == "20x"


def _tiff_level_pages(path):
    with tifffile.TiffFile(path) as tif:
        return [level.asarray()[..., :3] for level in tif.series[0].levels]


@pytest.mark.parametrize(
    "relative",
    [
        "wsi_svs/CMU-1-Small-Region.svs",
        "wsi_ome_tiff/CMU-1-Small-Region.derived-pyramid.ome.tif",
        "wsi_tiny_fixtures_openslide/boxes.tiff",
        "wsi_tiny_fixtures_openslide/small.svs",
    ],
)
def test_tiff_tiles_equal_whole_pages_and_openslide(shared_data, relative):
    path = shared_data / relative
    pages = _tiff_level_pages(path)
    slide = openslide.OpenSlide(str(path))
    for level, page in enumerate(pages):
        h, w = min(512, page.shape[0]), min(512, page.shape[1])
        y, x = (page.shape[0] - h) // 2, (page.shape[1] - w) // 2  # unaligned: crosses tile edges
        tile = read_region(path, level, x, y, w, h)
        np.testing.assert_array_equal(tile, page[y : y + h, x : x + w])
        if level < slide.level_count and slide.level_dimensions[level] == (page.shape[1], page.shape[0]):
            # OpenSlide sees the same level (it does not see OME SubIFD levels): same decoded pixels.
            ref = np.asarray(slide.read_region((0, 0), level, (w, h)))[..., :3]
            np.testing.assert_array_equal(read_region(path, level, 0, 0, w, h), ref)


def test_dicom_through_wsidicom_equals_pydicom_frame_decode(shared_data):
    path = shared_data / "wsi_tiny_fixtures_openslide" / "boxes_0.dcm"
    frame = pydicom.dcmread(path).pixel_array  # one 64x64 frame holding the 16x16 matrix
    np.testing.assert_array_equal(read_region(path, 0, 0, 0, 16, 16), frame[:16, :16])
    np.testing.assert_array_equal(read_region(path, 0, 3, 5, 9, 7), frame[5:12, 3:12])


def test_dicom_frames_equal_an_independent_jpeg_decode(shared_data):
    path = shared_data / "wsi_dicom" / "pathml_small_dicom_TCGA-XK-AAJU.dcm"
    ds = pydicom.dcmread(path)
    frames = list(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames)))
    across = -(-int(ds.TotalPixelMatrixColumns) // 500)  # 7 tiles of 500 per row

    def tile(row, col):  # Pillow's JPEG decoder, not pydicom's pixel handlers
        return np.asarray(Image.open(io.BytesIO(frames[row * across + col])).convert("RGB"))

    np.testing.assert_array_equal(read_region(path, 0, 1000, 500, 500, 500), tile(1, 2))
    # A region across four frames, and the last partial column/row at the matrix edge.
    expected = np.concatenate([np.concatenate([tile(r, c) for c in (0, 1)], axis=1) for r in (0, 1)], axis=0)[
        400:600, 450:550
    ]
    np.testing.assert_array_equal(read_region(path, 0, 450, 400, 100, 200), expected)
    edge = read_region(path, 0, 3200, 2600, 36, 38)
    np.testing.assert_array_equal(edge, tile(5, 6)[100:138, 200:236])

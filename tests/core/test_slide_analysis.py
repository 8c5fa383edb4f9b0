"""Tissue detection, nucleus detection and the stromal TILs helper, on real CMU-1 pixels and on a
synthetic tile with known nuclei; results stored with provenance."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from skimage.draw import disk
from skimage.feature import blob_log

from palmares_desktop.core.slides import analysis
from palmares_desktop.core.slides.cells import detect_cells, detect_in_region
from palmares_desktop.core.slides.detections import Detections, pack_tiles, unpack
from palmares_desktop.core.slides.reader import open_slide
from palmares_desktop.core.slides.regions import Region
from palmares_desktop.core.slides.registry import register_slide
from palmares_desktop.core.slides.stain import RUIFROK, deconvolve
from palmares_desktop.core.slides.tils import TilsError, round_to_5, stromal_tils
from palmares_desktop.core.slides.tissue import detect_tissue
from palmares_desktop.core.store.slide_objects import annotations_of, measurements_of, save_annotations

SVS = ("wsi_svs", "CMU-1-Small-Region.svs")
OME = ("wsi_ome_tiff", "CMU-1-Small-Region.derived-pyramid.ome.tif")


def test_svs_and_ome_tiff_copies_outline_the_same_tissue(shared_data):
    found = {}
    for folder, name in (SVS, OME):
        path = shared_data / folder / name
        found[name] = detect_tissue(path, open_slide(path))
    svs, ome = found[SVS[1]], found[OME[1]]
    # The SVS has one level (block-reduced 16x); the OME pyramid is read at its level 2 (then 4x).
    assert (svs.region["level"], svs.region["reduction"]) == (0, 16)
    assert (ome.region["level"], ome.region["reduction"]) == (2, 4)
    iou = svs.geometry.intersection(ome.geometry).area / svs.geometry.union(ome.geometry).area
    assert iou > 0.9
    # Tissue covers about 0.63 mm² of the 1.64 mm² region; glass is not tissue.
    assert svs.area_mm2 == pytest.approx(0.633, abs=0.03)
    assert svs.geometry.area < 0.6 * 2220 * 2967


def _synthetic_nuclei(n_side: int = 6, pixel_um: float = 0.5):
    """A pink (eosin) tile with hematoxylin-dark round nuclei of radius 3-5 µm at known centres,
    including two touching pairs (watershed must split them)."""
    rng = np.random.default_rng(3)
    size = 400
    od = np.zeros((size, size, 3))
    od[:] = np.array([0.07, 0.99, 0.11]) * 0.25  # eosin background (natural-log OD)
    centres = []
    step = size / (n_side + 1)
    for i in range(n_side):
        for j in range(n_side):
            cy, cx = step * (i + 1) + rng.uniform(-4, 4), step * (j + 1) + rng.uniform(-4, 4)
            centres.append((cy, cx, rng.uniform(3, 5) / pixel_um))
    centres += [(30, 30, 8), (30, 45, 8), (370, 362, 7), (370, 376, 7)]  # two touching pairs
    for cy, cx, r in centres:
        rr, cc = disk((cy, cx), r, shape=(size, size))
        od[rr, cc] += np.array([0.65, 0.70, 0.29]) * 1.2
    rgb = np.clip(np.round(255 * np.exp(-od)), 0, 255).astype(np.uint8)
    return rgb, np.array([(c[1], c[0]) for c in centres])


def test_synthetic_tile_every_known_nucleus_is_found():
    rgb, centres = _synthetic_nuclei()
    region = Region(rgb, 1000, 2000, 0, 1, 1.0, 0.5)
    found = detect_in_region(region, np.ones(rgb.shape[:2], bool), RUIFROK)
    assert len(found) == len(centres) == 40
    known = centres + (1000, 2000)  # level-0 pixels
    distance = np.linalg.norm(found.centroids[:, None, :] - known[None, :, :], axis=2)
    assert distance.min(axis=0).max() < 1.5  # every known nucleus within 1.5 px of a detection
    assert len(set(distance.argmin(axis=1))) == 40  # one detection per nucleus
    area = found.column("area_um2")
    assert area.min() > 0.8 * np.pi * 3**2 and area.max() < 1.2 * np.pi * 5**2
    assert found.column("circularity").min() > 0.8


@pytest.mark.slow  # ~25 s: both detectors on all 6.6 million pixels
def test_cmu1_nuclei_count_within_15_percent_of_skimage_blob_log(shared_data):
    """Independent count: scikit-image's Laplacian-of-Gaussian blob detector on the same hematoxylin
    channel (scaled to its maximum, sigma 3-8 px = nuclear radii 2-5.6 µm, threshold 0.05)."""
    path = shared_data / SVS[0] / SVS[1]
    info = open_slide(path)
    whole = shapely.box(0, 0, info.width, info.height)
    found, read = detect_cells(path, info, whole, RUIFROK)
    assert read["level"] == 0 and read["reduction"] == 1  # 0.499 µm/px is already ~0.5
    from palmares_desktop.core.slides.reader import read_region

    channel = deconvolve(read_region(path, 0, 0, 0, info.width, info.height))[..., 0]
    blobs = blob_log(channel / channel.max(), min_sigma=3, max_sigma=8, num_sigma=6, threshold=0.05)
    assert len(found) == pytest.approx(len(blobs), rel=0.15)
    assert 1500 < len(found) < 2300  # measured here: 1853 nuclei, blob_log 1709
    assert found.column("area_um2").min() >= 10 and found.column("area_um2").max() <= 400


def test_packed_tiles_round_trip_exactly():
    rng = np.random.default_rng(0)
    centres = rng.uniform(0, 10_000, (500, 2))
    ring = np.c_[np.cos(np.linspace(0, 2 * np.pi, 9)), np.sin(np.linspace(0, 2 * np.pi, 9))] * 4.123456789
    outlines = [c + ring for c in centres]
    values = rng.random((500, 2))
    d = Detections.from_outlines(centres, outlines, values, ["a", "b"])
    tiles = pack_tiles(d)
    assert len(tiles) == 25 and sum(t["count"] for t in tiles) == 500
    back = Detections.concatenate([unpack(t["data"], ["a", "b"]) for t in tiles])
    order = np.lexsort((back.centroids[:, 1], back.centroids[:, 0]))
    ref = np.lexsort((centres[:, 1], centres[:, 0]))
    assert np.array_equal(back.centroids[order], centres[ref])
    assert np.array_equal(back.outline(int(order[0])), outlines[int(ref[0])])
    assert np.array_equal(back.measurements[order], values[ref])


def _box(x0, y0, x1, y1, cls):
    return {"geometry": shapely.box(x0, y0, x1, y1), "classification": cls}


def test_stromal_tils_follows_the_working_group_rules():
    objects = [
        _box(0, 0, 1000, 1000, "Invasive tumour"),  # the invasive border
        _box(0, 0, 1000, 500, "Tumour stroma"),
        _box(0, 500, 1000, 1500, "Tumour stroma"),  # half outside the border: not counted
        _box(0, 0, 200, 500, "Lymphocytic infiltrate"),
        _box(800, 0, 1000, 200, "In situ carcinoma"),  # excluded from the stroma
        _box(0, 900, 100, 1000, "Necrosis"),  # excluded
    ]
    stroma_px = 1000 * 1000 - 200 * 200 - 100 * 100
    result = stromal_tils(objects, (0.5, 0.5))
    assert result.stromal_area_mm2 == pytest.approx(stroma_px * 0.25 / 1e6)
    assert result.annotation_percent == pytest.approx(100 * 200 * 500 / stroma_px)
    assert result.annotation_percent_rounded == 10  # 10.42% -> 10
    assert result.border_from == "Invasive tumour outline"
    assert result.small_round_nuclei is None
    assert (round_to_5(12.4), round_to_5(12.5), round_to_5(2.4)) == (10, 15, 0)
    # The aid: lymphocyte-like nuclei with centroids in the stroma (one in the excluded DCIS is not).
    ring = np.c_[np.cos(np.linspace(0, 2 * np.pi, 9)), np.sin(np.linspace(0, 2 * np.pi, 9))] * 8
    centres = np.array([[50, 50], [150, 300], [500, 500], [900, 100]], float)
    d = Detections.from_outlines(
        centres,
        [c + ring for c in centres],
        [[40, 1], [40, 1], [120, 0], [40, 1]],
        ["area_um2", "small_round"],
    )
    aided = stromal_tils(objects, (0.5, 0.5), d)
    assert aided.small_round_nuclei == 2
    assert aided.small_round_density_per_mm2 == pytest.approx(2 / (stroma_px * 0.25 / 1e6))
    with pytest.raises(TilsError, match="no known pixel size"):
        stromal_tils(objects, (None, None))
    with pytest.raises(TilsError, match="Draw the tumour stroma"):
        stromal_tils(objects[:1], (0.5, 0.5))


def test_analyses_stored_with_provenance(store, shared_data):
    path = shared_data / SVS[0] / SVS[1]
    slide = register_slide(store, store.ensure_subject("IT03-0001").id, path)
    outline = analysis.tissue(store, slide, path)
    tissue = annotations_of(store, slide.id)
    assert [t["name"] for t in tissue] == ["Tissue"] and tissue[0]["id"] == outline["annotation_id"]
    assert tissue[0]["measurements"]["tissue"]["read"]["downsample"] == 16.0
    (stroma_id,) = save_annotations(store, slide, [_box(1100, 1800, 1612, 2312, "Tumour stroma")])
    save_annotations(store, slide, [_box(1100, 1800, 1356, 2312, "Lymphocytic infiltrate")])
    (result,) = analysis.cells(store, slide, path, classification="Tumour stroma")
    assert result["annotation_id"] == stroma_id and 50 < result["count"] < 400
    assert result["area_mm2"] == pytest.approx(512 * 512 * 0.499**2 / 1e6)
    assert result["density_per_mm2"] == pytest.approx(result["count"] / result["area_mm2"])
    stored = analysis.detections(store, slide)
    assert len(stored) == result["count"]
    inside = analysis.detections(store, slide, bbox=(0, 0, 100, 100))
    assert len(inside) == 0
    panel = analysis.tils(store, slide, pathologist_percent=45)
    assert panel["aid"]["annotation_percent"] == pytest.approx(50.0)
    assert panel["aid"]["small_round_nuclei"] == result["small_round"]
    (saved,) = measurements_of(store, slide.id, kind="tils")
    assert saved["values"]["stromal_tils_percent"] == 45.0  # the pathologist's value
    assert saved["values"]["aid"]["annotation_percent_rounded"] == 50
    assert saved["provenance"]["slide_sha256"] == slide.sha256


def test_tils_with_outlines_that_only_touch_is_answered_in_words():
    """Neighbouring wand regions touch along an edge: their overlay has lines and no area."""
    import shapely

    from palmares_desktop.core.slides.tils import TilsError, stromal_tils

    tumour, stroma = shapely.box(0, 0, 100, 100), shapely.box(100, 0, 200, 100)
    objects = [
        {"classification": "Invasive tumour", "geometry": tumour},
        {"classification": "Tumour stroma", "geometry": stroma},
        {"classification": "Lymphocytic infiltrate", "geometry": shapely.Point(150, 50)},
    ]
    with pytest.raises(TilsError, match="lies outside the invasive border"):
        stromal_tils(objects, (0.5, 0.5))
    objects[1]["geometry"] = shapely.box(50, 0, 200, 100)  # overlaps half the tumour now
    objects.append({"classification": "Lymphocytic infiltrate", "geometry": shapely.box(50, 0, 75, 100)})
    result = stromal_tils(objects, (0.5, 0.5))
    assert result.annotation_percent == pytest.approx(50.0)  # the point adds no area

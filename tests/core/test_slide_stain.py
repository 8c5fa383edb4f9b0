"""Colour deconvolution (Ruifrok against scikit-image, Macenko on a synthetic tile with known stains)
and per-annotation stain/intensity and `he` radiomics features stored with provenance, on the real
CMU-1 region."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from skimage.color import rgb2hed

from palmares_desktop.core.slides.measure import measure_annotations, measure_geometry, slide_stains
from palmares_desktop.core.slides.reader import open_slide, read_region
from palmares_desktop.core.slides.registry import register_slide
from palmares_desktop.core.slides.stain import RUIFROK, angle_between, deconvolve, macenko
from palmares_desktop.core.store.slide_objects import measurements_of, save_annotations

# Published Macenko-style H&E vectors (unit OD), deliberately unlike Ruifrok's.
H_TRUE = np.array([0.5626, 0.7201, 0.4062])
E_TRUE = np.array([0.2159, 0.8012, 0.5581])


def _synthetic_tile(seed: int = 0, n: int = 256, concentrations: bool = False):
    """Beer-Lambert RGB from known stain vectors: 30% pure H, 30% pure E, 30% mixed, 10% glass."""
    rng = np.random.default_rng(seed)
    pixels = n * n
    conc = np.zeros((pixels, 2))
    kind = rng.choice(4, size=pixels, p=[0.3, 0.3, 0.3, 0.1])
    conc[kind == 0, 0] = rng.uniform(0.3, 1.5, (kind == 0).sum())
    conc[kind == 1, 1] = rng.uniform(0.3, 1.2, (kind == 1).sum())
    conc[kind == 2] = rng.uniform(0.2, 1.0, ((kind == 2).sum(), 2))
    od = conc @ np.vstack([H_TRUE / np.linalg.norm(H_TRUE), E_TRUE / np.linalg.norm(E_TRUE)])
    rgb = 255.0 * np.exp(-od)
    tile = np.clip(np.round(rgb), 0, 255).astype(np.uint8).reshape(n, n, 3)
    return (tile, conc.reshape(n, n, 2)) if concentrations else tile


def test_ruifrok_equals_skimage_rgb2hed_on_real_pixels(shared_data):
    rgb = read_region(shared_data / "wsi_svs" / "CMU-1-Small-Region.svs", 0, 600, 900, 512, 512)
    ours = deconvolve(rgb)
    assert np.abs(ours - rgb2hed(rgb)).max() < 1e-9
    floats = rgb.astype(np.float64) / 255.0
    assert np.abs(deconvolve(floats) - rgb2hed(floats)).max() < 1e-9


def test_macenko_recovers_known_stain_vectors():
    found = macenko(_synthetic_tile())
    assert found.method == "macenko" and found.reason == ""
    assert angle_between(found.hematoxylin, H_TRUE) < 1.0  # degrees
    assert angle_between(found.eosin, E_TRUE) < 1.0
    # Deconvolving another tile with the recovered vectors gives back its concentrations (natural-log
    # OD; ours are in scikit-image's units, OD / ln(1e6)), within 8-bit quantisation.
    tile, truth = _synthetic_tile(seed=1, n=64, concentrations=True)
    conc = deconvolve(tile, found)[..., :2] * np.log(1e6)
    assert np.abs(conc - truth).max() < 0.05
    assert np.abs(deconvolve(tile)[..., :2] * np.log(1e6) - truth).max() > 0.2  # Ruifrok's would not


def test_macenko_falls_back_to_ruifrok_in_words():
    glass = np.full((64, 64, 3), 245, np.uint8)
    found = macenko(glass)
    assert found.method == "ruifrok" and found.hematoxylin == RUIFROK.hematoxylin
    assert found.reason == "Macenko not used: only 0 stained pixels (at least 500 are needed)"


def test_slide_stains_on_real_cmu1_are_hematoxylin_then_eosin(shared_data):
    path = shared_data / "wsi_svs" / "CMU-1-Small-Region.svs"
    stains = slide_stains(path, open_slide(path))
    assert stains.method == "macenko"
    # Close to Ruifrok's textbook vectors (they are estimated, not copied), and in the right order.
    assert angle_between(stains.hematoxylin, RUIFROK.hematoxylin) < 25
    assert angle_between(stains.eosin, RUIFROK.eosin) < 15
    assert angle_between(stains.hematoxylin, RUIFROK.eosin) > angle_between(
        stains.hematoxylin, RUIFROK.hematoxylin
    )


def test_annotation_features_against_an_independent_computation(shared_data):
    path = shared_data / "wsi_svs" / "CMU-1-Small-Region.svs"
    info = open_slide(path)
    box = shapely.box(600, 900, 1112, 1412)  # 512 x 512 level-0 px = 255.5 µm at 0.499 µm/px
    measured = measure_geometry(path, info, box, RUIFROK)
    assert measured.refused == []
    shape = measured.values["shape"]
    assert shape["area_um2"] == pytest.approx(512 * 512 * 0.499**2)
    assert shape["perimeter_um"] == pytest.approx(4 * 512 * 0.499)
    stain = measured.values["stain"]
    read = measured.provenance["stain"]["read"]
    assert read["level"] == 0 and read["reduction"] == 2 and read["mpp_um"] == pytest.approx(0.998)
    # Independently: skimage on the same pixels, 2x2 block means, rounded as the reader does.
    rgb = read_region(path, 0, 600, 900, 512, 512).astype(float)
    rgb = np.round(rgb.reshape(256, 2, 256, 2, 3).mean(axis=(1, 3))).astype(np.uint8)
    hed = rgb2hed(rgb)
    assert stain["pixels"] == 256 * 256
    assert stain["hematoxylin_od_mean"] == pytest.approx(hed[..., 0].mean(), abs=1e-12)
    assert stain["eosin_od_sd"] == pytest.approx(hed[..., 1].std(), abs=1e-12)
    assert stain["red_mean"] == pytest.approx(rgb[..., 0].mean())


def test_measurement_refused_in_words_without_mpp(shared_data):
    path = shared_data / "wsi_tiny_fixtures_openslide" / "boxes.tiff"
    info = open_slide(path)
    measured = measure_geometry(path, info, shapely.box(10, 10, 100, 100), RUIFROK)
    assert "shape" not in measured.values and "radiomics" not in measured.values
    assert "stain" in measured.values
    assert measured.refused == [
        "boxes.tiff has no known pixel size (MPP): areas and lengths in µm or mm² cannot be measured on it.",
        "boxes.tiff has no known pixel size (MPP): H&E radiomics features are computed at 2 µm per pixel, "
        "so they cannot be computed on it.",
    ]


def test_he_radiomics_equal_bare_pyradiomics_on_the_hematoxylin_channel(shared_data):
    import SimpleITK as sitk
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    from palmares_desktop.core.radiomics.params import preset_path

    path = shared_data / "wsi_svs" / "CMU-1-Small-Region.svs"
    info = open_slide(path)
    box = shapely.box(600, 900, 1112, 1412)  # 512 px at 0.499 µm/px: read as 128 px at 1.996 µm/px
    measured = measure_geometry(path, info, box, RUIFROK)
    values, prov = measured.values["radiomics"], measured.provenance["radiomics"]
    assert prov["read"]["reduction"] == 4 and prov["read"]["mpp_um"] == pytest.approx(1.996)
    assert prov["params"]["name"] == "he" and len(prov["params"]["sha256"]) == 64
    assert prov["image"]["spacing"] == pytest.approx([1.996e-3, 1.996e-3])
    # Independently: 4x4 block means of level 0, scikit-image's hematoxylin, bare pyradiomics.
    rgb = read_region(path, 0, 600, 900, 512, 512).astype(float)
    rgb = np.round(rgb.reshape(128, 4, 128, 4, 3).mean(axis=(1, 3))).astype(np.uint8)
    image = sitk.GetImageFromArray(np.maximum(rgb2hed(rgb)[..., 0], 0))
    image.SetSpacing((1.996e-3, 1.996e-3))
    mask = sitk.GetImageFromArray(np.ones((128, 128), np.uint8))
    mask.CopyInformation(image)
    bare = RadiomicsFeatureExtractor(str(preset_path("he"))).execute(image, mask, label=1)
    assert len(values) > 90  # first-order, 2D shape and every texture class
    for name in ("original_firstorder_Mean", "original_glcm_Contrast", "original_glszm_ZoneEntropy"):
        assert values[name] == pytest.approx(float(bare[name]), rel=1e-9)
    assert values["original_shape2D_PixelSurface"] == pytest.approx(128 * 128 * 1.996e-3**2)


def test_measurements_stored_with_provenance(store, shared_data):
    path = shared_data / "wsi_svs" / "CMU-1-Small-Region.svs"
    subject = store.ensure_subject("IT03-0001")
    slide = register_slide(store, subject.id, path)
    ids = save_annotations(
        store,
        slide,
        [
            {"geometry": shapely.box(600, 900, 1112, 1412), "classification": "Invasive tumour"},
            {"geometry": shapely.Point(1500, 1500).buffer(200), "classification": "Tumour stroma"},
        ],
    )
    results = measure_annotations(store, slide, path)
    assert [r.annotation_id for r in results] == ids
    stored = measurements_of(store, slide.id, annotation_id=ids[0])
    assert sorted(m["kind"] for m in stored) == ["radiomics", "shape", "stain"]
    radiomics = next(m for m in stored if m["kind"] == "radiomics")
    assert radiomics["provenance"]["params"]["name"] == "he"
    assert radiomics["values"]["original_firstorder_Mean"] == pytest.approx(
        results[0].values["radiomics"]["original_firstorder_Mean"]
    )
    stain = next(m for m in stored if m["kind"] == "stain")
    assert stain["values"]["hematoxylin_od_mean"] == pytest.approx(
        results[0].values["stain"]["hematoxylin_od_mean"]
    )
    prov = stain["provenance"]
    assert prov["slide_sha256"] == slide.sha256 and prov["stains"]["method"] == "macenko"
    assert prov["read"]["mpp_um"] == pytest.approx(0.998) and "scikit-image" in prov["versions"]
    circle = next(m for m in measurements_of(store, slide.id, annotation_id=ids[1]) if m["kind"] == "shape")
    assert circle["values"]["area_um2"] == pytest.approx(np.pi * 200**2 * 0.499**2, rel=2e-3)

"""`palmares slide tissue|cells|measure|tils` on real slides, with --json, refusals in words."""

from __future__ import annotations

import json

import pytest
import shapely
from click.testing import CliRunner

from palmares_desktop.cli import exit_codes
from palmares_desktop.cli.slide_cmd import slide
from palmares_desktop.core.slides.registry import add_slide
from palmares_desktop.core.store import Store
from palmares_desktop.core.store.slide_objects import measurements_of, save_annotations


@pytest.fixture
def slide_store(tmp_path, shared_data):
    root = tmp_path / "store"
    with Store.open(root) as store:
        store.use_system_reader(site_code="IT03")
        for code in ("IT03-0001", "IT03-0002"):
            store.ensure_subject(code)
        svs = add_slide(store, "IT03-0001", shared_data / "wsi_svs" / "CMU-1-Small-Region.svs")
        boxes = add_slide(store, "IT03-0002", shared_data / "wsi_tiny_fixtures_openslide" / "boxes.tiff")
        save_annotations(
            store,
            svs,
            [
                {"geometry": shapely.box(1100, 1800, 1612, 2312), "classification": "Tumour stroma"},
                {"geometry": shapely.box(1100, 1800, 1356, 2312), "classification": "Lymphocytic infiltrate"},
            ],
        )
        save_annotations(
            store, boxes, [{"geometry": shapely.box(10, 10, 110, 60), "classification": "Artefact"}]
        )
    return root


def _run(args):
    return CliRunner().invoke(slide, args)


def test_tissue_then_measure_json(slide_store):
    result = _run(["tissue", "IT03-0001", "--store", str(slide_store), "--json", "--reader", "Dr Rossi"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert found["area_mm2"] == pytest.approx(0.633, abs=0.03) and found["read"]["downsample"] == 16.0
    assert found["reader"]["name"] == "Dr Rossi"
    result = _run(["measure", "IT03-0001", "--store", str(slide_store), "--json"])
    assert result.exit_code == 0, result.output
    measured = json.loads(result.output)
    stroma = measured["annotations"][0]
    assert stroma["shape"]["area_um2"] == pytest.approx(512 * 512 * 0.499**2)
    assert 0 < stroma["stain"]["hematoxylin_od_mean"] < 0.3 and stroma["refused"] == []
    assert stroma["radiomics"]["original_shape2D_PixelSurface"] == pytest.approx(0.256**2, rel=0.01)
    assert measured["stains"]["method"] == "macenko"
    assert len(measured["annotations"]) == 3  # stroma, infiltrate and the tissue outline


def test_measure_refuses_areas_in_words_without_mpp(slide_store):
    result = _run(["measure", "IT03-0002", "--store", str(slide_store)])
    assert result.exit_code == exit_codes.PARTIAL, result.output
    assert (
        "Refused: boxes.tiff has no known pixel size (MPP): areas and lengths in µm or mm² cannot be measured on it."
        in result.output
    )
    assert "hematoxylin OD" in result.output and "Traceback" not in result.output
    tils = _run(["tils", "IT03-0002", "--store", str(slide_store)])
    assert tils.exit_code == exit_codes.REFUSED
    assert "no known pixel size (MPP): stromal areas in mm² cannot be measured" in tils.output


def test_cells_and_tils_store_the_pathologists_value(slide_store):
    result = _run(["cells", "IT03-0001", "--store", str(slide_store), "--class", "Tumour stroma", "--json"])
    assert result.exit_code == 0, result.output
    (region,) = json.loads(result.output)["regions"]
    assert 50 < region["count"] < 400 and region["density_per_mm2"] == pytest.approx(
        region["count"] / region["area_mm2"]
    )
    result = _run(["tils", "IT03-0001", "--store", str(slide_store)])
    assert result.exit_code == 0, result.output
    assert "cover 50.0% of it (shown as 50%)" in result.output and "Nothing stored" in result.output
    assert f"Aid: {region['small_round']} small round nuclei in stroma" in result.output
    result = _run(["tils", "IT03-0001", "--store", str(slide_store), "--percent", "40", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["pathologist_percent"] == 40
    with Store.open(slide_store) as store:
        slide_id = store.rows("slides", "display_name = ?", ["IT03-0001 HE"])[0]["id"]
        (saved,) = measurements_of(store, slide_id, kind="tils")
    assert saved["values"]["stromal_tils_percent"] == 40.0
    bad = _run(["tils", "IT03-0001", "--store", str(slide_store), "--percent", "140"])
    assert bad.exit_code == exit_codes.REFUSED and "percentage from 0 to 100, not 140" in bad.output


def test_refusals_for_unknown_subject_and_missing_regions(slide_store):
    result = _run(["cells", "IT03-0009", "--store", str(slide_store)])
    assert result.exit_code == exit_codes.REFUSED and "There is no subject IT03-0009" in result.output
    result = _run(["cells", "IT03-0001", "--store", str(slide_store), "--class", "Necrosis"])
    assert result.exit_code == exit_codes.REFUSED
    assert "has no annotation of class Necrosis: draw or import a region first" in result.output

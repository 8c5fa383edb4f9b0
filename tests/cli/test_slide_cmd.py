"""`palmares slide info` and `palmares slide add` on real slides; nothing identifying reaches palmares.db."""

from __future__ import annotations

import json
import sqlite3

from click.testing import CliRunner

from palmares_desktop.cli.slide_cmd import slide
from palmares_desktop.core.slides.registry import slide_path
from palmares_desktop.core.store import Store


def test_info_json_lists_levels_mpp_and_associated_images(shared_data):
    path = shared_data / "wsi_svs" / "CMU-1-Small-Region.svs"
    result = CliRunner().invoke(slide, ["info", str(path), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["levels"] == [[2967, 2220]] and info["downsamples"] == [1.0]
    assert (info["mpp_x"], info["vendor"], info["magnification"]) == (0.499, "aperio", "20x")
    assert sorted(info["associated"]) == ["label", "macro", "thumbnail"]


def test_info_on_dicom_and_refusal_in_words(shared_data, tmp_path):
    result = CliRunner().invoke(slide, ["info", str(shared_data / "wsi_dicom")])
    assert result.exit_code == 0, result.output
    assert "level 0: 3236 x 2638 px" in result.output and "MPP: unknown" in result.output
    result = CliRunner().invoke(slide, ["info", str(tmp_path / "missing.svs")])
    assert result.exit_code != 0 and "does not exist" in result.output and "Traceback" not in result.output


def test_add_registers_without_anything_identifying(shared_data, tmp_path):
    root = tmp_path / "store"
    with Store.open(root) as store:
        store.use_system_reader(site_code="IT03")
        store.ensure_subject("IT03-0001")
    path = shared_data / "wsi_svs" / "CMU-1-Small-Region.svs"
    args = ["add", str(path), "--subject", "IT03-0001", "--store", str(root)]
    result = CliRunner().invoke(slide, args)
    assert result.exit_code == 0, result.output
    assert "IT03-0001 HE" in result.output
    dump = "\n".join(sqlite3.connect(root / "palmares.db").iterdump())
    assert "CMU-1" not in dump and str(shared_data) not in dump  # no file name, no path, no label
    with Store.open(root) as store:
        (row,) = store.rows("slides")
        assert (row["display_name"], row["path"], row["width"], row["mpp_x"]) == (
            "IT03-0001 HE",
            "",
            2220,
            0.499,
        )
        assert slide_path(store, row) == path.resolve()  # the site-only location, from keys.db
    again = CliRunner().invoke(slide, args)
    assert again.exit_code == 0
    unknown = CliRunner().invoke(slide, ["add", str(path), "--subject", "IT03-0099", "--store", str(root)])
    assert unknown.exit_code != 0 and "no subject IT03-0099" in unknown.output


def test_annotations_import_then_export_round_trips(shared_data, tmp_path):
    from shapely.geometry import shape

    root = tmp_path / "store"
    with Store.open(root) as store:
        store.use_system_reader(site_code="IT03")
        store.ensure_subject("IT03-0001")
    big = tmp_path / "big.tif"
    import numpy as np
    import tifffile

    tifffile.imwrite(
        big, np.zeros((10000, 10000, 3), np.uint8), tile=(512, 512), photometric="rgb", compression="zlib"
    )
    assert (
        CliRunner().invoke(slide, ["add", str(big), "--subject", "IT03-0001", "--store", str(root)]).exit_code
        == 0
    )
    source = shared_data / "qupath_geojson" / "qupath_core_test_polygon.geojson"
    base = ["annotations", "IT03-0001", "--store", str(root)]
    result = CliRunner().invoke(slide, [*base, "--import", str(source)])
    assert result.exit_code == 0, result.output
    assert "Imported 1 objects" in result.output
    out = tmp_path / "out.geojson"
    assert CliRunner().invoke(slide, [*base, "--geojson", str(out)]).exit_code == 0
    exported = json.loads(out.read_text())
    original = shape(json.loads(source.read_text()))
    assert shape(exported["features"][0]["geometry"]).equals_exact(original, 0)

"""`palmares slide info/add/locate/annotations` on real slides; nothing identifying reaches palmares.db."""

from __future__ import annotations

import json
import sqlite3

from click.testing import CliRunner

from palmares_desktop.cli.slide_cmd import slide
from palmares_desktop.core.slides.registry import slide_path
from palmares_desktop.core.store import Store
from palmares_desktop.core.store.records import as_slide


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
        assert "path" not in row  # the column is gone (m005): nothing can write a path there
        assert (row["display_name"], row["size_bytes"], row["width"], row["mpp_x"]) == (
            "IT03-0001 HE",
            1_938_955,
            2220,
            0.499,
        )
        assert slide_path(store, as_slide(row)) == path.resolve()  # the site-only location, from keys.db
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


def test_locate_relinks_a_moved_slide_after_checking_its_fingerprint(shared_data, tmp_path):
    import shutil

    root = tmp_path / "store"
    with Store.open(root) as store:
        store.use_system_reader(site_code="IT03")
        store.ensure_subject("IT03-0001")
    first = tmp_path / "scanner" / "Rossi_Mario_HE.svs"  # a file name that names the patient
    first.parent.mkdir()
    shutil.copy(shared_data / "wsi_svs" / "CMU-1-Small-Region.svs", first)
    added = CliRunner().invoke(slide, ["add", str(first), "--subject", "IT03-0001", "--store", str(root)])
    assert added.exit_code == 0, added.output
    moved = tmp_path / "archive" / "2026" / "slide-0001.svs"
    moved.parent.mkdir(parents=True)
    first.rename(moved)
    with Store.open(root) as store:
        (row,) = store.rows("slides")
        try:
            slide_path(store, as_slide(row))
        except Exception as exc:  # the message says how to re-link it
            message = str(exc)
        assert f"palmares slide locate --store {root} --slide {row['id']} --path FILE" in message
    base = ["locate", "--store", str(root), "--slide"]
    wrong = CliRunner().invoke(
        slide,
        [
            *base,
            "IT03-0001 HE",
            "--path",
            str(shared_data / "wsi_ome_tiff" / "CMU-1-Small-Region.derived-pyramid.ome.tif"),
        ],
    )
    assert wrong.exit_code == 1 and "is not the file of slide IT03-0001 HE" in wrong.output
    assert "Traceback" not in wrong.output
    result = CliRunner().invoke(slide, [*base, "IT03-0001 HE", "--path", str(moved)])
    assert result.exit_code == 0, result.output
    assert "Slide IT03-0001 HE is linked to its file again" in result.output
    with Store.open(root) as store:
        (row,) = store.rows("slides")
        assert slide_path(store, as_slide(row)) == moved
        locate = store.rows("audit_log", "action = 'locate'")
        assert len(locate) == 1 and locate[0]["row_id"] == row["id"] and locate[0]["detail_json"] is None
        assert store.check_audit_chain().ok
    dump = "\n".join(sqlite3.connect(root / "palmares.db").iterdump())
    assert "Rossi" not in dump and "slide-0001" not in dump and str(tmp_path) not in dump
    unknown = CliRunner().invoke(slide, [*base, "IT03-0001 PAS", "--path", str(moved)])
    assert unknown.exit_code == 1 and "There is no slide IT03-0001 PAS in this store." in unknown.output

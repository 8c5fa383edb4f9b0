"""QuPath GeoJSON through the store: annotations AND detections export as one QuPath-compatible
FeatureCollection, and QuPath's own test geometry round-trips exactly."""

from __future__ import annotations

import json

import pytest
import shapely
from click.testing import CliRunner
from shapely.geometry import shape

from palmares_desktop.cli.slide_cmd import slide
from palmares_desktop.core.slides.registry import add_slide
from palmares_desktop.core.store import Store, records

QUPATH = ("qupath_geojson", "qupath_core_test_polygon.geojson")


@pytest.fixture
def two_slides(tmp_path, shared_data):
    """IT03-0001 and -0002: the real CMU-1 region; IT03-0003 and -0004: 12,000 px square slides (as
    registered rows: import and export need only the slide's size), large enough for QuPath's test
    geometry, which spans 10,000 x 10,000 px."""
    root = tmp_path / "store"
    with Store.open(root) as store:
        store.use_system_reader(site_code="IT03")
        for code in ("IT03-0001", "IT03-0002"):
            store.ensure_subject(code)
            add_slide(store, code, shared_data / "wsi_svs" / "CMU-1-Small-Region.svs")
        for code in ("IT03-0003", "IT03-0004"):
            subject = store.ensure_subject(code)
            row = {
                "subject_id": subject.id,
                "display_name": f"{code} HE",
                "format": "tiff",
                "width": 12_000,
            }
            row.update(
                {"height": 12_000, "levels": 1, "mpp_x": 0.25, "mpp_y": 0.25, "sha256": code, "stain": "HE"}
            )
            records.add_slide_row(store, row, {})
    return root


def _run(*args):
    return CliRunner().invoke(slide, [str(a) for a in args])


def _features_without_ids(collection: dict) -> list[dict]:
    return [{k: v for k, v in f.items() if k != "id"} for f in collection["features"]]


def _qupath_collection() -> dict:
    """A QuPath 'Export as GeoJSON' with both dialects: annotations with holes and names, detections
    with measurements (current dialect) and one older-style detection with a packed colorRGB."""
    ring = [[100.5, 100.25], [900.125, 100.25], [900.125, 700.75], [100.5, 700.75], [100.5, 100.25]]
    hole = [[300, 300], [400, 300], [400, 400], [300, 400], [300, 300]]

    def cell(x, y, area, cls="Lymphocyte", color=(160, 90, 240)):
        square = [[x, y], [x + 6.5, y], [x + 6.5, y + 6.5], [x, y + 6.5], [x, y]]
        return {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [square]},
            "properties": {
                "objectType": "detection",
                "classification": {"name": cls, "color": list(color)},
                "measurements": {"Nucleus: Area": area, "Nucleus: Circularity": 0.91},
            },
        }

    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [ring, hole]},
            "properties": {
                "objectType": "annotation",
                "name": "Stroma 1",
                "classification": {"name": "Tumour stroma", "color": [150, 200, 150]},
                "isLocked": False,
            },
        },
        {
            "type": "Feature",
            "geometry": {
                "type": "MultiPolygon",
                "coordinates": [
                    [[[1000, 1000], [1200, 1000], [1200, 1200], [1000, 1000]]],
                    [[[1300, 1300], [1400, 1300], [1400, 1400], [1300, 1300]]],
                ],
            },
            "properties": {"object_type": "annotation", "colorRGB": -3670016, "name": "Tumour parts"},
        },
        *[cell(150 + 10 * i, 150.5, 30.0 + i) for i in range(20)],
        cell(500, 600, 55.5, "Tumor", (200, 0, 0)),
    ]
    return {"type": "FeatureCollection", "features": features}


def test_qupath_test_geometry_round_trips_through_the_store_exactly(two_slides, shared_data, tmp_path):
    source = shared_data / QUPATH[0] / QUPATH[1]
    original = shape(json.loads(source.read_text()))
    assert _run("annotations", "IT03-0003", "--store", two_slides, "--import", source).exit_code == 0
    out = tmp_path / "out.geojson"
    result = _run("annotations", "IT03-0003", "--store", two_slides, "--geojson", out)
    assert result.exit_code == 0, result.output
    assert "Exported 1 annotations and 0 detections" in result.output
    exported = json.loads(out.read_text())
    (feature,) = exported["features"]
    assert (
        feature["properties"]["objectType"] == "annotation" and feature["geometry"]["type"] == "MultiPolygon"
    )
    assert shape(feature["geometry"]).equals_exact(original, 0)
    # Exported file imported elsewhere and exported again: the same FeatureCollection.
    assert _run("annotations", "IT03-0004", "--store", two_slides, "--import", out).exit_code == 0
    again = tmp_path / "again.geojson"
    assert _run("annotations", "IT03-0004", "--store", two_slides, "--geojson", again).exit_code == 0
    assert _features_without_ids(json.loads(again.read_text())) == _features_without_ids(exported)


def test_annotations_and_detections_export_as_one_qupath_collection(two_slides, tmp_path):
    source = tmp_path / "qupath.geojson"
    source.write_text(json.dumps(_qupath_collection()))
    result = _run("annotations", "IT03-0001", "--store", two_slides, "--import", source)
    assert result.exit_code == 0, result.output
    assert "Imported 23 objects" in result.output
    out = tmp_path / "out.geojson"
    result = _run("annotations", "IT03-0001", "--store", two_slides, "--geojson", out)
    assert "Exported 2 annotations and 21 detections" in result.output
    exported = json.loads(out.read_text())
    annotations = [f for f in exported["features"] if f["properties"]["objectType"] == "annotation"]
    detections = [f for f in exported["features"] if f["properties"]["objectType"] == "detection"]
    stroma, parts = annotations
    assert stroma["properties"]["name"] == "Stroma 1" and stroma["properties"]["isLocked"] is False
    assert stroma["properties"]["classification"] == {"name": "Tumour stroma", "color": [150, 200, 150]}
    assert shape(stroma["geometry"]).equals_exact(shape(_qupath_collection()["features"][0]["geometry"]), 0)
    assert parts["properties"]["name"] == "Tumour parts" and len(shape(parts["geometry"]).geoms) == 2
    # The older dialect's packed colour came in; it goes out in the current dialect (no class: no colour).
    assert "classification" not in parts["properties"]
    by_class = {}
    for f in detections:
        by_class.setdefault(f["properties"]["classification"]["name"], []).append(f)
    assert {k: len(v) for k, v in by_class.items()} == {"Lymphocyte": 20, "Tumor": 1}
    assert by_class["Tumor"][0]["properties"]["classification"]["color"] == [200, 0, 0]
    assert by_class["Tumor"][0]["properties"]["measurements"] == {
        "Nucleus: Area": 55.5,
        "Nucleus: Circularity": 0.91,
    }
    areas = sorted(f["properties"]["measurements"]["Nucleus: Area"] for f in by_class["Lymphocyte"])
    assert areas == [30.0 + i for i in range(20)]

    def exact(features):  # every coordinate as a float, exactly (QuPath writes 150 where we write 150.0)
        return {tuple(map(float, shapely.get_coordinates(shape(f["geometry"])).ravel())) for f in features}

    assert exact(detections) == exact(_qupath_collection()["features"][2:])
    # Annotations only, when asked.
    only = tmp_path / "only.geojson"
    result = _run("annotations", "IT03-0001", "--store", two_slides, "--geojson", only, "--no-detections")
    assert "Exported 2 annotations and 0 detections" in result.output


def test_refused_objects_are_named_and_the_rest_imported(two_slides, tmp_path):
    data = _qupath_collection()
    data["features"][0]["geometry"]["coordinates"][0][1] = [99_000, 100.25]  # far outside the slide
    data["features"][1]["geometry"] = {
        "type": "Polygon",
        "coordinates": [[[0, 0], [10, 10], [10, 0], [0, 10], [0, 0]]],
    }
    source = tmp_path / "bad.geojson"
    source.write_text(json.dumps(data))
    result = _run("annotations", "IT03-0001", "--store", two_slides, "--import", source)
    assert result.exit_code == 3  # partial
    assert "Stroma 1: it lies outside the slide (2220 x 2967 px)." in result.output
    assert "Tumour parts: its outline is broken (Self-intersection" in result.output
    assert "Imported 21 objects" in result.output

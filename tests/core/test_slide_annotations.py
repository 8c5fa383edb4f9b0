"""Annotation geometry, areas from MPP, and QuPath GeoJSON import/export on QuPath's own test data."""

from __future__ import annotations

import json

import pytest
import shapely
from shapely.geometry import shape

from palmares_desktop.core.slides.annotations import (
    AnnotationError,
    area_perimeter,
    export_geojson,
    import_geojson,
    study_classes,
)


def test_study_classes_have_name_colour_and_code():
    classes = study_classes()
    assert [c["name"] for c in classes][:2] == ["Invasive tumour", "In situ carcinoma"]
    assert len(classes) == 8 and all(len(c["colour"]) == 3 and "snomed" in c for c in classes)


def test_area_in_um2_and_refusal_without_mpp():
    square = shapely.box(0, 0, 1000, 2000)  # level-0 pixels
    measured = area_perimeter(square, (0.5, 0.25))
    assert measured["area_um2"] == pytest.approx(500 * 500)
    assert measured["area_mm2"] == pytest.approx(0.25)
    assert measured["perimeter_um"] == pytest.approx(2 * (500 + 500))
    with pytest.raises(AnnotationError, match="no known pixel size"):
        area_perimeter(square, (None, None))


def test_qupath_multipolygon_imports_and_round_trips(shared_data):
    data = json.loads((shared_data / "qupath_geojson" / "qupath_core_test_polygon.geojson").read_text())
    original = shape(data)
    minx, miny, maxx, maxy = original.bounds
    objects, refused = import_geojson(data, int(maxx) + 1, int(maxy) + 1)
    assert refused == [] and len(objects) == 1 and len(objects[0].geometry.geoms) == 3
    exported = export_geojson(objects)
    again, _ = import_geojson(json.loads(json.dumps(exported)), int(maxx) + 1, int(maxy) + 1)
    assert again[0].geometry.equals_exact(original, 0)  # coordinates exactly
    # Outside a smaller slide: refused in words.
    objects, refused = import_geojson(data, 10, 10)
    assert objects == [] and "outside the slide" in refused[0]


def test_both_dialects_classes_names_holes_and_broken_geometry():
    ring = [[0, 0], [100, 0], [100, 100], [0, 100], [0, 0]]
    hole = [[20, 20], [40, 20], [40, 40], [20, 40], [20, 20]]
    bowtie = [[0, 0], [10, 10], [10, 0], [0, 10], [0, 0]]
    data = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [ring, hole]},
                "properties": {
                    "objectType": "annotation",
                    "name": "T1",
                    "classification": {"name": "Invasive tumour", "color": [200, 0, 0]},
                },
            },
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {
                    "object_type": "detection",
                    "colorRGB": -16711936,
                    "classification": "Necrosis",
                },
            },
            {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [bowtie]}, "properties": {}},
        ],
    }
    objects, refused = import_geojson(data, 200, 200)
    assert len(objects) == 2 and len(refused) == 1 and "outline is broken" in refused[0]
    first, second = objects
    assert (first.kind, first.name, first.classification, first.color) == (
        "annotation",
        "T1",
        "Invasive tumour",
        (200, 0, 0),
    )
    assert first.geometry.area == 100 * 100 - 20 * 20
    assert (second.kind, second.classification, second.color) == ("detection", "Necrosis", (0, 255, 0))
    exported = export_geojson(objects)
    assert exported["features"][0]["properties"]["classification"] == {
        "name": "Invasive tumour",
        "color": [200, 0, 0],
    }
    back, _ = import_geojson(json.loads(json.dumps(exported)), 200, 200)
    assert [(o.kind, o.classification, o.color, o.name) for o in back] == [
        (o.kind, o.classification, o.color, o.name) for o in objects
    ]
    assert all(a.geometry.equals_exact(b.geometry, 0) for a, b in zip(back, objects, strict=True))

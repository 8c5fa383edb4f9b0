"""The domain model: frozen, I/O-free objects that records.py builds from real store rows."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest
import SimpleITK as sitk
from series_fixture import import_ct

import palmares_desktop.core.model as model
from palmares_desktop.core.segmentation.labelmaps import add_segmentation
from palmares_desktop.core.store import StoreError, records
from palmares_desktop.core.store import segmentations as chains


def test_the_model_does_no_io_and_its_objects_are_frozen():
    tree = ast.parse(Path(model.__file__).read_text(encoding="utf-8"))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= {"__future__", "collections", "dataclasses", "types", "typing"}
    names = ["Reader", "Subject", "Study", "Series", "Lesion", "Segmentation", "Slide", "SlideAnnotation"]
    for name in [*names, "FeatureSet", "VoxelGrid", "Parameters"]:
        assert (
            dataclasses.is_dataclass(getattr(model, name))
            and getattr(model, name).__dataclass_params__.frozen
        )
    params = model.Parameters({"threshold": 2.5})
    with pytest.raises(TypeError):
        params.values["threshold"] = 3.0  # read-only even through the mapping
    from palmares_desktop.core.store import Reader

    assert Reader is model.Reader  # the store re-exports the model's Reader


def test_rows_become_model_objects_with_their_json_parsed(store, shared_data):
    folder = shared_data / "ct_3slice_seg_dcmqi"
    row = import_ct(store, folder / "ct", "IT03-0001")
    series = records.as_series(row)
    volume = sitk.ReadImage(str(store.path(series.pixel_path)))
    assert series.grid.size == volume.GetSize() == (512, 512, 3)
    assert series.grid.spacing == pytest.approx(volume.GetSpacing())
    assert series.grid.direction == pytest.approx(volume.GetDirection())
    assert series.grid.voxel_volume_mm3 == pytest.approx(0.8105 * 0.8105 * 1.0, rel=1e-3)
    assert (series.modality, series.units, series.suv, series.suv_calibrated) == ("CT", "HU", None, False)
    assert series.problems == tuple(json.loads(row["problems_json"]))

    seg = add_segmentation(store, "IT03-0001", "CT", folder / "seg" / "liver.dcm", parameters={"tool": "x"})
    typed = chains.segmentation(store, seg.id)
    assert (typed.version, typed.status, typed.reader_id, typed.voxel_count) == (
        1,
        "final",
        store.reader.id,
        107098,
    )
    assert typed.parameters.as_dict() == {"tool": "x"} and typed.source["segment_label"] == "Liver"
    assert records.subject(store, row["subject_id"]).code == "IT03-0001"
    with pytest.raises(StoreError, match="No subjects row with id nobody"):
        records.subject(store, "nobody")
    lesion = records.lesion_named(store, row["subject_id"], "Liver")
    assert (lesion.id, lesion.name) == (typed.lesion_id, "Liver")

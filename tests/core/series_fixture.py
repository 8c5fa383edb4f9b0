"""Put real series into a test store: DICOM through the real importer, or an in-memory image
(e.g. a derived SUV volume) as a series row + volume NRRD laid out exactly as the importer does."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import SimpleITK as sitk

from palmares_desktop.core.store import file_sha256


def insert_series(
    store,
    subject_code: str,
    image: sitk.Image,
    modality: str = "CT",
    study_date: str = "20240101",
    units: str | None = None,
) -> dict:
    """A series row + volume NRRD for an image already in memory (benchmarks, synthetic tests)."""
    subject = store.ensure_subject(subject_code)
    study = store.insert(
        "studies",
        {
            "subject_id": subject.id,
            "study_uid": f"2.25.{uuid.uuid4().int}",
            "study_date": study_date,
            "description": "test study",
        },
    )
    row = {
        "study_id": study["id"],
        "subject_id": subject.id,
        "modality": modality,
        "series_uid": f"2.25.{uuid.uuid4().int}",
        "units": units or ("HU" if modality == "CT" else "SUVbw"),
        "size_json": json.dumps(list(image.GetSize())),
        "spacing_json": json.dumps(list(image.GetSpacing())),
        "origin_json": json.dumps(list(image.GetOrigin())),
        "direction_json": json.dumps(list(image.GetDirection())),
    }
    series = store.insert("series", row)
    relative = f"volumes/{series['id']}.nrrd"
    sitk.WriteImage(image, str(store.path(relative)), useCompression=True)
    return store.update(
        "series", series["id"], {"pixel_path": relative, "pixel_sha256": file_sha256(store.path(relative))}
    )


def import_ct(store, folder: Path, subject_code: str, files: list[Path] | None = None) -> dict:
    """Import the CT series in `folder` for `subject_code`; returns its `series` row."""
    from palmares_desktop.core.importer import import_dicom

    if files is not None:  # import just these instances: copy them to a folder of their own
        folder = store.root.parent / f"subset-{uuid.uuid4().hex[:8]}"
        folder.mkdir()
        for f in files:
            shutil.copy(f, folder / f.name)
    summary = import_dicom(store, folder, subject_code)
    assert summary.imported or summary.skipped, summary
    subject = store.subject_by_code(subject_code)
    rows = store.rows(
        "series", "subject_id = ? and modality = 'CT'", [subject.id], order_by="created_at desc"
    )
    return rows[0]

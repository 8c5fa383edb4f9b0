"""Put a real CT series from the shared data into a test store, as the importer would.

Uses the real importer (core.importer.import_dicom) when it exists. Until then it inserts the
`studies`/`series` rows and the volume NRRD through the store API the same way (CT in HU, volume at
volumes/<series_id>.nrrd, pixel_sha256 of that file): switch-over needs no change in the tests.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from pathlib import Path

import pydicom
import SimpleITK as sitk


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _real_importer():
    try:
        from palmares_desktop.core.importer import import_dicom
    except ImportError:
        return None
    return import_dicom


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
            "subject_id": subject["id"],
            "study_uid": f"2.25.{uuid.uuid4().int}",
            "study_date": study_date,
            "description": "test study",
        },
    )
    row = {
        "study_id": study["id"],
        "subject_id": subject["id"],
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
        "series", series["id"], {"pixel_path": relative, "pixel_sha256": _sha256(store.path(relative))}
    )


def import_ct(store, folder: Path, subject_code: str, files: list[Path] | None = None) -> dict:
    """Import the CT series in `folder` for `subject_code`; returns its `series` row."""
    import_dicom = _real_importer()
    if import_dicom is not None:
        if files is not None:  # import just these instances: copy them to a folder of their own
            folder = store.root.parent / f"subset-{uuid.uuid4().hex[:8]}"
            folder.mkdir()
            for f in files:
                shutil.copy(f, folder / f.name)
        summary = import_dicom(store, folder, subject_code)
        assert summary.imported or summary.skipped, summary
        subject = store.subject_by_code(subject_code)
        rows = store.rows(
            "series", "subject_id = ? and modality = 'CT'", [subject["id"]], order_by="created_at desc"
        )
        return rows[0]
    files = files or sorted(folder.glob("*.dcm"))
    datasets = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    # Sort along the slice normal, as the DICOM engineer's load_series does.
    normal = _normal(datasets[0])
    order = sorted(
        range(len(files)),
        key=lambda i: sum(
            a * b for a, b in zip(normal, map(float, datasets[i].ImagePositionPatient), strict=True)
        ),
    )
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(files[i]) for i in order])
    image = sitk.Cast(reader.Execute(), sitk.sitkInt16)
    return insert_series(store, subject_code, image, "CT", str(datasets[0].get("StudyDate", "")))


def _normal(ds) -> list[float]:
    r = [float(v) for v in ds.ImageOrientationPatient[:3]]
    c = [float(v) for v in ds.ImageOrientationPatient[3:]]
    return [r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0]]

"""Export a subject's lesion segmentations: DICOM SEG (highdicom, BINARY) or NIfTI/NRRD label maps.

- `seg`: one SEG per series, one segment per lesion (the version in use on that series: the reader's own newest final version, else the newest one they may see; core/reading_set.version_in_use),
  coded in SNOMED CT (category Morphologically altered structure, type Neoplasm, the lesion's site as
  anatomic region) and referencing the de-identified DICOM copies in the store (`dicom/<series_id>/`)
  the masks were drawn on.
- `nifti` / `nrrd`: one 0/1 file per lesion and series on that series' grid.
Every export writes `segmentations.json` beside the files: which lesion, version, method and
parameters each file or segment holds.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from palmares_desktop.core.model import Lesion, Segmentation, Series
from palmares_desktop.core.reading_set import version_in_use
from palmares_desktop.core.segmentation.geometry import Grid, SegmentationError
from palmares_desktop.core.store import Store, records

FORMATS = ("seg", "nifti", "nrrd")
# Lesion sites -> SNOMED CT anatomic region (code, meaning).
SITE_CODES = {
    "liver": ("10200004", "Liver"),
    "bone": ("272673000", "Bone structure"),
    "lymph node": ("59441001", "Lymph node structure"),
    "lung": ("39607008", "Lung structure"),
    "breast": ("76752008", "Breast structure"),
    "pleura": ("3120008", "Pleural membrane structure"),
    "soft tissue": ("87784001", "Soft tissues"),
    "brain": ("12738006", "Brain structure"),
    "skin": ("39937001", "Skin structure"),
}
_MODALITY_WORD = {"CT": "CT", "PT": "PET"}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "lesion"


def subject_masks(
    store: Store, subject_code: str, lesion_name: str | None = None
) -> list[tuple[Series, Lesion, Segmentation]]:
    """(series, lesion, segmentation version) for each lesion's latest final version on each series."""
    subject = store.subject_by_code(subject_code)
    if subject is None:
        raise SegmentationError(f"There is no subject {subject_code} in this store.")
    lesions = records.lesions_of_subject(store, subject.id)
    if lesion_name is not None:
        lesions = [x for x in lesions if x.name == lesion_name]
        if not lesions:
            raise SegmentationError(f"{subject_code} has no lesion named {lesion_name!r}.")
    out = []
    for modality in ("CT", "PT"):
        for series in records.series_of_subject_oldest_first(store, subject.id, modality):
            for lesion in lesions:
                version = version_in_use(store, lesion, series.id)
                if version is not None:
                    out.append((series, lesion, version))
    if not out:
        raise SegmentationError(f"{subject_code} has no saved segmentation to export.")
    return out


def _entry(series, lesion, version) -> dict:
    return {
        "series_id": series.id,
        "modality": series.modality,
        "lesion": lesion.name,
        "organ": lesion.organ,
        "version": version.version,
        "segmentation_id": version.id,
        "method": version.method,
        "parameters": version.parameters.as_dict(),
        "voxel_count": version.voxel_count,
    }


def export_subject(
    store: Store, subject_code: str, fmt: str, out_dir: str | Path, lesion_name: str | None = None
) -> list[Path]:
    """Write the subject's segmentations to `out_dir` in `fmt`; returns the files written."""
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise SegmentationError(f"The export format {fmt!r} is not one of {', '.join(FORMATS)}.")
    items = subject_masks(store, subject_code, lesion_name)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SegmentationError(f"Cannot create the folder {out}: {exc.strerror}.") from exc
    written, manifest = [], []
    if fmt == "seg":
        by_series: dict[str, list] = {}
        for series, lesion, version in items:
            by_series.setdefault(series.id, []).append((series, lesion, version))
        for group in by_series.values():
            series = group[0][0]
            path = out / f"{subject_code}_{_MODALITY_WORD[series.modality]}_lesions.seg.dcm"
            _write_seg(store, group, path)
            written.append(path)
            for number, (s, lesion, version) in enumerate(group, start=1):
                manifest.append({**_entry(s, lesion, version), "file": path.name, "segment_number": number})
    else:
        suffix = ".nii.gz" if fmt == "nifti" else ".nrrd"
        for series, lesion, version in items:
            image = sitk.ReadImage(str(store.path(version.mask_path)))
            path = out / f"{subject_code}_{_MODALITY_WORD[series.modality]}_{_slug(lesion.name)}{suffix}"
            sitk.WriteImage(sitk.Cast(image > 0, sitk.sitkUInt8), str(path), useCompression=True)
            written.append(path)
            manifest.append({**_entry(series, lesion, version), "file": path.name, "label": 1})
    (out / "segmentations.json").write_text(
        json.dumps({"subject": subject_code, "items": manifest}, indent=1)
    )
    return written


# ----------------------------------------------------------------------------------------- SEG
def _source_datasets(store: Store, series: Series, grid: Grid) -> list:
    """The series' DICOM copies in the store, ordered as the volume's slices (k = 0, 1, ...)."""
    import pydicom

    folder = store.path(f"dicom/{series.id}")
    files = sorted(folder.glob("*.dcm")) if folder.is_dir() else []
    if not files:
        raise SegmentationError(
            f"The DICOM copies of the {_MODALITY_WORD[series.modality]} series are not in the store "
            f"({folder.name}); a DICOM SEG must reference them."
        )
    by_slice: dict[int, object] = {}
    for path in files:
        ds = pydicom.dcmread(path)
        k = int(round(float(grid.to_index(np.asarray(ds.ImagePositionPatient, dtype=float))[2])))
        by_slice[k] = ds
    if sorted(by_slice) != list(range(grid.size[2])):
        raise SegmentationError(
            f"The DICOM copies of the {_MODALITY_WORD[series.modality]} series do not match its volume "
            f"({len(by_slice)} positions for {grid.size[2]} slices)."
        )
    return [by_slice[k] for k in range(grid.size[2])]


def _description(number: int, lesion: Lesion, version: Segmentation):
    import highdicom as hd

    from palmares_desktop import __version__

    site = SITE_CODES.get((lesion.organ or "").strip().lower())
    regions = [hd.sr.CodedConcept(site[0], "SCT", site[1])] if site else None
    tool = (version.method or "").startswith(("PET threshold", "PET whole-body"))
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=lesion.name[:64],
        segmented_property_category=hd.sr.CodedConcept(
            "49755003", "SCT", "Morphologically Altered Structure"
        ),
        segmented_property_type=hd.sr.CodedConcept("108369006", "SCT", "Neoplasm"),
        algorithm_type=(
            hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC
            if tool
            else hd.seg.SegmentAlgorithmTypeValues.MANUAL
        ),
        algorithm_identification=(
            hd.AlgorithmIdentificationSequence(
                name=f"PALMARES {version.method}"[:64],
                version=__version__,
                family=hd.sr.CodedConcept("113076", "DCM", "Segmentation"),
            )
            if tool
            else None
        ),
        tracking_id=f"{lesion.name} v{version.version}"[:64],
        tracking_uid=hd.UID(),
        anatomic_regions=regions,
    )


def _write_seg(store: Store, group: list, path: Path) -> None:
    import highdicom as hd

    series = group[0][0]
    grid = Grid.from_file(store.path(series.pixel_path))
    sources = _source_datasets(store, series, grid)
    masks = []
    for _, _, version in group:
        image = sitk.ReadImage(str(store.path(version.mask_path)))
        masks.append(sitk.GetArrayFromImage(image) > 0)  # (z, y, x) = (frame, row, column)
    pixels = np.stack(masks, axis=-1).astype(np.uint8)
    with warnings.catch_warnings():
        # PatientName holds the subject code after de-identification: one component is intended.
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name")
        seg = _segmentation(hd, sources, pixels, group, series)
    seg.save_as(path)


def _segmentation(hd, sources, pixels, group, series):
    from palmares_desktop import __version__

    return hd.seg.Segmentation(
        source_images=sources,
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[
            _description(n, lesion, version) for n, (_, lesion, version) in enumerate(group, 1)
        ],
        series_instance_uid=hd.UID(),
        series_number=900,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="PALMARES",
        manufacturer_model_name="PALMARES Desktop",
        software_versions=__version__,
        device_serial_number="none",
        content_label="LESIONS",
        content_description=f"Lesion segmentations on the {_MODALITY_WORD[series.modality]}"[:64],
    )

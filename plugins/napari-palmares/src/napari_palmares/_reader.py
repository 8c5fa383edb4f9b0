"""The two readers: a DICOM CT/PET series folder, and one subject of a workstation store.

Both follow napari's reader contract (npe2 `get_reader(path)`): they return None for a path they
do not read, so napari tries its other readers, and otherwise a function returning layer data.

- DICOM folder: every usable CT and PET series in the folder (core's discovery: sorted, checked),
  one image layer each. CT in HU; PET converted to SUVbw by core's SUV engine
  (`core.pet.suv.compute_suv_for_files`), its provenance in `metadata["suv"]`. A PET whose SUV
  cannot be computed opens in its stored units with the reason in `metadata["suv_error"]`.
- Store folder (it holds `palmares.db`): one subject's CT, PET and segmentations (the latest final
  version of each reader's segmentation of each lesion, as the CT/PET room shows them). The subject
  is the one named by the environment variable PALMARES_SUBJECT, else the first subject (by code)
  with a CT or PET; from Python, `read_store(path, subject="IT03-0017")`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from napari_palmares._layers import LayerData, ct_layer, labels_layer, pet_layer
from napari_palmares._workstation import (
    Segmentation,
    Series,
    SeriesInfo,
    Store,
    Subject,
    load_series,
    scan_folder,
    subject_segmentations,
    subject_series,
    suv_provenance,
)
from palmares_desktop.core.errors import PalmaresError
from palmares_desktop.core.pet.suv import compute_suv_for_files

#: Names the store subject to open (its code, e.g. IT03-0017).
SUBJECT_ENV = "PALMARES_SUBJECT"
#: How many files the quick check reads before deciding a folder holds no DICOM.
DICOM_PROBE_FILES = 200
MODALITIES = ("CT", "PT")


class ReaderError(PalmaresError):
    """A folder this plugin reads cannot be opened as asked; the message says why."""


def _one_folder(path: Any) -> Path | None:
    if isinstance(path, list | tuple):
        if len(path) != 1:
            return None
        path = path[0]
    folder = Path(os.fspath(path))
    return folder if folder.is_dir() else None


def is_store(folder: Path) -> bool:
    return (folder / Store.DB_NAME).is_file()


# ----------------------------------------------------------------------------- DICOM folder
def _has_dicom_file(folder: Path, limit: int = DICOM_PROBE_FILES) -> bool:
    """A quick look: does one of the first `limit` files carry the DICOM marker ('DICM' at 128)?
    Core's discovery needs that marker too, so a folder failing this holds no series it reads."""
    seen = 0
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            seen += 1
            if seen > limit:
                return False
            try:
                with open(Path(root) / name, "rb") as handle:
                    if handle.read(132)[128:] == b"DICM":
                        return True
            except OSError:
                continue
    return False


def dicom_image_series(folder: str | Path) -> list[SeriesInfo]:
    """The CT and PET series core's discovery finds in the folder (usable or not)."""
    return [s for s in scan_folder(folder).series if s.modality in MODALITIES]


def get_dicom_reader(path: Any) -> Callable[[Any], list[LayerData]] | None:
    """npe2 reader hook: a folder holding DICOM CT or PET images (not a store), else None."""
    folder = _one_folder(path)
    if folder is None or is_store(folder) or not _has_dicom_file(folder):
        return None
    try:
        series = dicom_image_series(folder)
    except PalmaresError:
        return None
    if not series:
        return None
    return lambda _path: read_dicom_series(series, folder)


def read_dicom_folder(path: str | Path) -> list[LayerData]:
    """Layer data of every CT and PET series in a DICOM folder (the reader, callable from Python)."""
    folder = Path(path)
    series = dicom_image_series(folder)
    if not series:
        raise ReaderError(f"The folder {folder.name} holds no DICOM CT or PET image series.")
    return read_dicom_series(series, folder)


def read_dicom_series(series: list[SeriesInfo], folder: Path) -> list[LayerData]:
    usable = [s for s in series if s.usable]
    if not usable:
        problems = " ".join(p for s in series for p in s.problems)
        raise ReaderError(f"No CT or PET series in {folder.name} can be read as a volume: {problems}")
    layers = []
    for info in usable:
        metadata: dict[str, Any] = {
            "source": "DICOM folder",
            "folder": str(folder),
            "modality": info.modality,
            "series_uid": info.series_uid,
            "description": info.description,
            "manufacturer": info.manufacturer,
            "frame_of_reference_uid": info.frame_of_reference_uid,
            "problems": list(info.problems),  # core's warnings about the series, in words
        }
        name = (
            f"{'PET' if info.modality == 'PT' else 'CT'} {info.description or info.series_uid[-8:]}".strip()
        )
        if info.modality == "CT":
            layers.append(ct_layer(load_series(info), name, {**metadata, "units": "HU"}))
            continue
        suv = compute_suv_for_files(info.files)
        metadata["suv"] = suv.to_dict()
        if suv.ok:
            image = load_series(info, slice_scale=dict(suv.suvbw_factors))
            metadata.update(units="SUVbw", suv_factor=suv.suvbw_factor, suv_method=suv.method)
        else:
            image = load_series(info)
            metadata.update(units=str(suv.inputs.get("units") or "stored values"), suv_error=suv.error)
            name += " (not SUV)"
        layers.append(pet_layer(image, name, metadata))
    return layers


# ----------------------------------------------------------------------------- store subject
def get_store_reader(path: Any) -> Callable[[Any], list[LayerData]] | None:
    """npe2 reader hook: a workstation store folder (it holds the store's database), else None."""
    folder = _one_folder(path)
    if folder is None or not is_store(folder):
        return None
    return lambda _path: read_store(folder)


def _choose_subject(store: Store, code: str | None) -> Subject:
    if code:
        subject = store.subject_by_code(code)
        if subject is None:
            codes = ", ".join(r["code"] for r in store.worklist()[:10]) or "none"
            raise ReaderError(
                f"There is no subject {code} in the store {store.root.name} (subjects: {codes})."
            )
        return subject
    for row in store.worklist():
        if set(row["modalities"]) & set(MODALITIES):
            return store.subject_by_code(row["code"])
    raise ReaderError(f"The store {store.root.name} holds no subject with a CT or PET.")


def _series_metadata(code: str, series: Series) -> dict[str, Any]:
    return {
        "source": "PALMARES store",
        "subject_code": code,
        "series_id": series.id,
        "series_uid": series.series_uid,
        "modality": series.modality,
        "description": series.description or "",
        "frame_of_reference_uid": series.frame_of_reference_uid or "",
        "units": series.units or "",
    }


def read_store(path: str | Path, subject: str | None = None) -> list[LayerData]:
    """Layer data of one store subject: its CT, its PET and one labels layer per segmentation.

    `subject` is a subject code; by default PALMARES_SUBJECT, else the first subject with CT or PET.
    The store is opened read-only: nothing is written, and it may be on read-only media."""
    with Store.open(path, create=False, read_only=True) as store:
        chosen = _choose_subject(store, subject or os.environ.get(SUBJECT_ENV) or None)
        code = chosen.code
        ct, pet, notes = subject_series(store, chosen.id)
        if ct is None and pet is None:
            raise ReaderError(f"The subject {code} has no CT or PET in the store.")
        segmentations = subject_segmentations(store, chosen.id)
        authors = {reader.id: reader.name for reader in store.readers()}
        layers: list[LayerData] = []
        if ct is not None:
            image = sitk.ReadImage(str(store.path(ct.pixel_path)))
            layers.append(ct_layer(image, f"{code} CT", {**_series_metadata(code, ct), "notes": notes}))
        if pet is not None:
            image = sitk.ReadImage(str(store.path(pet.pixel_path)))
            metadata = {**_series_metadata(code, pet), "notes": notes, "suv": suv_provenance(pet)}
            if metadata["units"] == "SUVbw":
                metadata.update(suv_factor=metadata["suv"].get("suvbw_factor"))
            layers.append(pet_layer(image, f"{code} PET", metadata, over_ct=ct is not None))
        layers += _segmentation_layers(store, code, segmentations, authors)
    return layers


def _segmentation_layers(
    store: Store, code: str, segmentations: list[Segmentation], authors: dict
) -> list[LayerData]:
    """One labels layer per segmentation; a lesion keeps its number (and colour) on CT and PET."""
    numbers: dict[str, int] = {}
    several_authors = len({seg.reader_id for seg in segmentations}) > 1
    layers = []
    for seg in segmentations:
        number = numbers.setdefault(seg.lesion_id, len(numbers) + 1)
        path = store.path(seg.mask_path or "")
        try:
            image = sitk.ReadImage(str(path))
        except RuntimeError:
            raise ReaderError(
                f"The mask of {code} {seg.lesion_name} v{seg.version} cannot be read ({path.name})."
            ) from None
        mask = (sitk.GetArrayFromImage(image) == int(seg.label or 1)).astype(np.uint16) * number
        modality = "PET" if seg.series_modality == "PT" else "CT"
        metadata = {
            "source": "PALMARES store",
            "subject_code": code,
            "series_id": seg.series_id,
            "series_modality": seg.series_modality,
            "lesion_id": seg.lesion_id,
            "lesion_name": seg.lesion_name,
            "organ": seg.organ,
            "segmentation_id": seg.id,
            "version": seg.version,
            "status": seg.status,
            "author": authors.get(seg.reader_id, seg.reader_id),
            "method": seg.method,
            "label": number,
            "stored_label": int(seg.label or 1),
            "voxel_count": seg.voxel_count,
            "volume_ml": seg.volume_ml,
        }
        name = f"{code} {seg.lesion_name} ({modality} v{seg.version})"
        if several_authors:
            name += f" {metadata['author']}"
        layers.append(labels_layer(mask, image, name, metadata))
    return layers

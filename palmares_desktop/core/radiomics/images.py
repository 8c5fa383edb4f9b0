"""Reading images and masks for radiomics, and describing them for provenance.

`read_image` accepts any file SimpleITK reads (NIfTI, NRRD, MHA, ...) or a folder holding one
DICOM series. PET series are converted to SUVbw (the PET preset's units) when the DICOM and SUV
modules are available; otherwise the folder is read as stored values with SimpleITK.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from palmares_desktop.core.radiomics.errors import RadiomicsError

log = logging.getLogger(__name__)


def read_image(path: str | Path, what: str = "image", suv: bool = True) -> sitk.Image:
    """A SimpleITK image from a file or a DICOM series folder; RadiomicsError in words otherwise.

    `what` names the input in messages ("image", "mask"). With `suv`, a PET DICOM series is
    returned in SUVbw.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise RadiomicsError(f"The {what} {path} does not exist.")
    if path.is_dir():
        return _read_dicom_folder(path, what, suv)
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise RadiomicsError(
            f"Cannot read the {what} file {path.name}: SimpleITK does not recognise it as an image "
            "(NIfTI, NRRD, MHA or DICOM), or the file is damaged.",
            reason=_first_line(exc),
        ) from None


def read_mask(path: str | Path, image: sitk.Image, label: int) -> sitk.Image:
    """The mask for `image`: a label map file (as `read_image`), or a DICOM SEG placed on the
    image's grid by its frame positions (SimpleITK reads a SEG's frames with a geometry of their
    own). For a SEG, `label` is the segment number; the result holds `label` inside it, 0 outside.
    """
    path = Path(path).expanduser()
    if not (path.is_file() and _is_dicom_seg(path)):
        return read_image(path, "mask", suv=False)
    from palmares_desktop.core.segmentation.labelmaps import (
        SegmentationError,
        binary_mask,
        read_label_map,
    )

    try:
        segment = binary_mask(read_label_map(path, reference=image), label)  # exact even if segments overlap
    except SegmentationError as exc:
        raise RadiomicsError(str(exc)) from None
    return segment if label == 1 else sitk.Cast(segment, sitk.sitkUInt16) * label


def _is_dicom_seg(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            if handle.read(132)[128:] != b"DICM":
                return False
        import pydicom

        return (
            pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality"]).get("Modality")
            == "SEG"
        )
    except Exception:  # noqa: BLE001 - unreadable as DICOM: let SimpleITK try and explain
        return False


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _read_dicom_folder(folder: Path, what: str, suv: bool) -> sitk.Image:
    try:  # the DICOM engineer's discovery sorts, validates and (for PET) scales properly
        from palmares_desktop.core.dicom import discovery, volume
    except ImportError:
        return _read_dicom_with_sitk(folder, what)
    from palmares_desktop.core.dicom.errors import DicomError

    try:
        scan = discovery.scan_folder(folder)
    except DicomError as exc:
        raise RadiomicsError(f"Cannot read the {what} folder {folder.name}: {exc}") from None
    usable = [s for s in scan.series if s.usable]
    if not usable:
        problems = "; ".join(p for s in scan.series for p in s.problems) or "no DICOM image series found"
        raise RadiomicsError(f"The {what} folder {folder.name} holds no usable DICOM series ({problems}).")
    if len(usable) > 1:
        names = ", ".join(f"{s.modality} {s.description or s.series_uid[-8:]}" for s in usable)
        raise RadiomicsError(
            f"The {what} folder {folder.name} holds {len(usable)} DICOM series ({names}): point to one series."
        )
    info = usable[0]
    scale = _suv_factors(info, what) if suv and info.modality == "PT" else None
    try:
        return volume.load_series(info, slice_scale=scale)
    except DicomError as exc:
        raise RadiomicsError(f"Cannot read the {what} series in {folder.name}: {exc}") from None


def _suv_factors(info: Any, what: str) -> dict[str, float] | None:
    """Per-slice SUVbw factors, so PET features are computed in SUV (the PET preset's units)."""
    try:
        from palmares_desktop.core.pet.suv import compute_suv_for_files
    except ImportError:
        log.warning("SUV module unavailable: PET series read in stored units")
        return None
    result = compute_suv_for_files(info.files)
    if result.error:
        raise RadiomicsError(f"Cannot convert the PET {what} to SUV: {result.error}")
    return dict(result.suvbw_factors)


def _read_dicom_with_sitk(folder: Path, what: str) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    series_ids = reader.GetGDCMSeriesIDs(str(folder))
    if not series_ids:
        raise RadiomicsError(f"The {what} folder {folder.name} holds no DICOM series.")
    if len(series_ids) > 1:
        raise RadiomicsError(
            f"The {what} folder {folder.name} holds {len(series_ids)} DICOM series: point to one series."
        )
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), series_ids[0]))
    try:
        return reader.Execute()
    except RuntimeError as exc:
        raise RadiomicsError(
            f"Cannot read the DICOM series in {folder.name}.", reason=_first_line(exc)
        ) from None


# ------------------------------------------------------------------------------------ provenance
def geometry(image: sitk.Image) -> dict[str, Any]:
    """Everything that places the voxels in space, JSON-safe."""
    return {
        "size": list(image.GetSize()),
        "spacing": list(image.GetSpacing()),
        "origin": list(image.GetOrigin()),
        "direction": list(image.GetDirection()),
        "pixel_type": image.GetPixelIDTypeAsString(),
        "components": image.GetNumberOfComponentsPerPixel(),
    }


def image_sha256(image: sitk.Image) -> str:
    """sha256 of the voxel buffer, prefixed by the geometry (so a shifted grid hashes differently).

    Recipe (stable, documented in docs/radiomics.md): sha256 over the UTF-8 text
    "pixel_type|size|spacing|origin|direction\\n" (Python reprs of the tuples) followed by the raw
    voxel bytes in SimpleITK's memory order (x fastest). No copy of the buffer is made.
    """
    header = "|".join(
        str(v)
        for v in (
            image.GetPixelIDTypeAsString(),
            image.GetSize(),
            image.GetSpacing(),
            image.GetOrigin(),
            image.GetDirection(),
        )
    )
    digest = hashlib.sha256(header.encode("utf-8") + b"\n")
    digest.update(sitk.GetArrayViewFromImage(image).data)
    return digest.hexdigest()

"""Assemble one scanned series into a SimpleITK volume with its DICOM geometry.

Values are the rescaled values, stored × RescaleSlope + RescaleIntercept, per slice (so PET series
whose slope changes from slice to slice come out right), optionally times a per-instance factor
(`slice_scale`, e.g. the SUVbw factors of core.pet.suv). Memory stays near one copy of the volume:
the output image is allocated once by SimpleITK and each slice is written into it in place.
"""

from __future__ import annotations

import ctypes
import warnings
from collections.abc import Mapping

import numpy as np
import SimpleITK as sitk

from palmares_desktop.core.dicom.discovery import SeriesInfo, build_series
from palmares_desktop.core.dicom.errors import DicomError
from palmares_desktop.core.dicom.headers import FrameInfo, read_instance
from palmares_desktop.core.dicom.pixels import FrameReader, stored_dtype

#: CT voxels marked as padding (outside the scanned field of view) get this value: air, the
#: bottom of the usual CT scale, so they never count as tissue in statistics.
CT_PADDING_HU = -1024

_SITK_TYPES = {
    np.dtype(np.int16): sitk.sitkInt16,
    np.dtype(np.int32): sitk.sitkInt32,
    np.dtype(np.float32): sitk.sitkFloat32,
}


class _IntegerOverflow(Exception):
    """Internal: rescaled values do not fit int16; retry with a wider type."""


def load_series(info: SeriesInfo, slice_scale: Mapping[str, float] | None = None) -> sitk.Image:
    """Load a usable series from `scan_folder` as a 3-D SimpleITK image.

    * Values: stored × slope + intercept of each slice, times `slice_scale[SOPInstanceUID]` when
      given. Pixel type: float32 for PET, when any slope is not 1 or intercept not an integer, or
      when `slice_scale` is given; otherwise int16 (int32 if the values do not fit), e.g. CT in HU.
    * CT: voxels equal to Pixel Padding Value (0028,0120), or inside the Pixel Padding Range Limit
      (0028,0121) when present, are set to -1024 HU (`CT_PADDING_HU`, air), so the padding
      (often -2000 or -3024) does not pollute statistics.
    * Geometry: origin = ImagePositionPatient of the first slice along the normal; spacing = pixel
      spacing and the regular slice step; direction = row, column and normal cosines.

    Raises DicomError for a series marked unusable, files that changed or became unreadable since
    the scan, undecodable pixel data, or a slice_scale without a factor for some instance.
    """
    if not info.usable:
        raise DicomError(
            f"Series '{info.description or info.series_uid}' ({info.modality}) cannot be loaded as a "
            f"regular volume: {' '.join(info.problems)}"
        )
    frames = info.frames or _rescan(info)
    if len(frames) != info.n_slices:
        raise DicomError("The files of this series changed since it was scanned; scan the folder again.")
    scales = _scales(frames, slice_scale)
    integer = (
        info.modality != "PT"
        and scales is None
        and all(f.slope == 1 and float(f.intercept).is_integer() for f in frames)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if integer:
            try:
                image = _assemble(info, frames, np.dtype(np.int16), None)
            except _IntegerOverflow:
                image = _assemble(info, frames, np.dtype(np.int32), None)
        else:
            image = _assemble(info, frames, np.dtype(np.float32), scales)
    image.SetOrigin(info.origin)
    image.SetSpacing(info.spacing)
    image.SetDirection(info.direction)
    return image


def _assemble(info: SeriesInfo, frames: list[FrameInfo], dtype: np.dtype, scales) -> sitk.Image:
    header = frames[0].header
    image = sitk.Image([header.cols, header.rows, len(frames)], _SITK_TYPES[dtype])
    volume = _writable_array(image)
    stored = np.empty((header.rows, header.cols), stored_dtype(header))
    work = None if np.issubdtype(dtype, np.integer) else np.empty(stored.shape, np.float64)
    limits = np.iinfo(dtype) if work is None else None
    pad_ct = info.modality == "CT"
    reader = FrameReader()
    for k, frame in enumerate(frames):
        reader.read(frame.header, frame.frame_index, stored)
        padding = _padding_mask(stored, frame) if pad_ct else None
        target = volume[k]
        if work is None:
            intercept = int(frame.intercept)
            if int(stored.min()) + intercept < limits.min or int(stored.max()) + intercept > limits.max:
                raise _IntegerOverflow
            # Same dtype: add in int16; otherwise (e.g. uint16 stored) compute in int32, then narrow.
            addend = target.dtype.type(intercept) if stored.dtype == target.dtype else np.int64(intercept)
            np.add(stored, addend, out=target, casting="unsafe")
        else:
            np.multiply(stored, frame.slope, out=work)
            work += frame.intercept
            if scales is not None:
                work *= scales[k]
            target[...] = work
        if padding is not None:
            target[padding] = CT_PADDING_HU
    return image


def _padding_mask(stored: np.ndarray, frame: FrameInfo) -> np.ndarray | None:
    padding = frame.header.pixel_padding
    if padding is None:
        return None
    value, limit = (_as_stored(v, stored.dtype) if v is not None else None for v in padding)
    if limit is None:
        mask = stored == value
    else:
        low, high = min(value, limit), max(value, limit)
        mask = (stored >= low) & (stored <= high)
    return mask if mask.any() else None


def _as_stored(value: int, dtype: np.dtype) -> int:
    """PixelPaddingValue is in stored units but may be written with the other signedness."""
    bits = dtype.itemsize * 8
    return int(np.array(value % (1 << bits), dtype=f"u{dtype.itemsize}").view(dtype))


def _scales(frames: list[FrameInfo], slice_scale: Mapping[str, float] | None) -> list[float] | None:
    if slice_scale is None:
        return None
    missing = sorted({f.header.sop_instance_uid for f in frames} - set(slice_scale))
    if missing:
        raise DicomError(f"slice_scale has no factor for {len(missing)} instance(s), e.g. {missing[0]}.")
    return [float(slice_scale[f.header.sop_instance_uid]) for f in frames]


def _writable_array(image: sitk.Image) -> np.ndarray:
    """A writable numpy view of a SimpleITK image's own buffer, so the volume is built in place
    (GetImageFromArray would need a second full copy). Valid only while `image` is alive."""
    view = sitk.GetArrayViewFromImage(image)  # read-only view; makes the buffer unique
    buffer = (ctypes.c_char * view.nbytes).from_address(view.__array_interface__["data"][0])
    return np.frombuffer(buffer, dtype=view.dtype).reshape(view.shape)


def _rescan(info: SeriesInfo) -> list[FrameInfo]:
    """Headers for a SeriesInfo built without them (e.g. by hand from file paths)."""
    headers = []
    for path in info.files:
        outcome = read_instance(path)
        if isinstance(outcome, str):
            raise DicomError(f"{path}: {outcome}.")
        headers.append(outcome)
    matching = [s for s in build_series(headers) if s.series_uid == info.series_uid and s.part == info.part]
    if len(matching) != 1 or not matching[0].usable:
        raise DicomError("The files of this series no longer form one usable volume; scan the folder again.")
    return matching[0].frames

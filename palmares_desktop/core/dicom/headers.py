"""Read, once per file and without decoding pixels, everything discovery and volume loading need.

`read_instance(path)` returns an `InstanceHeader` (with one `FrameInfo` per 2-D image, so classic
single-frame files and Enhanced multi-frame objects look the same to the rest of the code) or, for a
file that cannot become part of a volume, the reason in words. It also remembers where the native
pixel bytes start in the file, so `volume.load_series` can read them straight into the volume
without parsing the header a second time.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

# Modalities whose objects are never images of a volume (they may reference one).
NON_IMAGE_MODALITIES = frozenset(
    {"RTSTRUCT", "RTPLAN", "RTRECORD", "RTDOSE", "SEG", "SR", "KO", "PR", "REG", "RWV",
     "DOC", "FID", "PLAN", "AU", "ECG", "HD", "RESP", "M3D", "OSS", "ASMT", "TEXTUREMAP"}
)  # fmt: skip
_SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
_DEFLATED = "1.2.840.10008.1.2.1.99"
_PIXEL_TAGS_LE = (b"\xe0\x7f\x10\x00", b"\xe0\x7f\x08\x00", b"\xe0\x7f\x09\x00")
_PIXEL_TAGS_BE = (b"\x7f\xe0\x00\x10", b"\x7f\xe0\x00\x08", b"\x7f\xe0\x00\x09")
_LONG_VRS = (b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN")
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


@dataclass(eq=False)
class FrameInfo:
    """One 2-D image: a single-frame file, or one frame of a multi-frame (Enhanced) file."""

    header: InstanceHeader = field(repr=False)
    frame_index: int | None  # 0-based frame in a multi-frame file, None for a single-frame file
    position: tuple[float, float, float] | None  # ImagePositionPatient (mm)
    orientation: tuple[float, ...] | None  # ImageOrientationPatient (row cosines, column cosines)
    pixel_spacing: tuple[float, float] | None  # (between rows, between columns) in mm
    slice_thickness: float | None
    slope: float
    intercept: float
    temporal_key: str | None  # distinguishes time points of a dynamic acquisition


@dataclass(eq=False)
class InstanceHeader:
    """What we keep of one DICOM file's header (never the whole dataset, to keep scans light)."""

    path: Path
    file_size: int
    mtime_ns: int
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax: str
    series_uid: str
    study_uid: str
    patient_id: str
    modality: str
    description: str
    manufacturer: str
    frame_of_reference_uid: str
    series_number: int | None
    instance_number: int | None
    image_type: tuple[str, ...]
    rows: int
    cols: int
    samples_per_pixel: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    photometric: str
    number_of_frames: int
    gantry_tilt: float
    pixel_padding: tuple[int, int | None] | None  # (PixelPaddingValue, PixelPaddingRangeLimit)
    pixel_value_offset: int | None  # where native little-endian pixel bytes start, else None
    frames: list[FrameInfo] = field(default_factory=list, repr=False)
    # PET NumberOfSlices (0054,0081): how many slices the scanner made, to spot an incomplete export
    announced_slices: int | None = None


def read_instance(path: Path) -> InstanceHeader | str:
    """Read one file's header; return the header, or why the file is not part of any volume."""
    try:
        stat = path.stat()
    except OSError as exc:
        return _os_reason(exc)
    if stat.st_size == 0:
        return "empty file (0 bytes)"
    try:
        with open(path, "rb") as fp, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about vendor quirks it can read anyway
            ds = pydicom.dcmread(fp, stop_before_pixels=True, force=False)
            element_start = fp.tell()
            element_head = fp.read(12)
    except InvalidDicomError:
        return "not a DICOM file (no 'DICM' marker after the 128-byte preamble)"
    except OSError as exc:
        return _os_reason(exc)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on damaged headers
        return f"damaged or truncated DICOM header ({_short(exc)})"
    try:
        return _header_from_dataset(path, stat, ds, element_start, element_head)
    except _Skip as skip:
        return str(skip)
    except (ValueError, TypeError, AttributeError, IndexError, KeyError, OverflowError) as exc:
        return f"damaged DICOM header: a value cannot be read ({_short(exc)})"


class _Skip(Exception):
    """Internal: the file is valid DICOM but not an image slice of a volume."""


def _header_from_dataset(path, stat, ds, element_start: int, element_head: bytes) -> InstanceHeader:
    meta = ds.get("file_meta") or {}
    transfer_syntax = str(meta.get("TransferSyntaxUID", "") or "")
    sop_class = str(ds.get("SOPClassUID", "") or meta.get("MediaStorageSOPClassUID", "") or "")
    modality = str(ds.get("Modality", "") or "").strip().upper()
    if _header_truncated(ds, element_head):
        raise _Skip("truncated file: it ends inside its header")
    if sop_class == _DICOMDIR_CLASS or "DirectoryRecordSequence" in ds:
        raise _Skip("DICOMDIR index file (the images it lists are read directly)")
    if modality in NON_IMAGE_MODALITIES:
        raise _Skip(f"non-image object ({modality})")
    if not modality and _class_name(sop_class).endswith(("SR Storage", "Document Storage")):
        raise _Skip(f"non-image object ({_class_name(sop_class)})")
    if transfer_syntax == _DEFLATED:
        # The dataset body is zlib-compressed: byte offsets mean nothing, so re-read it whole.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            full = pydicom.dcmread(path)
        has_pixels = "PixelData" in full or "FloatPixelData" in full or "DoubleFloatPixelData" in full
        element_head = b""
    else:
        has_pixels = element_head[:4] in _PIXEL_TAGS_LE + _PIXEL_TAGS_BE
    if not has_pixels:
        what = modality or "unknown modality"
        raise _Skip(f"DICOM file without pixel data ({what}, {_class_name(sop_class)})")
    if modality == "SM":
        raise _Skip("whole-slide microscopy image (SM): open it as a slide, not as a volume")
    if sop_class == _SECONDARY_CAPTURE_PREFIX or sop_class.startswith(_SECONDARY_CAPTURE_PREFIX + "."):
        raise _Skip("secondary capture image (a screenshot or dose report), not part of a volume")
    image_type = tuple(str(v).strip().upper() for v in _as_list(ds.get("ImageType")))
    if "LOCALIZER" in image_type:
        raise _Skip(f"localizer (scout) image, not part of a volume ({modality})")
    for keyword in ("SOPInstanceUID", "SeriesInstanceUID", "Rows", "Columns"):
        if not ds.get(keyword):
            raise _Skip(f"damaged DICOM image: {keyword} is missing")

    header = InstanceHeader(
        path=path,
        file_size=stat.st_size,
        mtime_ns=stat.st_mtime_ns,
        sop_instance_uid=str(ds.SOPInstanceUID),
        sop_class_uid=sop_class,
        transfer_syntax=transfer_syntax,
        series_uid=str(ds.SeriesInstanceUID),
        study_uid=str(ds.get("StudyInstanceUID", "") or ""),
        patient_id=str(ds.get("PatientID", "") or ""),
        modality=modality,
        description=str(ds.get("SeriesDescription", "") or "").strip(),
        manufacturer=str(ds.get("Manufacturer", "") or "").strip(),
        frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "") or ""),
        series_number=_int_or_none(ds.get("SeriesNumber")),
        instance_number=_int_or_none(ds.get("InstanceNumber")),
        image_type=image_type,
        rows=int(ds.Rows),
        cols=int(ds.Columns),
        samples_per_pixel=int(ds.get("SamplesPerPixel", 1) or 1),
        bits_allocated=int(ds.get("BitsAllocated", 16) or 16),
        bits_stored=int(ds.get("BitsStored", 0) or ds.get("BitsAllocated", 16) or 16),
        pixel_representation=int(ds.get("PixelRepresentation", 0) or 0),
        photometric=str(ds.get("PhotometricInterpretation", "") or "").strip().upper(),
        number_of_frames=max(1, _int_or_none(ds.get("NumberOfFrames")) or 1),
        gantry_tilt=_gantry_tilt(ds),
        pixel_padding=_pixel_padding(ds),
        pixel_value_offset=None,
        announced_slices=_int_or_none(ds.get("NumberOfSlices")) if modality == "PT" else None,
    )
    header.pixel_value_offset = _check_pixel_element(header, element_start, element_head)
    header.frames = _frames(ds, header)
    return header


def _header_truncated(ds, head: bytes) -> bool:
    """pydicom silently keeps a value cut short by the end of the file; catch that here."""
    if head:
        # Stopped at the pixel data element: its own header must be complete.
        explicit = head[4:6] in _LONG_VRS
        return head[:4] in _PIXEL_TAGS_LE + _PIXEL_TAGS_BE and len(head) < (12 if explicit else 8)
    if len(ds) == 0:
        return True
    last = ds.get_item(list(ds.keys())[-1])
    length, value = getattr(last, "length", None), getattr(last, "value", None)
    if isinstance(value, bytes) and length not in (None, 0xFFFFFFFF) and len(value) < length:
        return True
    # A pixel data group length announces pixel data that is not there.
    group_length = ds.get((0x7FE0, 0x0000))
    return group_length is not None and bool(group_length.value)


def _check_pixel_element(header: InstanceHeader, start: int, head: bytes) -> int | None:
    """Catch truncated pixel data now (the header read stops before it) and return the offset of
    native little-endian pixel bytes, which load_series can then read without pydicom."""
    if len(head) < 8 or head[:4] in _PIXEL_TAGS_BE or head[:4] != _PIXEL_TAGS_LE[0]:
        return None  # big endian, deflated or float pixel data: pydicom decodes those at load time
    explicit = head[4:6] in _LONG_VRS and head[6:8] == b"\x00\x00"  # VR + reserved bytes
    length = int.from_bytes(head[8:12] if explicit else head[4:8], "little")
    value_start = start + (12 if explicit else 8)
    if length == 0xFFFFFFFF:  # encapsulated (compressed): its end must be the sequence delimiter
        with open(header.path, "rb") as fp:
            fp.seek(max(value_start, header.file_size - 4096))
            if _SEQUENCE_DELIMITER not in fp.read():
                raise _Skip("truncated file: the compressed pixel data has no end marker")
        return None
    bits = header.bits_allocated
    expected = header.rows * header.cols * header.samples_per_pixel * header.number_of_frames
    expected = (expected * bits + 7) // 8
    if value_start + min(length, expected) > header.file_size:
        missing = value_start + min(length, expected) - header.file_size
        raise _Skip(f"truncated file: it ends {missing} bytes before the end of its pixel data")
    if length < expected:
        raise _Skip(f"pixel data is shorter than Rows x Columns x frames says ({length} of {expected} bytes)")
    if UID(header.transfer_syntax).is_encapsulated or bits not in (8, 16, 32):
        return None
    return value_start


def _frames(ds, header: InstanceHeader) -> list[FrameInfo]:
    shared = _first_item(ds.get("SharedFunctionalGroupsSequence"))
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    n = header.number_of_frames
    if shared is None and not per_frame:
        temporal = _classic_temporal_key(ds)
        # Classic multi-frame without per-frame geometry: only the first frame's position is known.
        position = _floats(ds.get("ImagePositionPatient"), 3) if n == 1 else None
        return [
            FrameInfo(
                header=header,
                frame_index=None if n == 1 else i,
                position=position,
                orientation=_floats(ds.get("ImageOrientationPatient"), 6),
                pixel_spacing=_floats(ds.get("PixelSpacing"), 2),
                slice_thickness=_float_or_none(ds.get("SliceThickness")),
                slope=_float_or_none(ds.get("RescaleSlope")) or 1.0,
                intercept=_float_or_none(ds.get("RescaleIntercept")) or 0.0,
                temporal_key=temporal,
            )
            for i in range(n)
        ]
    frames = []
    for i in range(n):
        item = per_frame[i] if per_frame and i < len(per_frame) else None

        def group(sequence: str, keyword: str, item=item):
            return _functional_group_value(item, shared, sequence, keyword)

        slope = group("PixelValueTransformationSequence", "RescaleSlope")
        intercept = group("PixelValueTransformationSequence", "RescaleIntercept")
        if slope is None and intercept is None:  # some writers keep them at the top level
            slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
        content = _first_item(item.get("FrameContentSequence")) if item is not None else None
        temporal = content.get("TemporalPositionIndex") if content is not None else None
        frames.append(
            FrameInfo(
                header=header,
                frame_index=i,
                position=_floats(group("PlanePositionSequence", "ImagePositionPatient"), 3),
                orientation=_floats(group("PlaneOrientationSequence", "ImageOrientationPatient"), 6),
                pixel_spacing=_floats(group("PixelMeasuresSequence", "PixelSpacing"), 2),
                slice_thickness=_float_or_none(group("PixelMeasuresSequence", "SliceThickness")),
                slope=_float_or_none(slope) or 1.0,
                intercept=_float_or_none(intercept) or 0.0,
                temporal_key=None if temporal is None else f"temporal position {temporal}",
            )
        )
    return frames


def _functional_group_value(item, shared, sequence: str, keyword: str):
    """Per-frame functional group first, then the shared one (DICOM PS3.3 C.7.6.16)."""
    for source in (item, shared):
        if source is None:
            continue
        inner = _first_item(source.get(sequence))
        if inner is not None and inner.get(keyword) is not None:
            return inner.get(keyword)
    return None


def _classic_temporal_key(ds) -> str | None:
    if (
        ds.get("TemporalPositionIdentifier") is not None
        and (_int_or_none(ds.get("NumberOfTemporalPositions")) or 0) > 1
    ):
        return f"temporal position {ds.TemporalPositionIdentifier}"
    # Dynamic PET: several time slices share positions; FrameReferenceTime tells them apart.
    if (_int_or_none(ds.get("NumberOfTimeSlices")) or 1) > 1 and ds.get("FrameReferenceTime") is not None:
        return f"frame time {float(ds.FrameReferenceTime) / 1000:g} s"
    return None


def _gantry_tilt(ds) -> float:
    tilt = ds.get("GantryDetectorTilt")
    if tilt is None:
        shared = _first_item(ds.get("SharedFunctionalGroupsSequence"))
        details = _first_item(shared.get("CTAcquisitionDetailsSequence")) if shared is not None else None
        tilt = details.get("GantryDetectorTilt") if details is not None else None
    return _float_or_none(tilt) or 0.0


def _pixel_padding(ds) -> tuple[int, int | None] | None:
    value = _int_or_none(ds.get("PixelPaddingValue"))
    if value is None:
        return None
    return value, _int_or_none(ds.get("PixelPaddingRangeLimit"))


def _first_item(sequence):
    try:
        return sequence[0] if sequence else None
    except (TypeError, IndexError):
        return None


def _as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, str | bytes):
        return [value]
    try:
        return list(value)
    except TypeError:
        return [value]


def _floats(value, n: int) -> tuple[float, ...] | None:
    values = _as_list(value)
    if len(values) != n:
        return None
    try:
        return tuple(float(v) for v in values)
    except (TypeError, ValueError):
        return None


def _float_or_none(value) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _int_or_none(value) -> int | None:
    number = _float_or_none(value)
    return None if number is None else int(number)


def _class_name(sop_class: str) -> str:
    if not sop_class:
        return "no SOP class"
    name = UID(sop_class).name
    return name if name != sop_class else f"SOP class {sop_class}"


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "cannot be read: permission denied"
    return f"cannot be read: {exc.strerror or exc}"


def _short(exc: Exception, limit: int = 160) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def file_unchanged(header: InstanceHeader) -> bool:
    """True when the file on disk is still the one whose header we read (size and time)."""
    try:
        stat = os.stat(header.path)
    except OSError:
        return False
    return stat.st_size == header.file_size and stat.st_mtime_ns == header.mtime_ns

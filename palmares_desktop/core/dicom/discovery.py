"""Find every image series in a folder and say, in words, whether each can be loaded as a volume.

`iter_scan_folder(path)` walks the folder recursively (any file names; a DICOMDIR is not needed and
the DICOMDIR file itself is skipped), reads each header once with pydicom (`stop_before_pixels`),
and groups the images: by SeriesInstanceUID, then split by orientation, matrix, pixel spacing and
time point (DOMAIN.md §5); localizers are dropped. Each stack is then checked by `geometry.py`.
Files that cannot be part of a volume (not DICOM, empty, truncated, unreadable, non-image objects
such as RTSTRUCT/SEG/SR/RWVM/presentation states, secondary captures, localizers, duplicate
copies) are listed in `ScanResult.skipped` with the reason.
"""

from __future__ import annotations

import os
import stat
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from palmares_desktop.core.dicom.errors import DicomError
from palmares_desktop.core.dicom.geometry import assess_stack
from palmares_desktop.core.dicom.headers import FrameInfo, InstanceHeader, read_instance
from palmares_desktop.core.dicom.pixels import can_decode
from palmares_desktop.core.tasks import Progress, Task, run

VOLUME_PHOTOMETRICS = ("MONOCHROME1", "MONOCHROME2")


@dataclass
class SeriesInfo:
    """One stack of images that may become a volume (a series, or one part of a mixed series)."""

    series_uid: str
    study_uid: str
    patient_id: str  # original PatientID: for grouping by patient only; never printed or exported
    modality: str
    description: str
    manufacturer: str
    frame_of_reference_uid: str
    n_instances: int  # DICOM instances (files) in this stack
    rows: int
    cols: int
    spacing: tuple[float, float, float] | None  # (x, y, z) mm, SimpleITK order
    slice_thickness: float | None
    usable: bool
    problems: list[str]
    files: list[Path]  # instances sorted along the slice normal
    sop_instance_uids: list[str]  # same order as files
    origin: tuple[float, float, float] | None
    direction: tuple[float, ...] | None  # 9 values, row-major (SimpleITK SetDirection order)
    n_slices: int = 0  # 2-D slices in the volume (> n_instances for Enhanced multi-frame objects)
    series_number: int | None = None
    part: str | None = None  # "2/3" when one SeriesInstanceUID had to be split into stacks
    # Frame-level headers kept from the scan so load_series need not parse the files again.
    frames: list[FrameInfo] = field(default_factory=list, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary without patient identifiers."""
        return {
            "series_uid": self.series_uid,
            "part": self.part,
            "study_uid": self.study_uid,
            "series_number": self.series_number,
            "modality": self.modality,
            "description": self.description,
            "manufacturer": self.manufacturer,
            "frame_of_reference_uid": self.frame_of_reference_uid,
            "n_instances": self.n_instances,
            "n_slices": self.n_slices,
            "rows": self.rows,
            "cols": self.cols,
            "spacing": list(self.spacing) if self.spacing else None,
            "slice_thickness": self.slice_thickness,
            "origin": list(self.origin) if self.origin else None,
            "direction": list(self.direction) if self.direction else None,
            "usable": self.usable,
            "problems": list(self.problems),
            "files": [str(p) for p in self.files],
            "sop_instance_uids": list(self.sop_instance_uids),
        }


@dataclass
class ScanResult:
    root: Path
    series: list[SeriesInfo]
    skipped: list[tuple[str, str]]  # (path, reason in words)

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "series": [s.to_dict() for s in self.series],
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
        }


def iter_scan_folder(path: str | os.PathLike) -> Task[ScanResult]:
    """Scan a folder (or one file) for DICOM image series; yields Progress, returns a ScanResult.

    Raises DicomError only when the path itself does not exist or is not readable; every problem
    with individual files ends up in the result."""
    root = Path(path)
    if not root.exists():
        raise DicomError(f"Folder not found: {root}")
    skipped: list[tuple[str, str]] = []
    files = [root] if root.is_file() else _list_files(root, skipped)
    headers: list[InstanceHeader] = []
    seen: dict[str, Path] = {}
    yield Progress(0, len(files), "reading DICOM headers")
    for i, file in enumerate(files, start=1):
        outcome = read_instance(file)
        if isinstance(outcome, str):
            skipped.append((str(file), outcome))
        elif outcome.sop_instance_uid in seen:
            skipped.append(
                (str(file), f"second copy of an instance already read ({seen[outcome.sop_instance_uid]})")
            )
        else:
            seen[outcome.sop_instance_uid] = file
            headers.append(outcome)
        if i % 16 == 0 or i == len(files):
            yield Progress(i, len(files), "reading DICOM headers")
    series = build_series(headers)
    skipped.sort()
    return ScanResult(root=root, series=series, skipped=skipped)


def scan_folder(path: str | os.PathLike) -> ScanResult:
    """`iter_scan_folder` without progress reporting."""
    return run(iter_scan_folder(path))


def same_frame_of_reference(a: SeriesInfo, b: SeriesInfo) -> bool:
    """True when two series share a (non-empty) FrameOfReferenceUID, i.e. their patient coordinates
    can be fused directly (PET on CT) without registration (DOMAIN.md §5)."""
    return bool(a.frame_of_reference_uid) and a.frame_of_reference_uid == b.frame_of_reference_uid


def build_series(headers: list[InstanceHeader]) -> list[SeriesInfo]:
    """Group image headers into stacks and assess each one (public for load_series' re-scan)."""
    stacks: dict[str, dict[tuple, list[FrameInfo]]] = defaultdict(lambda: defaultdict(list))
    for header in headers:
        for frame in header.frames:
            stacks[header.series_uid][_stack_key(header, frame)].append(frame)
    result = []
    for parts in stacks.values():
        keys = sorted(parts, key=lambda k: repr(k))
        split_note = _split_note(keys) if len(keys) > 1 else None
        for number, key in enumerate(keys, start=1):
            info = _series_info(parts[key])
            if split_note:
                info.part = f"{number}/{len(keys)}"
                info.problems.insert(0, f"{split_note}; this is part {info.part}.")
            result.append(info)
    result.sort(
        key=lambda s: (s.study_uid, s.series_number is None, s.series_number or 0, s.series_uid, s.part or "")
    )
    return result


def _list_files(root: Path, skipped: list[tuple[str, str]]) -> list[Path]:
    def unreadable(error: OSError) -> None:
        skipped.append((str(error.filename), "folder cannot be read: " + (error.strerror or str(error))))

    files = []
    for folder, dirs, names in os.walk(root, onerror=unreadable):
        dirs.sort()
        for name in list(dirs):
            path = Path(folder) / name
            if path.is_symlink():  # os.walk does not follow it either: say so instead of saying nothing
                dirs.remove(name)
                skipped.append(
                    (
                        str(path),
                        "link to a folder, not followed (it may lead outside the export, or in a loop)",
                    )
                )
        for name in sorted(names):
            path = Path(folder) / name
            if name.upper() == "DICOMDIR":
                skipped.append((str(path), "DICOMDIR index file (the images it lists are read directly)"))
            elif reason := _not_a_regular_file(path):
                skipped.append((str(path), reason))
            else:
                files.append(path)
    return files


def _not_a_regular_file(path: Path) -> str | None:
    """Why `path` is not read (a FIFO would block the scan forever, a device never ends), or None."""
    link = "link to " if path.is_symlink() else ""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return "broken link: its target does not exist" if link else f"cannot be read: {exc.strerror}"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISFIFO(mode):
        return f"{link}a named pipe (FIFO), not a file: not read"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return f"{link}a device, not a file: not read"
    if stat.S_ISSOCK(mode):
        return f"{link}a socket, not a file: not read"
    return f"{link}something other than a file: not read"


def _stack_key(header: InstanceHeader, frame: FrameInfo) -> tuple:
    orientation = tuple(round(v, 3) + 0.0 for v in frame.orientation) if frame.orientation else None
    spacing = tuple(round(v, 4) for v in frame.pixel_spacing) if frame.pixel_spacing else None
    return (orientation, (header.rows, header.cols), spacing, frame.temporal_key or "")


_KEY_WORDS = ("orientation", "matrix size", "pixel spacing", "time point")


def _split_note(keys: list[tuple]) -> str:
    differing = [word for i, word in enumerate(_KEY_WORDS) if len({k[i] for k in keys}) > 1]
    return f"This series mixes images of different {' and '.join(differing)}, listed as {len(keys)} separate stacks"


def _series_info(frames: list[FrameInfo]) -> SeriesInfo:
    geometry = assess_stack(frames)
    ordered = geometry.frames
    first = ordered[0].header
    headers = list(dict.fromkeys(f.header for f in ordered))  # unique, in slice order
    problems = list(geometry.problems)
    usable = geometry.usable

    def fail(message: str) -> None:
        nonlocal usable
        problems.append(message)
        usable = False

    for_uids = {h.frame_of_reference_uid for h in headers}
    if len(for_uids) > 1:
        fail(f"Slices belong to {len(for_uids)} different frames of reference (FrameOfReferenceUID).")
    if not first.frame_of_reference_uid:
        problems.append("No FrameOfReferenceUID: this series cannot be matched to others for fusion.")
    formats = {(h.bits_allocated, h.pixel_representation, h.samples_per_pixel) for h in headers}
    if len(formats) > 1:
        fail("Slices differ in pixel format (bits allocated, signedness or samples per pixel).")
    if first.samples_per_pixel != 1 or first.photometric not in VOLUME_PHOTOMETRICS:
        fail(
            f"Colour images ({first.photometric or 'unknown photometric'}) cannot be loaded as a grey-level volume."
        )
    if first.bits_allocated not in (8, 16, 32):
        fail(f"{first.bits_allocated}-bit pixels are not supported for volumes.")
    undecodable = sorted({h.transfer_syntax for h in headers if not can_decode(h.transfer_syntax)})
    for syntax in undecodable:
        fail(f"Pixel data is compressed with transfer syntax {syntax}, which no installed decoder can read.")
    announced = first.announced_slices
    if announced and first.number_of_frames == 1 and len(ordered) < announced:
        # Contiguous, so still loadable, but a PACS transfer that stopped early looks just like this.
        problems.append(
            f"The folder holds only {len(ordered)} of the {announced} slices the scanner made "
            "(NumberOfSlices): the export looks incomplete."
        )
    thicknesses = sorted({round(f.slice_thickness, 3) for f in ordered if f.slice_thickness is not None})
    if len(thicknesses) > 1:
        problems.append(
            f"Slice thickness varies between slices ({thicknesses[0]:g} to {thicknesses[-1]:g} mm)."
        )
    return SeriesInfo(
        series_uid=first.series_uid,
        study_uid=first.study_uid,
        patient_id=first.patient_id,
        modality=first.modality,
        description=first.description,
        manufacturer=first.manufacturer,
        frame_of_reference_uid=first.frame_of_reference_uid,
        n_instances=len(headers),
        rows=first.rows,
        cols=first.cols,
        spacing=geometry.spacing,
        slice_thickness=ordered[0].slice_thickness,
        usable=usable,
        problems=problems,
        files=[h.path for h in headers],
        sop_instance_uids=[h.sop_instance_uid for h in headers],
        origin=geometry.origin,
        direction=geometry.direction,
        n_slices=len(ordered),
        series_number=first.series_number,
        frames=ordered,
    )

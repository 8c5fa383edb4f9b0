"""Label maps made elsewhere (NIfTI, NRRD, DICOM SEG) become segmentation versions in the store.

A segmentation in the store is a binary uint8 NRRD under `masks/<segmentation_id>.nrrd` with
exactly its series' voxel grid, so feature extraction never has to resample or guess. Anything
that does not sit on that grid is refused with the two geometries in words.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from palmares_desktop.core import modalities
from palmares_desktop.core.model import Lesion, Segmentation, Series, Subject
from palmares_desktop.core.segmentation.geometry import (
    GeometryMismatchError,
    Grid,
    SegmentationError,
    check_geometry,
)
from palmares_desktop.core.segmentation.labels import label_problem, label_values_problem
from palmares_desktop.core.store import Store, file_sha256, records
from palmares_desktop.core.store import segmentations as chains
from palmares_desktop.core.store.files import discard, publish
from palmares_desktop.core.store.store import new_id

__all__ = [
    "GeometryMismatchError",
    "LabelMap",
    "SegmentationError",
    "add_segmentation",
    "binary_mask",
    "check_geometry",
    "find_series",
    "read_label_map",
]

log = logging.getLogger(__name__)

MODALITY_NAMES = {"CT": "CT", "PT": "PET"}


@dataclass
class LabelMap:
    """A label map read from a file: integer labels on a voxel grid.

    For a DICOM SEG, `image` holds segment numbers (where segments overlap, the higher number is
    shown) and `frames` keeps every frame so that `binary_mask` extracts each segment exactly.
    """

    image: sitk.Image
    format: str  # "NRRD", "NIfTI", "DICOM SEG", "image"
    segment_names: dict[int, str] = field(default_factory=dict)
    overlapping: bool = False
    frames: list[tuple[int, int, np.ndarray]] | None = None  # (segment number, slice index, 2D bool)
    frame_of_reference_uid: str | None = None  # DICOM SEG only: the scan it was drawn on

    def labels(self) -> list[int]:
        if self.frames is not None:
            return sorted({seg for seg, _, plane in self.frames if plane.any()})
        values = np.unique(sitk.GetArrayViewFromImage(self.image))
        return [int(v) for v in values if v != 0]


# ---------------------------------------------------------------------------------------- reading
def _is_dicom(path: Path) -> bool:
    with path.open("rb") as handle:
        head = handle.read(132)
    return len(head) == 132 and head[128:132] == b"DICM"


def read_label_map(
    path: str | Path, reference: sitk.Image | Grid | None = None, image_name: str = "image"
) -> LabelMap:
    """Read a NIfTI/NRRD label map or a DICOM SEG.

    A DICOM SEG is placed on `reference` (the image it was drawn on) by each frame's position;
    without a reference it gets a grid of its own built from its frames (they must be evenly spaced).
    """
    path = Path(path)
    if path.is_dir():
        raise SegmentationError(f"{path.name} is a folder; give the label map file itself.")
    if not path.is_file():
        raise SegmentationError(f"There is no file {path}.")
    try:
        is_dicom = _is_dicom(path)
    except OSError as exc:
        raise SegmentationError(f"Cannot read {path.name}: {exc.strerror}.") from exc
    if is_dicom:
        return _read_dicom_seg(path, reference, image_name)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise SegmentationError(
            f"Cannot read {path.name}: it is not a NIfTI, NRRD or DICOM SEG file that can be opened."
        ) from exc
    fmt = (
        "NIfTI"
        if path.name.lower().endswith((".nii", ".nii.gz"))
        else "NRRD"
        if path.suffix.lower() in (".nrrd", ".nhdr")
        else path.suffix.lstrip(".").upper() or "image"
    )
    return LabelMap(_as_label_image(image, path.name), fmt)


def _as_label_image(image: sitk.Image, name: str) -> sitk.Image:
    """Check that an image can be a label map (one component, whole numbers)."""
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise SegmentationError(
            f"{name} has {image.GetNumberOfComponentsPerPixel()} values per voxel; "
            "a label map has one whole number per voxel."
        )
    problem = label_values_problem(sitk.GetArrayViewFromImage(image), name)
    if problem:
        raise SegmentationError(problem)
    if image.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64):
        image = sitk.Cast(image, sitk.sitkInt32)
    return image


def _frame_geometry(seg: Any, index: int) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Position, orientation (6 cosines) and pixel spacing (row, column) of one SEG frame."""
    frame = seg.PerFrameFunctionalGroupsSequence[index]
    shared = seg.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in seg else None

    def lookup(sequence: str, attribute: str) -> Any:
        for group in (frame, shared):
            if group is not None and sequence in group and attribute in group[sequence][0]:
                return group[sequence][0][attribute].value
        raise SegmentationError(f"The SEG has no {attribute} for frame {index + 1}.")

    position = np.array(lookup("PlanePositionSequence", "ImagePositionPatient"), dtype=float)
    orientation = np.array(lookup("PlaneOrientationSequence", "ImageOrientationPatient"), dtype=float)
    spacing = tuple(float(v) for v in lookup("PixelMeasuresSequence", "PixelSpacing"))
    return position, orientation, spacing


def _read_dicom_seg(path: Path, reference: sitk.Image | Grid | None, image_name: str) -> LabelMap:
    import highdicom as hd
    import pydicom

    try:
        seg = hd.seg.segread(path)
    except Exception as exc:  # noqa: BLE001 - any reason this is not a readable SEG
        try:
            modality = pydicom.dcmread(path, stop_before_pixels=True).get("Modality", "unknown")
        except Exception:  # noqa: BLE001
            modality = "unreadable"
        if modality != "SEG":
            raise SegmentationError(
                f"{path.name} is a DICOM {modality} object, not a segmentation (SEG); "
                "give a DICOM SEG, NIfTI or NRRD label map."
            ) from exc
        raise SegmentationError(f"Cannot read the DICOM SEG {path.name}: {exc}.") from exc

    pixels = np.asarray(seg.pixel_array)
    if pixels.ndim == 2:
        pixels = pixels[np.newaxis]
    if seg.SegmentationType == "FRACTIONAL":
        # A voxel belongs to the segment when its fraction is at least one half (as dcmqi does).
        planes = pixels.astype(float) >= 0.5 * float(seg.MaximumFractionalValue)
    else:
        planes = pixels > 0
    names = {int(n): str(seg.get_segment_description(n).segment_label) for n in seg.segment_numbers}
    geometry = [_frame_geometry(seg, i) for i in range(pixels.shape[0])]
    # A one-segment SEG may name its segment once, in the shared groups (highdicom 0.28 does).
    shared = seg.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in seg else None
    numbers = [
        int(
            (f if "SegmentIdentificationSequence" in f else shared)
            .SegmentIdentificationSequence[0]
            .ReferencedSegmentNumber
        )
        for f in seg.PerFrameFunctionalGroupsSequence
    ]

    rows, cols = int(seg.Rows), int(seg.Columns)
    grid = Grid.of(reference) if reference is not None else _grid_from_frames(geometry, rows, cols, path.name)
    frames = []
    for index, ((position, orientation, spacing), number) in enumerate(zip(geometry, numbers, strict=True)):
        k = _slice_index(grid, position, orientation, spacing, rows, cols, index, path.name, image_name)
        frames.append((number, k, planes[index]))

    labels = np.zeros(tuple(reversed(grid.size)), dtype=np.uint16)
    counts = np.zeros(labels.shape, dtype=np.uint8)
    for number, k, plane in sorted(frames, key=lambda f: f[0]):
        labels[k][plane] = number
        counts[k][plane] += 1
    image = grid.apply_to(sitk.GetImageFromArray(labels))
    return LabelMap(
        image,
        "DICOM SEG",
        names,
        overlapping=bool((counts > 1).any()),
        frames=frames,
        frame_of_reference_uid=str(seg.get("FrameOfReferenceUID", "")) or None,
    )


def _grid_from_frames(geometry: list, rows: int, cols: int, name: str) -> Grid:
    """A grid through the SEG's own frames, for a SEG read without its image."""
    position, orientation, spacing = geometry[0]
    row_dir, col_dir = orientation[:3], orientation[3:]
    normal = np.cross(row_dir, col_dir)
    depths = sorted({round(float(np.dot(p, normal)), 3) for p, _, _ in geometry})
    steps = np.diff(depths)
    if len(steps) and not np.allclose(steps, steps[0], rtol=0.01):
        raise SegmentationError(
            f"The frames of {name} are not evenly spaced (steps of {', '.join(f'{s:.4g}' for s in sorted(set(steps)))} "
            "mm); it can only be placed on the image it was drawn on."
        )
    first = min(geometry, key=lambda g: float(np.dot(g[0], normal)))[0]
    step = float(steps[0]) if len(steps) else 1.0
    direction = np.column_stack([row_dir, col_dir, normal]).ravel()
    return Grid((cols, rows, len(depths)), (spacing[1], spacing[0], step), tuple(first), tuple(direction))


def _slice_index(
    grid: Grid,
    position: np.ndarray,
    orientation: np.ndarray,
    spacing: tuple[float, float],
    rows: int,
    cols: int,
    index: int,
    name: str,
    image_name: str = "image",
) -> int:
    """The image slice a SEG frame lies on, or a refusal saying why it lies on none."""
    if grid.dimension != 3:
        raise GeometryMismatchError(
            f"{name} is a DICOM SEG (3-D) but the {image_name} is {grid.dimension}-D."
        )
    where = f"frame {index + 1} of {name} (at {', '.join(f'{v:.2f}' for v in position)} mm)"
    plane = f"{cols}x{rows} at {spacing[1]:.4g}x{spacing[0]:.4g} mm"
    image_plane = f"{grid.size[0]}x{grid.size[1]} at {grid.spacing[0]:.4g}x{grid.spacing[1]:.4g} mm"
    if (cols, rows) != grid.size[:2] or not np.allclose(
        (spacing[1], spacing[0]), grid.spacing[:2], rtol=1e-3
    ):
        raise GeometryMismatchError(
            f"The SEG does not fit the {image_name}: its frames are {plane}, "
            f"the {image_name} slices are {image_plane}."
        )
    if np.max(np.abs(orientation - np.concatenate([grid.matrix[:, 0], grid.matrix[:, 1]]))) > 1e-3:
        raise GeometryMismatchError(
            f"The SEG does not fit the {image_name}: {where} is oriented differently "
            f"from the {image_name} slices."
        )
    continuous = grid.to_index(position)
    k = int(round(continuous[2]))
    tolerance = 0.1  # of a voxel, as in check_geometry
    in_plane_mm = np.abs(continuous[:2]) * np.asarray(grid.spacing[:2])
    if in_plane_mm.max() > tolerance * min(grid.spacing):
        raise GeometryMismatchError(
            f"The SEG does not fit the {image_name}: {where} is shifted in-plane by "
            f"{in_plane_mm.max():.3g} mm from the {image_name} slices."
        )
    if not 0 <= k < grid.size[2]:
        first, last = grid.to_physical(np.array([[0, 0, 0], [0, 0, grid.size[2] - 1]]))
        raise GeometryMismatchError(
            f"The SEG does not fit the {image_name}: {where} lies outside the {image_name}, whose slices run from "
            f"{', '.join(f'{v:.2f}' for v in first)} to {', '.join(f'{v:.2f}' for v in last)} mm."
        )
    if abs(continuous[2] - k) > tolerance:
        raise GeometryMismatchError(
            f"The SEG does not fit the {image_name}: {where} lies between two {image_name} "
            f"slices ({continuous[2]:.2f} slices from the first)."
        )
    return k


def binary_mask(label_map: LabelMap, label: int) -> sitk.Image:
    """A uint8 0/1 mask of one label (one segment of a SEG), on the label map's grid."""
    if problem := label_problem(label):
        raise SegmentationError(problem)
    if label_map.frames is not None:
        array = np.zeros(tuple(reversed(label_map.image.GetSize())), dtype=np.uint8)
        for number, k, plane in label_map.frames:
            if number == label:
                array[k][plane] = 1
    else:
        array = (sitk.GetArrayViewFromImage(label_map.image) == label).astype(np.uint8)
    if not array.any():
        present = label_map.labels()
        held = (
            f"it holds {'label' if len(present) == 1 else 'labels'} {', '.join(map(str, present))}"
            if present
            else "it is empty"
        )
        raise SegmentationError(f"Label {label} is not in the {label_map.format} mask: {held}.")
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(label_map.image)
    return out


# ------------------------------------------------------------------------------------------ store
def _normalise_modality(modality: str) -> str:
    code = modalities.code_of(modality) if (modality or "").strip().lower() in ("ct", "pt", "pet") else None
    if code is None:
        raise SegmentationError(f"Modality {modality!r} is not CT or PET: masks are drawn on a CT or a PET.")
    return code


def find_series(store: Store, subject_id: str, modality: str, series_id: str | None = None) -> Series:
    """The subject's series of that modality: the given one, or the one core/series_choice.py picks."""
    from palmares_desktop.core.series_choice import SeriesChoiceError, choose_series

    modality = _normalise_modality(modality)
    subject = records.subject(store, subject_id).code
    try:
        choice = choose_series(store, subject_id, modality, series_id)
    except SeriesChoiceError as exc:
        raise SegmentationError(str(exc).replace("this subject", subject)) from None
    if choice is None:
        raise SegmentationError(
            f"{subject} has no {MODALITY_NAMES[modality]} series in this store; import it first."
        )
    return choice.chosen


def _lesion(store: Store, subject: Subject, name: str, organ: str | None) -> Lesion:
    """The subject's lesion called `name`, created if new; its site must agree with `organ`."""
    lesion = records.lesion_named(store, subject.id, name)
    if lesion is None:
        return records.add_lesion(store, subject.id, name, organ)
    if organ and lesion.organ and lesion.organ.lower() != organ.lower():
        raise SegmentationError(
            f"Lesion {name!r} of {subject.code} is recorded at {lesion.organ}, "
            f"not {organ}; give another lesion name."
        )
    if organ and not lesion.organ:
        lesion = records.set_lesion_organ(store, lesion.id, organ)
    return lesion


def _check_same_scan(
    store: Store, label_map: LabelMap, series: Series, subject_code: str, image_name: str
) -> None:
    """A DICOM SEG names the frame of reference it was drawn on: refuse one from another scan or
    patient even when its grid happens to match (demo subjects, for one, share a CT grid). The SEG
    may reference the original scan (made before import) or the de-identified copy."""
    seg_for, series_for = label_map.frame_of_reference_uid, series.frame_of_reference_uid
    if not seg_for or not series_for or seg_for == series_for:
        return
    from palmares_desktop.core.dicom.deid import pseudonymous_uid
    from palmares_desktop.core.store.keys import KeyTable

    with KeyTable.open(store.root) as keys:
        if pseudonymous_uid(seg_for, keys.salt) == series_for:
            return
    raise SegmentationError(
        f"The DICOM SEG was drawn on another scan: its frame of reference is not that of the {image_name} of "
        f"{subject_code}. Check that it belongs to this subject and modality."
    )


def target_of(store: Store, subject_code: str, modality: str, series_id: str | None = None):
    """(subject, series, image name, grid) a new mask of the subject's CT or PET must lie on."""
    subject = store.subject_by_code(subject_code)
    if subject is None:
        raise SegmentationError(f"There is no subject {subject_code} in this store.")
    series = find_series(store, subject.id, modality, series_id)
    image_name = MODALITY_NAMES[series.modality]
    volume = store.path(series.pixel_path or "")
    if not series.pixel_path or not volume.is_file():
        raise SegmentationError(
            f"The {image_name} volume of {subject_code} is missing from the store ({series.pixel_path})."
        )
    return subject, series, image_name, Grid.from_file(volume)


def add_segmentation(
    store: Store,
    subject_code: str,
    modality: str,
    mask: str | Path | sitk.Image,
    label: int = 1,
    lesion_name: str | None = None,
    organ: str | None = None,
    method: str = "imported",
    parameters: Mapping[str, Any] | None = None,
    series_id: str | None = None,
) -> Segmentation:
    """Add one label of `mask` as a new segmentation version of a subject's CT or PET lesion.

    Returns the saved version. The mask must sit on the series' voxel grid. The lesion is
    found by name (created if new; default: the SEG segment's label, else 'mask <sha8> label N').
    Adding a mask identical to the lesion's latest version on that series returns that version.
    """
    if problem := label_problem(int(label)):  # before any file is read: label 0 is the whole background
        raise SegmentationError(problem)
    subject, series, image_name, grid = target_of(store, subject_code, modality, series_id)

    if isinstance(mask, sitk.Image):
        label_map = LabelMap(_as_label_image(mask, "The mask"), "image")
        source: dict[str, Any] = {"format": "image"}
    else:
        mask = Path(mask)
        label_map = read_label_map(mask, reference=grid, image_name=image_name)
        source = {"format": label_map.format, "file_sha256": file_sha256(mask)}
    _check_same_scan(store, label_map, series, subject_code, image_name)
    check_geometry(label_map.image, grid, image_name=image_name)
    binary = grid.apply_to(binary_mask(label_map, int(label)))
    source["label"] = int(label)
    if label in label_map.segment_names:
        source["segment_label"] = label_map.segment_names[label]
    if lesion_name is None:
        # Not the file name: it may carry the patient's name. The source hash keeps re-adds idempotent.
        lesion_name = label_map.segment_names.get(label) or (
            f"mask {source['file_sha256'][:8]} label {label}" if "file_sha256" in source else f"label {label}"
        )

    voxels = int(sitk.GetArrayViewFromImage(binary).sum())
    seg_id = new_id()
    final = store.files.mask(seg_id)
    relative = store.files.relative(final)
    target = store.files.staging(final)  # its final name comes with the row: see core/store/files.py
    sitk.WriteImage(binary, str(target), useCompression=True)
    try:
        mask_sha = file_sha256(target)
        with store.transaction():
            lesion = _lesion(store, subject, lesion_name, organ)
            previous = chains.latest_final(store, lesion.id, series.id)
            if previous and previous.mask_sha256 == mask_sha:
                target.unlink()
                return previous
            saved = chains.add_final(
                store,
                {
                    "id": seg_id,
                    "lesion_id": lesion.id,
                    "series_id": series.id,
                    "method": method,
                    "parameters": parameters,
                    "mask_path": relative,
                    "mask_sha256": mask_sha,
                    "label": 1,
                    "voxel_count": voxels,
                    "volume_ml": voxels * grid.voxel_volume_mm3() / 1000.0,
                    "source": source,
                },
            )
            publish(target, final)
    except BaseException:
        discard(target, final)
        raise
    log.info("segmentation %s v%s of lesion %s: %d voxels", seg_id, saved.version, lesion_name, voxels)
    return saved

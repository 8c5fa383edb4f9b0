"""The domain objects of a study store, typed and frozen. No I/O here: core/store/records.py builds
them from rows (and parses the `*_json` columns) in one place; callers read attributes, never
columns. Ids are the store's UUIDs; `site_code`, `author_id` and `revision` are what lets a row
travel and be merged later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

SegmentationStatus = Literal["draft", "final"]
SlideObjectKind = Literal["annotation", "detection"]


def frozen_mapping(values: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A read-only view, so that a frozen object cannot be changed through one of its fields."""
    return MappingProxyType(dict(values or {}))


@dataclass(frozen=True)
class Reader:
    """Who makes a change: a person (radiologist, pathologist, coordinator) or a system author."""

    id: str
    name: str
    role: str
    site_code: str


@dataclass(frozen=True)
class Subject:
    id: str
    code: str  # pseudonym, e.g. IT03-0017; the original PatientID lives only in keys.db
    site_code: str
    author_id: str = ""
    revision: int = 0
    created_at: str = ""
    updated_at: str = ""
    # What the rooms call the subject for the current reader (core/study/rounds.subject_shown: the
    # case label of their reading in a blinded open round, else the code), set by the GUI when it
    # opens the subject; empty when read from the store. Not a column, and not part of equality.
    shown: str = field(default="", compare=False)

    @property
    def label(self) -> str:
        """The name to display: `shown` when the GUI set it (a blinded case: never the code)."""
        return self.shown or self.code


@dataclass(frozen=True)
class Study:
    id: str
    subject_id: str
    study_uid: str  # de-identified
    study_date: str | None  # shifted ISO date
    description: str


@dataclass(frozen=True)
class VoxelGrid:
    """The stored volume's geometry as SimpleITK reports it (x, y, z order; direction row-major)."""

    size: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]

    @property
    def voxel_volume_mm3(self) -> float:
        volume = 1.0
        for step in self.spacing:
            volume *= step
        return volume


@dataclass(frozen=True)
class Series:
    id: str
    subject_id: str
    study_id: str
    modality: str  # CT | PT
    series_uid: str
    frame_of_reference_uid: str | None
    description: str
    manufacturer: str
    grid: VoxelGrid | None
    units: str  # HU for CT; SUVbw for a calibrated PET, else the header's units
    pixel_path: str  # relative to the store folder
    pixel_sha256: str
    suv: Mapping[str, Any] | None  # SUV provenance (PET): inputs, branch, factors; None for CT
    problems: tuple[str, ...]
    study_date: str | None = None
    created_at: str = ""

    @property
    def suv_calibrated(self) -> bool:
        return self.units == "SUVbw"


@dataclass(frozen=True)
class Lesion:
    id: str
    subject_id: str
    name: str
    organ: str | None
    lesion_type: str | None = None
    recist_status: str | None = None
    bone_character: str | None = None
    notes: str | None = None
    deleted_at: str | None = None  # set when the lesion is marked deleted (undoable), else None
    author_id: str = ""
    created_at: str = ""
    updated_at: str = ""


@dataclass(frozen=True)
class Parameters:
    """The parameters a segmentation was made with: names to JSON values, read-only."""

    values: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", frozen_mapping(self.values))

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.values)


@dataclass(frozen=True)
class Segmentation:
    """One version in a reader's chain for (lesion, series). A draft is the chain's single working
    copy (autosave overwrites it; never exported, no features); a final version is immutable."""

    id: str
    lesion_id: str
    series_id: str
    reader_id: str  # the chain: whose work this is
    version: int  # finals: 1, 2, ... per chain; a draft carries the number it would become
    status: SegmentationStatus
    method: str
    parameters: Parameters
    mask_path: str  # relative to the store folder
    mask_sha256: str
    label: int
    voxel_count: int
    volume_ml: float
    source: Mapping[str, Any]
    author_id: str = ""
    created_at: str = ""
    updated_at: str = ""
    # Filled by the subject-wide queries (latest_finals_of_subject, drafts_of_subject), which join the
    # lesion and the series (as Series.study_date is joined); empty when read alone.
    lesion_name: str = ""
    organ: str | None = None
    series_modality: str = ""

    @property
    def is_final(self) -> bool:
        return self.status == "final"


@dataclass(frozen=True)
class Slide:
    id: str
    subject_id: str
    display_name: str  # blindable: subject code + stain, never the original file name
    format: str
    width: int
    height: int
    levels: int
    mpp_x: float | None
    mpp_y: float | None
    sha256: str  # fingerprint: relocatable reference
    stain: str
    size_bytes: int | None = None  # with the fingerprint, how `slide locate` recognises the file
    site_code: str = ""
    author_id: str = ""
    created_at: str = ""


@dataclass(frozen=True)
class SlideAnnotation:
    """A QuPath-shaped object: few editable annotations, many compact detections (cells, tiles)."""

    id: str
    slide_id: str
    kind: SlideObjectKind
    classification: str | None
    color: tuple[int, int, int] | None
    geometry: Mapping[str, Any]  # GeoJSON geometry, level-0 pixels
    measurements: Mapping[str, Any]
    name: str | None


@dataclass(frozen=True)
class FeatureSet:
    """Radiomics features of one final segmentation version with one parameter file."""

    id: str
    segmentation_id: str
    series_id: str
    lesion_id: str
    modality: str
    params_name: str
    params_sha256: str
    image_sha256: str
    mask_sha256: str
    status: str  # ok | error
    error: str | None
    features: Mapping[str, Any]
    provenance: Mapping[str, Any]
    deviation: str | None
    elapsed_s: float | None
    author_id: str = ""
    created_at: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

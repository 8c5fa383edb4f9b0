"""Whole-body PET candidates: every connected region above a rule's threshold, ranked by SUVmax.

Physiological uptake is the reader's to reject, but two kinds are marked as likely physiological by
position, because no lesion rule can tell them apart:
- head: the region comes within `HEAD_MARGIN_MM` of the top (most superior voxel) of the scan, where
  the brain is in a whole-body scan;
- bladder: the hottest region whose centroid lies in the lowest `BLADDER_FRACTION` of the scan's
  extent along the patient's z axis (in a scan ending above the pelvis that is renal-pelvis urine).
The labelling reads only the voxels above the threshold, so a 200x200x300 PET takes well under 2 s.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage

from palmares_desktop.core.pet.threshold import CONNECTIVITY, PetVolume

HEAD_MARGIN_MM = 10.0
BLADDER_FRACTION = 0.2
_STRUCTURE = np.ones((3, 3, 3), dtype=bool)


@dataclass
class Candidate:
    rank: int  # 1 = hottest
    label: int  # value in `CandidateSet.labels`
    suv_max: float
    suv_mean: float
    voxel_count: int
    mtv_ml: float
    tlg: float
    centroid_mm: tuple[float, float, float]
    hottest_mm: tuple[float, float, float]  # where to jump to
    likely_physiological: str | None = None  # "head" | "bladder" | None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CandidateSet:
    threshold_suv: float
    candidates: list[Candidate]
    labels: np.ndarray  # (z, y, x) int32, 0 = below threshold
    parameters: dict = field(default_factory=dict)

    def mask_of(self, rank: int) -> np.ndarray:
        """The full-grid mask of the candidate of that rank (an accepted candidate becomes a lesion)."""
        chosen = [c for c in self.candidates if c.rank == rank]
        if not chosen:
            from palmares_desktop.core.pet.threshold import PetToolError

            raise PetToolError(
                f"There is no candidate {rank}; the ranks run from 1 to {len(self.candidates)}."
            )
        return self.labels == chosen[0].label


def find_candidates(pet: PetVolume, threshold_suv: float, min_voxels: int = 1) -> CandidateSet:
    """Connected regions (26-connectivity) with every voxel at or above `threshold_suv`."""
    suv = pet.suv
    above = suv >= threshold_suv
    labels, n = ndimage.label(above, structure=_STRUCTURE)
    flat = np.flatnonzero(labels)
    ids = labels.ravel()[flat]
    values = suv.ravel()[flat].astype(np.float64)
    counts = np.bincount(ids, minlength=n + 1)
    sums = np.bincount(ids, weights=values, minlength=n + 1)
    zyx = np.stack(np.unravel_index(flat, suv.shape), axis=1).astype(np.float64)
    centroid_index = np.stack(
        [np.bincount(ids, weights=zyx[:, a], minlength=n + 1) for a in range(3)], axis=1
    )
    # hottest voxel per label: sort by (label, value) once
    order = np.lexsort((values, ids))
    last = np.r_[np.flatnonzero(np.diff(ids[order])), len(order) - 1] if len(order) else np.array([], int)
    hottest_flat = flat[order[last]]
    max_by_label = np.zeros(n + 1)
    hottest_by_label = np.zeros((n + 1, 3))
    max_by_label[ids[order[last]]] = values[order[last]]
    hottest_by_label[ids[order[last]]] = np.stack(np.unravel_index(hottest_flat, suv.shape), axis=1)
    # most superior patient z (mm) each label reaches, from its own voxels
    superior = np.full(n + 1, -np.inf)
    if len(order):
        z_mm = pet.grid.to_physical(zyx[order][:, ::-1])[:, 2]
        starts = np.r_[0, last[:-1] + 1]
        superior[ids[order[last]]] = np.maximum.reduceat(z_mm, starts)

    z_all = pet.grid.to_physical(pet.grid.corners())[:, 2]
    top, bottom = float(z_all.max()), float(z_all.min())
    voxel_ml = float(np.prod(pet.spacing)) / 1000.0
    found = []
    for label in range(1, n + 1):
        if counts[label] < min_voxels:
            continue
        mean = sums[label] / counts[label]
        centroid = pet.point_of(centroid_index[label] / counts[label])
        found.append(
            Candidate(
                rank=0,
                label=label,
                suv_max=float(max_by_label[label]),
                suv_mean=float(mean),
                voxel_count=int(counts[label]),
                mtv_ml=counts[label] * voxel_ml,
                tlg=float(mean * counts[label] * voxel_ml),
                centroid_mm=centroid,
                hottest_mm=pet.point_of(hottest_by_label[label]),
                likely_physiological="head" if superior[label] >= top - HEAD_MARGIN_MM else None,
            )
        )
    found.sort(key=lambda c: -c.suv_max)
    for rank, candidate in enumerate(found, start=1):
        candidate.rank = rank
    low = [c for c in found if c.centroid_mm[2] <= bottom + BLADDER_FRACTION * (top - bottom)]
    if low and low[0].likely_physiological is None:
        low[0].likely_physiological = "bladder"
    parameters = {
        "threshold_suv": float(threshold_suv),
        "connectivity": CONNECTIVITY,
        "min_voxels": int(min_voxels),
        "head_rule": f"reaches within {HEAD_MARGIN_MM:g} mm of the top of the scan",
        "bladder_rule": f"hottest region with its centroid in the lowest {BLADDER_FRACTION:.0%} of the scan",
    }
    return CandidateSet(float(threshold_suv), found, labels, parameters)


def asdict_candidates(result: CandidateSet) -> dict:
    return {
        "threshold_suv": result.threshold_suv,
        "parameters": result.parameters,
        "candidates": [c.to_dict() for c in result.candidates],
    }

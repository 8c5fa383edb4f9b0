"""SUV factors for every PET series found in a folder (what `palmares suv DIR` shows).

Series are found by the DICOM discovery (`core.dicom.discovery`); SUV is a property of the whole
series, so the stacks discovery may split one PET series into (e.g. DecayCorrection NONE with several
acquisition times) are evaluated together, and a series that is not usable as a volume still gets its
factors (they only need the headers).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from palmares_desktop.core.dicom.discovery import iter_scan_folder
from palmares_desktop.core.pet.suv import SuvResult, compute_suv_for_files
from palmares_desktop.core.tasks import Progress, Task, run

__all__ = ["PetSeriesSuv", "iter_suv_for_folder", "suv_for_folder"]


@dataclass
class PetSeriesSuv:
    """One PET series of a folder with its SUV result."""

    series_uid: str
    files: list[Path]
    result: SuvResult

    def to_dict(self) -> dict:
        """JSON-safe: the SuvResult fields plus the number of instances (no file paths, no patient data)."""
        entry = {"series_uid": self.result.series_uid or self.series_uid, "n_instances": len(self.files)}
        entry.update({k: v for k, v in self.result.to_dict().items() if k != "series_uid"})
        return entry


def iter_suv_for_folder(path: str | os.PathLike) -> Task[list[PetSeriesSuv]]:
    """Scan `path` and compute the SUV factors of each PET series; yields Progress.

    Raises DicomError when the folder does not exist; a refused series is a result with `error` set.
    """
    scan = yield from iter_scan_folder(path)
    files_by_series: dict[str, list[Path]] = {}
    for info in scan.series:
        if info.modality.upper() == "PT":
            files_by_series.setdefault(info.series_uid, []).extend(info.files)
    results = []
    for done, (series_uid, files) in enumerate(files_by_series.items()):
        yield Progress(done, len(files_by_series), "computing SUV factors")
        unique = list(dict.fromkeys(files))
        results.append(PetSeriesSuv(series_uid, unique, compute_suv_for_files(unique)))
    yield Progress(len(files_by_series), len(files_by_series), "computing SUV factors")
    return results


def suv_for_folder(path: str | os.PathLike) -> list[PetSeriesSuv]:
    """`iter_suv_for_folder` without progress reporting."""
    return run(iter_suv_for_folder(path))

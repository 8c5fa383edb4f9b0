"""Can this series be read in the workstation? One rule for `palmares scan`, the import dialog and import.

The scan (core.dicom.discovery) says whether a stack loads as a volume. A radiologist needs more: a
PET whose SUV cannot be computed shows only Bq/mL, one slice is not a 3-D volume, and a folder
holding 2 of the 83 slices the scanner made is an export that stopped early. Such series are still
imported (their headers and SUV provenance are evidence), but they are marked `limited` with the
reason, everywhere the same.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from palmares_desktop.core.dicom.discovery import ScanResult, SeriesInfo, iter_scan_folder
from palmares_desktop.core.modalities import DISPLAY
from palmares_desktop.core.tasks import Progress, Task

READ_MODALITIES = ("CT", "PT")
YES, LIMITED, NO = "yes", "limited", "no"


@dataclass(frozen=True)
class SeriesVerdict:
    word: str  # yes | limited | no
    reasons: tuple[str, ...]  # every remark in words (a `yes` can carry remarks too)

    @property
    def importable(self) -> bool:
        return self.word != NO

    def to_dict(self) -> dict:
        return {"word": self.word, "reasons": list(self.reasons)}


def judge(info: SeriesInfo, suv_error: str | None = None) -> SeriesVerdict:
    """The verdict for one scanned series; `suv_error` is the SUV refusal of a PET series, if any."""
    if info.modality not in READ_MODALITIES:
        name = info.modality or "unknown modality"
        return SeriesVerdict(NO, (f"{name} images are not read here: only CT and PET are imported.",))
    if not info.usable:
        return SeriesVerdict(NO, tuple(info.problems) or ("It does not load as a volume.",))
    # The scan's own sentences say what is wrong; this rule only decides what it means for reading.
    announced = info.frames[0].header.announced_slices if info.frames else None
    limited = info.n_slices <= 1 or bool(announced and info.n_slices < announced)
    reasons = list(info.problems)
    if info.modality == "PT" and suv_error:
        limited = True
        reasons.append(f"No SUV ({suv_error.rstrip('.')}): the {DISPLAY['PT']} would show Bq/mL only.")
    return SeriesVerdict(LIMITED if limited else YES, tuple(reasons))


def judge_all(series: Iterable[SeriesInfo]) -> list[SeriesVerdict]:
    """Verdicts in the order of `series`, computing each PET series' SUV from its headers."""
    from palmares_desktop.core.pet.suv import compute_suv_for_files

    verdicts = []
    for info in series:
        suv_error = None
        if info.modality == "PT" and info.usable:
            suv_error = compute_suv_for_files(info.files).error
        verdicts.append(judge(info, suv_error))
    return verdicts


def matrix_text(info: SeriesInfo, times: str = " × ") -> str:
    """Columns x rows (width x height), as viewers read it; the CLI and the GUI both show this order."""
    return f"{info.cols}{times}{info.rows}" if info.rows else "?"


def patients_of(series: Iterable[SeriesInfo]) -> list[str]:
    """The distinct original PatientIDs among CT/PET series, for choosing one at the site (never stored)."""
    return sorted({s.patient_id for s in series if s.modality in READ_MODALITIES and s.patient_id})


@dataclass
class JudgedScan:
    """A folder's scan with each series' verdict (same order) and its patients."""

    scan: ScanResult
    verdicts: list[SeriesVerdict]

    @property
    def patients(self) -> list[str]:
        return patients_of(self.scan.series)


def iter_judge_folder(path: str | os.PathLike) -> Task[JudgedScan]:
    """Scan `path` (yields Progress) and judge every series."""
    scan = yield from iter_scan_folder(path)
    yield Progress(1, 1, "checking SUV and completeness")
    return JudgedScan(scan, judge_all(scan.series))

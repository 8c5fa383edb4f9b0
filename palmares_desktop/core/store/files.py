"""Where a store keeps its files, and how a file and its row commit together.

    dicom/<series_id>/      de-identified DICOM copies of a series
    volumes/<series_id>.nrrd
    masks/<segmentation_id>.nrrd

A writer first writes under a staging name that carries its process id
(`.incoming-p<pid>-<final name>`), then renames the staging file to its final name *inside* the
transaction that inserts the row, under the write lock (BEGIN IMMEDIATE). So a final-named file
without a row can only be left by a process that died between the rename and the COMMIT, and
`reconcile`, which runs under the same write lock, can tell it from a commit in progress: it never
sees one. Staging entries of processes that are no longer running are leftovers of a kill.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

STAGING_PREFIX = ".incoming-"
FOLDERS = ("dicom", "volumes", "masks")
_STAGING = re.compile(rf"{re.escape(STAGING_PREFIX)}p(\d+)-")


class StoreFiles:
    """The one place that knows the layout of a store folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def dicom(self, series_id: str) -> Path:
        return self.root / "dicom" / series_id

    def volume(self, series_id: str) -> Path:
        return self.root / "volumes" / f"{series_id}.nrrd"

    def mask(self, segmentation_id: str) -> Path:
        return self.root / "masks" / f"{segmentation_id}.nrrd"

    def relative(self, path: Path) -> str:
        """The store-relative name kept in rows (rows never hold absolute paths)."""
        return path.relative_to(self.root).as_posix()

    @staticmethod
    def staging(final: Path) -> Path:
        """Where a writer puts `final` until its row commits."""
        return final.parent / f"{STAGING_PREFIX}p{os.getpid()}-{final.name}"

    def entries(self) -> list[Path]:
        """Every file or folder in the store's pixel folders (final and staging names)."""
        out: list[Path] = []
        for name in FOLDERS:
            folder = self.root / name
            if folder.is_dir():
                out.extend(sorted(folder.iterdir()))
        return out


def publish(staging: Path, final: Path) -> None:
    """Give a staged file its final name; call inside the transaction that inserts its row."""
    os.replace(staging, final) if staging.is_file() else staging.rename(final)


def discard(*paths: Path) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def staging_owner(path: Path) -> int | None:
    """The process id in a staging name, or None for a name that is not staging."""
    match = _STAGING.match(path.name)
    return int(match.group(1)) if match else None


def is_staging(path: Path) -> bool:
    # Names of the first wave (`.incoming-<uuid>`) had no owner: they count as staging too.
    return path.name.startswith(STAGING_PREFIX)


def owner_alive(path: Path) -> bool:
    """Is the process that writes this staging entry still running? (Names of the first wave
    carry no owner; no process of that version can be running beside this one.)"""
    pid = staging_owner(path)
    return pid is not None and (pid == os.getpid() or psutil.pid_exists(pid))


@dataclass
class FileReport:
    """Files that do not match rows. Paths are store-relative."""

    orphans: list[str] = field(default_factory=list)  # final-named files no row references
    staging: list[str] = field(default_factory=list)  # leftovers of dead writers
    missing: list[str] = field(default_factory=list)  # files rows reference that are not there
    removed: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.orphans or self.staging or self.missing)


def compare(files: StoreFiles, referenced: set[str]) -> FileReport:
    """What lies in the folders against what the rows reference (call under the write lock)."""
    report = FileReport()
    present: set[str] = set()
    for path in files.entries():
        relative = files.relative(path)
        if is_staging(path):
            if not owner_alive(path):
                report.staging.append(relative)
        elif relative in referenced:
            present.add(relative)
        else:
            report.orphans.append(relative)
    report.missing = sorted(r for r in referenced if r not in present and not (files.root / r).exists())
    return report


def remove_leftovers(files: StoreFiles, report: FileReport) -> None:
    """Remove orphans and dead staging: they hold copies of data whose import never committed."""
    for kind in (report.orphans, report.staging):
        for relative in list(kind):
            discard(files.root / relative)
            if not (files.root / relative).exists():
                kind.remove(relative)
                report.removed.append(relative)
    if report.removed:
        log.warning("store %s: removed %d leftovers of interrupted work", files.root, len(report.removed))

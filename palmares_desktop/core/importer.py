"""Import the CT and PET series of ONE patient from a DICOM folder into the store, de-identified.

Per usable CT/PT series, in this order:
  1. SUV from the ORIGINAL headers (core.pet.suv), before anything is removed;
  2. each instance de-identified (core.dicom.deid, one date shift and one UID mapping per subject)
     and written to store/dicom/<series_id>/<index>.dcm (slice order);
  3. the ready volume (CT in HU, PET in SUVbw float32, or in the header's units when SUV is
     refused) written to store/volumes/<series_id>.nrrd;
  4. SUV re-computed on the de-identified headers: its factors must equal those of step 1 (this
     proves de-identification kept SUV intact), and it is what `suv_json` stores, so the stored
     provenance carries only pseudonymous UIDs and shifted dates;
  5. a leak check of every header, the volume header and the rows for the original identifiers;
  6. the studies/series rows inserted in one transaction; files are written under temporary
     names and renamed into place just before the commit, and removed if anything fails, so the
     store never holds a row without its files.
A PET whose SUV is refused (e.g. weight 0) is still imported, in the header's units (e.g. BQML),
with the reason in `suv_json.error` and `problems_json`, and `units` != "SUVbw": a radiologist can
still read it, but no SUV-based number may be computed from it.
Re-importing is a no-op: a series whose fingerprint (salted hash of the original
SeriesInstanceUID) is in the store is skipped as "already imported".
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from palmares_desktop.core.dicom.deid import DeidContext, clean_description
from palmares_desktop.core.dicom.discovery import SeriesInfo, iter_scan_folder
from palmares_desktop.core.dicom.errors import DicomError
from palmares_desktop.core.errors import PalmaresError
from palmares_desktop.core.import_series import (
    Counter,
    ImportedSeries,
    SeriesFailed,
    SeriesImport,
    safe_texts,
    series_key,
)
from palmares_desktop.core.store import Store, StoreError, check_site_code, check_subject_code, records
from palmares_desktop.core.store.keys import KEYS_FILE_NAME, KeyTable, KeyTableError
from palmares_desktop.core.tasks import Progress, Task, run

log = logging.getLogger(__name__)

IMPORTED_MODALITIES = ("CT", "PT")
UNUSABLE = "not a usable volume: "  # how a skipped CT/PET series that could not be imported starts
_STORE_PIXEL_FOLDERS = ("dicom", "volumes", "masks")


class ImportRefusedError(PalmaresError):
    """The import cannot start (bad folder, code, several patients...). Plain sentence, no PHI."""


@dataclass
class SeriesNote:
    """A series that was not imported: a label the user recognises, and why."""

    label: str
    reason: str


@dataclass
class ImportSummary:
    subject_code: str
    imported: list[ImportedSeries] = field(default_factory=list)
    skipped: list[SeriesNote] = field(default_factory=list)  # not imported on purpose
    errors: list[SeriesNote] = field(default_factory=list)  # failed
    files_skipped: list[tuple[str, str]] = field(default_factory=list)  # files the scan could not use
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        """Something was imported, or every series was already in the store."""
        if self.imported:
            return True
        return (
            bool(self.skipped)
            and not self.errors
            and all(s.reason.startswith("already imported") for s in self.skipped)
        )

    @property
    def complete(self) -> bool:
        """Every CT/PET series of the patient is in the store (imported now or before): nothing
        failed and no CT/PET series was unusable."""
        return self.ok and not self.errors and not any(n.reason.startswith(UNUSABLE) for n in self.skipped)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["ok"] = self.ok
        data["complete"] = self.complete
        return data


# ------------------------------------------------------------------------------------ entry points
def import_dicom(
    store: Store,
    folder: str | Path,
    subject_code: str,
    site_code: str | None = None,
    patient_id: str | None = None,
    on_progress: Callable[[Progress], object] | None = None,
) -> ImportSummary:
    """`iter_import_dicom` without the generator (tests, scripts)."""
    return run(iter_import_dicom(store, folder, subject_code, site_code, patient_id), on_progress)


def iter_import_dicom(
    store: Store,
    folder: str | Path,
    subject_code: str,
    site_code: str | None = None,
    patient_id: str | None = None,
) -> Task[ImportSummary]:
    """Import the CT/PET series of one patient found in `folder` as subject `subject_code`.

    `patient_id` (the original PatientID) picks one patient when the folder holds several.
    Raises ImportRefusedError when the import cannot start; per-series problems are in the summary.
    """
    if store.reader is None:
        raise ImportRefusedError("No reader is selected: every change to the store must record who made it.")
    plan = yield from iter_plan_import(folder, subject_code, site_code, patient_id)
    return (yield from iter_import_plan(store, plan))


@dataclass
class ImportPlan:
    """What an import will do, found before any store is opened (so that a refused or empty import
    never creates a store): the checked codes, the scanned folder and the chosen patient's series."""

    root: Path
    site: str
    summary: ImportSummary
    candidates: list[SeriesInfo]


def iter_plan_import(
    folder: str | Path, subject_code: str, site_code: str | None = None, patient_id: str | None = None
) -> Task[ImportPlan]:
    """Check the codes and the folder and scan it; raises ImportRefusedError. Touches no store."""
    site = _check_codes(subject_code, site_code)
    root = Path(folder).expanduser()
    if not root.exists():
        raise ImportRefusedError(f"Folder not found: {root}")
    if _inside_a_store(root):
        # Its images are already de-identified: their PatientID is a subject code, which would be
        # linked in the key table as if it were a real patient's ID.
        raise ImportRefusedError(
            f"{root} holds the de-identified images of a PALMARES store: import from the PACS export."
        )
    try:
        scan = yield from iter_scan_folder(root)
    except DicomError as exc:
        raise ImportRefusedError(str(exc)) from exc

    summary = ImportSummary(subject_code, files_skipped=list(scan.skipped))
    candidates = _pick_patient(scan.series, patient_id, summary)
    return ImportPlan(root, site, summary, candidates)


def iter_import_plan(store: Store, plan: ImportPlan) -> Task[ImportSummary]:
    """Carry out a plan of `iter_plan_import` in `store` (whose reader is the author)."""
    if store.reader is None:
        raise ImportRefusedError("No reader is selected: every change to the store must record who made it.")
    root, site, summary, candidates = plan.root, plan.site, plan.summary, plan.candidates
    subject_code = summary.subject_code
    own = store.site_code()
    if own is not None and site != own:  # before any work: the store would refuse every row anyway
        raise ImportRefusedError(
            f"This store belongs to site {own}: subject {subject_code} of site {site} cannot be imported into it."
        )
    if not candidates:
        return summary
    original_patient_id = candidates[0].patient_id
    keys = _open_keys(store)
    try:
        _check_key_table(store, keys, original_patient_id, subject_code)
        ctx = DeidContext(subject_code, keys.date_shift_days(subject_code), keys.salt)
        work = [s for s in candidates if s.usable]
        counter = Counter(total=sum(s.n_instances + 1 for s in work))
        for info in candidates:
            label = _label(info)
            if not info.usable:
                summary.skipped.append(
                    SeriesNote(label, UNUSABLE + " ".join(safe_texts(info.problems, info, root)))
                )
                continue
            fingerprint = keys.fingerprint(series_key(info))
            existing = records.series_with_fingerprint(store, fingerprint)
            if existing:
                stored_size = list(existing.grid.size) if existing.grid else None
                if stored_size and stored_size != [info.cols, info.rows, info.n_slices]:
                    # Same series, other slices: one of the two exports was incomplete. Saying
                    # "already imported" would hide that the store keeps the partial copy.
                    summary.errors.append(SeriesNote(label, _size_mismatch(stored_size, info)))
                else:
                    summary.skipped.append(SeriesNote(label, "already imported"))
                counter.done += info.n_instances + 1
                continue
            job = SeriesImport(store, keys, ctx, info, root, site, original_patient_id, fingerprint, counter)
            try:
                summary.imported.append((yield from job.run()))
            except SeriesFailed as exc:
                summary.errors.append(SeriesNote(label, str(exc)))
            except (DicomError, KeyTableError, StoreError, OSError) as exc:
                summary.errors.append(SeriesNote(label, str(exc)))
            except Exception as exc:  # noqa: BLE001 - one bad series must not stop the others
                log.exception("unexpected error importing a series")
                summary.errors.append(SeriesNote(label, f"unexpected error ({type(exc).__name__}: {exc})"))
    except GeneratorExit:
        summary.cancelled = True
        raise
    finally:
        keys.close()
        if summary.imported:
            _audit(store, summary)
    yield Progress(counter.total, counter.total, "import finished")
    return summary


# ------------------------------------------------------------------------------------ checks
def _check_codes(subject_code: str, site_code: str | None) -> str:
    try:
        check_subject_code(subject_code)
        site = site_code or subject_code.split("-")[0]
        check_site_code(site)
    except StoreError as exc:
        raise ImportRefusedError(str(exc)) from exc
    if not subject_code.startswith(site + "-"):
        raise ImportRefusedError(
            f"Subject {subject_code} does not belong to site {site}: its code must start with {site}."
        )
    return site


def _pick_patient(
    series: list[SeriesInfo], patient_id: str | None, summary: ImportSummary
) -> list[SeriesInfo]:
    for info in series:
        if info.modality not in IMPORTED_MODALITIES:
            summary.skipped.append(
                SeriesNote(_label(info), f"{info.modality or 'unknown'} series: only CT and PET are imported")
            )
    candidates = [s for s in series if s.modality in IMPORTED_MODALITIES]
    patients: dict[str, int] = {}
    for info in candidates:
        patients[info.patient_id] = patients.get(info.patient_id, 0) + 1
    if patient_id is not None:
        chosen = [s for s in candidates if s.patient_id == patient_id]
        if not chosen:
            raise ImportRefusedError(
                f"None of the {len(candidates)} CT/PET series in the folder has the given patient ID "
                f"(the folder holds {len(patients)} patient(s))."
            )
        return chosen
    if len(patients) > 1:
        counts = ", ".join(str(n) for n in sorted(patients.values(), reverse=True))
        raise ImportRefusedError(
            f"The folder holds CT/PET images of {len(patients)} different patients ({counts} series). "
            "An import takes exactly one patient: import each patient's folder separately, or choose "
            "one with its patient ID (--patient-id; `palmares scan` lists the IDs)."
        )
    if len(patients) == 1 and next(iter(patients)) == "":
        raise ImportRefusedError(
            "The images carry no PatientID, so they cannot be linked to a subject safely."
        )
    if not candidates and not summary.skipped:
        summary.errors.append(SeriesNote("folder", "no CT or PET image series found"))
    return candidates


def _open_keys(store: Store) -> KeyTable:
    if not (store.root / KEYS_FILE_NAME).exists() and records.has_subjects(store):
        # A new key table would have a new salt: the same patient could be enrolled again under a new code.
        raise ImportRefusedError(
            f"This store has subjects but its key table ({KEYS_FILE_NAME}) is missing: restore the key "
            "table from backup before importing (a new one cannot recognise the patients already enrolled)."
        )
    try:
        return KeyTable.open(store.root)
    except KeyTableError as exc:
        raise ImportRefusedError(str(exc)) from exc


def _check_key_table(store: Store, keys: KeyTable, patient_id: str, subject_code: str) -> None:
    """One patient <-> one subject code, never two of either."""
    current = keys.subject_for_patient(patient_id)
    if current is not None and current != subject_code:
        raise ImportRefusedError(
            f"This patient is already enrolled as {current}; import the images under that code."
        )
    if current is None and keys.knows_subject(subject_code):
        raise ImportRefusedError(
            f"Subject code {subject_code} is already used for another patient; check the code "
            f"(the next free code is {store.next_subject_code(subject_code.split('-')[0])})."
        )
    subject = store.subject_by_code(subject_code)
    if current is None and subject and records.subject_has_series(store, subject.id):
        raise ImportRefusedError(
            f"Subject {subject_code} already has images in this store, but the key table does not know its "
            "patient: they cannot be checked to be the same person. Use a new subject code."
        )


def _size_mismatch(stored_size: list[int], info: SeriesInfo) -> str:
    # rows x columns, as `palmares scan` shows the matrix (the stored size is SimpleITK's x, y, z)
    stored = f"{stored_size[2]} slices of {stored_size[1]}x{stored_size[0]}"
    here = f"{info.n_slices} slices of {info.rows}x{info.cols}"
    return (
        f"this series is already in the store with {stored}, but the folder holds {here}: one of the "
        "two exports is incomplete. The stored copy was left unchanged."
    )


def _label(info: SeriesInfo) -> str:
    """How the user recognises a series in messages (no free text unless it is clean vocabulary)."""
    number = f" #{info.series_number}" if info.series_number is not None else ""
    description = clean_description(info.description)
    described = f" '{description}'" if description else ""
    part = f" part {info.part}" if info.part else ""
    return f"{info.modality or '?'} series{number}{described}{part} ({info.n_instances} files)"


def _inside_a_store(path: Path) -> bool:
    """The store folder itself, or the de-identified copies in it (other subfolders, such as the
    demo's source export, are ordinary folders)."""
    path = path.resolve()
    for folder in [path, *path.parents]:
        if (folder / Store.DB_NAME).is_file() and (folder / KEYS_FILE_NAME).is_file():
            return path == folder or any(path.is_relative_to(folder / sub) for sub in _STORE_PIXEL_FOLDERS)
    return False


def _audit(store: Store, summary: ImportSummary) -> None:
    """One audit event per import: counts and store ids only (no paths, names or free text)."""
    store.audit(
        "import_dicom",
        {
            "subject": summary.subject_code,
            "imported": [
                {
                    "series_id": s.series_id,
                    "modality": s.modality,
                    "n_instances": s.n_instances,
                    "units": s.units,
                }
                for s in summary.imported
            ],
            "skipped": len(summary.skipped),
            "errors": len(summary.errors),
            "files_skipped": len(summary.files_skipped),
            "cancelled": summary.cancelled,
        },
    )

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

import hashlib
import io
import json
import logging
import math
import shutil
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pydicom
import SimpleITK as sitk

from palmares_desktop.core.dicom.deid import (
    DeidContext,
    clean_description,
    deidentify,
    has_burned_in_annotation,
    identifying_values,
    pseudonymous_uid,
)
from palmares_desktop.core.dicom.discovery import SeriesInfo, iter_scan_folder
from palmares_desktop.core.dicom.errors import DicomError
from palmares_desktop.core.dicom.keys import KeyTable, KeyTableError
from palmares_desktop.core.dicom.leaks import LeakCheck
from palmares_desktop.core.dicom.volume import load_series
from palmares_desktop.core.pet.suv import compute_suv
from palmares_desktop.core.store import Store, StoreError, check_site_code, check_subject_code
from palmares_desktop.core.tasks import Progress, Task, run

log = logging.getLogger(__name__)

IMPORTED_MODALITIES = ("CT", "PT")
STAGING_PREFIX = ".incoming-"


class ImportRefusedError(Exception):
    """The import cannot start (bad folder, code, several patients...). Plain sentence, no PHI."""


class _SeriesFailed(Exception):
    """This series cannot be imported; the message says why. The other series go on."""


@dataclass
class ImportedSeries:
    series_id: str
    modality: str
    n_instances: int
    description: str
    units: str
    suv_error: str | None = None
    warnings: list[str] = field(default_factory=list)


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

    def to_dict(self) -> dict:
        data = asdict(self)
        data["ok"] = self.ok
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
    site = _check_codes(subject_code, site_code)
    if store.reader is None:
        raise ImportRefusedError("No reader is selected: every change to the store must record who made it.")
    root = Path(folder).expanduser()
    if not root.exists():
        raise ImportRefusedError(f"Folder not found: {root}")
    try:
        scan = yield from iter_scan_folder(root)
    except DicomError as exc:
        raise ImportRefusedError(str(exc)) from exc

    summary = ImportSummary(subject_code, files_skipped=list(scan.skipped))
    candidates = _pick_patient(scan.series, patient_id, summary)
    if not candidates:
        return summary
    original_patient_id = candidates[0].patient_id
    keys = _open_keys(store)
    try:
        _check_key_table(store, keys, original_patient_id, subject_code)
        ctx = DeidContext(subject_code, keys.date_shift_days(subject_code), keys.salt)
        _remove_stale_staging(store.root)
        work = [s for s in candidates if s.usable]
        counter = _Counter(total=sum(s.n_instances + 1 for s in work))
        for info in candidates:
            label = _label(info)
            if not info.usable:
                summary.skipped.append(
                    SeriesNote(
                        label, "not a usable volume: " + " ".join(_safe_texts(info.problems, info, root))
                    )
                )
                continue
            fingerprint = keys.fingerprint(_series_key(info))
            existing = store.rows("series", "source_fingerprint = ?", [fingerprint])
            if existing:
                summary.skipped.append(SeriesNote(label, "already imported"))
                counter.done += info.n_instances + 1
                continue
            job = _SeriesImport(store, keys, ctx, info, root, site, original_patient_id, fingerprint, counter)
            try:
                summary.imported.append((yield from job.run()))
            except _SeriesFailed as exc:
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
            "one with its patient ID (--patient-id)."
        )
    if len(patients) == 1 and next(iter(patients)) == "":
        raise ImportRefusedError(
            "The images carry no PatientID, so they cannot be linked to a subject safely."
        )
    if not candidates and not summary.skipped:
        summary.errors.append(SeriesNote("folder", "no CT or PET image series found"))
    return candidates


def _open_keys(store: Store) -> KeyTable:
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
    if current is None and subject and store.rows("series", "subject_id = ?", [subject["id"]]):
        raise ImportRefusedError(
            f"Subject {subject_code} already has images in this store, but the key table does not know its "
            "patient: they cannot be checked to be the same person. Use a new subject code."
        )


def _label(info: SeriesInfo) -> str:
    """How the user recognises a series in messages (no free text unless it is clean vocabulary)."""
    number = f" #{info.series_number}" if info.series_number is not None else ""
    description = clean_description(info.description)
    described = f" '{description}'" if description else ""
    part = f" part {info.part}" if info.part else ""
    return f"{info.modality or '?'} series{number}{described}{part} ({info.n_instances} files)"


def _series_key(info: SeriesInfo) -> str:
    # A SeriesInstanceUID split into stacks (e.g. two matrices) gives one stored series per stack.
    return info.series_uid if not info.part else f"{info.series_uid}|part {info.part}"


def _safe_texts(texts: list[str], info: SeriesInfo, root: Path) -> list[str]:
    """Problem sentences without folder or file names (a path can hold a patient's name)."""
    names = {str(root), str(root.resolve())} | {str(p) for p in info.files} | {p.name for p in info.files}
    out = []
    for text in texts:
        for name in sorted((n for n in names if len(n) >= 3), key=len, reverse=True):
            text = text.replace(name, "<file>")
        out.append(text)
    return out


# ------------------------------------------------------------------------------------ one series
@dataclass
class _Counter:
    total: int
    done: int = 0

    def step(self, message: str) -> Progress:
        self.done += 1
        return Progress(min(self.done, self.total), self.total, message)


class _SeriesImport:
    def __init__(self, store, keys, ctx, info, root, site, patient_id, fingerprint, counter) -> None:
        self.store: Store = store
        self.keys: KeyTable = keys
        self.ctx: DeidContext = ctx
        self.info: SeriesInfo = info
        self.root: Path = root
        self.site: str = site
        self.patient_id: str = patient_id
        self.fingerprint: str = fingerprint
        self.counter: _Counter = counter
        self.series_id = str(uuid.uuid4())
        self.staging_dicom = store.root / "dicom" / f"{STAGING_PREFIX}{self.series_id}"
        self.staging_volume = store.root / "volumes" / f"{STAGING_PREFIX}{self.series_id}.nrrd"
        self.final_dicom = store.root / "dicom" / self.series_id
        self.final_volume = store.root / "volumes" / f"{self.series_id}.nrrd"
        self.uid_map: dict[str, str] = {}
        self.identifiers: dict[str, set[str]] = {}
        self.kept_texts: set[str] = set()

    def run(self) -> Task[ImportedSeries]:
        committed = False
        try:
            result = yield from self._run()
            committed = True
            return result
        finally:
            if not committed:
                for path in (self.staging_dicom, self.final_dicom):
                    shutil.rmtree(path, ignore_errors=True)
                for path in (self.staging_volume, self.final_volume):
                    path.unlink(missing_ok=True)

    def _run(self) -> Task[ImportedSeries]:
        info = self.info
        is_pet = info.modality == "PT"
        original_suv = compute_suv(self._read_headers()) if is_pet else None
        deid_headers, first = yield from self._write_dicom(keep_headers=is_pet)

        image = load_series(info, original_suv.suvbw_factors if original_suv and original_suv.ok else None)
        for key in image.GetMetaDataKeys():  # never let a reader's metadata reach the NRRD header
            image.EraseMetaData(key)
        self.staging_volume.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(image, str(self.staging_volume), True)
        yield self.counter.step("writing the volume")

        notes: list[str] = []
        suv_json, units, suv_error = None, "HU" if info.modality == "CT" else "", None
        if is_pet:
            suv_json, units, suv_error = self._suv_provenance(original_suv, deid_headers, first)
            if suv_error:
                notes.append(f"SUV could not be computed: {suv_error} Values are in {units}, not SUV.")
        study_row, series_row = self._rows(first, image, units, suv_json, notes)
        self._check_leaks(self._nrrd_header(), "the volume header")
        self._check_leaks(json.dumps([study_row, series_row]), "the database rows")
        self._commit(study_row, series_row)
        return ImportedSeries(
            self.series_id,
            info.modality,
            info.n_instances,
            series_row["description"],
            units,
            suv_error,
            notes,
        )

    # -- steps
    def _read_headers(self) -> list[pydicom.Dataset]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # vendor quirks pydicom reads anyway
                return [pydicom.dcmread(p, stop_before_pixels=True) for p in self.info.files]
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types on damaged files
            raise _SeriesFailed(
                f"a file of the series can no longer be read ({type(exc).__name__})."
            ) from exc

    def _write_dicom(self, keep_headers: bool) -> Task[tuple[list[pydicom.Dataset], pydicom.Dataset]]:
        self.staging_dicom.mkdir(parents=True)
        kept: list[pydicom.Dataset] = []
        first = None
        series_uid = pseudonymous_uid(_series_key(self.info), self.ctx.salt) if self.info.part else None
        for index, path in enumerate(self.info.files):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ds = pydicom.dcmread(path)
                complete = _pixel_data_complete(ds)
            except Exception as exc:  # noqa: BLE001 - pydicom raises many types on damaged files
                raise _SeriesFailed(
                    f"file {index + 1} of {len(self.info.files)} cannot be read ({type(exc).__name__})."
                ) from exc
            if not complete:
                raise _SeriesFailed(
                    f"file {index + 1} of {len(self.info.files)} is truncated (pixel data incomplete)."
                )
            if has_burned_in_annotation(ds):
                raise _SeriesFailed(
                    "the images declare burned-in annotation (BurnedInAnnotation = YES): text in the pixels "
                    "may show the patient's name, so the series is not imported."
                )
            found = identifying_values(ds)
            for label, values in found.items():
                self.identifiers.setdefault(label, set()).update(values)
            report = deidentify(ds, self.ctx)
            if series_uid:
                ds.SeriesInstanceUID = series_uid
            self.uid_map.update(report.uid_map)
            self.identifiers.setdefault("original UID", set()).update(report.original_uids)
            self.kept_texts |= _kept_texts(ds)
            raw = _encode(ds)
            pixels = len(ds.PixelData) if "PixelData" in ds else 0
            self._check_leaks(
                raw[: len(raw) - pixels], f"DICOM file {index + 1}", found, report.original_uids
            )
            (self.staging_dicom / f"{index:04d}.dcm").write_bytes(raw)
            if first is None or keep_headers:
                if "PixelData" in ds:
                    del ds.PixelData
                kept.append(ds)
                if first is None:
                    first = ds
            yield self.counter.step(f"de-identifying {self.info.modality} images")
        return kept, first

    def _suv_provenance(self, original, deid_headers, first) -> tuple[str, str, str | None]:
        stored = compute_suv(deid_headers)
        if original.ok:
            mismatch = [
                uid
                for uid, factor in original.suvbw_factors.items()
                if not math.isclose(
                    factor, stored.suvbw_factors.get(self.uid_map.get(uid, ""), math.nan), rel_tol=1e-12
                )
            ]
            if mismatch or not stored.ok:
                raise _SeriesFailed(
                    "SUV changed after de-identification (a fault in PALMARES: please report it); not imported."
                )
        data = stored.to_dict()
        data["computed_from"] = (
            "original headers before de-identification; verified identical on the stored copies"
        )
        if original.ok:
            return json.dumps(data), "SUVbw", None
        data["error"] = original.error if not stored.error else stored.error
        units = str(first.get("Units", "") or "unknown units")
        return json.dumps(data), units, data["error"]

    def _rows(self, first, image, units, suv_json, notes) -> tuple[dict, dict]:
        info = self.info
        study_date = str(first.get("StudyDate", "") or "")
        study_row = {
            "study_uid": str(first.StudyInstanceUID),
            "study_date": f"{study_date[:4]}-{study_date[4:6]}-{study_date[6:8]}"
            if len(study_date) == 8
            else None,
            "description": str(first.get("StudyDescription", "") or ""),
            "site_code": self.site,
        }
        for_uid = info.frame_of_reference_uid
        problems = _safe_texts(info.problems, info, self.root) + notes
        series_row = {
            "id": self.series_id,
            "modality": info.modality,
            "series_uid": str(first.SeriesInstanceUID),
            "frame_of_reference_uid": self.uid_map.get(for_uid)
            or (pseudonymous_uid(for_uid, self.ctx.salt) if for_uid else None),
            "description": str(first.get("SeriesDescription", "") or ""),
            "manufacturer": str(first.get("Manufacturer", "") or ""),
            "size_json": json.dumps(list(image.GetSize())),
            "spacing_json": json.dumps(list(image.GetSpacing())),
            "origin_json": json.dumps(list(image.GetOrigin())),
            "direction_json": json.dumps(list(image.GetDirection())),
            "units": units,
            "pixel_path": f"volumes/{self.series_id}.nrrd",
            "pixel_sha256": _sha256(self.staging_volume),
            "suv_json": suv_json,
            "source_fingerprint": self.fingerprint,
            "problems_json": json.dumps(problems),
            "site_code": self.site,
        }
        return study_row, series_row

    def _commit(self, study_row: dict, series_row: dict) -> None:
        store = self.store
        with store.transaction():
            subject = store.ensure_subject(self.ctx.subject_code, self.site)
            studies = store.rows("studies", "study_uid = ?", [study_row["study_uid"]])
            if studies and studies[0]["subject_id"] != subject["id"]:
                raise _SeriesFailed("its study is already in the store under another subject; not imported.")
            study = (
                studies[0] if studies else store.insert("studies", {**study_row, "subject_id": subject["id"]})
            )
            store.insert("series", {**series_row, "study_id": study["id"], "subject_id": subject["id"]})
            if not store.rows(
                "subject_status", "subject_id = ? and modality = ?", [subject["id"], self.info.modality]
            ):
                store.set_status(subject["id"], self.info.modality, "not started")
            # The key link goes in before the commit: if it failed, the rows would roll back; if the
            # commit fails after it, a harmless link without images remains.
            self.keys.link(self.patient_id, self.ctx.subject_code)
            self.staging_dicom.rename(self.final_dicom)
            self.staging_volume.rename(self.final_volume)

    # -- helpers
    def _check_leaks(self, data: bytes | str, where: str, values=None, uids=None) -> None:
        values = self.identifiers if values is None else {**values, "original UID": set(uids or ())}
        found = LeakCheck(values, ignore=self.kept_texts | {self.ctx.subject_code}).find(data)
        if found:
            raise _SeriesFailed(
                f"de-identification check failed: {', '.join(sorted(found))} still present in {where}; not imported."
            )

    def _nrrd_header(self) -> bytes:
        with open(self.staging_volume, "rb") as fp:
            head = fp.read(65536)
        return head.split(b"\n\n", 1)[0]


def _kept_texts(ds: pydicom.Dataset) -> set[str]:
    """Device and code texts kept in the header: an identifier equal to one of them (e.g. an
    InstitutionName equal to the Manufacturer) is not a patient identifier leaking."""
    out = set()
    for elem in ds.iterall():
        if elem.VR in ("LO", "SH", "CS") and elem.keyword not in ("PatientName", "PatientID") and elem.value:
            values = elem.value if elem.VM > 1 else [elem.value]
            out |= {str(v).strip() for v in values}
    return out


def _pixel_data_complete(ds: pydicom.Dataset) -> bool:
    """False when native pixel data is shorter than the header says (pydicom reads short files
    without complaint)."""
    if "PixelData" not in ds:
        return False
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if syntax is not None and syntax.is_encapsulated:
        return len(ds.PixelData) > 0  # compressed: the decoder in load_series checks the rest
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    expected = (
        int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1)) * frames * int(ds.BitsAllocated)
    )
    return len(ds.PixelData) * 8 >= expected


def _encode(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fp:
        for block in iter(lambda: fp.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _remove_stale_staging(root: Path, max_age_s: float = 86400) -> None:
    """Leftovers of an import killed mid-way (a crash cannot run clean-up code)."""
    cutoff = time.time() - max_age_s
    for folder in (root / "dicom", root / "volumes"):
        for path in folder.glob(f"{STAGING_PREFIX}*") if folder.is_dir() else []:
            try:
                if path.stat().st_mtime < cutoff:
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
            except OSError:
                log.warning("could not remove stale import leftover %s", path)


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

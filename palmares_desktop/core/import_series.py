"""One series of an import (see `core.importer` for the whole flow and its guarantees).

`SeriesImport.run()` is a generator: SUV from the original headers, de-identified copies under a
staging folder, the volume, SUV re-computed and compared on the copies, the leak check, then the
rows and the renames in one transaction. Whatever fails or is cancelled, its `finally` removes the
files it wrote, so the store only ever gains complete series.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
import SimpleITK as sitk
from pydicom.config import disable_value_validation

from palmares_desktop.core.dicom.deid import (
    PART,
    DeidContext,
    deidentify,
    has_burned_in_annotation,
    identifying_values,
    pseudonymous_uid,
)
from palmares_desktop.core.dicom.deid_rules import DEVICE_TEXT
from palmares_desktop.core.dicom.discovery import SeriesInfo
from palmares_desktop.core.dicom.leaks import LeakCheck, uid_present
from palmares_desktop.core.dicom.volume import load_series
from palmares_desktop.core.pet.suv import compute_suv
from palmares_desktop.core.store import Store, file_sha256, records
from palmares_desktop.core.store.files import discard, publish
from palmares_desktop.core.store.keys import KeyTable
from palmares_desktop.core.tasks import Progress, Task


class SeriesFailed(Exception):
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


def series_key(info: SeriesInfo) -> str:
    # A SeriesInstanceUID split into stacks (e.g. two matrices) gives one stored series per stack.
    return info.series_uid if not info.part else f"{info.series_uid}|part {info.part}"


def safe_texts(texts: list[str], info: SeriesInfo, root: Path) -> list[str]:
    """Problem sentences without folder or file names (a path can hold a patient's name)."""
    names = {str(root), str(root.resolve())} | {str(p) for p in info.files} | {p.name for p in info.files}
    out = []
    for text in texts:
        for name in sorted((n for n in names if len(n) >= 4), key=len, reverse=True):
            text = text.replace(name, "<file>")
        out.append(text)
    return out


@dataclass
class Counter:
    total: int
    done: int = 0

    def step(self, message: str) -> Progress:
        self.done += 1
        return Progress(min(self.done, self.total), self.total, message)


class SeriesImport:
    def __init__(self, store, keys, ctx, info, root, site, patient_id, fingerprint, counter) -> None:
        self.store: Store = store
        self.keys: KeyTable = keys
        self.ctx: DeidContext = ctx
        self.info: SeriesInfo = info
        self.root: Path = root
        self.site: str = site
        self.patient_id: str = patient_id
        self.fingerprint: str = fingerprint
        self.counter: Counter = counter
        self.series_id = str(uuid.uuid4())
        self.final_dicom = store.files.dicom(self.series_id)
        self.final_volume = store.files.volume(self.series_id)
        self.staging_dicom = store.files.staging(self.final_dicom)
        self.staging_volume = store.files.staging(self.final_volume)
        self.uid_map: dict[str, str] = {}
        self.identifiers: dict[str, set[str]] = {}
        self.kept_texts: set[str] = set()
        self.device_texts: set[str] = set()
        self.cleaned: set[str] = set()  # kept attributes dropped because they named the patient
        self._leak_checks: dict[tuple, LeakCheck] = {}

    def run(self) -> Task[ImportedSeries]:
        committed = False
        try:
            result = yield from self._run()
            committed = True
            return result
        finally:
            if not committed:
                discard(self.staging_dicom, self.final_dicom, self.staging_volume, self.final_volume)

    def _run(self) -> Task[ImportedSeries]:
        info = self.info
        is_pet = info.modality == "PT"
        original_suv = None
        if is_pet:
            headers = self._read_headers()
            with _quiet():
                original_suv = compute_suv(headers)
        deid_headers, first = yield from self._write_dicom(keep_headers=is_pet)

        image = load_series(info, original_suv.suvbw_factors if original_suv and original_suv.ok else None)
        for key in image.GetMetaDataKeys():  # never let a reader's metadata reach the NRRD header
            image.EraseMetaData(key)
        self.staging_volume.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(image, str(self.staging_volume), True)
        yield self.counter.step("writing the volume")

        notes: list[str] = []
        if self.cleaned:  # names of attributes only, never their values
            notes.append(
                f"Removed from the copies because they contained the patient's identifying values: "
                f"{', '.join(sorted(self.cleaned))}."
            )
        suv, units, suv_error = None, "HU" if info.modality == "CT" else "", None
        if is_pet:
            suv, units, suv_error = self._suv_provenance(original_suv, deid_headers, first)
            if suv_error:
                notes.append(f"SUV could not be computed: {suv_error} Values are in {units}, not SUV.")
        # What the scan noticed on a usable series (e.g. an incomplete export) is shown too, not only stored.
        warnings = safe_texts(info.problems, info, self.root) + notes
        study_row, series_row = self._rows(first, image, units, suv, warnings)
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
            warnings,
        )

    # -- steps
    def _read_headers(self) -> list[pydicom.Dataset]:
        try:
            with _quiet():
                return [pydicom.dcmread(p, stop_before_pixels=True) for p in self.info.files]
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types on damaged files
            raise SeriesFailed(f"a file of the series can no longer be read ({type(exc).__name__}).") from exc

    def _write_dicom(self, keep_headers: bool) -> Task[tuple[list[pydicom.Dataset], pydicom.Dataset]]:
        self.staging_dicom.mkdir(parents=True)
        kept: list[pydicom.Dataset] = []
        for index, path in enumerate(self.info.files):
            with _quiet():
                ds = self._deidentify_file(index, path)
            if not kept or keep_headers:
                if "PixelData" in ds:
                    del ds.PixelData
                kept.append(ds)
            yield self.counter.step(f"de-identifying {self.info.modality} images")
        return kept, kept[0]

    def _deidentify_file(self, index: int, path: Path) -> pydicom.Dataset:
        """Read one original, de-identify it, check it for leaks and write it to the staging folder."""
        where = f"file {index + 1} of {len(self.info.files)}"
        try:
            ds = pydicom.dcmread(path)
            complete = _pixel_data_complete(ds)
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types on damaged files
            raise SeriesFailed(f"{where} cannot be read ({type(exc).__name__}).") from exc
        if not complete:
            raise SeriesFailed(f"{where} is truncated (pixel data incomplete).")
        if has_burned_in_annotation(ds):
            raise SeriesFailed(
                "the images declare burned-in annotation (BurnedInAnnotation = YES): text in the pixels "
                "may show the patient's name, so the series is not imported."
            )
        found = identifying_values(ds)
        for label, values in found.items():
            self.identifiers.setdefault(label, set()).update(values)
        report = deidentify(ds, self.ctx)
        if self.info.part:  # each stack of a split series becomes a series of its own
            ds.SeriesInstanceUID = pseudonymous_uid(series_key(self.info), self.ctx.salt)
        self.uid_map.update(report.uid_map)
        self.cleaned.update(report.cleaned)
        self.identifiers.setdefault("original UID", set()).update(report.original_uids)
        self.kept_texts |= _kept_texts(ds)
        self.device_texts |= _device_texts(ds)
        raw = _encode(ds)
        pixels = len(ds.PixelData) if "PixelData" in ds else 0
        self._check_leaks(raw[: len(raw) - pixels], f"DICOM {where}", found, report.original_uids)
        (self.staging_dicom / f"{index:04d}.dcm").write_bytes(raw)
        return ds

    def _suv_provenance(self, original, deid_headers, first) -> tuple[dict, str, str | None]:
        with _quiet():
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
                raise SeriesFailed(
                    "SUV changed after de-identification (a fault in PALMARES: please report it); not imported."
                )
        data = stored.to_dict()
        data["computed_from"] = (
            "original headers before de-identification; verified identical on the stored copies"
        )
        if original.ok:
            return data, "SUVbw", None
        data["error"] = original.error if not stored.error else stored.error
        units = str(first.get("Units", "") or "unknown units")
        return data, units, data["error"]

    def _rows(self, first, image, units, suv, problems) -> tuple[dict, dict]:
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
        series_row = {
            "id": self.series_id,
            "modality": info.modality,
            "series_uid": str(first.SeriesInstanceUID),
            "frame_of_reference_uid": self.uid_map.get(for_uid)
            or (pseudonymous_uid(for_uid, self.ctx.salt) if for_uid else None),
            "description": str(first.get("SeriesDescription", "") or ""),
            "manufacturer": str(first.get("Manufacturer", "") or ""),
            **records.series_json_columns(
                image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection(), suv, problems
            ),
            "units": units,
            "pixel_path": self.store.files.relative(self.final_volume),
            "pixel_sha256": file_sha256(self.staging_volume),
            "source_fingerprint": self.fingerprint,
            "site_code": self.site,
        }
        return study_row, series_row

    def _commit(self, study_row: dict, series_row: dict) -> None:
        store = self.store
        with store.transaction():
            subject = store.ensure_subject(self.ctx.subject_code, self.site)
            study = records.study_with_uid(store, study_row["study_uid"])
            if study and study.subject_id != subject.id:
                raise SeriesFailed("its study is already in the store under another subject; not imported.")
            study = study or records.add_study(store, {**study_row, "subject_id": subject.id})
            records.add_series(store, {**series_row, "study_id": study.id, "subject_id": subject.id})
            if not records.has_status(store, subject.id, self.info.modality):
                store.set_status(subject.id, self.info.modality, "not started")
            # The key link goes in before the commit: if it failed, the rows would roll back; if the
            # commit fails after it, a harmless link without images remains.
            self.keys.link(self.patient_id, self.ctx.subject_code)
            # Final names inside the transaction: see core/store/files.py for why this is safe.
            publish(self.staging_dicom, self.final_dicom)
            publish(self.staging_volume, self.final_volume)

    # -- helpers
    def _check_leaks(self, data: bytes | str, where: str, values=None, uids=None) -> None:
        """Refuse the series if an original identifier is in `data`. Full values and UIDs are looked
        for everywhere; parts of names everywhere except inside device-written texts."""
        values = self.identifiers if values is None else values
        uids = self.identifiers.get("original UID", set()) if uids is None else uids
        data = data.encode("utf-8") if isinstance(data, str) else data
        ignore = frozenset(self.kept_texts | {self.ctx.subject_code})
        full = {k: v for k, v in values.items() if not k.endswith(PART) and k != "original UID"}
        parts = {k: v for k, v in values.items() if k.endswith(PART)}
        found = self._leak_check(full, ignore).find(data)
        if parts:
            scrubbed = data
            for text in sorted(self.device_texts, key=len, reverse=True):
                scrubbed = scrubbed.replace(text.encode("utf-8", "replace"), b" ")
            found |= self._leak_check(parts, ignore).find(scrubbed)
        if any(uid_present(data, uid) for uid in uids):
            found.add("original UID")
        if found:
            raise SeriesFailed(
                f"de-identification check failed: {', '.join(sorted(found))} still present in {where}; "
                "not imported."
            )

    def _leak_check(self, values: dict[str, set[str]], ignore: frozenset[str]) -> LeakCheck:
        # The identifiers are the same in every file of a series: compile each pattern set once.
        key = (frozenset((k, frozenset(v)) for k, v in values.items()), ignore)
        if key not in self._leak_checks:
            self._leak_checks[key] = LeakCheck(values, ignore=ignore)
        return self._leak_checks[key]

    def _nrrd_header(self) -> bytes:
        with open(self.staging_volume, "rb") as fp:
            head = fp.read(65536)
        return head.split(b"\n\n", 1)[0]


@contextlib.contextmanager
def _quiet():
    """Silence pydicom's complaints about vendor quirks it reads anyway (over-long values...):
    thousands of them per import would bury the log."""
    with warnings.catch_warnings(), disable_value_validation():
        warnings.simplefilter("ignore")
        yield


def _device_texts(ds: pydicom.Dataset) -> set[str]:
    out = set()
    for elem in ds.iterall():
        if elem.keyword in DEVICE_TEXT and elem.value:
            out |= {str(v).strip() for v in (elem.value if elem.VM > 1 else [elem.value]) if str(v).strip()}
    return out


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

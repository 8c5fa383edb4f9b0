"""The demo study: write it to disk as real files, and build a store from it through the real import path.

`write_demo_study(out_dir)` writes, per subject, a PACS-style DICOM export (CT + FDG-PET, one
vendor's conventions each), the planted lesions as label maps on the CT and PET grids (NRRD, lesion
k = label k) and a pyramidal H&E-like slide, plus `demo_manifest.json` with every expected value.

    out_dir/
      demo_manifest.json
      dicom/subject<n>/SE0002_CT/IM*.dcm, SE0003_PT/IM*.dcm
      labels/subject<n>/ct_lesions.nrrd, pet_lesions.nrrd
      slides/DEMO-SUBJECT<n>-HE.svs

`build_demo_store(store_path)` imports each subject with `core.importer.import_dicom` (so the demo
is de-identified and SUV-calibrated like real data), registers the slides, and adds the planted
lesions with `core.segmentation.labelmaps.add_segmentation`, authored by the system reader
"demo generator". It runs once: a store that records a finished demo build is left untouched.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from palmares_desktop.core.demo.dicom_writer import (
    CT_GRID,
    PET_GRID,
    VENDORS,
    WrittenSubject,
    write_subject_dicom,
)
from palmares_desktop.core.demo.phantom import Grid, Subject, lesion_labels, make_subject
from palmares_desktop.core.demo.slide_writer import texture_library, write_slide
from palmares_desktop.core.errors import PalmaresError
from palmares_desktop.core.tasks import Progress, Task, run

DEMO_VERSION = 1
DEMO_SITE = "IT99"
DEMO_READER = "demo generator"
MANIFEST_NAME = "demo_manifest.json"
BUILT_SETTING = "demo.built"
LESION_TYPES = {
    "liver": "metastasis",
    "bone": "metastasis",
    "lung": "metastasis",
    "lymph node": "lymph node",
    "breast": "primary",
}


class DemoError(PalmaresError):
    """The demo could not be written or imported (plain sentence)."""


@dataclass
class DemoSubject:
    code: str  # pseudonym the demo store uses (IT99-0001...)
    index: int
    vendor: str
    patient_name: str  # the fake identifiers in the DICOM headers, which import must remove
    patient_id: str
    dicom_folder: str  # paths relative to the manifest's folder
    ct_labels: str
    pet_labels: str
    slide: str
    study_uid: str
    frame_of_reference_uid: str
    ct_series_uid: str
    pet_series_uid: str
    pet_units: str
    weight_kg: float
    height_m: float
    suv_factor: float  # SUVbw = (stored * RescaleSlope) * suv_factor, every PET slice
    suv_inputs: dict
    ct_grid: dict
    pet_grid: dict
    liver_reference: dict
    lesions: list[dict]
    slide_info: dict
    seconds: dict


@dataclass
class DemoManifest:
    root: Path
    subjects: list[DemoSubject] = field(default_factory=list)
    version: int = DEMO_VERSION
    created: str = ""
    seconds: float = 0.0

    def path(self, relative: str) -> Path:
        return self.root / relative

    def to_dict(self) -> dict:
        return {
            "version": self.version,
            "created": self.created,
            "seconds": round(self.seconds, 2),
            "site_code": DEMO_SITE,
            "subjects": [asdict(s) for s in self.subjects],
        }

    def write(self) -> Path:
        target = self.root / MANIFEST_NAME
        target.write_text(json.dumps(self.to_dict(), indent=1))
        return target


def load_manifest(out_dir: str | Path) -> DemoManifest | None:
    """The manifest in `out_dir` if it is of this demo version and all its files exist (a slide once
    drawn), else None."""
    root = Path(out_dir)
    try:
        data = json.loads((root / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None
    if data.get("version") != DEMO_VERSION:
        return None
    manifest = DemoManifest(
        root,
        [DemoSubject(**s) for s in data["subjects"]],
        data["version"],
        data.get("created", ""),
        data.get("seconds", 0.0),
    )
    # A slide not drawn yet (no slide_info: the build draws it after the subject's import) is no loss.
    files = [
        p
        for s in manifest.subjects
        for p in (s.dicom_folder, s.ct_labels, s.pet_labels, *([s.slide] if s.slide_info else []))
    ]
    return manifest if all((root / p).exists() for p in files) else None


# --------------------------------------------------------------------------- writing
def _grid_dict(grid: Grid) -> dict:
    nz, ny, nx = grid.shape
    return {
        "size": [nx, ny, nz],
        "spacing": list(grid.spacing),
        "origin": list(grid.origin),
        "direction": [1, 0, 0, 0, 1, 0, 0, 0, 1],
    }


def _write_labels(labels: np.ndarray, grid: Grid, path: Path) -> None:
    image = sitk.GetImageFromArray(labels)
    image.SetSpacing(grid.spacing)
    image.SetOrigin(grid.origin)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), useCompression=True)


def _sphere_mean(values: np.ndarray, grid: Grid, centre: tuple[float, float, float], radius: float) -> float:
    xs, ys, zs = grid.axes()
    inside = (
        (xs[None, None, :] - centre[0]) ** 2
        + (ys[None, :, None] - centre[1]) ** 2
        + (zs[:, None, None] - centre[2]) ** 2
    ) <= radius**2
    return float(values[inside].mean())


def _lesion_entries(
    subject: Subject, written: WrittenSubject, ct_labels: np.ndarray, pet_labels: np.ndarray
) -> list[dict]:
    entries = []
    for lesion in subject.lesions:
        in_pet, in_ct = pet_labels == lesion.label, ct_labels == lesion.label
        suv = written.pet_suv[in_pet]
        entries.append(
            {
                "label": lesion.label,
                "name": lesion.name,
                "organ": lesion.organ,
                "lesion_type": LESION_TYPES.get(lesion.organ, "lesion"),
                "bone_character": lesion.character,
                "centre_mm": list(lesion.centre),
                "radii_mm": list(lesion.radii),
                "planted_suv_max": lesion.suv_max,
                "planted_hu": lesion.hu,
                "volume_ml": round(lesion.volume_ml, 4),
                "expected": {
                    "suv_max": float(suv.max()),
                    "suv_mean": float(suv.mean()),
                    "pet_voxels": int(in_pet.sum()),
                    "pet_volume_ml": float(in_pet.sum() * PET_GRID.voxel_ml),
                    "ct_voxels": int(in_ct.sum()),
                    "ct_volume_ml": float(in_ct.sum() * CT_GRID.voxel_ml),
                    "hu_mean": float(written.ct_hu[in_ct].mean()),
                    "pet_centre_index_zyx": list(PET_GRID.index_of(lesion.centre)),
                },
            }
        )
    return entries


def iter_write_demo_study(out_dir: str | Path, n_subjects: int = 3, seed: int = 2025) -> Task[DemoManifest]:
    """Write the demo study (see module doc); yields progress, returns the manifest (also on disk)."""
    manifest = _new_manifest(out_dir, n_subjects)
    start = time.perf_counter()
    for n in range(1, n_subjects + 1):
        manifest.subjects.append((yield from iter_write_subject(manifest.root, n, 2 * n_subjects, seed)))
    texture_library.cache_clear()
    manifest.seconds = time.perf_counter() - start
    manifest.write()
    yield Progress(2 * n_subjects, 2 * n_subjects, "demo study written")
    return manifest


def _new_manifest(out_dir: str | Path, n_subjects: int) -> DemoManifest:
    if n_subjects < 1 or n_subjects > 99:
        raise DemoError("The demo has between 1 and 99 subjects.")
    root = Path(out_dir).expanduser().resolve()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DemoError(f"Cannot create the demo folder {root}: {exc.strerror}.") from exc
    return DemoManifest(root, created=datetime.now(timezone.utc).isoformat(timespec="seconds"))


def iter_write_subject(
    root: Path, n: int, steps: int, seed: int = 2025, with_slide: bool = True
) -> Task[DemoSubject]:
    """Write demo subject `n` (CT, PET, lesion labels and, unless `with_slide` is False, its H&E
    slide: `iter_write_slide` writes it later) under `root`; returns its entry."""
    yield Progress(2 * (n - 1), steps, f"subject {n}: CT and PET")
    t0 = time.perf_counter()
    subject = make_subject(n, PET_GRID, seed)
    vendor = VENDORS[(n - 1) % len(VENDORS)].key
    folder = f"dicom/subject{n}"
    written = write_subject_dicom(subject, root / folder, vendor)
    t1 = time.perf_counter()
    ct_labels, pet_labels = lesion_labels(subject, CT_GRID), lesion_labels(subject, PET_GRID)
    ct_path, pet_path = f"labels/subject{n}/ct_lesions.nrrd", f"labels/subject{n}/pet_lesions.nrrd"
    _write_labels(ct_labels, CT_GRID, root / ct_path)
    _write_labels(pet_labels, PET_GRID, root / pet_path)
    reference = subject.liver_reference
    slide_path = f"slides/DEMO-SUBJECT{n}-HE.svs"
    entry = DemoSubject(
        code=f"{DEMO_SITE}-{n:04d}",
        index=n,
        vendor=vendor,
        patient_name=f"DEMO^SUBJECT{n}",
        patient_id=f"DEMO{n:05d}",
        dicom_folder=folder,
        ct_labels=ct_path,
        pet_labels=pet_path,
        slide=slide_path,
        study_uid=written.study_uid,
        frame_of_reference_uid=written.frame_of_reference_uid,
        ct_series_uid=written.ct_series_uid,
        pet_series_uid=written.pet_series_uid,
        pet_units=written.units,
        weight_kg=subject.weight_kg,
        height_m=subject.height_m,
        suv_factor=written.suv_factor,
        suv_inputs=written.suv_inputs,
        ct_grid=_grid_dict(CT_GRID),
        pet_grid=_grid_dict(PET_GRID),
        liver_reference={
            "centre_mm": list(reference),
            "radius_mm": 15.0,
            "planted_suv": subject.liver_suv,
            "suv_mean": _sphere_mean(written.pet_suv, PET_GRID, reference, 15.0),
            "hu_mean": _sphere_mean(written.ct_hu, CT_GRID, reference, 15.0),
        },
        lesions=_lesion_entries(subject, written, ct_labels, pet_labels),
        slide_info={},
        seconds={"dicom": round(t1 - t0, 2)},
    )
    if with_slide:
        yield from iter_write_slide(root, entry, steps, seed)
    return entry


def iter_write_slide(root: Path, subject: DemoSubject, steps: int, seed: int = 2025) -> Task[None]:
    """Write demo subject's H&E slide (once: a finished file is kept) and note it in its entry. The
    file appears whole or not at all, so an interrupted build writes it again."""
    yield Progress(2 * subject.index - 1, steps, f"subject {subject.index}: H&E slide")
    path = root / subject.slide
    if subject.slide_info and path.is_file():
        return
    partial = path.with_name(path.name + ".part")
    slide = write_slide(partial, subject.index, seed=seed)
    partial.replace(path)
    subject.slide_info = {k: v for k, v in slide.to_dict().items() if k != "path"}
    subject.seconds["slide"] = round(slide.seconds, 2)


def write_demo_study(
    out_dir: str | Path,
    n_subjects: int = 3,
    seed: int = 2025,
    on_progress: Callable[[Progress], object] | None = None,
) -> DemoManifest:
    """`iter_write_demo_study` without the generator."""
    return run(iter_write_demo_study(out_dir, n_subjects, seed), on_progress)


# --------------------------------------------------------------------------- store
def iter_build_demo_store(
    store_path: str | Path,
    work_dir: str | Path | None = None,
    n_subjects: int = 3,
    reader_name: str | None = None,
) -> Task[Path]:
    """Create (once) a store holding the demo study, imported through the real import path.

    Its writes are recorded as `reader_name` (a coordinator of the demo site unless a profile or
    reader of that name exists) or, when none is given, as the system reader DEMO_READER."""
    # Imported here: the importer and segmentation modules are heavier than the demo writer.
    from palmares_desktop.core.importer import ImportRefusedError, iter_import_dicom
    from palmares_desktop.core.segmentation.geometry import SegmentationError
    from palmares_desktop.core.slides.reader import SlideError
    from palmares_desktop.core.slides.registry import register_slide
    from palmares_desktop.core.store import Store

    root = Path(store_path).expanduser().resolve()
    with Store.open(root) as store:
        if store.setting(BUILT_SETTING):
            return root
        if reader_name is None:
            store.use_system_reader(DEMO_READER, site_code=DEMO_SITE)
        else:
            from palmares_desktop.core.profile import choose_reader

            choose_reader(store, reader_name, DEMO_SITE)
        work = Path(work_dir).expanduser().resolve() if work_dir else root / "demo-source"
        manifest = load_manifest(work)
        if manifest is None:
            manifest = _new_manifest(work, n_subjects)
        started = time.perf_counter()
        # Subject by subject, written then imported: the first one is in the store (and on a waiting
        # worklist) after seconds, not after the whole study is written.
        for n in range(1, n_subjects + 1):
            if len(manifest.subjects) < n:
                manifest.subjects.append(
                    (yield from iter_write_subject(work, n, 2 * n_subjects, with_slide=False))
                )
                manifest.seconds += time.perf_counter() - started
                started = time.perf_counter()
                manifest.write()  # an interrupted build resumes from here
            subject = manifest.subjects[n - 1]
            done = _done_parts(store, subject)  # an earlier, interrupted build may have done some
            if done == {"images", "slide", "lesions"}:
                continue
            yield Progress(n - 1, n_subjects, f"importing {subject.code}")
            if "images" not in done:
                try:
                    summary = yield from iter_import_dicom(
                        store, manifest.path(subject.dicom_folder), subject.code
                    )
                except ImportRefusedError as exc:
                    raise DemoError(f"The demo subject {subject.code} could not be imported: {exc}") from exc
                if not summary.ok or summary.errors:
                    reasons = (
                        "; ".join(f"{e.label}: {e.reason}" for e in summary.errors) or "nothing imported"
                    )
                    raise DemoError(f"The demo subject {subject.code} could not be imported: {reasons}")
            stored = store.subject_by_code(subject.code)
            try:
                if "lesions" not in done:
                    _add_lesions(store, subject, manifest)  # each lesion once, also after an interruption
                    yield Progress(n - 1, n_subjects, f"{subject.code}{SUBJECT_READY}")
                # The slide last: the subject can be read on CT/PET while its slide is drawn (~7 s).
                if "slide" not in done:
                    yield from iter_write_slide(work, subject, 2 * n_subjects)
                    manifest.write()
                    register_slide(store, stored.id, manifest.path(subject.slide), stain="H&E")
            except (SlideError, SegmentationError) as exc:
                raise DemoError(f"The demo subject {subject.code} could not be completed: {exc}") from exc
            yield Progress(n, n_subjects, f"{subject.code} with its H&E slide{SUBJECT_READY}")
        texture_library.cache_clear()
        store.set_setting(
            BUILT_SETTING, json.dumps({"version": DEMO_VERSION, "subjects": n_subjects, "source": str(work)})
        )
        yield Progress(n_subjects, n_subjects, "demo study complete")
    return root


SUBJECT_READY = " ready"  # the end of the progress message of a subject now in the store


def subject_ready(step: Progress) -> bool:
    """True for the build's step that says one more subject is in the store (and on the worklist)."""
    return step.message.endswith(SUBJECT_READY)


def _done_parts(store, subject: DemoSubject) -> set[str]:
    """Which of "images" (CT and PET imported), "slide" and "lesions" (every planted lesion on CT and
    PET) the store already holds for this demo subject."""
    from palmares_desktop.core.reading_set import subject_series
    from palmares_desktop.core.store import records

    stored = store.subject_by_code(subject.code)
    if stored is None:
        return set()
    ct, pet, _ = subject_series(store, stored.id)
    done = {"images"} if ct is not None and pet is not None else set()
    if records.slides_of_subject(store, stored.id):
        done.add("slide")
    if len(_drawn(store, subject)) == 2 * len(subject.lesions):
        done.add("lesions")
    return done


def _drawn(store, subject: DemoSubject) -> set[tuple[str, str]]:
    """(lesion name, modality) of the planted lesions already in the store."""
    from palmares_desktop.core.reading_set import subject_segmentations

    stored = store.subject_by_code(subject.code)
    planted = {lesion["name"] for lesion in subject.lesions}
    found = subject_segmentations(store, stored.id) if stored else []
    return {(s.lesion_name, s.series_modality) for s in found if s.lesion_name in planted}


def _add_lesions(store, subject: DemoSubject, manifest: DemoManifest) -> None:
    """Each planted lesion on CT and PET (one segmentation each), with its type and bone character."""
    from palmares_desktop.core.segmentation.labelmaps import add_segmentation
    from palmares_desktop.core.store import records

    drawn = _drawn(store, subject)
    for lesion in subject.lesions:
        segmentation = None
        for modality, labels in (("CT", subject.ct_labels), ("PT", subject.pet_labels)):
            if (lesion["name"], modality) in drawn:
                continue  # added before an interruption
            segmentation = add_segmentation(
                store,
                subject.code,
                modality,
                manifest.path(labels),
                label=lesion["label"],
                lesion_name=lesion["name"],
                organ=lesion["organ"],
                method="planted (demo phantom)",
                parameters={
                    "centre_mm": lesion["centre_mm"],
                    "radii_mm": lesion["radii_mm"],
                    "planted_suv_max": lesion["planted_suv_max"],
                },
            )
        if segmentation is None:
            continue
        details = {"lesion_type": lesion["lesion_type"], "bone_character": lesion["bone_character"] or None}
        stored = records.lesion_row(store, segmentation.lesion_id)
        if any(getattr(stored, key) != value for key, value in details.items()):
            records.update_lesion(store, stored.id, details)


def build_demo_store(
    store_path: str | Path,
    work_dir: str | Path | None = None,
    n_subjects: int = 3,
    on_progress: Callable[[Progress], object] | None = None,
    reader_name: str | None = None,
) -> Path:
    """`iter_build_demo_store` without the generator; returns the store folder."""
    return run(iter_build_demo_store(store_path, work_dir, n_subjects, reader_name), on_progress)

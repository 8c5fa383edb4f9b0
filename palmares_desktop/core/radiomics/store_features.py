"""Radiomics features per segmentation version, stored in `feature_sets` with their provenance.

A feature set is *current* when its segmentation id, parameter-file sha256, image sha256 (the
series' `pixel_sha256`) and mask sha256 all match what the store holds now; otherwise it is
*stale* (or *missing*) and the batch recomputes it. Old rows are never changed: a recomputation
adds a new row, so every number ever reported can still be traced.

Every version of a segmentation gets its own feature set (not only the latest): each version is an
immutable mask, so its features are computed once and stay current; the latest version is one
query away (`latest_only=True`), and inter-reader or before/after-edit comparisons need the others.

The work is split in three steps so that the batch can run the middle one on Dask workers while
only the client process writes SQLite: `plan_item` (store -> picklable WorkItem), `run_item`
(files -> Outcome, no store access), `record_outcome` (Outcome -> `feature_sets` row).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from palmares_desktop.core.radiomics.errors import RadiomicsError
from palmares_desktop.core.radiomics.images import image_sha256
from palmares_desktop.core.store import Store, StoreError, records
from palmares_desktop.core.store import segmentations as chains
from palmares_desktop.core.tasks import Progress, Task

log = logging.getLogger(__name__)

#: The study preset for each modality's lesions (CT lesions on CT, PET lesions on the SUV image).
DEFAULT_PRESETS = {"CT": "ct", "PT": "pet"}


@dataclass(frozen=True)
class WorkItem:
    """Everything one extraction needs, with absolute paths: no store access on a worker."""

    segmentation_id: str
    series_id: str
    lesion_id: str
    modality: str
    preset: str
    params: Any  # RadiomicsParams (name, text, sha256, settings)
    image_path: str
    mask_path: str
    label: int
    image_sha256: str
    mask_sha256: str
    deviation: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.segmentation_id, self.preset)


@dataclass
class Outcome:
    """The result of one extraction: values and provenance, or the reason it failed."""

    values: dict[str, Any] | None = None
    diagnostics: dict[str, Any] | None = None
    provenance: dict[str, Any] | None = None
    error: str | None = None
    elapsed_s: float = 0.0
    read_s: float = 0.0
    worker: str = field(default_factory=socket.gethostname)
    #: The files could not be read where the extraction ran (e.g. a remote worker without the
    #: store mounted): a property of the cluster, not of the lesion, so it is not stored.
    unreachable: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


# ---------------------------------------------------------------------------------- parameters
def presets_for(modality: str, presets: Sequence[str] | None = None) -> list[str | None]:
    """Which presets apply to a segmentation of `modality`.

    Without `presets`: [None], the study's parameters for the modality (its locked file, else the
    'ct'/'pet' preset). The built-in names route by modality ('ct' only for CT, 'pet' only for
    PET, 'he' for neither); a parameter file path applies to every modality.
    """
    if not presets:
        return [None] if modality in DEFAULT_PRESETS else []
    routed = {"ct": "CT", "pet": "PT", "he": "HE"}
    return [p for p in presets if routed.get(str(p).lower(), modality) == modality]


def _load_params(store: Store, modality: str, preset: str | None, cache: dict) -> Any:
    from palmares_desktop.core.radiomics.params import load_params, params_for_modality

    key = (modality, preset)
    if key not in cache:
        cache[key] = params_for_modality(store, modality) if preset is None else load_params(preset)
    return cache[key]


# ------------------------------------------------------------------------------------- planning
def plan_item(
    store: Store, segmentation_id: str, preset: str | None = None, _params_cache: dict | None = None
) -> WorkItem:
    """The extraction to run for one segmentation version and preset.

    `preset` None means the study's parameters for the series' modality (the locked file if the
    study locked one, else the 'ct'/'pet' preset). Raises RadiomicsLockError when the study
    refuses these parameters.
    """
    seg = chains.segmentation(store, segmentation_id)
    if not seg.is_final:
        # A draft changes at every autosave: features are computed once it is finalised.
        raise StoreError(
            f"The {chains.describe(store, segmentation_id)} has no features until it is finalised."
        )
    series = records.series_row(store, seg.series_id)
    modality = series.modality
    if preset is None and modality not in DEFAULT_PRESETS:
        raise StoreError(f"There is no study radiomics preset for {modality} images.")
    from palmares_desktop.core.radiomics.params import check_lock

    cache = _params_cache if _params_cache is not None else {}
    params = _load_params(store, modality, preset, cache)
    # Recorded beside the features, or raised (RadiomicsLockError) when the study refuses others.
    deviation = check_lock(store, modality, params)
    return WorkItem(
        segmentation_id=seg.id,
        series_id=series.id,
        lesion_id=seg.lesion_id,
        modality=modality,
        preset=preset or params.name,
        params=params,
        image_path=str(store.path(series.pixel_path or "")),
        mask_path=str(store.path(seg.mask_path or "")),
        label=int(seg.label or 1),
        image_sha256=series.pixel_sha256 or "",
        mask_sha256=seg.mask_sha256 or "",
        deviation=deviation,
    )


def current_feature_set(store: Store, item: WorkItem, include_failed: bool = True) -> dict | None:
    """The newest feature set computed from exactly these inputs, or None if missing/stale."""
    rows = records.feature_sets_from(
        store, item.segmentation_id, item.params.sha256, item.image_sha256, item.mask_sha256
    )
    rows = [r for r in rows if include_failed or r["status"] == "ok"]
    return rows[0] if rows else None


def plan_pending(
    store: Store, presets: Sequence[str] | None = None, latest_only: bool = False, retry_failed: bool = False
) -> tuple[list[WorkItem], list[WorkItem]]:
    """(to compute, already current) over every segmentation version and applicable preset."""
    cache: dict = {}
    pending, current = [], []
    for seg in chains.final_for_features(store, latest_only):
        for preset in presets_for(seg.series_modality, presets):
            item = plan_item(store, seg.id, preset, cache)
            existing = current_feature_set(store, item, include_failed=not retry_failed)
            (current if existing else pending).append(item)
    return pending, current


def pending_work(
    store: Store, presets: Sequence[str] | None = None, latest_only: bool = False, retry_failed: bool = False
) -> list[tuple[str, str]]:
    """(segmentation_id, preset) pairs whose feature set is missing or stale."""
    pending, _ = plan_pending(store, presets, latest_only, retry_failed)
    return [item.key for item in pending]


# ------------------------------------------------------------------------------------ computing
def _read(path: str, what: str) -> sitk.Image:
    if not Path(path).is_file():
        raise FileNotFoundError(f"The {what} file {path} is not reachable from {socket.gethostname()}.")
    return sitk.ReadImage(path)


def run_item(item: WorkItem, image_cache: dict[str, tuple[str, sitk.Image, str]] | None = None) -> Outcome:
    """Read the image and mask and extract; never raises (the reason goes in Outcome.error).

    `image_cache` (path -> (file sha256, image, voxel hash)) lets a batch worker reuse the volume shared by the
    lesions of one series instead of decompressing it again for each.
    """
    from palmares_desktop.core.radiomics.extract import extract_features, versions

    started = time.perf_counter()
    try:
        cached = image_cache.get(item.image_path) if image_cache is not None else None
        if cached is not None and cached[0] == item.image_sha256:
            _, image, voxel_hash = cached
        else:
            image = _read(item.image_path, "image")
            voxel_hash = image_sha256(image)
            if image_cache is not None:
                image_cache.clear()  # one volume at a time: memory stays near one copy
                image_cache[item.image_path] = (item.image_sha256, image, voxel_hash)
        mask = _read(item.mask_path, "mask")
    except FileNotFoundError as exc:
        return Outcome(error=_plain(exc), elapsed_s=time.perf_counter() - started, unreachable=True)
    except RuntimeError as exc:  # the file is there but SimpleITK cannot read it: damaged
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
        return Outcome(
            error=f"The image or mask file cannot be read ({reason}).",
            elapsed_s=time.perf_counter() - started,
        )
    read_s = time.perf_counter() - started
    try:
        result = extract_features(image, mask, item.params, label=item.label, image_hash=voxel_hash)
    except Exception as exc:  # noqa: BLE001 - every failure is stored with its reason, never raised
        if not isinstance(exc, RadiomicsError):
            log.exception("extraction of segmentation %s failed unexpectedly", item.segmentation_id)
        # Enough to reproduce the failure too: the parameters and the software that refused them.
        params = {"name": item.params.name, "sha256": item.params.sha256, "text": item.params.text}
        return Outcome(
            error=_plain(exc),
            provenance={
                "pyradiomics_reason": getattr(exc, "reason", None),
                "params": params,
                "versions": versions(),
                "label": item.label,
            },
            elapsed_s=time.perf_counter() - started,
            read_s=read_s,
        )
    return Outcome(
        values=dict(result.values),
        diagnostics=dict(result.diagnostics),
        provenance=dict(result.provenance),
        elapsed_s=time.perf_counter() - started,
        read_s=read_s,
    )


def _plain(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if isinstance(exc, RadiomicsError | FileNotFoundError) else f"{text} ({type(exc).__name__})"


def _json_safe(value: Any) -> Any:
    """NaN/inf as null, as `palmares radiomics` prints them (the store writes the JSON)."""
    from palmares_desktop.core.radiomics.extract import json_safe

    return json_safe(value)


def record_outcome(store: Store, item: WorkItem, outcome: Outcome) -> dict:
    """Write one outcome as a new `feature_sets` row (client side: the only SQLite writer)."""
    seg = chains.segmentation(store, item.segmentation_id)
    provenance = {
        **(outcome.provenance or {}),
        "diagnostics": outcome.diagnostics or {},
        "store": {
            "segmentation_id": item.segmentation_id,
            "segmentation_version": seg.version,
            "segmentation_method": seg.method,
            "lesion_id": item.lesion_id,
            "series_id": item.series_id,
            "modality": item.modality,
            "preset": item.preset,
            "label": item.label,
            "image_sha256": item.image_sha256,
            "mask_sha256": item.mask_sha256,
            "worker": outcome.worker,
            "read_s": round(outcome.read_s, 4),
        },
    }
    with store.transaction():  # the write lock is held from the check to the insert
        if outcome.ok:
            # Another batch (or window) may have stored the same set meanwhile: it is already there.
            existing = current_feature_set(store, item, include_failed=False)
            if existing is not None:
                return existing
        return _insert_feature_set(store, item, outcome, provenance)


def _insert_feature_set(store: Store, item: WorkItem, outcome: Outcome, provenance: dict) -> dict:
    return records.add_feature_set(
        store,
        {
            "segmentation_id": item.segmentation_id,
            "series_id": item.series_id,
            "lesion_id": item.lesion_id,
            "modality": item.modality,
            "params_name": item.params.name,
            "params_sha256": item.params.sha256,
            "image_sha256": item.image_sha256,
            "mask_sha256": item.mask_sha256,
            "status": "ok" if outcome.ok else "error",
            "error": outcome.error,
            "features": _json_safe(outcome.values) if outcome.ok else None,
            "provenance": _json_safe(provenance),
            "deviation": item.deviation,
            "elapsed_s": round(outcome.elapsed_s, 4),
        },
        detail={"preset": item.preset, "status": "ok" if outcome.ok else "error"},
    )


def compute_features_for_segmentation(
    store: Store, segmentation_id: str, preset: str | None = None, force: bool = False
) -> dict:
    """Compute (or reuse, when current and not `force`) one segmentation's feature set.

    Returns the `feature_sets` row. A failed extraction is stored with its reason (status
    'error'), not raised; only an unknown segmentation or a refused parameter file raises.
    """
    item = plan_item(store, segmentation_id, preset)
    if not force:
        existing = current_feature_set(store, item)
        if existing is not None:
            return existing
    return record_outcome(store, item, run_item(item))


def iter_compute_missing(store: Store, segmentation_ids: Sequence[str]) -> Task[dict[str, dict | str]]:
    """Compute the study features of each segmentation that lacks a current set (the background
    work after segmentations are saved or a subject is opened). Returns segmentation id -> the
    feature_sets row, or the reason no set could be made (e.g. the study refuses the parameters)."""
    from palmares_desktop.core.radiomics.errors import RadiomicsLockError

    results: dict[str, dict | str] = {}
    for done, seg_id in enumerate(segmentation_ids):
        yield Progress(done, len(segmentation_ids), "radiomics features")
        try:
            results[seg_id] = compute_features_for_segmentation(store, seg_id)
        except (RadiomicsLockError, StoreError) as exc:
            results[seg_id] = str(exc)
    yield Progress(len(segmentation_ids), len(segmentation_ids), "radiomics features")
    return results


def feature_values(row: dict) -> dict[str, Any]:
    """The features of a `feature_sets` row as a dict (empty for a failed extraction)."""
    return records.feature_values(row)

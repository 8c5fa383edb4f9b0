"""Plugin feature families stored like pyradiomics' sets: one `feature_sets` row per segmentation
version and family, with the plugin's name and version in the provenance.

The row's params_name is ``plugin:<plugin>/<family>``; its params_sha256 is the hash of the plugin
name, version, family and parameters, so a new plugin version (or other parameters) makes the old
set stale and a new row is added; old rows are never changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from typing import Any

import SimpleITK as sitk

from palmares_desktop.core.model import Segmentation, Series
from palmares_desktop.core.pet.subject_pet import sul_normalisation
from palmares_desktop.core.plugins.hookspecs import PluginError, VolumeInput, make_parameters
from palmares_desktop.core.plugins.manager import Contribution, PluginManager, run_extractor
from palmares_desktop.core.store import Store, records
from palmares_desktop.core.store import segmentations as chains


def params_name(contribution: Contribution) -> str:
    return f"plugin:{contribution.name}"


def params_sha256(contribution: Contribution, values: dict | None = None) -> str:
    extractor = contribution.item
    params = make_parameters(extractor.parameters, values) if extractor.parameters else None
    text = json.dumps(
        {
            "plugin": contribution.plugin,
            "version": contribution.version,
            "family": extractor.name,
            "parameters": dataclasses.asdict(params) if params is not None else {},
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _liver_centre(store: Store, series_id: str) -> tuple[float, float, float] | None:
    """The liver sphere the reader last placed on this PET (for PERCIST), if any."""
    for seg in records.segmentations_on_series(store, series_id):
        reference = seg.parameters.get("reference") or {}
        if reference.get("kind") == "liver":
            return tuple(float(v) for v in reference["centre_mm"])  # type: ignore[return-value]
    return None


def volume_of(store: Store, segmentation_id: str) -> tuple[VolumeInput, Segmentation, Series]:
    """(volume with the lesion mask, segmentation version, series) as a plugin extractor sees them."""
    seg = chains.segmentation(store, segmentation_id)
    series = records.series_row(store, seg.series_id)
    image = sitk.ReadImage(str(store.path(series.pixel_path or "")))
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(store.path(seg.mask_path or "")))) == int(seg.label or 1)
    context: dict[str, Any] = {"units": series.units or None}
    if series.modality == "PT":
        ratio, record = sul_normalisation(series)
        context.update(sul_ratio=ratio, sul=record, suv_provenance=records.suv_provenance(series))
        liver = _liver_centre(store, series.id)
        if liver is not None:
            context["liver_centre_mm"] = liver
    volume = VolumeInput(
        image=sitk.GetArrayFromImage(image),
        spacing=tuple(image.GetSpacing()),  # type: ignore[arg-type]
        origin=tuple(image.GetOrigin()),  # type: ignore[arg-type]
        direction=tuple(image.GetDirection()),
        modality=series.modality,
        mask=mask,
        context=context,
    )
    return volume, seg, series


def compute_plugin_features(
    store: Store,
    segmentation_id: str,
    contribution: Contribution,
    values: dict | None = None,
    force: bool = False,
) -> dict:
    """The `feature_sets` row of one plugin family for one final segmentation version (reused when
    current and not `force`). A plugin failure is stored with its reason (status 'error')."""
    seg = chains.segmentation(store, segmentation_id)
    if not seg.is_final:
        raise PluginError(
            f"The {chains.describe(store, segmentation_id)} has no features until it is finalised."
        )
    series = records.series_row(store, seg.series_id)
    if series.modality not in contribution.item.modalities:
        raise PluginError(
            f"The plugin family {contribution.name} is for {', '.join(contribution.item.modalities)} "
            f"images, not {series.modality}."
        )
    sha = params_sha256(contribution, values)
    inputs = (series.pixel_sha256 or "", seg.mask_sha256 or "")
    if not force:
        existing = records.feature_sets_from(store, segmentation_id, sha, *inputs)
        if existing:
            return existing[0]
    started = time.perf_counter()
    volume, seg, series = volume_of(store, segmentation_id)
    result = run_extractor(contribution, volume, values)
    provenance = {
        **result.provenance,
        "store": {
            "segmentation_id": segmentation_id,
            "segmentation_version": seg.version,
            "segmentation_method": seg.method,
            "lesion_id": seg.lesion_id,
            "series_id": series.id,
            "modality": series.modality,
            "image_sha256": inputs[0],
            "mask_sha256": inputs[1],
        },
        "context": {k: v for k, v in volume.context.items() if k != "suv_provenance"},
    }
    ok = result.error is None
    with store.transaction():
        if ok and not force:
            existing = records.feature_sets_from(store, segmentation_id, sha, *inputs)
            if existing:
                return existing[0]
        return records.add_feature_set(
            store,
            {
                "segmentation_id": segmentation_id,
                "series_id": series.id,
                "lesion_id": seg.lesion_id,
                "modality": series.modality,
                "params_name": params_name(contribution),
                "params_sha256": sha,
                "image_sha256": inputs[0],
                "mask_sha256": inputs[1],
                "status": "ok" if ok else "error",
                "error": result.error,
                "features": result.values if ok else None,
                "provenance": json.loads(json.dumps(provenance, default=str)),
                "elapsed_s": round(time.perf_counter() - started, 4),
            },
            detail={
                "plugin": contribution.plugin,
                "version": contribution.version,
                "status": "ok" if ok else "error",
            },
        )


def compute_all_plugin_features(
    store: Store, manager: PluginManager, latest_only: bool = True, family: str | None = None
) -> list[dict]:
    """Every loaded plugin family on every final segmentation of its modalities."""
    contributions = manager.feature_extractors()
    if family is not None:
        contributions = [manager.find("palmares_feature_extractors", family)]
    rows = []
    for seg in chains.final_for_features(store, latest_only):
        for contribution in contributions:
            if seg.series_modality in contribution.item.modalities:
                rows.append(compute_plugin_features(store, seg.id, contribution))
    return rows

"""A plugin segmentation tool on a subject in the store: one call for `palmares plugins run` and for
the CT/PET room's Plugins tab.

`plugin_tool_lesion` reads the subject's CT (HU, core/ct/subject_ct.load_ct) or PET (SUVbw,
core/pet/subject_pet.load_pet), hands it to the allowed plugin's tool as a `VolumeInput` (with the
clicked seed, if any), and saves the mask exactly as the CT tools do (lesion_cleanup.save_mask): the
current reader's next final version of the lesion, with method ``plugin:<plugin>/<tool>`` and, as
parameters, the typed values, the seed and the plugin's name and version. An empty mask is refused.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from palmares_desktop.core import modalities
from palmares_desktop.core.model import Segmentation
from palmares_desktop.core.plugins.hookspecs import PluginError, VolumeInput
from palmares_desktop.core.plugins.manager import PluginManager, allowed_plugins, run_tool

UNITS = {"CT": "HU", "PT": "SUVbw"}
DEFAULT_NAMES = {"CT": "CT lesion", "PT": "PET lesion"}


@dataclass
class PluginToolResult:
    """What a plugin tool made: the mask, the method and parameters saved with it, the numbers in it."""

    mask: np.ndarray
    method: str
    parameters: dict[str, Any]
    statistics: dict[str, Any]
    kept_existing: bool = False


def _load(store, subject_code: str, modality: str):
    """(subject, series, CtVolume or PetVolume, image array (z, y, x) in HU or SUVbw, context)."""
    if modality == "CT":
        from palmares_desktop.core.ct.subject_ct import load_ct

        subject, series, ct = load_ct(store, subject_code)
        return subject, series, ct, ct.hu, {}
    from palmares_desktop.core.pet.subject_pet import load_pet
    from palmares_desktop.core.store import records

    subject, series, pet, _ = load_pet(store, subject_code)
    context = {"sul_ratio": pet.sul_ratio, "suv_provenance": records.suv_provenance(series)}
    return subject, series, pet, pet.suv, context


def _statistics(image: np.ndarray, mask: np.ndarray, unit: str) -> dict[str, Any]:
    values = image[mask].astype(np.float64)
    return {
        "unit": unit,
        "image_mean": float(values.mean()),
        "image_min": float(values.min()),
        "image_max": float(values.max()),
    }


def plugin_tool_lesion(
    store,
    subject_code: str,
    tool_name: str,
    modality: str,
    values: dict | None = None,
    seed_mm=None,
    lesion_name: str | None = None,
    lesion_site: str | None = None,
) -> tuple[Segmentation, PluginToolResult, dict]:
    """Run the allowed plugin tool `tool_name` ("plugin/name", or the name alone when unambiguous)
    on the subject's CT or PET and save its mask as the lesion's new version (default name
    'CT lesion N' / 'PET lesion N'). Returns (saved segmentation version, result, report)."""
    from palmares_desktop.core.lesions import next_lesion_name
    from palmares_desktop.core.segmentation.lesion_cleanup import save_mask

    try:
        code = modalities.code_of(modality)
    except modalities.ModalityError:
        code = None
    if code not in UNITS:
        raise PluginError(f"A plugin tool runs on the CT or the PET, not on {modality!r}.")
    manager = PluginManager.for_store(store)
    tools = manager.segmentation_tools()
    if not tools:
        allowed = ", ".join(allowed_plugins(store)) or "none"
        raise PluginError(
            "No allowed plugin offers a segmentation tool (allowed at this site: "
            f"{allowed}); allow one with `palmares plugins allow NAME --store ...`."
        )
    contribution = manager.find("palmares_segmentation_tools", tool_name)
    word = modalities.display_of(code)
    if code not in contribution.item.modalities:
        works_on = " or ".join(modalities.display_of(m) for m in contribution.item.modalities)
        raise PluginError(f"The plugin tool {contribution.name} works on the {works_on}, not the {word}.")
    subject, series, volume, image, context = _load(store, subject_code, code)
    seed_zyx = volume.index_of(seed_mm, "The seed") if seed_mm is not None else None
    seed = volume.point_of(seed_zyx) if seed_zyx is not None else None
    grid = volume.grid
    given = VolumeInput(
        image=image,
        spacing=tuple(float(s) for s in grid.spacing),
        origin=tuple(float(s) for s in grid.origin),
        direction=tuple(float(s) for s in grid.direction),
        modality=code,
        seed_mm=seed,
        context=context,
    )
    mask, params = run_tool(contribution, given, values)
    typed = dataclasses.asdict(params)
    if not mask.any():
        shown = ", ".join(f"{k} {v}" for k, v in typed.items()) or "its defaults"
        raise PluginError(
            f"The plugin tool {contribution.name} kept no voxel of the {word} of {subject_code} "
            f"({shown}); nothing was saved."
        )
    parameters = {
        "values": typed,
        "provenance": contribution.provenance(),
        "seed_mm": list(seed) if seed is not None else None,
        "image": f"{word} ({UNITS[code]})",
    }
    method = f"plugin:{contribution.name}"
    name = lesion_name or next_lesion_name(store, subject.id, DEFAULT_NAMES[code])
    saved, kept = save_mask(store, subject.code, series, grid, mask, method, parameters, name, lesion_site)
    result = PluginToolResult(mask, method, parameters, _statistics(image, mask, UNITS[code]), kept)
    return saved, result, plugin_tool_report(store, subject_code, saved, result)


def plugin_tool_report(store, subject_code: str, seg: Segmentation, result: PluginToolResult) -> dict:
    """What a plugin tool saved (lesion_cleanup.version_report), with the image numbers inside the
    mask and `sentence`, the lines a reader reads."""
    from palmares_desktop.core.segmentation.lesion_cleanup import version_report

    report = version_report(
        store, subject_code, seg, result.kept_existing, result.method, result.parameters, **result.statistics
    )
    report["sentence"] = " ".join(plugin_tool_lines(report))
    return report


def plugin_tool_lines(report: dict) -> list[str]:
    """The sentences about a `plugin_tool_report`, first line first."""
    from palmares_desktop.core.segmentation.lesion_cleanup import saved_sentence

    lines = [saved_sentence(report)]
    unit = report.get("unit", "")
    if "image_mean" in report:
        lines.append(
            f"Inside: mean {report['image_mean']:.2f} {unit}, min {report['image_min']:.2f} {unit}, "
            f"max {report['image_max']:.2f} {unit}."
        )
    values = report["parameters"].get("values") or {}
    if values:
        lines.append("Parameters: " + ", ".join(f"{k} = {v}" for k, v in values.items()) + ".")
    provenance = report["parameters"].get("provenance") or {}
    if provenance:
        lines.append(f"Plugin {provenance['plugin']} {provenance['plugin_version']}.")
    return lines

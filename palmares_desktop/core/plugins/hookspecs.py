"""The plugin hook specification: what a workstation plugin may contribute, and in which shape.

A plugin is a Python distribution that declares an entry point in the group
``palmares_desktop.plugins`` (see `manager.ENTRY_POINT_GROUP`). The entry point names a module (or
object) holding functions decorated with `hookimpl`; each hook returns a list of contributions:

- `palmares_segmentation_tools` -> [`SegmentationTool`]: a mask from an image, with its parameters
  as a *typed parameter dataclass* (the GUI builds its form from the fields, the CLI parses them).
- `palmares_feature_extractors` -> [`FeatureExtractor`]: a feature family computed on an image and
  a lesion mask; the workstation stores the values in `feature_sets` with the plugin's name and
  version in the provenance, beside pyradiomics' sets.
- `palmares_importers` -> [`Importer`]: reads a site's files into volumes, scored by confidence
  (readers compete, ARCHITECTURE.md convention 4).
- `palmares_exporters` -> [`Exporter`]: writes volumes or feature tables in a site's format.

Every array is numpy in (z, y, x) order; spacing, origin and direction are SimpleITK's (x, y, z),
in mm, patient coordinates DICOM LPS. A plugin imports only `palmares_desktop.core.plugins` and the
modules listed in `palmares_desktop.core.plugins.PUBLIC_MODULES`.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pluggy

from palmares_desktop.core.errors import PalmaresError

PROJECT = "palmares_desktop"
hookspec = pluggy.HookspecMarker(PROJECT)
#: Decorate a plugin's hook functions with this.
hookimpl = pluggy.HookimplMarker(PROJECT)


class PluginError(PalmaresError):
    """A plugin cannot be used as asked; the message says why in one sentence."""


# ----------------------------------------------------------------------------- typed parameters
@dataclass(frozen=True)
class ParameterField:
    """One field of a parameter dataclass, as a form or a command line shows it."""

    name: str
    type: str  # "float" | "int" | "bool" | "str" | "choice"
    default: Any
    label: str
    help: str = ""
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    unit: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def parameter(default: Any, label: str = "", help: str = "", choices=(), minimum=None, maximum=None, unit=""):
    """A dataclass field with what a form needs: `x: float = parameter(2.5, "Threshold", unit="SUV")`."""
    meta = {
        "label": label,
        "help": help,
        "choices": tuple(choices),
        "minimum": minimum,
        "maximum": maximum,
        "unit": unit,
    }
    return field(default=default, metadata=meta)


_TYPES = {float: "float", int: "int", bool: "bool", str: "str"}


def describe_parameters(cls: type) -> list[ParameterField]:
    """The form fields of a parameter dataclass (every field needs a default and a plain type)."""
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise PluginError(f"The parameters of a tool must be a dataclass, not {cls!r}.")
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        meta = dict(f.metadata)
        if f.default is dataclasses.MISSING:
            raise PluginError(f"The parameter {f.name} of {cls.__name__} has no default.")
        kind = "choice" if meta.get("choices") else _TYPES.get(hints.get(f.name))
        if kind is None:
            raise PluginError(
                f"The parameter {f.name} of {cls.__name__} has type {hints.get(f.name)!r}; use float, int, "
                "bool or str."
            )
        out.append(
            ParameterField(
                name=f.name,
                type=kind,
                default=f.default,
                label=meta.get("label") or f.name.replace("_", " ").capitalize(),
                help=meta.get("help", ""),
                choices=tuple(meta.get("choices") or ()),
                minimum=meta.get("minimum"),
                maximum=meta.get("maximum"),
                unit=meta.get("unit", ""),
            )
        )
    return out


def _convert(spec: ParameterField, value: Any) -> Any:
    if spec.type == "bool":
        if isinstance(value, str):
            if value.strip().lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(f"{value!r} is not yes or no")
            return value.strip().lower() in ("1", "true", "yes")
        return bool(value)
    if spec.type == "int":
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{value!r} is not a whole number")
        return int(value)
    if spec.type == "float":
        return float(value)
    value = str(value)
    if spec.choices and value not in spec.choices:
        raise ValueError(f"{value!r} is not one of {', '.join(spec.choices)}")
    return value


def make_parameters(cls: type, values: Mapping[str, Any] | None = None) -> Any:
    """An instance of the parameter dataclass from form or command-line values (strings allowed),
    checked against each field's type, choices and bounds; unknown names are refused."""
    specs = {s.name: s for s in describe_parameters(cls)}
    values = dict(values or {})
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise PluginError(
            f"{cls.__name__} has no parameter {', '.join(unknown)} (it has {', '.join(specs) or 'none'})."
        )
    kwargs = {}
    for name, value in values.items():
        spec = specs[name]
        try:
            converted = _convert(spec, value)
        except (TypeError, ValueError) as exc:
            raise PluginError(f"The parameter {name} of {cls.__name__}: {exc}.") from None
        if spec.minimum is not None and converted < spec.minimum:
            raise PluginError(f"The parameter {name} must be at least {spec.minimum} (got {converted}).")
        if spec.maximum is not None and converted > spec.maximum:
            raise PluginError(f"The parameter {name} must be at most {spec.maximum} (got {converted}).")
        kwargs[name] = converted
    return cls(**kwargs)


# ----------------------------------------------------------------------------- contributions
@dataclass
class VolumeInput:
    """An image (and, for features, a lesion mask) handed to a plugin."""

    image: np.ndarray  # (z, y, x); CT in HU, PET in SUVbw
    spacing: tuple[float, float, float]  # (x, y, z) mm
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    modality: str = ""  # CT | PT
    mask: np.ndarray | None = None  # (z, y, x) bool, the lesion (feature extractors)
    seed_mm: tuple[float, float, float] | None = None  # a point the reader clicked (tools)
    #: What else the workstation knows: "sul_ratio" (SUL/SUV), "suv_provenance", "liver_centre_mm".
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SegmentationTool:
    """A tool shown in the CT/PET room's toolbar: `apply(volume, parameters) -> bool mask`."""

    name: str  # unique within the plugin, e.g. "region-grow"
    title: str  # the toolbar text
    apply: Callable[[VolumeInput, Any], np.ndarray]
    parameters: type  # a dataclass; every field with a default (see `parameter`)
    modalities: tuple[str, ...] = ("CT", "PT")
    description: str = ""


@dataclass(frozen=True)
class FeatureExtractor:
    """A feature family: `extract(volume, parameters) -> {feature name: number or None}`."""

    name: str  # the family, e.g. "pet_thresholds"; stored as params_name "plugin:<plugin>/<name>"
    title: str
    extract: Callable[[VolumeInput, Any], dict[str, float | int | None]]
    parameters: type | None = None
    modalities: tuple[str, ...] = ("CT", "PT")
    description: str = ""


@dataclass
class ImportedVolume:
    """One volume an importer read."""

    image: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]
    modality: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Importer:
    """`confidence(path) -> 0..1` (0: not mine); `read(path) -> [ImportedVolume]`."""

    name: str
    title: str
    confidence: Callable[[Path], float]
    read: Callable[[Path], list[ImportedVolume]]


@dataclass(frozen=True)
class Exporter:
    """`export(volumes, features, destination) -> written paths`."""

    name: str
    title: str
    suffix: str  # e.g. ".csv"
    export: Callable[[list[ImportedVolume], list[dict[str, Any]], Path], list[Path]]


# ----------------------------------------------------------------------------- the hooks
class PalmaresHookSpecs:
    """The hooks a plugin may implement (any subset). Each returns a list; an empty list is fine."""

    @hookspec
    def palmares_segmentation_tools(self) -> list[SegmentationTool]:
        """Segmentation tools for the CT/PET room's toolbar."""

    @hookspec
    def palmares_feature_extractors(self) -> list[FeatureExtractor]:
        """Feature families computed beside pyradiomics for each lesion."""

    @hookspec
    def palmares_importers(self) -> list[Importer]:
        """Readers for a site's files."""

    @hookspec
    def palmares_exporters(self) -> list[Exporter]:
        """Writers of a site's formats."""


HOOKS = {
    "palmares_segmentation_tools": SegmentationTool,
    "palmares_feature_extractors": FeatureExtractor,
    "palmares_importers": Importer,
    "palmares_exporters": Exporter,
}

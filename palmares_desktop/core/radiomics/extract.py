"""One pyradiomics extraction with full provenance, at the cost of bare pyradiomics.

`extract_features` runs pyradiomics' own `RadiomicsFeatureExtractor.execute` on SimpleITK images,
so values are exactly pyradiomics' (same keys, same floats). Around it:
  - one extractor per parameter file (cached by sha256), built once per process;
  - a geometry check BEFORE pyradiomics: with resampling on, pyradiomics would silently resample
    a mask that is not on the image grid (DOMAIN.md §4: fail loudly instead);
  - pyradiomics' log silenced below WARNING (no INFO records are even created), its warnings
    collected into the provenance instead of printed;
  - errors turned into RadiomicsError with pyradiomics' reason in plain words.
"""

from __future__ import annotations

import logging
import math
import re
import sys
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import SimpleITK as sitk

from palmares_desktop.core.radiomics.errors import RadiomicsError
from palmares_desktop.core.radiomics.images import geometry, image_sha256, read_image
from palmares_desktop.core.radiomics.params import RadiomicsParams
from palmares_desktop.core.segmentation.labels import label_problem, label_values_problem

__all__ = ["FeatureResult", "RadiomicsError", "extract_features", "read_image", "versions"]

#: The largest region (bounding box plus pyradiomics' padDistance, after resampling) we let pyradiomics
#: resample and compute: 30 million voxels is a 31 cm cube at 1 mm, larger than any lesion, and
#: already needs several GB and minutes. A typo such as resampledPixelSpacing 0.05 instead of 0.5
#: would otherwise run for hours (and end out of memory) instead of being refused in a second.
MAX_RESAMPLED_VOXELS = 30_000_000
_DEFAULT_TOLERANCE = 1e-6  # SimpleITK's own coordinate/direction tolerance when the file sets none
_MAX_EXTRACTORS = 8


@dataclass(frozen=True)
class FeatureResult:
    """`values`: pyradiomics features (key -> Python float/int); `diagnostics`: every
    `diagnostics_*` key, JSON-safe; `provenance`: parameters, versions, hashes, label, time."""

    values: dict[str, float | int]
    diagnostics: dict[str, Any]
    provenance: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """pyradiomics' output order (diagnostics, then features) plus `provenance`; NaN/inf -> None."""
        out: dict[str, Any] = dict(self.diagnostics)
        out.update({k: _finite_or_none(v) for k, v in self.values.items()})
        out["provenance"] = self.provenance
        return out


# ---------------------------------------------------------------------------------- extractor
_extractors: OrderedDict[str, Any] = OrderedDict()
_extractors_lock = threading.Lock()


def _extractor(params: RadiomicsParams) -> Any:
    with _extractors_lock:
        extractor = _extractors.get(params.sha256)
        if extractor is not None:
            _extractors.move_to_end(params.sha256)
            return extractor
    _quiet_pyradiomics()
    import copy

    from radiomics.featureextractor import RadiomicsFeatureExtractor

    extractor = RadiomicsFeatureExtractor(copy.deepcopy(params.settings))
    with _extractors_lock:
        _extractors[params.sha256] = extractor
        while len(_extractors) > _MAX_EXTRACTORS:
            _extractors.popitem(last=False)
    return extractor


_quiet_done = False


def _quiet_pyradiomics() -> None:
    """pyradiomics logs at INFO by default and prints warnings to stderr through its own handler.

    Raise its logger to WARNING (INFO records are then never created: the cheap path) and mute
    its stderr handler; warnings still reach our log file through the root logger and are
    collected per extraction into the provenance.
    """
    global _quiet_done
    if _quiet_done:
        return
    import radiomics

    radiomics.setVerbosity(60)  # pyradiomics' "quiet": its stderr handler prints nothing
    logging.getLogger("radiomics").setLevel(logging.WARNING)
    # numpy warns ("Mean of empty slice", "invalid value in divide") from inside pyradiomics'
    # feature code when a feature is undefined for the region; the feature is then NaN (null in
    # our JSON), which already says so. Not printed to the user's terminal with source lines.
    warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"radiomics(\.|$)")
    _quiet_done = True


class _WarningCollector(logging.Handler):
    """Collects pyradiomics' warnings raised by the current thread only."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.messages.append(record.getMessage())


# ------------------------------------------------------------------------------------ checks
def _check_inputs(image: Any, mask: Any, tolerance: float) -> None:
    for what, img in (("image", image), ("mask", mask)):
        if not isinstance(img, sitk.Image):
            raise RadiomicsError(f"The {what} must be a SimpleITK image, not {type(img).__name__}.")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise RadiomicsError(
            f"The image has {image.GetNumberOfComponentsPerPixel()} values per voxel (a colour or vector image): "
            "radiomics needs one channel (for H&E, the hematoxylin channel; see docs/radiomics.md)."
        )
    if mask.GetNumberOfComponentsPerPixel() != 1:
        raise RadiomicsError(
            "The mask has several values per voxel: pass a label map (one label value per voxel)."
        )
    if image.GetDimension() != mask.GetDimension() or image.GetSize() != mask.GetSize():
        raise RadiomicsError(
            f"The mask does not match the image: image size {_dims(image.GetSize())}, mask size "
            f"{_dims(mask.GetSize())}. Masks must be written on the exact image geometry."
        )
    scale = tolerance * image.GetSpacing()[0]  # ITK's rule: coordinates relative to the first spacing
    for name, a, b, tol, unit in (
        ("spacing", image.GetSpacing(), mask.GetSpacing(), scale, " mm"),
        ("origin", image.GetOrigin(), mask.GetOrigin(), scale, " mm"),
        ("direction", image.GetDirection(), mask.GetDirection(), tolerance, ""),
    ):
        worst = max(abs(x - y) for x, y in zip(a, b, strict=True))
        if worst > tol:
            raise RadiomicsError(
                f"The mask is not on the image's voxel grid: its {name} differs by {worst:.3g}{unit} "
                f"(tolerance {tol:.3g}{unit}). Masks must be written on the exact image geometry."
            )
    if problem := label_values_problem(sitk.GetArrayViewFromImage(mask), "The mask"):
        raise RadiomicsError(problem)


def resampled_voxels(mask: sitk.Image, label: int, params: RadiomicsParams) -> int | None:
    """How many voxels pyradiomics' resampling (imageoperations.resampleImage) will make of the
    label's bounding box, padDistance included; None without resampling or when the label is absent."""
    spacing = params.setting("resampledPixelSpacing")
    if not spacing or len(spacing) != mask.GetDimension() or any(float(v) < 0 for v in spacing):
        return None
    present = sitk.GetArrayViewFromImage(mask) == label
    if not present.any():
        return None
    # numpy's axes are (z, y, x); ITK's index order is (x, y, z)
    axes = range(present.ndim)
    extents = [
        np.flatnonzero(present.any(axis=tuple(a for a in axes if a != axis)))
        for axis in reversed(range(present.ndim))
    ]
    old = np.asarray(mask.GetSpacing(), dtype=float)
    new = np.where(np.asarray(spacing, dtype=float) == 0, old, np.asarray(spacing, dtype=float))
    ratio = old / new
    pad = float(params.setting("padDistance", 5))
    start = np.array([e[0] for e in extents], dtype=float)
    size = np.array([e[-1] - e[0] + 1 for e in extents], dtype=float)
    low = np.maximum(np.floor((start - 0.5) * ratio - pad), 0)
    high = np.minimum(
        np.ceil((start + size - 0.5) * ratio + pad), np.ceil(np.asarray(mask.GetSize()) * ratio) - 1
    )
    return int(np.prod(high - low + 1))


def _check_resampled_size(mask: sitk.Image, label: int, params: RadiomicsParams) -> None:
    voxels = resampled_voxels(mask, label, params)
    if voxels is not None and voxels > MAX_RESAMPLED_VOXELS:
        spacing = " x ".join(f"{float(v):g}" for v in params.setting("resampledPixelSpacing"))
        raise RadiomicsError(
            f"Resampling to {spacing} mm (resampledPixelSpacing of {params.name}) would make the region "
            f"(label {label}) about {voxels:,} voxels, more than the limit of {MAX_RESAMPLED_VOXELS:,}: "
            "use a coarser spacing (the study presets resample to whole millimetres)."
        )


def _dims(size: tuple[int, ...]) -> str:
    return "×".join(str(s) for s in size)


# ------------------------------------------------------------------------------------ errors
_PLAIN_ERRORS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"No labels found in this mask"), "The mask is empty: no voxel is segmented."),
    (
        re.compile(r"Label \((?P<label>[^)]*)\) not present in mask\. Choose from \[(?P<labels>[^\]]*)\]"),
        "Label {label} is not present in the mask; the mask's labels are {labels}.",
    ),
    (
        re.compile(r"Label \((?P<label>[^)]*)\) not present in mask"),
        "Label {label} is not present in the mask.",
    ),
    (
        re.compile(r"geometry mismatch"),
        "The mask is not on the image's voxel grid (origin, spacing or direction differ beyond the parameter "
        "file's geometryTolerance). Masks must be written on the exact image geometry.",
    ),
    (re.compile(r"datatype or size mismatch"), "The image and the mask have different sizes or dimensions."),
    (
        re.compile(r"only contains 1 segmented voxel"),
        "The region (label {label}) is a single voxel: radiomics features need more than one.",
    ),
    (
        re.compile(r"too few dimensions \(number of dimensions (?P<n>\d+), minimum required (?P<min>\d+)\)"),
        "The region (label {label}) extends in only {n} dimension(s) (a line or a single slice), but the "
        "parameter file requires {min} (minimumROIDimensions).",
    ),
    (
        re.compile(
            r"Size of the ROI is too small \(minimum size: (?P<min>[^,]+), ROI size: (?P<size>[^)\s]+)"
        ),
        "The region (label {label}) has {size} voxels (after resampling); the parameter file requires more than "
        "{min} (minimumROISize).",
    ),
    (
        re.compile(r"Resegmentation excluded too many voxels.*retained (?P<n>\d+) voxel"),
        "Re-segmentation to the intensity range {range} left {n} voxel(s) in the region (label {label}): is the "
        "image in the right units (HU for CT, SUV for PET)?",
    ),
    (
        re.compile(r"larger than image space|outside of the physical space", re.I),
        "The region (label {label}) extends beyond the image.",
    ),
]


def _plain_error(exc: BaseException, params: RadiomicsParams, label: int) -> RadiomicsError:
    reason = str(exc).strip() or type(exc).__name__
    fields = {"label": label, "range": params.setting("resegmentRange")}
    for pattern, template in _PLAIN_ERRORS:
        if m := pattern.search(reason):
            found = {k: v for k, v in m.groupdict().items() if v is not None}
            if "labels" in found:  # numpy prints "[1 2 5]"
                found["labels"] = ", ".join(found["labels"].split())
            return RadiomicsError(template.format_map({**fields, **found}), reason=reason)
    first = reason.splitlines()[-1] if reason else type(exc).__name__
    return RadiomicsError(f"pyradiomics could not extract features: {first}", reason=reason)


# ------------------------------------------------------------------------------------ values
def _number(value: Any) -> float | int:
    """pyradiomics returns 0-d numpy arrays and numpy scalars: make them Python numbers (exactly)."""
    if isinstance(value, (np.ndarray, np.generic)):
        return value.item()
    return value


def json_safe(value: Any) -> Any:
    """Plain JSON types (numpy scalars and arrays unwrapped); NaN/inf become None (null)."""
    if isinstance(value, (np.ndarray, np.generic)):
        return json_safe(value.tolist())
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float):
        return _finite_or_none(value)
    return value


def _finite_or_none(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


_versions: dict[str, str] | None = None


def versions() -> dict[str, str]:
    """Versions of everything that can change a feature value."""
    global _versions
    if _versions is None:
        import radiomics

        from palmares_desktop import __version__

        found = {
            "pyradiomics": radiomics.__version__,
            "SimpleITK": sitk.Version.VersionString(),
            "numpy": np.__version__,
            "python": ".".join(str(v) for v in sys.version_info[:3]),
            "palmares": __version__,
        }
        try:
            import pywt

            found["pywavelets"] = pywt.__version__
        except ImportError:  # optional: only wavelet image types need it
            pass
        _versions = found
    return dict(_versions)


# ------------------------------------------------------------------------------------ extract
def extract_features(
    image: sitk.Image,
    mask: sitk.Image,
    params: RadiomicsParams,
    label: int | None = None,
    image_hash: str | None = None,
) -> FeatureResult:
    """pyradiomics features of `label` (default: the file's `label`, else 1) in `mask` over `image`.

    `image_hash`: `image_sha256(image)` when the caller already has it (a batch extracting many
    lesions of one volume hashes it once instead of once per lesion).

    Raises RadiomicsError (plain sentence; pyradiomics' wording in `.reason`) for: mask not on
    the image grid, label absent, empty mask, single voxel, too few dimensions, region too small,
    re-segmentation leaving too few voxels, colour images.
    """
    started = time.perf_counter()
    label = int(label if label is not None else params.setting("label", 1))
    if problem := label_problem(label):
        raise RadiomicsError(problem)
    _check_inputs(image, mask, float(params.setting("geometryTolerance", _DEFAULT_TOLERANCE)))
    _check_resampled_size(mask, label, params)
    extractor = _extractor(params)
    collector = _WarningCollector()
    radiomics_log = logging.getLogger("radiomics")
    radiomics_log.addHandler(collector)
    try:
        raw = extractor.execute(image, mask, label=label)
    except (ValueError, RuntimeError, AssertionError, TypeError, IndexError, ArithmeticError) as exc:
        raise _plain_error(exc, params, label) from None
    finally:
        radiomics_log.removeHandler(collector)

    values: dict[str, float | int] = {}
    diagnostics: dict[str, Any] = {}
    for key, value in raw.items():
        if key.startswith("diagnostics_"):
            diagnostics[key] = json_safe(value)
        else:
            values[key] = _number(value)
    provenance = {
        "params": {
            "name": params.name,
            "sha256": params.sha256,
            "text": params.text,
            "path": str(params.path) if params.path else None,
        },
        "versions": versions(),
        "image": {
            "sha256": image_hash or image_sha256(image),
            "pyradiomics_hash": diagnostics.get("diagnostics_Image-original_Hash"),
            **geometry(image),
        },
        "mask": {
            "sha256": image_sha256(mask),
            "pyradiomics_hash": diagnostics.get("diagnostics_Mask-original_Hash"),
            **geometry(mask),
        },
        "label": label,
        "computed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "elapsed_s": round(time.perf_counter() - started, 4),
        "warnings": collector.messages,
    }
    return FeatureResult(values=values, diagnostics=diagnostics, provenance=provenance)

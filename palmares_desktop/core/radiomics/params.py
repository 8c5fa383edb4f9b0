"""pyradiomics parameter files: study presets, validation against pyradiomics' schema, study locks.

A parameter file is identified by the sha256 of its exact bytes: that hash is stored with every
feature set, so "same parameters" means "same file", comments included.

Presets live in `palmares_desktop/resources/radiomics/` (`ct`, `pet`, `he`). Files are parsed exactly as
pyradiomics parses them (pykwalify's YAML loader, or JSON for `.json`) and validated against
pyradiomics' own `schemas/paramSchema.yaml` + `schemaFuncs.py`, as its feature extractor does.

Study lock (store settings, all audited by `Store.set_setting`):
    radiomics.locked.<ct|pt|he>          sha256 of the locked file ("" = not locked)
    radiomics.locked.<ct|pt|he>.name     its name, for messages
    radiomics.locked.<ct|pt|he>.text     its text, so batch extraction can use it everywhere
    radiomics.lock_mode                  "record" (default): other files are allowed and the
                                         difference is stored as a deviation; "refuse": they
                                         are refused (RadiomicsLockError)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from palmares_desktop.core import modalities
from palmares_desktop.core.paths import RESOURCES_DIR
from palmares_desktop.core.radiomics.errors import RadiomicsError, RadiomicsLockError

if TYPE_CHECKING:
    from palmares_desktop.core.store import Store

PRESET_DIR = RESOURCES_DIR / "radiomics"
PRESETS = ("ct", "pet", "he")
LOCK_MODES = ("record", "refuse")
# Store modality codes -> the preset designed for them.
_MODALITY_PRESET = {"ct": "ct", "pt": "pet", "he": "he"}
_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True, eq=False)
class RadiomicsParams:
    """A validated parameter file. `settings` is the parsed file (keys `setting`, `imageType`,
    `featureClass`, `voxelSetting`), ready for `RadiomicsFeatureExtractor(settings)`."""

    name: str
    text: str
    sha256: str
    settings: dict = field(repr=False)
    path: Path | None = None

    @property
    def short_hash(self) -> str:
        return self.sha256[:12]

    def setting(self, key: str, default: Any = None) -> Any:
        return (self.settings.get("setting") or {}).get(key, default)


def preset_path(name: str) -> Path:
    if name not in PRESETS:
        raise RadiomicsError(f"There is no radiomics preset {name!r}: choose one of {', '.join(PRESETS)}.")
    return PRESET_DIR / f"{name}.yaml"


def load_params(preset_or_path: str | Path) -> RadiomicsParams:
    """A study preset by name ('ct', 'pet', 'he') or a parameter file (.yaml, .yml, .json).

    Raises RadiomicsError with a plain sentence when the file is missing or not valid.
    """
    if (
        isinstance(preset_or_path, str)
        and preset_or_path.lower() in PRESETS
        and not Path(preset_or_path).exists()
    ):
        name = preset_or_path.lower()
        path = preset_path(name)
    else:
        path = Path(preset_or_path).expanduser()
        name = path.name
    if path.suffix.lower() not in _SUFFIXES:
        raise RadiomicsError(
            f"{path.name} is not a radiomics parameter file: use a .yaml, .yml or .json file, "
            f"or a preset name ({', '.join(PRESETS)})."
        )
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RadiomicsError(f"The radiomics parameter file {path} does not exist.") from None
    except OSError as exc:
        raise RadiomicsError(f"Cannot read the radiomics parameter file {path}: {exc.strerror}.") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RadiomicsError(f"The radiomics parameter file {path.name} is not UTF-8 text.") from None
    params = parse_params(text, name=name, fmt="json" if path.suffix.lower() == ".json" else "yaml")
    return RadiomicsParams(params.name, params.text, params.sha256, params.settings, path.resolve())


def parse_params(text: str, name: str = "parameters", fmt: str = "yaml") -> RadiomicsParams:
    """Parse and validate parameter-file text (what `load_params` does after reading the file)."""
    sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
    data = _parse(text, name, fmt)
    validate_settings(data, name)
    return RadiomicsParams(name=name, text=text, sha256=sha256, settings=_plain(data))


def _parse(text: str, name: str, fmt: str) -> Any:
    if fmt == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise RadiomicsError(
                f"The radiomics parameter file {name} is not valid JSON (line {exc.lineno}, column {exc.colno}: "
                f"{exc.msg})."
            ) from None
    # pykwalify's own loader: the exact YAML dialect pyradiomics reads a parameter file with.
    from pykwalify.compat import yml
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        return yml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise RadiomicsError(
            f"The radiomics parameter file {name} is not valid YAML ({where}{exc.problem})."
        ) from None
    except YAMLError as exc:
        raise RadiomicsError(f"The radiomics parameter file {name} is not valid YAML ({exc}).") from None


@contextlib.contextmanager
def _quiet_pykwalify() -> Iterator[None]:
    """pykwalify logs every validation error at ERROR level before raising; we report them ourselves."""
    logger = logging.getLogger("pykwalify")
    old = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(old)


def validate_settings(data: Any, name: str = "parameters") -> None:
    """Validate parsed parameters with pyradiomics' schema, as `RadiomicsFeatureExtractor` does."""
    if data is None:
        raise RadiomicsError(f"The radiomics parameter file {name} is empty.")
    if not isinstance(data, dict):
        raise RadiomicsError(
            f"The radiomics parameter file {name} must be a mapping with the sections setting, imageType, "
            "featureClass or voxelSetting."
        )
    import pykwalify.core
    from pykwalify.errors import PyKwalifyException
    from radiomics import getParameterValidationFiles

    schema_file, schema_funcs = getParameterValidationFiles()
    try:
        with _quiet_pykwalify():
            core = pykwalify.core.Core(
                source_data=data, schema_files=[schema_file], extensions=[schema_funcs]
            )
            core.validate(raise_exception=True)
    except PyKwalifyException as exc:
        problems = [_plain_schema_error(e) for e in _schema_errors(exc)]
        raise RadiomicsError(
            f"The radiomics parameter file {name} is not valid: {'; '.join(problems)}.", reason=str(exc)
        ) from None
    except (ValueError, TypeError, AssertionError) as exc:
        # pyradiomics' schemaFuncs checks (feature classes, image types, interpolator, wavelet) raise these.
        raise RadiomicsError(
            f"The radiomics parameter file {name} is not valid: {str(exc).rstrip('.')}.", reason=str(exc)
        ) from None


def _schema_errors(exc: Exception) -> list[str]:
    msg = getattr(exc, "msg", None) or str(exc)
    lines = [line.strip()[2:] for line in str(msg).splitlines() if line.strip().startswith("- ")]
    return lines or [str(msg)]


_KEY_UNDEFINED = re.compile(r"Key '(?P<key>.+)' was not defined\. Path: '(?P<path>.*)'")
_WRONG_TYPE = re.compile(r"Value '(?P<value>.*)' is not of type '(?P<type>\w+)'\. Path: '(?P<path>.*)'")
_RANGE = re.compile(
    r"Type '\w+' has size of '(?P<value>[^']*)', (?P<rel>.+?) (?P<kind>max|min) limit(?:\(exclusive\))? "
    r"'(?P<limit>[^']*)'\. Path: '(?P<path>.*)'"
)
_ENUM = re.compile(r"Enum '(?P<value>.*)' does not exist\. Path: '(?P<path>.*)' Enum: (?P<choices>.*)")
_PATH = re.compile(r"\.? ?Path: '(?P<path>.*)'\.?$")
_TYPE_WORDS = {
    "float": "a number",
    "int": "a whole number",
    "bool": "true or false",
    "str": "text",
    "map": "a mapping",
    "seq": "a list",
}


def _where(path: str) -> str:
    parts = [p for p in path.split("/") if p]
    return " > ".join(parts) if parts else "the top level"


def _plain_schema_error(message: str) -> str:
    message = message.rstrip(".")
    if m := _KEY_UNDEFINED.match(message):
        return f"{m['key']!r} is not a pyradiomics option (in {_where(m['path'])})"
    if m := _WRONG_TYPE.match(message):
        wanted = _TYPE_WORDS.get(m["type"], m["type"])
        return f"{_where(m['path'])} must be {wanted}, not {m['value']!r}"
    if m := _RANGE.match(message):
        bound = "maximum" if m["kind"] == "max" else "minimum"
        rel = m["rel"].replace("equals to", "equal to")
        return f"{_where(m['path'])} is {m['value']}, {rel} the {bound} {m['limit']}"
    if m := _ENUM.match(message):
        return f"{_where(m['path'])} is {m['value']!r}, not one of {m['choices']}"
    if m := _PATH.search(message):
        return f"{message[: m.start()].strip()} (at {_where(m['path'])})"
    return message


def _plain(value: Any) -> Any:
    """Plain dicts/lists (no parser-specific subclasses), so settings pickle and JSON-encode anywhere."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# ------------------------------------------------------------------------------------ study lock
def normalize_modality(modality: str) -> str:
    """'CT' / 'PT' / 'PET' / 'HE' (any case) -> 'ct' / 'pt' / 'he'."""
    try:
        return modalities.code_of(modality).lower()
    except modalities.ModalityError:
        raise RadiomicsError(
            f"Modality {modality!r} has no radiomics parameters: use CT, PET or H&E."
        ) from None


def preset_for_modality(modality: str) -> str:
    return _MODALITY_PRESET[normalize_modality(modality)]


def _lock_key(modality: str) -> str:
    return f"radiomics.locked.{normalize_modality(modality)}"


def lock_mode(store: Store) -> str:
    mode = store.setting("radiomics.lock_mode") or "record"
    return mode if mode in LOCK_MODES else "record"


def set_lock_mode(store: Store, mode: str) -> None:
    if mode not in LOCK_MODES:
        raise RadiomicsError(f"Lock mode {mode!r} is not one of {', '.join(LOCK_MODES)}.")
    store.set_setting("radiomics.lock_mode", mode)


def lock_params(store: Store, modality: str, params: RadiomicsParams, mode: str | None = None) -> None:
    """Make `params` the study's parameter file for `modality` (one transaction, audited)."""
    key = _lock_key(modality)
    with store.transaction():
        store.set_setting(key, params.sha256)
        store.set_setting(f"{key}.name", params.name)
        store.set_setting(f"{key}.text", params.text)
        if mode is not None:
            set_lock_mode(store, mode)


def unlock_params(store: Store, modality: str) -> None:
    key = _lock_key(modality)
    with store.transaction():
        for suffix in ("", ".name", ".text"):
            store.set_setting(key + suffix, "")


def locked_params(store: Store, modality: str) -> RadiomicsParams | None:
    """The parameter file the study locked for `modality`, or None."""
    key = _lock_key(modality)
    sha = store.setting(key) or ""
    if not sha:
        return None
    text = store.setting(f"{key}.text") or ""
    name = store.setting(f"{key}.name") or "locked"
    fmt = "json" if name.lower().endswith(".json") else "yaml"
    params = parse_params(text, name=name, fmt=fmt)
    if params.sha256 != sha:
        raise RadiomicsError(
            f"The store's locked {modality} parameter file is damaged: its text no longer "
            "matches its recorded sha256."
        )
    return params


def params_for_modality(store: Store, modality: str) -> RadiomicsParams:
    """The locked file for `modality` if the study locked one, else the study preset."""
    return locked_params(store, modality) or load_params(preset_for_modality(modality))


def check_lock(store: Store, modality: str, params: RadiomicsParams) -> str | None:
    """None when `params` is allowed without remark (no lock, or it is the locked file).

    Otherwise the deviation in words, to store beside the features; in "refuse" mode raises
    RadiomicsLockError with the same words instead.
    """
    key = _lock_key(modality)
    locked = store.setting(key) or ""
    if not locked or locked == params.sha256:
        return None
    locked_name = store.setting(f"{key}.name") or "locked file"
    deviation = (
        f"Parameter file {params.name} (sha256 {params.short_hash}) is not the study's locked "
        f"{normalize_modality(modality).upper()} parameter file {locked_name} (sha256 {locked[:12]})."
    )
    if lock_mode(store) == "refuse":
        raise RadiomicsLockError(deviation + " The study refuses extraction with any other file.")
    return deviation

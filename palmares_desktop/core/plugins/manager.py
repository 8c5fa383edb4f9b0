"""Find, allow, load and call workstation plugins (pluggy, declared through entry points).

Plugins are *declared*, never discovered by scanning folders: a distribution lists an entry point
in the group ``palmares_desktop.plugins`` (pyproject.toml ``[project.entry-points."palmares_desktop.plugins"]``).
Nothing outside the site's allowed list (the store setting ``plugins.allowed``) is imported. A plugin
that fails to import, implements an unknown hook, returns something that is not its hook's type or
raises is reported in words and skipped; the others still load.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from palmares_desktop.core.plugins.hookspecs import (
    HOOKS,
    PROJECT,
    FeatureExtractor,
    PalmaresHookSpecs,
    PluginError,
    SegmentationTool,
    VolumeInput,
    describe_parameters,
    make_parameters,
)

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "palmares_desktop.plugins"
#: The store (site) setting listing the plugins allowed to run: a JSON list of entry-point names.
ALLOWED_SETTING = "plugins.allowed"


def _words(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ----------------------------------------------------------------------------- the site's list
def allowed_plugins(store) -> list[str]:
    """The plugin names the site allows (empty when it never allowed one)."""
    text = store.setting(ALLOWED_SETTING) or "[]"
    try:
        names = json.loads(text)
    except ValueError:
        raise PluginError(
            f"The store setting {ALLOWED_SETTING} is not a list of names ({text[:60]!r}); "
            "set it again with `palmares plugins allow`."
        ) from None
    return sorted({str(n) for n in names}) if isinstance(names, list) else []


def allow_plugin(store, name: str, allowed: bool = True) -> list[str]:
    """Add `name` to (or remove it from) the site's allowed list; the change is audited."""
    name = name.strip()
    if not name:
        raise PluginError("Give the plugin's name, as `palmares plugins` lists it.")
    names = set(allowed_plugins(store))
    if allowed:
        names.add(name)
    else:
        names.discard(name)
    store.set_setting(ALLOWED_SETTING, json.dumps(sorted(names)))
    return sorted(names)


# ----------------------------------------------------------------------------- what is installed
@dataclass(frozen=True)
class InstalledPlugin:
    name: str  # the entry-point name: what the allowed list holds
    distribution: str
    version: str
    value: str  # "module" or "module:object"

    @classmethod
    def of(cls, ep: metadata.EntryPoint) -> InstalledPlugin:
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else ""
        version = dist.version if dist is not None else ""
        return cls(ep.name, dist_name or "", version or "", ep.value)


def installed_plugins() -> list[tuple[InstalledPlugin, metadata.EntryPoint]]:
    """Every entry point of the plugin group in this Python environment, by name."""
    found = [(InstalledPlugin.of(ep), ep) for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)]
    return sorted(found, key=lambda pair: (pair[0].name, pair[0].distribution))


@dataclass
class PluginStatus:
    """One installed plugin: allowed by the site? loaded? and if not, why (a sentence)."""

    plugin: InstalledPlugin
    allowed: bool
    loaded: bool = False
    reason: str = ""
    contributes: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "name": self.plugin.name,
            "distribution": self.plugin.distribution,
            "version": self.plugin.version,
            "entry_point": self.plugin.value,
            "allowed": self.allowed,
            "loaded": self.loaded,
            "reason": self.reason,
            "contributes": self.contributes,
        }


@dataclass(frozen=True)
class Contribution:
    """A tool, extractor, importer or exporter, with the plugin it came from."""

    plugin: str
    version: str
    distribution: str
    item: Any

    @property
    def name(self) -> str:
        return f"{self.plugin}/{self.item.name}"

    def provenance(self) -> dict:
        return {
            "plugin": self.plugin,
            "plugin_version": self.version,
            "distribution": self.distribution,
            "contribution": self.item.name,
        }


# ----------------------------------------------------------------------------- loading
class PluginManager:
    """Loads the allowed plugins once (`load`) and hands out their contributions."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self.allowed = set(allowed)
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(PalmaresHookSpecs)
        self.statuses: list[PluginStatus] = []
        self._contributions: dict[str, list[Contribution]] = {hook: [] for hook in HOOKS}

    @classmethod
    def for_store(cls, store) -> PluginManager:
        manager = cls(allowed_plugins(store))
        manager.load()
        return manager

    def load(self) -> list[PluginStatus]:
        self.statuses = []
        seen: set[str] = set()
        for plugin, ep in installed_plugins():
            status = PluginStatus(plugin, allowed=plugin.name in self.allowed)
            self.statuses.append(status)
            if plugin.name in seen:
                status.reason = (
                    f"another installed distribution already provides a plugin named {plugin.name}"
                )
                continue
            seen.add(plugin.name)
            if not status.allowed:
                status.reason = (
                    "not in this site's allowed list (allow it with `palmares plugins allow "
                    f"{plugin.name} --store ...`)"
                )
                continue
            self._load_one(status, ep)
        for name in sorted(self.allowed - seen):
            log.info("plugin %s is allowed but not installed", name)
        return self.statuses

    def _load_one(self, status: PluginStatus, ep: metadata.EntryPoint) -> None:
        plugin = status.plugin
        try:
            obj = ep.load()
        except BaseException as exc:  # noqa: BLE001 - a broken plugin must not stop the workstation
            if isinstance(exc, KeyboardInterrupt):
                raise
            log.warning("plugin %s failed to load", plugin.name, exc_info=True)
            status.reason = f"failed to load ({_words(exc)})"
            return
        try:
            self.pm.register(obj, name=plugin.name)
            self.pm.check_pending()
        except (ValueError, pluggy.PluginValidationError) as exc:
            self._drop(plugin.name)
            status.reason = f"does not follow the plugin interface ({_words(exc)})"
            return
        found: dict[str, list[Contribution]] = {}
        for hook, kind in HOOKS.items():
            impls = [i for i in getattr(self.pm.hook, hook).get_hookimpls() if i.plugin_name == plugin.name]
            items: list[Contribution] = []
            for impl in impls:
                try:
                    result = impl.function()
                    items.extend(self._checked(plugin, hook, kind, result))
                except BaseException as exc:  # noqa: BLE001 - reported, the plugin skipped
                    if isinstance(exc, KeyboardInterrupt):
                        raise
                    log.warning("plugin %s raised in %s", plugin.name, hook, exc_info=True)
                    self._drop(plugin.name)
                    status.reason = f"its {hook} hook failed ({_words(exc)})"
                    return
            found[hook] = items
        for hook, items in found.items():
            self._contributions[hook].extend(items)
        status.loaded = True
        status.reason = "loaded"
        status.contributes = {hook: [c.item.name for c in items] for hook, items in found.items() if items}

    def _checked(self, plugin: InstalledPlugin, hook: str, kind: type, result: Any) -> list[Contribution]:
        if result is None:
            return []
        if not isinstance(result, list | tuple):
            raise PluginError(f"it returned {type(result).__name__}, not a list of {kind.__name__}")
        names = set()
        out = []
        for item in result:
            if not isinstance(item, kind):
                raise PluginError(f"it returned a {type(item).__name__}, not a {kind.__name__}")
            if item.name in names:
                raise PluginError(f"it returned two contributions named {item.name}")
            names.add(item.name)
            params = getattr(item, "parameters", None)
            if params is not None:
                describe_parameters(params)  # raises in words for an unusable parameter class
            out.append(Contribution(plugin.name, plugin.version, plugin.distribution, item))
        return out

    def _drop(self, name: str) -> None:
        if self.pm.get_plugin(name) is not None:
            self.pm.unregister(name=name)

    # ------------------------------------------------------------------------- contributions
    def contributions(self, hook: str) -> list[Contribution]:
        return list(self._contributions[hook])

    def segmentation_tools(self, modality: str | None = None) -> list[Contribution]:
        return [
            c
            for c in self._contributions["palmares_segmentation_tools"]
            if modality is None or modality in c.item.modalities
        ]

    def feature_extractors(self, modality: str | None = None) -> list[Contribution]:
        return [
            c
            for c in self._contributions["palmares_feature_extractors"]
            if modality is None or modality in c.item.modalities
        ]

    def importers(self) -> list[Contribution]:
        return self.contributions("palmares_importers")

    def exporters(self) -> list[Contribution]:
        return self.contributions("palmares_exporters")

    def find(self, hook: str, name: str) -> Contribution:
        """A contribution by its "plugin/name" (or just its name when that is unambiguous)."""
        items = self._contributions[hook]
        matches = [c for c in items if c.name == name] or [c for c in items if c.item.name == name]
        if len(matches) == 1:
            return matches[0]
        known = ", ".join(c.name for c in items) or "none is loaded"
        if not matches:
            raise PluginError(f"No loaded plugin offers {name} (loaded: {known}).")
        raise PluginError(f"Several plugins offer {name}; say which: {known}.")


# ----------------------------------------------------------------------------- calling
@dataclass
class PluginFeatures:
    values: dict[str, Any] | None
    provenance: dict[str, Any]
    error: str | None = None


def run_tool(contribution: Contribution, volume: VolumeInput, values: dict | None = None):
    """(mask, parameters) from a plugin segmentation tool; a failure raises PluginError in words."""
    import numpy as np

    tool: SegmentationTool = contribution.item
    params = make_parameters(tool.parameters, values)
    try:
        mask = tool.apply(volume, params)
    except PluginError:
        raise
    except Exception as exc:  # noqa: BLE001 - the plugin's failure, said in words
        log.warning("plugin tool %s raised", contribution.name, exc_info=True)
        raise PluginError(f"The plugin tool {contribution.name} failed ({_words(exc)}).") from None
    mask = np.asarray(mask)
    if mask.shape != volume.image.shape:
        raise PluginError(
            f"The plugin tool {contribution.name} returned a mask of shape {mask.shape}, "
            f"not the image's {volume.image.shape}."
        )
    return mask.astype(bool), params


def run_extractor(
    contribution: Contribution, volume: VolumeInput, values: dict | None = None
) -> PluginFeatures:
    """The feature family of one lesion; never raises (a failure is returned in words)."""
    import dataclasses
    import math

    extractor: FeatureExtractor = contribution.item
    provenance: dict[str, Any] = {**contribution.provenance(), "family": extractor.name}
    try:
        params = make_parameters(extractor.parameters, values) if extractor.parameters else None
        provenance["parameters"] = dataclasses.asdict(params) if params is not None else {}
        raw = extractor.extract(volume, params)
        if not isinstance(raw, dict):
            raise PluginError(f"it returned {type(raw).__name__}, not a dict of features")
        out: dict[str, Any] = {}
        for key, value in raw.items():
            if value is None:
                out[str(key)] = None
                continue
            try:
                if isinstance(value, str | bytes):
                    raise TypeError
                number = float(value)
            except (TypeError, ValueError):
                raise PluginError(f"its feature {key} is {type(value).__name__}, not a number") from None
            out[str(key)] = number if math.isfinite(number) else None
        return PluginFeatures(out, provenance)
    except Exception as exc:  # noqa: BLE001 - stored with its reason, never raised
        log.warning("plugin extractor %s raised", contribution.name, exc_info=True)
        return PluginFeatures(None, provenance, f"The plugin {contribution.name} failed ({_words(exc)}).")

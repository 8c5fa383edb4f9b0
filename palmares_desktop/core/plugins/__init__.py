"""The workstation's plugin interface (public): hook specification, typed parameters, loading.

A plugin imports only from the modules in `PUBLIC_MODULES`; anything else in palmares_desktop may
change without notice. `private_imports` checks a plugin's source for imports outside them (the
plugin tests use it). See docs/plugins.md.
"""

from __future__ import annotations

import ast
from pathlib import Path

from palmares_desktop.core.plugins.hookspecs import (
    Exporter,
    FeatureExtractor,
    ImportedVolume,
    Importer,
    ParameterField,
    PluginError,
    SegmentationTool,
    VolumeInput,
    describe_parameters,
    hookimpl,
    make_parameters,
    parameter,
)
from palmares_desktop.core.plugins.tools import (
    PluginToolResult,
    plugin_tool_lesion,
    plugin_tool_lines,
    plugin_tool_report,
)

#: What a plugin may import from palmares_desktop (a module or anything inside it).
PUBLIC_MODULES = (
    "palmares_desktop.core.plugins",
    "palmares_desktop.core.pet.threshold",
    "palmares_desktop.core.pet.metrics",
    "palmares_desktop.core.pet.suv",
    "palmares_desktop.core.segmentation.geometry",
    "palmares_desktop.core.errors",
    # The readers napari-palmares offers plain napari: DICOM series as the workstation reads them,
    # a store's subject (opened read-only) with its reading set, and how the rooms place and window them.
    "palmares_desktop.core.dicom.discovery",
    "palmares_desktop.core.dicom.volume",
    "palmares_desktop.core.placement",
    "palmares_desktop.core.store",
    "palmares_desktop.core.reading_set",
    "palmares_desktop.core.model",  # the typed objects the store and the reading set hand back
    "palmares_desktop.core.ct.windows",
    "palmares_desktop.core.pet.display",
)

__all__ = [
    "PUBLIC_MODULES",
    "Exporter",
    "FeatureExtractor",
    "ImportedVolume",
    "Importer",
    "ParameterField",
    "PluginError",
    "PluginToolResult",
    "SegmentationTool",
    "VolumeInput",
    "describe_parameters",
    "hookimpl",
    "make_parameters",
    "parameter",
    "plugin_tool_lesion",
    "plugin_tool_lines",
    "plugin_tool_report",
    "private_imports",
]


def private_imports(source_dir: str | Path, public=PUBLIC_MODULES) -> list[str]:
    """ "file:line imports X" for every import of palmares_desktop outside the public modules."""
    found = []
    for path in sorted(Path(source_dir).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
                if node.module == "palmares_desktop" or node.module == "palmares_desktop.core":
                    modules = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for module in modules:
                if module.split(".")[0] == "palmares_desktop" and not any(
                    module == m or module.startswith(m + ".") for m in public
                ):
                    found.append(f"{path.name}:{node.lineno} imports {module}")
    return found

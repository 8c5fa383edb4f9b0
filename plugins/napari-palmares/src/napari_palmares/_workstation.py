"""The workstation modules the plugin's readers use, imported in one place.

napari-palmares exposes the workstation's own readers, so it uses core's DICOM series assembly, its
store and reading set, and its display geometry and defaults: modules the workstation lists in
`palmares_desktop.core.plugins.PUBLIC_MODULES` for this reason.
"""

from __future__ import annotations

from palmares_desktop.core.ct.windows import DEFAULT_WINDOW, window_limits
from palmares_desktop.core.dicom.discovery import SeriesInfo, scan_folder
from palmares_desktop.core.dicom.volume import load_series
from palmares_desktop.core.model import Segmentation, Series, Subject
from palmares_desktop.core.pet.display import DEFAULT_SUV_MAX, uncalibrated_display_max
from palmares_desktop.core.placement import Placement
from palmares_desktop.core.reading_set import subject_segmentations, subject_series
from palmares_desktop.core.store import Store
from palmares_desktop.core.store.records import suv_provenance

__all__ = [
    "DEFAULT_SUV_MAX",
    "DEFAULT_WINDOW",
    "Placement",
    "Segmentation",
    "Series",
    "SeriesInfo",
    "Store",
    "Subject",
    "load_series",
    "scan_folder",
    "subject_segmentations",
    "subject_series",
    "suv_provenance",
    "uncalibrated_display_max",
    "window_limits",
]

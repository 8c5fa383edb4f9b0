"""napari-palmares: the PALMARES Desktop workstation's readers and PET threshold tool in plain napari.

Contributions (napari.yaml, npe2): a reader for a workstation store folder (one subject's CT, PET and
segmentations), a reader for a DICOM CT or PET series folder (CT in HU, PET in SUVbw by the
workstation's SUV engine) and the "PET threshold" dock widget. See README.md and docs/plugins.md.
"""

from __future__ import annotations

__version__ = "0.1.0"

from napari_palmares._reader import (
    SUBJECT_ENV,
    ReaderError,
    get_dicom_reader,
    get_store_reader,
    read_dicom_folder,
    read_store,
)

__all__ = [
    "SUBJECT_ENV",
    "ReaderError",
    "__version__",
    "get_dicom_reader",
    "get_store_reader",
    "read_dicom_folder",
    "read_store",
]

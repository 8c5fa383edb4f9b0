"""The one exception type of all DICOM code: a plain sentence a user can act on."""

from __future__ import annotations

from palmares_desktop.core.errors import PalmaresError


class DicomError(PalmaresError):
    """Bad or unsupported DICOM input. The message is a plain sentence, safe to show to a user
    (it never contains patient identifiers)."""

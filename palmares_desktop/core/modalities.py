"""The one home for modality names: the store's DICOM codes, the command-line words, the display names.

The store keeps DICOM's codes (CT, PT) and HE for H&E slides. Commands take one word per modality
(ct, pet, he); `pt`, DICOM's own code, is accepted as well so that old scripts keep working, but is
never shown. People read CT, PET and H&E.
"""

from __future__ import annotations

from palmares_desktop.core.errors import PalmaresError

CODES = ("CT", "PT", "HE")
WORDS = {"CT": "ct", "PT": "pet", "HE": "he"}  # what commands take and print
DISPLAY = {"CT": "CT", "PT": "PET", "HE": "H&E"}
_ALIASES = {"ct": "CT", "pet": "PT", "pt": "PT", "he": "HE", "h&e": "HE", "hne": "HE"}


class ModalityError(PalmaresError):
    """A modality name that is none of CT, PET or H&E (message is a plain sentence)."""


def code_of(name: str) -> str:
    """'ct' / 'pet' / 'pt' / 'PT' / 'he' / 'H&E' (any case) -> the store's code CT / PT / HE."""
    code = _ALIASES.get((name or "").strip().lower())
    if code is None:
        raise ModalityError(f"{name!r} is not a modality here: use ct, pet or he.")
    return code


def word_of(name: str) -> str:
    """Any accepted name -> the command-line word (ct, pet, he)."""
    return WORDS[code_of(name)]


def display_of(name: str) -> str:
    """Any accepted name -> what people read (CT, PET, H&E)."""
    return DISPLAY[code_of(name)]

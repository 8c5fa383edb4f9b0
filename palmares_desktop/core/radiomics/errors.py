"""The one exception radiomics code raises for problems a user can act on."""

from __future__ import annotations

from palmares_desktop.core.errors import PalmaresError


class RadiomicsError(PalmaresError):
    """Bad input to a radiomics extraction; the message is a plain sentence for the user.

    `reason` keeps pyradiomics' own wording (or None) so it can be stored beside the plain message.
    """

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class RadiomicsLockError(RadiomicsError):
    """The study locked a parameter file and refuses extraction with any other."""


class BatchError(PalmaresError):
    """The batch could not run at all (no scheduler, store not visible to workers...)."""

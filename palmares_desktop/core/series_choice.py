"""Which of a subject's series is used, when it has several of one modality: one rule for the rooms,
`palmares segmentation add`, the demo and batch, so the series a user reads is the series a mask is
attached to.

The rule: a series the user named; else (for a PET fused over a CT) the newest study's PET that shares
the CT's frame of reference; else the newest study's series (study date), the latest import first
among a study's series. The others are returned as alternatives, so a user can see what else there is
and choose (`--series`, or the room's picker).
"""

from __future__ import annotations

from dataclasses import dataclass

from palmares_desktop.core.errors import PalmaresError
from palmares_desktop.core.model import Series
from palmares_desktop.core.store import Store
from palmares_desktop.core.store.records import series_of_subject

MODALITY_NAMES = {"CT": "CT", "PT": "PET"}


class SeriesChoiceError(PalmaresError):
    """The series asked for is not one of the subject's (message is a plain sentence)."""


@dataclass(frozen=True)
class SeriesChoice:
    chosen: Series
    alternatives: tuple[Series, ...]  # the subject's other series of that modality, in rule order
    reason: str  # why `chosen`, in words

    @property
    def note(self) -> str | None:
        """What to tell the user when there was a choice to make."""
        if not self.alternatives:
            return None
        name = MODALITY_NAMES.get(self.chosen.modality, self.chosen.modality)
        return (
            f"{len(self.alternatives) + 1} {name} series in the store; using {describe(self.chosen)} "
            f"({self.reason}). Others: {', '.join(describe(s) for s in self.alternatives)}."
        )


def describe(series: Series) -> str:
    """A series as a user tells it apart: study date, description, and the start of its id."""
    parts = [series.study_date or "undated study"]
    if series.description:
        parts.append(repr(series.description))
    return f"{' '.join(parts)} (id {series.id[:8]})"


def choose_series(
    store: Store,
    subject_id: str,
    modality: str,
    series_id: str | None = None,
    same_frame_as: Series | None = None,
) -> SeriesChoice | None:
    """The series of `modality` (CT or PT) to use for a subject, or None when it has none."""
    candidates = series_of_subject(store, subject_id, modality)
    if series_id is not None:
        chosen = [
            s for s in candidates if s.id == series_id or (len(series_id) >= 8 and s.id.startswith(series_id))
        ]
        if len(chosen) != 1:
            raise SeriesChoiceError(
                f"Series {series_id} is not a {MODALITY_NAMES.get(modality, modality)} series of this subject"
                + (f"; its series are: {', '.join(describe(s) for s in candidates)}." if candidates else ".")
            )
        return _choice(candidates, chosen[0], "chosen")
    if not candidates:
        return None
    if same_frame_as is not None and same_frame_as.frame_of_reference_uid:
        same = [s for s in candidates if s.frame_of_reference_uid == same_frame_as.frame_of_reference_uid]
        if same:
            return _choice(candidates, same[0], "the one sharing the CT's frame of reference")
    return _choice(candidates, candidates[0], "the newest study, latest import")


def _choice(candidates: list[Series], chosen: Series, reason: str) -> SeriesChoice:
    return SeriesChoice(chosen, tuple(s for s in candidates if s.id != chosen.id), reason)

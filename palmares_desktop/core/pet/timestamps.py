"""DICOM DA / TM / DT text to Python datetimes, tolerant of the variants real PET headers carry.

Returns None for empty or unreadable text; the SUV engine turns None into a refusal that names the
attribute, so nothing here guesses a missing date or time.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time

_TIME = re.compile(r"^(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?$")
_DATETIME = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,6}))?([+-]\d{4})?$")


def _clean(text: object) -> str:
    return "" if text is None else str(text).strip()


def parse_da(text: object) -> date | None:
    """DA "YYYYMMDD" (also the old "YYYY.MM.DD")."""
    value = _clean(text).replace(".", "").replace("-", "")
    if len(value) != 8 or not value.isdigit():
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        return None


def parse_tm(text: object) -> time | None:
    """TM "HHMMSS.FFFFFF" with optional minutes/seconds/fraction (also the old "HH:MM:SS")."""
    match = _TIME.match(_clean(text).replace(":", ""))
    if not match:
        return None
    hours, minutes, seconds, fraction = match.groups()
    try:
        return time(int(hours), int(minutes or 0), int(seconds or 0), int((fraction or "0").ljust(6, "0")))
    except ValueError:
        return None


def parse_dt(text: object, *, require_time: bool = True) -> datetime | None:
    """DT "YYYYMMDDHHMMSS.FFFFFF&ZZXX". The UTC offset is dropped: every other PET time is local.

    With `require_time`, a DT holding only a date (no hour) is treated as unusable.
    """
    match = _DATETIME.match(_clean(text))
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, _offset = match.groups()
    if require_time and hour is None:
        return None
    try:
        return datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")),
        )
    except ValueError:
        return None


def combine_da_tm(da_text: object, tm_text: object) -> datetime | None:
    """A DA and a TM attribute pair as one datetime, or None when either is missing/unreadable."""
    day, moment = parse_da(da_text), parse_tm(tm_text)
    if day is None or moment is None:
        return None
    return datetime.combine(day, moment)


def iso(value: datetime | None) -> str | None:
    """JSON-safe text for provenance records."""
    return None if value is None else value.isoformat()

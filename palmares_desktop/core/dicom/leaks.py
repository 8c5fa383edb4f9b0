"""Last line of defence of the de-identification: look for original identifiers in bytes.

The importer feeds every header it writes, the volume header and the database rows through a
`LeakCheck` built from the ORIGINAL identifying values (names, IDs, birth date, institution,
accession number, original UIDs). Any hit stops that series: nothing is stored. Matching is
case-insensitive on whole words, so an ID does not match inside a longer number or UID.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

_MIN_LENGTH = 4  # shorter values ("M", "12", "CT") would match by chance everywhere


class LeakCheck:
    """Finds which identifying values (by label, never by value) occur in some bytes."""

    def __init__(self, values: Mapping[str, Iterable[str]], ignore: Iterable[str] = ()) -> None:
        ignored = {v.strip().lower() for v in ignore if v}
        self._label: dict[bytes, str] = {}
        patterns = []
        for label, group in values.items():
            for value in group:
                text = str(value).strip()
                if len(text) < _MIN_LENGTH or text.lower() in ignored:
                    continue
                for encoded in {text.encode("utf-8"), text.encode("latin-1", "replace")}:
                    key = encoded.lower()
                    if key in self._label:
                        continue
                    self._label[key] = label
                    # Numbers and UIDs: a neighbouring digit or dot means a different number/UID.
                    edge = rb"A-Za-z0-9." if re.fullmatch(rb"[0-9.]+", encoded) else rb"A-Za-z0-9"
                    patterns.append(rb"(?<![" + edge + rb"])" + re.escape(encoded) + rb"(?![" + edge + rb"])")
        # Longest first so that a full name is reported before one of its parts.
        patterns.sort(key=len, reverse=True)
        self._regex = re.compile(b"|".join(patterns), re.IGNORECASE) if patterns else None

    def find(self, data: bytes | str) -> set[str]:
        """Labels of the identifying values found in `data` (empty set: clean)."""
        if self._regex is None:
            return set()
        if isinstance(data, str):
            data = data.encode("utf-8")
        return {self._label.get(m.group(0).lower(), "identifier") for m in self._regex.finditer(data)}


def uid_present(data: bytes, uid: str) -> bool:
    """True when `uid` occurs in `data` as a whole UID (not inside a longer UID or number)."""
    needle = uid.encode("ascii", "replace")
    start = data.find(needle)
    while start >= 0:
        end = start + len(needle)
        before = data[start - 1 : start] if start else b""
        after = data[end : end + 1]
        if not (before.isdigit() or before == b".") and not (after.isdigit() or after == b"."):
            return True
        start = data.find(needle, start + 1)
    return False

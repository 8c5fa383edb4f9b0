"""One base for every failure a user can cause: its message is a plain sentence to show as is.

The CLI (`cli/main.py`) catches PalmaresError in one place and prints the sentence with exit code 1;
anything else is a bug (logged with its traceback, shown as one line).
"""

from __future__ import annotations


class PalmaresError(Exception):
    """A user-facing failure; `str(exc)` is the sentence to show."""

    @property
    def sentence(self) -> str:
        return str(self)

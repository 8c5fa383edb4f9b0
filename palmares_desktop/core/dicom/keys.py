"""Moved to core/store/keys.py (the key table is SQL, and SQL lives in core/store); kept as an alias."""

from palmares_desktop.core.store.keys import KEYS_FILE_NAME, KeyTable, KeyTableError

__all__ = ["KEYS_FILE_NAME", "KeyTable", "KeyTableError"]

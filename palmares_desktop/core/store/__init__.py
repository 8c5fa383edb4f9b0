"""The local SQLite study store (see `store.py` for its layout and write rules)."""

from palmares_desktop.core.store.store import (
    Reader,
    Store,
    StoreError,
    check_site_code,
    check_subject_code,
    file_sha256,
)

__all__ = ["Reader", "Store", "StoreError", "check_site_code", "check_subject_code", "file_sha256"]

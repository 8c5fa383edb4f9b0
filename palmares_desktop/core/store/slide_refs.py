"""What the store says about a slide file, split by where it may go.

Travels (palmares.db `slides`): a relocatable reference (content fingerprint `sha256`, `size_bytes`,
`format`) and a blindable display name, the subject code plus the stain ("IT03-0001 HE"). Slide
file names often carry patient names and paths carry hospital shares, so neither is ever written
there.

Stays on site (keys.db `slide_locations`, next to the pseudonymisation key, never exported): where the
file lives. A file inside the store folder is kept relative to it, so the store can be moved whole;
any other file by its absolute path. A moved file is re-linked with `palmares slide locate` after
its fingerprint has been checked (core/slides/registry.py).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from palmares_desktop.core.model import Slide
from palmares_desktop.core.store.records import as_slide
from palmares_desktop.core.store.store import Store, StoreError, now

_TABLE = "CREATE TABLE IF NOT EXISTS slide_locations (slide_id TEXT PRIMARY KEY, path TEXT NOT NULL, at TEXT)"


def display_name(subject_code: str, stain: str, ordinal: int = 1) -> str:
    """'IT03-0001 HE' for a subject's first slide of a stain, 'IT03-0001 HE 2' for the second."""
    base = f"{subject_code} {stain or 'HE'}"
    return base if ordinal <= 1 else f"{base} {ordinal}"


def next_display_name(store: Store, subject_id: str, subject_code: str, stain: str) -> str:
    """The blind name a new slide of this subject and stain gets (numbered after the first)."""
    taken = {r["display_name"] for r in store.rows("slides", "subject_id = ?", [subject_id])}
    ordinal = 1
    while display_name(subject_code, stain, ordinal) in taken:
        ordinal += 1
    return display_name(subject_code, stain, ordinal)


def slide_size(path: Path) -> int | None:
    """Bytes of a slide file (a DICOM slide is a folder: the sum of its files); None when it is gone."""
    try:
        return sum(p.stat().st_size for p in path.glob("*")) if path.is_dir() else path.stat().st_size
    except OSError:
        return None


def referenced_slide(store: Store, reference: str) -> Slide:
    """The slide with this id or display name (as `slide add` and the slide room show them)."""
    return as_slide(slide_by_reference(store, reference))


def slide_by_reference(store: Store, reference: str) -> dict:
    """A slide row by its id or its display name, for the exchange code that reads columns;
    everything else asks for `referenced_slide`."""
    rows = store.rows("slides", "id = ? or display_name = ?", [reference, reference])
    if not rows:
        raise StoreError(f"There is no slide {reference} in this store.")
    if len(rows) > 1:
        raise StoreError(f"{len(rows)} slides are called {reference}: give the slide's id instead.")
    return rows[0]


def _connect(keys_path: Path) -> sqlite3.Connection:
    if not keys_path.exists():
        # Through the key table, so that the file is created private (mode 0600) with its salt.
        from palmares_desktop.core.dicom.keys import KeyTable

        KeyTable.open(keys_path.parent).close()
    conn = sqlite3.connect(keys_path, isolation_level=None, timeout=10)
    conn.execute(_TABLE)
    return conn


def _as_stored(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def record_locations(store_root: Path, locations: dict[str, str], replace: bool = True) -> None:
    """Write slide id -> local path (absolute, or relative to the store) to keys.db, in one transaction."""
    verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
    conn = _connect(Path(store_root) / Store.KEYS_NAME)
    try:
        with conn:  # a transaction (the connection is in autocommit mode otherwise)
            conn.execute("BEGIN")
            conn.executemany(
                f"{verb} INTO slide_locations (slide_id, path, at) VALUES (?, ?, ?)",
                [(slide_id, path, now()) for slide_id, path in locations.items()],
            )
    finally:
        conn.close()


def set_slide_location(store: Store, slide_id: str, path: Path) -> None:
    record_locations(store.root, {slide_id: _as_stored(store.root, Path(path))})


def slide_location(store: Store, slide_id: str) -> Path | None:
    """Where this site keeps the slide's file (absolute), or None when the site never linked it."""
    conn = _connect(store.root / Store.KEYS_NAME)
    try:
        row = conn.execute("SELECT path FROM slide_locations WHERE slide_id = ?", [slide_id]).fetchone()
    finally:
        conn.close()
    if row is None:
        return None
    path = Path(row[0])
    return path if path.is_absolute() else store.root / path


def set_slide_size(store: Store, slide_id: str, size: int) -> Slide:
    """A slide migrated while its file was away learns its size when it is re-linked."""
    return as_slide(store.update("slides", slide_id, {"size_bytes": size}, action="locate"))

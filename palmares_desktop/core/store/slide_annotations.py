"""Site-only slide locations: where a registered slide file lives on this site's disks.

The local path (and with it the original file name) never goes into palmares.db, which travels
to the coordinating centre; it is kept in keys.db next to the pseudonymisation key, which never
leaves the site.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from palmares_desktop.core.store.store import Store, now


def _connect(store: Store) -> sqlite3.Connection:
    conn = sqlite3.connect(store.root / Store.KEYS_NAME, isolation_level=None, timeout=10)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS slide_locations (slide_id TEXT PRIMARY KEY, path TEXT NOT NULL, at TEXT)"
    )
    return conn


def set_slide_location(store: Store, slide_id: str, path: Path) -> None:
    conn = _connect(store)
    try:
        conn.execute(
            "INSERT OR REPLACE INTO slide_locations (slide_id, path, at) VALUES (?, ?, ?)",
            [slide_id, str(path), now()],
        )
    finally:
        conn.close()


def slide_location(store: Store, slide_id: str) -> Path | None:
    conn = _connect(store)
    try:
        row = conn.execute("SELECT path FROM slide_locations WHERE slide_id = ?", [slide_id]).fetchone()
    finally:
        conn.close()
    return Path(row[0]) if row else None

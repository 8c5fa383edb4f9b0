"""The other side's public exchange keys a store trusts (keys.db `trusted_keys`, never exported).

A site trusts the centre's key; the centre trusts one key per site. Registering a second key for an
owner replaces nothing: a changed key must be retired by hand (`retire`), so a swapped file is seen.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from palmares_desktop.core.store.store import Store, StoreError, now

_TABLE = (
    "CREATE TABLE IF NOT EXISTS trusted_keys (owner TEXT PRIMARY KEY, sign_public BLOB NOT NULL,"
    " box_public BLOB NOT NULL, fingerprint TEXT NOT NULL, at TEXT)"
)


def _connect(root: Path) -> sqlite3.Connection:
    path = Path(root) / Store.KEYS_NAME
    if not path.exists():
        from palmares_desktop.core.dicom.keys import KeyTable

        KeyTable.open(path.parent).close()  # created private (0600), with its salt
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    conn.execute(_TABLE)
    return conn


def trust(root: Path, owner: str, sign_public: bytes, box_public: bytes, fingerprint: str) -> bool:
    """Register `owner`'s key; True when new, False when the same key was already trusted."""
    conn = _connect(root)
    try:
        row = conn.execute(
            "SELECT sign_public, box_public FROM trusted_keys WHERE owner = ?", [owner]
        ).fetchone()
        if row is not None:
            if bytes(row[0]) == sign_public and bytes(row[1]) == box_public:
                return False
            raise StoreError(
                f"This store already trusts another key for {owner}: a changed key is not accepted "
                "silently. Ask the sender why it changed."
            )
        conn.execute(
            "INSERT INTO trusted_keys (owner, sign_public, box_public, fingerprint, at) VALUES (?, ?, ?, ?, ?)",
            [owner, sign_public, box_public, fingerprint, now()],
        )
        return True
    finally:
        conn.close()


def trusted(root: Path, owner: str) -> tuple[bytes, bytes] | None:
    """(sign, box) public keys trusted for `owner`, or None."""
    if not (Path(root) / Store.KEYS_NAME).exists():
        return None
    conn = _connect(root)
    try:
        row = conn.execute(
            "SELECT sign_public, box_public FROM trusted_keys WHERE owner = ?", [owner]
        ).fetchone()
    finally:
        conn.close()
    return (bytes(row[0]), bytes(row[1])) if row else None


def key_table_values(root: Path) -> set[str]:
    """Every value of the site's key table and slide locations (what must never leave the site):
    original PatientIDs, and the local slide paths with their file names."""
    path = Path(root) / Store.KEYS_NAME
    if not path.exists():
        return set()
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        out = {r[0] for r in conn.execute("SELECT patient_id FROM patients") if r[0]}
        has_slides = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'slide_locations'"
        ).fetchone()[0]
        if has_slides:
            for (location,) in conn.execute("SELECT path FROM slide_locations"):
                if location:
                    out.add(location)
                    name = Path(location).name
                    out.add(name)
                    if "." in name:
                        out.add(name.rsplit(".", 1)[0])
    finally:
        conn.close()
    return {v for v in out if len(v) >= 4}

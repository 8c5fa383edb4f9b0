"""The pseudonymisation key table and the secret site salt (store/keys.db).

This file is the ONLY place where an original PatientID sits next to its subject code, and the
only place of the salt that makes the pseudonymous UIDs and the re-import fingerprints. It lives
beside palmares.db but is a separate SQLite file so that nothing that copies or exports the
study database can carry it along; exports must never include it.

At rest it is NOT encrypted: an encryption key kept on the same disk would protect nothing, and
a passphrase at every import is not workable in a reading room. It relies on the operating
system account (created with mode 0600 where the OS supports it) and the site's full-disk
encryption. Back it up separately: without it the site cannot re-identify a subject, and a
re-import would produce different UIDs.

Layout:
  secrets(name, value, created_at)                 the site salt (32 random bytes)
  subjects(subject_code, date_shift_days, created_at)  one random date shift per subject
  patients(patient_id, subject_code, created_at)   original PatientID -> subject code
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from palmares_desktop.core.errors import PalmaresError

KEYS_FILE_NAME = "keys.db"

# Dates move back by 1 to 10 years: far enough that no real date survives, near enough that
# shifted dates stay plausible (and stay after 1900 for any living patient's scans).
_SHIFT_MIN_DAYS = 365
_SHIFT_MAX_DAYS = 3650

_SCHEMA = """
CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS subjects (
    subject_code TEXT PRIMARY KEY, date_shift_days INTEGER NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS patients (
    patient_id TEXT PRIMARY KEY, subject_code TEXT NOT NULL REFERENCES subjects(subject_code),
    created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS patients_by_subject ON patients(subject_code);
"""


class KeyTableError(PalmaresError):
    """A problem with the key table the user can act on (message is a plain sentence)."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class KeyTable:
    """The open key table of one store. Use `KeyTable.open(store.root)`; close it when done."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn
        self._salt = self._load_or_create_salt()

    @classmethod
    def open(cls, store_root: str | Path) -> KeyTable:
        path = Path(store_root) / KEYS_FILE_NAME
        try:
            if not path.exists():
                # Create the file ourselves so it is private from the first byte (SQLite's
                # journal files inherit the database file's permissions).
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            else:
                os.chmod(path, 0o600)  # on every open: a copy or restore may have widened it
            conn = sqlite3.connect(path, isolation_level=None, timeout=10)
            conn.execute("PRAGMA foreign_keys=ON")
            conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise KeyTableError(f"Cannot open the key table {path}: {exc}.") from exc
        return cls(path, conn)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> KeyTable:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------------- salt
    def _load_or_create_salt(self) -> bytes:
        row = self._conn.execute("SELECT value FROM secrets WHERE name = 'site_salt'").fetchone()
        if row:
            return bytes(row[0])
        salt = secrets.token_bytes(32)
        # INSERT OR IGNORE + re-read: two processes opening a fresh store agree on one salt.
        self._conn.execute(
            "INSERT OR IGNORE INTO secrets(name, value, created_at) VALUES ('site_salt', ?, ?)",
            (salt, _now()),
        )
        return bytes(self._conn.execute("SELECT value FROM secrets WHERE name = 'site_salt'").fetchone()[0])

    @property
    def salt(self) -> bytes:
        """The secret site salt (32 bytes). Never write it anywhere else."""
        return self._salt

    def keyed_hash(self, purpose: str, value: str) -> str:
        """HMAC-SHA256 of `value` under the site salt, separated by `purpose` (hex)."""
        message = purpose.encode() + b"\0" + value.encode("utf-8")
        return hmac.new(self._salt, message, hashlib.sha256).hexdigest()

    def fingerprint(self, series_uid: str) -> str:
        """The re-import fingerprint of an ORIGINAL SeriesInstanceUID (cannot be reversed off-site)."""
        return self.keyed_hash("series-fingerprint", series_uid)

    # ------------------------------------------------------------------ subjects
    def subject_for_patient(self, patient_id: str) -> str | None:
        """The subject code already given to this original PatientID, or None."""
        row = self._conn.execute(
            "SELECT subject_code FROM patients WHERE patient_id = ?", (patient_id,)
        ).fetchone()
        return row[0] if row else None

    def patient_count(self, subject_code: str) -> int:
        """How many original PatientIDs are linked to this subject code."""
        return self._conn.execute(
            "SELECT count(*) FROM patients WHERE subject_code = ?", (subject_code,)
        ).fetchone()[0]

    def knows_subject(self, subject_code: str) -> bool:
        return self.patient_count(subject_code) > 0

    def date_shift_days(self, subject_code: str) -> int:
        """The subject's date shift in days (negative: dates move into the past). Drawn at random
        the first time a subject is seen, then stable forever, so that all its series share it."""
        row = self._conn.execute(
            "SELECT date_shift_days FROM subjects WHERE subject_code = ?", (subject_code,)
        ).fetchone()
        if row:
            return int(row[0])
        shift = -(_SHIFT_MIN_DAYS + secrets.randbelow(_SHIFT_MAX_DAYS - _SHIFT_MIN_DAYS + 1))
        self._conn.execute(
            "INSERT OR IGNORE INTO subjects(subject_code, date_shift_days, created_at) VALUES (?, ?, ?)",
            (subject_code, shift, _now()),
        )
        return self.date_shift_days(subject_code)

    def link(self, patient_id: str, subject_code: str) -> None:
        """Record that `patient_id` is `subject_code`. Refuses to move a patient to another code."""
        if not patient_id:
            raise KeyTableError("The images carry no PatientID, so they cannot be linked to a subject.")
        current = self.subject_for_patient(patient_id)
        if current == subject_code:
            return
        if current is not None:
            raise KeyTableError(
                f"This patient is already enrolled as {current}; import the images under that code."
            )
        self.date_shift_days(subject_code)
        self._conn.execute(
            "INSERT INTO patients(patient_id, subject_code, created_at) VALUES (?, ?, ?)",
            (patient_id, subject_code, _now()),
        )

"""The local study store: one folder holding `palmares.db` (SQLite, WAL) and the pixel files.

    store/
      palmares.db        everything that can travel (de-identified), plus the audit log
      keys.db            the pseudonymisation key table and the site salt: NEVER exported
      volumes/           de-identified image volumes (NRRD), one per series
      masks/             segmentation label maps (NRRD) on the exact image geometry

Every write goes through `insert`/`update` here, inside a transaction, and appends to the audit
log with the current reader. Rows that travel get a UUID, site code, author and revision.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import os
import re
import sqlite3
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from palmares_desktop.core.errors import PalmaresError
from palmares_desktop.core.model import Reader, Subject  # Reader re-exported: its home is the domain model
from palmares_desktop.core.store.files import FileReport, StoreFiles, compare, remove_leftovers
from palmares_desktop.core.store.integrity import GENESIS, ChainReport, audit_row_hash, verify_chain
from palmares_desktop.core.store.schema import SchemaDriftError, migrate

SUBJECT_CODE = re.compile(r"[A-Z]{2}[0-9]{2}-[0-9]{4}")  # ASCII only, matched whole (fullmatch)
SITE_CODE = re.compile(r"[A-Z]{2}[0-9]{2}")
ROLES = ("radiologist", "pathologist", "coordinator", "system")
MODALITIES = ("CT", "PT", "HE")
STATUSES = ("not started", "in progress", "done")


class StoreError(PalmaresError):
    """A problem with the store the user can act on (message is a plain sentence)."""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def new_id() -> str:
    return str(uuid.uuid4())


def file_sha256(path: str | Path) -> str:
    """sha256 of a file the store references (volumes, masks), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _writable(root: Path) -> bool:
    """Can this process create files in the store folder (or in the folder that will hold it)?"""
    folder = root if root.exists() else next((p for p in root.parents if p.exists()), root)
    db = root / Store.DB_NAME
    return os.access(folder, os.W_OK | os.X_OK) and (not db.exists() or os.access(db, os.W_OK))


def check_site_code(code: str) -> str:
    if not SITE_CODE.fullmatch(code or ""):
        raise StoreError(
            f"Site code {code!r} is not valid: use two capital letters and two digits, e.g. IT03."
        )
    return code


def check_subject_code(code: str) -> str:
    if not SUBJECT_CODE.fullmatch(code or ""):
        raise StoreError(
            f"Subject code {code!r} is not valid: use the site code, a dash and four digits, e.g. IT03-0017."
        )
    return code


class Store:
    """An open study store. Use `Store.open(path)`; close with `close()` or a `with` block."""

    DB_NAME = "palmares.db"
    KEYS_NAME = "keys.db"

    def __init__(self, root: Path, db: Database, read_only: bool = False) -> None:
        self.root = root
        self.db = db
        self.files = StoreFiles(root)
        self.read_only = read_only
        self.reader: Reader | None = None
        self.reconciled = FileReport()  # what opening the store cleaned up

    # ----------------------------------------------------------------- opening
    @classmethod
    def open(cls, path: str | Path, create: bool = True, read_only: bool = False) -> Store:
        """Open (or create) a store. Opening for writing first brings it to a consistent state:
        files left without a row, and staging of writers that died, are removed (see files.py).
        `read_only=True` writes nothing, works on read-only media and never creates anything."""
        root = Path(path).expanduser().resolve()
        if root.suffix in (".db", ".sqlite"):
            raise StoreError(f"{root} looks like a database file; a store is the folder that contains it.")
        if root.exists() and not root.is_dir():
            raise StoreError(f"{root} is a file, not a store folder.")
        if not (root / cls.DB_NAME).exists() and (not create or read_only):
            raise StoreError(f"There is no PALMARES store in {root}.")
        if read_only:
            return cls._open_read_only(root)
        if not _writable(root):
            raise StoreError(
                f"The store {root} is read-only (on read-only media, or you may not write there): it "
                "can be viewed, not changed. Copy it to a writable folder, or ask for write access."
            )
        try:
            for sub in ("", "volumes", "masks"):
                (root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"Cannot create the store folder {root}: {exc.strerror}.") from exc
        db = Database(root / cls.DB_NAME)
        db.execute("PRAGMA busy_timeout=10000")
        _enter_wal(db)
        # In WAL mode NORMAL never corrupts the database; a power cut can lose only the last commits
        # (re-doable: imports and batches are idempotent), and each commit skips an fsync.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        store = cls(root, db)
        try:
            # Under the write lock: two processes opening a new store migrate once, and no writer
            # is between publishing its files and committing their rows while we reconcile.
            with store.transaction():
                migrate(db)
                store.reconciled = store.reconcile(repair=True)
        except SchemaDriftError as exc:
            db.close()
            raise StoreError(str(exc)) from None
        return store

    @classmethod
    def _open_read_only(cls, root: Path) -> Store:
        import sqlite3

        from palmares_desktop.core.store.schema import check_readable_as_is

        # mode=ro still needs the WAL index next to the database; `immutable` reads a store on
        # read-only media (nobody can be writing to it there).
        target = (root / cls.DB_NAME).as_uri()
        mode = "ro" if _writable(root) else "ro&immutable=1"
        try:
            conn = sqlite3.connect(f"{target}?mode={mode}", uri=True)
            conn.execute("PRAGMA query_only=ON")
            db = Database(conn)
            check_readable_as_is(db)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"The store {root} cannot be read: {exc}.") from None
        except SchemaDriftError as exc:
            raise StoreError(str(exc)) from None
        return cls(root, db, read_only=True)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All-or-nothing block; nests safely (inner blocks join the outer transaction, as savepoints).

        The outermost block takes the write lock up front (BEGIN IMMEDIATE, waiting up to the busy
        timeout): a deferred transaction that reads and then writes gets "database is locked" at
        once, without waiting, when another process is writing.
        """
        if self.read_only:
            raise StoreError(f"The store {self.root} was opened read-only: it can be viewed, not changed.")
        conn = self.db.conn
        if conn.in_transaction:
            with self.db.atomic():  # a SAVEPOINT inside the outer transaction
                yield
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        else:
            try:
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    # ------------------------------------------------------------------ readers
    def add_reader(self, name: str, role: str, site_code: str) -> Reader:
        if role not in ROLES:
            raise StoreError(f"Role {role!r} is not one of {', '.join(ROLES)}.")
        if not name.strip():
            raise StoreError("A reader needs a name.")
        check_site_code(site_code)
        with self.transaction():  # under the write lock: two processes adding one reader add it once
            existing = list(
                self.db["readers"].rows_where(
                    "name = ? and role = ? and site_code = ?", [name.strip(), role, site_code]
                )
            )
            if existing:
                row = existing[0]
            else:
                row = {
                    "id": new_id(),
                    "name": name.strip(),
                    "role": role,
                    "site_code": site_code,
                    "created_at": now(),
                }
                self.db["readers"].insert(row)
                # A new reader is recorded by whoever is working, or by itself when it is the first.
                by = self.reader or Reader(row["id"], row["name"], row["role"], row["site_code"])
                self._audit("create", "readers", row["id"], None, row["id"], None, by=by)
                self.ensure_site(site_code, by=by)
        return Reader(row["id"], row["name"], row["role"], row["site_code"])

    def readers(self) -> list[Reader]:
        return [
            Reader(r["id"], r["name"], r["role"], r["site_code"])
            for r in self.db["readers"].rows_where(order_by="name")
        ]

    def use_reader(self, reader: Reader) -> Reader:
        """Make `reader` the author of every following write."""
        self.reader = reader
        return reader

    def use_system_reader(self, name: str | None = None, site_code: str = "XX00") -> Reader:
        """A non-human author (e.g. the demo generator, or the CLI run by an OS user)."""
        return self.use_reader(
            self.add_reader(name or f"palmares-cli ({getpass.getuser()})", "system", site_code)
        )

    def _require_reader(self) -> Reader:
        if self.reader is None:
            raise StoreError("No reader is selected: every change to the store must record who made it.")
        return self.reader

    # -------------------------------------------------------------------- sites
    def ensure_site(self, code: str, name: str | None = None, by: Reader | None = None) -> None:
        check_site_code(code)
        with self.transaction():
            if not self.db["sites"].count_where("code = ?", [code]):
                self.db["sites"].insert({"code": code, "name": name or code, "created_at": now()})
                self._audit("create", "sites", code, None, code, None, by=by)

    # ------------------------------------------------------------ generic writes
    def insert(self, table: str, row: dict[str, Any], action: str = "create", detail: Any = None) -> dict:
        """Insert a travelling row: fills id/site/author/revision/timestamps, audits, in a transaction."""
        reader = self._require_reader()
        stamp = now()
        with self.transaction():
            # A row is made at the store's site, whoever the reader is (a visiting reader included).
            own = self.site_code()
            full = {
                "id": new_id(),
                "site_code": own or reader.site_code,
                "author_id": reader.id,
                "revision": 1,
                "created_at": stamp,
                "updated_at": stamp,
                **row,
            }
            self._check_own_site(own, full["site_code"], table)
            self.ensure_site(full["site_code"])
            self.db[table].insert(full)
            self._audit(action, table, full["id"], None, full["id"], detail)
        return full

    def insert_many(
        self, table: str, rows: list[dict[str, Any]], action: str = "create", detail: Any = None
    ) -> list[dict]:
        """Insert many travelling rows in one transaction with ONE audit event (a bulk user action:
        an import, a detection run, 10,000 annotations saved at once). The event's detail carries the
        count and a hash of the new ids, so the log still names exactly which rows the action made."""
        reader = self._require_reader()
        if not rows:
            return []
        stamp = now()
        with self.transaction():
            own = self.site_code()
            site = own or reader.site_code
            self._check_own_site(own, site, table)
            self.ensure_site(site)
            full = [
                {
                    "id": new_id(),
                    "site_code": site,
                    "author_id": reader.id,
                    "revision": 1,
                    "created_at": stamp,
                    "updated_at": stamp,
                    **row,
                }
                for row in rows
            ]
            for other in {r["site_code"] for r in full} - {site}:
                self._check_own_site(own, other, table)
            # One prepared statement for all rows (sqlite-utils' insert_all re-plans every batch).
            columns = list(full[0])
            known = set(self.db[table].columns_dict)
            if not set(columns) <= known:
                raise StoreError(f"Unknown columns for {table}: {', '.join(sorted(set(columns) - known))}.")
            names = ", ".join(f'"{c}"' for c in columns)
            self.db.conn.executemany(
                f'INSERT INTO "{table}" ({names}) VALUES ({", ".join("?" * len(columns))})',
                [tuple(r.get(c) for c in columns) for r in full],
            )
            ids = hashlib.sha256("\n".join(r["id"] for r in full).encode()).hexdigest()
            bulk = {"count": len(full), "first_id": full[0]["id"], "ids_sha256": ids, **(detail or {})}
            self._audit(action, table, full[0]["id"], None, full[0]["id"], bulk)
        return full

    def update(
        self, table: str, row_id: str, changes: dict[str, Any], action: str = "update", detail: Any = None
    ) -> dict:
        """Change a row in place, bumping its revision; the audit log keeps the before values."""
        reader = self._require_reader()
        with self.transaction():
            before = self.get(table, row_id)
            if "site_code" in changes:  # a row cannot be moved to another site either
                self._check_own_site(self.site_code(), changes["site_code"], table)
            after = {
                **changes,
                "revision": before["revision"] + 1,
                "updated_at": now(),
                "author_id": reader.id,
            }
            self.db[table].update(row_id, after)
            old = {k: before.get(k) for k in changes}
            self._audit(
                action, table, row_id, row_id, row_id, {"before": old, "after": changes, **(detail or {})}
            )
        return self.get(table, row_id)

    def _audit(
        self,
        action: str,
        table: str,
        row_id: str,
        before_id: str | None,
        after_id: str | None,
        detail: Any,
        by: Reader | None = None,
    ) -> None:
        """The one place audit rows are written: each is chained to the previous row's hash."""
        reader = by or self._require_reader()
        with self.transaction():  # the head of the chain is read and extended under the write lock
            last = next(
                iter(self.db.query("SELECT seq, row_hash FROM audit_log ORDER BY seq DESC LIMIT 1")), None
            )
            row = {
                "seq": last["seq"] + 1 if last else 1,
                "at": now(),
                "reader_id": reader.id,
                "site_code": reader.site_code,
                "action": action,
                "table_name": table,
                "row_id": row_id,
                "before_id": before_id,
                "after_id": after_id,
                "detail_json": json.dumps(detail, default=str) if detail is not None else None,
                "prev_hash": (last["row_hash"] or GENESIS) if last else GENESIS,
            }
            row["row_hash"] = audit_row_hash(row, row["prev_hash"])
            self.db["audit_log"].insert(row)

    def audit(self, action: str, detail: Any = None, table: str = "", row_id: str = "") -> None:
        """Record an event that changes no row (e.g. an export, a refused import)."""
        with self.transaction():
            self._audit(action, table, row_id, None, None, detail)

    def referenced_files(self) -> set[str]:
        """Store-relative paths of every file a row references."""
        out: set[str] = set()
        for row in self.db.query("SELECT id, pixel_path FROM series"):
            if row["pixel_path"]:  # a series merged at the centre travels without its pixel files
                out.add(self.files.relative(self.files.dicom(row["id"])))
                out.add(row["pixel_path"])
        out.update(
            r["mask_path"] for r in self.db.query("SELECT mask_path FROM segmentations") if r["mask_path"]
        )
        return out

    def file_hashes(self) -> dict[str, str]:
        """Store-relative path -> the SHA-256 its row recorded, for the volumes and masks."""
        out = {
            r["pixel_path"]: r["pixel_sha256"]
            for r in self.db.query("SELECT pixel_path, pixel_sha256 FROM series")
        }
        for r in self.db.query("SELECT mask_path, mask_sha256 FROM segmentations"):
            out[r["mask_path"]] = r["mask_sha256"]
        return {k: v for k, v in out.items() if k and v}

    def reconcile(self, repair: bool) -> FileReport:
        """Files against rows; with `repair`, remove orphans and dead staging (under the write lock)."""
        if not repair:
            return compare(self.files, self.referenced_files())
        with self.transaction():
            report = compare(self.files, self.referenced_files())
            remove_leftovers(self.files, report)
        return report

    def check_audit_chain(self) -> ChainReport:
        """Verify the audit log's hash chain (see integrity.py); names the first broken row."""
        return verify_chain(self.db.query("SELECT * FROM audit_log ORDER BY seq"))

    # ------------------------------------------------------------------- reads
    def get(self, table: str, row_id: str) -> dict:
        rows = list(self.db[table].rows_where("id = ?", [row_id]))
        if not rows:
            raise StoreError(f"No {table} row with id {row_id}.")
        return rows[0]

    def rows(
        self, table: str, where: str | None = None, args: Any = None, order_by: str | None = None
    ) -> list[dict]:
        return list(self.db[table].rows_where(where, args or [], order_by=order_by))

    def path(self, relative: str) -> Path:
        """Absolute path of a file the store references by a store-relative path."""
        return self.root / relative

    # ----------------------------------------------------------------- subjects
    def subject_by_code(self, code: str) -> Subject | None:
        from palmares_desktop.core.store.records import as_subject  # records imports this module

        rows = self.rows("subjects", "code = ?", [code])
        return as_subject(rows[0]) if rows else None

    def ensure_subject(self, code: str, site_code: str | None = None) -> Subject:
        """The subject with `code`, created if new. Its site is the code's prefix."""
        check_subject_code(code)
        site = site_code or code.split("-")[0]
        if site != code.split("-")[0]:
            raise StoreError(
                f"Subject {code} does not belong to site {site}: its code must start with {site}."
            )
        from palmares_desktop.core.store.records import as_subject  # records imports this module

        existing = self.subject_by_code(code)
        if existing:
            return existing
        return as_subject(self.insert("subjects", {"code": code, "site_code": site}))

    def next_subject_code(self, site_code: str) -> str:
        """The next progressive pseudonym for a site, e.g. IT03-0018 after IT03-0017."""
        check_site_code(site_code)
        codes = [r["code"] for r in self.rows("subjects", "code like ?", [f"{site_code}-%"])]
        numbers = [int(c.split("-")[1]) for c in codes if SUBJECT_CODE.fullmatch(c)]
        return f"{site_code}-{max(numbers, default=0) + 1:04d}"

    def set_status(self, subject_id: str, modality: str, status: str) -> None:
        if modality not in MODALITIES or status not in STATUSES:
            raise StoreError(f"Unknown modality or status: {modality} / {status}.")
        rows = self.rows("subject_status", "subject_id = ? and modality = ?", [subject_id, modality])
        if rows:
            if rows[0]["status"] != status:
                self.update("subject_status", rows[0]["id"], {"status": status})
        else:
            subject = self.get("subjects", subject_id)
            self.insert(
                "subject_status",
                {
                    "subject_id": subject_id,
                    "modality": modality,
                    "status": status,
                    "site_code": subject["site_code"],
                },
            )

    def worklist(self) -> list[dict]:
        """One row per subject: code, site, modalities present and reading status per modality."""
        present: dict[str, set[str]] = {}
        for r in self.db.query("select subject_id, modality from series"):
            present.setdefault(r["subject_id"], set()).add(r["modality"])
        for r in self.db.query("select subject_id from slides"):
            present.setdefault(r["subject_id"], set()).add("HE")
        status = {(r["subject_id"], r["modality"]): r["status"] for r in self.rows("subject_status")}
        out = []
        for s in self.rows("subjects", order_by="code"):
            mods = present.get(s["id"], set())
            out.append(
                {
                    "subject_id": s["id"],
                    "code": s["code"],
                    "site_code": s["site_code"],
                    "modalities": [m for m in MODALITIES if m in mods],
                    "status": {m: status.get((s["id"], m), "not started") for m in MODALITIES if m in mods},
                }
            )
        return out

    # ----------------------------------------------------------------- settings
    def setting(self, key: str, default: str | None = None) -> str | None:
        rows = self.rows("settings", "key = ?", [key])
        return rows[0]["value"] if rows else default

    def set_setting(self, key: str, value: str) -> None:
        with self.transaction():
            self.db["settings"].upsert({"key": key, "value": value}, pk="key")
            self._audit("setting", "settings", key, None, None, {"key": key, "value": value})

    # ----------------------------------------------------------------- own site
    SITE_SETTING = "site_code"

    def site_code(self) -> str | None:
        """The site this store belongs to: its 'site_code' setting, written by the first row added.
        A store made before that setting answers with its subjects' commonest site (and records it
        at its next write); an empty store answers None."""
        code = self.setting(self.SITE_SETTING)
        if code:
            return code
        rows = list(
            self.db.query(
                "select site_code, count(*) as n from subjects group by site_code order by n desc, site_code limit 1"
            )
        )
        return rows[0]["site_code"] if rows else None

    def _check_own_site(self, own: str | None, row_site: str, table: str) -> None:
        if own is not None and row_site != own:
            raise StoreError(
                f"This store belongs to site {own}: a {table} row of site {row_site} cannot be added to it "
                "(each site keeps its own store)."
            )
        if self.setting(self.SITE_SETTING) is None:
            check_site_code(row_site)
            self.set_setting(self.SITE_SETTING, own or row_site)


def _enter_wal(db: Database, seconds: float = 20.0) -> None:
    """Switch the database to WAL. The switch needs an exclusive lock, and SQLite answers "database
    is locked" at once, without its busy wait, while another process is creating the same new store
    (three imports started together): retry until that process is done."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)

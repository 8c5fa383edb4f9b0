"""`palmares store check`: is a store whole? The database, its audit chain, and files against rows.

Run on a store opened read-only it changes nothing and reports what it finds; with `repair` the
store is opened for writing, which removes files left without rows and dead writers' staging (see
files.py), and the report lists what was removed. The audit chain is never "repaired": history that
was edited stays reported, so that the edit is seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from palmares_desktop.core.store.files import FileReport
from palmares_desktop.core.store.integrity import ChainReport
from palmares_desktop.core.store.store import Store, file_sha256


@dataclass
class StoreCheck:
    store: str
    integrity: list[str]  # SQLite's own findings; ["ok"] when the file is sound
    foreign_keys: list[str]  # rows that point at rows that are not there
    audit_chain: ChainReport
    files: FileReport
    changed_files: list[str] = field(default_factory=list)  # content no longer matches its row's hash
    hashed: bool = False

    @property
    def ok(self) -> bool:
        return (
            self.integrity == ["ok"]
            and not self.foreign_keys
            and self.audit_chain.ok
            and not (self.files.orphans or self.files.staging or self.files.missing)
            and not self.changed_files
        )

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "store": self.store,
            "integrity": "ok" if self.integrity == ["ok"] else self.integrity,
            "foreign_keys": self.foreign_keys,
            "audit_chain": self.audit_chain.to_dict() | {"rows": self.audit_chain.rows},
            "orphans": self.files.orphans,
            "staging": self.files.staging,
            "missing_files": self.files.missing,
            "removed": self.files.removed,
            "changed_files": self.changed_files if self.hashed else None,
        }

    def sentences(self) -> list[str]:
        out = []
        if self.integrity == ["ok"]:
            out.append("Database: intact (SQLite integrity check passed).")
        else:
            out.append(f"Database: DAMAGED: {'; '.join(self.integrity[:5])}. Restore it from a backup.")
        if self.foreign_keys:
            out.append(f"References: {len(self.foreign_keys)} rows point at rows that are missing.")
        out.append(f"Audit log: {self.audit_chain.sentence()}")
        files = self.files
        if files.removed:
            out.append(f"Files: removed {len(files.removed)} leftovers of interrupted work.")
        if files.orphans:
            out.append(
                f"Files: {len(files.orphans)} files belong to no row (leftovers; --repair removes them)."
            )
        if files.staging:
            out.append(
                f"Files: {len(files.staging)} staging copies of stopped imports (--repair removes them)."
            )
        if files.missing:
            out.append(
                f"Files: {len(files.missing)} files that rows need are MISSING: {', '.join(files.missing[:5])}."
            )
        if self.changed_files:
            out.append(f"Files: {len(self.changed_files)} files were changed after they were stored.")
        if not (files.orphans or files.staging or files.missing or self.changed_files):
            out.append("Files: every file matches a row" + (" and its hash." if self.hashed else "."))
        out.append("The store is consistent." if self.ok else "The store has problems (see above).")
        return out


def check_store(path: str | Path, repair: bool = False, hashes: bool = False) -> StoreCheck:
    """Check the store at `path`; `repair` removes leftovers; `hashes` re-reads every file."""
    store = Store.open(path, create=False, read_only=not repair)
    try:
        files = store.reconciled if repair else store.reconcile(repair=False)
        report = StoreCheck(
            store=str(store.root),
            integrity=[r[0] for r in store.db.execute("PRAGMA integrity_check").fetchall()],
            foreign_keys=[
                f"{r[0]} row {r[1]} -> {r[2]}"
                for r in store.db.execute("PRAGMA foreign_key_check").fetchall()
            ],
            audit_chain=store.check_audit_chain(),
            files=files,
            hashed=hashes,
        )
        if hashes:
            report.changed_files = [
                relative
                for relative, expected in store.file_hashes().items()
                if store.path(relative).is_file() and file_sha256(store.path(relative)) != expected
            ]
        return report
    finally:
        store.close()

"""Every SQL statement of the site-package exchange (issue 8): what a package database holds, reading a
site's rows for it, and writing merged rows into the centre's store.

A package database has exactly the tables and columns of PACKAGE_TABLES: an allow-list, so that a
column added to the store later (or a local one: pixel paths, salted fingerprints, import problems)
never travels by accident. Drafts never travel; masks travel as data, not files.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from palmares_desktop.core.store.integrity import HASHED_FIELDS
from palmares_desktop.core.store.store import Store, now

_TRAVELLING = ["id", "site_code", "author_id", "revision", "created_at", "updated_at"]

#: table -> columns, parents before children (the order rows are written and merged in).
PACKAGE_TABLES: dict[str, list[str]] = {
    "sites": ["code", "name", "created_at"],
    "readers": ["id", "name", "role", "site_code", "created_at"],
    "subjects": [*_TRAVELLING, "code"],
    "subject_status": [*_TRAVELLING, "subject_id", "modality", "status"],
    "studies": [*_TRAVELLING, "subject_id", "study_uid", "study_date", "description"],
    "series": [
        *_TRAVELLING,
        "study_id",
        "subject_id",
        "modality",
        "series_uid",
        "frame_of_reference_uid",
        "description",
        "manufacturer",
        "size_json",
        "spacing_json",
        "origin_json",
        "direction_json",
        "units",
        "pixel_sha256",
        "suv_json",
    ],  # fmt: skip
    "acquisition": ["series_id", "site_code", "covariates_json"],
    "lesions": [
        *_TRAVELLING,
        "subject_id",
        "name",
        "organ",
        "lesion_type",
        "recist_status",
        "bone_character",
        "notes",
        "deleted_at",  # m013: a lesion deleted at the site (undoable there) is kept, marked, at the centre
    ],  # fmt: skip
    "segmentations": [
        *_TRAVELLING,
        "lesion_id",
        "series_id",
        "version",
        "method",
        "parameters_json",
        "mask_sha256",
        "label",
        "voxel_count",
        "volume_ml",
        "source",
        "status",
        "reader_id",
    ],  # fmt: skip
    "masks": ["segmentation_id", "site_code", "geometry_json", "dtype", "data", "sha256"],
    "slides": [
        *_TRAVELLING,
        "subject_id",
        "display_name",
        "format",
        "width",
        "height",
        "levels",
        "mpp_x",
        "mpp_y",
        "sha256",
        "stain",
        "size_bytes",
    ],  # fmt: skip
    "slide_annotations": [
        *_TRAVELLING,
        "slide_id",
        "object_type",
        "classification",
        "color",
        "geometry_json",
        "measurements_json",
        "name",
        "min_x",
        "min_y",
        "max_x",
        "max_y",
        "geometry_wkb",
    ],
    "slide_detection_runs": [
        *_TRAVELLING,
        "slide_id",
        "annotation_id",
        "method",
        "classification",
        "count",
        "measurement_names_json",
        "parameters_json",
        "provenance_json",
    ],
    "slide_detection_tiles": [
        *_TRAVELLING,
        "run_id",
        "slide_id",
        "tile_x",
        "tile_y",
        "min_x",
        "min_y",
        "max_x",
        "max_y",
        "count",
        "data",
        "data_sha256",
    ],
    "slide_measurements": [
        *_TRAVELLING,
        "slide_id",
        "annotation_id",
        "kind",
        "values_json",
        "provenance_json",
    ],
    "feature_sets": [
        *_TRAVELLING,
        "segmentation_id",
        "series_id",
        "lesion_id",
        "modality",
        "params_name",
        "params_sha256",
        "image_sha256",
        "mask_sha256",
        "status",
        "error",
        "features_json",
        "provenance_json",
        "deviation",
        "elapsed_s",
    ],  # fmt: skip
    "pet_metrics": [*_TRAVELLING, "subject_id", "pet_series_id", "metrics_json"],
    # Reading rounds (issue 10) travel so that a round can span centres.
    "reading_rounds": [*_TRAVELLING, "name", "modality", "repeats", "min_delay_days", "blinded", "status"],
    "round_assignments": [
        *_TRAVELLING,
        "round_id",
        "subject_id",
        "reader_id",
        "repeat",
        "case_label",
        "position",
        "status",
        "done_at",
    ],  # fmt: skip
    "round_work": [*_TRAVELLING, "assignment_id", "segmentation_id", "lesion_id"],
    "audit_log": [*HASHED_FIELDS, "prev_hash", "row_hash"],  # the chain travels whole (integrity.py)
}
PRIMARY_KEY = {"sites": "code", "acquisition": "series_id", "masks": "segmentation_id", "audit_log": "seq"}
#: child table -> [(column, parent table)] checked by verify.
REFERENCES: dict[str, list[tuple[str, str]]] = {
    "subject_status": [("subject_id", "subjects")],
    "studies": [("subject_id", "subjects")],
    "series": [("study_id", "studies"), ("subject_id", "subjects")],
    "acquisition": [("series_id", "series")],
    "lesions": [("subject_id", "subjects")],
    "segmentations": [("lesion_id", "lesions"), ("series_id", "series")],
    "masks": [("segmentation_id", "segmentations")],
    "slides": [("subject_id", "subjects")],
    "slide_annotations": [("slide_id", "slides")],
    "slide_detection_runs": [("slide_id", "slides")],
    "slide_detection_tiles": [("run_id", "slide_detection_runs"), ("slide_id", "slides")],
    "slide_measurements": [("slide_id", "slides")],
    "feature_sets": [("segmentation_id", "segmentations")],
    "pet_metrics": [("subject_id", "subjects")],
    "round_assignments": [("round_id", "reading_rounds"), ("subject_id", "subjects")],
    "round_work": [("assignment_id", "round_assignments"), ("segmentation_id", "segmentations")],
}
#: package table -> the centre's table (the main store tables unless named here).
CENTRAL_TABLE = {
    "acquisition": "exchange_acquisition",
    "masks": "exchange_masks",
    "pet_metrics": "exchange_pet_metrics",
    "audit_log": "exchange_audit",
}
#: rows of the site's own making (filtered by `changed after`).
CHANGING = ["subjects", "subject_status", "studies", "series", "lesions", "segmentations", "slides",
            "slide_annotations", "slide_detection_runs", "slide_detection_tiles", "slide_measurements",
            "feature_sets", "reading_rounds", "round_assignments", "round_work"]  # fmt: skip


def pk(table: str) -> str:
    return PRIMARY_KEY.get(table, "id")


# ------------------------------------------------------------------------------ package database
def create_package_db(conn: sqlite3.Connection) -> None:
    for table, columns in PACKAGE_TABLES.items():
        cols = ", ".join(f'"{c}"' + (" BLOB" if c in ("data", "geometry_wkb") else "") for c in columns)
        conn.execute(f'CREATE TABLE "{table}" ({cols}, PRIMARY KEY ("{pk(table)}"))')


def build_package_db(path, tables: dict[str, list[dict]]) -> dict[str, int]:
    """Write a package database file holding `tables`; returns the row count per table."""
    conn = sqlite3.connect(path)
    try:
        # A scratch file until it is read back whole: no journal, no fsync per statement.
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        create_package_db(conn)
        counts = {t: write_package_rows(conn, t, tables.get(t, [])) for t in PACKAGE_TABLES}
        conn.commit()
        conn.execute("VACUUM")  # no free pages: nothing deleted can travel
    finally:
        conn.close()
    return counts


def open_package_db(path) -> sqlite3.Connection:
    """An untrusted package database, read-only, with SQL functions in its schema disabled."""
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro&immutable=1", uri=True)
    conn.execute("PRAGMA trusted_schema=OFF")
    return conn


def package_db_intact(conn: sqlite3.Connection) -> bool:
    return conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"


def mask_geometry(row: dict) -> dict:
    return json.loads(row.get("geometry_json") or "")


def write_package_rows(conn: sqlite3.Connection, table: str, rows: Iterable[dict]) -> int:
    columns = PACKAGE_TABLES[table]
    marks = ", ".join("?" for _ in columns)
    names = ", ".join(f'"{c}"' for c in columns)
    data = [[row.get(c) for c in columns] for row in rows]
    conn.executemany(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', data)
    return len(data)


def package_objects(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(type, name) of every schema object in a package database, internal indexes left out."""
    return [
        (r[0], r[1])
        for r in conn.execute("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_autoindex_%'")
    ]


def package_columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]


def package_rows(conn: sqlite3.Connection, table: str) -> Iterator[dict]:
    cursor = conn.execute(f'SELECT * FROM "{table}" ORDER BY "{pk(table)}"')
    names = [d[0] for d in cursor.description]
    for values in cursor:
        yield dict(zip(names, values, strict=True))


def package_values(conn: sqlite3.Connection, table: str, columns: list[str]) -> Iterator[dict]:
    """Rows of a package table with only `columns` (of PACKAGE_TABLES), in key order: what a check
    needs of a large table without reading its feature values."""
    names = ", ".join(f'"{c}"' for c in columns)
    for values in conn.execute(f'SELECT {names} FROM "{table}" ORDER BY "{pk(table)}"'):
        yield dict(zip(columns, values, strict=True))


def package_column(conn: sqlite3.Connection, table: str, column: str) -> list:
    """One column of a package table, in key order."""
    return [r[0] for r in conn.execute(f'SELECT "{column}" FROM "{table}" ORDER BY "{pk(table)}"')]


def package_count(conn: sqlite3.Connection, table: str) -> int:
    return conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]


def package_ids(conn: sqlite3.Connection, table: str) -> set:
    return {r[0] for r in conn.execute(f'SELECT "{pk(table)}" FROM "{table}"')}


# ------------------------------------------------------------------------------ reading a site
_ABSOLUTE = re.compile(r"^(/|[A-Za-z]:[\\/]|\\\\)")


def _without_paths(value: Any) -> Any:
    """A structure with every absolute local path replaced by its last part (e.g. a parameter file's
    install path in feature provenance): where a file lay on a workstation never travels."""
    if isinstance(value, dict):
        return {k: _without_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_paths(v) for v in value]
    if isinstance(value, str) and _ABSOLUTE.match(value) and "\n" not in value:
        return "[local path] " + re.split(r"[\\/]", value)[-1]
    return value


_NUMBERS_ONLY = {"features_json", "size_json", "spacing_json", "origin_json", "direction_json"}


def _select(store: Store, table: str, where: str, args: list) -> list[dict]:
    columns = [c for c in PACKAGE_TABLES[table] if c in store.db[table].columns_dict]
    names = ", ".join(f'"{c}"' for c in columns)
    rows = list(store.db.query(f'SELECT {names} FROM "{table}" WHERE {where} ORDER BY rowid', args))
    for row in rows:
        for key in [k for k in row if (k.endswith("_json") or k == "source") and k not in _NUMBERS_ONLY]:
            if row[key] and row[key][:1] in "{[":
                try:
                    parsed = json.loads(row[key])
                except ValueError:
                    continue
                cleaned = _without_paths(parsed)
                if cleaned != parsed:
                    row[key] = json.dumps(cleaned, sort_keys=True)
    return rows


def site_rows(store: Store, table: str, site: str, after: str | None) -> list[dict]:
    """Rows of `table` made at `site`, changed after `after` (ISO time) when given; finals only."""
    where, args = "site_code = ?", [site]
    if after:
        where += " AND max(coalesce(updated_at, ''), coalesce(created_at, '')) > ?"
        args.append(after)
    if table == "segmentations":
        where += " AND status = 'final'"
    return _select(store, table, where, args)


def site_readers(store: Store) -> list[dict]:
    return _select(store, "readers", "1", [])


def site_record(store: Store, site: str) -> list[dict]:
    return _select(store, "sites", "code = ?", [site])


def audit_rows_after(store: Store, seq: int) -> list[dict]:
    return _select(store, "audit_log", "seq > ?", [seq])


def mask_paths(store: Store, segmentation_ids: list[str]) -> dict[str, str]:
    """Segmentation id -> its store-relative mask file (read from the site's store, never exported)."""
    wanted = set(segmentation_ids)
    return {
        r["id"]: r["mask_path"]
        for r in store.db.query("SELECT id, mask_path FROM segmentations WHERE status = 'final'")
        if r["id"] in wanted and r["mask_path"]
    }


def marks(store: Store) -> tuple[str, int]:
    """(latest change time over the travelling tables, last audit seq): where the next --since starts."""
    latest = ""
    for table in CHANGING:
        row = next(
            iter(
                store.db.query(
                    f'SELECT max(max(coalesce(updated_at, ""), coalesce(created_at, ""))) AS t FROM "{table}"'
                )
            )
        )
        latest = max(latest, row["t"] or "")
    seq = next(iter(store.db.query("SELECT coalesce(max(seq), 0) AS s FROM audit_log")))["s"]
    return latest, int(seq)


def export_record(store: Store, package_id: str) -> dict | None:
    """What this store recorded when it exported `package_id` (its audit row's detail)."""
    row = next(
        iter(
            store.db.query(
                "SELECT detail_json FROM audit_log WHERE action = 'exchange export' AND row_id = ?",
                [package_id],
            )
        ),
        None,
    )
    return json.loads(row["detail_json"]) if row and row["detail_json"] else None


# ------------------------------------------------------------------------------ the centre
def central_ids(store: Store, table: str) -> set:
    central = CENTRAL_TABLE.get(table, table)
    key = "seq" if table == "audit_log" else pk(table)
    return {r[key] for r in store.db.query(f'SELECT "{key}" FROM "{central}"')}


def foreign_ids(store: Store, table: str, site: str) -> set:
    """Ids the centre holds in `table` from sites other than `site`."""
    return {r["id"] for r in store.db.query(f'SELECT id FROM "{table}" WHERE site_code != ?', [site])}


def _chunks(values: list, size: int = 500) -> Iterator[list]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _found_among(store: Store, query: str, params: list, ids: Iterable) -> set:
    """Those of `ids` (text ids) that `query` (ending in "IN") finds, looked up in chunks of keys."""
    wanted = sorted({i for i in ids if isinstance(i, str)})
    found: set = set()
    for chunk in _chunks(wanted):
        marks_ = ", ".join("?" for _ in chunk)
        found.update(r[0] for r in store.db.execute(f"{query} ({marks_})", [*params, *chunk]))
    return found & set(wanted)


def central_ids_among(store: Store, table: str, keys: Iterable) -> set:
    """Those of `keys` (text ids) that the centre (at a site: its own store) holds in `table`; the same
    answer as `central_ids(store, table) & set(keys)`, without reading every id of the table."""
    central = CENTRAL_TABLE.get(table, table)
    key = "seq" if table == "audit_log" else pk(table)
    return _found_among(store, f'SELECT "{key}" FROM "{central}" WHERE "{key}" IN', [], keys)


def foreign_ids_among(store: Store, table: str, site: str, ids: Iterable) -> set:
    """Those of `ids` (text ids) the centre holds in `table` from sites other than `site`: the same answer
    as `foreign_ids(store, table, site) & set(ids)`, by key look-ups."""
    return _found_among(store, f'SELECT id FROM "{table}" WHERE site_code != ? AND id IN', [site], ids)


def central_has(store: Store, table: str, key: Any) -> bool:
    central = CENTRAL_TABLE.get(table, table)
    return bool(list(store.db.query(f'SELECT 1 FROM "{central}" WHERE "{pk(table)}" = ? LIMIT 1', [key])))


def known_package(store: Store, package_id: str) -> dict | None:
    return next(iter(store.db.query("SELECT * FROM exchange_packages WHERE id = ?", [package_id])), None)


def packages(store: Store) -> list[dict]:
    """The packages merged at the centre; each with its manifest parsed (`manifest`)."""
    out = []
    for row in store.db.query("SELECT * FROM exchange_packages ORDER BY site_code, exported_at, id"):
        row["manifest"] = _parsed(row.pop("manifest_json")) or {}
        out.append(row)
    return out


def record_package(store: Store, row: dict) -> None:
    store.db.execute(
        "INSERT INTO exchange_packages (id, site_code, since_id, exported_at, exported_by, sha256, manifest_json,"
        " received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [row["id"], row["site_code"], row["since_id"], row["exported_at"], row["exported_by"], row["sha256"],
         row["manifest_json"], now()],
    )  # fmt: skip


def versions(store: Store, table: str, row_id: str) -> list[dict]:
    return list(
        store.db.query(
            "SELECT content_sha, package_id, revision, updated_at FROM exchange_versions"
            " WHERE table_name = ? AND row_id = ?",
            [table, str(row_id)],
        )
    )


def add_version(store: Store, table: str, row_id: str, sha: str, package_id: str, row: dict) -> None:
    """Keep this version of a row (a second package with the same content keeps the smaller id: any order
    of merging gives the same table)."""
    store.db.execute(
        "INSERT INTO exchange_versions (table_name, row_id, content_sha, package_id, site_code, revision,"
        " updated_at, row_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (table_name, row_id, content_sha)"
        " DO UPDATE SET package_id = min(package_id, excluded.package_id)",
        [table, str(row_id), sha, package_id, row.get("site_code"), row.get("revision"),
         row.get("updated_at") or row.get("created_at"), json.dumps(_jsonable(row), sort_keys=True)],
    )  # fmt: skip


def versions_of_many(store: Store, table: str, row_ids: list) -> dict[str, list[dict]]:
    """Row id -> its kept versions, for many rows at once (chunks of 500 ids)."""
    out: dict[str, list[dict]] = {}
    ids = [str(i) for i in row_ids]
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks_ = ", ".join("?" for _ in chunk)
        for r in store.db.query(
            "SELECT row_id, content_sha, package_id, revision, updated_at FROM exchange_versions"
            f" WHERE table_name = ? AND row_id IN ({marks_})",
            [table, *chunk],
        ):
            out.setdefault(r.pop("row_id"), []).append(r)
    return out


def add_new_rows(store: Store, table: str, package_id: str, rows: list[tuple[str, str, dict]]) -> None:
    """Rows the centre has never seen: their first version and their row in the centre's table, in bulk."""
    if not rows:
        return
    store.db.conn.executemany(
        "INSERT INTO exchange_versions (table_name, row_id, content_sha, package_id, site_code, revision,"
        " updated_at, row_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [[table, str(row[pk(table)]), sha, package_id, row.get("site_code"), row.get("revision"),
          row.get("updated_at") or row.get("created_at"), text] for sha, text, row in rows],
    )  # fmt: skip
    central = CENTRAL_TABLE.get(table, table)
    columns = list(rows[0][2])
    names = ", ".join(f'"{c}"' for c in columns)
    marks_ = ", ".join("?" for _ in columns)
    store.db.conn.executemany(
        f'INSERT INTO "{central}" ({names}) VALUES ({marks_})',
        [[row[c] for c in columns] for *_x, row in rows],
    )


def add_once_many(store: Store, table: str, rows: list[dict], package_site: str) -> None:
    """Masks, covariates and audit rows never change: insert those not present, in bulk."""
    if not rows:
        return
    central = CENTRAL_TABLE[table]
    if table == "audit_log":
        rows = [{**r, "reader_site": r["site_code"], "site_code": package_site} for r in rows]
    columns = list(rows[0])
    names = ", ".join(f'"{c}"' for c in columns)
    marks_ = ", ".join("?" for _ in columns)
    store.db.conn.executemany(
        f'INSERT OR IGNORE INTO "{central}" ({names}) VALUES ({marks_})',
        [[r[c] for c in columns] for r in rows],
    )


def _jsonable(row: dict) -> dict:
    return {k: (v.hex() if isinstance(v, bytes) else v) for k, v in row.items()}


def version_row(store: Store, table: str, row_id: str, sha: str) -> dict | None:
    found = next(
        iter(
            store.db.query(
                "SELECT row_json FROM exchange_versions WHERE table_name = ? AND row_id = ? AND content_sha = ?",
                [table, str(row_id), sha],
            )
        ),
        None,
    )
    return json.loads(found["row_json"]) if found else None


def add_conflict(
    store: Store, conflict_id: str, table: str, row_id: str, site: str, sha_a: str, sha_b: str
) -> None:
    store.db.execute(
        "INSERT OR IGNORE INTO exchange_conflicts (id, table_name, row_id, site_code, sha_a, sha_b, status)"
        " VALUES (?, ?, ?, ?, ?, ?, 'open')",
        [conflict_id, table, str(row_id), site, sha_a, sha_b],
    )


def conflicts(store: Store, status: str | None = None) -> list[dict]:
    where, args = ("WHERE status = ?", [status]) if status else ("", [])
    return list(
        store.db.query(f"SELECT * FROM exchange_conflicts {where} ORDER BY table_name, row_id, id", args)
    )


def write_central(store: Store, table: str, row: dict, replace: bool) -> None:
    """Insert (or, for a newer version, replace) a merged row in the centre's table."""
    central = CENTRAL_TABLE.get(table, table)
    key = pk(table)
    columns = list(row)
    if replace:
        sets = ", ".join(f'"{c}" = ?' for c in columns if c != key)
        store.db.execute(
            f'UPDATE "{central}" SET {sets} WHERE "{key}" = ?',
            [row[c] for c in columns if c != key] + [row[key]],
        )
        return
    names = ", ".join(f'"{c}"' for c in columns)
    marks_ = ", ".join("?" for _ in columns)
    store.db.execute(f'INSERT INTO "{central}" ({names}) VALUES ({marks_})', [row[c] for c in columns])


def add_once(store: Store, table: str, row: dict) -> bool:
    """Masks, covariates and audit rows never change: insert unless present; True when inserted."""
    central = CENTRAL_TABLE[table]
    if table == "audit_log":
        row = {**row, "reader_site": row["site_code"], "site_code": row["package_site"]}
        row.pop("package_site")
    names = ", ".join(f'"{c}"' for c in row)
    marks_ = ", ".join("?" for _ in row)
    cursor = store.db.execute(
        f'INSERT OR IGNORE INTO "{central}" ({names}) VALUES ({marks_})', list(row.values())
    )
    return cursor.rowcount > 0


class Checkpoints:
    """See `checkpoints_aside`: `start()` after a package's commit, `wait()` before the next one writes."""

    def __init__(self, path: str | None) -> None:
        self.path, self.thread = path, None

    def start(self) -> None:
        if self.path is None:
            return
        self.wait()
        self.thread = threading.Thread(target=self._checkpoint, name="palmares-merge-checkpoint", daemon=True)
        self.thread.start()

    def wait(self) -> None:
        if self.thread is not None:
            self.thread.join()
            self.thread = None

    def _checkpoint(self) -> None:
        aside = sqlite3.connect(self.path)
        try:
            with contextlib.suppress(sqlite3.Error):  # frames left are copied by the next checkpoint
                aside.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            aside.close()


@contextlib.contextmanager
def checkpoints_aside(store: Store) -> Iterator[Checkpoints]:
    """For a merge of many packages: the store's connection stops copying the WAL into the database
    at its commits (SQLite's automatic checkpoint, its fsyncs waited for by the merge); after each
    package's commit, `start()` has a second connection, in a thread, make that PASSIVE checkpoint
    while the next package is verified, and `wait()` lets it finish before that package writes (so
    the WAL starts again from its beginning, no longer than one package, as before). Each package's
    transaction commits exactly as before (as durable, whole or not at all under a kill: a checkpoint
    only copies committed pages); the last checkpoint is made before returning and the automatic
    one restored."""
    conn = store.db.conn
    if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
        yield Checkpoints(None)
        return
    previous = int(conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
    aside = Checkpoints(str(store.root / Store.DB_NAME))
    conn.execute("PRAGMA wal_autocheckpoint=0")
    try:
        yield aside
    finally:
        aside.wait()
        conn.execute(f"PRAGMA wal_autocheckpoint={previous}")
        with contextlib.suppress(sqlite3.Error):
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def ancestors(store: Store, package_id: str) -> set[str]:
    """`package_id` and every package it follows by --since, at the centre."""
    out, current = set(), package_id
    while current and current not in out:
        out.add(current)
        found = known_package(store, current)
        current = found["since_id"] if found else None
    return out


# ------------------------------------------------------------------------------ canonical dump
DUMPED = ["exchange_packages", "exchange_versions", "exchange_conflicts", "exchange_masks",
          "exchange_acquisition", "exchange_pet_metrics", "exchange_audit"]  # fmt: skip
_LOCAL_COLUMNS = {"exchange_packages": {"received_at"}, "exchange_conflicts": {"resolved_at", "resolved_by"}}


def canonical_dump(store: Store) -> dict[str, list[tuple]]:
    """Every merged row of the centre, table by table, ordered by key, without the centre's own
    bookkeeping (when a package was received): two centres that merged the same packages in any
    order dump equal."""
    out: dict[str, list[tuple]] = {}
    for table in PACKAGE_TABLES:
        central = CENTRAL_TABLE.get(table, table)
        if central in DUMPED:
            continue
        key = pk(table)
        merged = ", ".join(f'"{c}"' for c in PACKAGE_TABLES[table] if c in store.db[central].columns_dict)
        out[central] = [
            tuple(r.values())
            for r in store.db.query(
                f'SELECT {merged} FROM "{central}" WHERE CAST("{key}" AS TEXT) IN'
                f' (SELECT row_id FROM exchange_versions WHERE table_name = ?) ORDER BY "{key}"',
                [table],
            )
        ]
    for central in DUMPED:
        columns = [c for c in store.db[central].columns_dict if c not in _LOCAL_COLUMNS.get(central, set())]
        names = ", ".join(f'"{c}"' for c in columns)
        out[central] = [
            tuple(r.values()) for r in store.db.query(f'SELECT {names} FROM "{central}" ORDER BY 1, 2')
        ]
    return out


# ------------------------------------------------------------------------------ the analysis table
def table_rows(store: Store, sql_name: str, args: list | None = None) -> list[dict]:
    """Rows of one of the analysis-table queries; each `X_json` column comes parsed, as `X`."""
    out = []
    for row in store.db.query(_QUERIES[sql_name], args or []):
        for key in [k for k in row if k.endswith("_json")]:
            row[key[:-5]] = _parsed(row.pop(key))
        out.append(row)
    return out


def latest_feature_sets(store: Store) -> Iterator[dict]:
    """The newest successful feature set per segmentation and parameter file, one at a time, in the
    "features" query's order (its last row per segmentation and parameter file wins, as in
    `table_rows(store, "features")`); only those are parsed, each `X_json` column as `X`."""
    held: dict | None = None
    for row in store.db.query(_QUERIES["features"]):
        if held is not None and (held["segmentation_id"], held["params_sha256"]) != (
            row["segmentation_id"],
            row["params_sha256"],
        ):
            yield _with_parsed(held)
        held = row
    if held is not None:
        yield _with_parsed(held)


def _with_parsed(row: dict) -> dict:
    for key in [k for k in row if k.endswith("_json")]:
        row[key[:-5]] = _parsed(row.pop(key))
    return row


def _parsed(text: str | None) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


_QUERIES = {
    "segmented": (
        "SELECT s.code AS subject, s.site_code AS site, l.id AS lesion_id, l.name AS lesion, l.organ AS lesion_site,"
        " l.recist_status AS recist_status, g.id AS segmentation_id, g.version AS segmentation_version,"
        " g.reader_id AS reader_id, r.name AS reader, se.modality AS modality, se.id AS series_id,"
        " g.volume_ml AS volume_ml FROM segmentations g JOIN lesions l ON l.id = g.lesion_id"
        " JOIN subjects s ON s.id = l.subject_id JOIN series se ON se.id = g.series_id"
        " LEFT JOIN readers r ON r.id = g.reader_id WHERE g.status = 'final' AND l.deleted_at IS NULL"
        " AND g.version = (SELECT max(h.version) FROM segmentations h WHERE h.lesion_id = g.lesion_id"
        " AND h.series_id = g.series_id AND h.reader_id = g.reader_id AND h.status = 'final')"
        " ORDER BY s.code, l.name, se.modality, r.name"
    ),
    "slides": (
        "SELECT s.code AS subject, s.site_code AS site, sl.id AS slide_id, sl.author_id AS reader_id,"
        " r.name AS reader, sl.mpp_x AS mpp_x, sl.stain AS stain FROM slides sl JOIN subjects s ON s.id = sl.subject_id"
        " LEFT JOIN readers r ON r.id = sl.author_id ORDER BY s.code, sl.id"
    ),
    "annotations": "SELECT slide_id, classification, measurements_json FROM slide_annotations",
    "features": (
        "SELECT segmentation_id, params_sha256, params_name, features_json, provenance_json, created_at"
        " FROM feature_sets WHERE status = 'ok' ORDER BY segmentation_id, params_sha256, created_at"
    ),
    "series": "SELECT id, modality, manufacturer, spacing_json, suv_json FROM series",
    "acquisition": "SELECT series_id, covariates_json FROM exchange_acquisition",
    "pet_metrics": (
        "SELECT m.subject_id, m.metrics_json, s.code FROM exchange_pet_metrics m JOIN subjects s ON s.id = m.subject_id"
    ),
}

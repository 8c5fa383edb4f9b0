"""The store's schema, created and evolved only through these migrations (sqlite-utils `Migrations`).

Rules for every table whose rows travel to the coordinating centre: a UUID `id`, the `site_code`
it was made at, its `author_id` (a reader), a `revision` counter and timestamps, so that site
packages can be merged later without collisions. Add a new migration for any change; never edit
an applied one.
"""

from __future__ import annotations

import functools

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from palmares_desktop.core.errors import PalmaresError
from palmares_desktop.core.store.integrity import GENESIS, audit_row_hash

migrations = Migrations("palmares")

# Columns every travelling row carries.
TRAVELLING = {
    "id": str,
    "site_code": str,
    "author_id": str,
    "revision": int,
    "created_at": str,
    "updated_at": str,
}


def _create(db: Database, name: str, columns: dict, foreign_keys=(), indexes=()) -> None:
    db[name].create(
        {**TRAVELLING, **columns}, pk="id", not_null={"id", "site_code"}, foreign_keys=list(foreign_keys)
    )
    for index in indexes:
        db[name].create_index(list(index[0]), unique=index[1])


@migrations()
def m001_initial(db: Database) -> None:
    db["sites"].create({"code": str, "name": str, "created_at": str}, pk="code")
    db["readers"].create({"id": str, "name": str, "role": str, "site_code": str, "created_at": str}, pk="id")
    _create(db, "subjects", {"code": str}, indexes=[(("code",), True)])
    _create(
        db,
        "subject_status",
        {"subject_id": str, "modality": str, "status": str},
        foreign_keys=[("subject_id", "subjects", "id")],
        indexes=[(("subject_id", "modality"), True)],
    )
    _create(
        db,
        "studies",
        {"subject_id": str, "study_uid": str, "study_date": str, "description": str},
        foreign_keys=[("subject_id", "subjects", "id")],
        indexes=[(("study_uid",), True)],
    )
    _create(
        db,
        "series",
        {
            "study_id": str,
            "subject_id": str,
            "modality": str,
            "series_uid": str,
            "frame_of_reference_uid": str,
            "description": str,
            "manufacturer": str,
            "size_json": str,
            "spacing_json": str,
            "origin_json": str,
            "direction_json": str,
            "units": str,  # HU for CT; SUVbw for PET when calibrated, else the header's Units
            "pixel_path": str,  # relative to the store folder
            "pixel_sha256": str,
            "suv_json": str,  # SUV provenance (PET only): inputs, branch, per-slice factors
            "source_fingerprint": str,  # salted hash of the original SeriesInstanceUID: re-import check
            "problems_json": str,
        },
        foreign_keys=[("study_id", "studies", "id"), ("subject_id", "subjects", "id")],
        indexes=[(("series_uid",), True), (("source_fingerprint",), True)],
    )
    _create(
        db,
        "lesions",
        {
            "subject_id": str,
            "name": str,
            "organ": str,
            "lesion_type": str,
            "recist_status": str,
            "bone_character": str,
            "notes": str,
        },
        foreign_keys=[("subject_id", "subjects", "id")],
    )
    _create(
        db,
        "segmentations",
        {
            "lesion_id": str,
            "series_id": str,
            "version": int,
            "method": str,
            "parameters_json": str,
            "mask_path": str,
            "mask_sha256": str,
            "label": int,
            "voxel_count": int,
            "volume_ml": float,
            "source": str,
        },
        foreign_keys=[("lesion_id", "lesions", "id"), ("series_id", "series", "id")],
        indexes=[(("lesion_id", "series_id", "version"), True)],
    )
    _create(
        db,
        "slides",
        {
            "subject_id": str,
            "display_name": str,
            "path": str,
            "format": str,
            "width": int,
            "height": int,
            "levels": int,
            "mpp_x": float,
            "mpp_y": float,
            "sha256": str,
            "stain": str,
        },
        foreign_keys=[("subject_id", "subjects", "id")],
    )
    _create(
        db,
        "slide_annotations",
        {
            "slide_id": str,
            "object_type": str,
            "classification": str,
            "color": str,
            "geometry_json": str,
            "measurements_json": str,
            "name": str,
        },
        foreign_keys=[("slide_id", "slides", "id")],
    )
    _create(
        db,
        "feature_sets",
        {
            "segmentation_id": str,
            "series_id": str,
            "lesion_id": str,
            "modality": str,
            "params_name": str,
            "params_sha256": str,
            "image_sha256": str,
            "mask_sha256": str,
            "status": str,  # ok | error
            "error": str,
            "features_json": str,
            "provenance_json": str,
            "deviation": str,
            "elapsed_s": float,
        },
        foreign_keys=[("segmentation_id", "segmentations", "id")],
        indexes=[(("segmentation_id", "params_sha256"), False)],
    )
    db["audit_log"].create(
        {
            "seq": int,
            "at": str,
            "reader_id": str,
            "site_code": str,
            "action": str,
            "table_name": str,
            "row_id": str,
            "before_id": str,
            "after_id": str,
            "detail_json": str,
        },
        pk="seq",
    )
    # The audit log is append-only: the database itself refuses edits and deletions.
    for verb in ("UPDATE", "DELETE"):
        db.execute(
            f"CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log "
            "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
        )
    db["settings"].create({"key": str, "value": str}, pk="key")


@migrations()
def m002_feature_set_once(db: Database) -> None:
    """A successful feature set exists once per (segmentation, parameters, image, mask): two batches
    running at once stored every set twice. Keep the newest of each duplicate group, then let the
    database refuse another (failed attempts stay, as the history of retries)."""
    db.execute(
        "DELETE FROM feature_sets WHERE status = 'ok' AND rowid NOT IN ("
        " SELECT rowid FROM (SELECT rowid, row_number() OVER (PARTITION BY segmentation_id, params_sha256,"
        " image_sha256, mask_sha256 ORDER BY created_at DESC, rowid DESC) AS n FROM feature_sets"
        " WHERE status = 'ok') WHERE n = 1)"
    )
    db.execute(
        "CREATE UNIQUE INDEX feature_sets_ok_once ON feature_sets"
        " (segmentation_id, params_sha256, image_sha256, mask_sha256) WHERE status = 'ok'"
    )


@migrations()
def m003_audit_chain(db: Database) -> None:
    """Tamper-evident history: every audit row carries the hash of the previous one (see integrity.py).
    Existing rows are chained in `seq` order. The database also refuses an INSERT that would replace an
    existing row (INSERT OR REPLACE deletes without firing the delete trigger)."""
    db.execute("DROP TRIGGER audit_log_no_update")
    db["audit_log"].add_column("prev_hash", str)
    db["audit_log"].add_column("row_hash", str)
    prev = GENESIS
    for row in list(db.query("SELECT * FROM audit_log ORDER BY seq")):
        digest = audit_row_hash(row, prev)
        db.execute(
            "UPDATE audit_log SET prev_hash = ?, row_hash = ? WHERE seq = ?", [prev, digest, row["seq"]]
        )
        prev = digest
    db.execute(
        "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
    )
    db.execute(
        "CREATE TRIGGER audit_log_no_replace BEFORE INSERT ON audit_log "
        "WHEN EXISTS (SELECT 1 FROM audit_log WHERE seq = NEW.seq) "
        "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
    )


@migrations()
def m004_segmentation_chains(db: Database) -> None:
    """Each reader has a chain per (lesion, series): one draft (autosave, overwritten in place, never
    exported, no features) and immutable final versions 1, 2, ... Existing rows become final versions of
    their author's chain, keeping their ids and version numbers (feature sets still point at them)."""
    db.execute(
        "ALTER TABLE segmentations ADD COLUMN status TEXT NOT NULL DEFAULT 'final' "
        "CHECK (status IN ('draft', 'final'))"
    )
    # No foreign key, like author_id: a merged package's readers need not be in this store's table.
    db.execute("ALTER TABLE segmentations ADD COLUMN reader_id TEXT")
    db.execute("UPDATE segmentations SET reader_id = author_id")
    db.execute("DROP INDEX IF EXISTS idx_segmentations_lesion_id_series_id_version")
    db.execute(
        "CREATE UNIQUE INDEX segmentations_final_version ON segmentations"
        " (lesion_id, series_id, reader_id, version) WHERE status = 'final'"
    )
    db.execute(
        "CREATE UNIQUE INDEX segmentations_one_draft ON segmentations"
        " (lesion_id, series_id, reader_id) WHERE status = 'draft'"
    )
    # A final version is what features and exports refer to: the database refuses to change or drop it.
    for verb in ("UPDATE", "DELETE"):
        db.execute(
            f"CREATE TRIGGER segmentations_final_no_{verb.lower()} BEFORE {verb} ON segmentations "
            "WHEN OLD.status = 'final' "
            "BEGIN SELECT RAISE(ABORT, 'a final segmentation version cannot be changed'); END"
        )


@migrations()
def m005_slide_paths_stay_on_site(db: Database) -> None:
    """Slides keep a relocatable reference and a blind name in palmares.db; the local path moves to keys.db.

    Before: `path` (absolute outside the store, which can carry a hospital share and, in its file
    name, a patient name) and `display_name` (the file stem). After: the path is in keys.db
    `slide_locations` (written first, so an interrupted migration is simply re-run), the name is the
    subject code plus stain (see slide_refs.py), `size_bytes` joins the fingerprint, and the `path`
    column is dropped so that nothing can write it again. The old names are not audited, on purpose:
    the audit log travels too.
    """
    from pathlib import Path

    from palmares_desktop.core.store.slide_refs import display_name, record_locations, slide_size
    from palmares_desktop.core.store.store import now

    rows = list(
        db.query(
            "SELECT slides.id, slides.path, slides.stain, slides.display_name, slides.subject_id, subjects.code"
            " FROM slides"
            " LEFT JOIN subjects ON subjects.id = slides.subject_id ORDER BY slides.created_at, slides.rowid"
        )
    )
    main_file = next((r[2] for r in db.execute("PRAGMA database_list").fetchall() if r[1] == "main"), "")
    root = Path(main_file).parent if main_file else None
    located = {r["id"]: r["path"] for r in rows if r["path"]}
    if located:
        if root is None:
            raise PalmaresError(
                "Slide paths can only be moved out of a store kept in a folder, not in memory."
            )
        record_locations(root, located, replace=False)  # a location set since (slide add) is newer
    # Overwrite, not just unlink, the old names and paths: a copy of palmares.db must not carry
    # them in its free pages.
    secure = db.execute("PRAGMA secure_delete").fetchone()[0]
    db.execute("PRAGMA secure_delete=ON")
    db["slides"].add_column("size_bytes", int)
    taken: dict[tuple[str, str], int] = {}
    for r in rows:
        key = (r["subject_id"], r["stain"] or "HE")
        taken[key] = taken.get(key, 0) + 1
        name = display_name(r["code"] or "", r["stain"], taken[key])
        if not r["path"] and name == r["display_name"]:
            continue  # registered by `slide add`: already blind, its location already on site
        size = None
        if r["path"] and root is not None:
            size = slide_size(Path(r["path"]) if Path(r["path"]).is_absolute() else root / r["path"])
        db.execute(
            "UPDATE slides SET display_name = ?, size_bytes = ?, revision = revision + 1, updated_at = ?"
            " WHERE id = ?",
            [name, size, now(), r["id"]],
        )
    db.execute("ALTER TABLE slides DROP COLUMN path")
    db.execute(f"PRAGMA secure_delete={int(secure)}")


@migrations()
def m010_reading_rounds(db: Database) -> None:
    """Reader study rounds (issue 10): a round, who reads which subject in which repeat, and which
    final segmentation versions each assignment produced. All three tables travel."""
    _create(
        db,
        "reading_rounds",
        {
            "name": str,
            "modality": str,  # CT | PT | HE
            "repeats": int,  # readings per reader and subject (2+ for intra-reader agreement)
            "min_delay_days": int,  # between a reader's repeats of one subject
            "blinded": int,
            "status": str,  # open | closed
        },
        indexes=[(("name",), True)],
    )
    _create(
        db,
        "round_assignments",
        {
            "round_id": str,
            "subject_id": str,
            "reader_id": str,
            "repeat": int,
            "case_label": str,  # what a blinded reader sees instead of the subject code
            "position": int,  # the reader's (shuffled) order
            "status": str,  # assigned | done
            "done_at": str,
        },
        foreign_keys=[
            ("round_id", "reading_rounds", "id"),
            ("subject_id", "subjects", "id"),
            ("reader_id", "readers", "id"),
        ],
        indexes=[(("round_id", "subject_id", "reader_id", "repeat"), True)],
    )
    _create(
        db,
        "round_work",
        {"assignment_id": str, "segmentation_id": str, "lesion_id": str},
        foreign_keys=[
            ("assignment_id", "round_assignments", "id"),
            ("segmentation_id", "segmentations", "id"),
            ("lesion_id", "lesions", "id"),
        ],
        indexes=[(("assignment_id", "lesion_id"), True), (("segmentation_id",), False)],
    )


@migrations()
def m011_exchange(db: Database) -> None:
    """The coordinating centre's record of merged site packages (issue 8): the packages, every version
    of every merged row (none is discarded), open and resolved conflicts, and what travels beside the
    rows (masks with their geometry, acquisition covariates, PET metrics, each site's audit log)."""
    db.execute(
        "CREATE TABLE exchange_packages (id TEXT PRIMARY KEY, site_code TEXT NOT NULL, since_id TEXT,"
        " exported_at TEXT, exported_by TEXT, sha256 TEXT NOT NULL, manifest_json TEXT, received_at TEXT)"
    )
    db.execute(
        "CREATE TABLE exchange_versions (table_name TEXT NOT NULL, row_id TEXT NOT NULL, content_sha TEXT NOT NULL,"
        " package_id TEXT NOT NULL, site_code TEXT, revision INTEGER, updated_at TEXT, row_json TEXT NOT NULL,"
        " PRIMARY KEY (table_name, row_id, content_sha))"
    )
    db.execute(
        "CREATE TABLE exchange_conflicts (id TEXT PRIMARY KEY, table_name TEXT NOT NULL, row_id TEXT NOT NULL,"
        " site_code TEXT, sha_a TEXT NOT NULL, sha_b TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'open',"
        " resolution_sha TEXT, resolved_by TEXT, resolved_at TEXT)"
    )
    db.execute(
        "CREATE TABLE exchange_masks (segmentation_id TEXT PRIMARY KEY, site_code TEXT NOT NULL,"
        " geometry_json TEXT NOT NULL, dtype TEXT NOT NULL, data BLOB NOT NULL, sha256 TEXT NOT NULL)"
    )
    db.execute(
        "CREATE TABLE exchange_acquisition (series_id TEXT PRIMARY KEY, site_code TEXT NOT NULL,"
        " covariates_json TEXT)"
    )
    db.execute(
        "CREATE TABLE exchange_pet_metrics (id TEXT PRIMARY KEY, site_code TEXT NOT NULL, author_id TEXT,"
        " revision INTEGER, created_at TEXT, updated_at TEXT, subject_id TEXT, pet_series_id TEXT, metrics_json TEXT)"
    )
    db.execute(
        "CREATE TABLE exchange_audit (site_code TEXT NOT NULL, seq INTEGER NOT NULL, at TEXT, reader_id TEXT,"
        " reader_site TEXT, action TEXT, table_name TEXT, row_id TEXT, before_id TEXT, after_id TEXT,"
        " detail_json TEXT, prev_hash TEXT, row_hash TEXT NOT NULL, PRIMARY KEY (site_code, seq, row_hash))"
    )


@migrations()
def m012_slide_objects(db: Database) -> None:
    """Slide objects at QuPath's scale (issue 13). Annotations (few, editable) keep one row each, now with
    their level-0 bounding box so a viewport asks only for what it shows, and their geometry as WKB
    (`geometry_wkb`: exact float64 coordinates, read back 10x faster than GeoJSON text; rows made before
    keep their `geometry_json` too, new rows have only WKB). Detections (many, compact)
    are packed: one `slide_detection_runs` row per detection run (method, parameters, provenance) and
    its cells in `slide_detection_tiles`, one row per 2048-px tile of the slide holding a packed array
    blob (core/slides/detections.py). Measurements of an annotation (areas, stain features, cell
    counts, TILs) are `slide_measurements` rows with their provenance. All travel."""
    import shapely

    for column in ("min_x", "min_y", "max_x", "max_y"):
        db["slide_annotations"].add_column(column, float)
    db["slide_annotations"].add_column("geometry_wkb", bytes)
    for row in list(db.query("SELECT id, geometry_json FROM slide_annotations")):
        try:
            geometry = shapely.from_geojson(row["geometry_json"])
        except (shapely.errors.GEOSException, TypeError, ValueError):
            continue  # unreadable geometry: no box, never in a viewport (the check command reports it)
        db.execute(
            "UPDATE slide_annotations SET min_x = ?, min_y = ?, max_x = ?, max_y = ?, geometry_wkb = ? WHERE id = ?",
            [*geometry.bounds, shapely.to_wkb(geometry), row["id"]],
        )
    db["slide_annotations"].create_index(["slide_id", "object_type"])
    _create(
        db,
        "slide_detection_runs",
        {
            "slide_id": str,
            "annotation_id": str,  # the region it was run in (None: the whole slide, or imported)
            "method": str,  # e.g. nuclei-watershed, qupath-geojson
            "classification": str,
            "count": int,
            "measurement_names_json": str,
            "parameters_json": str,
            "provenance_json": str,
        },
        foreign_keys=[("slide_id", "slides", "id")],
        indexes=[(("slide_id",), False)],
    )
    _create(
        db,
        "slide_detection_tiles",
        {
            "run_id": str,
            "slide_id": str,
            "tile_x": int,
            "tile_y": int,
            "min_x": float,
            "min_y": float,
            "max_x": float,
            "max_y": float,
            "count": int,
            "data": bytes,
            "data_sha256": str,
        },
        foreign_keys=[("run_id", "slide_detection_runs", "id"), ("slide_id", "slides", "id")],
        indexes=[(("slide_id", "run_id"), False)],
    )
    _create(
        db,
        "slide_measurements",
        {
            "slide_id": str,
            "annotation_id": str,
            "kind": str,  # shape | stain | cells | tils | radiomics
            "values_json": str,
            "provenance_json": str,
        },
        foreign_keys=[("slide_id", "slides", "id")],
        indexes=[(("slide_id", "annotation_id"), False)],
    )


@migrations()
def m013_lesion_deleted_at(db: Database) -> None:
    """A deleted lesion keeps its row (its segmentation versions and features refer to it) and is
    marked with the time of deletion, so the reader can undo the delete; lists and exports skip it."""
    db.execute("ALTER TABLE lesions ADD COLUMN deleted_at TEXT")


class SchemaDriftError(PalmaresError):
    """The database was not made by this version's migrations (message is a plain sentence)."""


def check_schema_drift(db: Database) -> None:
    """Refuse a store written by a newer version, or tables made without our migrations."""
    from palmares_desktop import __version__

    known = {m.name for m in migrations._migrations}
    if not db[migrations.migrations_table].exists():
        if db.table_names():
            raise SchemaDriftError(
                "This database has tables but no record of how they were made (no migrations table): it was "
                "not created by PALMARES, or that record was removed. It is not opened, to keep it unchanged."
            )
        return
    unknown = [m.name for m in migrations.applied(db) if m.name not in known]
    if unknown:
        raise SchemaDriftError(
            f"This store was written by a newer version of PALMARES (it has schema change {unknown[0]}, which "
            f"version {__version__} does not know): open it with that version or a later one."
        )


def check_readable_as_is(db: Database) -> None:
    """A store opened read-only cannot be migrated: it must already be at this version's schema."""
    check_schema_drift(db)
    applied = {m.name for m in migrations.applied(db)} if db[migrations.migrations_table].exists() else set()
    pending = [m.name for m in migrations._migrations if m.name not in applied]
    if pending:
        raise SchemaDriftError(
            "This store was written by an older version of PALMARES and needs an update that cannot be "
            "made while it is read-only: open it once from a writable folder."
        )
    check_columns(db)


@functools.cache
def _expected_columns() -> dict[str, frozenset[str]]:
    """Each table's columns as this version's migrations make them (built once, in memory)."""
    fresh = Database(memory=True)
    migrations.apply(fresh)
    return {t.name: frozenset(t.columns_dict) for t in fresh.tables if not t.name.startswith("_")}


def check_columns(db: Database) -> None:
    """Refuse a store whose tables were altered outside PALMARES (a column renamed or dropped), in
    words, before any command meets it as an SQL error halfway through its work."""
    present = set(db.table_names())
    for table, columns in sorted(_expected_columns().items()):
        if table not in present:
            raise SchemaDriftError(
                f"The store's table {table!r} is missing: the database was changed outside PALMARES. "
                "Restore it from a backup; it is not opened, to keep it unchanged."
            )
        missing = sorted(columns - set(db[table].columns_dict))
        if missing:
            raise SchemaDriftError(
                f"The store's table {table!r} has no column {missing[0]!r}: the database was changed "
                "outside PALMARES (a column renamed or removed). Restore it from a backup; it is not "
                "opened, to keep it unchanged."
            )


def migrate(db: Database) -> None:
    """Bring `db` to the current schema and check its tables still have it. Idempotent."""
    check_schema_drift(db)
    migrations.apply(db)
    check_columns(db)

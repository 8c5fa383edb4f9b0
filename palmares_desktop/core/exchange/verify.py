"""`palmares verify`: is a package whole, from whom it says, and free of identifying values?

Integrity: the signature against the registered key of the site, the SHA-256 of the database, the
schema (format, migrations, exact tables and columns), row counts, ids and site codes, references
between rows (inside the package or already at the centre), blob sizes. Privacy: every text cell,
JSON key and blob is scanned for DICOM identifying attributes, person-name values, local paths and
slide file names, and, at the site, the whole database is searched for every key-table value.
Nothing is pickled, evaluated or opened by a path taken from the package.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import re
import sqlite3
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from palmares_desktop.core.errors import PalmaresError
from palmares_desktop.core.exchange import keyring, package
from palmares_desktop.core.exchange.crypto import CENTRE
from palmares_desktop.core.store import Store, exchange_keys, exchange_rows
from palmares_desktop.core.store.store import SUBJECT_CODE

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SQL_FRAGMENT = re.compile(
    r"(;|--|/\*)\s*(drop|delete|insert|update|alter|attach|create|pragma|select)\b|\bunion\s+(all\s+)?select\b",
    re.IGNORECASE,
)
PATH_FRAGMENT = re.compile(
    r"(\.\.[/\\]|(^|[\s\"'=(\[,])(/(home|Users|mnt|media|srv|tmp|data|var|net|root|opt)/"
    r"|[A-Za-z]:\\(?![nrtu\"\\])\w|\\\\\w))"
)
PERSON_NAME = re.compile(r"\b[A-Za-z][A-Za-z'-]+\^[A-Za-z][A-Za-z'-]*\b")
SLIDE_FILE = re.compile(r"(?<=[\w-])\.(svs|ndpi|mrxs|scn|vms|vmu|bif|tiff?|czi|isyntax)\b", re.IGNORECASE)
_NUMBER = r"(?:-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|NaN|-?Infinity|null|true|false)"
_ITEM = r'"[A-Za-z0-9_.\-]{1,200}": ' + _NUMBER
#: a JSON object of plain names and numbers only (feature values, sizes): nothing in it can identify.
NUMBERS_ONLY = re.compile(
    r"\{(?:" + _ITEM + r"(?:, " + _ITEM + r")*)?\}|\[(?:" + _NUMBER + r"(?:, " + _NUMBER + r")*)?\]"
)
# The same language without backtracking (Python 3.11+), a quarter faster over every features_json:
# no part of it can match in two ways (a name ends at its quote, a number at the comma or bracket
# after it, the alternatives of a value start with different characters).
_NUMBER_ONCE = r"(?>-?\d++(?:\.\d++)?+(?:[eE][+-]?\d++)?+|NaN|-?Infinity|null|true|false)"
_ITEM_ONCE = r'"[A-Za-z0-9_.\-]{1,200}+": ' + _NUMBER_ONCE
with contextlib.suppress(re.error):  # Python 3.10 has no possessive quantifiers: the pattern above stays
    NUMBERS_ONLY = re.compile(
        r"\{(?:" + _ITEM_ONCE + r"(?:, " + _ITEM_ONCE + r")*+)?\}"
        r"|\[(?:" + _NUMBER_ONCE + r"(?:, " + _NUMBER_ONCE + r")*+)?\]"
    )
#: DICOM attributes that identify a person or a place (PS3.15 E.1-1), as keys of stored JSON.
PHI_KEYS = {
    k.lower()
    for k in (
        "PatientName", "PatientID", "PatientBirthDate", "PatientBirthTime", "PatientAddress", "OtherPatientIDs",
        "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName", "PatientTelephoneNumbers",
        "ReferringPhysicianName", "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName",
        "AccessionNumber", "OperatorsName", "PerformingPhysicianName", "PhysiciansOfRecord", "StationName",
        "RequestingPhysician", "MedicalRecordLocator", "DeviceSerialNumber", "PatientComments",
        "IssuerOfPatientID", "MilitaryRank", "EthnicGroup", "Occupation",
    )
}  # fmt: skip
MAX_TEXT = 16 << 20
MAX_MASK_BYTES = 64 << 20
MAX_VOXELS = 1 << 30
DTYPES = {"|u1": 1, "|i1": 1, "<u2": 2, "<i2": 2, "<u4": 4, "<i4": 4}
#: tables whose rows are made at the sending site (their site_code must be its own).
OWN_ROWS = [*exchange_rows.CHANGING, "acquisition", "masks", "pet_metrics"]


class VerifyError(PalmaresError):
    """The package was refused (the message names the first reason)."""


@dataclass
class Report:
    path: Path
    problems: list[str] = field(default_factory=list)
    privacy: list[str] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)
    checked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.privacy

    def sentences(self) -> list[str]:
        if self.ok:
            m = self.manifest
            rows = sum(m.get("row_counts", {}).values())
            return [
                f"Package {m.get('package_id')} of site {m.get('site_code')}, exported {m.get('exported_at')}: "
                f"verified ({rows} rows; {', '.join(self.checked)})."
            ]
        return [f"Refused: {p}" for p in self.problems] + [f"Privacy: {p}" for p in self.privacy]

    def reason(self) -> str:
        return (self.problems + self.privacy)[0] if not self.ok else ""


@contextlib.contextmanager
def opened(
    store: Store, path: Path, content: package.Opened | None = None
) -> Iterator[tuple[Report, sqlite3.Connection | None]]:
    """Verify the package at `path` for `store`; yields the report and, when it is whole, a read-only
    connection to its database (in a private temporary folder, removed afterwards). `content`: the
    package already read and decrypted from `path` by this store (then it is not read again; every
    check is made on it all the same)."""
    report = Report(Path(path))
    if content is None:
        try:
            content = package.open_file(store, package.read_file(Path(path)))
        except PalmaresError as exc:
            report.problems.append(str(exc))
            yield report, None
            return
    with tempfile.TemporaryDirectory(prefix="palmares-verify-") as tmp:
        db_path = Path(tmp) / "package.db"
        conn = None
        try:
            _check_envelope(store, content, report)
            if not report.problems:
                db_path.write_bytes(content.database)
                conn = exchange_rows.open_package_db(db_path)
                if not exchange_rows.package_db_intact(conn):
                    report.problems.append("the package database is damaged (SQLite integrity check).")
                else:
                    _check_rows(store, conn, report)
                    if not report.problems:
                        _privacy(store, conn, content, report)
        except sqlite3.DatabaseError as exc:
            report.problems.append(f"the package database cannot be read ({exc}).")
        try:
            yield report, conn if report.ok else None
        finally:
            if conn is not None:
                conn.close()
            _cells_of.cache_clear()
            _rows_of.cache_clear()


def verify(store: Store, path: Path) -> Report:
    with opened(store, path) as (report, _conn):
        return report


def _check_envelope(store: Store, content: package.Opened, report: Report) -> None:
    header, manifest = content.header, content.manifest
    report.manifest = manifest
    site = str(header.get("site_code"))
    me = keyring.identity(store)
    if me == CENTRE:
        key = keyring.trusted_key(store.root, site)
        if key is None:
            report.problems.append(
                f"the package says it comes from site {site}, whose key this centre does not trust."
            )
            return
    elif site == me:
        key = keyring.own_public(store)
    else:
        report.problems.append(f"the package is site {site}'s; a site can verify only its own packages.")
        return
    if not package.signed_by(content, key):
        report.problems.append(
            f"the signature does not match site {site}'s registered key: the package was forged or altered."
        )
        return
    report.checked.append("signature")
    if manifest.get("package_id") != header.get("package_id") or manifest.get("site_code") != site:
        report.problems.append("the manifest names another package or site than the package header.")
    if hashlib.sha256(content.database).hexdigest() != manifest.get("sha256"):
        report.problems.append(
            "the database does not match the SHA-256 in the manifest (altered or truncated)."
        )
        return
    report.checked.append("SHA-256")
    if manifest.get("format") != package.FORMAT:
        report.problems.append(f"the manifest has format {manifest.get('format')!r}, not {package.FORMAT}.")
    known = set(package.schema_version())
    unknown = [m for m in manifest.get("schema") or [] if m not in known]
    if unknown:
        report.problems.append(
            f"the package was written with a newer schema (change {unknown[0]} is unknown here): update PALMARES at the centre."
        )
    if not isinstance(manifest.get("schema"), list) or not manifest.get("schema"):
        report.problems.append("the manifest does not say which schema the package was written with.")


def _check_rows(store: Store, conn: sqlite3.Connection, report: Report) -> None:
    site = report.manifest["site_code"]
    objects = exchange_rows.package_objects(conn)
    expected = set(exchange_rows.PACKAGE_TABLES)
    tables = {name for kind, name in objects if kind == "table"}
    if tables != expected or any(kind != "table" for kind, _ in objects):
        extra = sorted({n for _k, n in objects} - expected) or sorted(expected - tables)
        report.problems.append(
            f"the package database has a foreign schema (unexpected or missing: {', '.join(extra[:3])})."
        )
        return
    for table, columns in exchange_rows.PACKAGE_TABLES.items():
        if exchange_rows.package_columns(conn, table) != columns:
            report.problems.append(f"the package table {table} has other columns than this version's.")
            return
    counts = report.manifest.get("row_counts") or {}
    for table in exchange_rows.PACKAGE_TABLES:
        if exchange_rows.package_count(conn, table) != counts.get(table):
            report.problems.append(
                f"the package table {table} does not hold the number of rows its manifest says."
            )
            return
    report.checked.append("schema and row counts")
    at_centre = keyring.is_centre(store)
    ids: dict[str, set] = {}
    for table in exchange_rows.PACKAGE_TABLES:
        ids[table] = exchange_rows.package_ids(conn, table)
    for table in OWN_ROWS:
        for row in exchange_rows.package_values(conn, table, _checked_columns(table)):
            if row.get("site_code") != site:
                report.problems.append(
                    f"site {site}'s package carries a {table} row of site {row.get('site_code')!r}: a site sends only its own rows."
                )
                return
            key = row.get(exchange_rows.pk(table))
            if not (isinstance(key, str) and UUID.fullmatch(key)):
                report.problems.append(f"a {table} row has a malformed id {str(key)[:40]!r}.")
                return
            if table == "subjects" and not (
                isinstance(row.get("code"), str)
                and SUBJECT_CODE.fullmatch(row["code"])
                and row["code"].startswith(site + "-")
            ):
                report.problems.append(
                    f"subject code {str(row.get('code'))[:40]!r} is not a code of site {site}."
                )
                return
            if table == "segmentations" and row.get("status") != "final":
                report.problems.append("the package carries a draft segmentation: drafts never leave a site.")
                return
            if table == "masks" and not _mask_ok(row, report):
                return
            if table == "slide_detection_tiles" and not _tile_ok(row, report):
                return
    if [r["code"] for r in exchange_rows.package_rows(conn, "sites")] not in ([], [site]):
        report.problems.append(f"site {site}'s package describes another site.")
        return
    if at_centre:
        for table in OWN_ROWS:
            if table in ("acquisition", "masks", "pet_metrics"):
                continue
            foreign = exchange_rows.foreign_ids_among(store, table, site, ids[table])
            if foreign:
                report.problems.append(
                    f"site {site}'s package claims a {table} row that the centre holds from another site ({sorted(foreign)[0]})."
                )
                return
    for child, refs in exchange_rows.REFERENCES.items():
        for column, parent in refs:
            outside = [v for v in exchange_rows.package_column(conn, child, column) if v not in ids[parent]]
            if not outside:
                continue
            at_hand = exchange_rows.central_ids_among(store, parent, outside)  # at a site: its own store
            for value in outside:
                if not (isinstance(value, str) and value in at_hand):
                    report.problems.append(
                        f"a {child} row refers to a {parent} row ({str(value)[:40]}) that is neither in the "
                        "package nor at the centre."
                    )
                    return
    report.checked.append("references")
    _check_text(conn, report)


def _checked_columns(table: str) -> list[str]:
    """The columns the row checks read: masks and tiles whole (their blobs), the others only their
    site, key and the one column checked (a feature set's values are not read here)."""
    if table in ("masks", "slide_detection_tiles"):
        return exchange_rows.PACKAGE_TABLES[table]
    extra = {"subjects": ["code"], "segmentations": ["status"]}.get(table, [])
    return list(dict.fromkeys(["site_code", exchange_rows.pk(table), *extra]))


def _tile_ok(row: dict, report: Report) -> bool:
    data = row.get("data")
    if not isinstance(data, bytes) or len(data) > MAX_MASK_BYTES:
        report.problems.append(f"a detection tile blob is oversized or not binary (run {row.get('run_id')}).")
        return False
    if hashlib.sha256(data).hexdigest() != row.get("data_sha256"):
        report.problems.append(f"a detection tile does not match its hash (run {row.get('run_id')}).")
        return False
    return True


def _mask_ok(row: dict, report: Report) -> bool:
    data = row.get("data")
    try:
        geometry = exchange_rows.mask_geometry(row)
        shape = [int(x) for x in geometry["shape_zyx"]]
        itemsize = DTYPES[row.get("dtype")]
    except (ValueError, KeyError, TypeError):
        report.problems.append("a mask has no readable geometry or an unknown data type.")
        return False
    voxels = 1
    for n in shape:
        voxels *= max(n, 0)
    if not isinstance(data, bytes) or len(data) > MAX_MASK_BYTES or voxels > MAX_VOXELS:
        report.problems.append(
            f"a mask blob is oversized or not binary (segmentation {row.get('segmentation_id')})."
        )
        return False
    expected = voxels * itemsize
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(data, expected + 1)
    except zlib.error:
        raw = b""
    if (
        len(raw) != expected
        or inflater.unconsumed_tail
        or hashlib.sha256(raw).hexdigest() != row.get("sha256")
    ):
        report.problems.append(
            f"a mask does not match its geometry or hash (segmentation {row.get('segmentation_id')})."
        )
        return False
    return True


@functools.lru_cache(maxsize=2)
def _rows_of(conn: sqlite3.Connection) -> dict[str, list[dict]]:
    """Every row of one package connection, table by table in key order, read once for the scans
    and for the merge (see `package_rows`)."""
    return {table: list(exchange_rows.package_rows(conn, table)) for table in exchange_rows.PACKAGE_TABLES}


def package_rows(conn: sqlite3.Connection, table: str) -> list[dict]:
    """The rows of `table` of a package that `opened` verified (the ones its scans read): the same
    rows as `exchange_rows.package_rows`, not read a second time."""
    return _rows_of(conn)[table]


@functools.lru_cache(maxsize=2)
def _cells_of(conn: sqlite3.Connection) -> tuple[tuple[str, str, str], ...]:
    """The text cells of one package connection, read once for both scans."""
    return tuple(_text_cells(conn))


def _text_cells(conn: sqlite3.Connection) -> Iterator[tuple[str, str, str]]:
    """Every text value worth scanning: JSON of plain names and numbers only is passed over."""
    for table in exchange_rows.PACKAGE_TABLES:
        for row in package_rows(conn, table):
            for column, value in row.items():
                if isinstance(value, str) and (
                    len(value) > MAX_TEXT or not (value[:1] in "{[" and NUMBERS_ONLY.fullmatch(value))
                ):
                    yield table, column, value


def _sql_or_path(value: str) -> bool:
    """SQL_FRAGMENT or PATH_FRAGMENT found in `value`. Each search runs only where the characters it
    cannot match without are present (most cells are ids, codes and times): the same answer, sooner."""
    if (
        ";" in value or "--" in value or "/*" in value or not value.isascii() or "union" in value.lower()
    ) and SQL_FRAGMENT.search(value):
        return True
    return ("/" in value or "\\" in value) and PATH_FRAGMENT.search(value) is not None


def _check_text(conn: sqlite3.Connection, report: Report) -> None:
    for table, column, value in _cells_of(conn):
        if len(value) > MAX_TEXT:
            report.problems.append(f"an oversized text value in {table}.{column} ({len(value)} characters).")
            return
        if _sql_or_path(value):
            report.problems.append(f"{table}.{column} carries an SQL or path fragment ({value[:40]!r}).")
            return


def _json_keys(value: object) -> Iterator[tuple[str, object]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k), v
            yield from _json_keys(v)
    elif isinstance(value, list):
        for v in value:
            yield from _json_keys(v)


def _privacy(store: Store, conn: sqlite3.Connection, content: package.Opened, report: Report) -> None:
    for table, column, value in _cells_of(conn):
        where = f"{table}.{column}"
        if "^" in value and PERSON_NAME.search(value):
            report.privacy.append(f"{where} holds a value shaped like a DICOM person name ({value[:30]!r}).")
        if "." in value and SLIDE_FILE.search(value):
            report.privacy.append(f"{where} holds a file name ({SLIDE_FILE.search(value).group(0)!r}).")
        if value[:1] in "{[":
            try:
                parsed = json.loads(value)
            except ValueError:
                continue
            for key, inner in _json_keys(parsed):
                if key.replace("_", "").lower() in PHI_KEYS and inner not in (None, "", [], {}):
                    report.privacy.append(f"{where} holds the identifying DICOM attribute {key}.")
        if len(report.privacy) > 20:
            break
    if not keyring.is_centre(store):
        values = exchange_keys.key_table_values(store.root)
        blobs = [content.database, content.manifest_bytes]
        blobs += [zlib.decompress(r["data"]) for r in exchange_rows.package_rows(conn, "masks")]
        for value in sorted(values):
            needle = value.encode("utf-8")
            if any(needle in blob for blob in blobs):
                report.privacy.append(
                    f"a value of the site's key table appears in the package ({len(value)} characters)."
                )
        report.checked.append(f"key table ({len(values)} values)")
    report.checked.append("privacy scan")

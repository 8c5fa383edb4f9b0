"""The audit log is hash-chained: every way of rewriting history found by the adversarial run is
detected, and the first broken row is named."""

from __future__ import annotations

import sqlite3
import tarfile
from pathlib import Path

import pytest
from sqlite_utils import Database

from palmares_desktop.core.store import Store
from palmares_desktop.core.store.integrity import GENESIS
from palmares_desktop.core.store.schema import migrate, migrations

FIXTURE = Path(__file__).parents[1] / "fixtures" / "store_v1" / "store_v1_db_masks.tar.xz"


def _tamper(store: Store, *statements: str) -> None:
    """What a user with an SQLite browser does: a plain connection (no recursive triggers)."""
    conn = sqlite3.connect(store.root / Store.DB_NAME, isolation_level=None)
    try:
        for sql in statements:
            conn.execute(sql)
    finally:
        conn.close()


def _history(store: Store, n: int = 5) -> None:
    for i in range(1, n + 1):
        store.ensure_subject(f"IT03-{i:04d}")
        store.set_setting(f"note {i}", f"MARKER-{i:04d}-value")


def test_every_row_is_chained_and_readers_and_sites_are_audited(store):
    _history(store)
    rows = store.rows("audit_log", order_by="seq")
    assert rows[0]["prev_hash"] == GENESIS
    assert all(b["prev_hash"] == a["row_hash"] for a, b in zip(rows, rows[1:], strict=False))
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    created = {(r["table_name"], r["row_id"]) for r in rows if r["action"] == "create"}
    assert ("readers", store.reader.id) in created and ("sites", "IT03") in created
    report = store.check_audit_chain()
    assert report.ok and report.rows == len(rows) and report.first_broken_row is None


def test_a_second_reader_is_recorded_by_the_current_one(store):
    other = store.add_reader("Dr Bianchi", "radiologist", "IT05")
    audit = {r["table_name"]: r for r in store.rows("audit_log", "row_id in (?, ?)", [other.id, "IT05"])}
    assert audit["readers"]["reader_id"] == store.reader.id and audit["sites"]["reader_id"] == store.reader.id


def test_insert_or_replace_is_refused_and_detected_when_the_trigger_is_dropped(store):
    _history(store)
    forge = "INSERT OR REPLACE INTO audit_log (seq, at, action, prev_hash, row_hash) SELECT 1, at, 'forged', prev_hash, row_hash FROM audit_log WHERE seq = 1"  # noqa: E501
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        _tamper(store, forge)
    assert store.check_audit_chain().ok
    _tamper(store, "DROP TRIGGER audit_log_no_replace", forge)
    report = store.check_audit_chain()
    assert not report.ok and report.first_broken_row == 1 and "row 1 was edited" in report.reason


def test_update_after_drop_trigger_is_detected_and_later_writes_do_not_hide_it(store):
    _history(store)
    _tamper(
        store,
        "DROP TRIGGER audit_log_no_update",
        "UPDATE audit_log SET detail_json = replace(detail_json, 'MARKER-0002', 'MARKER-0009')",
    )
    edited = store.rows("audit_log", "detail_json like '%MARKER-0009%'")[0]["seq"]
    report = store.check_audit_chain()
    assert report.first_broken_row == edited and "edited" in report.reason
    _history(store, 3)  # the application goes on writing: the chain extends, the break stays
    assert store.check_audit_chain().first_broken_row == edited


def test_delete_after_drop_trigger_names_the_deleted_row(store):
    _history(store)
    _tamper(store, "DROP TRIGGER audit_log_no_delete", "DELETE FROM audit_log WHERE seq = 4")
    report = store.check_audit_chain()
    assert report.first_broken_row == 4 and "row 4 was deleted" in report.reason
    _tamper(store, "DELETE FROM audit_log WHERE seq <= 2")
    assert store.check_audit_chain().first_broken_row == 1


def test_rewritten_hashes_break_the_link_to_the_next_row(store):
    """An editor that recomputes the edited row's own hash still breaks its successor's link."""
    from palmares_desktop.core.store.integrity import audit_row_hash

    _history(store)
    store.db.execute("DROP TRIGGER audit_log_no_update")
    row = store.rows("audit_log", "seq = 3")[0]
    row["action"] = "nothing happened"
    store.db.execute(
        "UPDATE audit_log SET action = ?, row_hash = ? WHERE seq = 3",
        [row["action"], audit_row_hash(row, row["prev_hash"])],
    )
    report = store.check_audit_chain()
    assert report.first_broken_row == 4 and "does not follow" in report.reason


def test_a_byte_edited_in_the_database_file_is_detected(tmp_path):
    root = tmp_path / "s"
    with Store.open(root) as store:
        store.use_system_reader("test-suite", site_code="IT03")
        _history(store)
        store.audit("export", {"package": "EDITME-0003"})  # only in the audit log, nowhere else
        _history(store, 2)
        target = store.rows("audit_log", "detail_json like '%EDITME-0003%'")[0]["seq"]
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray((root / "palmares.db").read_bytes())
    at = data.find(b"EDITME-0003")
    assert at > 0 and data.find(b"EDITME-0003", at + 1) == -1
    data[at + 7] = ord("8")  # EDITME-0003 -> EDITME-8003: same length, the page stays valid
    (root / "palmares.db").write_bytes(bytes(data))
    with Store.open(root) as store:
        integrity = [r[0] for r in store.db.execute("PRAGMA integrity_check").fetchall()]
        report = store.check_audit_chain()
    assert integrity == ["ok"]
    assert report.first_broken_row == target and "edited" in report.reason


def test_m003_chains_the_history_of_an_existing_store(tmp_path):
    db = Database(tmp_path / "old.db")
    migrations.apply(db, stop_before="m003_audit_chain")
    for i in range(4):
        db["audit_log"].insert({"at": f"2026-01-0{i + 1}", "action": "create", "row_id": str(i)})
    migrate(db)
    rows = list(db.query("SELECT * FROM audit_log ORDER BY seq"))
    assert all(r["row_hash"] for r in rows) and rows[0]["prev_hash"] == GENESIS
    store = Store(tmp_path, db)
    assert store.check_audit_chain().ok


def test_the_v1_fixture_store_opens_with_an_intact_chain(tmp_path):
    with tarfile.open(FIXTURE) as archive:
        archive.extractall(tmp_path, filter="data")
    root = next(p.parent for p in tmp_path.rglob("palmares.db"))
    with Store.open(root) as store:
        report = store.check_audit_chain()
        n = store.db["audit_log"].count
    assert report.ok and report.rows == n > 0

import sqlite3

import pytest
from sqlite_utils import Database

from palmares_desktop.core.store import Store, StoreError
from palmares_desktop.core.store.schema import migrate, migrations


def test_migrations_run_from_empty_and_are_idempotent():
    db = Database(memory=True)
    migrate(db)
    tables = set(db.table_names())
    assert {
        "sites",
        "subjects",
        "studies",
        "series",
        "readers",
        "lesions",
        "segmentations",
        "slides",
        "slide_annotations",
        "feature_sets",
        "audit_log",
    } <= tables
    schema_before = db.schema
    migrate(db)
    assert db.schema == schema_before
    assert [m.name for m in migrations.applied(db)] == [m.name for m in migrations._migrations]


def test_writes_record_reader_uuid_site_and_revision(store):
    subject = store.ensure_subject("IT03-0017")
    assert len(subject.id) == 36 and subject.site_code == "IT03" and subject.revision == 1
    assert subject.author_id == store.reader.id
    store.set_status(subject.id, "CT", "in progress")
    store.set_status(subject.id, "CT", "done")
    row = store.rows("subject_status")[0]
    assert row["revision"] == 2 and row["status"] == "done"
    actions = [(a["action"], a["table_name"]) for a in store.rows("audit_log", order_by="seq")]
    assert ("update", "subject_status") in actions
    assert all(a["reader_id"] == store.reader.id for a in store.rows("audit_log"))


def test_audit_log_is_append_only(store):
    store.ensure_subject("IT03-0001")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store.db.execute("delete from audit_log")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store.db.execute("update audit_log set action = 'x'")


def test_codes_follow_the_pseudonym_form(store):
    with pytest.raises(StoreError, match="e.g. IT03-0017"):
        store.ensure_subject("Mario Rossi")
    with pytest.raises(StoreError, match="must start with IT05"):
        store.ensure_subject("IT03-0001", site_code="IT05")
    store.ensure_subject("IT03-0009")
    assert store.next_subject_code("IT03") == "IT03-0010"


def test_writes_need_a_reader(tmp_path):
    s = Store.open(tmp_path / "s")
    with pytest.raises(StoreError, match="who made it"):
        s.ensure_subject("IT03-0001")
    assert s.rows("subjects") == []


def test_failed_write_leaves_store_unchanged(store):
    store.ensure_subject("IT03-0001")
    n_audit = store.db["audit_log"].count
    with pytest.raises(RuntimeError, match="interrupted"), store.transaction():
        store.ensure_subject("IT03-0002")
        raise RuntimeError("interrupted")
    assert [s["code"] for s in store.rows("subjects")] == ["IT03-0001"]
    assert store.db["audit_log"].count == n_audit


def test_worklist_reports_modalities_and_status(store):
    sub = store.ensure_subject("IT03-0002")
    store.insert("slides", {"subject_id": sub.id, "display_name": "IT03-0002 HE"})
    store.set_status(sub.id, "HE", "in progress")
    (row,) = store.worklist()
    assert row["modalities"] == ["HE"] and row["status"] == {"HE": "in progress"}

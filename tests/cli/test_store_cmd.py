"""`palmares store check`: what a coordinator runs to know a store is whole, and read-only stores."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from palmares_desktop.core.store import Store, StoreError

CLI = "from palmares_desktop.cli.main import cli; cli()"


def _check(store: Path, *extra: str) -> tuple[int, dict]:
    done = subprocess.run(
        [sys.executable, "-c", CLI, "store", "check", "--store", str(store), "--json", *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert not done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)


def _history(store: Store) -> None:
    for i in range(1, 6):
        store.ensure_subject(f"IT03-{i:04d}")
        store.set_setting(f"note {i}", f"MARKER-{i:04d}-value")


def test_a_consistent_store_is_reported_ok_in_words_and_json(store):
    _history(store)
    rows = len(store.rows("audit_log"))
    store.close()
    code, report = _check(store.root)
    assert code == 0 and report["ok"] is True and report["integrity"] == "ok"
    assert report["audit_chain"] == {"ok": True, "first_broken_row": None, "reason": None, "rows": rows}
    assert report["orphans"] == report["staging"] == report["missing_files"] == []
    words = subprocess.run(
        [sys.executable, "-c", CLI, "store", "check", "--store", str(store.root)],
        capture_output=True,
        text=True,
    )
    assert "The store is consistent." in words.stdout and "hash chain verified" in words.stdout


def test_leftover_files_are_reported_then_removed_by_repair(store):
    _history(store)
    store.close()
    (store.root / "volumes" / "0c5e-no-row.nrrd").write_bytes(b"NRRD0004\n")
    (store.root / "dicom" / ".incoming-p999999-dead").mkdir(parents=True)
    (store.root / "dicom" / ".incoming-p999999-dead" / "0000.dcm").write_bytes(b"x")
    code, report = _check(store.root)
    assert code == 1 and report["ok"] is False
    assert report["orphans"] == ["volumes/0c5e-no-row.nrrd"]
    assert report["staging"] == ["dicom/.incoming-p999999-dead"]
    assert (store.root / "volumes" / "0c5e-no-row.nrrd").exists(), "check without --repair changes nothing"
    code, report = _check(store.root, "--repair")
    assert code == 0 and report["ok"] is True
    assert sorted(report["removed"]) == ["dicom/.incoming-p999999-dead", "volumes/0c5e-no-row.nrrd"]
    assert not (store.root / "volumes" / "0c5e-no-row.nrrd").exists()


def test_audit_tampering_and_a_byte_edited_in_the_file_are_named_by_store_check(store):
    _history(store)
    store.close()
    conn = sqlite3.connect(store.root / Store.DB_NAME, isolation_level=None)
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("UPDATE audit_log SET action = 'forged' WHERE seq = 7")
    conn.close()
    code, report = _check(store.root)
    assert code == 1 and report["audit_chain"]["first_broken_row"] == 7
    assert "row 7 was edited" in report["audit_chain"]["reason"]


def test_a_byte_edited_with_a_hex_editor_is_named(store):
    _history(store)
    store.close()
    db = store.root / Store.DB_NAME
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA journal_mode=DELETE")  # the bytes are in the main file, not the WAL
    conn.close()
    data = bytearray(db.read_bytes())
    at = data.find(b"MARKER-0003")
    assert at > 0
    data[at + 7 : at + 11] = b"9999"  # same length: the page stays valid SQLite
    db.write_bytes(bytes(data))
    code, report = _check(store.root)
    assert code == 1 and report["audit_chain"]["ok"] is False
    broken = report["audit_chain"]["first_broken_row"]
    with Store.open(store.root, read_only=True) as s:
        edited = s.rows("audit_log", "detail_json like '%MARKER-9999%'")
    assert edited and edited[0]["seq"] == broken


def test_a_store_opened_read_only_refuses_writes_in_words(store):
    _history(store)
    store.close()
    with Store.open(store.root, read_only=True) as ro:
        assert len(ro.rows("subjects")) == 5
        with pytest.raises(StoreError, match="opened read-only"):
            ro.set_setting("x", "y")


@pytest.fixture
def read_only_mount(store, tmp_path):
    """The store seen through a read-only bind mount (as on a CD or a write-protected share)."""
    _history(store)
    store.close()
    mount = tmp_path / "ro"
    mount.mkdir()
    done = subprocess.run(["mount", "--bind", "-o", "ro", str(store.root), str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("this machine does not allow bind mounts (needs root); read-only media not simulated")
    subprocess.run(["mount", "-o", "remount,ro,bind", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_read_only_media_can_be_viewed_and_writes_are_refused_in_words(read_only_mount):
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", CLI, *args], capture_output=True, text=True, timeout=120)

    check = run("store", "check", "--store", str(read_only_mount))
    assert check.returncode == 0 and "The store is consistent." in check.stdout
    locks = run("radiomics", "lock", "--store", str(read_only_mount))
    assert locks.returncode == 0 and "CT: not locked" in locks.stdout
    write = run("radiomics", "lock", "--store", str(read_only_mount), "--modality", "ct", "--preset", "ct")
    assert write.returncode == 1 and "is read-only" in write.stderr and "Traceback" not in write.stderr

"""m005 on a store written by the first wave (tests/fixtures/store_v1): the slide's absolute path and
file-stem name leave palmares.db for keys.db, every other row is untouched, and the moved file is
re-linked by its fingerprint (the demo slide is re-drawn byte for byte from its seed)."""

from __future__ import annotations

import sqlite3
import stat
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlite_utils import Database

from palmares_desktop.cli.slide_cmd import slide
from palmares_desktop.core.errors import PalmaresError
from palmares_desktop.core.slides.registry import slide_path
from palmares_desktop.core.store import Store, StoreError
from palmares_desktop.core.store.records import as_slide
from palmares_desktop.core.store.schema import migrate, migrations

FIXTURE = Path(__file__).parents[1] / "fixtures" / "store_v1" / "store_v1_db_masks.tar.xz"
V1_SLIDE = "/tmp/h7b_fx/src/slides/DEMO-SUBJECT1-HE.svs"  # where the fixture's slide was registered
V1_FINGERPRINT = "ad0c030a734721d733fd5b83dd99d637f65f1bf64d0d54dba555611ac2ff78cf"
COUNTED = ("subjects", "studies", "series", "lesions", "segmentations", "slides", "audit_log")


def _v1_store(tmp_path: Path) -> Path:
    root = tmp_path / "store_v1"
    with tarfile.open(FIXTURE) as archive:
        archive.extractall(root, filter="data")
    return root


def _counts(db_path: Path) -> dict[str, int]:
    conn = sqlite3.connect(db_path)
    try:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in COUNTED}
    finally:
        conn.close()


def test_m005_moves_the_v1_slide_path_to_keys_db_and_keeps_every_row(tmp_path):
    root = _v1_store(tmp_path)
    before = _counts(root / "palmares.db")
    assert before == {
        "subjects": 1,
        "studies": 1,
        "series": 2,
        "lesions": 4,
        "segmentations": 8,
        "slides": 1,
        "audit_log": before["audit_log"],
    }
    old = (
        sqlite3.connect(root / "palmares.db")
        .execute("SELECT path, display_name, revision FROM slides")
        .fetchone()
    )
    assert old == (V1_SLIDE, "IT99-0001 H&E", 1)

    with Store.open(root) as store:
        assert "m005_slide_paths_stay_on_site" in {m.name for m in migrations.applied(store.db)}
        (row,) = store.rows("slides")
        assert "path" not in row and "path" not in store.db["slides"].columns_dict
        assert (row["display_name"], row["stain"], row["sha256"], row["size_bytes"], row["revision"]) == (
            "IT99-0001 H&E",
            "H&E",
            V1_FINGERPRINT,
            None,  # the file is not at its old place: its size is learnt when it is located again
            2,
        )
        assert (row["width"], row["height"], row["levels"], row["mpp_x"]) == (22528, 20480, 5, 0.5)
        assert store.check_audit_chain().ok  # the audit log is not rewritten
        with pytest.raises(StoreError, match="is no longer at /tmp/h7b_fx/src/slides/DEMO-SUBJECT1-HE.svs"):
            slide_path(store, as_slide(row))
        masks = [store.path(s["mask_path"]) for s in store.rows("segmentations")]
        assert len(masks) == 8 and all(p.is_file() for p in masks)
    assert _counts(root / "palmares.db") == before
    dump = "\n".join(sqlite3.connect(root / "palmares.db").iterdump())
    # (The demo's own `demo.built` setting still names its source folder /tmp/h7b_fx/src: not a slide.)
    assert "DEMO-SUBJECT1" not in dump and V1_SLIDE not in dump
    keys = sqlite3.connect(root / "keys.db")
    assert keys.execute("SELECT slide_id, path FROM slide_locations").fetchall() == [(row["id"], V1_SLIDE)]
    assert stat.S_IMODE((root / "keys.db").stat().st_mode) == 0o600
    with Store.open(root) as store:  # idempotent: a second open changes nothing
        assert store.rows("slides")[0]["revision"] == 2


@pytest.mark.slow
def test_the_moved_v1_slide_is_located_again_by_its_fingerprint(tmp_path):
    from palmares_desktop.core.demo.slide_writer import write_slide

    root = _v1_store(tmp_path)
    moved = tmp_path / "new-share" / "slide.svs"
    write_slide(moved, 1, seed=2025)  # the demo draws subject 1's slide again, byte for byte (~12 s)
    with Store.open(root) as store:
        (row,) = store.rows("slides")
    result = CliRunner().invoke(
        slide, ["locate", "--store", str(root), "--slide", row["id"], "--path", str(moved)]
    )
    assert result.exit_code == 0, result.output
    with Store.open(root) as store:
        (row,) = store.rows("slides")
        assert slide_path(store, as_slide(row)) == moved and row["size_bytes"] == moved.stat().st_size
        (event,) = store.rows("audit_log", "action = 'locate'")
        assert event["row_id"] == row["id"] and str(moved) not in event["detail_json"]
        assert store.check_audit_chain().ok


def test_m005_numbers_two_slides_of_one_stain_and_refuses_an_in_memory_store_with_paths():
    db = Database(memory=True)
    migrations.apply(db, stop_before="m005_slide_paths_stay_on_site")
    db["subjects"].insert({"id": "s1", "site_code": "IT03", "code": "IT03-0007"})
    db["slides"].insert(
        {"id": "a", "site_code": "IT03", "subject_id": "s1", "path": "/x/Rossi.svs", "stain": "HE"}
    )
    with pytest.raises(PalmaresError, match="not in memory"):
        migrate(db)
    assert "path" in db["slides"].columns_dict  # rolled back, still pending
    db["slides"].update("a", {"path": ""})
    db["slides"].insert({"id": "b", "site_code": "IT03", "subject_id": "s1", "path": "", "stain": "HE"})
    migrate(db)
    names = [r["display_name"] for r in db.query("SELECT display_name FROM slides ORDER BY id")]
    assert names == ["IT03-0007 HE", "IT03-0007 HE 2"]


def test_m005_keeps_a_slide_inside_the_store_relative_and_learns_its_size(tmp_path, shared_data):
    import shutil

    root = tmp_path / "store"
    root.mkdir()
    db = Database(root / "palmares.db")
    migrations.apply(db, stop_before="m005_slide_paths_stay_on_site")
    (root / "slides").mkdir()
    shutil.copy(shared_data / "wsi_svs" / "CMU-1-Small-Region.svs", root / "slides" / "Bianchi Anna.svs")
    db["subjects"].insert({"id": "s1", "site_code": "IT03", "code": "IT03-0002"})
    db["slides"].insert(
        {
            "id": "a",
            "site_code": "IT03",
            "subject_id": "s1",
            "display_name": "Bianchi Anna",
            "path": "slides/Bianchi Anna.svs",
            "stain": "H&E",
            "revision": 1,
        }
    )
    db.close()
    with Store.open(root) as store:
        (row,) = store.rows("slides")
        assert (row["display_name"], row["size_bytes"], row["revision"]) == ("IT03-0002 H&E", 1_938_955, 2)
        assert slide_path(store, as_slide(row)) == root / "slides" / "Bianchi Anna.svs"
    keys = sqlite3.connect(root / "keys.db")
    assert keys.execute("SELECT path FROM slide_locations").fetchall() == [("slides/Bianchi Anna.svs",)]
    assert "Bianchi" not in "\n".join(sqlite3.connect(root / "palmares.db").iterdump())
    # Not even in the file's free pages or its write-ahead log (the migration deletes securely).
    assert all(b"Bianchi" not in p.read_bytes() for p in root.glob("palmares.db*"))

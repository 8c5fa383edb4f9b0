"""m004 on a store written by the first wave (tests/fixtures/store_v1), and the store's own site."""

from __future__ import annotations

import json
import sqlite3
import tarfile
from pathlib import Path

import pytest

from palmares_desktop.core.radiomics.params import load_params
from palmares_desktop.core.radiomics.store_features import plan_pending
from palmares_desktop.core.store import Store, StoreError, file_sha256
from palmares_desktop.core.store import segmentations as chains

FIXTURE = Path(__file__).parents[1] / "fixtures" / "store_v1" / "store_v1_db_masks.tar.xz"


def _v1_store(tmp_path) -> Path:
    with tarfile.open(FIXTURE) as archive:
        archive.extractall(tmp_path, filter="data")
    return next(p.parent for p in tmp_path.rglob("palmares.db"))


def _raw(root: Path, sql: str, args=()) -> list[dict]:
    conn = sqlite3.connect(root / Store.DB_NAME)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, args)]
    finally:
        conn.close()


def _add_v1_feature_sets(root: Path) -> None:
    """Feature sets as the first wave stored them: one per segmentation with the study preset, current
    (same parameter, image and mask hashes), written with that wave's schema."""
    sha = {"CT": load_params("ct").sha256, "PT": load_params("pet").sha256}
    conn = sqlite3.connect(root / Store.DB_NAME)
    try:
        rows = conn.execute(
            "select s.id, s.series_id, s.lesion_id, se.modality, se.pixel_sha256, s.mask_sha256, s.voxel_count, "
            "s.author_id, s.site_code from segmentations s join series se on se.id = s.series_id"
        ).fetchall()
        for i, (seg, series, lesion, modality, image, mask, voxels, author, site) in enumerate(rows):
            conn.execute(
                "insert into feature_sets (id, site_code, author_id, revision, created_at, updated_at, segmentation_id,"
                " series_id, lesion_id, modality, params_name, params_sha256, image_sha256, mask_sha256, status,"
                " features_json, provenance_json) values (?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'ok', ?, '{}')",
                [f"fs-{i}", site, author, "2026-11-01", "2026-11-01", seg, series, lesion, modality,
                 {"CT": "ct", "PT": "pet"}[modality], sha[modality], image, mask,
                 json.dumps({"original_shape_VoxelVolume": voxels * 1.5, "original_firstorder_Mean": 0.1 * i})],
            )  # fmt: skip
        conn.commit()
    finally:
        conn.close()


def test_m004_keeps_every_row_reachable_and_features_current(tmp_path):
    root = _v1_store(tmp_path)
    _add_v1_feature_sets(root)
    before = _raw(root, "select * from segmentations order by id")
    features_before = _raw(root, "select * from feature_sets order by id")
    counts = {t: len(_raw(root, f"select 1 from {t}")) for t in ("subjects", "series", "lesions", "slides")}
    assert len(before) == 8 and len(features_before) == 8

    with Store.open(root, create=False) as store:
        assert "m004_segmentation_chains" in {r["name"] for r in store.rows("_sqlite_migrations")}
        after = {r["id"]: r for r in store.rows("segmentations")}
        # Every row keeps its id, version and columns; it is now the final version of its author's chain.
        for row in before:
            moved = after[row["id"]]
            assert {k: moved[k] for k in row} == row
            assert (moved["status"], moved["reader_id"]) == ("final", row["author_id"])
            seg = chains.segmentation(store, row["id"])
            assert seg.is_final and seg.version == row["version"] == 1
            assert file_sha256(store.path(seg.mask_path)) == seg.mask_sha256
        lesions = {r["lesion_id"] for r in before}
        assert sum(len(s) for lid in lesions for s in chains.chains_of_lesion(store, lid).values()) == 8
        # Features unchanged, and still current: nothing for the batch to recompute.
        assert store.rows("feature_sets", order_by="id") == features_before
        pending, current = plan_pending(store)
        assert (len(pending), len(current)) == (0, 8)
        assert {t: len(store.rows(t)) for t in counts} == counts
        assert store.check_audit_chain().ok


def test_the_store_knows_its_site_and_refuses_another_sites_rows(tmp_path, store, shared_data):
    from palmares_desktop.core.importer import ImportRefusedError, import_dicom

    # A first-wave store has no setting: its subjects' site answers, and is recorded at the next write.
    with Store.open(_v1_store(tmp_path / "v1"), create=False) as old:
        assert old.setting("site_code") is None and old.site_code() == "IT99"
        old.use_system_reader("test-suite", site_code="IT99")
        old.ensure_subject("IT99-0002")
        assert old.setting("site_code") == "IT99"
        with pytest.raises(
            StoreError, match=r"^This store belongs to site IT99: a subjects row of site IT03"
        ):
            old.ensure_subject("IT03-0001")

    # A new store takes the site of its first row; a visiting reader's rows are made at the store's site.
    assert store.site_code() is None
    store.ensure_subject("IT03-0001")
    assert (store.setting("site_code"), store.site_code()) == ("IT03", "IT03")
    store.use_reader(store.add_reader("Dr Verdi", "radiologist", "IT05"))
    lesion = store.insert("lesions", {"subject_id": store.subject_by_code("IT03-0001").id, "name": "L1"})
    assert lesion["site_code"] == "IT03" and lesion["author_id"] == store.reader.id
    with pytest.raises(StoreError, match="belongs to site IT03"):
        store.ensure_subject("IT05-0001")
    with pytest.raises(ImportRefusedError, match="subject IT05-0001 of site IT05 cannot be imported into it"):
        import_dicom(store, shared_data / "petct_sts_001", "IT05-0001")  # refused before any work
    assert [s["code"] for s in store.rows("subjects")] == ["IT03-0001"]

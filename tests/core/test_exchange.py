"""Issue 8 acceptance: three sites from the demo study export, the centre merges in two orders and gets
the same content (a canonical dump of every merged table), the diverged lesion is kept in both
versions and listed, and the analysis table has the expected rows and columns."""

from __future__ import annotations

import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from palmares_desktop.core.exchange.merge import merge_files
from palmares_desktop.core.exchange.table import write_table
from palmares_desktop.core.exchange.verify import verify
from palmares_desktop.core.store import Store, exchange_rows
from tests.core.exchange_fixture import centre_copy, exchange_world

CLI = "from palmares_desktop.cli.main import cli; cli()"
pytestmark = pytest.mark.slow  # the shared world takes ~25 s beyond the demo store; each test is short


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return exchange_world(tmp_path_factory)


def _merge(central, paths):
    with Store.open(central) as store:
        store.use_system_reader("coordinator")
        return merge_files(store, list(paths))


def _dump(central):
    with Store.open(central, read_only=True) as store:
        return exchange_rows.canonical_dump(store)


@pytest.mark.parametrize("modality", [None, "ct", "pet", "he"])
def test_the_wide_table_equals_one_dict_per_row_for_every_modality_filter(world, tmp_path, modality):
    """The array-filled wide table (table._wide_table) against the plain way it replaced: a dict per
    row, columns in first-seen order. A filter leaves out feature sets whose names no kept row has."""
    import pyarrow as pa

    from palmares_desktop.core.exchange.table import KEYS, _wide_table, build

    central = centre_copy(world, tmp_path / "c")
    p = world.packages
    assert all(o.status == "merged" for o in _merge(central, [p["IT01"], p["IT02"], p["IT99"]]).outcomes)
    with Store.open(central, read_only=True) as store:
        rows, _ = build(store, modality)
        columns = list(KEYS) + [c for c in dict.fromkeys(k for r in rows for k in r) if c not in KEYS]
        expected = pa.table({c: [r.get(c) for r in rows] for c in columns})
        table = _wide_table(store, modality)
    assert table.column_names == expected.column_names
    assert table.to_pylist() == expected.to_pylist()
    assert table.num_rows > 0


def test_two_orders_of_merging_give_equal_central_stores_with_the_conflict_listed(world, tmp_path):
    p = world.packages
    first = centre_copy(world, tmp_path / "c1")
    second = centre_copy(world, tmp_path / "c2")
    one = _merge(first, [p["IT99"], p["IT01"], p["IT01a"], p["IT01b"], p["IT02"]])
    assert [o.status for o in one.outcomes] == ["merged"] * 5, [o.reason for o in one.outcomes]
    # the other order, one package per call, the fork's branches the other way round
    for name in ("IT02", "IT01", "IT01b", "IT01a", "IT99"):
        (outcome,) = _merge(second, [p[name]]).outcomes
        assert outcome.status == "merged", outcome.reason
    a, b = _dump(first), _dump(second)
    assert a == b
    assert len(a["subjects"]) == 5 and len(a["segmentations"]) == 24 + 2 + 2
    assert len(a["exchange_packages"]) == 5 and len(a["exchange_masks"]) == 28
    assert len(a["slide_annotations"]) == 2 and len(a["slide_measurements"]) == 1 and len(a["slides"]) == 4
    with Store.open(first, read_only=True) as store:
        (conflict,) = exchange_rows.conflicts(store, "open")
        assert conflict["table_name"] == "lesions" and conflict["site_code"] == "IT01"
        both = {
            exchange_rows.version_row(store, "lesions", conflict["row_id"], sha)["recist_status"]
            for sha in (conflict["sha_a"], conflict["sha_b"])
        }
        assert both == {"target", "non-target"}
        # the lesion keeps three versions: the first package's and both branches'
        assert len(exchange_rows.versions(store, "lesions", conflict["row_id"])) == 3
    # merging the same packages again changes nothing
    again = _merge(first, [p["IT02"], p["IT01b"]])
    assert [o.status for o in again.outcomes] == ["already merged"] * 2
    assert _dump(first) == a

    out = tmp_path / "table.parquet"
    with Store.open(first, read_only=True) as store:
        rows, columns = write_table(store, out)
        pet_rows, _ = write_table(store, tmp_path / "pet.csv", "pet")
        long_rows, long_cols = write_table(store, tmp_path / "long.parquet", long_format=True)
    table = pq.read_table(out)
    # 28 segmentation rows (one feature set each at IT01/IT02, none at IT99) + 4 slides
    assert rows == 28 + 4 and table.num_rows == 32
    assert pet_rows == 12 + 1 + 1
    names = set(table.column_names)
    for column in ("site", "subject", "lesion", "lesion_site", "recist_status", "modality", "reader",
                   "params_sha256", "pet_suv_max", "pet_mtv_ml", "pet_tlg", "subject_total_mtv_ml",
                   "subject_total_tlg", "subject_lesion_count", "subject_dmax_mm", "manufacturer", "model",
                   "kernel", "reconstruction_method", "slice_thickness_mm", "voxel_size_x_mm",
                   "suv_normalisation", "uptake_time_min", "scanner_fov_mm", "he_count_tumor"):  # fmt: skip
        assert column in names, column
    features = [c for c in names if c.startswith("original_")]
    assert len(features) > 50 and columns == len(names)
    data = table.to_pydict()
    it01 = [i for i, s in enumerate(data["subject"]) if s == "IT01-0001" and data["modality"][i] == "PT"]
    assert len(it01) == 1
    assert data["recist_status"][it01[0]] in ("target", "non-target")
    assert data["pet_suv_max"][it01[0]] > 1.0 and data["uptake_time_min"][it01[0]] > 10
    assert long_cols == 10 and long_rows > rows * 20


def test_verify_in_words_and_exit_codes_at_the_centre_and_at_the_site(world, tmp_path):
    central = centre_copy(world, tmp_path / "c")
    done = subprocess.run(
        [sys.executable, "-c", CLI, "verify", str(world.packages["IT01"]), "--store", str(central)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0 and "verified" in done.stdout and "signature" in done.stdout
    with Store.open(world.sites["IT01"], read_only=True) as site:
        report = verify(site, world.packages["IT01"])
    assert report.ok and any(c.startswith("key table") for c in report.checked)
    with Store.open(world.sites["IT02"], read_only=True) as other:
        report = verify(other, world.packages["IT01"])
    assert not report.ok and "not encrypted to this store's key" in report.reason()
    done = subprocess.run(
        [sys.executable, "-c", CLI, "merge", str(world.packages["IT01a"]), "--into", str(central)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1 and "gap" in done.stdout and world.packages["IT01"].name not in done.stderr
    with Store.open(central, read_only=True) as store:
        assert exchange_rows.packages(store) == []


def test_a_merge_checkpoints_aside_and_leaves_the_automatic_checkpoint_and_the_wal_as_before(world, tmp_path):
    central = centre_copy(world, tmp_path / "centre")
    paths = [world.packages[s] for s in ("IT01", "IT02", "IT99")]
    with Store.open(central) as store:
        store.use_system_reader("coordinator")
        before = store.db.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        result = merge_files(store, paths)
        assert [o.status for o in result.outcomes] == ["merged"] * 3
        assert store.db.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == before
        busy, frames, copied = store.db.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert busy == 0 and frames == copied  # every committed package is in the database file
    other = centre_copy(world, tmp_path / "other")
    for path in paths:  # one at a time, through SQLite's automatic checkpoint: the same content
        assert _merge(other, [path]).outcomes[0].status == "merged"
    assert _dump(central) == _dump(other)

"""Issue 8, "Security and bad input": every kind of bad package is refused with its reason, and the
centre's database file is byte-for-byte what it was before."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest

from palmares_desktop.core.exchange import crypto, keyring, package
from palmares_desktop.core.exchange.merge import merge_files
from palmares_desktop.core.store import Store
from tests.core.exchange_fixture import centre_copy, exchange_world

pytestmark = pytest.mark.slow  # shares the exchange world (built once per session)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return exchange_world(tmp_path_factory)


def reseal(
    world, source: Path, out: Path, edit_db=None, edit_manifest=None, site="IT01", sign_root=None
) -> Path:
    """A package rebuilt by someone holding the site's key (or `sign_root`'s): its database and
    manifest edited, the manifest's counts and hash recomputed unless `edit_manifest` sets them."""
    root = world.sites[site]
    with Store.open(root, read_only=True) as store:
        opened = package.open_file(store, package.read_file(source))
        own = keyring.own_public(store)
    db = out.with_suffix(".db")
    db.write_bytes(opened.database)
    manifest = dict(opened.manifest)
    if edit_db:
        conn = sqlite3.connect(db)
        edit_db(conn)
        conn.commit()
        manifest["row_counts"] = {
            t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
            for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        conn.close()
    database = db.read_bytes()
    manifest["sha256"] = hashlib.sha256(database).hexdigest()
    if edit_manifest:
        edit_manifest(manifest)
    header = {k: opened.header[k] for k in ("format", "package_id", "site_code", "created_at")}
    header["package_id"] = manifest["package_id"]
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    signature = crypto.sign(sign_root or root, package._signed_message(header, manifest_bytes))
    content = struct.pack(">I", len(manifest_bytes)) + manifest_bytes + struct.pack(">H", len(signature))
    centre = keyring.trusted_key(root, crypto.CENTRE)
    package._write(out, header, content + signature + database, [centre, own])
    return out


@dataclass
class Refusal:
    """The last package's merge outcome, and whether the centre's database file stayed the same."""

    status: str
    reason: str
    unchanged: bool

    def says(self, words: str) -> bool:
        """Refused, for a reason containing `words`, with the central database byte-for-byte as before."""
        assert self.status == "refused", self.status
        assert words in self.reason, self.reason
        return self.unchanged


def _merge_refusal(world, tmp_path, packages, before=None) -> Refusal:
    central = tmp_path / "central"
    if not central.exists():
        centre_copy(world, central)
    with Store.open(central) as store:
        store.use_system_reader("coordinator")
        store.close()
    if before is not None:
        with Store.open(central) as store:
            store.use_system_reader("coordinator")
            assert all(o.status == "merged" for o in merge_files(store, before).outcomes)
    image = (central / "palmares.db").read_bytes()
    with Store.open(central) as store:
        store.use_system_reader("coordinator")
        last = merge_files(store, list(packages)).outcomes[-1]
    wal = central / "palmares.db-wal"
    unchanged = (central / "palmares.db").read_bytes() == image and (
        not wal.exists() or wal.stat().st_size == 0
    )
    return Refusal(last.status, last.reason, unchanged)


def test_a_forged_signature_is_refused(world, tmp_path):
    rogue = tmp_path / "rogue"
    shutil.copytree(world.sites["IT01"], rogue)
    for name in (crypto.SIGN_FILE, crypto.BOX_FILE):
        (rogue / name).unlink()
    crypto.create_keys(rogue)  # another key claiming to be site IT01
    forged = reseal(world, world.packages["IT01"], tmp_path / "forged.pkg", sign_root=rogue)
    assert _merge_refusal(world, tmp_path, [forged]).says("does not match site IT01's registered key")


def test_an_unknown_site_key_is_refused(world, tmp_path):
    site = tmp_path / "IT77"
    with Store.open(site) as s:
        s.use_system_reader("test", site_code="IT77")
        s.ensure_subject("IT77-0001")
        keyring.init_keys(s, centre=False)
        (tmp_path / "c.pub").write_text(world.root.joinpath("centre.pub").read_text())
        keyring.trust_file(s, tmp_path / "c.pub")
        package.export_package(s, tmp_path / "IT77.pkg")
    assert _merge_refusal(world, tmp_path, [tmp_path / "IT77.pkg"]).says(
        "whose key this centre does not trust"
    )


def test_a_hash_mismatch_and_a_truncated_file_are_refused(world, tmp_path):
    bad = reseal(world, world.packages["IT02"], tmp_path / "hash.pkg", site="IT02",
                 edit_manifest=lambda m: m.update(sha256="0" * 64))  # fmt: skip
    assert _merge_refusal(world, tmp_path, [bad]).says("does not match the SHA-256")
    data = world.packages["IT02"].read_bytes()
    for cut in (10, 200, len(data) // 2, len(data) - 1):
        short = tmp_path / f"short{cut}.pkg"
        short.write_bytes(data[:cut])
        assert _merge_refusal(world, tmp_path, [short]).says("")
    short = tmp_path / "short.pkg"
    short.write_bytes(data[: len(data) - 100])
    assert _merge_refusal(world, tmp_path, [short]).says("altered or truncated")


def test_a_foreign_or_newer_schema_is_refused(world, tmp_path):
    newer = reseal(world, world.packages["IT02"], tmp_path / "newer.pkg", site="IT02",
                   edit_manifest=lambda m: m["schema"].append("m099_future"))  # fmt: skip
    assert _merge_refusal(world, tmp_path, [newer]).says("newer schema (change m099_future")
    foreign = reseal(world, world.packages["IT02"], tmp_path / "foreign.pkg", site="IT02",
                     edit_db=lambda c: c.execute("CREATE TABLE extra (x)"))  # fmt: skip
    assert _merge_refusal(world, tmp_path, [foreign]).says("foreign schema")
    trigger = reseal(world, world.packages["IT02"], tmp_path / "trigger.pkg", site="IT02",
                     edit_db=lambda c: c.execute("CREATE VIEW v AS SELECT 1"))  # fmt: skip
    assert _merge_refusal(world, tmp_path, [trigger]).says("foreign schema")


def test_rows_referring_to_missing_rows_are_refused(world, tmp_path):
    def orphan(conn):
        conn.execute("DELETE FROM subjects")
        conn.execute("DELETE FROM pet_metrics")

    bad = reseal(world, world.packages["IT02"], tmp_path / "orphan.pkg", site="IT02", edit_db=orphan)
    assert _merge_refusal(world, tmp_path, [bad]).says("refers to a subjects row")


def test_an_oversized_or_lying_mask_blob_is_refused(world, tmp_path):
    def huge(conn):
        geometry = json.dumps({"shape_zyx": [4096, 4096, 4096], "size": [4096] * 3})
        conn.execute("UPDATE masks SET geometry_json = ?", [geometry])

    bad = reseal(world, world.packages["IT02"], tmp_path / "huge.pkg", site="IT02", edit_db=huge)
    assert _merge_refusal(world, tmp_path, [bad]).says("oversized")

    def bomb(conn):
        conn.execute("UPDATE masks SET data = zeroblob(70000000)")

    bad = reseal(world, world.packages["IT02"], tmp_path / "bomb.pkg", site="IT02", edit_db=bomb)
    assert _merge_refusal(world, tmp_path, [bad]).says("oversized")


@pytest.mark.parametrize(
    "text", ["x'); DROP TABLE subjects; --", "../../etc/passwd", "see /home/rossi/scan.dcm"]
)
def test_strings_carrying_sql_or_path_fragments_are_refused(world, tmp_path, text):
    bad = reseal(world, world.packages["IT02"], tmp_path / "sql.pkg", site="IT02",
                 edit_db=lambda c: c.execute("UPDATE lesions SET notes = ?", [text]))  # fmt: skip
    assert _merge_refusal(world, tmp_path, [bad]).says("SQL or path fragment")


def test_a_site_claiming_another_sites_rows_is_refused(world, tmp_path):
    bad = reseal(world, world.packages["IT02"], tmp_path / "claim.pkg", site="IT02",
                 edit_db=lambda c: c.execute("UPDATE lesions SET site_code = 'IT01'"))  # fmt: skip
    assert _merge_refusal(world, tmp_path, [bad]).says("carries a lesions row of site 'IT01'")

    # IT01's subject id under IT02's name: the centre already holds that id from IT01
    with Store.open(world.sites["IT01"], read_only=True) as it01:
        subject_id = it01.subject_by_code("IT01-0001").id

    def take(conn):
        old = conn.execute("SELECT id FROM subjects").fetchone()[0]
        conn.execute("PRAGMA foreign_keys=OFF")
        for table, column in (("subjects", "id"), ("lesions", "subject_id"), ("series", "subject_id"),
                              ("studies", "subject_id"), ("subject_status", "subject_id"),
                              ("pet_metrics", "subject_id")):  # fmt: skip
            conn.execute(f"UPDATE {table} SET {column} = ? WHERE {column} = ?", [subject_id, old])

    bad = reseal(world, world.packages["IT02"], tmp_path / "take.pkg", site="IT02", edit_db=take)
    assert _merge_refusal(world, tmp_path, [bad], before=[world.packages["IT01"]]).says(
        "holds from another site"
    )


def test_a_replayed_or_out_of_chain_package_is_refused(world, tmp_path):
    p = world.packages
    replay = reseal(world, p["IT02"], tmp_path / "replay.pkg", site="IT02",
                    edit_db=lambda c: c.execute("UPDATE lesions SET notes = 'changed'"))  # fmt: skip
    assert _merge_refusal(world, tmp_path, [replay], before=[p["IT02"]]).says("replayed")

    def follows_it99(m):
        m["since"] = m_it99

    with Store.open(world.sites["IT99"], read_only=True) as s99:
        m_it99 = package.open_file(s99, package.read_file(p["IT99"])).manifest["package_id"]
    chain = reseal(world, p["IT02"], tmp_path / "chain.pkg", site="IT02",
                   edit_manifest=lambda m: (m.update(package_id="6c1e7f0a-0000-4000-8000-000000000001"), follows_it99(m)))  # fmt: skip
    assert _merge_refusal(world, tmp_path / "x", [chain], before=[p["IT99"]]).says("out of chain")


def test_a_gap_in_a_sites_chain_is_refused_and_named(world, tmp_path):
    p = world.packages
    with Store.open(world.sites["IT01"], read_only=True) as s:
        first = package.open_file(s, package.read_file(p["IT01"])).manifest["package_id"]
    assert _merge_refusal(world, tmp_path, [p["IT01b"]]).says(f"follows package {first}")

"""Concurrent writers on one store: they wait for each other instead of failing, and nothing doubles."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from palmares_desktop.core.store import Store


def test_two_store_objects_writing_at_once_wait_instead_of_failing(tmp_path):
    Store.open(tmp_path / "s").close()
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            with Store.open(tmp_path / "s") as store:
                store.use_system_reader(f"writer {n}", site_code="IT03")
                for i in range(30):
                    with store.transaction():
                        # read then write: a deferred transaction fails here with "database is locked"
                        code = store.next_subject_code("IT03")
                        store.ensure_subject(code)
                        store.set_setting(f"w{n}-{i}", code)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Store.open(tmp_path / "s") as store:
        codes = [r["code"] for r in store.rows("subjects")]
    assert len(codes) == 90 == len(set(codes))


@pytest.fixture(scope="module")
def demo_dicom(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    subprocess.run([sys.executable, "-c", CLI, "demo", "--out", str(out), "--subjects", "3"], check=True)
    return out / "dicom"


CLI = "from palmares_desktop.cli.main import cli; cli()"


def _three_imports_at_once(demo_dicom, store) -> list[int]:
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                CLI,
                "import",
                str(demo_dicom / f"subject{n}"),
                "--subject",
                f"IT01-000{n}",
                "--store",
                str(store),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for n in (1, 2, 3)
    ]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    with Store.open(store) as s:
        return [len(s.rows("subjects")), len(s.rows("series"))]


@pytest.mark.slow
def test_three_simultaneous_imports_into_a_fresh_store_all_succeed(demo_dicom, tmp_path):
    for r in range(int(os.environ.get("PALMARES_CONCURRENCY_ROUNDS", "3"))):  # the 10: set it to 10
        assert _three_imports_at_once(demo_dicom, tmp_path / f"store{r}") == [3, 6]


def test_a_store_from_a_newer_version_or_without_migrations_is_refused_in_words(tmp_path):
    import sqlite3

    from palmares_desktop.core.store import StoreError

    Store.open(tmp_path / "new").close()
    conn = sqlite3.connect(tmp_path / "new" / "palmares.db")
    conn.execute(
        "insert into _sqlite_migrations (migration_set, name, applied_at) values ('palmares', 'm099_x', '')"
    )
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer version of PALMARES .*m099_x"):
        Store.open(tmp_path / "new")
    (tmp_path / "bare").mkdir()
    conn = sqlite3.connect(tmp_path / "bare" / "palmares.db")
    conn.execute("create table sites (code text)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="no migrations table"):
        Store.open(tmp_path / "bare")


def test_a_store_whose_column_was_renamed_outside_palmares_is_refused_in_words(tmp_path):
    """Seen before: a renamed column gave "unexpected error (OperationalError...)" for every series."""
    import sqlite3

    from palmares_desktop.core.store import StoreError

    Store.open(tmp_path / "s").close()
    conn = sqlite3.connect(tmp_path / "s" / "palmares.db")
    conn.execute("alter table series rename column modality to modality_x")
    conn.commit()
    conn.close()
    before = (tmp_path / "s" / "palmares.db").read_bytes()
    for read_only in (False, True):
        with pytest.raises(StoreError, match=r"table 'series' has no column 'modality'.*outside PALMARES"):
            Store.open(tmp_path / "s", read_only=read_only)
    assert (tmp_path / "s" / "palmares.db").read_bytes() == before

"""The coordinator's view of a central store: packages per site, completeness, and resolving the
diverged lesion of the exchange world (both versions shown; the choice is audited and applied)."""

from __future__ import annotations

import pytest

from palmares_desktop.core.exchange.coordination import (
    CoordinationError,
    completeness,
    conflicts,
    packages_by_site,
    resolve_conflict,
)
from palmares_desktop.core.exchange.merge import merge_files
from palmares_desktop.core.store import Store, records
from palmares_desktop.core.store.check import check_store
from tests.core.exchange_fixture import centre_copy, exchange_world

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def central(tmp_path_factory):
    world = exchange_world(tmp_path_factory)
    root = centre_copy(world, tmp_path_factory.mktemp("coord") / "centre")
    with Store.open(root) as store:
        store.use_system_reader("coordinator")
        result = merge_files(store, [world.packages[n] for n in ("IT99", "IT01", "IT01a", "IT01b", "IT02")])
        assert [o.status for o in result.outcomes] == ["merged"] * 5
    return root


def test_packages_and_completeness_per_site(central):
    with Store.open(central, read_only=True) as store:
        sites = {s.site: s for s in packages_by_site(store)}
        assert sorted(sites) == ["IT01", "IT02", "IT99"] and len(sites["IT01"].packages) == 3
        assert all(p["rows"] > 0 for p in sites["IT01"].packages) and sites["IT01"].last_exported
        table = completeness(store)
    assert len(table) == 5
    assert all(r["ct"] and r["pet"] for r in table)  # every demo subject has CT and PET lesions
    assert any(r["he"] for r in table)  # the annotated slide of the fixture
    assert any(r["features"] for r in table) and not all(r["features"] for r in table)  # none at IT99


def test_the_centre_commands_show_packages_completeness_and_the_open_conflict(central):
    import json

    from click.testing import CliRunner

    from palmares_desktop.cli.main import _register, main

    _register()
    runner = CliRunner()
    shown = runner.invoke(main, ["centre", "packages", "--store", str(central), "--json"])
    assert shown.exit_code == 0, shown.output
    assert sorted(s["site"] for s in json.loads(shown.output)) == ["IT01", "IT02", "IT99"]
    table = runner.invoke(main, ["centre", "completeness", "--store", str(central)])
    assert table.exit_code == 0 and len(table.output.splitlines()) == 1 + 5
    listed = runner.invoke(main, ["centre", "conflicts", "--store", str(central)])
    assert listed.exit_code == 0 and "of IT01-0001 (site IT01), open" in listed.output
    assert "recist_status: a = " in listed.output


def test_a_conflict_shows_both_versions_and_its_resolution_is_applied_and_audited(central):
    with Store.open(central) as store:
        (conflict,) = conflicts(store)
        assert conflict.table == "lesions" and "recist_status" in conflict.differences()
        assert conflict.label.startswith("lesion '") and conflict.label.endswith("of IT01-0001")
        assert {conflict.version_a["recist_status"], conflict.version_b["recist_status"]} == {
            "target",
            "non-target",
        }
        store.use_reader(store.add_reader("Dr Coordinator", "coordinator", "IT01"))
        with pytest.raises(CoordinationError, match="which version to keep"):
            resolve_conflict(store, conflict.id, "c")
        done = resolve_conflict(store, conflict.id[:8], "b")  # a short id, as the CLI shows it
        assert done.status == "resolved" and done.resolution_sha == conflict.sha_b
        assert records.lesion_row(store, conflict.row_id).recist_status == conflict.version_b["recist_status"]
        assert conflicts(store) == []
        with pytest.raises(CoordinationError, match="already resolved"):
            resolve_conflict(store, conflict.id, "a")
    report = check_store(central)
    assert report.ok, report.sentences()  # the resolution is in the audit chain

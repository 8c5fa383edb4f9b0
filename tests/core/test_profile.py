"""Reader profiles: validated, remembered in the user config directory, registered in the store."""

from __future__ import annotations

import json

import pytest

from palmares_desktop.core.profile import (
    ProfileError,
    ReaderProfile,
    list_profiles,
    load_profile,
    make_profile,
    profile_path,
    save_profile,
    use_profile,
)


def test_first_start_has_no_profile_then_remembers_the_last_one(_isolated_home):
    assert load_profile() is None and list_profiles() == []
    anna = make_profile(" Anna Rossi ", "radiologist", "it03")
    assert anna == ReaderProfile("Anna Rossi", "radiologist", "IT03")
    path = save_profile(anna)
    assert path == profile_path() and path.parent.is_relative_to(_isolated_home)
    paola = make_profile("Paola Bianchi", "pathologist", "IT05")
    save_profile(paola)
    save_profile(anna)  # picking a remembered profile again does not duplicate it
    assert list_profiles() == [anna, paola]
    assert load_profile() == anna
    save_profile(paola, make_current=False)
    assert load_profile() == anna
    assert json.loads(path.read_text())["current"] == 0


@pytest.mark.parametrize(
    ("name", "role", "site", "reason"),
    [
        ("", "radiologist", "IT03", "name"),
        ("Anna", "system", "IT03", "Role"),
        ("Anna", "radiologist", "I03", "Site code"),
        ("Anna", "radiologist", "IT3X", "Site code"),
    ],
)
def test_invalid_profiles_are_refused_with_a_sentence(name, role, site, reason):
    with pytest.raises(ProfileError, match=reason):
        make_profile(name, role, site)


def test_damaged_profile_file_means_first_start_again():
    profile_path().write_text("{not json", encoding="utf-8")
    assert load_profile() is None and list_profiles() == []
    save_profile(ReaderProfile("Anna Rossi", "radiologist", "IT03"))
    assert load_profile().name == "Anna Rossi"


def test_use_profile_registers_the_reader_once_and_every_write_records_it(store):
    anna = ReaderProfile("Anna Rossi", "radiologist", "IT03")
    reader = use_profile(store, anna)
    again = use_profile(store, anna)
    assert reader == again and store.reader == reader
    assert [r.name for r in store.readers()].count("Anna Rossi") == 1
    subject = store.ensure_subject("IT03-0001")
    assert subject.author_id == reader.id
    audit = store.rows("audit_log", "row_id = ?", [subject.id])
    assert audit[0]["reader_id"] == reader.id


def test_cli_writes_are_authored_by_the_profile_else_a_system_reader(store):
    from palmares_desktop.core.profile import use_profile_or_system_reader

    system = use_profile_or_system_reader(store, "IT03")
    assert system.role == "system" and system.site_code == "IT03"
    save_profile(ReaderProfile("Anna Rossi", "radiologist", "IT03"))
    reader = use_profile_or_system_reader(store, "IT03")
    assert (reader.name, reader.role) == ("Anna Rossi", "radiologist") and store.reader == reader

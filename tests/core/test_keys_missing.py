"""A lost keys.db is never silently recreated; its permissions are made private on every open."""

from __future__ import annotations

import os

import pytest

from palmares_desktop.core.dicom.keys import KeyTable
from palmares_desktop.core.importer import ImportRefusedError, import_dicom


def test_a_store_with_subjects_but_no_key_table_refuses_to_import(store, shared_data):
    store.ensure_subject("IT03-0001")
    with pytest.raises(ImportRefusedError, match="restore the key table from backup"):
        import_dicom(store, shared_data / "petct_sts_001", "IT03-0002")
    assert not (store.root / "keys.db").exists()


def test_key_table_is_made_private_on_every_open(store):
    KeyTable.open(store.root).close()
    path = store.root / "keys.db"
    os.chmod(path, 0o644)
    KeyTable.open(store.root).close()
    assert path.stat().st_mode & 0o777 == 0o600

"""Fixtures shared by core tests."""

from __future__ import annotations

import pytest

from palmares_desktop.core.store import Store
from tests.core.demo_fixture import demo_store


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """(open store, manifest) of the shared 3-subject demo store, read-only use."""
    root, manifest = demo_store(tmp_path_factory)
    store = Store.open(root, create=False)
    yield store, manifest
    store.close()

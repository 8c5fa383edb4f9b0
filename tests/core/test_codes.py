"""Subject and site codes are ASCII and matched whole: look-alike codes are refused with a sentence."""

from __future__ import annotations

import pytest

from palmares_desktop.core.store import StoreError, check_site_code, check_subject_code


@pytest.mark.parametrize(
    "code", ["IT01-0001\n", "IT01-\u0660\u0660\u0660\u0661", "IT01-0001 ", "IT0\uff11-0001"]
)
def test_lookalike_subject_codes_are_refused_with_a_sentence(code):
    with pytest.raises(StoreError, match="is not valid: use the site code"):
        check_subject_code(code)


@pytest.mark.parametrize("code", ["IT01\n", "IT\u0660\u0661", "IT01 "])
def test_lookalike_site_codes_are_refused(code):
    with pytest.raises(StoreError, match="is not valid"):
        check_site_code(code)


def test_plain_codes_still_pass():
    assert check_subject_code("IT01-0001") == "IT01-0001"
    assert check_site_code("IT01") == "IT01"


def test_store_refuses_lookalike_subject_and_writes_nothing(store):
    with pytest.raises(StoreError, match="is not valid"):
        store.ensure_subject("IT03-\u0660\u0660\u0660\u0661")
    assert store.rows("subjects") == []

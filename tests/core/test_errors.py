"""Every user-facing error class shares one base, so the CLI catches them in one place."""

from __future__ import annotations

import pytest

from palmares_desktop.core.demo.demo_store import DemoError
from palmares_desktop.core.dicom.errors import DicomError
from palmares_desktop.core.dicom.keys import KeyTableError
from palmares_desktop.core.errors import PalmaresError
from palmares_desktop.core.importer import ImportRefusedError
from palmares_desktop.core.pet.bodysize import BodySizeError
from palmares_desktop.core.profile import ProfileError
from palmares_desktop.core.radiomics.batch import BatchError
from palmares_desktop.core.radiomics.errors import RadiomicsError, RadiomicsLockError
from palmares_desktop.core.segmentation.geometry import GeometryMismatchError, SegmentationError
from palmares_desktop.core.slides.annotations import AnnotationError
from palmares_desktop.core.slides.reader import SlideError
from palmares_desktop.core.store.schema import SchemaDriftError
from palmares_desktop.core.store.store import StoreError

USER_ERRORS = [
    DemoError,
    DicomError,
    KeyTableError,
    ImportRefusedError,
    BodySizeError,
    ProfileError,
    BatchError,
    RadiomicsError,
    RadiomicsLockError,
    SegmentationError,
    GeometryMismatchError,
    AnnotationError,
    SlideError,
    SchemaDriftError,
    StoreError,
]


@pytest.mark.parametrize("cls", USER_ERRORS, ids=lambda c: c.__name__)
def test_user_errors_derive_from_palmares_error(cls):
    assert issubclass(cls, PalmaresError)


def test_body_size_error_is_still_a_value_error():
    assert issubclass(BodySizeError, ValueError)

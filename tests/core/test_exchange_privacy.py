"""Issue 8 planted-PHI test: identifying values put into DICOM headers, a slide's file name and its
description before import never appear in any byte of the package (decrypted) nor of the central
store; and the privacy scan of `verify` does see such values when they reach a travelling row."""

from __future__ import annotations

import shutil

import pydicom
import pytest
import tifffile

from palmares_desktop.core.exchange import keyring, package
from palmares_desktop.core.exchange.merge import merge_files
from palmares_desktop.core.exchange.verify import verify
from palmares_desktop.core.importer import import_dicom
from palmares_desktop.core.segmentation.labelmaps import add_segmentation
from palmares_desktop.core.slides.registry import register_slide
from palmares_desktop.core.store import Store, records
from tests.core.exchange_fixture import centre_copy, exchange_world

pytestmark = pytest.mark.slow  # shares the exchange world (built once per session)

PLANTED = {
    "PatientName": "ROSSI^MARIO^ANTONIO",
    "PatientID": "PHI778899",
    "OtherPatientIDs": "OTHERID5566",
    "PatientBirthDate": "19530417",
    "InstitutionName": "Ospedale Policlinico Segreto",
    "ReferringPhysicianName": "VERDI^GIUSEPPE",
    "AccessionNumber": "ACC99887766",
}
SLIDE_NAME = "ROSSI_MARIO_19530417_biopsy.svs"
SLIDE_USER = "Bianchi Luca Tecnico"
NEEDLES = ["ROSSI", "MARIO", "PHI778899", "OTHERID5566", "19530417", "Policlinico", "VERDI", "GIUSEPPE",
           "ACC99887766", "Bianchi", "biopsy"]  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return exchange_world(tmp_path_factory)


def _planted_site(world, tmp_path):
    subject = world.manifest.subjects[2]
    source = world.manifest.path(subject.dicom_folder) / "SE0003_PT"
    dicom = tmp_path / "incoming" / "PT"
    dicom.mkdir(parents=True)
    for path in sorted(source.iterdir()):
        ds = pydicom.dcmread(path)
        for keyword, value in PLANTED.items():
            setattr(ds, keyword, value)
        ds.save_as(dicom / path.name)
    slide = tmp_path / "incoming" / SLIDE_NAME
    shutil.copyfile(world.manifest.path(subject.slide), slide)
    with tifffile.TiffFile(slide) as tif:
        description = tif.pages[0].description
    tifffile.tiffcomment(slide, description.replace("demo-technician", SLIDE_USER).replace(
        "DEMO-SUBJECT3-HE", SLIDE_NAME.removesuffix(".svs")).encode())  # fmt: skip
    root = tmp_path / "IT03"
    with Store.open(root) as store:
        store.use_reader(store.add_reader("Dr Neri", "radiologist", "IT03"))
        assert import_dicom(store, dicom.parent, "IT03-0001").ok
        lesion = subject.lesions[0]
        add_segmentation(store, "IT03-0001", "PT", world.manifest.path(subject.pet_labels),
                         label=lesion["label"], lesion_name=lesion["name"], organ=lesion["organ"])  # fmt: skip
        register_slide(store, store.subject_by_code("IT03-0001").id, slide, stain="H&E")
        keyring.init_keys(store, centre=False)
        keyring.trust_file(store, world.root / "centre.pub")
        (tmp_path / "IT03.pub").write_text(keyring.own_public(store).to_json())
    return root


def _decrypted(store_root, path) -> bytes:
    with Store.open(store_root, read_only=True) as store:
        opened = package.open_file(store, package.read_file(path))
    return opened.manifest_bytes + opened.database + json_header(opened)


def json_header(opened) -> bytes:
    import json

    return json.dumps(opened.header).encode()


def test_planted_identifiers_never_reach_the_package_or_the_central_store(world, tmp_path):
    site = _planted_site(world, tmp_path)
    out = tmp_path / "IT03.pkg"
    with Store.open(site) as store:
        store.use_reader(store.add_reader("Dr Neri", "radiologist", "IT03"))
        package.export_package(store, out)
        report = verify(store, out)
    assert report.ok, report.sentences()
    content = _decrypted(site, out)
    raw = out.read_bytes()
    for needle in NEEDLES:
        assert needle.encode() not in content, needle
        assert needle.lower().encode() not in content.lower(), needle
        assert needle.encode() not in raw
    central = centre_copy(world, tmp_path / "central")
    with Store.open(central) as store:
        store.use_system_reader("coordinator")
        keyring.trust_file(store, tmp_path / "IT03.pub")
        (outcome,) = merge_files(store, [out]).outcomes
        assert outcome.status == "merged", outcome.reason
        assert outcome.rows > 20
    image = b"".join(p.read_bytes() for p in central.glob("palmares.db*"))
    for needle in NEEDLES:
        assert needle.encode() not in image, needle


def test_the_privacy_scan_sees_identifying_values_that_reach_a_travelling_row(world, tmp_path):
    site = _planted_site(world, tmp_path)
    with Store.open(site) as store:
        store.use_reader(store.add_reader("Dr Neri", "radiologist", "IT03"))
        lesion = records.lesions_of_subject(store, store.subject_by_code("IT03-0001").id)[0]
        records.update_lesion(store, lesion.id, {"notes": "seen with ROSSI^MARIO, id PHI778899"})
        records.update_lesion(store, lesion.id, {"organ": '{"PatientName": "someone"}'})
        package.export_package(store, tmp_path / "leak.pkg")
        report = verify(store, tmp_path / "leak.pkg")
    assert not report.ok
    text = " ".join(report.privacy)
    assert "DICOM person name" in text
    assert "a value of the site's key table appears in the package" in text
    assert "identifying DICOM attribute PatientName" in text

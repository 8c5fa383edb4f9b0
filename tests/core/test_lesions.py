"""Lesions of a subject (core/lesions.py): sites with SNOMED CT codes, RECIST 1.1 checks explained,
add/rename/describe/delete/restore on a real store, and the numbers the lesions panel shows."""

from __future__ import annotations

import pytest

from palmares_desktop.core.lesions import (
    SITES,
    LesionError,
    add_lesion,
    bone_character_text,
    delete_lesion,
    describe_lesion,
    lesion_numbers,
    parse_bone_character,
    recist_check,
    rename_lesion,
    restore_lesion,
    site_named,
    suggested_status,
)
from palmares_desktop.core.store import Store, records


def test_sites_carry_snomed_ct_codes():
    names = [s.name for s in SITES]
    for word in ("liver", "bone", "lymph node", "lung", "breast", "pleura", "soft tissue"):
        assert word in names
    assert site_named("Liver").snomed_code == "10200004"
    assert site_named("lymph node").label == "lymph node (SNOMED CT 59441001)"
    assert site_named("kidney") is None


def _lesion(name, organ, status=None, long=None, short=None, bone=None):
    return {
        "name": name,
        "organ": organ,
        "recist_status": status,
        "recist_long_axis_mm": long,
        "recist_short_axis_mm": short,
        "bone_character": bone,
    }


def test_recist_rules_are_checked_and_explained():
    lesions = [
        _lesion("L1", "liver", "target", 22.0, 15.0),
        _lesion("L2", "liver", "target", 18.0, 12.0),
        _lesion("L3", "liver", "target", 30.0, 20.0),  # third in the liver
        _lesion("N1", "lymph node", "target", 25.0, 12.0),  # node measured by short axis: 12 < 15
        _lesion("N2", "lymph node", "target", 30.0, 16.0),
        _lesion("B1", "bone", "target", 20.0, 15.0, "blastic"),  # bone without soft tissue
        _lesion("P1", "lung", "target", 8.0, 6.0),  # under 10 mm
        _lesion("B2", "bone", None, 20.0, 15.0, "lytic with soft-tissue component"),
    ]
    notes = recist_check(lesions)
    texts = [n.text for n in notes]
    assert "7 target lesions: RECIST 1.1 allows at most 5; make the others non-target." in texts
    assert any(t.startswith("3 targets in liver (L1, L2, L3)") for t in texts)
    # N1 + N2: two nodes are two targets in one organ ("lymph nodes"): allowed
    assert not any("targets in lymph nodes" in t for t in texts)
    assert any(
        n.lesion == "N1" and "short axis of 12.0 mm" in n.text and "non-target" in n.text for n in notes
    )
    assert not any(n.lesion == "N2" for n in notes)
    assert any(n.lesion == "B1" and "without a soft-tissue component" in n.text for n in notes)
    assert any(n.lesion == "P1" and "8.0 mm" in n.text and "non-measurable" in n.text for n in notes)
    hint = next(n for n in notes if n.lesion == "B2")
    assert hint.level == "hint" and "measurable as target" in hint.text
    # Three more nodes would make 3 targets in "lymph nodes": all nodes are one organ.
    three = [_lesion(f"N{i}", "lymph node", "target", 30.0, 20.0) for i in range(3)]
    assert any("3 targets in lymph nodes" in n.text for n in recist_check(three))
    # Thick slices: measurable from twice the slice thickness.
    assert recist_check([_lesion("L", "liver", "target", 12.0)], slice_thickness_mm=7.0)[0].text.startswith(
        "L has a longest diameter of 12.0 mm: under 14 mm"
    )
    assert suggested_status(_lesion("N", "lymph node", short=11.0)) == "non-target"
    assert suggested_status(_lesion("N", "lymph node", short=8.0)) == "non-measurable"
    assert suggested_status(_lesion("B", "bone", long=30.0, bone="mixed")) == "non-measurable"


def test_bone_character_words_round_trip():
    assert bone_character_text("lytic", soft_tissue=True) == "lytic with soft-tissue component"
    assert parse_bone_character("lytic with soft-tissue component") == ("lytic", True)
    assert parse_bone_character("blastic") == ("blastic", False)
    with pytest.raises(LesionError, match="not one of lytic, blastic, mixed"):
        bone_character_text("sclerotic")


def test_add_rename_describe_delete_and_restore_a_lesion(store: Store):
    store.ensure_subject("IT03-0001")
    lesion = add_lesion(store, "IT03-0001", "  Liver   1 ", "liver")
    assert lesion.name == "Liver 1" and lesion.organ == "liver"
    with pytest.raises(LesionError, match="already has a lesion named 'Liver 1'"):
        add_lesion(store, "IT03-0001", "Liver 1")
    with pytest.raises(LesionError, match="The site 'kidney' is not one of liver, bone"):
        add_lesion(store, "IT03-0001", "K", "kidney")
    renamed = rename_lesion(store, lesion.id, "Liver segment 7")
    assert renamed.name == "Liver segment 7"
    row = describe_lesion(store, lesion.id, "liver", "target", None, " hypodense ")
    assert (row.recist_status, row.notes) == ("target", "hypodense")
    with pytest.raises(LesionError, match="RECIST status 'maybe'"):
        describe_lesion(store, lesion.id, "liver", "maybe")
    subject_id = lesion.subject_id
    delete_lesion(store, lesion.id)
    assert records.lesions_of_subject(store, subject_id) == []
    assert records.lesion_named(store, subject_id, "Liver segment 7") is None
    restore_lesion(store, lesion.id)
    assert [x.name for x in records.lesions_of_subject(store, subject_id)] == ["Liver segment 7"]
    # A new lesion of the same name while deleted blocks the restore, in a sentence.
    delete_lesion(store, lesion.id)
    add_lesion(store, "IT03-0001", "Liver segment 7")
    with pytest.raises(LesionError, match="rename it before restoring"):
        restore_lesion(store, lesion.id)
    actions = [r["action"] for r in store.rows("audit_log", "table_name = 'lesions'", order_by="seq")]
    assert actions.count("delete") == 2 and actions.count("restore") == 1 and "rename" in actions


def test_lesion_numbers_match_the_planted_demo_lesions(demo):
    store, manifest = demo
    subject = manifest.subjects[0]
    numbers = lesion_numbers(store, subject.code)
    by_name = {n["name"]: n for n in numbers.values()}
    for planted in subject.lesions:
        got = by_name[planted["name"]]
        expected = planted["expected"]
        assert got["suv_max"] == pytest.approx(expected["suv_max"], rel=1e-5)
        assert got["suv_mean"] == pytest.approx(expected["suv_mean"], rel=1e-5)
        assert got["mtv_ml"] == pytest.approx(expected["pet_volume_ml"], rel=1e-6)
        assert got["tlg"] == pytest.approx(expected["suv_mean"] * expected["pet_volume_ml"], rel=1e-5)
        assert got["hu_mean"] == pytest.approx(expected["hu_mean"], abs=1e-3)
        # RECIST longest axial diameter of an ellipsoid with radii (rx, ry): at most 2 * max, at least
        # 2 * max - 2 voxels (voxel centres inside)
        long_axis = 2 * max(planted["radii_mm"][:2])
        assert long_axis - 4.0 <= got["recist_long_axis_mm"] <= long_axis + 0.01
        assert got["recist_short_axis_mm"] <= got["recist_long_axis_mm"]
    vertebra = by_name["vertebral metastasis"]
    assert vertebra["suv_max"] == pytest.approx(9.22, abs=0.01)

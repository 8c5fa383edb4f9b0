"""One series-choice rule: with two CTs, the room shows and `segmentation add` attaches to the same one,
the user is told which and what else there is, and can choose the other."""

from __future__ import annotations

import SimpleITK as sitk
from click.testing import CliRunner
from series_fixture import import_ct, insert_series

from palmares_desktop.cli.main import _register, main
from palmares_desktop.core.reading_set import subject_series
from palmares_desktop.core.segmentation.labelmaps import add_segmentation, find_series
from palmares_desktop.core.series_choice import SeriesChoiceError, choose_series

SUBJECT = "IT03-0001"


def _two_cts(store, shared_data):
    """The real 3-slice CT (its shifted study date) and a copy of it in a newer study, imported later."""
    folder = shared_data / "ct_3slice_seg_dcmqi"
    first = import_ct(store, folder / "ct", SUBJECT)
    image = sitk.ReadImage(str(store.path(first["pixel_path"])))
    second = insert_series(store, SUBJECT, image, "CT", study_date="2099-01-01")
    return first, second, folder


def test_the_room_and_segmentation_add_use_the_same_ct(store, shared_data):
    first, second, folder = _two_cts(store, shared_data)
    subject_id = store.subject_by_code(SUBJECT).id
    choice = choose_series(store, subject_id, "CT")
    assert (choice.chosen.id, [s.id for s in choice.alternatives]) == (second["id"], [first["id"]])
    assert choice.chosen.study_date == "2099-01-01" and choice.reason == "the newest study, latest import"
    assert choice.note == (
        f"2 CT series in the store; using 2099-01-01 (id {second['id'][:8]}) (the newest study, latest import). "
        f"Others: {_date(store, first)} 'CT STANDARD 1.25 mm' (id {first['id'][:8]})."
    )

    ct, pet, notes = subject_series(store, subject_id)
    assert ct.id == find_series(store, subject_id, "CT").id == second["id"] and pet is None
    assert notes == [choice.note]
    row = add_segmentation(store, SUBJECT, "CT", folder / "seg" / "liver.dcm")
    assert row.series_id == second["id"]

    # The other one, by id or by its first 8 characters.
    assert choose_series(store, subject_id, "CT", first["id"][:8]).chosen.id == first["id"]
    ct, _, _ = subject_series(store, subject_id, ct_id=first["id"])
    assert ct.id == first["id"]
    try:
        choose_series(store, subject_id, "CT", "nonsense-id")
    except SeriesChoiceError as exc:
        assert str(exc).startswith("Series nonsense-id is not a CT series of this subject; its series are: ")
    else:
        raise AssertionError("an unknown series id was accepted")
    assert choose_series(store, subject_id, "PT") is None


def test_segmentation_add_names_the_series_and_takes_series(store, shared_data):
    first, second, folder = _two_cts(store, shared_data)
    _register()
    runner = CliRunner()
    common = ["segmentation", "add", "--store", store.root, "--subject", SUBJECT, "--modality", "ct"]
    common += ["--no-features", folder / "seg" / "liver.dcm"]
    result = runner.invoke(main, [str(a) for a in common])
    assert result.exit_code == 0, result.output
    assert (
        f"Attached to 2099-01-01 (id {second['id'][:8]}); other CT series: {_date(store, first)} 'CT STANDARD 1.25 mm' "
        in result.output
    )
    result = runner.invoke(main, [str(a) for a in [*common, "--series", first["id"][:8]]])
    assert result.exit_code == 0, result.output
    assert (
        f"Attached to {_date(store, first)} 'CT STANDARD 1.25 mm' (id {first['id'][:8]}); other CT series: 2099"
        in result.output
    )
    assert sorted(r["series_id"] for r in store.rows("segmentations")) == sorted([first["id"], second["id"]])
    result = runner.invoke(main, [str(a) for a in [*common, "--series", "0000"]])
    assert result.exit_code == 1 and "Series 0000 is not a CT series of IT03-0001" in result.output
    assert "Traceback" not in result.output


def _date(store, series: dict) -> str:
    """The study date as stored (the importer shifts it by the subject's random offset)."""
    return store.get("studies", series["study_id"])["study_date"]

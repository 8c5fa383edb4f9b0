"""Reading rounds on the real IBSI lung CT: two readers (the second's masks grown by a known margin)
and a repeat of the first (shrunk), blinded; agreement against SimpleITK and pingouin."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
from series_fixture import import_ct

from palmares_desktop.core.radiomics.store_features import compute_features_for_segmentation
from palmares_desktop.core.reading_set import subject_segmentations
from palmares_desktop.core.segmentation.labelmaps import add_segmentation
from palmares_desktop.core.store import Store
from palmares_desktop.core.study.report import round_report, write_report
from palmares_desktop.core.study.rounds import (
    BlindedError,
    RoundError,
    assignments_of,
    check_visible,
    close_round,
    create_round,
    current_assignment,
    finish,
    record_work,
    visible_segmentations,
)

CLI = "from palmares_desktop.cli.main import cli; cli()"


def _parts(gtv: sitk.Image) -> dict[str, sitk.Image]:
    """Three 'lesions' from the real GTV: its upper, middle and lower thirds (different size and texture)."""
    array = sitk.GetArrayFromImage(gtv)
    z = np.flatnonzero(array.any(axis=(1, 2)))
    a, b = int(z[len(z) // 3]), int(z[2 * len(z) // 3])
    out = {}
    for name, keep in (("upper", slice(None, a)), ("middle", slice(a, b)), ("lower", slice(b, None))):
        part = np.zeros_like(array)
        part[keep] = array[keep]
        image = sitk.GetImageFromArray(part)
        image.CopyInformation(gtv)
        out[name] = image
    return out


READINGS = {  # (reader, repeat) -> how the mask differs from the real GTV half
    ("Dr Alpha", 1): lambda m: m,
    ("Dr Beta", 1): lambda m: sitk.BinaryDilate(m, [1, 1, 1]),
    ("Dr Alpha", 2): lambda m: sitk.BinaryErode(m, [1, 1, 0]),
}


@pytest.fixture(scope="module")
def round_store(tmp_path_factory, shared_data):
    """A blinded CT round, both readers and the repeat done, features computed (ct preset)."""
    root = tmp_path_factory.mktemp("round") / "store"
    store = Store.open(root)
    store.use_system_reader("coordinator", site_code="IT03")
    lung = shared_data / "ibsi_ct_lung_pat1"
    import_ct(store, lung / "dicom" / "image", "IT03-0001")
    gtv = sitk.ReadImage(str(lung / "nifti" / "mask" / "mask.nii.gz")) != 0
    halves = _parts(gtv)
    readers = {name: store.add_reader(name, "radiologist", "IT03") for name in ("Dr Alpha", "Dr Beta")}
    create_round(store, "CT inter 1", "ct", ["IT03-0001"], list(readers), repeats=2, blinded=True)
    subject = store.subject_by_code("IT03-0001")
    masks = {}
    for (name, repeat), change in READINGS.items():
        store.use_reader(readers[name])
        current = current_assignment(store, readers[name].id, subject.id)
        assert current["repeat"] == repeat
        for lesion, half in halves.items():
            mask = sitk.Cast(change(half), sitk.sitkUInt8)
            masks[(name, repeat, lesion)] = sitk.GetArrayFromImage(mask)
            seg = add_segmentation(store, "IT03-0001", "CT", mask, lesion_name=lesion, organ="lung")
            record_work(store, current["id"], seg)
            compute_features_for_segmentation(store, seg.id, "ct")
        finish(store, current["id"])
    store.close()
    return root, readers, masks, gtv.GetSpacing()


def test_a_blinded_reader_sees_only_their_current_reading(round_store):
    root, readers, _, _ = round_store
    with Store.open(root) as store:
        subject = store.subject_by_code("IT03-0001")
        everything = subject_segmentations(store, subject.id)
        assert len(everything) == 6  # the latest final of each reader's chain per lesion
        alpha = visible_segmentations(store, readers["Dr Alpha"].id, subject.id, everything)
        beta = visible_segmentations(store, readers["Dr Beta"].id, subject.id, everything)
        assert {s.reader_id for s in alpha} == {readers["Dr Alpha"].id} and len(alpha) == 3
        assert beta == []  # Beta's current reading is the repeat not yet started: blind to reading 1 too
        first_alpha = [
            s
            for s in store.rows("segmentations")
            if s["version"] == 1 and s["reader_id"] == alpha[0].reader_id
        ]
        with pytest.raises(BlindedError, match="blinded round"):  # nor their own earlier repeat
            check_visible(store, readers["Dr Alpha"].id, subject.id, first_alpha[0])
        with pytest.raises(BlindedError):
            check_visible(store, readers["Dr Beta"].id, subject.id, alpha[0])
        codes = [a.label for a in assignments_of(store, reader_id=readers["Dr Beta"].id)]
        assert codes == ["Case 01 (reading 1)", "Case 01 (reading 2)"] and "IT03" not in "".join(codes)


def test_exports_and_pet_tools_use_the_readers_own_chain_and_respect_blinding(round_store):
    """segmentation export (and the PET metrics, same rule: reading_set.version_in_use) take the
    current reader's own newest final version, else the newest one they may see; never a hidden one."""
    from palmares_desktop.core.segmentation.export import subject_masks
    from palmares_desktop.core.segmentation.geometry import SegmentationError

    root, readers, _, _ = round_store
    with Store.open(root) as store:
        ids = {r.id: r.name for r in store.readers()}
        store.use_reader(readers["Dr Alpha"])  # Alpha's repeat (reading 2) is current
        alpha = subject_masks(store, "IT03-0001")
        assert {ids[v.reader_id] for _, _, v in alpha} == {"Dr Alpha"} and len(alpha) == 3
        assert {v.version for _, _, v in alpha} == {2}  # their own newest, the repeat
        store.use_reader(readers["Dr Beta"])  # repeat 2 not started: blind to every reading 1, own too
        with pytest.raises(SegmentationError, match="no saved segmentation"):
            subject_masks(store, "IT03-0001")
        outsider = store.add_reader("Dr Gamma", "radiologist", "IT03")  # not in the round
        store.use_reader(outsider)
        newest = subject_masks(store, "IT03-0001")
        assert len(newest) == 3 and {ids[v.reader_id] for _, _, v in newest} == {"Dr Alpha"}
        with pytest.raises(SegmentationError, match="no lesion named"):
            subject_masks(store, "IT03-0001", lesion_name="nowhere")


def test_agreement_numbers_equal_simpleitk_and_pingouin(round_store):
    import pandas as pd
    import pingouin

    root, readers, masks, spacing = round_store
    with Store.open(root, read_only=True) as store:
        report = round_report(store, "CT inter 1")
    pairs = {(p["lesion"], p["scope"]): p for p in report.pairs}
    assert len(report.pairs) == 6  # 3 lesions x (Alpha/Beta, Alpha 1/Alpha 2)
    for lesion in ("upper", "middle", "lower"):
        for scope, a, b in (
            ("inter-reader", ("Dr Alpha", 1), ("Dr Beta", 1)),
            ("intra-reader", ("Dr Alpha", 1), ("Dr Alpha", 2)),
        ):
            ma, mb = (sitk.GetImageFromArray(masks[(*r, lesion)]) for r in (a, b))
            overlap = sitk.LabelOverlapMeasuresImageFilter()
            overlap.Execute(ma, mb)
            assert pairs[(lesion, scope)]["dice"] == pytest.approx(overlap.GetDiceCoefficient(), abs=1e-9)
            assert pairs[(lesion, scope)]["jaccard"] == pytest.approx(
                overlap.GetJaccardCoefficient(), abs=1e-9
            )
            voxel_ml = float(np.prod(spacing)) / 1000
            expected_dv = (int(masks[(*b, lesion)].sum()) - int(masks[(*a, lesion)].sum())) * voxel_ml
            assert pairs[(lesion, scope)]["volume_difference_ml"] == pytest.approx(expected_dv, rel=1e-9)
        # a one-voxel dilation moves the outline by one voxel: HD95 is one in-plane voxel spacing or more
        assert pairs[(lesion, "inter-reader")]["hd95_mm"] >= min(spacing) - 1e-9
    icc = {
        f["feature"]: f for f in report.features if f["scope"] == "inter-reader" and f["kind"] == "ICC(2,1)"
    }
    assert len(icc) > 50 and report.params_sha256
    # pingouin on the same table, for a volume feature that differs clearly between readers
    name = "original_shape_MeshVolume"
    with Store.open(root, read_only=True) as store:
        values = {}
        for seg in store.rows("segmentations"):
            fs = [
                f
                for f in store.rows("feature_sets", "segmentation_id = ?", [seg["id"]])
                if f["status"] == "ok"
            ]
            lesion = store.get("lesions", seg["lesion_id"])["name"]
            values[(lesion, seg["reader_id"], seg["version"])] = json.loads(fs[0]["features_json"])[name]
    alpha, beta = readers["Dr Alpha"].id, readers["Dr Beta"].id
    long = pd.DataFrame(
        [
            (lesion, who, values[(lesion, rid, 1)])
            for lesion in ("upper", "middle", "lower")
            for who, rid in (("a", alpha), ("b", beta))
        ],
        columns=["lesion", "reader", "value"],
    )
    expected = pingouin.intraclass_corr(long, targets="lesion", raters="reader", ratings="value").set_index(
        "Type"
    )
    assert icc[name]["icc"] == pytest.approx(expected.loc["ICC(A,1)", "ICC"], abs=1e-9)
    assert report.robust["inter-reader ICC(2,1)"] and "intra-reader Dr Alpha ICC(3,1)" in report.robust


def test_report_files_and_the_cli(round_store, tmp_path):
    root, _, _, _ = round_store
    with Store.open(root, read_only=True) as store:
        written = write_report(round_report(store, "CT inter 1"), tmp_path / "round.parquet")
    import pyarrow.parquet as pq

    assert [p.name for p in written] == ["round.parquet", "round_masks.parquet"]
    assert pq.read_table(written[1]).num_rows == 6
    done = subprocess.run(
        [sys.executable, "-c", CLI, "study", "round", "report", "--store", str(root), "--name", "CT inter 1",
         "--out", str(tmp_path / "r.csv"), "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert len(out["pairs"]) == 6 and (tmp_path / "r_masks.csv").read_text().count("\n") == 7
    status = subprocess.run(
        [sys.executable, "-c", CLI, "study", "round", "status", "--store", str(root), "--name", "CT inter 1", "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    states = sorted(a["status"] for a in json.loads(status.stdout)["assignments"])
    assert states == ["assigned", "done", "done", "done"]  # Dr Beta has not done the repeat


def test_closing_lifts_blinding_and_bad_rounds_are_refused_in_words(round_store, tmp_path):
    root, readers, _, _ = round_store
    with Store.open(tmp_path / "s") as store:
        store.use_system_reader("coordinator", site_code="IT03")
        store.ensure_subject("IT03-0002")
        store.add_reader("Dr Solo", "radiologist", "IT03")
        with pytest.raises(RoundError, match="two readers"):
            create_round(store, "r", "ct", ["IT03-0002"], ["Dr Solo"])
        with pytest.raises(RoundError, match="Unknown reader"):
            create_round(store, "r", "ct", ["IT03-0002"], ["Dr Solo", "Dr Nobody"])
        with pytest.raises(RoundError, match="no subject IT03-0099"):
            create_round(store, "r", "ct", ["IT03-0099"], ["Dr Solo"], repeats=2)
        with pytest.raises(RoundError, match="not a modality here: use ct, pet or he"):
            create_round(store, "r", "mri", ["IT03-0002"], ["Dr Solo"], repeats=2)
    copy = tmp_path / "closed"
    import shutil

    shutil.copytree(root, copy)
    with Store.open(copy) as store:
        store.use_system_reader("coordinator", site_code="IT03")
        close_round(store, "CT inter 1")
        subject = store.subject_by_code("IT03-0001")
        everything = subject_segmentations(store, subject.id)
        assert len(visible_segmentations(store, readers["Dr Beta"].id, subject.id, everything)) == 6

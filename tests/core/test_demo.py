"""The demo study: real DICOM, label maps and slide files, read back by independent readers.

Values checked against the phantom's plan: geometry (size, spacing, origin, one study and frame of
reference), CT in HU (liver ~60 HU), PET in BQML/CNTS whose SUV recovers the planted uptake, the
label maps on the exact image grids, and the slide pyramid with its MPP. The 1-subject demo is
written once per module; the 3-subject run (one per vendor convention) is marked slow.
"""

from __future__ import annotations

import math
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from palmares_desktop.core.demo.demo_store import (
    BUILT_SETTING,
    DEMO_READER,
    build_demo_store,
    load_manifest,
    write_demo_study,
)
from palmares_desktop.core.pet.suv import compute_suv
from palmares_desktop.core.slides.reader import level_array, open_slide
from palmares_desktop.core.store import Store


@pytest.fixture(scope="module")
def demo1(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo1")
    start = time.perf_counter()
    manifest = write_demo_study(out, n_subjects=1)
    elapsed = time.perf_counter() - start
    subject = manifest.subjects[0]
    print(
        f"\n1-subject demo written in {elapsed:.1f} s (DICOM {subject.seconds['dicom']} s, "
        f"slide {subject.seconds['slide']} s)"
    )
    return manifest


def _read_series(folder: Path) -> tuple[sitk.Image, list[pydicom.Dataset]]:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    datasets = [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))]
    return reader.Execute(), datasets


def _value_at(image: sitk.Image, point_mm, radius: int = 0) -> float:
    i, j, k = image.TransformPhysicalPointToIndex(tuple(point_mm))
    array = sitk.GetArrayViewFromImage(image)
    return float(array[k, j - radius : j + radius + 1, i - radius : i + radius + 1].mean())


def _dt(da: str, tm: str) -> datetime:
    return datetime.strptime(da + tm.split(".")[0], "%Y%m%d%H%M%S")


def test_ct_series_has_the_planned_geometry_and_hounsfield_units(demo1):
    subject = demo1.subjects[0]
    image, datasets = _read_series(demo1.path(subject.dicom_folder) / "SE0002_CT")
    assert image.GetSize() == (320, 320, 120) == tuple(subject.ct_grid["size"])
    assert image.GetSpacing() == pytest.approx((1.5625, 1.5625, 2.5))
    assert image.GetOrigin() == pytest.approx((-249.21875, -249.21875, -300.0))
    first = datasets[0]
    assert first.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert (first.RescaleSlope, first.RescaleIntercept, first.PixelRepresentation) == (1, -1024, 1)
    assert first.pixel_array.dtype == np.int16
    assert str(first.PatientName) == "DEMO^SUBJECT1" and first.StudyDate.startswith("2025")
    # Liver ~60 HU (5x5 voxel mean at the lesion-free reference point), lung ~ -850, air -1000.
    assert _value_at(image, subject.liver_reference["centre_mm"], radius=2) == pytest.approx(60, abs=6)
    assert _value_at(image, (-240, -240, -150)) == pytest.approx(-1000, abs=50)
    liver_met = next(lesion for lesion in subject.lesions if lesion["name"] == "liver metastasis")
    assert _value_at(image, liver_met["centre_mm"], radius=1) == pytest.approx(38, abs=10)  # hypodense


def test_pet_series_is_bqml_with_every_suv_tag_and_recovers_the_planted_suv(demo1):
    subject = demo1.subjects[0]
    assert subject.vendor == "siemens" and subject.pet_units == "BQML"
    folder = demo1.path(subject.dicom_folder)
    pet, datasets = _read_series(folder / "SE0003_PT")
    ct_first = pydicom.dcmread(next((folder / "SE0002_CT").glob("*.dcm")), stop_before_pixels=True)
    assert pet.GetSize() == (128, 128, 75)
    assert pet.GetSpacing() == pytest.approx((4.0, 4.0, 4.0))
    assert pet.GetOrigin() == pytest.approx((-254.0, -254.0, -298.0))
    first = datasets[0]
    assert first.SOPClassUID == "1.2.840.10008.5.1.4.1.1.128"
    assert first.StudyInstanceUID == ct_first.StudyInstanceUID == subject.study_uid
    assert first.FrameOfReferenceUID == ct_first.FrameOfReferenceUID == subject.frame_of_reference_uid
    assert first.Units == "BQML" and first.DecayCorrection == "START"
    assert {"ATTN", "DECY"} <= set(first.CorrectedImage)
    assert first.pixel_array.dtype == np.uint16
    slopes = {float(ds.RescaleSlope) for ds in datasets}
    assert len(slopes) > 20, "the rescale slope must vary per slice"
    drug = first.RadiopharmaceuticalInformationSequence[0]
    assert float(drug.RadionuclideHalfLife) == 6586.2
    # Independent SUVbw factor from the header (DOMAIN.md §1, rule a: SeriesTime <= AcquisitionTime).
    t_ref = _dt(first.SeriesDate, first.SeriesTime)
    assert all(t_ref <= _dt(ds.AcquisitionDate, ds.AcquisitionTime) for ds in datasets)
    t_inj = datetime.strptime(drug.RadiopharmaceuticalStartDateTime.split(".")[0], "%Y%m%d%H%M%S")
    decayed = float(drug.RadionuclideTotalDose) * 2 ** (-(t_ref - t_inj).total_seconds() / 6586.2)
    factor = float(first.PatientWeight) * 1000 / decayed
    assert factor == pytest.approx(subject.suv_factor, rel=1e-12)
    # SimpleITK applies the per-slice slope: activity at each lesion centre = planted SUV / factor.
    activity = sitk.GetArrayViewFromImage(pet)
    for lesion in subject.lesions:
        k, j, i = lesion["expected"]["pet_centre_index_zyx"]
        assert activity[k, j, i] * factor == pytest.approx(lesion["planted_suv_max"], rel=1e-4), lesion[
            "name"
        ]
        assert lesion["expected"]["suv_max"] == pytest.approx(lesion["planted_suv_max"], rel=1e-4)
    liver = _value_at(pet, subject.liver_reference["centre_mm"], radius=1) * factor
    assert liver == pytest.approx(subject.liver_reference["planted_suv"], rel=0.15)
    # The project's SUV engine agrees with the demo's own factor on every slice.
    result = compute_suv(datasets)
    assert result.error is None
    assert set(result.suvbw_factors.values()) == pytest.approx([subject.suv_factor], rel=1e-9)


def test_label_maps_sit_on_the_ct_and_pet_grids_with_the_planted_lesions(demo1):
    subject = demo1.subjects[0]
    folder = demo1.path(subject.dicom_folder)
    organs = {lesion["organ"] for lesion in subject.lesions}
    assert {"liver", "bone", "lymph node"} <= organs
    for name, grid_key, series in (("ct", "ct_grid", "SE0002_CT"), ("pet", "pet_grid", "SE0003_PT")):
        labels = sitk.ReadImage(str(demo1.path(getattr(subject, f"{name}_labels"))))
        image, _ = _read_series(folder / series)
        assert labels.GetSize() == image.GetSize() == tuple(getattr(subject, grid_key)["size"])
        assert labels.GetSpacing() == pytest.approx(image.GetSpacing())
        assert labels.GetOrigin() == pytest.approx(image.GetOrigin())
        array = sitk.GetArrayViewFromImage(labels)
        for lesion in subject.lesions:
            voxels = int((array == lesion["label"]).sum())
            assert voxels == lesion["expected"][f"{name}_voxels"] > 0
            ml = voxels * math.prod(labels.GetSpacing()) / 1000
            assert ml == pytest.approx(lesion["volume_ml"], rel=0.35)  # voxelised ellipsoid vs exact volume


def test_slide_is_a_pyramid_of_at_least_20000_pixels_with_mpp(demo1):
    subject = demo1.subjects[0]
    info = open_slide(demo1.path(subject.slide))
    print(
        f"\nslide {info.width}x{info.height}, {len(info.levels)} levels, written in {subject.seconds['slide']} s"
    )
    assert info.format == "svs" and info.vendor == "aperio"
    assert info.width >= 20000 and info.height >= 20000 and len(info.levels) >= 4
    assert info.downsamples == pytest.approx([1, 2, 4, 8, 16][: len(info.levels)])
    assert (info.mpp_x, info.mpp_y, info.mpp_source) == (0.5, 0.5, "aperio description")
    smallest = np.asarray(level_array(demo1.path(subject.slide), len(info.levels) - 1)[:])
    background = (np.abs(smallest.astype(int) - [243, 243, 241]).sum(axis=-1) < 12).mean()
    assert 0.2 < background < 0.9, "expected both glass and tissue"
    tissue = smallest[np.abs(smallest.astype(int) - [243, 243, 241]).sum(axis=-1) > 40]
    assert tissue[:, 0].mean() > tissue[:, 1].mean() + 30, "H&E tissue is pink/purple (red > green)"
    tile = np.asarray(level_array(demo1.path(subject.slide), 0)[10240:10752, 10240:10752])
    assert tile.shape == (512, 512, 3)


def test_manifest_reloads_and_build_demo_store_imports_it_once(demo1, tmp_path):
    manifest = load_manifest(demo1.root)
    assert manifest is not None and [s.code for s in manifest.subjects] == ["IT99-0001"]
    start = time.perf_counter()
    root = build_demo_store(tmp_path / "store", work_dir=demo1.root, n_subjects=1)
    print(f"\n1-subject demo store built in {time.perf_counter() - start:.1f} s")
    subject = manifest.subjects[0]
    with Store.open(root) as store:
        assert store.setting(BUILT_SETTING)
        [row] = store.worklist()
        assert row["code"] == "IT99-0001" and row["modalities"] == ["CT", "PT", "HE"]
        pet = store.rows("series", "subject_id = ? and modality = 'PT'", [row["subject_id"]])[0]
        assert pet["units"] == "SUVbw"
        volume = sitk.GetArrayViewFromImage(sitk.ReadImage(str(store.path(pet["pixel_path"]))))
        for lesion in subject.lesions:
            k, j, i = lesion["expected"]["pet_centre_index_zyx"]
            assert volume[k, j, i] == pytest.approx(lesion["planted_suv_max"], rel=1e-4)
        [slide] = store.rows("slides")
        assert (slide["width"], slide["height"], slide["levels"], slide["mpp_x"]) == (22528, 20480, 5, 0.5)
        segmentations = store.rows("segmentations")
        assert len(segmentations) == 2 * len(subject.lesions)
        expected_ml = sorted(
            round(lesion["expected"][f"{m}_volume_ml"], 6)
            for lesion in subject.lesions
            for m in ("ct", "pet")
        )
        assert sorted(round(s["volume_ml"], 6) for s in segmentations) == expected_ml
        bone = store.rows("lesions", "organ = 'bone'")[0]
        assert bone["bone_character"] in ("lytic", "blastic") and bone["lesion_type"] == "metastasis"
        authors = {r["author_id"] for r in store.rows("segmentations")}
        assert [r.name for r in store.readers() if r.id in authors] == [DEMO_READER]
        audit_before = store.db["audit_log"].count
    assert build_demo_store(root, work_dir=demo1.root, n_subjects=1) == root  # second run: nothing to do
    with Store.open(root) as store:
        assert store.db["audit_log"].count == audit_before and store.db["series"].count == 2


def test_a_build_interrupted_between_slide_and_lesions_resumes_without_duplicates(
    demo1, tmp_path, monkeypatch
):
    from palmares_desktop.core.segmentation import labelmaps

    real, calls = labelmaps.add_segmentation, []

    def dies_on_the_third(*args, **kwargs):  # as if the process died mid-way through the lesions
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(labelmaps, "add_segmentation", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        build_demo_store(tmp_path / "store", work_dir=demo1.root, n_subjects=1)
    monkeypatch.setattr(labelmaps, "add_segmentation", real)
    with Store.open(tmp_path / "store") as store:
        assert not store.setting(BUILT_SETTING) and len(store.rows("segmentations")) == 2
    build_demo_store(tmp_path / "store", work_dir=demo1.root, n_subjects=1)  # the next start
    lesions = load_manifest(demo1.root).subjects[0].lesions
    with Store.open(tmp_path / "store") as store:
        assert store.setting(BUILT_SETTING)
        assert len(store.rows("slides")) == 1 and store.db["series"].count == 2
        segmentations = store.rows("segmentations")
        assert len(segmentations) == 2 * len(lesions)
        assert {s["version"] for s in segmentations} == {1}  # none added twice


def test_the_first_subject_is_ready_before_its_slide_is_drawn_and_a_broken_slide_write_resumes(
    tmp_path, monkeypatch
):
    """First start: a subject is on the worklist once its CT, PET and lesions are in (its slide takes
    longer to draw, so it follows); a slide write cut short leaves no file under the slide's name."""
    from palmares_desktop.core.demo import demo_store
    from palmares_desktop.core.tasks import run

    real = demo_store.write_slide

    def dies_mid_write(path, *args, **kwargs):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(b"half a slide")
        raise KeyboardInterrupt

    monkeypatch.setattr(demo_store, "write_slide", dies_mid_write)
    root, work, steps = tmp_path / "store", tmp_path / "work", []
    with pytest.raises(KeyboardInterrupt):
        run(demo_store.iter_build_demo_store(root, work_dir=work, n_subjects=1), steps.append)
    ready = [step.message for step in steps if demo_store.subject_ready(step)]
    assert ready == ["IT99-0001 ready"]
    with Store.open(root) as store:
        assert store.db["series"].count == 2 and len(store.rows("slides")) == 0
        assert len(store.rows("segmentations")) == 2 * len(load_manifest(work).subjects[0].lesions)
    assert not (work / "slides" / "DEMO-SUBJECT1-HE.svs").exists()
    monkeypatch.setattr(demo_store, "write_slide", real)
    build_demo_store(root, work_dir=work, n_subjects=1)  # the next start draws the slide again
    with Store.open(root) as store:
        assert store.setting(BUILT_SETTING) and len(store.rows("slides")) == 1
        assert store.db["series"].count == 2
    assert load_manifest(work).subjects[0].slide_info["width"] > 0


@pytest.mark.slow
def test_three_subjects_cover_siemens_ge_and_philips_suv_conventions(tmp_path):
    start = time.perf_counter()
    manifest = write_demo_study(tmp_path, n_subjects=3)
    print(
        f"\n3-subject demo written in {time.perf_counter() - start:.1f} s: "
        + ", ".join(
            f"{s.code} DICOM {s.seconds['dicom']} s slide {s.seconds['slide']} s" for s in manifest.subjects
        )
    )
    assert [s.vendor for s in manifest.subjects] == ["siemens", "ge", "philips"]
    assert len({s.study_uid for s in manifest.subjects}) == 3
    for subject in manifest.subjects:
        datasets = [
            pydicom.dcmread(p) for p in sorted(manifest.path(subject.dicom_folder).glob("SE0003_PT/*.dcm"))
        ]
        first = datasets[0]
        series_time = _dt(first.SeriesDate, first.SeriesTime)
        earliest = min(_dt(ds.AcquisitionDate, ds.AcquisitionTime) for ds in datasets)
        if subject.vendor == "ge":
            assert (
                series_time > earliest and "RadiopharmaceuticalStartDateTime" not in first[0x0054, 0x0016][0]
            )
            block = first.private_block(0x0009, "GEMS_PETD_01")
            assert datetime.strptime(block[0x0D].value[:14], "%Y%m%d%H%M%S") == earliest
        if subject.vendor == "philips":
            block = first.private_block(0x7053, "Philips PET Private Group")
            assert first.Units == "CNTS" and float(block[0x00].value) == subject.suv_factor
            assert float(block[0x09].value) > 0
        result = compute_suv(datasets)
        assert result.error is None, result.error
        assert set(result.suvbw_factors.values()) == pytest.approx([subject.suv_factor], rel=1e-9), (
            subject.vendor
        )
        for lesion in subject.lesions:
            assert lesion["expected"]["suv_max"] == pytest.approx(lesion["planted_suv_max"], rel=1e-4)

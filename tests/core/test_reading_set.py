from palmares_desktop.core.importer import import_dicom
from palmares_desktop.core.reading_set import subject_segmentations, subject_series


def test_ct_and_pet_of_one_frame_of_reference_are_chosen_for_fusion(store, shared_data):
    import_dicom(store, shared_data / "petct_sts_001", "IT03-0001")
    subject = store.subject_by_code("IT03-0001")
    ct, pet, notes = subject_series(store, subject.id)
    assert (ct.modality, pet.modality) == ("CT", "PT")
    assert ct.frame_of_reference_uid == pet.frame_of_reference_uid
    assert notes == []
    assert subject_segmentations(store, subject.id) == []


def test_only_the_latest_version_of_each_lesion_is_shown(store, shared_data):
    import SimpleITK as sitk

    from palmares_desktop.core.segmentation.labelmaps import add_segmentation

    import_dicom(store, shared_data / "petct_sts_001", "IT03-0001")
    subject = store.subject_by_code("IT03-0001")
    _, pet, _ = subject_series(store, subject.id)
    suv = sitk.ReadImage(str(store.path(pet.pixel_path)))
    for threshold in (2.5, 4.0):  # two versions of one lesion, drawn with different thresholds
        add_segmentation(
            store, "IT03-0001", "PT", sitk.Cast(suv >= threshold, sitk.sitkUInt8), lesion_name="GTV"
        )
    (shown,) = subject_segmentations(store, subject.id)
    assert (shown.lesion_name, shown.version, shown.series_modality) == ("GTV", 2, "PT")

"""The radiomics engine on real data: presets, exact equality with pyradiomics, errors in words, lock."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import SimpleITK as sitk
from radiomics.featureextractor import RadiomicsFeatureExtractor

from palmares_desktop.core.radiomics import params as P
from palmares_desktop.core.radiomics.errors import RadiomicsError, RadiomicsLockError
from palmares_desktop.core.radiomics.extract import _extractor, extract_features, read_image
from palmares_desktop.core.radiomics.ibsi import PHANTOM_PARAMS_TEXT, phantom_params
from palmares_desktop.core.radiomics.images import image_sha256
from palmares_desktop.core.radiomics.stain import hematoxylin, hematoxylin_image, label_map_image


@pytest.fixture(scope="module")
def lung(shared_data):
    folder = shared_data / "ibsi_ct_lung_pat1" / "nifti"
    return sitk.ReadImage(str(folder / "image" / "phantom.nii.gz")), sitk.ReadImage(
        str(folder / "mask" / "mask.nii.gz")
    )


@pytest.fixture(scope="module")
def phantom(shared_data):
    folder = shared_data / "ibsi_digital_phantom"
    return sitk.ReadImage(str(folder / "image" / "phantom.nii.gz")), sitk.ReadImage(
        str(folder / "mask" / "mask.nii.gz")
    )


def _same_as_pyradiomics(result, raw):
    """Every pyradiomics key, in pyradiomics' order, with exactly pyradiomics' value."""
    ours = {**result.diagnostics, **result.values}
    assert list(ours) == list(raw)
    for key, value in raw.items():
        if key.startswith("diagnostics_"):
            assert ours[key] == json.loads(json.dumps(value, default=lambda o: o.tolist())), key
        else:
            assert type(ours[key]) is float, key
            assert ours[key] == float(value), key  # exact, not approximate


# ------------------------------------------------------------------------------------ presets
@pytest.mark.parametrize("name", P.PRESETS)
def test_every_preset_validates_and_is_identified_by_its_bytes(name):
    params = P.load_params(name)
    path = P.PRESET_DIR / f"{name}.yaml"
    assert params.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert params.text == path.read_text(encoding="utf-8")
    assert params.settings["imageType"] == {"Original": {}}
    assert params.setting("correctMask") is False
    assert 0 < params.setting("geometryTolerance") <= 1e-3
    RadiomicsFeatureExtractor(str(path))  # pyradiomics itself accepts the file
    assert P.load_params(str(path)).sha256 == params.sha256


def test_preset_choices_are_the_documented_ones():
    ct, pet, he = (P.load_params(n) for n in P.PRESETS)
    assert ct.setting("resampledPixelSpacing") == [2.0, 2.0, 2.0]
    assert ct.setting("interpolator") == "sitkLinear"
    assert ct.setting("resegmentRange") == [-1000.0, 400.0] and ct.setting("binWidth") == 25.0
    assert pet.setting("resegmentRange") == [0.0] and pet.setting("binWidth") == 0.5
    assert he.setting("force2D") is True and "shape2D" in he.settings["featureClass"]


def test_invalid_parameter_files_are_refused_in_words(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("setting:\n  binWidth: wide\n  binWidht: 25\n")
    with pytest.raises(RadiomicsError) as err:
        P.load_params(bad)
    assert str(err.value) == (
        "The radiomics parameter file bad.yaml is not valid: setting > binWidth must be a number, not 'wide'; "
        "'binWidht' is not a pyradiomics option (in setting)."
    )
    bad.write_text("setting: [1, 2\n")
    with pytest.raises(RadiomicsError, match=r"is not valid YAML \(line 2, column 1"):
        P.load_params(bad)
    bad.write_text("featureClass:\n  glcm: [Contrastt]\n")
    with pytest.raises(RadiomicsError, match="glcm contains unrecognized features"):
        P.load_params(bad)
    bad.write_text("setting:\n  minimumROIDimensions: 4\n")
    with pytest.raises(RadiomicsError, match="minimumROIDimensions is 4, greater than the maximum 3"):
        P.load_params(bad)
    with pytest.raises(RadiomicsError, match="does not exist"):
        P.load_params(tmp_path / "missing.yaml")
    (tmp_path / "params.txt").write_text("setting: {}\n")
    with pytest.raises(RadiomicsError, match="use a .yaml, .yml or .json file"):
        P.load_params(tmp_path / "params.txt")
    (tmp_path / "p.json").write_text('{"setting": {"binWidth": 10}}')
    assert P.load_params(tmp_path / "p.json").setting("binWidth") == 10


# -------------------------------------------------------------------- exactly pyradiomics' values
def test_lung_ct_features_equal_pyradiomics_exactly(lung):
    image, mask = lung
    params = P.load_params("ct")
    raw = RadiomicsFeatureExtractor(str(params.path)).execute(image, mask)
    result = extract_features(image, mask, params)
    _same_as_pyradiomics(result, raw)
    assert len(result.values) == 107
    assert result.values["original_shape_VoxelVolume"] == 360856.0  # 2 mm grid: 45107 voxels of 8 mm³
    assert result.values["original_firstorder_Mean"] == pytest.approx(-43.102, abs=1e-3)

    prov = result.provenance
    assert prov["params"]["sha256"] == params.sha256 and prov["params"]["text"] == params.text
    assert prov["versions"]["pyradiomics"] == raw["diagnostics_Versions_PyRadiomics"]
    assert set(prov["versions"]) >= {"SimpleITK", "numpy", "python", "palmares", "pywavelets"}
    assert prov["image"]["pyradiomics_hash"] == raw["diagnostics_Image-original_Hash"]
    assert prov["mask"]["pyradiomics_hash"] == raw["diagnostics_Mask-original_Hash"]
    assert prov["image"]["sha256"] == image_sha256(image) and prov["image"]["size"] == [204, 201, 60]
    assert prov["label"] == 1 and prov["computed_at"].endswith("+00:00")
    json.dumps(result.to_dict(), allow_nan=False)


def test_phantom_features_equal_pyradiomics_exactly(phantom, tmp_path):
    image, mask = phantom
    path = tmp_path / "ibsi.yaml"
    path.write_text(PHANTOM_PARAMS_TEXT)
    raw = RadiomicsFeatureExtractor(str(path)).execute(image, mask)
    result = extract_features(image, mask, phantom_params())
    _same_as_pyradiomics(result, raw)
    assert result.values["original_shape_VoxelVolume"] == 592.0
    assert result.values["original_firstorder_Mean"] == pytest.approx(2.1486486, abs=1e-7)


def test_extractor_built_once_per_parameter_file_and_pyradiomics_kept_quiet(phantom, capfd):
    params = phantom_params()
    assert _extractor(params) is _extractor(P.parse_params(params.text, "same bytes, other name"))
    result = extract_features(*phantom, params)
    assert "GLCM is symmetrical" in " ".join(result.provenance["warnings"])  # collected...
    assert capfd.readouterr().err == ""  # ...not printed


def test_image_hash_sees_voxels_and_geometry(phantom):
    image, _ = phantom
    moved = sitk.Image(image)
    moved.SetOrigin((0.0, 0.0, 1.0))
    assert image_sha256(image) == image_sha256(sitk.Image(image)) != image_sha256(moved)


# --------------------------------------------------------------------------------- bad inputs
def _mask_like(image, array):
    mask = sitk.GetImageFromArray(array.astype(np.uint8))
    mask.CopyInformation(image)
    return mask


def test_absent_label_and_empty_mask(lung):
    image, mask = lung
    with pytest.raises(RadiomicsError) as err:
        extract_features(image, mask, P.load_params("ct"), label=2)
    assert str(err.value) == "Label 2 is not present in the mask; the mask's labels are 1."
    assert "not present in mask" in err.value.reason  # pyradiomics' own words kept
    empty = _mask_like(image, np.zeros(sitk.GetArrayViewFromImage(mask).shape))
    with pytest.raises(RadiomicsError, match="The mask is empty"):
        extract_features(image, empty, P.load_params("ct"))


def test_geometry_mismatch_fails_loudly_even_when_resampling(lung, phantom):
    image, mask = lung
    shifted = sitk.Image(mask)
    shifted.SetOrigin(tuple(o + 0.5 for o in mask.GetOrigin()))
    # pyradiomics alone would resample this mask onto the 2 mm grid without a word.
    with pytest.raises(RadiomicsError, match=r"not on the image's voxel grid: its origin differs by 0.5 mm"):
        extract_features(image, shifted, P.load_params("ct"))
    with pytest.raises(RadiomicsError, match=r"image size 204×201×60, mask size 5×4×4"):
        extract_features(image, phantom[1], P.load_params("ct"))
    tiny = sitk.Image(mask)
    tiny.SetOrigin(tuple(o + 1e-5 for o in mask.GetOrigin()))  # float32 header rounding: tolerated
    assert extract_features(image, tiny, P.load_params("ct")).values["original_shape_VoxelVolume"] == 360856.0


def test_single_voxel_too_few_dimensions_and_too_small(lung, phantom):
    image, mask = lung
    arr = np.zeros(sitk.GetArrayViewFromImage(mask).shape)
    arr[30, 100, 100] = 1
    with pytest.raises(RadiomicsError, match=r"The region \(label 1\) is a single voxel"):
        extract_features(image, _mask_like(image, arr), P.load_params("ct"))
    arr[30, 95:105, 95:105] = 1  # one slice only
    with pytest.raises(RadiomicsError, match=r"extends in only 2 dimension\(s\).*requires 3"):
        extract_features(image, _mask_like(image, arr), P.load_params("ct"))
    small = P.parse_params(PHANTOM_PARAMS_TEXT.replace("  label: 1\n", "  label: 1\n  minimumROISize: 100\n"))
    with pytest.raises(RadiomicsError, match=r"has 74 voxels .* requires more than 100 \(minimumROISize\)"):
        extract_features(*phantom, small)


def test_resegmentation_leaving_nothing_and_wrong_image_kinds(phantom):
    image, mask = phantom
    hot = P.parse_params(
        PHANTOM_PARAMS_TEXT.replace("  label: 1\n", "  label: 1\n  resegmentRange: [100.0]\n")
    )
    with pytest.raises(
        RadiomicsError, match=r"Re-segmentation to the intensity range \[100.0\] left 0 voxel"
    ):
        extract_features(image, mask, hot)
    rgb = sitk.Compose(image, image, image)
    with pytest.raises(RadiomicsError, match="3 values per voxel"):
        extract_features(rgb, mask, phantom_params())
    fractional = sitk.Cast(mask, sitk.sitkFloat32) * 0.5
    with pytest.raises(RadiomicsError, match="fractional values"):
        extract_features(image, fractional, phantom_params())
    with pytest.raises(RadiomicsError, match="must be a SimpleITK image"):
        extract_features(sitk.GetArrayFromImage(image), mask, phantom_params())


# -------------------------------------------------------------------------------------- reading
def test_read_image_files_and_dicom_folder(shared_data, tmp_path):
    nifti = read_image(shared_data / "ibsi_ct_lung_pat1" / "nifti" / "image" / "phantom.nii.gz")
    dicom = read_image(shared_data / "ibsi_ct_lung_pat1" / "dicom" / "image")
    assert dicom.GetSize() == nifti.GetSize() == (204, 201, 60)
    assert dicom.GetSpacing() == pytest.approx(nifti.GetSpacing(), abs=1e-4)
    assert float(sitk.GetArrayViewFromImage(dicom).mean()) == pytest.approx(-266.5, abs=0.1)
    with pytest.raises(RadiomicsError, match="The image .*nothing.nii does not exist"):
        read_image(tmp_path / "nothing.nii")
    (tmp_path / "notes.nrrd").write_text("not an image")
    with pytest.raises(RadiomicsError, match="Cannot read the mask file notes.nrrd"):
        read_image(tmp_path / "notes.nrrd", "mask")
    with pytest.raises(RadiomicsError, match="holds no"):
        read_image(tmp_path)


def test_pet_dicom_folder_is_read_in_suv(shared_data):
    """The oncoray SUV DRO (Units BQML, decay START): inside its mask SUV is 0.20 / 1.00 / 4.00."""
    dro = shared_data / "suv_dro_oncoray" / "DRO" / "DRO_0_0"
    image = read_image(dro / "PT")
    mask = read_image(dro / "mask" / "DRO_mask.nii.gz", "mask")
    no_resampling = P.parse_params("setting:\n  binWidth: 0.5\nfeatureClass:\n  firstorder: []\n", "suv.yaml")
    values = extract_features(image, mask, no_resampling).values
    assert round(values["original_firstorder_Minimum"], 2) == 0.20
    assert round(values["original_firstorder_Median"], 2) == 1.00
    assert round(values["original_firstorder_Maximum"], 2) == 4.00
    assert len(extract_features(image, mask, P.load_params("pet")).values) == 107
    comunix = shared_data / "pet_bqml_orthanc" / "comunix_petct"
    with pytest.raises(
        RadiomicsError, match=r"Cannot convert the PET image to SUV: PatientWeight .* is 0 kg"
    ):
        read_image(comunix / "PET")
    with pytest.raises(RadiomicsError, match="holds 2 DICOM series .*: point to one series"):
        read_image(comunix)


# -------------------------------------------------------------------------------------- H&E
def test_hematoxylin_channel_and_he_preset_on_a_real_slide(shared_data):
    tifffile = pytest.importorskip("tifffile")
    with tifffile.TiffFile(shared_data / "wsi_svs" / "CMU-1-Small-Region.svs") as slide:
        rgb = slide.pages[0].asarray()[1000:1256, 800:1056]
    skimage_color = pytest.importorskip("skimage.color")
    np.testing.assert_allclose(hematoxylin(rgb), skimage_color.rgb2hed(rgb)[..., 0], rtol=0, atol=1e-12)
    channel = hematoxylin_image(rgb, 0.499)
    assert channel.GetSpacing() == pytest.approx((0.000499, 0.000499))
    mask = label_map_image((rgb.mean(axis=-1) < 200).astype(np.uint8), channel)
    params = P.load_params("he")
    raw = RadiomicsFeatureExtractor(str(params.path)).execute(channel, mask)
    result = extract_features(channel, mask, params)
    _same_as_pyradiomics(result, raw)
    assert (
        "original_shape2D_PixelSurface" in result.values and "original_shape_VoxelVolume" not in result.values
    )


# ----------------------------------------------------------------------------------------- lock
def test_study_lock_records_or_refuses_other_files(store):
    ct, custom = (
        P.load_params("ct"),
        P.parse_params(P.load_params("ct").text + "# edited\n", "ct-edited.yaml"),
    )
    assert P.check_lock(store, "CT", custom) is None  # nothing locked
    P.lock_params(store, "CT", ct)
    assert P.check_lock(store, "ct", ct) is None
    deviation = P.check_lock(store, "CT", custom)
    assert deviation == (
        f"Parameter file ct-edited.yaml (sha256 {custom.sha256[:12]}) is not the study's locked "
        f"CT parameter file ct (sha256 {ct.sha256[:12]})."
    )
    assert P.check_lock(store, "PT", custom) is None  # the lock is per modality
    P.set_lock_mode(store, "refuse")
    with pytest.raises(RadiomicsLockError, match="refuses extraction with any other file"):
        P.check_lock(store, "CT", custom)
    assert P.locked_params(store, "CT").sha256 == ct.sha256
    assert P.params_for_modality(store, "CT").sha256 == ct.sha256
    assert P.params_for_modality(store, "PET").name == "pet"
    P.unlock_params(store, "CT")
    assert P.check_lock(store, "CT", custom) is None and P.locked_params(store, "CT") is None
    audited = [r["row_id"] for r in store.rows("audit_log", "action = ?", ["setting"])]
    assert "radiomics.locked.ct" in audited and "radiomics.lock_mode" in audited
    with pytest.raises(RadiomicsError, match="Modality 'MR' has no radiomics parameters"):
        P.check_lock(store, "MR", ct)

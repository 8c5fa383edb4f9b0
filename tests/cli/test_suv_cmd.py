"""`palmares suv DIR [--json]` on real folders: DROs, the orthanc PET slices, a CT-only folder."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from palmares_desktop.cli.suv_cmd import suv

SIEMENS_UID = "1.2.276.0.7230010.3.1.3.2831156400.1.1603115131.207837"
COMUNIX_UID = "1.3.12.2.1107.5.1.4.36085.2.0.3752006615092156"


def _run(*args: str):
    return CliRunner().invoke(suv, list(args))


def test_json_lists_every_pet_series_with_factor_or_reason(shared_data):
    result = _run(str(shared_data / "pet_bqml_orthanc"), "--json")
    assert result.exit_code == 3, result.output  # partial: the Comunix PET is refused (weight 0 kg)
    series = {s["series_uid"]: s for s in json.loads(result.stdout)["series"]}
    assert set(series) == {SIEMENS_UID, COMUNIX_UID}  # the Comunix CT series is not PET
    siemens = series[SIEMENS_UID]
    for key in ("suvbw_factors", "suvbw_factor", "method", "inputs", "error"):
        assert key in siemens
    assert siemens["error"] is None
    assert siemens["suvbw_factor"] == pytest.approx(0.0004463640735541788, rel=1e-9)
    assert list(siemens["suvbw_factors"].values()) == [siemens["suvbw_factor"]]
    assert siemens["inputs"]["reference_time_rule"].startswith("a:")
    assert siemens["inputs"]["injection_datetime"] == "2019-11-13T10:00:00"
    assert siemens["inputs"]["dose_Bq"] == 290000000.0
    comunix = series[COMUNIX_UID]
    assert (
        "weight" in comunix["error"].lower()
        and comunix["suvbw_factors"] == {}
        and comunix["suvbw_factor"] is None
    )


def test_per_slice_factors_when_they_differ(shared_data):
    result = _run(str(shared_data / "suv_dro_oncoray/DRO/DRO_3_4"), "--json")
    assert result.exit_code == 0
    (entry,) = json.loads(result.output)["series"]
    assert entry["suvbw_factor"] is None and len(entry["suvbw_factors"]) == 20
    assert len({round(v, 15) for v in entry["suvbw_factors"].values()}) == 2
    assert "DecayCorrection NONE" in entry["method"]


def test_all_dros_in_one_folder(shared_data):
    result = _run(str(shared_data / "suv_dro_oncoray/DRO"), "--json")
    assert result.exit_code == 0
    series = json.loads(result.output)["series"]
    assert len(series) == 17 and all(s["error"] is None for s in series)
    converted = [s for s in series if s["inputs"].get("dose_converted_from_MBq")]
    assert len(converted) == 1 and converted[0]["inputs"]["dose_as_stored"] == 368.08


def test_human_output_has_one_block_per_pet_series(shared_data):
    result = _run(str(shared_data / "pet_bqml_orthanc"))
    assert result.exit_code == 3
    assert "1 of 2 PET series could not be evaluated" in result.output
    assert result.stdout.count("PET series ") == 2
    assert "SUVbw factor: 0.0004463640736 (same for every image)" in result.output
    assert "REFUSED: PatientWeight (0010,1030) is 0 kg" in result.output
    assert "reference_time_rule: a: SeriesDate/SeriesTime" in result.output


def test_exit_status_when_nothing_could_be_evaluated(shared_data, tmp_path):
    refused = _run(str(shared_data / "pet_bqml_orthanc/comunix_petct"), "--json")
    assert refused.exit_code == 1
    assert "No PET series could be evaluated" in refused.output
    json_part = refused.output[: refused.output.rindex("}") + 1]
    assert json.loads(json_part)["series"][0]["error"]

    no_pet = _run(str(shared_data / "ct_3slice_seg_dcmqi"))
    assert no_pet.exit_code == 1 and "No PET series found" in no_pet.output

    missing = _run(str(tmp_path / "does-not-exist"))
    assert missing.exit_code != 0 and "is not a folder" in missing.output
    assert "Traceback" not in missing.output

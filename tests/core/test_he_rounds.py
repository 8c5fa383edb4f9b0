"""H&E reading rounds: two readers annotate the real CMU-1 slide (known offsets), and a repeat; the
round report's Dice of the rasterised regions equals the exact polygon Dice from shapely, and the
area difference is in mm² from the slide's MPP. Blinding lifts only when the round closes."""

from __future__ import annotations

import math

import pytest
import shapely

from palmares_desktop.core.agreement.regions import region_agreement
from palmares_desktop.core.slides.measure import measure_geometry, slide_stains
from palmares_desktop.core.slides.reader import open_slide
from palmares_desktop.core.slides.registry import register_slide
from palmares_desktop.core.store import Store
from palmares_desktop.core.store.slide_objects import save_annotations
from palmares_desktop.core.study.report import round_report
from palmares_desktop.core.study.rounds import (
    close_round,
    create_round,
    current_assignment,
    finish,
    reader_worklist,
    subject_shown,
)


def _exact_dice(a, b) -> float:
    return 2 * a.intersection(b).area / (a.area + b.area)


def test_region_agreement_against_shapely_and_the_empty_cases():
    a = shapely.box(0, 0, 1000, 1000)
    b = shapely.box(100, 50, 1100, 1050)
    got = region_agreement([a], [b], mpp=0.5)
    assert got.dice == pytest.approx(_exact_dice(a, b), abs=0.005)
    assert got.area_difference_mm2 == pytest.approx(0.0) and got.area_a_mm2 == pytest.approx(0.25)
    assert region_agreement([], [], mpp=0.5).dice == 1.0
    one_empty = region_agreement([a], [], mpp=None)
    assert one_empty.dice == 0.0 and one_empty.area_a_mm2 is None and one_empty.area_b_px == 0.0


def test_a_two_reader_he_round_with_a_repeat(tmp_path, shared_data):
    store = Store.open(tmp_path / "store")
    store.use_system_reader("coordinator", site_code="IT03")
    subject = store.ensure_subject("IT03-0001")
    slide = register_slide(store, subject.id, shared_data / "wsi_svs" / "CMU-1-Small-Region.svs")
    readers = {n: store.add_reader(n, "pathologist", "IT03") for n in ("Dr Alpha", "Dr Beta")}
    create_round(
        store, "HE inter", "he", ["IT03-0001"], list(readers), repeats=2, min_delay_days=0, blinded=True
    )
    tumour = {
        ("Dr Alpha", 1): shapely.box(200, 200, 1200, 1000),
        ("Dr Beta", 1): shapely.box(260, 230, 1260, 1030),  # shifted by (60, 30) px
        ("Dr Alpha", 2): shapely.box(200, 200, 1100, 1000),  # 100 px narrower
    }
    stroma = shapely.box(1300, 100, 1800, 600)
    for (name, repeat), polygon in tumour.items():
        store.use_reader(readers[name])
        current = current_assignment(store, readers[name].id, subject.id)
        assert current["repeat"] == repeat
        objects = [{"geometry": polygon, "classification": "Invasive tumour"}]
        if name == "Dr Alpha" and repeat == 1:
            objects.append({"geometry": stroma, "classification": "Tumour stroma"})
        save_annotations(store, slide, objects)
        finish(store, current["id"])
    store.use_reader(readers["Dr Beta"])  # Beta's repeat is left open: blind to every reading 1, own too
    from palmares_desktop.core.slides.annotation_session import AnnotationSession

    assert AnnotationSession(store, slide).objects == {}
    (row,) = reader_worklist(store)  # the worklist names the blinded case, never the subject code
    assert row["display"] == "Case 01 (reading 2)" and "IT03" not in row["display"] + row["reading"]
    assert row["reading"] == "HE inter: Case 01 (reading 2)"
    assert subject_shown(store, subject) == "Case 01 (reading 2)"  # what the rooms' titles say
    store.use_reader(readers["Dr Alpha"])  # round open: Alpha sees only their last reading
    (only,) = AnnotationSession(store, slide).objects.values()
    assert only["geometry"].equals(tumour[("Dr Alpha", 2)])
    report = round_report(store, "HE inter")
    mpp = slide.mpp_x
    pairs = {(p["scope"], p["lesion"]): p for p in report.pairs}
    inter = pairs[("inter-reader", "IT03-0001 Invasive tumour")]
    a, b = tumour[("Dr Alpha", 1)], tumour[("Dr Beta", 1)]
    assert inter["dice"] == pytest.approx(_exact_dice(a, b), abs=0.005)
    assert inter["area_difference_mm2"] == pytest.approx(0.0, abs=1e-12)
    stroma_pair = pairs[("inter-reader", "IT03-0001 Tumour stroma")]
    assert stroma_pair["dice"] == 0.0 and stroma_pair["area_b_mm2"] == 0.0  # Beta drew no stroma
    intra = [p for p in report.pairs if p["scope"] == "intra-reader" and p["lesion"].endswith("tumour")]
    alpha = next(p for p in intra if p["reader_a"] == "Dr Alpha")
    assert alpha["dice"] == pytest.approx(_exact_dice(a, tumour[("Dr Alpha", 2)]), abs=0.005)
    assert alpha["area_difference_mm2"] == pytest.approx(-100 * 800 * (mpp / 1000) ** 2)
    close_round(store, "HE inter")
    store.use_reader(readers["Dr Beta"])
    assert len(AnnotationSession(store, slide).objects) == 4  # closing lifts blinding
    assert subject_shown(store, subject) == "IT03-0001"
    ba = report.bland_altman("area_mm2")
    assert ba.n == 2 and ba.bias == pytest.approx((stroma.area * -1) * (mpp / 1000) ** 2 / 2)
    store.close()


def test_icc_of_he_region_features_equals_pingouin_on_exact_areas(tmp_path, shared_data):
    pg = pytest.importorskip("pingouin")
    import pandas as pd

    from palmares_desktop.core.study.he_agreement import region_features

    store = Store.open(tmp_path / "store")
    store.use_system_reader("coordinator", site_code="IT03")
    codes = [f"IT03-000{i}" for i in range(1, 5)]
    slides = {}
    for code in codes:
        subject = store.ensure_subject(code)
        slides[code] = register_slide(store, subject.id, shared_data / "wsi_svs" / "CMU-1-Small-Region.svs")
    readers = {n: store.add_reader(n, "pathologist", "IT03") for n in ("Dr Alpha", "Dr Beta")}
    create_round(store, "HE icc", "he", codes, list(readers), repeats=1, min_delay_days=0, blinded=True)
    # Tumours of different sizes per subject; Beta's outline is wider by a subject-dependent margin.
    boxes = {}
    for i, code in enumerate(codes):
        side = 300 + 250 * i
        boxes[("Dr Alpha", code)] = shapely.box(100, 100, 100 + side, 100 + side)
        boxes[("Dr Beta", code)] = shapely.box(100, 100, 100 + side + 20 * (i % 2) + 10, 100 + side)
    for name, reader in readers.items():
        store.use_reader(reader)
        for code in codes:
            subject = store.subject_by_code(code)
            objects = [{"geometry": boxes[(name, code)], "classification": "Invasive tumour"}]
            save_annotations(store, slides[code], objects)
            finish(store, current_assignment(store, reader.id, subject.id)["id"])
    report = round_report(store, "HE icc")
    mpp = slides[codes[0]].mpp_x
    got = {(f["feature"], f["kind"]): f for f in report.features if f["scope"] == "inter-reader"}
    # The features are exact shapely geometry in mm: a 300 px square is (0.3 mpp mm)².
    square = region_features(shapely.box(0, 0, 300, 300), mpp)
    assert square["area"] == pytest.approx((300 * mpp / 1000) ** 2) and square["pieces"] == 1.0
    assert square["compactness"] == pytest.approx(math.pi / 4)
    table = pd.DataFrame(
        [
            {"target": code, "rater": name, "area": boxes[(name, code)].area * (mpp / 1000) ** 2}
            for name in readers
            for code in codes
        ]
    )
    expected = pg.intraclass_corr(table, targets="target", raters="rater", ratings="area").set_index("Type")
    for kind, pg_type in (("ICC(2,1)", "ICC(A,1)"), ("ICC(3,1)", "ICC(C,1)")):
        assert got[("Invasive tumour area", kind)]["icc"] == pytest.approx(
            expected.loc[pg_type, "ICC"], abs=1e-9
        )
    assert "Invasive tumour area" in report.robust["inter-reader ICC(2,1)"]
    # Stain and radiomics features of the same regions, from the slide's pixels: ICC as pingouin's.
    path = shared_data / "wsi_svs" / "CMU-1-Small-Region.svs"
    info = open_slide(path)
    stains = slide_stains(path, info)
    measured = {key: measure_geometry(path, info, box, stains).values for key, box in boxes.items()}
    for feature, kind in (("hematoxylin_od_mean", "stain"), ("original_glcm_Contrast", "radiomics")):
        table = pd.DataFrame(
            [
                {"target": code, "rater": name, "value": measured[(name, code)][kind][feature]}
                for name in readers
                for code in codes
            ]
        )
        expected = pg.intraclass_corr(table, targets="target", raters="rater", ratings="value")
        assert got[(f"Invasive tumour {feature}", "ICC(2,1)")]["icc"] == pytest.approx(
            expected.set_index("Type").loc["ICC(A,1)", "ICC"], abs=1e-9
        )
    store.close()

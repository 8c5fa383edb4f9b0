"""H&E reading rounds: two readers annotate the real CMU-1 slide (known offsets), and a repeat; the
round report's Dice of the rasterised regions equals the exact polygon Dice from shapely, and the
area difference is in mm² from the slide's MPP. Blinding lifts only when the round closes."""

from __future__ import annotations

import pytest
import shapely

from palmares_desktop.core.agreement.regions import region_agreement
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
    slide = register_slide(store, subject["id"], shared_data / "wsi_svs" / "CMU-1-Small-Region.svs")
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
        current = current_assignment(store, readers[name].id, subject["id"])
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
    mpp = slide["mpp_x"]
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

"""The slide room's Qt-free annotation logic: tools, every change stored at once, undo/redo, areas."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from palmares_desktop.core.slides import annotation_session as tools
from palmares_desktop.core.slides.annotation_session import AnnotationSession, ToolError
from palmares_desktop.core.store import records
from palmares_desktop.core.store.slide_objects import annotations_of


def _slide(store, mpp=0.5):
    subject = store.ensure_subject("IT03-0001")
    row = {"subject_id": subject.id, "display_name": "IT03-0001 HE", "format": "svs", "width": 20_000}
    row.update({"height": 10_000, "levels": 4, "mpp_x": mpp, "mpp_y": mpp, "sha256": "f" * 64, "stain": "HE"})
    return records.add_slide_row(store, row, {})


def test_tools_make_the_outline_drawn():
    assert tools.polygon([(0, 0), (100, 0), (100, 50)], 1000, 1000).area == 2500
    assert tools.rectangle(300, 400, 100, 200, 1000, 1000).bounds == (100, 200, 300, 400)
    assert tools.ellipse(500, 500, 100, 50, 1000, 1000, vertices=720).area == pytest.approx(
        np.pi * 5000, rel=1e-4
    )
    stroke = tools.brush([(100, 100), (300, 100)], 20.0, (0.5, 0.5), 1000, 1000)  # 20 µm = 40 px wide
    assert stroke.area == pytest.approx(200 * 40 + np.pi * 20**2, rel=0.01)
    clipped = tools.rectangle(-100, -100, 50, 50, 1000, 1000)  # clipped to the slide
    assert clipped.bounds == (0, 0, 50, 50)
    bowtie = tools.polygon([(0, 0), (10, 10), (10, 0), (0, 10)], 100, 100)  # made valid, not refused
    assert bowtie.area == pytest.approx(50)
    with pytest.raises(ToolError, match="no known pixel size"):
        tools.brush([(0, 0), (10, 0)], 20.0, (None, None), 100, 100)
    with pytest.raises(ToolError, match="encloses no area on the slide"):
        tools.rectangle(2000, 2000, 3000, 3000, 1000, 1000)


def test_every_change_is_stored_and_undo_redo_replay_through_the_store(store):
    slide = _slide(store)
    session = AnnotationSession(store, slide)
    square = session.add(tools.rectangle(0, 0, 2000, 2000, 20_000, 10_000), "Invasive tumour")
    assert square["color"] == (200, 0, 0)
    session.add(tools.rectangle(5000, 0, 6000, 1000, 20_000, 10_000), "Tumour stroma")

    def stored():
        return sorted((o["classification"], o["geometry"].area) for o in annotations_of(store, slide.id))

    assert stored() == [("Invasive tumour", 4e6), ("Tumour stroma", 1e6)]
    assert session.class_areas_mm2() == {
        "Invasive tumour": pytest.approx(1.0),
        "Tumour stroma": pytest.approx(0.25),
    }
    session.reclassify(square["id"], "Necrosis")
    assert stored() == [("Necrosis", 4e6), ("Tumour stroma", 1e6)]
    assert session.history.depth == 3  # core's one history (core/history.py), as the CT/PET room's
    session.undo()
    assert stored() == [("Invasive tumour", 4e6), ("Tumour stroma", 1e6)]
    session.undo()  # the stroma square goes
    assert stored() == [("Invasive tumour", 4e6)]
    session.redo()
    session.redo()
    assert stored() == [("Necrosis", 4e6), ("Tumour stroma", 1e6)]
    ids = list(session.objects)
    merged = session.merge(ids)
    assert merged["geometry"].area == 5e6 and len(annotations_of(store, slide.id)) == 1
    session.undo()
    assert stored() == [("Necrosis", 4e6), ("Tumour stroma", 1e6)]
    session.delete(list(session.objects))
    assert stored() == [] and session.can_undo and not session.can_redo
    session.undo()
    assert stored() == [("Necrosis", 4e6), ("Tumour stroma", 1e6)]
    # A new session (the window reopened) sees exactly what was stored.
    assert sorted(o["classification"] for o in AnnotationSession(store, slide).objects.values()) == [
        "Necrosis",
        "Tumour stroma",
    ]


def test_areas_refused_without_mpp(store):
    session = AnnotationSession(store, _slide(store, mpp=None))
    session.add(shapely.box(0, 0, 10, 10), None)
    with pytest.raises(ToolError, match="no known pixel size"):
        session.class_areas_mm2()

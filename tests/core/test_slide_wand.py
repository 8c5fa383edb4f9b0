"""The slide room's wand, points and split in core: a synthetic disc of known area is found within a
few percent at its level-0 place; on the real CMU-1 region the wand's polygon is valid, inside the
slide, holds the clicked colour and stops where the colour changes (checked with scikit-image's own
Gaussian and ΔE, not the wand's code); split cuts exactly and is one undo step; points are counted
per class, kept out of areas and exported as GeoJSON Point features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shapely
from scipy import ndimage as ndi
from skimage import color, filters

from palmares_desktop.core.slides import annotation_session as tools
from palmares_desktop.core.slides.annotation_session import AnnotationSession, ToolError
from palmares_desktop.core.slides.annotations import export_slide, import_geojson
from palmares_desktop.core.slides.reader import SlideInfo, open_slide
from palmares_desktop.core.slides.regions import Region, rasterise, read_at
from palmares_desktop.core.slides.wand import WandError, WandParams, grow, wand, wand_on_region
from palmares_desktop.core.store import records
from palmares_desktop.core.store.slide_objects import annotations_of

STROMA_PINK = (235, 160, 200)
NUCLEAR_PURPLE = (120, 70, 160)


def _synthetic(radius=100, size=400, noise=8.0, seed=0):
    """A pink tile with a purple disc (centre at pixel (200, 200)), RGB noise and white specks in it."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= radius**2
    rgb = np.empty((size, size, 3))
    rgb[:] = STROMA_PINK
    rgb[disc] = NUCLEAR_PURPLE
    for r, c in ((170, 180), (230, 210), (200, 240)):  # small white specks (3 x 3) inside: holes to fill
        rgb[r - 1 : r + 2, c - 1 : c + 2] = 250
    rgb = np.clip(rgb + rng.normal(0, noise, rgb.shape), 0, 255).astype(np.uint8)
    return rgb, disc


def _info(width=4000, height=4000, mpp=0.5) -> SlideInfo:
    return SlideInfo(Path("synthetic.svs"), "svs", width, height, [(height, width)], mpp, mpp, "aperio")


def test_wand_finds_a_known_disc_at_its_level0_place_and_area():
    rgb, disc = _synthetic()
    # The tile as read at downsample 2 with its top-left corner at level-0 (1000, 500).
    region = Region(rgb, 1000, 500, 1, 1, 2.0, 1.0)
    centre_x, centre_y = 1000 + 2 * 200.5, 500 + 2 * 200.5  # pixel 200's centre in level-0 pixels
    result = wand_on_region(region, _info(), centre_x, centre_y, screen_px=2.0)
    g = result.geometry
    assert g.geom_type == "Polygon" and g.is_valid and not g.interiors  # the specks were filled
    expected = np.pi * (2 * 100) ** 2  # level-0 pixels²
    assert g.area == pytest.approx(expected, rel=0.03)
    assert result.pixels == pytest.approx(disc.sum(), rel=0.03)
    assert g.centroid.distance(shapely.Point(centre_x, centre_y)) < 2.0
    assert result.area_mm2 == pytest.approx(expected * 0.25 / 1e6, rel=0.03)
    assert not result.touches_edge
    # Simplified to about one screen pixel (2 level-0 pixels): few vertices, yet close to the true circle
    # everywhere (a boundary blurred by the smoothing may sit a pixel or two inside it).
    circle = shapely.Point(centre_x, centre_y).buffer(200, quad_segs=256)
    assert len(g.exterior.coords) < 100 and g.hausdorff_distance(circle) < 3 * 2.0
    # Clicked in the pink around it, the region is the tile minus the disc, and it reaches the tile's edge.
    outside = wand_on_region(region, _info(), 1000 + 2 * 20, 500 + 2 * 20, screen_px=2.0)
    assert outside.touches_edge
    assert outside.geometry.area == pytest.approx(800 * 800 - expected, rel=0.03)
    assert outside.geometry.intersection(g).area < 0.01 * expected


def test_tolerance_decides_how_far_the_region_grows():
    rgb, _ = _synthetic(noise=3.0)
    seed_lab = color.rgb2lab(np.array([[NUCLEAR_PURPLE]], float) / 255)[0, 0]
    pink_lab = color.rgb2lab(np.array([[STROMA_PINK]], float) / 255)[0, 0]
    gap = float(np.linalg.norm(seed_lab - pink_lab))  # ΔE between the two colours (about 40)
    tight, _ = grow(rgb, 200, 200, WandParams(tolerance=gap / 3))
    loose, _ = grow(rgb, 200, 200, WandParams(tolerance=gap * 1.5))
    assert tight.sum() < 0.3 * tight.size and loose.mean() > 0.99  # loose takes in the pink too
    with pytest.raises(WandError, match="more than 0"):
        WandParams(tolerance=0)


def test_wand_on_the_real_cmu1_region(shared_data):
    path = shared_data / "wsi_svs" / "CMU-1-Small-Region.svs"
    info = open_slide(path)
    x, y, screen_px = 1080.0, 1800.0, 3.0  # in the epidermis, seen at 1.5 µm per screen pixel
    result = wand(path, info, x, y, screen_px)
    g = result.geometry
    assert g.is_valid and g.area > 0 and g.geom_type in ("Polygon", "MultiPolygon")
    assert shapely.box(0, 0, info.width, info.height).covers(g)
    assert g.covers(shapely.Point(x, y))
    assert result.read["downsample"] == 3.0 and result.read["mpp_um"] == pytest.approx(3 * 0.499)
    # Independently (scikit-image's Gaussian and CIE76 ΔE on the same pixels): most pixels inside the
    # polygon are within the tolerance of the clicked colour, few just outside it are, none is glass.
    region = read_at(path, info, (0, 0, info.width, info.height), downsample=3)
    inside = rasterise(g, region)
    smoothed = filters.gaussian(region.rgb, sigma=1.5, channel_axis=-1)
    distance = color.deltaE_cie76(color.rgb2lab(smoothed), np.array(result.seed_lab))
    ring = ndi.binary_dilation(inside, iterations=2) & ~inside
    assert (distance[inside] <= 12).mean() > 0.85
    assert (distance[ring] <= 12).mean() < 0.2
    assert (region.rgb[inside].min(axis=-1) > 215).mean() < 0.01  # bright glass left out
    assert inside.sum() == pytest.approx(result.pixels, rel=0.02)
    # Only what is visible is read: a visible box of 300 x 300 level-0 pixels bounds the region.
    seen = (x - 150, y - 150, x + 150, y + 150)
    bounded = wand(path, info, x, y, screen_px, visible=seen).geometry
    assert shapely.box(*seen).buffer(3).covers(bounded) and bounded.area < g.area
    with pytest.raises(WandError, match="outside the slide"):
        wand(path, info, info.width + 10, 10, screen_px)


def _slide(store, mpp=0.5):
    subject = store.ensure_subject("IT03-0001")
    row = {"subject_id": subject.id, "display_name": "IT03-0001 HE", "format": "svs", "width": 20_000}
    row.update({"height": 10_000, "levels": 4, "mpp_x": mpp, "mpp_y": mpp, "sha256": "f" * 64, "stain": "HE"})
    return records.add_slide_row(store, row, {})


def test_split_cuts_an_outline_exactly_in_one_undo_step(store):
    slide = _slide(store)
    session = AnnotationSession(store, slide)
    box = session.add(tools.rectangle(4000, 3000, 5000, 5000, 20_000, 10_000), "Tumour stroma")
    left, right = session.split(box["id"], [(4300, 2900), (4300, 5100)])  # largest first
    assert (left["geometry"].area, right["geometry"].area) == (700 * 2000, 300 * 2000)
    assert left["geometry"].area + right["geometry"].area == box["geometry"].area  # exact
    assert left["geometry"].union(right["geometry"]).equals(box["geometry"])
    stored = annotations_of(store, slide.id)
    assert sorted(o["geometry"].area for o in stored) == [600_000, 1_400_000]
    assert {(o["classification"], o["color"]) for o in stored} == {("Tumour stroma", (150, 200, 150))}
    session.undo()  # one step back: the rectangle again
    (again,) = annotations_of(store, slide.id)
    assert again["geometry"].equals(box["geometry"])
    with pytest.raises(ToolError, match="does not cut the annotation"):
        session.split(again["id"], [(4300, 2900), (4300, 4000)])  # ends inside: no cut
    with pytest.raises(ToolError, match="does not cut the annotation"):
        session.split(again["id"], [(6000, 2900), (6000, 5100)])  # misses it
    assert len(annotations_of(store, slide.id)) == 1 and session.crossing([(4300, 0), (4300, 9000)]) == [
        again["id"]
    ]
    # A MultiPolygon: the crossed island is cut, the other stays whole, as a third piece.
    islands = shapely.MultiPolygon([shapely.box(0, 0, 100, 100), shapely.box(500, 0, 600, 100)])
    pieces = tools.split(islands, [(50, -10), (50, 110)])
    assert sorted(p.area for p in pieces) == [5000, 5000, 10_000]


def test_points_are_counted_per_class_left_out_of_areas_and_exported_as_points(store):
    slide = _slide(store)
    session = AnnotationSession(store, slide)
    session.add(tools.rectangle(0, 0, 2000, 2000, 20_000, 10_000), "Tumour stroma")
    for n in range(12):
        session.add(tools.point(100 + 50 * n, 500, 20_000, 10_000), "Lymphocytic infiltrate")
    summary = session.class_summary()
    assert summary["Lymphocytic infiltrate"] == {"shapes": 0, "points": 12, "area_mm2": None}
    assert summary["Tumour stroma"] == {"shapes": 1, "points": 0, "area_mm2": pytest.approx(1.0)}
    assert "Lymphocytic infiltrate" not in session.class_areas_mm2()
    assert session.nearest_point(652, 503, within=5) is not None  # the 12th point is at (650, 500)
    assert session.nearest_point(652, 503, within=5, hidden={"Lymphocytic infiltrate"}) is None
    moved = session.objects[session.nearest_point(650, 500, within=1)]
    session.reshape(moved["id"], shapely.Point(660, 510))  # a point moved
    assert session.objects[moved["id"]]["geometry"].equals(shapely.Point(660, 510))
    session.undo()
    assert session.objects[moved["id"]]["geometry"].equals(shapely.Point(650, 500))
    session.undo()  # the last point added goes
    assert session.class_summary()["Lymphocytic infiltrate"]["points"] == 11
    with pytest.raises(ToolError, match="outside the slide"):
        tools.point(-1, 5, 20_000, 10_000)
    stroma = next(i for i, o in session.objects.items() if o["classification"] == "Tumour stroma")
    with pytest.raises(ToolError, match="Points cannot be merged"):  # a merge would drop the points
        session.merge([stroma, session.nearest_point(100, 500, within=1)])
    with pytest.raises(ToolError, match="not a point"):
        session.split(session.nearest_point(100, 500, within=1), [(0, 0), (200, 1000)])

    exported = export_slide(store, slide)
    points = [f for f in exported["features"] if f["geometry"]["type"] == "Point"]
    assert len(points) == 11
    assert list(points[0]["geometry"]["coordinates"]) == [100.0, 500.0]
    assert points[0]["properties"]["classification"] == {
        "name": "Lymphocytic infiltrate",
        "color": [160, 90, 240],
    }
    back, refused = import_geojson(exported, slide.width, slide.height)
    assert refused == [] and sorted(o.geometry.geom_type for o in back) == ["Point"] * 11 + ["Polygon"]

    # The TILs helper still works with points of the infiltrate class among the outlines.
    from palmares_desktop.core.slides.analysis import tils

    assert tils(store, slide, None)["aid"]["annotation_percent"] == 0.0


def test_moving_several_shapes_is_one_undo_step(store):
    slide = _slide(store)
    session = AnnotationSession(store, slide)
    a = session.add(tools.rectangle(0, 0, 100, 100, 20_000, 10_000), "Necrosis")
    b = session.add(tools.rectangle(200, 0, 300, 100, 20_000, 10_000), "Necrosis")
    session.reshape_many({a["id"]: shapely.box(0, 0, 150, 100), b["id"]: shapely.box(200, 0, 350, 100)})
    assert [session.objects[i]["geometry"].area for i in (a["id"], b["id"])] == [15_000, 15_000]
    session.undo()
    assert sorted(o["geometry"].area for o in annotations_of(store, slide.id)) == [10_000, 10_000]

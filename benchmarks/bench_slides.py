"""Benchmark: slide objects and analyses, against baselines measured in the same run.

  annotations  10,000 32-vertex polygons on a 100,000 x 80,000 slide
               save:     save_annotations (store rows, WKB, level-0 box, one audit event)
                         baseline: bare sqlite3 executemany of shapely WKB into a bare table
               load:     annotations_of (all)      baseline: bare SELECT + shapely.from_wkb
               viewport: annotations_of(bbox) for a 4000 x 3000 view
                         baseline: an in-memory shapely STRtree query (no store at all)
  detections   200,000 12-vertex nuclei
               save:     pack_tiles + save_detection_run (2048-px tiles, one blob each)
                         baseline: one sqlite row per detection (WKB), QuPath-naive
               load:     analysis.detections (all)   baseline: the per-row table read back
               viewport: analysis.detections(bbox)  baseline: per-row table, box query
  analyses     on the real CMU-1 region (2220 x 2967, 0.499 µm/px)
               tissue outline, nuclei in 512 x 512 px, stain features of a 512 x 512 px box
               baseline for stain: skimage.color.rgb2hed on the same pixels
  --wsi        (slow: writes a 100,000 x 80,000 JPEG pyramid, ~3 min) median 512 x 512 tile read at
               each level through the slide interface, against a bare tifffile zarr read of the same tile

Targets from issue 13: 10,000 annotations save < 1 s; annotations + detections load < 2 s; a tile
< 30 ms median. Timings are the best of --repeat on a shared 2-core machine.

    python benchmarks/bench_slides.py [--repeat 3] [--wsi]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import best  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from palmares_desktop.core.model import Slide  # noqa: E402
from palmares_desktop.core.paths import shared_data_dir  # noqa: E402
from palmares_desktop.core.slides import analysis  # noqa: E402
from palmares_desktop.core.slides.detections import Detections, pack_tiles  # noqa: E402
from palmares_desktop.core.store import Store, records  # noqa: E402
from palmares_desktop.core.store.slide_objects import (  # noqa: E402
    annotations_of,
    save_annotations,
    save_detection_run,
)

VIEW = (40_000, 40_000, 44_000, 43_000)


def line(name: str, ours: float, base: float, target: str = "") -> None:
    ratio = ours / base if base > 0 else float("inf")
    print(
        f"  {name:<28} ours {ours * 1000:9.1f} ms   baseline {base * 1000:9.1f} ms   ratio {ratio:6.2f}  {target}"
    )


def polygons(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    centres = rng.uniform(1000, 79_000, (n, 2))
    angle = np.linspace(0, 2 * np.pi, 33)
    return shapely.polygons(
        np.stack([centres[:, None, 0] + 300 * np.cos(angle), centres[:, None, 1] + 300 * np.sin(angle)], -1)
    )


def detections(n: int) -> Detections:
    rng = np.random.default_rng(1)
    centres = rng.uniform(0, 80_000, (n, 2))
    ring = np.c_[np.cos(np.linspace(0, 2 * np.pi, 13)), np.sin(np.linspace(0, 2 * np.pi, 13))] * 10
    vertices = (centres[:, None, :] + ring[None]).reshape(-1, 2)
    names = ["area_um2", "circularity", "axis_ratio", "hematoxylin_od_mean", "small_round"]
    return Detections(centres, np.arange(n + 1, dtype=np.int64) * 13, vertices, rng.random((n, 5)), names)


def new_slide(store: Store, n: int) -> Slide:
    subject = store.ensure_subject(f"IT03-{n:04d}")
    row = {
        "subject_id": subject.id,
        "display_name": f"IT03-{n:04d} HE",
        "format": "tiff",
        "width": 100_000,
    }
    row.update({"height": 80_000, "levels": 8, "mpp_x": 0.25, "mpp_y": 0.25, "sha256": str(n), "stain": "HE"})
    return records.add_slide_row(store, row, {})


def bench_objects(root: Path, repeat: int) -> None:
    store = Store.open(root / "store")
    store.use_system_reader("bench", site_code="IT03")
    raw = sqlite3.connect(root / "raw.db")
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute(
        "CREATE TABLE a (id INTEGER PRIMARY KEY, slide TEXT, x0 REAL, y0 REAL, x1 REAL, y1 REAL, g BLOB)"
    )
    raw.execute("CREATE INDEX a_slide ON a (slide)")
    raw.execute("CREATE TABLE d (id INTEGER PRIMARY KEY, slide TEXT, x REAL, y REAL, g BLOB, m BLOB)")
    raw.execute("CREATE INDEX d_slide ON d (slide, x, y)")
    polys = polygons(10_000)
    objects = [{"geometry": g, "classification": "Invasive tumour", "color": (200, 0, 0)} for g in polys]
    counter = iter(range(1, 10_000))
    slides = []

    def ours_save():
        slides.append(new_slide(store, next(counter)))
        return save_annotations(store, slides[-1], objects)

    def raw_save():
        blobs, boxes = shapely.to_wkb(polys), shapely.bounds(polys)
        with raw:
            raw.executemany(
                "INSERT INTO a (slide, x0, y0, x1, y1, g) VALUES (?, ?, ?, ?, ?, ?)",
                [("s", *b, w) for b, w in zip(boxes.tolist(), blobs, strict=True)],
            )

    print("annotations (10,000 x 32 vertices)")
    t_ours, _ = best(ours_save, repeat)
    t_raw, _ = best(raw_save, repeat)
    line("save", t_ours, t_raw, "target < 1000 ms")
    slide_id = slides[0].id
    t_ours, got = best(lambda: annotations_of(store, slide_id), repeat)
    t_raw, _ = best(
        lambda: shapely.from_wkb(
            [r[0] for r in raw.execute("SELECT g FROM a WHERE slide = 's' LIMIT 10000")]
        ),
        repeat,
    )
    line("load all", t_ours, t_raw)
    tree = shapely.STRtree(polys)
    t_ours, shown = best(lambda: annotations_of(store, slide_id, bbox=VIEW), repeat)
    t_raw, _ = best(lambda: tree.query(shapely.box(*VIEW)), repeat)
    line(f"viewport ({len(shown)} shown)", t_ours, t_raw)

    print("detections (200,000 x 12 vertices)")
    found = detections(200_000)
    det_slides = []

    def ours_det():
        det_slides.append(new_slide(store, next(counter)))
        return save_detection_run(
            store,
            det_slides[-1],
            {"method": "bench", "measurement_names": found.measurement_names},
            pack_tiles(found),
        )

    geoms = found.geometries()

    def raw_det():
        blobs = shapely.to_wkb(geoms)
        with raw:
            raw.execute("DELETE FROM d")
            raw.executemany(
                "INSERT INTO d (slide, x, y, g, m) VALUES (?, ?, ?, ?, ?)",
                [
                    ("s", c[0], c[1], b, m.tobytes())
                    for c, b, m in zip(found.centroids.tolist(), blobs, found.measurements, strict=True)
                ],
            )

    t_ours, _ = best(ours_det, repeat)
    t_raw, _ = best(raw_det, repeat)
    line("pack + save", t_ours, t_raw, "target < 2000 ms")
    det_slide = det_slides[0]
    t_ours, loaded = best(lambda: analysis.detections(store, det_slide), repeat)
    t_raw, _ = best(
        lambda: shapely.from_wkb([r[0] for r in raw.execute("SELECT g FROM d WHERE slide = 's'")]), repeat
    )
    line(f"load all ({len(loaded)})", t_ours, t_raw)
    t_ann, _ = best(lambda: annotations_of(store, slide_id), repeat)
    print(f"  annotations + detections load: {(t_ann + t_ours) * 1000:.0f} ms (target < 2000 ms)")
    t_ours, shown = best(lambda: analysis.detections(store, det_slide, bbox=VIEW), repeat)
    query = "SELECT g FROM d WHERE slide = 's' AND x BETWEEN ? AND ? AND y BETWEEN ? AND ?"
    t_raw, _ = best(
        lambda: shapely.from_wkb([r[0] for r in raw.execute(query, (VIEW[0], VIEW[2], VIEW[1], VIEW[3]))]),
        repeat,
    )
    line(f"viewport ({len(shown)} read)", t_ours, t_raw)
    store.close()
    raw.close()


def bench_analyses(root: Path, repeat: int) -> None:
    from skimage.color import rgb2hed

    from palmares_desktop.core.slides.cells import detect_cells
    from palmares_desktop.core.slides.measure import measure_geometry
    from palmares_desktop.core.slides.reader import open_slide, read_region
    from palmares_desktop.core.slides.stain import RUIFROK, macenko
    from palmares_desktop.core.slides.tissue import detect_tissue

    path = shared_data_dir() / "wsi_svs" / "CMU-1-Small-Region.svs"
    info = open_slide(path)
    print("analyses (CMU-1 region)")
    t_tissue, found = best(lambda: detect_tissue(path, info), repeat)
    t_read, _ = best(lambda: read_region(path, 0, 0, 0, info.width, info.height), repeat)
    line(f"tissue ({found.area_mm2:.3f} mm²)", t_tissue, t_read, "baseline: reading level 0 whole")
    box = shapely.box(1100, 1800, 1612, 2312)
    t_cells, (cells, _) = best(lambda: detect_cells(path, info, box, RUIFROK), repeat)
    rgb = read_region(path, 0, 1100, 1800, 512, 512)
    t_hed, _ = best(lambda: rgb2hed(rgb), repeat)
    line(f"nuclei 512 px ({len(cells)})", t_cells, t_hed, "baseline: rgb2hed of the tile")
    t_stain, _ = best(lambda: measure_geometry(path, info, box, RUIFROK), repeat)
    line("stain features 512 px", t_stain, t_hed, "baseline: rgb2hed of the tile")
    t_mac, _ = best(lambda: macenko(rgb), repeat)
    line("Macenko on 512 px", t_mac, t_hed)


def bench_wsi(root: Path, repeat: int) -> None:
    import tifffile
    import zarr

    from palmares_desktop.core.demo.slide_writer import write_slide
    from palmares_desktop.core.slides.reader import level_array, open_slide

    path = root / "big.svs"
    started = time.perf_counter()
    write_slide(path, width=100_000, height=80_000, n_levels=8)
    print(f"wsi 100,000 x 80,000 written in {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    info = open_slide(path)
    overview = np.asarray(level_array(path, len(info.levels) - 1)[:])
    print(
        f"  first overview ({overview.shape[1]} x {overview.shape[0]}) {1000 * (time.perf_counter() - started):.0f} ms (target < 1000 ms)"
    )
    rng = np.random.default_rng(5)
    with tifffile.TiffFile(path) as tif:
        for level, (h, w) in enumerate(info.levels):
            if h < 1024 or w < 1024:
                continue
            ours_arr = level_array(path, level)
            bare = zarr.open_array(tif.series[0].aszarr(level=level), mode="r")
            spots = [
                (int(rng.integers(0, h - 512)) // 512 * 512, int(rng.integers(0, w - 512)) // 512 * 512)
                for _ in range(15)
            ]
            t_ours, t_bare = [], []
            for y, x in spots:
                started = time.perf_counter()
                np.asarray(ours_arr[y : y + 512, x : x + 512])
                t_ours.append(time.perf_counter() - started)
                started = time.perf_counter()
                np.asarray(bare[y : y + 512, x : x + 512])
                t_bare.append(time.perf_counter() - started)
            line(
                f"tile level {level}", statistics.median(t_ours), statistics.median(t_bare), "target < 30 ms"
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--wsi", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bench_objects(root, args.repeat)
        bench_analyses(root, args.repeat)
        if args.wsi:
            bench_wsi(root, 1)


if __name__ == "__main__":
    main()

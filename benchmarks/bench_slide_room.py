"""Benchmark: the slide room in the real main window on a 100,000 x 80,000 slide (issue 13's GUI targets).

A store with the big JPEG-tiled pyramid (written tile by tile with bench_slides' writer, cached at
/tmp/palmares_bench_wsi.tif so re-runs skip the write) registered twice as `palmares slide add`
does: subject IT03-0001 with 10,000 annotations (32-vertex polygons) + 200,000 detections
(12-vertex nuclei) stored on its slide, and subject IT03-0002 with the same file and no objects
(the baseline: napari's own floor on the same pixels). In the real MainWindow it measures:

  save        10,000 annotations saved (store API, before the window opens)       target < 1 s
  overview    open the subject -> slide tab -> the first paint of the slide        target < 1 s
  load        the annotations bound to the room (GUI thread), the detections read and drawn (worker),
              the legend's areas + TILs aid of a crowded slide (background)       target < 2 s
  pan / zoom  one step: "first frame" = the camera moved to the end of its first paint (napari reads
              the slide's tiles inside that paint); "settled" = until no worker or picture of the
              panel is pending and two event-loop rounds paint nothing (what the user sees is
              final); median and worst, with objects vs the bare slide            target < 100 ms
  memory      peak resident memory (VmHWM, reset first) while panning 60,000 px of level 0
                                                                                   target < 1.5 GB
  tile        a 512 x 512 tile at each level through core.slides vs bare tifffile   target < 30 ms

Napari reads multiscale tiles on the GUI thread during the draw (its async slicing is off), so
there is no tile queue to wait for: a step has settled when nothing paints any more. No
assertions on times: the numbers are printed against the targets. A screenshot at high zoom (one
screen pixel per level-0 pixel) with objects drawn goes to /tmp/palmares_bench_slide_room.png.
`--profile` prints cProfile's top entries for the pan and zoom steps with objects.

    xvfb-run -a -s "-screen 0 1920x1080x24" python benchmarks/bench_slide_room.py [--annotations N]
        [--detections N] [--steps 20] [--wsi PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_slides import detections, polygons  # noqa: E402  (benchmarks/ generators)

WSI = Path("/tmp/palmares_bench_wsi.tif")
SLIDE_TAB = 2
OBJECTS, BARE = "IT03-0001", "IT03-0002"


def vm_kb(field: str) -> int:
    for text in Path("/proc/self/status").read_text().splitlines():
        if text.startswith(field + ":"):
            return int(text.split()[1])
    return 0


def reset_peak() -> None:
    """Reset VmHWM (Linux: writing 5 to clear_refs), so the peak is the panning's own."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def ensure_wsi(path: Path) -> None:
    if path.exists():
        print(f"wsi: cached {path} ({path.stat().st_size / 2**20:.0f} MiB)")
        return
    from palmares_desktop.core.demo.slide_writer import write_slide

    started = time.perf_counter()
    part = path.with_suffix(".part.tif")
    write_slide(part, width=100_000, height=80_000, n_levels=8)
    part.rename(path)
    print(f"wsi: 100,000 x 80,000 written tile by tile in {time.perf_counter() - started:.0f} s -> {path}")


def build_store(root: Path, wsi: Path, n_annotations: int, n_detections: int) -> None:
    from palmares_desktop.core.slides.annotations import study_classes
    from palmares_desktop.core.slides.detections import pack_tiles
    from palmares_desktop.core.slides.registry import add_slide
    from palmares_desktop.core.store import Store
    from palmares_desktop.core.store.slide_objects import save_annotations, save_detection_run

    store = Store.open(root, create=True)
    store.use_system_reader("bench", site_code="IT03")
    slides = {}
    for code in (OBJECTS, BARE):
        store.ensure_subject(code)
        slides[code] = add_slide(store, code, wsi)  # what `palmares slide add` does
    slide = slides[OBJECTS]
    classes = [c for c in study_classes()][:4]
    objects = [
        {
            "geometry": g,
            "classification": classes[i % len(classes)]["name"],
            "color": tuple(classes[i % 4]["colour"]),
        }
        for i, g in enumerate(polygons(n_annotations))
    ]
    started = time.perf_counter()
    save_annotations(store, slide, objects)
    saved = time.perf_counter() - started
    found = detections(n_detections)
    started = time.perf_counter()
    save_detection_run(
        store, slide, {"method": "bench", "measurement_names": found.measurement_names}, pack_tiles(found)
    )
    det_saved = time.perf_counter() - started
    store.close()
    print(
        f"store: {n_annotations:,} annotations saved in {saved * 1000:.0f} ms (target < 1000 ms); "
        f"{n_detections:,} detections packed + saved in {det_saved * 1000:.0f} ms"
    )


def bench_tiles(wsi: Path) -> None:
    import tifffile
    import zarr

    from palmares_desktop.core.slides.reader import level_array, open_slide

    info = open_slide(wsi)
    rng = np.random.default_rng(5)
    ratios = []
    with tifffile.TiffFile(wsi) as tif:
        for level, (h, w) in enumerate(info.levels):
            if h < 1024 or w < 1024:
                continue
            ours_arr, bare = (
                level_array(wsi, level),
                zarr.open_array(tif.series[0].aszarr(level=level), mode="r"),
            )
            spots = [
                (int(rng.integers(0, h - 512)) // 512 * 512, int(rng.integers(0, w - 512)) // 512 * 512)
                for _ in range(15)
            ]
            t_ours, t_bare = [], []
            for y, x in spots:
                t = time.perf_counter()
                np.asarray(ours_arr[y : y + 512, x : x + 512])
                t_ours.append(time.perf_counter() - t)
                t = time.perf_counter()
                np.asarray(bare[y : y + 512, x : x + 512])
                t_bare.append(time.perf_counter() - t)
            ours, base = statistics.median(t_ours), statistics.median(t_bare)
            ratios.append(ours / base)
            print(
                f"  tile level {level}: {ours * 1000:6.1f} ms  bare tifffile {base * 1000:6.1f} ms  ratio {ours / base:5.2f}  (target < 30 ms)"
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--annotations", type=int, default=10_000)
    parser.add_argument("--detections", type=int, default=200_000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--wsi", type=Path, default=WSI)
    parser.add_argument("--profile", action="store_true", help="cProfile the pan and zoom steps with objects")
    parser.add_argument("--screenshot", type=Path, default=Path("/tmp/palmares_bench_slide_room.png"))
    args = parser.parse_args()
    print("machine: 2 cores, shared with other work; Xvfb + Mesa llvmpipe (software OpenGL)")
    ensure_wsi(args.wsi)
    print("tiles through core.slides (512 x 512, median of 15, tile-aligned)")
    bench_tiles(args.wsi)
    tmp = tempfile.TemporaryDirectory()
    root = Path(tmp.name) / "store"
    build_store(root, args.wsi, args.annotations, args.detections)

    from qtpy.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    from palmares_desktop.core.profile import ReaderProfile
    from palmares_desktop.core.store import Store
    from palmares_desktop.gui.main_window import MainWindow

    store = Store.open(root, create=False)
    window = MainWindow(store, ReaderProfile("Bench Pathologist", "pathologist", "IT03"))
    window.resize(1600, 1000)
    window.show()
    room = window.slide
    panel = room.panel
    camera = room.viewer.model.scene.camera

    def pump(ms: float = 0) -> None:
        end = time.perf_counter() + ms / 1000
        app.processEvents()
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.002)

    pump(2500)  # as a user: the window, then a double-click; the slide reading warms up meanwhile
    bind_times: list[float] = []
    real_bind = panel.bind

    def timed_bind(*a, **k):
        t = time.perf_counter()
        marks.setdefault("bind", t)
        real_bind(*a, **k)
        bind_times.append(time.perf_counter() - t)

    panel.bind = timed_bind  # instance attribute: the room calls self.panel.bind(...)
    marks: dict[str, float] = {}  # when the detections were first drawn, when the legend was last filled
    real_picture, real_summary = getattr(panel, "_show_picture", None), panel.legend.show_summary

    def timed_picture(*a, **k):
        real_picture(*a, **k)
        if getattr(panel, "detections", None) is not None:
            marks.setdefault("detections", time.perf_counter())

    def timed_summary(*a, **k):
        real_summary(*a, **k)
        marks["summary"] = time.perf_counter()

    if real_picture is not None:
        panel._show_picture = timed_picture
    panel.legend.show_summary = timed_summary

    def busy() -> bool:
        return (
            window.workers.running() > 0
            or room.workers.running() > 0
            or getattr(panel, "busy", lambda: False)()
        )

    draws, paints = [0], []  # paints: canvas paints per pan step
    room.viewer.widget.canvas._scene_canvas.events.draw.connect(lambda _e: draws.__setitem__(0, draws[0] + 1))

    def settle(limit_s: float = 120) -> None:
        """Run the event loop until nothing runs in the background (workers, the panel's timers and
        pictures) and two rounds in a row paint nothing: what the user sees is final."""
        end, quiet = time.perf_counter() + limit_s, 0
        while time.perf_counter() < end and quiet < 2:
            n = draws[0]
            app.processEvents()
            if busy():
                quiet = 0
                time.sleep(0.001)
            elif draws[0] == n:
                quiet += 1
                time.sleep(0.002)
            else:
                quiet = 0

    def first_frame(t0: float, n: int, limit_s: float = 30) -> float:
        """Seconds from t0 to the end of the first paint after draw number n."""
        end = time.perf_counter() + limit_s
        while draws[0] == n and time.perf_counter() < end:
            app.processEvents()
        return time.perf_counter() - t0

    def open_subject(code: str) -> tuple[float, float]:
        """(seconds to the overview painted, seconds to every object loaded and painted)."""
        loaded: list[str] = []
        room.slide_loaded.connect(loaded.append)
        bind_times.clear()
        marks.clear()
        t = time.perf_counter()
        window.open_subject(code)
        window.tabs.setCurrentIndex(SLIDE_TAB)  # a pathologist lands there (a radiologist goes there)
        while room.slide_layer() is None:
            app.processEvents()
            time.sleep(0.001)
        overview = first_frame(t, draws[0])  # the slide layer's first paint, its tiles read in the draw
        while not loaded:  # the annotations are bound after that paint
            app.processEvents()
            time.sleep(0.001)
        settle()
        everything = time.perf_counter() - t
        room.slide_loaded.disconnect(loaded.append)
        marks.update({k: v - t for k, v in marks.items()})
        return overview, everything

    def level0_zoom() -> float:
        sy, sx = room.slide_layer().scale[-2:]
        return 1.0 / float(sx)  # one screen pixel per level-0 pixel

    def pan_steps(n: int, zoom: float, start_xy: tuple[float, float], dx_px: float) -> tuple[list, list]:
        """(first-frame times, settled times) of n pans by dx_px screen pixels."""
        sy, sx = (float(v) for v in room.slide_layer().scale[-2:])
        camera.zoom = zoom
        camera.center = (start_xy[1] * sy, start_xy[0] * sx)
        settle()
        firsts, times = [], []
        for _ in range(n):
            t, count = time.perf_counter(), draws[0]
            cy, cx = camera.center[-2:]
            camera.center = (cy, cx + dx_px / zoom)
            firsts.append(first_frame(t, count))
            settle()
            times.append(time.perf_counter() - t)
            paints.append(draws[0] - count)
        return firsts, times

    def zoom_steps(n: int, centre_xy: tuple[float, float], zoom0: float) -> tuple[list, list, list]:
        """Zoom in and out by 1.5x per step around a point; (first-frame times, settled times,
        restyle times after the panel's 150 ms zoom debounce where one was still due)."""
        sy, sx = (float(v) for v in room.slide_layer().scale[-2:])
        camera.zoom = zoom0
        camera.center = (centre_xy[1] * sy, centre_xy[0] * sx)
        settle()
        timer = getattr(panel, "_zoom_timer", None)
        if timer is not None:
            timer.stop()
        firsts, times, restyles = [], [], []
        for i in range(n):
            factor = 1.5 if (i // 4) % 2 == 0 else 1 / 1.5
            t, count = time.perf_counter(), draws[0]
            camera.zoom = camera.zoom * factor
            firsts.append(first_frame(t, count))
            restyle_due = timer is not None and timer.isActive()
            if restyle_due:
                timer.stop()  # the 150 ms debounce: its restyle is timed on its own below
            settle()
            times.append(time.perf_counter() - t)
            if restyle_due:  # what the debounce would run 150 ms later
                t = time.perf_counter()
                panel._restyle()
                settle()
                restyles.append(time.perf_counter() - t)
        return firsts, times, restyles

    results: dict[str, dict] = {}
    for code in (BARE, OBJECTS):
        overview, everything = open_subject(code)
        opened = dict(marks)
        pump(300)
        settle()
        z0 = level0_zoom()
        n_shapes = len(panel.layer.data) if panel.layer is not None else 0
        n_points = len(panel.points.data) if panel.points is not None else 0
        layers = [layer.name for layer in room.viewer.layers]
        canvas_h, canvas_w = room.viewer.model.canvas.size
        reset_peak()
        rss_before = vm_kb("VmRSS")
        paints.clear()
        pan = pan_steps(args.steps, z0, (20_000, 40_000), canvas_w / 2)
        pan_paints = statistics.median(paints)
        across = pan_steps(
            max(1, int(60_000 / (canvas_w / 2))), z0, (20_000, 20_000), canvas_w / 2
        )  # 60,000 px of level 0
        peak = vm_kb("VmHWM")
        profiler = None
        if args.profile and code == OBJECTS:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        pan_mid = pan_steps(args.steps, z0 / 16, (30_000, 40_000), canvas_w / 3)
        zoom_first, zooms, restyles = zoom_steps(args.steps, (40_000, 40_000), z0 / 8)
        if profiler is not None:
            import pstats

            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        results[code] = {
            "overview": overview,
            "everything": everything,
            "bind": sum(bind_times),
            "pan": pan,
            "across": across,
            "pan_mid": pan_mid,
            "zoom": (zoom_first, zooms),
            "marks": opened,
            "paints": pan_paints,
            "restyle": restyles,
            "peak_kb": peak,
            "rss_before_kb": rss_before,
            "layers": layers,
            "shapes": n_shapes,
            "points": n_points,
        }
        if code == OBJECTS:  # high zoom (1 screen pixel per level-0 pixel) over an annotation's edge
            sy, sx = (float(v) for v in room.slide_layer().scale[-2:])
            x, y, *_ = polygons(max(args.annotations, 1))[0].bounds
            camera.zoom = z0
            camera.center = ((y + 300) * sy, x * sx)
            settle()
            pump(300)
            settle()
            from PIL import Image

            Image.fromarray(room.viewer.screenshot()[..., :3]).save(args.screenshot)

    bare, ours = results[BARE], results[OBJECTS]

    def ms(v: float) -> str:
        return f"{v * 1000:7.0f} ms"

    def stat(name: str, key: str, target: str) -> None:
        for which, k in (("first frame", 0), ("settled", 1)):
            o, b = ours[key][k], bare[key][k]
            om, bm = statistics.median(o), statistics.median(b)
            print(
                f"  {name + ', ' + which:<36} objects median {ms(om)} worst {ms(max(o))} | bare median "
                f"{ms(bm)} worst {ms(max(b))} | ratio {om / bm:5.2f}  {target}"
            )

    print(
        f"room: layers {ours['layers']}; at the overview {ours['shapes']:,} shapes, {ours['points']:,} points"
    )
    print(
        f"  open -> first overview painted   objects {ms(ours['overview'])} | bare {ms(bare['overview'])}   (target < 1000 ms)"
    )
    marks = ours["marks"]
    print(f"  objects read into the room: annotations (panel bind, GUI thread) {ms(ours['bind'])}", end="")
    if "detections" in marks:
        print(
            f"; detections drawn {ms(marks['detections'] - marks['bind'])} after the bind started "
            f"({ms(marks['detections'])} after opening)",
            end="",
        )
    if "summary" in marks:
        print(f"; legend areas + TILs aid (background) {ms(marks['summary'])} after opening", end="")
    print("   (target < 2000 ms)")
    print(
        f"  open -> everything settled       objects {ms(ours['everything'])} | bare {ms(bare['everything'])}"
    )
    stat("pan step at level 0", "pan", "(target < 100 ms)")
    print(
        f"  canvas paints per level-0 pan step (median): objects {ours['paints']:.0f} | bare {bare['paints']:.0f}"
    )
    stat("pan step at 1/16 zoom", "pan_mid", "(target < 100 ms)")
    stat("zoom step x1.5", "zoom", "(target < 100 ms)")
    if ours["restyle"]:
        print(
            f"  zoom restyle after the 150 ms debounce: objects median {ms(statistics.median(ours['restyle']))} "
            f"worst {ms(max(ours['restyle']))} ({len(ours['restyle'])} of {args.steps} steps)"
        )
    stat("pan across level 0 (60k px)", "across", "")
    for name, r in (("objects", ours), ("bare", bare)):
        print(
            f"  peak RSS panning level 0 ({name}): {r['peak_kb'] / 1024:.0f} MB (RSS before {r['rss_before_kb'] / 1024:.0f} MB)  (target < 1536 MB)"
        )
    print(f"screenshot: {args.screenshot}")
    print(f"  peak RSS of the whole run: {vm_kb('VmHWM') / 1024:.0f} MB since the last reset")
    window.shutdown()
    window.close()
    store.close()


if __name__ == "__main__":
    main()

"""Benchmark: the PET tools on a 200x200x300 PET, against SimpleITK doing the same work in the same run.

A whole-body-like SUV phantom (body, liver, heart, brain at the top, bladder at the bottom, 24
spherical lesions, noise) is made in memory. Times are the best of --repeat:

  threshold  ours: threshold_in_region (60 mm box, each rule, component of the hottest voxel, plus
             SUVmax/mean/peak local+global/MTV/TLG/centroid)
             baseline: RegionOfInterest + ConnectedThreshold (full connectivity, seeded at the same
             voxel) + LabelStatistics (max, mean, count) on the same box        target < 300 ms
  percist    liver_reference (3 cm sphere) + the PERCIST threshold in the box
  candidates ours: find_candidates over the whole PET (PERCIST threshold)
             baseline: BinaryThreshold + ConnectedComponent (full) + LabelIntensityStatistics
             (max, mean, centroid)                                               target < 2 s
  save       threshold_lesion on a store (read the NRRD, threshold, write the version): for reference

    python benchmarks/bench_pet_tools.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "core"))

from timing import best  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from palmares_desktop.core.pet.candidates import find_candidates  # noqa: E402
from palmares_desktop.core.pet.threshold import (  # noqa: E402
    PetVolume,
    Region,
    liver_reference,
    threshold_in_region,
)
from palmares_desktop.core.segmentation.geometry import Grid  # noqa: E402

SIZE = (200, 200, 300)  # x, y, z voxels
SPACING = (4.0, 4.0, 3.0)
ORIGIN = (-398.0, -398.0, -1200.0)


def phantom(seed: int = 7) -> tuple[np.ndarray, list[tuple[tuple[float, float, float], float]], tuple]:
    """SUV (z, y, x) float32, the lesions [(centre mm, SUVmax)], and the liver reference centre (mm)."""
    rng = np.random.default_rng(seed)
    nx, ny, nz = SIZE
    x = ORIGIN[0] + SPACING[0] * np.arange(nx)
    y = ORIGIN[1] + SPACING[1] * np.arange(ny)
    z = ORIGIN[2] + SPACING[2] * np.arange(nz)
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij", sparse=True)
    suv = np.zeros((nz, ny, nx), np.float32)
    body = (xx / 170.0) ** 2 + (yy / 120.0) ** 2 <= 1
    suv[np.broadcast_to(body, suv.shape)] = 0.9

    def blob(c, r, value):
        inside = ((xx - c[0]) / r[0]) ** 2 + ((yy - c[1]) / r[1]) ** 2 + ((zz - c[2]) / r[2]) ** 2 <= 1
        np.copyto(suv, np.float32(value), where=inside)

    blob((-60, 0, -650), (90, 80, 80), 2.2)  # liver
    blob((20, -30, -500), (55, 45, 50), 3.2)  # heart
    blob((0, 0, -330), (80, 95, 80), 7.0)  # brain, reaching the top of the scan
    blob((0, -20, -1150), (40, 35, 35), 20.0)  # bladder, low in the scan
    suv += rng.normal(0, 0.15, suv.shape).astype(np.float32) * (suv > 0)
    lesions = []
    for _ in range(24):
        c = (rng.uniform(-120, 120), rng.uniform(-70, 70), rng.uniform(-1050, -450))
        r = rng.uniform(6, 18)
        value = rng.uniform(4.5, 14.0)
        inside = ((xx - c[0]) ** 2 + (yy - c[1]) ** 2 + (zz - c[2]) ** 2) <= r * r
        profile = value * (1 - 0.5 * (((xx - c[0]) ** 2 + (yy - c[1]) ** 2 + (zz - c[2]) ** 2) / (r * r)))
        np.copyto(suv, np.maximum(suv, profile).astype(np.float32), where=inside)
        lesions.append((c, value))
    return suv, lesions, (-90.0, 10.0, -650.0)


def sitk_threshold(image: sitk.Image, pet: PetVolume, region: Region, rule: str) -> tuple[int, float, float]:
    """The baseline: the same box, the same threshold, the same seed, done with SimpleITK filters."""
    box, _ = region.voxels(pet)
    roi = sitk.RegionOfInterest(image, [b.stop - b.start for b in box[::-1]], [b.start for b in box[::-1]])
    stats = sitk.MinimumMaximumImageFilter()
    stats.Execute(roi)
    top = stats.GetMaximum()
    threshold = {"41%": 0.41 * top, "50%": 0.5 * top, "suv2.5": 2.5, "suv4.0": 4.0}[rule]
    array = sitk.GetArrayViewFromImage(roi)
    seed = np.unravel_index(int(np.argmax(array)), array.shape)[::-1]
    grow = sitk.ConnectedThresholdImageFilter()
    grow.SetLower(threshold)
    grow.SetUpper(1e9)
    grow.SetSeedList([tuple(int(v) for v in seed)])
    grow.SetConnectivity(sitk.ConnectedThresholdImageFilter.FullConnectivity)
    mask = grow.Execute(roi)
    label = sitk.LabelStatisticsImageFilter()
    label.Execute(roi, mask)
    return label.GetCount(1), label.GetMaximum(1), label.GetMean(1)


def sitk_candidates(image: sitk.Image, threshold: float) -> int:
    above = sitk.BinaryThreshold(image, lowerThreshold=threshold, upperThreshold=1e9)
    labels = sitk.ConnectedComponent(above, True)  # fully connected (26)
    stats = sitk.LabelIntensityStatisticsImageFilter()
    stats.Execute(labels, image)
    for label in stats.GetLabels():
        stats.GetMaximum(label), stats.GetMean(label), stats.GetCenterOfGravity(label)
    return stats.GetNumberOfLabels()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    t = time.perf_counter()
    suv, lesions, liver_at = phantom()
    print(f"phantom {SIZE[0]}x{SIZE[1]}x{SIZE[2]} at {SPACING} mm made in {time.perf_counter() - t:.1f} s")
    image = sitk.GetImageFromArray(suv)
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN)
    pet = PetVolume(suv, Grid.of(image), sul_ratio=0.7)

    print(f"\nthreshold in a 60 mm box (best of {args.repeat}; ours includes SUVpeak local+global, MTV, TLG)")
    worst = 0.0
    for rule in ("41%", "50%", "suv2.5", "suv4.0"):
        ours_total, base_total, agree = 0.0, 0.0, 0
        for centre, _ in lesions[:8]:
            region = Region(centre, 60.0)
            ours, result = best(
                lambda region=region, rule=rule: threshold_in_region(pet, region, rule), args.repeat
            )
            base, (count, top, _mean) = best(
                lambda region=region, rule=rule: sitk_threshold(image, pet, region, rule), args.repeat
            )
            agree += int(count == result.metrics.voxel_count and abs(top - result.metrics.suv_max) < 1e-5)
            ours_total, base_total, worst = ours_total + ours, base_total + base, max(worst, ours)
        n = 8
        print(
            f"  {rule:<7} ours {1000 * ours_total / n:7.1f} ms   SimpleITK {1000 * base_total / n:7.1f} ms   "
            f"ratio {ours_total / base_total:5.2f}   same voxels in {agree}/{n}"
        )
    print(f"  slowest single threshold: {1000 * worst:.1f} ms (target < 300 ms)")
    for size in (150.0, 250.0):  # a reader's generous box: the worst case of the target
        region = Region(lesions[0][0], size)
        ours, result = best(lambda region=region: threshold_in_region(pet, region, "41%"), args.repeat)
        base, _ = best(lambda region=region: sitk_threshold(image, pet, region, "41%"), args.repeat)
        print(
            f"  41% in a {size:.0f} mm box: ours {1000 * ours:.1f} ms   SimpleITK {1000 * base:.1f} ms   "
            f"ratio {ours / base:.2f}   ({result.metrics.voxel_count} voxels kept)"
        )

    reference = liver_reference(pet, liver_at)
    ref_time, _ = best(lambda: liver_reference(pet, liver_at), args.repeat)
    centre = lesions[0][0]
    percist, _ = best(
        lambda: threshold_in_region(pet, Region(centre, 60.0), "percist", reference), args.repeat
    )
    print(
        f"\npercist: liver sphere {1000 * ref_time:.1f} ms (SUV mean {reference.suv_mean:.2f}, SD {reference.suv_sd:.2f}, "
        f"threshold {reference.percist_threshold_suv():.2f}); threshold in the box {1000 * percist:.1f} ms"
    )

    threshold = reference.percist_threshold_suv()
    ours, found = best(lambda: find_candidates(pet, threshold), max(2, args.repeat // 2))
    base, n_labels = best(lambda: sitk_candidates(image, threshold), max(2, args.repeat // 2))
    marks = sorted({c.likely_physiological for c in found.candidates if c.likely_physiological})
    # a lesion is found when its centre voxel lies in a listed region
    hit = sum(bool(found.labels[pet.index_of(centre)]) for centre, _ in lesions)
    print(
        f"\ncandidates (PERCIST SUV {threshold:.2f}): ours {ours:.3f} s   SimpleITK {base:.3f} s   ratio {ours / base:.2f}   "
        f"({len(found.candidates)} regions, SimpleITK {n_labels}; marked {', '.join(marks)}; "
        f"{hit}/{len(lesions)} lesions found)  target < 2 s"
    )

    # SUV 2.5 cuts through the liver's noise: many small regions, the labelling's hard case
    ours, found = best(lambda: find_candidates(pet, 2.5), max(2, args.repeat // 2))
    base, n_labels = best(lambda: sitk_candidates(image, 2.5), max(2, args.repeat // 2))
    print(
        f"candidates (SUV 2.5): ours {ours:.3f} s   SimpleITK {base:.3f} s   ratio {ours / base:.2f}   "
        f"({len(found.candidates)} regions, SimpleITK {n_labels})"
    )

    save_timing(image, lesions[0][0])


def save_timing(image: sitk.Image, centre) -> None:
    """The whole CLI path on a store: read the PET NRRD, threshold, write the mask and the version."""
    from series_fixture import insert_series

    from palmares_desktop.core.pet.subject_pet import threshold_lesion
    from palmares_desktop.core.store import Store

    with tempfile.TemporaryDirectory() as folder, Store.open(Path(folder) / "store") as store:
        store.use_system_reader("benchmark", site_code="IT03")
        insert_series(store, "IT03-0001", image, modality="PT")
        times = []
        for n in range(3):
            t = time.perf_counter()
            threshold_lesion(store, "IT03-0001", centre, "41%", size_mm=60.0 + n, lesion_name="bench")
            times.append(time.perf_counter() - t)
        print(
            f"\nsave: threshold_lesion on a store (NRRD read + threshold + version written) best {min(times):.2f} s"
        )


if __name__ == "__main__":
    main()

"""Benchmark: the CT tools and the clean-up on the demo CT, against SimpleITK doing the same in the same run.

The demo subject 3's CT (120x320x320 at 1.5625x1.5625x2.5 mm, core/demo/phantom.py) is rendered in
memory with its planted lesions. Times are the best of --repeat:

  threshold   ours: hu_threshold in a 60 mm box around the liver metastasis, component of its centre
              baseline: RegionOfInterest + ConnectedThreshold (full connectivity, same seed, same range)
              also with smooth_mm=1 (ours: Gaussian of the box + its reach; SimpleITK:
              SmoothingRecursiveGaussian of the same crop + ConnectedThreshold)
  grow        ours: region_grow (mean of the 3x3x3, +-tolerance, 30 mm sphere)
              baseline: RegionOfInterest (the sphere's box) + Mask (the same sphere, made beforehand)
              + ConnectedThreshold with the same bounds
  grow_mm     ours: grow_mm of the planted lesion mask (distance transform on its box)
              baseline: BinaryDilate with a ball of floor(mm / spacing) voxels, on the whole CT and on
              the same box
  fill/islands  fill_holes / remove_islands vs BinaryFillhole / ConnectedComponent + RelabelComponent

    python benchmarks/bench_ct_tools.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import best  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from palmares_desktop.core.ct.hu_tools import CtVolume, Region, hu_threshold, region_grow  # noqa: E402
from palmares_desktop.core.demo.dicom_writer import CT_GRID, PET_GRID  # noqa: E402
from palmares_desktop.core.demo.phantom import lesion_labels, make_subject, render_ct  # noqa: E402
from palmares_desktop.core.segmentation import cleanup  # noqa: E402
from palmares_desktop.core.segmentation.geometry import Grid  # noqa: E402


def _roi(image: sitk.Image, box) -> sitk.Image:
    return sitk.RegionOfInterest(image, [b.stop - b.start for b in box[::-1]], [b.start for b in box[::-1]])


def _connected(image: sitk.Image, lower: float, upper: float, seed_zyx) -> sitk.Image:
    grow = sitk.ConnectedThresholdImageFilter()
    grow.SetLower(float(lower))
    grow.SetUpper(float(upper))
    grow.SetSeedList([tuple(int(v) for v in seed_zyx[::-1])])
    grow.SetConnectivity(sitk.ConnectedThresholdImageFilter.FullConnectivity)
    return grow.Execute(image)


def _local(index, box):
    return tuple(int(i) - b.start for i, b in zip(index, box, strict=True))


def _line(name: str, ours: float, base: float, note: str) -> None:
    print(
        f"  {name:<46} ours {1000 * ours:8.2f} ms   SimpleITK {1000 * base:8.2f} ms   ratio {ours / base:5.2f}   {note}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    t = time.perf_counter()
    subject = make_subject(3, PET_GRID)
    hu = render_ct(subject, CT_GRID)
    labels = lesion_labels(subject, CT_GRID)
    print(f"demo CT {hu.shape[::-1]} at {CT_GRID.spacing} mm rendered in {time.perf_counter() - t:.1f} s")
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing(CT_GRID.spacing)
    image.SetOrigin(CT_GRID.origin)
    ct = CtVolume(hu, Grid.of(image))
    lesion = next(x for x in subject.lesions if x.name == "liver metastasis")
    seed = ct.index_of(lesion.centre)
    planted = labels == lesion.label
    print(f"liver metastasis at {lesion.centre} mm, {int(planted.sum())} voxels, planted {lesion.hu:g} HU\n")

    region = Region(lesion.centre, 60.0).voxels(ct)
    box, local = region.box, _local(seed, region.box)
    for lo, hi, smooth in ((-100.0, 49.0, 0.0), (-100.0, 49.0, 1.0), (20.0, 200.0, 0.0)):
        ours, result = best(
            lambda lo=lo, hi=hi, smooth=smooth: hu_threshold(
                hu, lo, hi, region, seed, spacing_zyx=ct.spacing_zyx, smooth_mm=smooth
            ),
            args.repeat,
        )
        if smooth:

            def baseline(lo=lo, hi=hi, smooth=smooth):
                crop = sitk.Cast(_roi(image, box), sitk.sitkFloat32)
                return _connected(sitk.SmoothingRecursiveGaussian(crop, smooth), lo, hi, local)
        else:

            def baseline(lo=lo, hi=hi):
                return _connected(_roi(image, box), lo, hi, local)

        base, mask = best(baseline, args.repeat)
        theirs = sitk.GetArrayFromImage(mask) > 0
        same = np.array_equal(result.mask[box], theirs)
        note = (
            "same voxels"
            if same
            else f"Dice {2 * (result.mask[box] & theirs).sum() / (result.mask.sum() + theirs.sum()):.3f} (another Gaussian)"
        )
        _line(
            f"threshold {lo:g}..{hi:g} HU{', smooth 1 mm' if smooth else ''}",
            ours,
            base,
            f"{int(result.mask.sum())} voxels, {note}",
        )

    for tolerance, smooth in ((11.0, 1.0), (60.0, 0.0)):
        ours, result = best(
            lambda tolerance=tolerance, smooth=smooth: region_grow(
                hu, seed, tolerance, 30.0, ct.spacing_zyx, smooth_mm=smooth
            ),
            args.repeat,
        )
        lower, upper = result.parameters["lower_hu"], result.parameters["upper_hu"]
        grow_box = result.box

        # the same 30 mm sphere for SimpleITK, made beforehand (not timed): voxels outside it never pass
        offsets = np.meshgrid(
            *[
                (np.arange(b.start, b.stop) - v) * s
                for b, v, s in zip(grow_box, seed, ct.spacing_zyx, strict=True)
            ],
            indexing="ij",
            sparse=True,
        )
        sphere = sitk.GetImageFromArray((sum(o**2 for o in offsets) <= 30.0**2 + 1e-6).astype(np.uint8))
        sphere.CopyInformation(_roi(image, grow_box))

        def baseline(lower=lower, upper=upper, grow_box=grow_box, smooth=smooth, sphere=sphere):
            crop = sitk.Cast(_roi(image, grow_box), sitk.sitkFloat32)
            if smooth:
                crop = sitk.SmoothingRecursiveGaussian(crop, smooth)
            crop = sitk.Mask(crop, sphere, outsideValue=-1e9)
            return _connected(crop, lower, upper, _local(seed, grow_box))

        base, mask = best(baseline, args.repeat)
        theirs = sitk.GetArrayFromImage(mask) > 0
        ours_crop = result.mask[grow_box]
        limited = (
            "reaches the 30 mm limit"
            if result.parameters["touches_max_radius"]
            else "inside the 30 mm sphere"
        )
        dice = 2 * (ours_crop & theirs).sum() / (ours_crop.sum() + theirs.sum())
        _line(
            f"region grow +-{tolerance:g} HU{', smooth 1 mm' if smooth else ''}",
            ours,
            base,
            f"{int(result.mask.sum())} voxels ({limited}), SimpleITK {int(theirs.sum())}, Dice {dice:.3f}",
        )

    spacing = ct.spacing_zyx
    mask_image = sitk.GetImageFromArray(planted.astype(np.uint8))
    mask_image.CopyInformation(image)
    for mm in (2.0, 5.0):
        ours, grown = best(lambda mm=mm: cleanup.grow_mm(planted, mm, spacing), args.repeat)
        radius = [int(mm // s) for s in CT_GRID.spacing]  # x, y, z voxels
        base_full, dilated = best(
            lambda radius=radius: sitk.BinaryDilate(mask_image, radius, sitk.sitkBall),
            max(2, args.repeat // 2),
        )
        pad = [r + 1 for r in radius[::-1]]
        where = np.argwhere(planted)
        crop_box = tuple(
            slice(max(int(a) - p, 0), min(int(b) + 1 + p, n))
            for a, b, p, n in zip(where.min(0), where.max(0), pad, planted.shape, strict=True)
        )
        base_box, _ = best(
            lambda radius=radius, crop_box=crop_box: sitk.BinaryDilate(
                _roi(mask_image, crop_box), radius, sitk.sitkBall
            ),
            args.repeat,
        )
        theirs = sitk.GetArrayFromImage(dilated) > 0
        agree = (
            "same voxels"
            if np.array_equal(grown, theirs)
            else f"{int((grown ^ theirs).sum())} voxels differ (ITK's voxel ellipsoid)"
        )
        _line(
            f"grow_mm {mm:g} mm (SimpleITK whole CT)", ours, base_full, f"{int(grown.sum())} voxels, {agree}"
        )
        _line(
            f"grow_mm {mm:g} mm (SimpleITK same box)",
            ours,
            base_box,
            f"ball radius {radius} voxels (x, y, z)",
        )

    noisy = hu_threshold(hu, 10, 70, Region(lesion.centre, 24.0, "sphere").voxels(ct), seed).mask
    specks = np.zeros(hu.shape, bool)  # every voxel of 80..200 HU in the 60 mm box: noise specks
    specks[box] = (hu[box] >= 80) & (hu[box] <= 200)
    for name, mask, ours_fn, sitk_fn, compare in (
        ("fill_holes (3D)", noisy, cleanup.fill_holes, sitk.BinaryFillhole, lambda out: out > 0),
        (
            "remove_islands (largest)",
            specks,
            cleanup.remove_islands,
            lambda m: sitk.RelabelComponent(sitk.ConnectedComponent(m, True)),
            lambda out: out == 1,
        ),
    ):
        mask_image = sitk.GetImageFromArray(mask.astype(np.uint8))
        ours, out = best(lambda ours_fn=ours_fn, mask=mask: ours_fn(mask), args.repeat)
        base_full, theirs = best(lambda sitk_fn=sitk_fn, m=mask_image: sitk_fn(m), max(2, args.repeat // 2))
        where = np.argwhere(mask)
        crop_box = tuple(
            slice(max(int(a) - 1, 0), min(int(b) + 2, n))
            for a, b, n in zip(where.min(0), where.max(0), mask.shape, strict=True)
        )
        base_box, _ = best(
            lambda sitk_fn=sitk_fn, m=mask_image, crop_box=crop_box: sitk_fn(_roi(m, crop_box)), args.repeat
        )
        same = "same voxels" if np.array_equal(out, compare(sitk.GetArrayFromImage(theirs))) else "differ"
        _line(
            f"{name} (SimpleITK whole CT)",
            ours,
            base_full,
            f"{int(mask.sum())} -> {int(out.sum())} voxels, {same}",
        )
        _line(f"{name} (SimpleITK same box)", ours, base_box, "")

    slices = np.flatnonzero(planted.any(axis=(1, 2)))
    sparse = planted.copy()
    sparse[slices[1:-1:2]] = False
    ours, interpolated = best(lambda: cleanup.interpolate_slices(sparse, spacing), args.repeat)
    print(
        f"  {'interpolate_slices':<46} ours {1000 * ours:8.2f} ms   (no SimpleITK equivalent; {int(sparse.sum())} drawn -> "
        f"{int(interpolated.sum())} voxels, planted {int(planted.sum())})"
    )


if __name__ == "__main__":
    main()

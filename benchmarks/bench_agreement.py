"""Benchmark: reader agreement of a round, 100 lesions x 3 readers x 1,200 features (issue 10: < 30 s).

Masks: lesions (spheres of 6-25 mm radius, each reader's outline grown or shrunk by a known margin
and shifted) in a 200x200x300 PET grid of 4 mm voxels, as they are stored (full grid). Features:
a 1,200 x 100 x 3 table (lesion effect + reader noise).

  ours      core.agreement.mask_agreement for the 3 reader pairs of every lesion (Dice, Jaccard,
            HD95, HD max, volume difference) + feature_iccs ICC(2,1) and ICC(3,1) with 95% CIs
  baseline  what a script does today: SimpleITK LabelOverlapMeasures + HausdorffDistance on the same
            pairs (HD max only, no HD95; timed on 5 lesions and scaled), and pingouin.intraclass_corr per feature (timed on 60
            features and scaled to 1,200, said so in the output)

    python benchmarks/bench_agreement.py [--lesions 100]
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

SHAPE = (300, 200, 200)  # z, y, x
SPACING = (4.0, 4.0, 4.0)


def lesion_masks(rng: np.random.Generator, n_readers: int) -> list[np.ndarray]:
    centre = rng.uniform([40, 30, 30], [260, 170, 170])
    radius_mm = rng.uniform(6, 25)
    z, y, x = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    out = []
    for _ in range(n_readers):
        c = centre + rng.normal(0, 0.5, 3)
        r = (radius_mm + rng.normal(0, 1.5)) / SPACING[0]
        out.append(((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) <= r * r)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lesions", type=int, default=100)
    parser.add_argument("--readers", type=int, default=3)
    parser.add_argument("--features", type=int, default=1200)
    parser.add_argument("--baseline-lesions", type=int, default=5, help="SimpleITK is slow: timed on these")
    args = parser.parse_args()

    import pandas as pd
    import pingouin
    import SimpleITK as sitk

    from palmares_desktop.core.agreement import feature_iccs, mask_agreement

    rng = np.random.default_rng(7)
    pairs = list(itertools.combinations(range(args.readers), 2))
    ours_s = base_s = 0.0
    for lesion in range(args.lesions):
        masks = lesion_masks(rng, args.readers)
        started = time.perf_counter()
        for i, j in pairs:
            mask_agreement(masks[i], masks[j], SPACING)
        ours_s += time.perf_counter() - started
        if lesion >= args.baseline_lesions:
            continue
        images = [sitk.GetImageFromArray(m.astype(np.uint8)) for m in masks]
        for image in images:
            image.SetSpacing(SPACING)
        started = time.perf_counter()
        for i, j in pairs:
            overlap = sitk.LabelOverlapMeasuresImageFilter()
            overlap.Execute(images[i], images[j])
            hausdorff = sitk.HausdorffDistanceImageFilter()
            hausdorff.Execute(images[i], images[j])
        base_s += time.perf_counter() - started
    print(f"masks: {args.lesions} lesions x {len(pairs)} reader pairs on a {SHAPE[::-1]} grid")
    print(f"  ours (Dice, Jaccard, HD95, HD max, volumes)   {ours_s:7.2f} s")
    base_s *= args.lesions / min(args.baseline_lesions, args.lesions)
    print(f"  SimpleITK overlap + Hausdorff (no HD95)       {base_s:7.2f} s   ratio {ours_s / base_s:.3f}x"
          f"   (timed on {args.baseline_lesions} lesions, scaled)")  # fmt: skip

    lesion_effect = rng.normal(0, 1, (args.features, args.lesions, 1))
    values = lesion_effect + rng.normal(0, 0.3, (args.features, args.lesions, args.readers))
    names = [f"f{i}" for i in range(args.features)]
    started = time.perf_counter()
    for kind in ("ICC(2,1)", "ICC(3,1)"):
        feature_iccs(values, names, kind)
    icc_s = time.perf_counter() - started
    sample = 60
    started = time.perf_counter()
    for f in range(sample):
        long = pd.DataFrame(
            [(t, r, values[f, t, r]) for t in range(args.lesions) for r in range(args.readers)],
            columns=["lesion", "reader", "value"],
        )
        pingouin.intraclass_corr(long, targets="lesion", raters="reader", ratings="value")
    pingouin_s = (time.perf_counter() - started) * args.features / sample
    print(f"features: {args.features} x {args.lesions} lesions x {args.readers} readers")
    print(f"  ours ICC(2,1) + ICC(3,1) with CIs              {icc_s:7.2f} s")
    print(f"  pingouin per feature (60 timed, x{args.features / sample:.0f})        {pingouin_s:7.2f} s   "
          f"ratio {icc_s / pingouin_s:.4f}x")  # fmt: skip
    total = ours_s + icc_s
    print(f"round agreement total {total:.1f} s (target < 30 s): {'OK' if total < 30 else 'TOO SLOW'}")


if __name__ == "__main__":
    main()

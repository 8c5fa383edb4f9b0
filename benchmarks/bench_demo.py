"""Benchmark: how long the demo's slide and DICOM take, against the floor cost measured in the same run.

    slide     write_slide(): 22528 x 20480 level 0, 5 levels, 512 tiles JPEG Q80, textures cached
    baseline  JPEG-encoding the same number of 512x512 tiles (imagecodecs, one thread, one fixed
              textured tile) and writing the bytes: the cost no tile generator can avoid
    dicom     write_subject_dicom() for one subject (CT 320x320x120 + PET 128x128x75, rendering included)

Prints wall and CPU seconds, and the ratio slide/baseline (tile generation + TIFF overhead).
Target from the issue: a slide in < 10 s on the 2-core reference machine.

    python benchmarks/bench_demo.py [--repeat 2]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import imagecodecs
import numpy as np

from palmares_desktop.core.demo.dicom_writer import PET_GRID, write_subject_dicom
from palmares_desktop.core.demo.phantom import make_subject
from palmares_desktop.core.demo.slide_writer import STROMA, TILE, texture_library, write_slide


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def _baseline(shapes: list[tuple[int, int]], target: Path) -> None:
    tile = np.ascontiguousarray(texture_library(0)[STROMA][0])
    with target.open("wb") as fh:
        for height, width in shapes:
            for _ in range(math.ceil(height / TILE) * math.ceil(width / TILE)):
                fh.write(
                    imagecodecs.jpeg8_encode(
                        tile, level=80, colorspace="RGB", outcolorspace="YCBCR", subsampling=(2, 2)
                    )
                )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _, wall, cpu = _timed(lambda: [texture_library(level) for level in range(5)])
        print(f"texture library (once per run):   wall {wall:5.2f} s  cpu {cpu:5.2f} s")
        slide_best = base_best = math.inf
        for i in range(args.repeat):
            result, wall, cpu = _timed(lambda i=i: write_slide(root / f"s{i}.svs", subject_index=i + 1))
            slide_best = min(slide_best, wall)
            print(
                f"slide {i + 1}:                          wall {wall:5.2f} s  cpu {cpu:5.2f} s  "
                f"({(root / f's{i}.svs').stat().st_size / 2**20:.0f} MiB, tissue {result.tissue_fraction:.0%})"
            )
            _, wall, cpu = _timed(lambda levels=result.levels: _baseline(levels, root / "baseline.bin"))
            base_best = min(base_best, wall)
            print(f"baseline (JPEG encode only):      wall {wall:5.2f} s  cpu {cpu:5.2f} s")
        print(f"ratio slide/baseline (best of {args.repeat}): {slide_best / base_best:.2f}")
        _, wall, cpu = _timed(
            lambda: write_subject_dicom(make_subject(1, PET_GRID), root / "dicom", "siemens")
        )
        print(f"one subject's CT+PET DICOM:       wall {wall:5.2f} s  cpu {cpu:5.2f} s")


if __name__ == "__main__":
    main()

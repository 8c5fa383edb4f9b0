"""Benchmark: `import_dicom` of a 512x512xN CT vs the bare time to a ready volume, same run.

    python benchmarks/bench_import.py [--slices 300] [--keep DIR]

Generates the CT series with `bench_dicom_load.write_ct_series` (realistic tags), then times:

  baseline  scan_folder + load_series + sitk.WriteImage(compressed NRRD)   (what any import must do)
  import    import_dicom into a fresh store (scan, de-identify and write every instance, leak check,
            volume, rows, audit)

and prints the ratio import/baseline, i.e. what de-identified DICOM copies and the checks cost.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dicom_load import write_ct_series  # noqa: E402

from palmares_desktop.core.dicom.discovery import scan_folder  # noqa: E402
from palmares_desktop.core.dicom.volume import load_series  # noqa: E402
from palmares_desktop.core.importer import import_dicom  # noqa: E402
from palmares_desktop.core.store import Store  # noqa: E402


def baseline(folder: Path, out: Path) -> float:
    t0 = time.perf_counter()
    (series,) = scan_folder(folder).series
    sitk.WriteImage(load_series(series), str(out), True)
    return time.perf_counter() - t0


def ours(folder: Path, root: Path) -> float:
    store = Store.open(root)
    store.use_system_reader("bench", site_code="IT03")
    t0 = time.perf_counter()
    summary = import_dicom(store, folder, "IT03-0001")
    elapsed = time.perf_counter() - t0
    assert summary.imported and not summary.errors, summary.to_dict()
    store.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--keep", type=Path, help="write (or reuse) the series in this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="palmares_bench_import_") as tmp:
        folder = args.keep or Path(tmp) / "ct"
        if not (folder.is_dir() and any(folder.iterdir())):
            write_ct_series(folder, args.slices)
        baseline(folder, Path(tmp) / "warm.nrrd")  # warm the page cache
        t_base = baseline(folder, Path(tmp) / "base.nrrd")
        t_import = ours(folder, Path(tmp) / "store")
        n = len(list(folder.iterdir()))
        print(
            f"{n} slices: baseline (scan + load + NRRD) {t_base:.2f} s, import_dicom {t_import:.2f} s, "
            f"ratio {t_import / t_base:.2f}; de-identification + copies {(t_import - t_base) / n * 1e3:.1f} ms/slice"
        )


if __name__ == "__main__":
    main()

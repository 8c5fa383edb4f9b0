"""Benchmark: time to a ready CT volume, ours (scan + load_series) vs SimpleITK's ImageSeriesReader.

Generates a 512x512x300 int16 CT series with realistic tags once (in a temporary folder, or in
--keep DIR to reuse it between runs), then times, best of --repeat, on the same files in the same run:

  ours      scan_folder(DIR) + load_series(series)           -> sitk.Image in HU
  baseline  ImageSeriesReader.GetGDCMSeriesFileNames(DIR) + ImageSeriesReader.Execute()

and reports the ratio ours/baseline (target <= 1.2). Peak memory is measured for each reader in a
fresh subprocess (ru_maxrss after the read minus ru_maxrss after the imports) and compared with the
size of one copy of the volume.

    python benchmarks/bench_dicom_load.py [--slices 300] [--repeat 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

ROWS = COLS = 512


def _body_phantom(rows: int, cols: int) -> np.ndarray:
    """A chest-like HU slice: padding outside the field of view, air, body, lungs, spine."""
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    cy, cx = rows / 2, cols / 2
    hu = np.full((rows, cols), -1000, np.float32)
    body = ((x - cx) / (0.42 * cols)) ** 2 + ((y - cy) / (0.32 * rows)) ** 2 < 1
    hu[body] = 40
    for side in (-1, 1):
        lung = ((x - cx - side * 0.18 * cols) / (0.12 * cols)) ** 2 + ((y - cy) / (0.2 * rows)) ** 2 < 1
        hu[lung] = -850
    spine = ((x - cx) / (0.05 * cols)) ** 2 + ((y - cy - 0.22 * rows) / (0.05 * rows)) ** 2 < 1
    hu[spine] = 700
    return hu


def _template(study_uid: str, series_uid: str, for_uid: str) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = "20240115"
    ds.StudyTime = ds.SeriesTime = "101500"
    ds.AccessionNumber = "BENCH0001"
    ds.Modality = "CT"
    ds.Manufacturer = "PALMARES-BENCH"
    ds.InstitutionName = "Benchmark Hospital"
    ds.ReferringPhysicianName = "REF^DOCTOR"
    ds.StationName = "CT01"
    ds.StudyDescription = "CT THORAX"
    ds.SeriesDescription = "Thorax 1.25 B30f"
    ds.ManufacturerModelName = "Bench 128"
    ds.PatientName = "BENCH^PHANTOM"
    ds.PatientID = "BENCH-0001"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.PatientAge = "054Y"
    ds.PatientWeight = "68"
    ds.BodyPartExamined = "CHEST"
    ds.ScanOptions = "HELICAL MODE"
    ds.SliceThickness = "1.25"
    ds.KVP = "120"
    ds.DataCollectionDiameter = "500"
    ds.SoftwareVersions = "1.0"
    ds.ReconstructionDiameter = "400"
    ds.DistanceSourceToDetector = "1085.6"
    ds.DistanceSourceToPatient = "595"
    ds.GantryDetectorTilt = "0"
    ds.TableHeight = "160"
    ds.RotationDirection = "CW"
    ds.ExposureTime = "500"
    ds.XRayTubeCurrent = "250"
    ds.Exposure = "125"
    ds.FilterType = "BODY FILTER"
    ds.GeneratorPower = "30"
    ds.FocalSpots = "1.2"
    ds.ConvolutionKernel = "B30f"
    ds.PatientPosition = "FFS"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = "3"
    ds.AcquisitionNumber = "1"
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.FrameOfReferenceUID = for_uid
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ROWS
    ds.Columns = COLS
    ds.PixelSpacing = [0.78125, 0.78125]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.PixelPaddingValue = -2000
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ref = Dataset()
    ref.ReferencedSOPClassUID = CTImageStorage
    ref.ReferencedSOPInstanceUID = generate_uid()
    ds.ReferencedImageSequence = Sequence([ref])
    # A private block, as every vendor writes one.
    block = ds.private_block(0x0019, "PALMARES BENCH", create=True)
    for i in range(20):
        block.add_new(0x10 + i, "DS", f"{i * 1.5:.2f}")
    return ds


def write_ct_series(out_dir: Path, n_slices: int = 300) -> Path:
    """Write the benchmark series (one file per slice, Explicit VR Little Endian) and return its folder."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    base = _body_phantom(ROWS, COLS)
    noise = rng.normal(0, 12, (ROWS, COLS * 2)).astype(np.float32)
    fov = (np.mgrid[0:ROWS, 0:COLS] - ROWS / 2) ** 2
    outside_fov = fov[0] + fov[1] > (0.49 * ROWS) ** 2
    ds = _template(generate_uid(), generate_uid(), generate_uid())
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    for k in range(n_slices):
        shift = (k * 37) % COLS  # cheap per-slice variation of the noise
        stored = (base + noise[:, shift : shift + COLS] + 1024).astype(np.int16)
        stored[outside_fov] = -2000
        uid = generate_uid()
        z = -400.0 + 1.25 * k
        meta.MediaStorageSOPInstanceUID = uid
        ds.SOPInstanceUID = uid
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [-200.0, -200.0, z]
        ds.SliceLocation = f"{z:.2f}"
        ds.PixelData = stored.tobytes()
        # Shuffled names: readers must sort by geometry, not by file name.
        ds.save_as(out_dir / f"IM{(k * 7919) % 100003:06d}", enforce_file_format=True)
    return out_dir


def load_ours(folder: Path) -> sitk.Image:
    from palmares_desktop.core.dicom.discovery import scan_folder
    from palmares_desktop.core.dicom.volume import load_series

    result = scan_folder(folder)
    (series,) = result.series
    return load_series(series)


def load_sitk(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


READERS = {"ours": load_ours, "sitk": load_sitk}


def _peak_rss_bytes(reset: bool = False) -> int:
    """Peak resident memory of this process. On Linux the peak is reset first when asked (it is
    otherwise inherited from the parent across exec), and read from /proc/self/status."""
    try:
        if reset:
            Path("/proc/self/clear_refs").write_text("5")
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _memory_child(which: str, folder: str) -> None:
    """Runs in a fresh interpreter: print the peak-RSS growth caused by one read."""
    import palmares_desktop.core.dicom.discovery  # noqa: F401  (imports are not the reader's cost)
    import palmares_desktop.core.dicom.volume  # noqa: F401

    before = _peak_rss_bytes(reset=True)
    image = READERS[which](Path(folder))
    after = _peak_rss_bytes()
    print(json.dumps({"peak_delta": after - before, "size": image.GetNumberOfPixels()}))


def _measure_memory(which: str, folder: Path) -> int:
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", which, str(folder)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_delta"]


def _best_of(fn, folder: Path, repeat: int) -> tuple[float, sitk.Image]:
    best, image = float("inf"), None
    for _ in range(repeat):
        image = None
        gc.collect()
        t0 = time.perf_counter()
        image = fn(folder)
        best = min(best, time.perf_counter() - t0)
    return best, image


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="write (or reuse) the series in this folder")
    parser.add_argument("--memory-child", nargs=2, metavar=("READER", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        _memory_child(*args.memory_child)
        return

    tmp = None
    if args.keep and args.keep.is_dir() and any(args.keep.iterdir()):
        folder = args.keep
        print(f"reusing {folder}")
    else:
        tmp = tempfile.TemporaryDirectory(prefix="palmares_bench_")
        folder = args.keep or Path(tmp.name)
        t0 = time.perf_counter()
        write_ct_series(folder, args.slices)
        print(f"generated {args.slices} slices of {ROWS}x{COLS} in {time.perf_counter() - t0:.1f} s")

    load_sitk(folder)  # warm the page cache and both code paths once
    load_ours(folder)
    # Alternate the readers so neither always runs on a cooler cache.
    t_sitk, t_ours = float("inf"), float("inf")
    for _ in range(args.repeat):
        t_sitk = min(t_sitk, _best_of(load_sitk, folder, 1)[0])
        t_ours = min(t_ours, _best_of(load_ours, folder, 1)[0])
    from palmares_desktop.core.dicom.discovery import scan_folder
    from palmares_desktop.core.dicom.volume import load_series

    t_scan, t_load = float("inf"), float("inf")
    for _ in range(args.repeat):  # the two halves of ours, for the record
        t0 = time.perf_counter()
        (series,) = scan_folder(folder).series
        t1 = time.perf_counter()
        load_series(series)
        t_scan, t_load = min(t_scan, t1 - t0), min(t_load, time.perf_counter() - t1)
    ours, base = load_ours(folder), load_sitk(folder)
    a, b = sitk.GetArrayViewFromImage(ours), sitk.GetArrayViewFromImage(base)
    # SimpleITK keeps the padding value (-2000 stored = -3024 HU); we set padding to -1024 HU.
    padded = b == -3024
    same = bool(np.array_equal(a[~padded], b[~padded])) and bool((a[padded] == -1024).all())
    same = same and np.allclose(ours.GetOrigin(), base.GetOrigin())
    same = same and np.allclose(ours.GetSpacing(), base.GetSpacing())
    one_copy = a.nbytes
    del a, b, ours, base

    mem_ours = _measure_memory("ours", folder)
    mem_sitk = _measure_memory("sitk", folder)
    print(
        f"volume {args.slices}x{ROWS}x{COLS}, one copy = {one_copy / 2**20:.0f} MiB, identical voxels (padding aside) and geometry: {same}"
    )
    print(f"SimpleITK ImageSeriesReader (GDCM file names + Execute): {t_sitk:.3f} s (best of {args.repeat})")
    print(f"ours (scan_folder + load_series):                       {t_ours:.3f} s (best of {args.repeat})")
    print(f"  of which scan_folder {t_scan:.3f} s, load_series {t_load:.3f} s (best of {args.repeat} each)")
    print(f"ratio ours/SimpleITK: {t_ours / t_sitk:.2f}  (target <= 1.2)")
    print(
        f"peak memory growth: ours {mem_ours / 2**20:.0f} MiB ({mem_ours / one_copy:.2f} x one copy), "
        f"SimpleITK {mem_sitk / 2**20:.0f} MiB ({mem_sitk / one_copy:.2f} x one copy)"
    )
    if tmp is not None and not args.keep:
        tmp.cleanup()


if __name__ == "__main__":
    main()

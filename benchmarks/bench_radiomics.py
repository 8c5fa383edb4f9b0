"""Benchmark: radiomics extraction through PALMARES vs bare pyradiomics, same case, same run.

Case: the IBSI lung CT phantom (NIfTI image + GTV mask, 204x201x60) with the locked CT preset
(palmares_desktop/resources/radiomics/ct.yaml: 2 mm resampling, 107 features). Best of --repeat, interleaved so
that load from other processes hits both sides alike. Wall time and CPU time (user + system, of
this process or of the child process) are both reported: on a shared machine the CPU-time ratio
is the steadier one.

  (a) in process   extract_features(image, mask, params)          (target <= 1.05x)
                   vs RadiomicsFeatureExtractor(ct.yaml).execute(image, mask), extractor built
                   once as ours is, pyradiomics' default logging for the baseline;
  (b) whole process  `palmares radiomics IMAGE MASK --preset ct`   (target <= 1.15x)
                   vs `python bare.py IMAGE MASK ct.yaml`, a minimal pyradiomics script that
                   reads both files, extracts and prints JSON; start-up included.
  (b') the same command through the `radiomics` group alone (logging set up as `palmares` does,
                   but without importing every other command module first): what (b) costs once
                   the top-level command registration is lazy.

    python benchmarks/bench_radiomics.py [--repeat 7] [--data DIR]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BARE_SCRIPT = """\
import json, sys
import SimpleITK as sitk
from radiomics.featureextractor import RadiomicsFeatureExtractor
image, mask, params = sys.argv[1:4]
result = RadiomicsFeatureExtractor(params).execute(sitk.ReadImage(image), sitk.ReadImage(mask))
json.dump({k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in result.items()}, sys.stdout, default=str)
"""


def _pyradiomics_default_logging() -> None:
    import radiomics

    logging.getLogger("radiomics").setLevel(logging.INFO)
    radiomics.handler.setLevel(logging.WARNING)


def _palmares_logging() -> None:
    import radiomics

    logging.getLogger("radiomics").setLevel(logging.WARNING)
    radiomics.handler.setLevel(60)


Timing = tuple[float, float]  # (wall s, cpu s)


def _best(samples: list[Timing]) -> Timing:
    return min(s[0] for s in samples), min(s[1] for s in samples)


def bench_in_process(image_path: Path, mask_path: Path, repeat: int) -> tuple[Timing, Timing]:
    import SimpleITK as sitk
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    from palmares_desktop.core.radiomics.extract import extract_features
    from palmares_desktop.core.radiomics.params import load_params

    image, mask = sitk.ReadImage(str(image_path)), sitk.ReadImage(str(mask_path))
    params = load_params("ct")
    bare = RadiomicsFeatureExtractor(str(params.path))
    extract_features(image, mask, params)  # warm both: first calls pay one-off imports and caches
    _pyradiomics_default_logging()
    bare.execute(image, mask)

    def time_bare() -> Timing:
        _pyradiomics_default_logging()
        wall, cpu = time.perf_counter(), time.process_time()
        bare.execute(image, mask)
        return time.perf_counter() - wall, time.process_time() - cpu

    def time_ours() -> Timing:
        _palmares_logging()
        wall, cpu = time.perf_counter(), time.process_time()
        extract_features(image, mask, params)
        return time.perf_counter() - wall, time.process_time() - cpu

    ours: list[Timing] = []
    base: list[Timing] = []
    for i in range(repeat):
        pair = (time_ours, time_bare) if i % 2 else (time_bare, time_ours)
        for fn in pair:
            (ours if fn is time_ours else base).append(fn())
    return _best(ours), _best(base)


GROUP_ONLY = (
    "import sys; from palmares_desktop.core.logs import setup_logging; setup_logging(); "
    "from palmares_desktop.cli.radiomics_cmd import radiomics; radiomics(sys.argv[1:], prog_name='palmares radiomics')"
)


def bench_processes(image_path: Path, mask_path: Path, repeat: int) -> dict[str, Timing]:
    from palmares_desktop.core.radiomics.params import preset_path

    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "bare.py"
        script.write_text(BARE_SCRIPT)
        env = {**os.environ, "PALMARES_HOME": str(Path(tmp) / "home")}
        palmares = shutil.which("palmares")
        ours_cmd = (
            [palmares]
            if palmares
            else [sys.executable, "-c", "from palmares_desktop.cli.main import cli; cli()"]
        )
        ours_cmd += ["radiomics", str(image_path), str(mask_path), "--preset", "ct"]
        bare_cmd = [sys.executable, str(script), str(image_path), str(mask_path), str(preset_path("ct"))]
        group_cmd = [sys.executable, "-c", GROUP_ONLY, str(image_path), str(mask_path), "--preset", "ct"]

        def run(cmd: list[str]) -> Timing:
            start = time.perf_counter()
            child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            _, status, usage = os.wait4(child.pid, 0)  # this child's own CPU time
            elapsed = time.perf_counter() - start
            child.returncode = os.waitstatus_to_exitcode(status)
            if child.returncode != 0:
                raise SystemExit(f"{cmd[0]} failed: {child.stderr.read().decode()[-500:]}")
            child.stderr.close()
            return elapsed, usage.ru_utime + usage.ru_stime

        commands = {"ours": ours_cmd, "bare": bare_cmd, "group": group_cmd}
        times: dict[str, list[Timing]] = {name: [] for name in commands}
        for cmd in commands.values():
            run(cmd)  # warm the OS file cache and Python's bytecode caches
        for i in range(repeat):
            order = list(commands) if i % 2 else list(commands)[::-1]
            for name in order:
                times[name].append(run(commands[name]))
        return {name: _best(samples) for name, samples in times.items()}


def main() -> None:
    from palmares_desktop.core.paths import shared_data_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--data", type=Path, default=shared_data_dir())
    args = parser.parse_args()
    folder = args.data / "ibsi_ct_lung_pat1" / "nifti"
    image, mask = folder / "image" / "phantom.nii.gz", folder / "mask" / "mask.nii.gz"

    ours, base = bench_in_process(image, mask, args.repeat)
    _report("(a) extract_features vs RadiomicsFeatureExtractor.execute", ours, base, 1.05, args.repeat)
    procs = bench_processes(image, mask, args.repeat)
    _report(
        "(b) `palmares radiomics` process vs bare pyradiomics script",
        procs["ours"],
        procs["bare"],
        1.15,
        args.repeat,
    )
    _report(
        "(b') radiomics group alone vs bare pyradiomics script",
        procs["group"],
        procs["bare"],
        1.15,
        args.repeat,
    )
    print(
        "    (the gap between (b) and (b') is the `palmares` entry point itself: logging set-up and the lazy command table)"
    )


def _report(title: str, ours: Timing, base: Timing, target: float, repeat: int) -> None:
    print(f"{title} (best of {repeat}, target <= {target}):")
    for i, kind in enumerate(("wall", "cpu")):
        ratio = ours[i] / base[i]
        print(
            f"    {kind:4s} {ours[i]:.3f} s vs {base[i]:.3f} s: ratio {ratio:.3f} {'OK' if ratio <= target else 'OVER'}"
        )


if __name__ == "__main__":
    main()

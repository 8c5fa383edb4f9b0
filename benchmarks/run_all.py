"""Run every benchmark in turn; each prints its times and its ratio against a baseline measured
in the same run (SimpleITK, bare pyradiomics, pyradiomics --jobs, JPEG encoding alone).

    python benchmarks/run_all.py [name ...]     e.g. run_all.py dicom_load radiomics

Not part of the test run: timings on a shared 2-core machine are too noisy for pass/fail tests.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    wanted = set(sys.argv[1:])
    scripts = sorted(p for p in HERE.glob("bench_*.py") if not wanted or p.stem[len("bench_") :] in wanted)
    failed = []
    for script in scripts:
        print(f"\n===== {script.stem} =====", flush=True)
        started = time.perf_counter()
        if subprocess.run([sys.executable, str(script)]).returncode != 0:
            failed.append(script.stem)
        print(f"({script.stem}: {time.perf_counter() - started:.0f} s)", flush=True)
    if failed:
        sys.exit(f"benchmarks that failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()

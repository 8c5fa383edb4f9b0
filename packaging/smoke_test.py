"""Smoke test of a built one-folder bundle: python packaging/smoke_test.py DIST/palmares

Runs the bundle's own executables, never this checkout's Python packages:
1. `palmares demo --subjects 1 --store S`: the demo study written and imported (DICOM, SUV, slides);
2. `palmares radiomics extract` on the first demo lesion with the `ct` preset: the number of features
   must equal `EXPECTED_CT_FEATURES` (a bundle that ships pyradiomics as bytecode only silently
   gives 0: PLATFORM.md);
3. `palmares-desktop --software-gl --store S --screenshot F --room all` under the virtual display: the window opens
   the demo subject in the worklist, CT/PET and slide rooms, saves the screenshots and exits 0.
Prints each step's time; exits non-zero with the failing step's output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: pyradiomics features of the study's `ct` preset on one lesion (what the source install gives).
EXPECTED_CT_FEATURES = 107


def run(title: str, cmd: list[str], env: dict, timeout: float = 600) -> str:
    started = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    elapsed = time.perf_counter() - started
    print(f"  {title}: exit {result.returncode} in {elapsed:.1f} s", flush=True)
    if result.returncode != 0:
        sys.exit(f"bundle smoke test failed at '{title}':\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def main(bundle: Path) -> None:
    cli, gui = bundle / "palmares", bundle / "palmares-desktop"
    for exe in (cli, gui):
        if not exe.is_file():
            sys.exit(f"{exe} does not exist: build the bundle first (packaging/README.md).")
    with tempfile.TemporaryDirectory(prefix="palmares-bundle-") as tmp:
        work = Path(tmp)
        # A clean user: no profile, settings or logs of this machine's user, no source tree on the path.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PALMARES_"))}
        env.update(HOME=str(work / "home"), XDG_CONFIG_HOME=str(work / "config"), QT_QPA_PLATFORM="xcb")
        demo, store = work / "demo", work / "store"
        print(f"bundle {bundle}", flush=True)
        run("demo study written and imported", [str(cli), "demo", "--out", str(demo), "--subjects", "1",
            "--store", str(store), "--reader", "Bundle smoke test"], env)  # fmt: skip
        ct = next((demo / "dicom").glob("*/*_CT"))
        out = run("radiomics of one lesion", [str(cli), "radiomics", "extract", str(ct),
                  str(demo / "labels" / "subject1" / "ct_lesions.nrrd"), "--preset", "ct", "--label", "1"], env)  # fmt: skip
        features = [k for k in json.loads(out) if k.startswith("original_")]
        if len(features) != EXPECTED_CT_FEATURES:
            sys.exit(
                f"bundle smoke test: {len(features)} radiomics features, {EXPECTED_CT_FEATURES} expected."
            )
        print(f"  {len(features)} radiomics features, as expected", flush=True)
        shot = work / "shot.png"
        # With the software OpenGL fallback of remote-desktop and VM PCs, as the hospital PC may need.
        run("window (software OpenGL) opened the demo subject and quit", [str(gui), "--software-gl",
            "--store", str(store), "--screenshot", str(shot), "--room", "all"], env)  # fmt: skip
        shots = sorted(work.glob("shot*.png"))
        if len(shots) != 3 or any(p.read_bytes()[:4] != b"\x89PNG" for p in shots):
            sys.exit(f"bundle smoke test: expected 3 PNG screenshots, got {[p.name for p in shots]}.")
        print(f"  screenshots: {', '.join(p.name for p in shots)}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]).resolve())

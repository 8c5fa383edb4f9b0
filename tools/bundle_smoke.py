"""Build the one-folder bundle (packaging/palmares.spec) and run packaging/smoke_test.py on it.

    python3 -m pip install -e ".[packaging]" && python3 tools/bundle_smoke.py

About 6 minutes on a 2-core machine, so it is CI's own step after the test command (`.ci/run`),
and the test command runs it only with PALMARES_BUNDLE_SMOKE=1 (packaging/README.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def step(title: str, cmd: list[str]) -> None:
    print(f"== {title}: {' '.join(cmd)}", flush=True)
    started = time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT)
    print(f"== {title}: exit {result.returncode} in {time.perf_counter() - started:.0f} s", flush=True)
    if result.returncode != 0:
        sys.exit(f"{title} failed (exit {result.returncode})")


def main() -> None:
    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        sys.exit('The bundle needs PyInstaller: python3 -m pip install -e ".[packaging]"')
    with tempfile.TemporaryDirectory(prefix="palmares-build-") as tmp:
        step(
            "bundle build (PyInstaller)",
            [sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
             str(ROOT / "packaging" / "palmares.spec"), "--distpath", f"{tmp}/dist", "--workpath", f"{tmp}/build"],
        )  # fmt: skip
        size = sum(f.stat().st_size for f in Path(tmp, "dist", "palmares").rglob("*") if f.is_file())
        print(f"== bundle size: {size / 1e9:.2f} GB", flush=True)
        display = [] if os.environ.get("DISPLAY") else ["xvfb-run", "-a", "-s", "-screen 0 1920x1080x24"]
        step(
            "bundle smoke test",
            display + [sys.executable, str(ROOT / "packaging" / "smoke_test.py"), f"{tmp}/dist/palmares"],
        )


if __name__ == "__main__":
    main()

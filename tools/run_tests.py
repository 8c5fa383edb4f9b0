"""The project's test command: lint, layer contract, then the whole pytest suite.

    python tools/run_tests.py [pytest args...]

On Linux without a display, GUI tests need Xvfb (pytest-xvfb starts it). When Xvfb or Qt's xcb
libraries are missing and we run as root, they are installed with apt-get first; otherwise we say
what to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEBIAN_PACKAGES = [
    "xvfb",
    "xauth",
    "libxcb-cursor0",
    "libxcb-icccm4",
    "libxcb-keysyms1",
    "libxcb-image0",
    "libxcb-render-util0",
    "libxcb-xinerama0",
    "libxcb-xkb1",
    "libxcb-shape0",
    "libxkbcommon-x11-0",
    "libgl1",
    "libegl1",
    "libglib2.0-0",
    "libfontconfig1",
    "libdbus-1-3",
]


def ensure_virtual_display() -> None:
    if not sys.platform.startswith("linux") or os.environ.get("DISPLAY") or shutil.which("Xvfb"):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("Installing Xvfb and Qt's xcb libraries for the GUI tests...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *DEBIAN_PACKAGES],
            check=True,
            env=env,
        )
    else:
        sys.exit(
            "GUI tests need a display: install Xvfb (Debian: apt-get install "
            + " ".join(DEBIAN_PACKAGES)
            + ")"
        )


def step(title: str, cmd: list[str]) -> None:
    print(f"== {title}: {' '.join(cmd)}", flush=True)
    result = subprocess.run(cmd, cwd=ROOT)
    if result.returncode != 0:
        sys.exit(f"{title} failed (exit {result.returncode})")


def main() -> None:
    ensure_virtual_display()
    step("ruff (lint)", [sys.executable, "-m", "ruff", "check", "."])
    step("ruff (format)", [sys.executable, "-m", "ruff", "format", "--check", "."])
    step("import-linter (core never imports Qt/napari)", ["lint-imports"])
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    step("pytest", [sys.executable, "-m", "pytest", "-q", *sys.argv[1:]])
    if not sys.argv[1:]:
        plugin_tests()
    if os.environ.get("PALMARES_BUNDLE_SMOKE") == "1":
        step("bundle build and smoke test", [sys.executable, str(ROOT / "tools" / "bundle_smoke.py")])


def plugin_tests() -> None:
    """Each separately installable plugin's own tests, with its source on the path."""
    for plugin in sorted((ROOT / "plugins").glob("*/pyproject.toml")):
        folder = plugin.parent
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(folder / "src")])}
        print(f"== plugin tests: {folder.name}", flush=True)
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", str(folder / "tests")], cwd=folder, env=env
        )
        if result.returncode != 0:
            sys.exit(f"plugin tests of {folder.name} failed (exit {result.returncode})")


if __name__ == "__main__":
    main()

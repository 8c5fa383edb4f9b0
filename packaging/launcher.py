"""The bundle's one entry script: `palmares-desktop` opens the window, `palmares` is the CLI.

PyInstaller makes two executables from this script (packaging/palmares.spec); each looks at its
own name. Software OpenGL (`PALMARES_SOFTWARE_GL=1`, `--software-gl` or View → Software OpenGL)
is chosen by the app itself (gui/app.py), as in a pip install.
"""

from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path


def main() -> int:
    multiprocessing.freeze_support()  # dask's local cluster starts worker processes from the bundle
    name = Path(sys.executable if getattr(sys, "frozen", False) else sys.argv[0]).stem.lower()
    if name.startswith("palmares-desktop"):
        from palmares_desktop.gui.app import main as gui

        return int(gui() or 0)
    from palmares_desktop.cli.main import cli

    cli()
    return 0


if __name__ == "__main__":
    sys.exit(main())

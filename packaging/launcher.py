"""The bundle's one entry script: `palmares-desktop` opens the window, `palmares` is the CLI.

PyInstaller makes two executables from this script (packaging/palmares.spec); each looks at its
own name. `PALMARES_SOFTWARE_GL=1` (or the GUI setting) selects Mesa's software OpenGL.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from pathlib import Path


def software_gl() -> None:
    """Mesa's software OpenGL (llvmpipe) for remote-desktop and VM PCs without usable OpenGL."""
    if os.environ.get("PALMARES_SOFTWARE_GL", "").strip().lower() in ("1", "yes", "true"):
        os.environ.setdefault("LIBGL_ALWAYS_SOFTWARE", "1")  # Linux: Mesa llvmpipe
        os.environ.setdefault("QT_OPENGL", "software")  # Windows: Qt's opengl32sw.dll (Mesa)
        os.environ.setdefault("QT_QUICK_BACKEND", "software")


def main() -> int:
    multiprocessing.freeze_support()  # dask's local cluster starts worker processes from the bundle
    name = Path(sys.executable if getattr(sys, "frozen", False) else sys.argv[0]).stem.lower()
    if name.startswith("palmares-desktop"):
        software_gl()
        from palmares_desktop.gui.app import main as gui

        return int(gui() or 0)
    from palmares_desktop.cli.main import cli

    cli()
    return 0


if __name__ == "__main__":
    sys.exit(main())

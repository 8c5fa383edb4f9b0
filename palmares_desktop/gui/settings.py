"""Per-user GUI preferences in QSettings: window geometry and the bounded list of recent stores.

Settings live where the platform keeps them (registry on Windows, plist on macOS, an INI file on
Linux). Tests redirect them with `QSettings.setDefaultFormat(IniFormat)` and
`QSettings.setPath(IniFormat, UserScope, tmp)`: every QSettings here is made with
`QSettings.defaultFormat()` so that redirection takes effect.
"""

from __future__ import annotations

import os
from pathlib import Path

from qtpy.QtCore import QByteArray, QSettings

from palmares_desktop.core.paths import APP_AUTHOR, APP_NAME

MAX_RECENT_STORES = 8
RECENT_KEY = "stores/recent"
GEOMETRY_KEY = "window/geometry"
SOFTWARE_GL_KEY = "display/software_opengl"
SOFTWARE_GL_ENV = "PALMARES_SOFTWARE_GL"


def app_settings() -> QSettings:
    return QSettings(QSettings.defaultFormat(), QSettings.Scope.UserScope, APP_AUTHOR, APP_NAME)


def _as_list(value) -> list[str]:
    # An INI file gives back a 1-item list as a plain string, and an empty list as None.
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [str(item) for item in value]


def recent_stores() -> list[Path]:
    """Store folders opened most recently, newest first (at most MAX_RECENT_STORES)."""
    return [Path(item) for item in _as_list(app_settings().value(RECENT_KEY))][:MAX_RECENT_STORES]


def remember_store(path: Path) -> list[Path]:
    """Put `path` first in the recent list (no duplicates, oldest dropped); returns the new list."""
    path = Path(path).resolve()
    paths = [path] + [item for item in recent_stores() if item != path]
    paths = paths[:MAX_RECENT_STORES]
    _save(paths)
    return paths


def forget_store(path: Path) -> list[Path]:
    """Remove `path` from the recent list (e.g. the folder is gone); returns the new list."""
    path = Path(path).resolve()
    paths = [item for item in recent_stores() if item != path]
    _save(paths)
    return paths


def clear_recent_stores() -> None:
    _save([])


def _save(paths: list[Path]) -> None:
    settings = app_settings()
    settings.setValue(RECENT_KEY, [str(item) for item in paths])
    settings.sync()


def saved_geometry() -> QByteArray | None:
    value = app_settings().value(GEOMETRY_KEY)
    return value if isinstance(value, QByteArray) and not value.isEmpty() else None


def save_geometry(geometry: QByteArray) -> None:
    settings = app_settings()
    settings.setValue(GEOMETRY_KEY, geometry)
    settings.sync()


def software_opengl() -> bool:
    """Draw with software OpenGL (Mesa llvmpipe) instead of the graphics driver: for remote-desktop
    sessions and virtual machines whose OpenGL is missing or broken. Read before Qt starts."""
    return _yes(app_settings().value(SOFTWARE_GL_KEY, "false"))


def set_software_opengl(on: bool) -> None:
    app_settings().setValue(SOFTWARE_GL_KEY, "true" if on else "false")


def use_software_opengl(environ: dict | None = None) -> None:
    """Select software OpenGL for this process; only takes effect before the QApplication exists.
    On Linux Mesa's llvmpipe (LIBGL_ALWAYS_SOFTWARE); on Windows Qt's own opengl32sw.dll."""
    from qtpy.QtCore import QCoreApplication, Qt

    env = os.environ if environ is None else environ
    env.setdefault("LIBGL_ALWAYS_SOFTWARE", "1")
    env.setdefault("QT_OPENGL", "software")
    QCoreApplication.setAttribute(Qt.ApplicationAttribute.AA_UseSoftwareOpenGL, True)


def software_opengl_wanted(flag: bool = False) -> bool:
    """The command-line flag, the PALMARES_SOFTWARE_GL environment variable, or the saved setting."""
    env = os.environ.get(SOFTWARE_GL_ENV, "").strip().lower()
    if env in ("0", "no", "false"):
        return flag
    return flag or _yes(env) or software_opengl()


def software_opengl_in_use() -> bool:
    """Whether this process was started with software OpenGL (`use_software_opengl`)."""
    return os.environ.get("LIBGL_ALWAYS_SOFTWARE") == "1"


def _yes(value) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes")

"""Per-user GUI preferences in QSettings: window geometry and the bounded list of recent stores.

Settings live where the platform keeps them (registry on Windows, plist on macOS, an INI file on
Linux). Tests redirect them with `QSettings.setDefaultFormat(IniFormat)` and
`QSettings.setPath(IniFormat, UserScope, tmp)`: every QSettings here is made with
`QSettings.defaultFormat()` so that redirection takes effect.
"""

from __future__ import annotations

from pathlib import Path

from qtpy.QtCore import QByteArray, QSettings

from palmares_desktop.core.paths import APP_AUTHOR, APP_NAME

MAX_RECENT_STORES = 8
RECENT_KEY = "stores/recent"
GEOMETRY_KEY = "window/geometry"


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

"""Where things live: user directories, bundled resources, the shared reference data."""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

import platformdirs

APP_NAME = "PALMARES Desktop"
APP_AUTHOR = "INT Milano"

#: Package data `palmares_desktop/resources/` (radiomics presets): read through importlib.resources so
#: a wheel, a non-editable install or an installer bundle finds it, not by walking up from this file.
#: Every install we ship unpacks to the file system, so the traversable is a real folder.
RESOURCES_DIR = Path(str(files("palmares_desktop.resources")))


def user_data_dir() -> Path:
    """Per-user data directory; `PALMARES_HOME` overrides it (tests, portable installs)."""
    override = os.environ.get("PALMARES_HOME")
    base = Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME, APP_AUTHOR))
    base.mkdir(parents=True, exist_ok=True)
    return base


def user_log_dir() -> Path:
    override = os.environ.get("PALMARES_HOME")
    base = Path(override) / "logs" if override else Path(platformdirs.user_log_dir(APP_NAME, APP_AUTHOR))
    base.mkdir(parents=True, exist_ok=True)
    return base


def user_config_dir() -> Path:
    override = os.environ.get("PALMARES_HOME")
    base = Path(override) / "config" if override else Path(platformdirs.user_config_dir(APP_NAME, APP_AUTHOR))
    base.mkdir(parents=True, exist_ok=True)
    return base


def default_store_path() -> Path:
    """The store a user gets when they name none."""
    return user_data_dir() / "store"


def demo_store_path() -> Path:
    return user_data_dir() / "demo-store"


def shared_data_dir() -> Path:
    """Real public reference data (`../shared/data` beside the project; `PALMARES_SHARED_DATA` overrides)."""
    override = os.environ.get("PALMARES_SHARED_DATA")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[3] / "shared" / "data"

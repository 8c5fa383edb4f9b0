"""Logging to a rotating file in the user log directory (both GUI and CLI)."""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import logging.handlers
from pathlib import Path

from palmares_desktop.core.paths import user_log_dir

_handler: logging.Handler | None = None


def log_file_path() -> Path:
    return user_log_dir() / "palmares.log"


def setup_logging(level: int = logging.INFO) -> Path:
    """Idempotent: attach one rotating file handler to the root logger; enable faulthandler.
    Returns the file the log really goes to."""
    global _handler
    if _handler is not None:
        return Path(_handler.baseFilename)
    path = log_file_path()
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=2_000_000, backupCount=5, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    with contextlib.suppress(OSError):  # a crash log is a bonus, never a reason not to start
        faulthandler.enable(open(path.with_suffix(".crash.log"), "a", encoding="utf-8"))  # noqa: SIM115
    _handler = handler
    return path

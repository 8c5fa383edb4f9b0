"""The 3-subject demo store (12 planted lesions), built once per test session through the real
import path and shared read-only; tests that write take a copy (`writable_copy`)."""

from __future__ import annotations

import shutil
from pathlib import Path

from palmares_desktop.core.demo.demo_store import build_demo_store, load_manifest

_BUILT: dict[str, Path] = {}


def demo_store(tmp_path_factory) -> tuple[Path, object]:
    """(store folder, manifest) of the demo study with 3 subjects (~50 s the first time)."""
    if "root" not in _BUILT:
        base = tmp_path_factory.mktemp("pet_demo")
        _BUILT["root"] = build_demo_store(base / "store", work_dir=base / "source", n_subjects=3)
        _BUILT["source"] = base / "source"
    return _BUILT["root"], load_manifest(_BUILT["source"])


def writable_copy(root: Path, target: Path) -> Path:
    shutil.copytree(root, target)
    return target

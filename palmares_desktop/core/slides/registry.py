"""Registering a slide file for a subject in the store (the `slides` table).

The slide file is not copied: slides are often several GB. The row keeps the path relative to
the store folder when the file lives inside it (so the store can be moved), else the absolute
path. `sha256` is a content fingerprint, not the hash of the whole file: SHA-256 over the file
size (decimal, then a newline), the first 64 MiB and the last 64 MiB. For files up to 128 MiB
that covers every byte; for multi-GB slides it stays fast (about a second) and still changes
when the file is replaced or re-scanned. Registering the same file (same fingerprint) twice for a
subject returns the existing row.

`add_slide` (the CLI `slide add` and File -> Add slide...) registers a site's own slide without
anything identifying in palmares.db: the display name is subject code + stain, the `path` column
stays empty and the local path is kept site-only in keys.db (`core.store.slide_annotations`).
Label and macro images are never read or copied.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from palmares_desktop.core.slides.reader import open_slide
from palmares_desktop.core.store import records
from palmares_desktop.core.store.store import Store, StoreError

FINGERPRINT_PART = 64 * 2**20


def slide_fingerprint(path: str | Path) -> str:
    """SHA-256 of: size + b"\\n" + first 64 MiB + last 64 MiB (the whole file when <= 128 MiB)."""
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256(f"{size}\n".encode())
    with path.open("rb") as fh:
        if size <= 2 * FINGERPRINT_PART:
            for block in iter(lambda: fh.read(2**20), b""):
                digest.update(block)
        else:
            digest.update(fh.read(FINGERPRINT_PART))
            fh.seek(size - FINGERPRINT_PART)
            digest.update(fh.read(FINGERPRINT_PART))
    return digest.hexdigest()


def _stored_path(store: Store, path: Path) -> str:
    try:
        return path.relative_to(store.root).as_posix()
    except ValueError:
        return str(path)


def register_slide(
    store: Store, subject_id: str, path: str | Path, display_name: str | None = None, stain: str = "H&E"
) -> dict:
    """Add a slide file to a subject (by subject row id); returns the `slides` row.

    Raises SlideError when the file is not a usable slide and StoreError for an unknown subject.
    """
    path = Path(path).expanduser().resolve()
    info = open_slide(path)
    records.subject(store, subject_id)  # StoreError with a plain sentence if unknown
    fingerprint = slide_fingerprint(path)
    existing = records.slide_with_fingerprint(store, subject_id, fingerprint)
    if existing:
        return existing
    # A slide without MPP is accepted (it can be viewed); measurements in um or mm2 must refuse it.
    row = _slide_row(
        subject_id, display_name or path.stem, _stored_path(store, path), info, fingerprint, stain
    )
    detail = {
        "vendor": info.vendor,
        "mpp_source": info.mpp_source,
        "level_shapes": [list(level) for level in info.levels],
    }
    return records.add_slide_row(store, row, detail)


def add_slide(store: Store, subject_code: str, path: str | Path, stain: str = "HE") -> dict:
    """Register a site's slide for an existing subject; nothing identifying goes into palmares.db."""
    from palmares_desktop.core.store.slide_annotations import set_slide_location

    subject = store.subject_by_code(subject_code)
    if subject is None:
        raise StoreError(f"There is no subject {subject_code} in this store.")
    path = Path(path).expanduser().resolve()
    info = open_slide(path)
    fingerprint = slide_fingerprint(path)
    existing = records.slide_with_fingerprint(store, subject["id"], fingerprint)
    if existing:
        set_slide_location(store, existing["id"], path)
        return existing
    # No path in palmares.db: it travels; the local path is kept site-only below.
    row = _slide_row(subject["id"], f"{subject_code} {stain}", "", info, fingerprint, stain)
    detail = {"size_bytes": _size(path), "backend": info.backend, "mpp_source": info.mpp_source}
    inserted = records.add_slide_row(store, row, detail)
    set_slide_location(store, inserted["id"], path)
    return inserted


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.glob("*")) if path.is_dir() else path.stat().st_size


def slide_path(store: Store, slide: dict) -> Path:
    """Absolute path of a registered slide (relative paths are inside the store; site-only otherwise)."""
    from palmares_desktop.core.store.slide_annotations import slide_location

    stored = Path(slide["path"]) if slide.get("path") else slide_location(store, slide["id"])
    if stored is None:
        raise StoreError(f"The slide {slide.get('display_name') or slide['id']} is not on this site's disks.")
    path = stored if stored.is_absolute() else store.root / stored
    if not path.exists():
        raise StoreError(f"The slide file of {slide.get('display_name') or slide['id']} is missing: {path}.")
    return path


def _slide_row(
    subject_id: str, display_name: str, stored_path: str, info, fingerprint: str, stain: str
) -> dict:
    return {
        "subject_id": subject_id,
        "display_name": display_name,
        "path": stored_path,
        "format": info.format,
        "width": info.width,
        "height": info.height,
        "levels": len(info.levels),
        "mpp_x": info.mpp_x,
        "mpp_y": info.mpp_y,
        "sha256": fingerprint,
        "stain": stain,
    }

"""Registering a slide file for a subject, and finding it again on this site's disks.

The slide file is not copied: slides are often several GB. palmares.db (which travels) keeps only
a relocatable reference and a blind name (core/store/slide_refs.py); the local path stays in
keys.db. `sha256` is a content fingerprint, not the hash of the whole file: SHA-256 over the file
size (decimal, then a newline), the first 64 MiB and the last 64 MiB. For files up to 128 MiB that
covers every byte; for multi-GB slides it stays fast (about a second) and still changes when the
file is replaced or re-scanned. A DICOM slide (a folder) is fingerprinted file by file, in name
order. Registering the same file (same fingerprint) twice for a subject returns the existing row
and re-links its location; a moved file is re-linked by `locate_slide` after the same check.
Label and macro images are never read or copied.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from palmares_desktop.core.model import Slide
from palmares_desktop.core.slides.reader import open_slide
from palmares_desktop.core.store import records
from palmares_desktop.core.store.slide_refs import (
    next_display_name,
    referenced_slide,
    set_slide_location,
    set_slide_size,
    slide_location,
    slide_size,
)
from palmares_desktop.core.store.store import Store, StoreError

FINGERPRINT_PART = 64 * 2**20


def slide_fingerprint(path: str | Path) -> str:
    """SHA-256 of: size + b"\\n" + first 64 MiB + last 64 MiB (the whole file when <= 128 MiB)."""
    path = Path(path)
    if path.is_dir():  # DICOM WSI: one fingerprint per instance file, combined in name order
        parts = [slide_fingerprint(p) for p in sorted(path.iterdir()) if p.is_file()]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()
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


def register_slide(store: Store, subject_id: str, path: str | Path, stain: str = "HE") -> Slide:
    """Add a slide file to a subject (by subject row id); returns the registered slide.

    Raises SlideError when the file is not a usable slide and StoreError for an unknown subject.
    """
    path = Path(path).expanduser().resolve()
    info = open_slide(path)
    subject = records.subject(store, subject_id)  # StoreError with a plain sentence if unknown
    fingerprint = slide_fingerprint(path)
    existing = records.slide_with_fingerprint(store, subject_id, fingerprint)
    if existing:
        set_slide_location(store, existing.id, path)
        return existing
    # A slide without MPP is accepted (it can be viewed); measurements in um or mm2 must refuse it.
    row = {
        "subject_id": subject_id,
        "display_name": next_display_name(store, subject_id, subject.code, stain),
        "format": info.format,
        "width": info.width,
        "height": info.height,
        "levels": len(info.levels),
        "mpp_x": info.mpp_x,
        "mpp_y": info.mpp_y,
        "sha256": fingerprint,
        "size_bytes": slide_size(path),
        "stain": stain,
    }
    detail = {
        "vendor": info.vendor,
        "backend": info.backend,
        "mpp_source": info.mpp_source,
        "level_shapes": [list(level) for level in info.levels],
    }
    inserted = records.add_slide_row(store, row, detail)
    set_slide_location(store, inserted.id, path)
    return inserted


def add_slide(store: Store, subject_code: str, path: str | Path, stain: str = "HE") -> Slide:
    """Register a site's slide for an existing subject, by subject code (`palmares slide add`)."""
    subject = store.subject_by_code(subject_code)
    if subject is None:
        raise StoreError(f"There is no subject {subject_code} in this store.")
    return register_slide(store, subject.id, path, stain)


def _locate_hint(store: Store, slide: Slide) -> str:
    return f"palmares slide locate --store {store.root} --slide {slide.id} --path FILE"


def slide_path(store: Store, slide: Slide) -> Path:
    """Where this site keeps the slide's file; StoreError (saying how to re-link it) when it is not there."""
    path = slide_location(store, slide.id)
    if path is None:
        raise StoreError(
            f"The file of slide {slide.display_name} is not known on this site; link it with "
            f"{_locate_hint(store, slide)}."
        )
    if not path.exists():
        raise StoreError(
            f"The file of slide {slide.display_name} is no longer at {path}; if it was moved, re-link it "
            f"with {_locate_hint(store, slide)}."
        )
    return path


def locate_slide(store: Store, reference: str, path: str | Path) -> Slide:
    """Re-link a moved slide (by id or display name) to `path`, once its fingerprint proves it is the same file."""
    slide = referenced_slide(store, reference)
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise StoreError(f"There is no file {path}.")
    size = slide_size(path)
    known_size = slide.size_bytes
    if (known_size is not None and size != known_size) or slide_fingerprint(path) != slide.sha256:
        raise StoreError(
            f"{path} is not the file of slide {slide.display_name}: its content differs from the registered "
            "one (another slide, or a re-scan). A new file is registered with palmares slide add."
        )
    set_slide_location(store, slide.id, path)
    if known_size is None:  # a slide migrated while its file was away: its size is known from now on
        return set_slide_size(store, slide.id, size)
    store.audit("locate", table="slides", row_id=slide.id)  # when, by whom; the path stays on site
    return slide

"""Slide access (tifffile + zarr) and slide registration, on real SVS / OME-TIFF / generic TIFF files."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3

import numpy as np
import pytest
import tifffile

from palmares_desktop.core.demo.slide_writer import write_slide
from palmares_desktop.core.slides.reader import SlideError, level_array, level_arrays, open_slide
from palmares_desktop.core.slides.registry import register_slide, slide_fingerprint, slide_path
from palmares_desktop.core.store import StoreError


def test_aperio_svs_size_mpp_and_pixel(shared_data):
    path = shared_data / "wsi_svs" / "CMU-1-Small-Region.svs"
    info = open_slide(path)
    assert (info.format, info.vendor) == ("svs", "aperio")
    assert (info.width, info.height, info.levels) == (2220, 2967, [(2967, 2220)])
    assert (info.mpp_x, info.mpp_y, info.mpp_source) == (0.499, 0.499, "aperio description")
    level0 = level_array(path, 0)
    assert level0.shape == (2967, 2220, 3) and level0.chunks == (240, 240, 3)
    assert level0[10, 10].tolist() == [244, 250, 243]  # libvips/OpenSlide reference value


def test_ome_tiff_pyramid_in_subifds(shared_data):
    path = shared_data / "wsi_ome_tiff" / "CMU-1-Small-Region.derived-pyramid.ome.tif"
    info = open_slide(path)
    assert (info.format, info.vendor, info.mpp_source) == ("ome-tiff", "ome", "ome physical size")
    assert info.levels == [(2967, 2220), (1483, 1110), (741, 555)]
    assert info.mpp_x == pytest.approx(0.499)
    arrays = level_arrays(path)
    assert [a.shape[:2] for a in arrays] == info.levels
    assert arrays[0][10, 10].tolist() == [245, 250, 246]  # PROVENANCE.md: JPEG re-encoded level 0


def test_generic_tiff_pyramid_without_a_real_pixel_size(shared_data):
    info = open_slide(shared_data / "wsi_tiny_fixtures_openslide" / "boxes.tiff")
    assert (info.format, info.vendor) == ("tiff", "generic-tiff")
    assert info.levels == [(250, 300), (125, 150), (62, 75), (31, 37)]
    assert info.downsamples[:3] == [1.0, 2.0, 4.0]
    # Its resolution tags say 72 dpi (353 um per pixel): not a microscope pixel size, so no MPP.
    assert info.mpp_x is None and info.mpp_y is None
    with pytest.raises(SlideError, match="has 4 levels; level 4 does not exist"):
        level_array(shared_data / "wsi_tiny_fixtures_openslide" / "boxes.tiff", 4)


def test_files_that_are_not_slides_are_refused_in_words(shared_data, tmp_path):
    with pytest.raises(SlideError, match="does not exist"):
        open_slide(tmp_path / "missing.svs")
    with pytest.raises(SlideError, match="not an RGB brightfield slide"):
        open_slide(shared_data / "wsi_ome_tiff" / "multi-channel-z-series.ome.tif")
    (tmp_path / "notes.txt").write_text("not a slide")
    with pytest.raises(SlideError, match="not a slide format PALMARES can read"):
        open_slide(tmp_path / "notes.txt")


def test_written_slide_levels_agree_and_carry_resolution_tags(tmp_path):
    result = write_slide(tmp_path / "small.svs", width=4096, height=3072, n_levels=3)
    info = open_slide(result.path)
    assert info.levels == [(3072, 4096), (1536, 2048), (768, 1024)] == result.levels
    assert info.mpp_x == 0.5
    # Level 1 is drawn at its own scale from the same layout: glass where level 0 is glass.
    level0 = np.asarray(level_array(result.path, 0)[::2, ::2]).astype(int)
    level1 = np.asarray(level_array(result.path, 1)[:]).astype(int)
    glass = [243, 243, 241]
    glass0 = np.abs(level0 - glass).sum(-1) < 12
    glass1 = np.abs(level1 - glass).sum(-1) < 12
    assert (glass0 == glass1).mean() > 0.9
    with tifffile.TiffFile(result.path) as tif:  # pages: level 0, thumbnail, level 1, level 2
        tiled = [page for page in tif.pages if page.is_tiled]
        assert [page.resolution[0] for page in tiled] == pytest.approx([20000, 10000, 5000])  # px/cm
        assert all(page.resolutionunit == tifffile.RESUNIT.CENTIMETER for page in tiled)
        assert tif.pages[0].tilewidth == 512 and tif.pages[0].compression == tifffile.COMPRESSION.JPEG


def test_register_slide_stores_a_fingerprinted_blind_row_once(store, shared_data, tmp_path):
    subject = store.ensure_subject("IT03-0001")
    source = shared_data / "wsi_svs" / "CMU-1-Small-Region.svs"
    inside = store.root / "slides" / source.name  # a slide copied into the store is kept store-relative
    inside.parent.mkdir()
    shutil.copy(source, inside)
    row = register_slide(store, subject.id, inside, stain="H&E")
    data = inside.read_bytes()
    expected = hashlib.sha256(f"{len(data)}\n".encode() + data).hexdigest()  # whole file: < 128 MiB
    assert row.sha256 == expected and row.size_bytes == len(data) == 1_938_955
    assert "path" not in store.db["slides"].columns_dict and (
        row.format,
        row.width,
        row.height,
        row.levels,
    ) == (
        "svs",
        2220,
        2967,
        1,
    )
    assert (row.mpp_x, row.mpp_y, row.display_name, row.stain) == (
        0.499,
        0.499,
        "IT03-0001 H&E",
        "H&E",
    )
    assert slide_path(store, row) == inside
    assert (store.root / "keys.db").stat().st_mode & 0o777 == 0o600  # created private, with the key table
    keys = sqlite3.connect(store.root / "keys.db")
    assert keys.execute("SELECT path FROM slide_locations").fetchall() == [("slides/CMU-1-Small-Region.svs",)]
    assert register_slide(store, subject.id, inside).id == row.id  # same file again: same row
    outside = register_slide(
        store,
        subject.id,
        shared_data / "wsi_ome_tiff" / "CMU-1-Small-Region.derived-pyramid.ome.tif",
        stain="H&E",
    )
    assert outside.display_name == "IT03-0001 H&E 2" and outside.levels == 3  # numbered, still blind
    assert str(slide_path(store, outside)).startswith(str(shared_data.resolve()))  # absolute, site-only
    assert store.db["slides"].count == 2
    dump = "\n".join(sqlite3.connect(store.root / "palmares.db").iterdump())
    assert "CMU-1" not in dump and str(shared_data) not in dump
    audit = store.rows("audit_log", "table_name = 'slides'")
    assert len(audit) == 2 and all(a["reader_id"] == store.reader.id for a in audit)
    with pytest.raises(StoreError, match="No subjects row"):
        register_slide(store, "no-such-subject", inside)
    with pytest.raises(SlideError):
        register_slide(store, subject.id, shared_data / "PROVENANCE.md")
    assert store.db["slides"].count == 2


def test_a_dicom_slide_folder_is_fingerprinted_file_by_file(store, shared_data):
    subject = store.ensure_subject("IT03-0001")
    row = register_slide(store, subject.id, shared_data / "wsi_dicom")
    files = sorted(p for p in (shared_data / "wsi_dicom").iterdir() if p.is_file())
    assert row.sha256 == slide_fingerprint(shared_data / "wsi_dicom") != slide_fingerprint(files[0])
    assert row.size_bytes == sum(p.stat().st_size for p in files) and row.display_name == "IT03-0001 HE"


def test_fingerprint_of_a_large_file_reads_only_its_ends(tmp_path):
    big = tmp_path / "big.bin"
    size = 200 * 2**20
    with big.open("wb") as fh:  # sparse: cheap to make
        fh.write(b"head")
        fh.seek(size - 4)
        fh.write(b"tail")
    part = 64 * 2**20
    with big.open("rb") as fh:
        first = fh.read(part)
        fh.seek(size - part)
        last = fh.read(part)
    assert slide_fingerprint(big) == hashlib.sha256(f"{size}\n".encode() + first + last).hexdigest()

"""`palmares export`: one site package = a SQLite database + a manifest, signed by the site, encrypted
to the centre (and to the site itself, so that it can verify its own package).

File layout (all lengths big-endian):

    MAGIC | u32 header length | header JSON (clear: format, package id, site, recipients' wrapped keys, nonce)
    | ChaCha20-Poly1305 ciphertext of the content, the MAGIC and header as associated data

    content = u32 manifest length | manifest JSON | u16 signature length | Ed25519 signature | database bytes

The signature covers the header's identity fields and the manifest; the manifest holds the SHA-256 of
the database bytes. Nothing in the database is a local path, a file name, a draft or the key table.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from palmares_desktop.core.errors import PalmaresError
from palmares_desktop.core.exchange import crypto, keyring
from palmares_desktop.core.exchange.crypto import CENTRE
from palmares_desktop.core.store import Store, exchange_rows
from palmares_desktop.core.store.schema import migrations

MAGIC = b"PALMARES-SITE-PACKAGE\n"
FORMAT = 1
MAX_PACKAGE_BYTES = 4 << 30


class PackageError(PalmaresError):
    """A package cannot be written or read (plain sentence)."""


@dataclass
class Sealed:
    """A package file taken apart (nothing decrypted yet)."""

    header: dict
    header_bytes: bytes
    ciphertext: bytes | memoryview  # a view into the file's bytes (not copied)


@dataclass
class Opened:
    header: dict
    manifest: dict
    manifest_bytes: bytes
    signature: bytes
    database: bytes


def schema_version() -> list[str]:
    return [m.name for m in migrations._migrations]


# ------------------------------------------------------------------------------ file format
def _signed_message(header: dict, manifest_bytes: bytes) -> bytes:
    who = json.dumps({k: header.get(k) for k in ("format", "package_id", "site_code")}, sort_keys=True)
    return who.encode() + b"\0" + manifest_bytes


def read_file(path: Path) -> Sealed:
    """The clear header and ciphertext of a package file, refusing what is not one."""
    try:
        size = Path(path).stat().st_size
        if size > MAX_PACKAGE_BYTES:
            raise PackageError(f"{path} is larger than any package ({size} bytes): it is refused unread.")
        data = Path(path).read_bytes()
    except OSError as exc:
        raise PackageError(f"Cannot read the package {path}: {exc.strerror}.") from None
    if not data.startswith(MAGIC):
        raise PackageError(f"{path} is not a PALMARES site package.")
    rest = memoryview(data)[len(MAGIC) :]  # no copy of the whole file: the ciphertext is a view of it
    if len(rest) < 4:
        raise PackageError(f"The package {path} is truncated (it ends in its header).")
    (length,) = struct.unpack(">I", rest[:4])
    if length > 1 << 20 or len(rest) < 4 + length:
        raise PackageError(f"The package {path} is truncated or damaged (its header is incomplete).")
    header_bytes = bytes(rest[4 : 4 + length])
    try:
        header = json.loads(header_bytes)
        if not isinstance(header, dict):
            raise ValueError
    except ValueError:
        raise PackageError(f"The package {path} has a damaged header.") from None
    if header.get("format") != FORMAT:
        raise PackageError(
            f"The package {path} has format {header.get('format')!r}, which this version of PALMARES "
            f"does not read (it reads format {FORMAT}): it was written by a newer or foreign program."
        )
    return Sealed(header, header_bytes, rest[4 + length :])


def _associated(header: dict) -> bytes:
    core = {k: v for k, v in header.items() if k not in ("recipients", "nonce")}
    return MAGIC + json.dumps(core, sort_keys=True).encode()


def open_file(store: Store, sealed: Sealed) -> Opened:
    """Decrypt with this store's key and take the content apart (the signature is checked in verify)."""
    header = sealed.header
    try:
        nonce = bytes.fromhex(str(header.get("nonce")))
    except ValueError:
        raise PackageError("The package header is damaged (its nonce).") from None
    wraps = header.get("recipients") if isinstance(header.get("recipients"), list) else []
    content = crypto.open_sealed(
        store.root, keyring.identity(store), wraps, nonce, sealed.ciphertext, _associated(header)
    )
    try:
        (mlen,) = struct.unpack(">I", content[:4])
        manifest_bytes = content[4 : 4 + mlen]
        (slen,) = struct.unpack(">H", content[4 + mlen : 6 + mlen])
        signature = content[6 + mlen : 6 + mlen + slen]
        database = content[6 + mlen + slen :]
        manifest = json.loads(manifest_bytes)
        if not isinstance(manifest, dict):
            raise ValueError
    except (struct.error, ValueError):
        raise PackageError("The package content is damaged (its manifest cannot be read).") from None
    return Opened(header, manifest, manifest_bytes, signature, database)


def signed_by(opened: Opened, key) -> bool:
    return crypto.signature_ok(key, _signed_message(opened.header, opened.manifest_bytes), opened.signature)


def package_id_of(path: Path) -> str:
    """The id of a package file, read from its clear header (the site cannot decrypt it otherwise)."""
    return str(read_file(path).header.get("package_id"))


# ------------------------------------------------------------------------------ export
_NRRD_TYPES = {"unsigned char": "|u1", "uchar": "|u1", "uint8": "|u1", "unsigned short": "<u2", "ushort": "<u2",
               "uint16": "<u2", "short": "<i2", "int16": "<i2", "signed char": "|i1", "int8": "|i1"}  # fmt: skip


def _read_nrrd(path: Path) -> tuple[np.ndarray, dict] | None:
    """A mask the store wrote (SimpleITK's NRRD: LPS space, gzip or raw, data attached) read directly,
    10x faster than through ITK; None for any other layout (then read through SimpleITK)."""
    data = path.read_bytes()
    head, sep, body = data.partition(b"\n\n")
    if not sep or not head.startswith(b"NRRD"):
        return None
    fields = {}
    for line in head.decode("ascii", "replace").splitlines()[1:]:
        if line.startswith("#") or ": " not in line:
            continue
        key, value = line.split(": ", 1)
        fields[key.strip()] = value.strip()
    dtype = _NRRD_TYPES.get(fields.get("type", ""))
    if (
        dtype is None or fields.get("dimension") != "3" or fields.get("space") != "left-posterior-superior"
        or fields.get("encoding") not in ("gzip", "raw") or "data file" in fields or "line skip" in fields
        or fields.get("endian", "little") != "little"
    ):  # fmt: skip
        return None
    try:
        size = [int(x) for x in fields["sizes"].split()]
        vectors = [
            [float(v) for v in part.strip("()").split(",")] for part in fields["space directions"].split()
        ]
        origin = [float(v) for v in fields["space origin"].strip("()").split(",")]
        raw = zlib.decompress(body, 47) if fields["encoding"] == "gzip" else body
        array = np.frombuffer(raw, dtype=np.dtype(dtype)).reshape(size[::-1])
    except (KeyError, ValueError, zlib.error):
        return None
    spacing = [float(np.linalg.norm(v)) for v in vectors]
    columns = [np.asarray(v) / n for v, n in zip(vectors, spacing, strict=True)]
    direction = np.stack(columns, axis=1).reshape(-1).tolist()  # ITK: row-major, columns are the axes
    return array, {"size": size, "spacing": spacing, "origin": origin, "direction": direction}


def _read_mask(path: Path) -> tuple[np.ndarray, dict]:
    fast = _read_nrrd(path)
    if fast is not None:
        return fast
    import SimpleITK as sitk

    image = sitk.ReadImage(str(path))
    array = np.ascontiguousarray(sitk.GetArrayFromImage(image))
    return array, {
        "size": list(image.GetSize()),
        "spacing": list(image.GetSpacing()),
        "origin": list(image.GetOrigin()),
        "direction": list(image.GetDirection()),
    }


def _mask_row(store: Store, segmentation: dict, relative: str | None) -> dict | None:
    if not relative:
        return None
    array, geometry = _read_mask(store.path(relative))
    raw = np.ascontiguousarray(array).tobytes()
    geometry["shape_zyx"] = list(array.shape)
    return {
        "segmentation_id": segmentation["id"],
        "site_code": segmentation["site_code"],
        "geometry_json": json.dumps(geometry),
        "dtype": array.dtype.str,
        "data": zlib.compress(raw, 6),
        "sha256": hashlib.sha256(raw).hexdigest(),
    }


ACQUISITION_KEYWORDS = {
    "manufacturer": "Manufacturer",
    "model": "ManufacturerModelName",
    "kernel": "ConvolutionKernel",
    "reconstruction_method": "ReconstructionMethod",
    "slice_thickness_mm": "SliceThickness",
    "scanner_fov_mm": "ReconstructionDiameter",
}


def _acquisition(store: Store, series: dict) -> dict:
    """Harmonisation covariates read from the store's de-identified DICOM copy of the series."""
    import pydicom

    folder = store.files.dicom(series["id"])
    covariates: dict = {k: None for k in ACQUISITION_KEYWORDS}
    first = next(iter(sorted(folder.glob("*"))), None) if folder.is_dir() else None
    if first is not None:
        try:
            ds = pydicom.dcmread(first, stop_before_pixels=True)
            for name, keyword in ACQUISITION_KEYWORDS.items():
                value = ds.get(keyword)
                covariates[name] = (
                    float(value)
                    if name.endswith("_mm") and value not in (None, "")
                    else (str(value) if value not in (None, "") else None)
                )
        except Exception:  # noqa: BLE001 - an unreadable copy leaves the covariates empty, said so
            covariates["unreadable"] = True
    return {
        "series_id": series["id"],
        "site_code": series["site_code"],
        "covariates_json": json.dumps(covariates),
    }


def _pet_metrics(store: Store, site: str, subjects: list[dict]) -> list[dict]:
    from palmares_desktop.core.pet.subject_pet import subject_pet_metrics

    out = []
    for subject in subjects:
        try:
            result = subject_pet_metrics(store, subject["code"])
        except PalmaresError:
            continue  # no PET series, or none with a mask
        stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        lesions = [{k: v for k, v in x.items() if k != "mask"} for x in result["lesions"]]
        out.append(
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"palmares-pet-metrics:{subject['id']}")),
                "site_code": site,
                "author_id": store.reader.id if store.reader else None,
                "revision": 1,
                "created_at": stamp,
                "updated_at": stamp,
                "subject_id": subject["id"],
                "pet_series_id": result["pet_series_id"],
                "metrics_json": json.dumps({"lesions": lesions, "totals": result["totals"]}, default=str),
            }
        )
    return out


_PRIVATE_ACTIONS = {"setting"}


def _scrub_audit(row: dict) -> dict:
    """Audit rows travel whole except the details of store settings (a local matter, e.g. where the
    demo source lies); their hashes travel unchanged, so the chain's links can still be followed."""
    if row.get("action") in _PRIVATE_ACTIONS or row.get("table_name") == "settings":
        return {**row, "detail_json": json.dumps({"withheld": "a local setting"})}
    return row


@dataclass
class ExportResult:
    path: Path
    package_id: str
    manifest: dict


def export_package(store: Store, out: Path, since: Path | None = None) -> ExportResult:
    """Write the site's package to `out` (see module doc); records the export in the audit log."""
    site = keyring.identity(store)
    if site == CENTRE:
        raise PackageError("The centre's store does not export packages: it merges them.")
    centre = keyring.trusted_key(store.root, CENTRE)
    if centre is None:
        raise PackageError(
            "This site does not trust a centre key yet: run `palmares keys trust CENTRE-KEY` first."
        )
    previous = None
    if since is not None:
        previous_id = package_id_of(since)
        previous = exchange_rows.export_record(store, previous_id)
        if previous is None:
            raise PackageError(
                f"The package {since.name} was not exported from this store: --since needs one of its own."
            )
    after = previous["watermark"] if previous else None
    after_seq = previous["audit_seq"] if previous else 0
    watermark, audit_seq = exchange_rows.marks(store)
    package_id = str(uuid.uuid4())
    tables: dict[str, list[dict]] = {t: [] for t in exchange_rows.PACKAGE_TABLES}
    tables["sites"] = exchange_rows.site_record(store, site)
    tables["readers"] = exchange_rows.site_readers(store)
    for table in exchange_rows.CHANGING:
        tables[table] = exchange_rows.site_rows(store, table, site, after)
    tables["acquisition"] = [_acquisition(store, s) for s in tables["series"]]
    paths = exchange_rows.mask_paths(store, [s["id"] for s in tables["segmentations"]])
    tables["masks"] = [m for s in tables["segmentations"] if (m := _mask_row(store, s, paths.get(s["id"])))]
    touched = {r["subject_id"] for t in ("series", "lesions") for r in tables[t]}
    touched |= {r["id"] for r in tables["subjects"]}
    if tables["segmentations"]:
        touched = None  # a new segmentation may change any subject's metrics: recompute all of them
    subjects = exchange_rows.site_rows(store, "subjects", site, None)
    tables["pet_metrics"] = _pet_metrics(
        store, site, [s for s in subjects if touched is None or s["id"] in touched]
    )
    tables["audit_log"] = [_scrub_audit(r) for r in exchange_rows.audit_rows_after(store, after_seq)]

    with tempfile.TemporaryDirectory(prefix="palmares-export-") as tmp:
        db_path = Path(tmp) / "package.db"
        counts = exchange_rows.build_package_db(db_path, tables)
        database = db_path.read_bytes()
    stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    manifest = {
        "format": FORMAT,
        "package_id": package_id,
        "site_code": site,
        "exported_by": {"id": store.reader.id, "name": store.reader.name} if store.reader else None,
        "exported_at": stamp,
        "store_version": _version(),
        "schema": schema_version(),
        "row_counts": counts,
        "since": previous["package_id"] if previous else None,
        "sha256": hashlib.sha256(database).hexdigest(),
    }
    header = {"format": FORMAT, "package_id": package_id, "site_code": site, "created_at": stamp}
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    signature = crypto.sign(store.root, _signed_message(header, manifest_bytes))
    content = struct.pack(">I", len(manifest_bytes)) + manifest_bytes + struct.pack(">H", len(signature))
    content += signature + database
    own = keyring.own_public(store)
    _write(Path(out), header, content, [centre, own])
    store.audit(
        "exchange export",
        {"package_id": package_id, "watermark": watermark, "audit_seq": audit_seq, "since": manifest["since"],
         "sha256": manifest["sha256"], "row_counts": counts},
        row_id=package_id,
    )  # fmt: skip
    return ExportResult(Path(out), package_id, manifest)


def _write(out: Path, header: dict, content: bytes, recipients: list) -> None:
    associated = _associated(header)
    wraps, nonce, ciphertext = crypto.seal(recipients, content, associated)
    full = {**header, "recipients": wraps, "nonce": nonce.hex()}
    header_bytes = json.dumps(full, sort_keys=True).encode()
    tmp = out.with_name(f".{out.name}.part-{os.getpid()}")
    with open(tmp, "wb") as handle:
        handle.write(MAGIC + struct.pack(">I", len(header_bytes)) + header_bytes + ciphertext)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, out)


def _version() -> str:
    from palmares_desktop import __version__

    return __version__

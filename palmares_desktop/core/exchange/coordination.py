"""What the coordinating centre sees of its central store: packages per site, completeness, conflicts.

A conflict is a row two sites (or two branches of one site's --since chain) changed differently; the
merge keeps both versions. The coordinator resolves it by choosing one: the chosen version becomes
the central row, and the resolution is itself an audited row (who, when, which version).
"""

from __future__ import annotations

from dataclasses import dataclass

from palmares_desktop.core.errors import PalmaresError
from palmares_desktop.core.exchange import keyring
from palmares_desktop.core.store import Store, exchange_rows, records
from palmares_desktop.core.store import coordination_rows as rows
from palmares_desktop.core.store.slide_refs import slide_by_reference

BINARY_COLUMNS = {"geometry_wkb", "data"}


class CoordinationError(PalmaresError):
    """A coordinator action that cannot be done as asked (message is a plain sentence)."""


@dataclass(frozen=True)
class SitePackages:
    site: str
    packages: tuple[dict, ...]  # id, exported_at, received_at, since_id, row count

    @property
    def last_exported(self) -> str | None:
        return max((p["exported_at"] for p in self.packages if p["exported_at"]), default=None)


@dataclass(frozen=True)
class Conflict:
    id: str
    table: str
    row_id: str
    site: str
    status: str
    version_a: dict
    version_b: dict
    resolution_sha: str | None
    sha_a: str
    sha_b: str
    label: str = ""  # what the coordinator recognises, e.g. "lesion 'Liver' of IT01-0001"

    def differences(self) -> list[str]:
        """The columns whose values differ between the two versions."""
        keys = sorted(set(self.version_a) | set(self.version_b))
        return [k for k in keys if self.version_a.get(k) != self.version_b.get(k)]


def _central(store: Store) -> None:
    if not keyring.is_centre(store):
        raise CoordinationError(f"{store.root} is not the centre's store (palmares keys init --centre).")


def packages_by_site(store: Store) -> list[SitePackages]:
    _central(store)
    by_site: dict[str, list[dict]] = {}
    for p in exchange_rows.packages(store):
        counts = p["manifest"].get("row_counts") or {}
        by_site.setdefault(p["site_code"], []).append(
            {
                **{k: p[k] for k in ("id", "exported_at", "received_at", "since_id")},
                "rows": sum(counts.values()),
            }
        )
    return [SitePackages(site, tuple(found)) for site, found in sorted(by_site.items())]


def completeness(store: Store) -> list[dict]:
    """Per subject: CT / PET segmented, H&E annotated, features computed, reading done (yes/no)."""
    out = []
    for r in rows.completeness_rows(store):
        out.append(
            {
                "site": r["site_code"],
                "subject": r["code"],
                "ct": r["ct_segmentations"] > 0,
                "pet": r["pet_segmentations"] > 0,
                "he": r["he_annotations"] > 0,
                "features": r["feature_sets"] > 0,
                "done": r["done"] > 0,
            }
        )
    return out


def _label(store: Store, table: str, version: dict) -> str:
    subject_id = version.get("subject_id")
    code = next((s["code"] for s in exchange_rows.site_rows(store, "subjects", version.get("site_code"), None)
                 if s["id"] == subject_id), None) if subject_id else None  # fmt: skip
    what = table.rstrip("s").replace("_", " ")
    name = version.get("name") or version.get("display_name")
    return (
        f"{what} {name!r}" + (f" of {code}" if code else "")
        if name
        else f"{what} {version.get('id', '')[:8]}"
    )


def _as_conflict(row: dict, store: Store) -> Conflict:
    table, key = row["table_name"], row["row_id"]
    version_a = exchange_rows.version_row(store, table, key, row["sha_a"]) or {}
    return Conflict(
        id=row["id"],
        table=table,
        row_id=key,
        site=row["site_code"],
        status=row["status"],
        version_a=version_a,
        version_b=exchange_rows.version_row(store, table, key, row["sha_b"]) or {},
        resolution_sha=row["resolution_sha"],
        sha_a=row["sha_a"],
        sha_b=row["sha_b"],
        label=_label(store, table, version_a),
    )


@dataclass(frozen=True)
class ConflictTarget:
    """Where a conflict's row is seen: the subject, the room, and the lesion to select there."""

    subject_code: str
    room: str  # "ct-pet" | "slide"
    lesion_id: str | None = None


def conflict_target(store: Store, conflict: Conflict) -> ConflictTarget | None:
    """The subject and room in which to look at a conflict's row (None when it belongs to no subject,
    e.g. a reader row)."""
    version = conflict.version_a or conflict.version_b
    subject_id, room, lesion_id = version.get("subject_id"), "ct-pet", None
    if conflict.table == "subjects":
        subject_id = conflict.row_id
    elif conflict.table == "lesions":
        lesion_id = conflict.row_id
    elif conflict.table.startswith("slide") and version.get("slide_id"):
        room = "slide"
        try:
            subject_id = slide_by_reference(store, version["slide_id"])["subject_id"]
        except PalmaresError:
            return None
    if not subject_id:
        return None
    try:
        code = records.subject(store, subject_id).code
    except PalmaresError:
        return None
    return ConflictTarget(code, room, lesion_id)


def conflicts(store: Store, status: str | None = "open") -> list[Conflict]:
    _central(store)
    return [_as_conflict(r, store) for r in exchange_rows.conflicts(store, status)]


def resolve_conflict(store: Store, conflict_id: str, keep: str) -> Conflict:
    """Keep version 'a' or 'b' of a conflict; the central row becomes that version (audited)."""
    _central(store)
    if keep not in ("a", "b"):
        raise CoordinationError("Say which version to keep: a or b.")
    reader = store._require_reader()
    with store.transaction():
        found = rows.conflict(store, conflict_id) or next(
            (c for c in exchange_rows.conflicts(store) if c["id"].startswith(conflict_id)), None
        )
        if found is None:
            raise CoordinationError(f"There is no conflict {conflict_id} in this store.")
        if found["status"] != "open":
            raise CoordinationError(f"Conflict {found['id'][:8]} is already resolved.")
        sha = found["sha_a"] if keep == "a" else found["sha_b"]
        chosen = exchange_rows.version_row(store, found["table_name"], found["row_id"], sha)
        if chosen is None:
            raise CoordinationError(f"The kept versions of conflict {found['id'][:8]} are missing.")
        # Kept versions store blobs as hex text (exchange_rows._jsonable): give them back their bytes.
        chosen = {
            k: bytes.fromhex(v) if k in BINARY_COLUMNS and isinstance(v, str) else v
            for k, v in chosen.items()
        }
        exchange_rows.write_central(store, found["table_name"], chosen, replace=True)
        rows.mark_resolved(store, found["id"], sha, reader.id)
        store.audit(
            "resolve conflict",
            {"conflict": found["id"], "table": found["table_name"], "row": found["row_id"], "kept": sha},
            table="exchange_conflicts",
            row_id=found["id"],
        )
    return _as_conflict(rows.conflict(store, found["id"]), store)

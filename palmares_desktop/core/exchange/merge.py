"""`palmares merge`: site packages into the centre's store, one transaction per package.

- Idempotent: a package already merged (same id, same SHA-256) changes nothing.
- Order-independent: packages are taken in --since order whatever order they are given in; a row's
  current version in the centre's table is the greatest by (revision, time, content hash), and every
  version is kept in `exchange_versions`, so any order ends in the same content.
- Never discards a version: two versions of one row that neither follows from the other (same
  revision, or packages on different --since branches) are listed in `exchange_conflicts`.
- A package that fails verification is rejected whole before anything is written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from palmares_desktop.core.errors import PalmaresError
from palmares_desktop.core.exchange import keyring, package, verify
from palmares_desktop.core.store import Store, exchange_rows

#: rows that can diverge between two packages (segmentation versions are immutable, metrics derived).
CONFLICTING = [t for t in exchange_rows.CHANGING if t != "segmentations"]
ONCE = {"masks", "acquisition", "audit_log"}


class MergeError(PalmaresError):
    """Nothing was merged (plain sentence)."""


@dataclass
class Outcome:
    path: Path
    package_id: str = ""
    site: str = ""
    status: str = ""  # merged | already merged | refused
    reason: str = ""
    rows: int = 0
    conflicts: int = 0


@dataclass
class MergeResult:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def refused(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "refused"]


def _canonical(row: dict) -> str:
    return json.dumps({k: (v.hex() if isinstance(v, bytes) else v) for k, v in row.items()}, sort_keys=True)


def content_sha(row: dict, text: str | None = None) -> str:
    return hashlib.sha256((text or _canonical(row)).encode()).hexdigest()


def _rank(revision, updated, sha) -> tuple:
    return (int(revision or 0), str(updated or ""), sha)


def _peek(store: Store, path: Path) -> package.Opened:
    """A package decrypted but not yet verified: its manifest orders the merge."""
    return package.open_file(store, package.read_file(path))


def _order(store: Store, items: list[tuple[Path, dict]]) -> tuple[list[tuple[Path, dict]], list[Outcome]]:
    """Packages in an order where each follows its --since package; the ones whose predecessor is
    neither at the centre nor among the files are refused, naming the missing package."""
    pending = sorted(
        items,
        key=lambda x: (str(x[1].get("site_code")), str(x[1].get("exported_at")), str(x[1].get("package_id"))),
    )
    done: set[str] = set()
    ordered: list[tuple[Path, dict]] = []
    progress = True
    while pending and progress:
        progress = False
        for item in list(pending):
            since = item[1].get("since")
            if since is None or since in done or exchange_rows.known_package(store, since):
                ordered.append(item)
                done.add(str(item[1].get("package_id")))
                pending.remove(item)
                progress = True
    refused = [
        Outcome(
            path,
            str(m.get("package_id")),
            str(m.get("site_code")),
            "refused",
            f"a gap in site {m.get('site_code')}'s chain: this package follows package {m.get('since')}, "
            "which the centre has not received; merge that one first.",
        )  # fmt: skip
        for path, m in pending
    ]
    return ordered, refused


def merge_files(
    store: Store, paths: list[Path], on_progress: Callable[[Outcome], object] | None = None
) -> MergeResult:
    if not keyring.is_centre(store):
        raise MergeError(f"{store.root} is not the centre's store (made with `palmares keys init --centre`).")
    result = MergeResult()
    items = []
    last: tuple[Path, package.Opened] | None = None  # one decrypted package at a time is kept
    for path in paths:
        last = None
        try:
            last = (Path(path), _peek(store, Path(path)))
            items.append((Path(path), last[1].manifest))
        except PalmaresError as exc:
            result.outcomes.append(Outcome(Path(path), status="refused", reason=str(exc)))
    ordered, gaps = _order(store, items)
    result.outcomes += gaps
    with exchange_rows.checkpoints_aside(store) as checkpoints:
        for path, _manifest in ordered:
            # The last package read for the order, merged first, is not read and decrypted again.
            reuse = last[1] if last is not None and last[0] == path else None
            last = None
            outcome = merge_one(store, path, reuse, before_write=checkpoints.wait)
            del reuse
            if outcome.status == "merged":
                checkpoints.start()  # aside, while the next package is verified
            result.outcomes.append(outcome)
            if on_progress:
                on_progress(outcome)
    return result


def _chain_problem(store: Store, manifest: dict) -> str:
    since = manifest.get("since")
    if since is None:
        return ""
    previous = exchange_rows.known_package(store, since)
    if previous is None:
        return f"a gap in site {manifest['site_code']}'s chain: this package follows package {since}, which the centre has not received."
    if previous["site_code"] != manifest["site_code"]:
        return f"this package says it follows package {since}, which is site {previous['site_code']}'s: out of chain."
    if str(previous["exported_at"]) >= str(manifest.get("exported_at")):
        return f"this package is older than package {since}, which it says it follows: out of chain."
    return ""


def merge_one(
    store: Store,
    path: Path,
    content: package.Opened | None = None,
    before_write: Callable[[], object] | None = None,
) -> Outcome:
    outcome = Outcome(Path(path))
    with verify.opened(store, Path(path), content) as (report, conn):
        manifest = report.manifest
        outcome.package_id, outcome.site = (
            str(manifest.get("package_id", "")),
            str(manifest.get("site_code", "")),
        )
        known = exchange_rows.known_package(store, outcome.package_id) if outcome.package_id else None
        if known is not None and report.ok:
            if known["sha256"] == manifest["sha256"]:
                outcome.status = "already merged"
                return outcome
            outcome.status, outcome.reason = (
                "refused",
                "a replayed package: its id was merged before with other content.",
            )
            return outcome
        if not report.ok or conn is None:
            outcome.status, outcome.reason = "refused", report.reason()
            return outcome
        problem = _chain_problem(store, manifest)
        if problem:
            outcome.status, outcome.reason = "refused", problem
            return outcome
        if before_write:
            before_write()
        with store.transaction():
            exchange_rows.record_package(
                store,
                {
                    "id": outcome.package_id,
                    "site_code": outcome.site,
                    "since_id": manifest.get("since"),
                    "exported_at": manifest.get("exported_at"),
                    "exported_by": (manifest.get("exported_by") or {}).get("id"),
                    "sha256": manifest["sha256"],
                    "manifest_json": json.dumps(manifest, sort_keys=True),
                },
            )
            lineage = exchange_rows.ancestors(store, outcome.package_id)
            for table in exchange_rows.PACKAGE_TABLES:
                _merge_table(store, table, verify.package_rows(conn, table), outcome, lineage)
            store.audit(
                "exchange merge",
                {
                    "package_id": outcome.package_id,
                    "site": outcome.site,
                    "rows": outcome.rows,
                    "conflicts": outcome.conflicts,
                },
                row_id=outcome.package_id,
            )
    outcome.status = "merged"
    return outcome


def _merge_table(store: Store, table: str, rows: list[dict], outcome: Outcome, lineage: set[str]) -> None:
    """Rows the centre has never seen go in bulk; the others one by one (versions, conflicts)."""
    outcome.rows += len(rows)
    if table in ONCE:
        exchange_rows.add_once_many(store, table, rows, outcome.site)
        return
    key = exchange_rows.pk(table)
    seen = exchange_rows.versions_of_many(store, table, [r[key] for r in rows])
    new = [(content_sha(r, t), t, r) for r in rows if str(r[key]) not in seen for t in [_canonical(r)]]
    exchange_rows.add_new_rows(store, table, outcome.package_id, new)
    for row in rows:
        if str(row[key]) in seen:
            outcome.conflicts += _merge_row(store, table, row, outcome, lineage)


def _merge_row(store: Store, table: str, row: dict, outcome: Outcome, lineage: set[str]) -> int:
    if table in ONCE:
        if table == "audit_log":
            row = {**row, "package_site": outcome.site}
        exchange_rows.add_once(store, table, row)
        return 0
    key = row[exchange_rows.pk(table)]
    sha = content_sha(row)
    seen = exchange_rows.versions(store, table, key)
    if any(v["content_sha"] == sha for v in seen):
        exchange_rows.add_version(store, table, key, sha, outcome.package_id, row)
        return 0
    found = 0
    if table in CONFLICTING:
        for other in seen:
            if _diverged(store, other, row, outcome.package_id, lineage):
                pair = sorted([other["content_sha"], sha])
                conflict_id = hashlib.sha256(f"{table}|{key}|{pair[0]}|{pair[1]}".encode()).hexdigest()[:32]
                exchange_rows.add_conflict(store, conflict_id, table, key, outcome.site, pair[0], pair[1])
                found += 1
    exchange_rows.add_version(store, table, key, sha, outcome.package_id, row)
    updated = row.get("updated_at") or row.get("created_at")
    if not seen:
        exchange_rows.write_central(store, table, row, replace=False)
    elif table != "segmentations":  # a final version never changes (the database refuses it)
        best = max(_rank(v["revision"], v["updated_at"], v["content_sha"]) for v in seen)
        if _rank(row.get("revision"), updated, sha) > best:
            exchange_rows.write_central(store, table, row, replace=True)
    return found


def _diverged(store: Store, other: dict, row: dict, current: str, lineage: set[str]) -> bool:
    """Two versions diverged when neither follows from the other: the same revision with other content,
    or packages on two branches of one --since chain (a common ancestor, neither one the other's)."""
    if int(other["revision"] or 0) == int(row.get("revision") or 0):
        return True
    theirs = exchange_rows.ancestors(store, other["package_id"])
    if other["package_id"] in lineage or current in theirs:
        return False
    return bool(lineage & theirs)

"""The audit log's hash chain: how a row is hashed, and the check that names the first broken row.

Each audit row stores `prev_hash` (the previous row's `row_hash`; GENESIS for row 1) and
`row_hash` = SHA-256 of a canonical serialisation of its fields and `prev_hash`. Editing,
replacing or deleting a row breaks the chain at that row (or at the row that follows a deleted
one). The chain is tamper-evident, not tamper-proof: someone who rewrites every later row with
recomputed hashes, or drops the newest rows, is not detected (there is no secret key, so that an
exported package can be checked anywhere). The serialisation below is frozen: m003 back-filled
existing stores with it; changing it needs a new migration that re-chains.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
# The hashed fields, in this order, then prev_hash.
HASHED_FIELDS = (
    "seq",
    "at",
    "reader_id",
    "site_code",
    "action",
    "table_name",
    "row_id",
    "before_id",
    "after_id",
    "detail_json",
)


def audit_row_hash(row: Mapping[str, Any], prev_hash: str) -> str:
    values = [row.get(name) for name in HASHED_FIELDS] + [prev_hash]
    canonical = json.dumps(values, ensure_ascii=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class ChainReport:
    """The result of checking the audit chain. `first_broken_row` is a `seq` (None when ok)."""

    ok: bool
    rows: int
    first_broken_row: int | None = None
    reason: str | None = None

    def to_dict(self) -> dict:
        return {"ok": self.ok, "first_broken_row": self.first_broken_row, "reason": self.reason}

    def sentence(self) -> str:
        if self.ok:
            return f"The audit log is intact ({self.rows} rows, hash chain verified)."
        return f"The audit log was altered: {self.reason}"


def verify_chain(rows: Iterable[Mapping[str, Any]]) -> ChainReport:
    """Check rows given in `seq` order; stop at the first break (later rows cannot be trusted)."""
    expected_prev, expected_seq, count = GENESIS, 1, 0
    for row in rows:
        count += 1
        seq = row.get("seq")
        if not isinstance(seq, int):
            return _broken(count, expected_seq, f"row {seq!r} has a row number that is not an integer.")
        if seq > expected_seq:
            missing = (
                f"row {expected_seq}" if seq == expected_seq + 1 else f"rows {expected_seq} to {seq - 1}"
            )
            return _broken(count, expected_seq, f"{missing} was deleted (the log goes on at row {seq}).")
        if not row.get("row_hash") or not row.get("prev_hash"):
            return _broken(count, seq, f"row {seq} has no hash: it was written outside PALMARES.")
        if row["prev_hash"] != expected_prev:
            return _broken(
                count,
                seq,
                f"row {seq} does not follow the row before it (its link to row {seq - 1} does not match): "
                "a row was replaced or rewritten.",
            )
        if audit_row_hash(row, row["prev_hash"]) != row["row_hash"]:
            return _broken(count, seq, f"row {seq} was edited: its contents no longer match its hash.")
        expected_prev, expected_seq = row["row_hash"], seq + 1
    return ChainReport(True, count)


def _broken(count: int, seq: int, reason: str) -> ChainReport:
    return ChainReport(False, count, seq, reason)

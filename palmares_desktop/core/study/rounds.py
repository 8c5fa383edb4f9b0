"""Reading rounds (DOMAIN §8): which readers segment which subjects, how often, and blind to whom.

A coordinator creates a round: subjects, one modality, readers, repeats (2+ measures intra-reader
agreement; a reader's next repeat of a subject opens only `min_delay_days` after the previous one
was done) and blinding. Each (subject, reader, repeat) is an assignment with a case label ("Case
07") in a per-reader shuffled order, so a blinded reader needs neither the subject code nor the
order of enrolment. While a blinded round is open, a reader sees only the segmentations of their
current assignment of a subject: nobody else's, and not their own earlier repeat.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from palmares_desktop.core import modalities
from palmares_desktop.core.errors import PalmaresError
from palmares_desktop.core.model import Segmentation, Subject
from palmares_desktop.core.store import Store
from palmares_desktop.core.store import rounds as rows
from palmares_desktop.core.store.store import now


class RoundError(PalmaresError):
    """A round cannot be made or used as asked (message is a plain sentence)."""


class BlindedError(RoundError):
    """The reader is blinded to what was asked for."""


@dataclass(frozen=True)
class Assignment:
    id: str
    round_name: str
    subject_id: str
    subject_code: str  # never shown to a blinded reader: use `label`
    reader_id: str
    repeat: int
    case_label: str
    status: str
    available: bool  # False while the previous repeat is not done or its delay has not passed
    blinded: bool

    @property
    def label(self) -> str:
        return self.case_label if self.blinded else f"{self.subject_code} (reading {self.repeat})"


def modality_code(name: str) -> str:
    try:
        return modalities.code_of(name)
    except modalities.ModalityError as exc:
        raise RoundError(str(exc)) from None


def create_round(
    store: Store,
    name: str,
    modality: str,
    subject_codes: Sequence[str],
    reader_names: Sequence[str],
    repeats: int = 1,
    min_delay_days: int = 0,
    blinded: bool = True,
) -> dict:
    """Make a round and all its assignments in one transaction (one audit event each)."""
    name = name.strip()
    if not name:
        raise RoundError("A reading round needs a name.")
    if rows.round_exists(store, name):
        raise RoundError(f"There is already a reading round named {name!r}.")
    if repeats < 1 or min_delay_days < 0:
        raise RoundError("Repeats must be 1 or more and the delay between repeats 0 days or more.")
    if len(set(reader_names)) * repeats < 2:
        raise RoundError("Agreement needs two readers, or one reader reading each subject twice (2 repeats).")
    known = {r.name: r for r in store.readers()}
    missing = [n for n in reader_names if n not in known]
    if missing:
        raise RoundError(
            f"Unknown reader(s): {', '.join(missing)}. Known readers: {', '.join(sorted(known)) or 'none'}."
        )
    subjects = []
    for code in dict.fromkeys(subject_codes):
        subject = store.subject_by_code(code)
        if subject is None:
            raise RoundError(f"There is no subject {code} in this store.")
        subjects.append(subject)
    if not subjects:
        raise RoundError("A reading round needs at least one subject.")
    with store.transaction():
        round_row = rows.add_round(
            store,
            {
                "name": name,
                "modality": modality_code(modality),
                "repeats": repeats,
                "min_delay_days": min_delay_days,
                "blinded": int(blinded),
                "status": "open",
            },
        )
        shuffle = random.Random(round_row["id"])  # reproducible per round, unrelated to enrolment order
        new = []
        for reader_name in dict.fromkeys(reader_names):
            reader = known[reader_name]
            for repeat in range(1, repeats + 1):
                order = list(range(len(subjects)))
                shuffle.shuffle(order)
                for position, index in enumerate(order, start=1):
                    new.append(
                        {
                            "round_id": round_row["id"],
                            "subject_id": subjects[index].id,
                            "reader_id": reader.id,
                            "repeat": repeat,
                            "case_label": f"Case {position:02d}"
                            + (f" (reading {repeat})" if repeats > 1 else ""),
                            "position": (repeat - 1) * len(subjects) + position,
                            "status": "assigned",
                        }
                    )
        rows.add_assignments(store, new)
    return round_row


def _available(row: dict, earlier: dict | None, delay_days: int, at: datetime) -> bool:
    if earlier is None:
        return True
    if earlier["status"] != "done" or not earlier["done_at"]:
        return False
    return datetime.fromisoformat(earlier["done_at"]) + timedelta(days=delay_days) <= at


def assignments_of(
    store: Store, reader_id: str | None = None, round_name: str | None = None, at: datetime | None = None
) -> list[Assignment]:
    """Assignments (of a reader, of a round, or all), each saying whether it can be read now."""
    at = at or datetime.now(timezone.utc)
    by_round = {r["id"]: r for r in rows.rounds(store)}
    round_id = rows.round_named(store, round_name)["id"] if round_name else None
    found = rows.assignments(store, round_id=round_id, reader_id=reader_id)
    everything = {(a["round_id"], a["subject_id"], a["reader_id"], a["repeat"]): a for a in found}
    codes = {s["subject_id"]: s["code"] for s in store.worklist()}
    out = []
    for a in found:
        rnd = by_round[a["round_id"]]
        earlier = everything.get((a["round_id"], a["subject_id"], a["reader_id"], a["repeat"] - 1))
        out.append(
            Assignment(
                a["id"], rnd["name"], a["subject_id"], codes.get(a["subject_id"], "?"), a["reader_id"],
                a["repeat"], a["case_label"], a["status"],
                _available(a, earlier, rnd["min_delay_days"] or 0, at), bool(rnd["blinded"]),
            )
        )  # fmt: skip
    return out


def current_assignment(store: Store, reader_id: str, subject_id: str) -> dict | None:
    """The reader's assignment of this subject in an open blinded round that their work belongs to:
    the first not done (or the last, when all are done)."""
    found = rows.open_blinded_assignments(store, subject_id, reader_id)
    if not found:
        return None
    return next((a for a in found if a["status"] != "done"), found[-1])


def is_blinded(store: Store, reader_id: str, subject_id: str) -> bool:
    return current_assignment(store, reader_id, subject_id) is not None


def visible_segmentations(store: Store, reader_id: str, subject_id: str, segmentations: Iterable) -> list:
    """Filter a subject's segmentations (rows or model objects) to what this reader may see.

    A reader in an open blinded round of the subject sees the work of their current assignment and
    their own drafts; everything else of that subject is hidden."""
    segmentations = list(segmentations)
    current = current_assignment(store, reader_id, subject_id)
    if current is None:
        return segmentations
    linked = rows.segmentations_in_rounds(store, subject_id)

    def field(seg, name):
        return seg[name] if isinstance(seg, dict) else getattr(seg, name)

    return [
        s
        for s in segmentations
        if linked.get(field(s, "id")) == current["id"]
        or (field(s, "status") == "draft" and field(s, "reader_id") == reader_id)
    ]


def visible_annotations(store: Store, reader_id: str, subject_id: str, objects: Iterable[dict]) -> list[dict]:
    """Filter a subject's slide annotations to what this reader may see: in an open blinded round of
    the subject, only their own annotations of their current reading (made after their previous
    repeat was marked done); everything else of that subject is hidden."""
    objects = list(objects)
    current = current_assignment(store, reader_id, subject_id)
    if current is None:
        return objects
    since = reading_start(store, current)
    return [o for o in objects if o.get("author_id") == reader_id and (o.get("created_at") or "") > since]


def reading_start(store: Store, assignment: dict) -> str:
    """When an H&E reading begins: the time the reader's previous repeat of that subject in that round
    was marked done ("" for a first reading). Its annotations are those made after it."""
    earlier = [
        x["done_at"]
        for x in rows.assignments(store, round_id=assignment["round_id"], reader_id=assignment["reader_id"])
        if x["subject_id"] == assignment["subject_id"] and x["repeat"] < assignment["repeat"] and x["done_at"]
    ]
    return max(earlier, default="")


def check_visible(store: Store, reader_id: str, subject_id: str, segmentation: Segmentation) -> None:
    """Refuse, in words, to show a segmentation the reader is blinded to."""
    if not visible_segmentations(store, reader_id, subject_id, [segmentation]):
        raise BlindedError(
            "This segmentation belongs to another reading in a blinded round you take part in: it stays "
            "hidden until the coordinator closes the round."
        )


def record_work(store: Store, assignment_id: str, segmentation: Segmentation) -> dict:
    """Attach a final segmentation version to the reader's assignment (a newer version replaces it)."""
    a = rows.assignment(store, assignment_id)
    if not segmentation.is_final:
        raise RoundError("Only a saved (final) segmentation counts for a reading round, not a draft.")
    if segmentation.reader_id != a["reader_id"]:
        raise RoundError("This segmentation was made by another reader than the one assigned.")
    return rows.link_work(store, assignment_id, segmentation.lesion_id, segmentation.id)


def finish(store: Store, assignment_id: str) -> dict:
    """Mark a reading done. A CT/PET reading needs a saved segmentation; an H&E reading is the
    reader's annotations on the subject's slides since their previous repeat (core/study/report.py)."""
    a = rows.assignment(store, assignment_id)
    if rows.round_modality(store, a["round_id"]) == "HE":
        if not _annotated_since(store, a):
            raise RoundError("This reading has no annotation yet: annotate at least one region first.")
    elif not rows.work_of(store, [assignment_id]):
        raise RoundError("This reading has no saved segmentation yet: save at least one lesion first.")
    return rows.finish_assignment(store, a["id"], now())


def _annotated_since(store: Store, a: dict) -> bool:
    from palmares_desktop.core.store import records
    from palmares_desktop.core.store.slide_objects import annotations_of

    since = reading_start(store, a)
    return any(
        o["author_id"] == a["reader_id"] and o["created_at"] > since
        for slide in records.slides_of_subject(store, a["subject_id"])
        for o in annotations_of(store, slide.id, kind="annotation")
    )


def close_round(store: Store, name: str) -> dict:
    """End a round: blinding is lifted; the results can be reported."""
    return rows.set_round_status(store, rows.round_named(store, name)["id"], "closed")


def reader_worklist(store: Store) -> list[dict]:
    """The store's worklist as the current reader sees it: each subject they have an open reading of
    carries `reading` (its label and status); in a blinded round `display` is the case label (no
    subject code), and the list is ordered so that blinded cases do not sit in code order."""
    rows_ = store.worklist()
    if store.reader is None:
        return rows_
    open_rounds = {r["name"] for r in rows.rounds(store) if r["status"] == "open"}
    mine = [a for a in assignments_of(store, reader_id=store.reader.id) if a.status != "done"]
    current: dict[str, Assignment] = {}
    for a in sorted(mine, key=lambda x: x.repeat):
        if a.round_name in open_rounds:
            current.setdefault(a.subject_id, a)
    for row in rows_:
        a = current.get(row["subject_id"])
        if a is None:
            continue
        wait = "" if a.available else ", not yet"
        row["reading"] = f"{a.round_name}: {a.label}{wait}"
        if a.blinded:
            row["display"] = a.case_label
    # Blinded cases by case label (a per-reader shuffled order), after the others by code.
    return sorted(rows_, key=lambda r: (1, r["display"]) if "display" in r else (0, r["code"]))


def subject_shown(store: Store, subject: Subject) -> str:
    """What the rooms call a subject for the current reader: the case label of their reading in a
    blinded open round (never the code there), else the subject code."""
    if store.reader is not None:
        current = current_assignment(store, store.reader.id, subject.id)
        if current is not None:
            return current["case_label"]
    return subject.code

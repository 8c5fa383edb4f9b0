"""SQL of the coordinator's view of a central store: completeness per subject, resolving conflicts."""

from __future__ import annotations

from palmares_desktop.core.store.store import Store, now


def completeness_rows(store: Store) -> list[dict]:
    """Per subject: site, code, final CT/PET segmentations, slide annotations, ok feature sets, status."""
    query = """
        select s.id as subject_id, s.code, s.site_code,
          (select count(*) from segmentations g join series se on se.id = g.series_id
             where se.subject_id = s.id and se.modality = 'CT' and g.status = 'final') as ct_segmentations,
          (select count(*) from segmentations g join series se on se.id = g.series_id
             where se.subject_id = s.id and se.modality = 'PT' and g.status = 'final') as pet_segmentations,
          (select count(*) from slide_annotations a join slides sl on sl.id = a.slide_id
             where sl.subject_id = s.id) as he_annotations,
          (select count(*) from feature_sets f join lesions l on l.id = f.lesion_id
             where l.subject_id = s.id and f.status = 'ok') as feature_sets,
          (select count(*) from subject_status st where st.subject_id = s.id and st.status = 'done') as done
        from subjects s order by s.site_code, s.code
    """
    return [dict(r) for r in store.db.query(query)]


def conflict(store: Store, conflict_id: str) -> dict | None:
    rows = list(store.db.query("SELECT * FROM exchange_conflicts WHERE id = ?", [conflict_id]))
    return dict(rows[0]) if rows else None


def mark_resolved(store: Store, conflict_id: str, sha: str, reader_id: str) -> None:
    store.db.execute(
        "UPDATE exchange_conflicts SET status = 'resolved', resolution_sha = ?, resolved_by = ?, resolved_at = ?"
        " WHERE id = ?",
        [sha, reader_id, now(), conflict_id],
    )

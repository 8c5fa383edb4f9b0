"""core/history.py: the one undo/redo history both rooms' editors keep their steps in."""

from __future__ import annotations

from palmares_desktop.core.history import UndoHistory


def test_undo_redo_replay_and_a_new_edit_ends_the_redo_branch():
    history: UndoHistory[str] = UndoHistory()
    done: list[str] = []
    history.push("a")
    history.push("b")
    assert history.depth == 2 and history.can_undo and not history.can_redo
    # The replay returns the step to keep: e.g. an annotation put back under a new id.
    assert history.undo(lambda step: done.append(f"undo {step}") or step + "'") == "b'"
    assert history.redo(lambda step: done.append(f"redo {step}") or step) == "b'"
    assert done == ["undo b", "redo b'"]
    history.undo(lambda step: step)
    history.push("c")  # a new edit: "b'" cannot be redone any more
    assert not history.can_redo and history.depth == 2
    assert history.redo(lambda step: step) is None
    assert history.revision == 6  # every push, undo and redo moves it (views redraw on it)


def test_a_byte_budget_forgets_the_oldest_steps():
    history: UndoHistory[bytes] = UndoHistory(max_bytes=10, size_of=len)
    for step in (b"1234", b"5678", b"90ab"):
        history.push(step)
    assert history.depth == 2 and history.dropped == 1 and history.nbytes == 8
    assert history.undo(lambda step: step) == b"90ab"
    assert history.undo(lambda step: step) == b"5678"
    assert history.undo(lambda step: step) is None  # b"1234" was forgotten


def test_the_ct_pet_rooms_mask_history_is_it():
    from palmares_desktop.core.session import EditHistory

    assert issubclass(EditHistory, UndoHistory)  # the slide room's AnnotationSession.history too

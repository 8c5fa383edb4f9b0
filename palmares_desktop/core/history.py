"""One undo/redo history for every editor: the CT/PET room's working mask (core/session.py) and the
slide room's annotations (core/slides/annotation_session.py) keep their steps here.

A step is whatever its editor can replay: the editor passes `replay(step) -> step` to undo/redo,
which applies the step's inverse (or the step again) and returns the step to keep on the other
side (an annotation put back gets a new id, so its replayed step differs). A new edit ends the redo
branch, as in every editor. With `max_bytes`, the oldest steps are forgotten to stay within it
(`size_of` says what a step weighs).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class UndoHistory(Generic[T]):
    def __init__(self, max_bytes: int | None = None, size_of: Callable[[T], int] | None = None) -> None:
        self.max_bytes = max_bytes
        self._size_of = size_of or (lambda _step: 0)
        self._undo: deque[T] = deque()
        self._redo: list[T] = []
        self.dropped = 0  # steps forgotten to stay within max_bytes
        self.revision = 0  # + 1 on every edit, undo and redo: views redraw when it moves

    @property
    def nbytes(self) -> int:
        return sum(map(self._size_of, self._undo)) + sum(map(self._size_of, self._redo))

    @property
    def depth(self) -> int:
        """How many steps can be undone."""
        return len(self._undo)

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def push(self, step: T) -> None:
        self.revision += 1
        self._undo.append(step)
        self._redo.clear()
        if self.max_bytes is not None:
            while self._undo and self.nbytes > self.max_bytes:
                self._undo.popleft()
                self.dropped += 1

    def undo(self, replay: Callable[[T], T]) -> T | None:
        """Replay the last step backwards; returns the step as kept for redo, or None."""
        if not self._undo:
            return None
        step = replay(self._undo.pop())
        self.revision += 1
        self._redo.append(step)
        return step

    def redo(self, replay: Callable[[T], T]) -> T | None:
        if not self._redo:
            return None
        step = replay(self._redo.pop())
        self.revision += 1
        self._undo.append(step)
        return step

    def clear(self) -> None:
        self._undo.clear()
        self._redo.clear()
        self.revision += 1

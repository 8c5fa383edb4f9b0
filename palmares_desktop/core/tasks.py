"""Long work in core is a generator that yields `Progress` and returns its result.

The CLI drains it behind a progress bar, the GUI in a worker thread (and cancels by closing the
generator); tests call `run()`. This keeps core free of any UI or threading concern.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    message: str = ""


Task = Generator[Progress, None, T]


def run(task: Generator[Progress, None, T], on_progress: Callable[[Progress], Any] | None = None) -> T:
    """Drain a task, optionally reporting each step, and return its result."""
    while True:
        try:
            step = next(task)
        except StopIteration as stop:
            return stop.value
        if on_progress is not None:
            on_progress(step)

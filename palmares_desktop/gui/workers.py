"""Run core work off the GUI thread and bring results back as Qt signals.

Core's long work is a generator that yields `Progress` and returns its result (core/tasks.py).
`TaskThread` drives such a generator (or runs a plain function) in a QThread, emits each progress
step, and cancels by closing the generator *in the thread that drives it*, between two steps, so
core's `finally` blocks and rollbacks run where they should. Slots connected to its signals run in
the GUI thread (queued connections), so only they touch widgets and napari layers.

SQLite connections belong to the thread that opened them: work that writes to the store opens its
own `Store` on the same folder with `worker_store()` (WAL lets both connections coexist).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from qtpy.QtCore import QObject, QThread, Signal

from palmares_desktop.core.store import Reader, Store

log = logging.getLogger(__name__)


class TaskThread(QThread):
    """Runs `fn()`; if it returns a generator, drives it as a core Task."""

    progress = Signal(object)  # core.tasks.Progress (or whatever the task yields)
    succeeded = Signal(object)  # the result
    failed = Signal(object)  # the exception (already logged with its traceback)
    cancelled = Signal()

    def __init__(self, fn: Callable[[], Any], parent: QObject | None = None, name: str = "task") -> None:
        super().__init__(parent)
        self._fn = fn
        self._cancel_requested = False
        self.setObjectName(name)

    def cancel(self) -> None:
        """Ask the task to stop after its current step (thread-safe: a flag read between steps)."""
        self._cancel_requested = True

    @property
    def cancel_requested(self) -> bool:
        return self._cancel_requested

    def run(self) -> None:  # runs in the worker thread
        try:
            result = self._fn()
            if inspect.isgenerator(result):
                result = self._drive(result)
                if result is _CANCELLED:
                    self.cancelled.emit()
                    return
            self.succeeded.emit(result)
        except Exception as exc:  # noqa: BLE001 - reported to the GUI, which shows it
            log.exception("background task %s failed", self.objectName())
            self.failed.emit(exc)

    def _drive(self, task: Any) -> Any:
        while True:
            if self._cancel_requested:
                task.close()  # raises GeneratorExit inside the task: its cleanup runs here
                return _CANCELLED
            try:
                step = next(task)
            except StopIteration as stop:
                return stop.value
            self.progress.emit(step)


_CANCELLED = object()


class WorkerPool(QObject):
    """Keeps running TaskThreads alive until they finish; cancels and joins them on shutdown."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._threads: set[TaskThread] = set()

    def start(
        self,
        fn: Callable[[], Any],
        on_success: Callable[[Any], Any] | None = None,
        on_failure: Callable[[Exception], Any] | None = None,
        on_progress: Callable[[Any], Any] | None = None,
        on_cancel: Callable[[], Any] | None = None,
        name: str = "task",
    ) -> TaskThread:
        thread = TaskThread(fn, name=name)
        if on_success:
            thread.succeeded.connect(on_success)
        if on_failure:
            thread.failed.connect(on_failure)
        if on_progress:
            thread.progress.connect(on_progress)
        if on_cancel:
            thread.cancelled.connect(on_cancel)
        self._threads.add(thread)
        thread.finished.connect(lambda t=thread: self._forget(t))
        thread.start()
        return thread

    def _forget(self, thread: TaskThread) -> None:
        self._threads.discard(thread)
        thread.deleteLater()

    def running(self) -> int:
        return sum(1 for t in self._threads if t.isRunning())

    def shutdown(self, timeout_ms: int = 30_000) -> None:
        """Cancel everything and wait: a window must not close under a thread that writes the store."""
        for thread in list(self._threads):
            thread.cancel()
        for thread in list(self._threads):
            if not thread.wait(timeout_ms):
                log.warning("background task %s did not stop within %d ms", thread.objectName(), timeout_ms)
        self._threads.clear()


@contextlib.contextmanager
def worker_store(root: Path, reader: Reader | None) -> Iterator[Store]:
    """A Store connection for use inside one worker thread, writing as the GUI's current reader."""
    store = Store.open(root, create=False)
    try:
        if reader is not None:
            store.use_reader(reader)
        yield store
    finally:
        store.close()

"""Batch radiomics over a whole store on Dask distributed: local cluster or an existing scheduler.

One task per (segmentation version, preset) still missing or stale. Workers read the image and
mask from the store folder by absolute path and return the features; only this (client) process
writes SQLite, one row as each task completes. So an interrupted batch keeps everything finished so
far and a re-run computes only what is left (resumable and idempotent).

Remote workers (`scheduler="tcp://host:8786"`) must see the store folder at the same absolute path
(a shared mount): the batch checks this on every worker before submitting anything.
pyradiomics' C code holds the GIL, so workers are processes with one thread each, and SimpleITK/ITK
and BLAS/OpenMP are pinned to one thread per worker so two workers do not fight over the cores.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from palmares_desktop.core.radiomics.errors import BatchError
from palmares_desktop.core.radiomics.scheduler import SCHEDULER_TIMEOUT_S, check_scheduler, quiet_dask
from palmares_desktop.core.radiomics.store_features import (
    Outcome,
    WorkItem,
    plan_pending,
    record_outcome,
    run_item,
)
from palmares_desktop.core.store import Reader, Store
from palmares_desktop.core.store.records import store_site
from palmares_desktop.core.store.segmentations import describe as describe_segmentation
from palmares_desktop.core.tasks import Progress, Task

log = logging.getLogger(__name__)

#: Set in every worker process we start; remote workers get the same from the task itself.
ONE_THREAD_ENV = {
    "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


#: Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536 (returns memory to the OS sooner).
#: pyradiomics allocates and frees many mid-sized numpy arrays per lesion: with that setting each
#: extraction ran ~17 % slower here (measured in one process, same lesions). Keep glibc's default.
#: Local worker settings: keep glibc's malloc defaults (Dask's MALLOC_TRIM_THRESHOLD_ made every
#: extraction ~17% slower) and switch off Dask's statistical profiler, which walks the running
#: task's Python stack every 10 ms (pure overhead for a batch nobody watches on a dashboard).
LOCAL_WORKER_CONFIG = {
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    "distributed.worker.profile.enabled": False,
}


@dataclass(frozen=True)
class TaskTiming:
    segmentation_id: str
    preset: str
    status: str  # ok | error | not stored
    elapsed_s: float  # in the worker: reading the files + extraction
    read_s: float
    worker: str


@dataclass
class BatchSummary:
    computed: int = 0  # stored with status ok
    stored: int = 0  # feature set rows written by this batch (ok or failed): true even when interrupted
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # (segmentation id, preset, reason)
    skipped_current: int = 0  # already current, not resubmitted
    elapsed_s: float = 0.0  # wall time of the whole batch
    timings: list[TaskTiming] = field(default_factory=list)
    cluster: str = ""
    startup_s: float = 0.0  # connecting to / starting the cluster and checking the workers
    names: dict[str, str] = field(default_factory=dict)  # segmentation id -> "IT03-0001 Liver v2"

    @property
    def total_task_s(self) -> float:
        return sum(t.elapsed_s for t in self.timings)


# ------------------------------------------------------------------------------------ workers
_WORKER_IMAGE_CACHE: dict = {}


def _pin_threads() -> None:
    import SimpleITK as sitk

    os.environ.update(ONE_THREAD_ENV)
    if sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() != 1:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)


def extract_on_worker(item: WorkItem) -> Outcome:
    """The Dask task: one extraction, single-threaded, reusing the last volume read."""
    _pin_threads()
    return run_item(item, _WORKER_IMAGE_CACHE)


def _can_see(path: str) -> bool:
    return os.path.isdir(path)


# ------------------------------------------------------------------------------------- client
def _connect(workers: int | None, scheduler: str | None, timeout_s: float):
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout=f"{timeout_s}s", set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise BatchError(f"Cannot connect to the Dask scheduler at {scheduler}: {exc}.") from exc
        try:
            client.wait_for_workers(1, timeout=3 * timeout_s)
        except (TimeoutError, OSError) as exc:
            _shutdown(client, None, {})
            raise BatchError(
                f"No Dask worker joined the scheduler at {scheduler} within {3 * timeout_s:g} s."
            ) from exc
        return client, None
    n = workers or 2
    if n < 1:
        raise BatchError("The number of workers must be at least 1.")
    # One worker gains nothing from a separate process (no parallelism) and would pay ~1 s to start
    # one: it runs as a thread of this process. Several workers are processes, because pyradiomics'
    # C code holds the GIL.
    processes = n > 1
    try:
        # Only worker *processes* need Ctrl-C ignored: a thread worker has no process to protect,
        # and a Ctrl-C while SIGINT is ignored would be lost (the batch would run to the end).
        ignore_ctrl_c = _workers_ignore_ctrl_c() if processes else contextlib.nullcontext()
        with ignore_ctrl_c, dask.config.set(LOCAL_WORKER_CONFIG):
            cluster = LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=processes,
                # No dashboard; the scheduler's small HTTP server (health checks) on a free port, so
                # that several batches (or another Dask user's :8787) never collide.
                dashboard_address=":0",
                scheduler_kwargs={"dashboard": False},
                # Task failures reach the user per lesion through their futures; worker log lines
                # (e.g. connections closed at shutdown) would only be tracebacks on their terminal.
                silence_logs=logging.CRITICAL,
                # Worker processes start with one-thread settings; a thread worker is pinned by the task.
                **({"env": dict(ONE_THREAD_ENV)} if processes else {}),
            )
    except RuntimeError as exc:
        raise BatchError(
            f"Could not start {n} local Dask worker processes ({exc}). A Python script that runs the batch "
            "must start it under `if __name__ == '__main__':`."
        ) from exc
    return Client(cluster, set_as_default=False), cluster


@contextlib.contextmanager
def _workers_ignore_ctrl_c() -> Iterator[None]:
    """Start worker processes with Ctrl-C ignored (they inherit it): the terminal sends SIGINT to
    the whole process group, and only this process should react (cancel, close the cluster,
    keep what is stored), not every worker with a traceback of its own."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _check_store_visible(client, root: Path, where: str) -> None:
    seen = client.run(_can_see, str(root))
    blind = sorted(address for address, ok in seen.items() if not ok)
    if blind:
        raise BatchError(
            f"{len(blind)} of {len(seen)} workers of {where} cannot see the store folder {root} "
            f"({', '.join(blind)}): mount it at the same path on every worker machine."
        )


def _describe(item: WorkItem, store: Store, names: dict[str, str]) -> str:
    if item.segmentation_id not in names:
        names[item.segmentation_id] = describe_segmentation(store, item.segmentation_id)
    return f"{names[item.segmentation_id]} ({item.preset})"


def iter_batch(
    store_path: str | Path,
    workers: int | None = None,
    scheduler: str | None = None,
    presets: Sequence[str] | None = None,
    latest_only: bool = False,
    retry_failed: bool = False,
    connect_timeout_s: float = 10.0,
    reader: Reader | None = None,
    summary: BatchSummary | None = None,
) -> Task[BatchSummary]:
    """Compute every missing or stale feature set of the store at `store_path`.

    Yields Progress after each finished task; returns a BatchSummary. Closing the generator
    cancels what is still queued and shuts the cluster down; finished results stay stored.
    New rows are authored by `reader` (default: a system reader of the store's site). Pass your own
    `summary` to know what was stored when the batch is interrupted (a Ctrl-C can land between
    storing a result and yielding its Progress).
    """
    started = time.perf_counter()
    if scheduler:  # first: a wrong address is said at once, in a sentence, whatever the store holds
        scheduler = check_scheduler(scheduler, min(connect_timeout_s, SCHEDULER_TIMEOUT_S))
    store = Store.open(store_path, create=False)
    client = cluster = None
    futures: dict = {}
    try:
        if reader is not None:
            store.use_reader(store.add_reader(reader.name, reader.role, reader.site_code))
        else:
            store.use_system_reader("palmares radiomics batch", site_code=store_site(store))
        pending, current = plan_pending(store, presets, latest_only, retry_failed)
        summary = summary or BatchSummary()
        summary.skipped_current = len(current)
        total = len(pending)
        yield Progress(0, total, f"{total} feature sets to compute, {len(current)} already current")
        if not pending:
            summary.elapsed_s = time.perf_counter() - started
            return summary

        yield Progress(0, total, f"starting Dask ({scheduler or f'{workers or 2} local workers'})")
        connecting = time.perf_counter()
        client, cluster = _connect(workers, scheduler, connect_timeout_s)
        n = workers or 2
        summary.cluster = scheduler or (
            f"local cluster, {n} worker processes x 1 thread" if n > 1 else "local cluster, 1 worker thread"
        )
        _check_store_visible(client, store.root, scheduler or "the local cluster")
        summary.startup_s = time.perf_counter() - connecting

        from distributed import as_completed

        # Lesions of one series next to each other: a worker then reuses the volume it just read.
        pending.sort(key=lambda it: (it.image_path, it.segmentation_id, it.preset))
        futures = {client.submit(extract_on_worker, item, pure=False): item for item in pending}
        names = summary.names
        for done, future in enumerate(as_completed(futures, loop=client.loop), start=1):
            item = futures.pop(future)
            status = _record(store, item, future, summary)
            yield Progress(done, total, f"{_describe(item, store, names)}: {status}")
        summary.elapsed_s = time.perf_counter() - started
        return summary
    finally:
        _shutdown(client, cluster, futures)
        store.close()


def _record(store: Store, item: WorkItem, future, summary: BatchSummary) -> str:
    """Store one finished task (or note why it cannot be stored); returns its status."""
    try:
        outcome: Outcome = future.result()
    except Exception as exc:  # noqa: BLE001 - a worker died or the task could not run
        summary.failed.append((item.segmentation_id, item.preset, f"the Dask task failed: {exc}"))
        return "task failed"
    if outcome.unreachable and Path(item.image_path).is_file() and Path(item.mask_path).is_file():
        # The client sees the files but the worker did not: a cluster problem, not this lesion's.
        summary.failed.append((item.segmentation_id, item.preset, outcome.error or "files not reachable"))
        summary.timings.append(
            TaskTiming(
                item.segmentation_id,
                item.preset,
                "not stored",
                outcome.elapsed_s,
                outcome.read_s,
                outcome.worker,
            )
        )
        return "not stored (worker cannot read the files)"
    row = record_outcome(store, item, outcome)
    summary.stored += 1
    if row["status"] == "ok":
        summary.computed += 1
    else:
        summary.failed.append((item.segmentation_id, item.preset, row["error"]))
    summary.timings.append(
        TaskTiming(
            item.segmentation_id,
            item.preset,
            row["status"],
            outcome.elapsed_s,
            outcome.read_s,
            outcome.worker,
        )
    )
    return row["status"] if row["status"] == "ok" else f"error: {row['error']}"


#: Bound on closing the client and the cluster: a worker stuck in C code must not hold the exit.
CLOSE_TIMEOUT_S = 10.0


def _shutdown(client, cluster, futures) -> None:
    """Cancel what is queued, then close the client before the cluster (so no client connection
    is cut by a closing scheduler), each with a timeout, with Dask's loggers silenced."""
    with quiet_dask():
        try:
            if client is not None and futures:
                client.cancel(list(futures))
        except Exception:  # noqa: BLE001 - shutting down anyway
            log.debug("cancelling futures failed", exc_info=True)
        for thing in (client, cluster):
            if thing is not None:
                try:
                    thing.close(timeout=CLOSE_TIMEOUT_S)
                except Exception:  # noqa: BLE001
                    log.debug("closing %s failed", thing, exc_info=True)


def run_batch(store_path: str | Path, **kwargs) -> BatchSummary:
    """Run `iter_batch` to the end (tests, scripts)."""
    from palmares_desktop.core.tasks import run

    return run(iter_batch(store_path, **kwargs))


__all__ = ["BatchError", "BatchSummary", "TaskTiming", "extract_on_worker", "iter_batch", "run_batch"]

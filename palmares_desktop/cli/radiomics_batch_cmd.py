"""`palmares radiomics batch`: every missing or stale feature set of a store, on Dask.

Attached to the `radiomics` group by cli/radiomics_cmd.py (LAZY_SUBCOMMANDS), so it is imported
only when used.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

import click

from palmares_desktop.cli import exit_codes
from palmares_desktop.cli.reader_option import reader_option


@click.command("batch")
@click.option(
    "--store",
    "store_path",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Store folder.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Local workers (default 2): processes with one thread each; a single worker runs as a thread "
    "of this process. Ignored with --scheduler.",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="An existing Dask scheduler, e.g. tcp://10.0.0.5:8786. Its workers must see the store "
    "folder at the same path.",
)
@click.option(
    "--preset",
    "presets",
    multiple=True,
    metavar="ct|pet|FILE",
    help="Parameters to compute (repeatable): ct for CT lesions, pet for PET lesions, or a "
    "parameter file for all. Default: the study's parameters for each modality.",
)
@click.option("--latest-only", is_flag=True, help="Only the latest version of each lesion's segmentation.")
@click.option("--retry-failed", is_flag=True, help="Recompute feature sets stored as failed.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@reader_option
def batch(
    store_path: Path,
    workers: int | None,
    scheduler: str | None,
    presets: tuple[str, ...],
    latest_only: bool,
    retry_failed: bool,
    as_json: bool,
    reader_name: str | None,
) -> None:
    """Compute every missing or stale feature set in a store (resumable: Ctrl-C keeps finished ones).

    Exit status 0 when every feature set was computed (or was current), 3 when some failed and
    others were computed, 1 when all failed or the batch could not run.
    """
    from tqdm import tqdm

    from palmares_desktop.core.radiomics.batch import BatchError, BatchSummary, iter_batch
    from palmares_desktop.core.radiomics.errors import RadiomicsError
    from palmares_desktop.core.radiomics.scheduler import check_scheduler
    from palmares_desktop.core.store import StoreError

    try:
        if scheduler:  # a wrong address is refused before anything (even the reader) is written
            scheduler = check_scheduler(scheduler)
        choice = _choose_reader(store_path, reader_name, say=not as_json)
    except (BatchError, StoreError) as exc:
        raise click.ClickException(str(exc)) from None
    progress = BatchSummary()
    task = iter_batch(
        store_path,
        workers=workers,
        scheduler=scheduler,
        presets=list(presets) or None,
        latest_only=latest_only,
        retry_failed=retry_failed,
        reader=choice.reader,
        summary=progress,
    )
    interrupted = _exit_130_after_ctrl_c()
    bar = tqdm(total=0, unit="feature set", file=sys.stderr, disable=as_json or None, dynamic_ncols=True)
    done = 0
    try:
        while True:
            step = next(task)
            if bar.total != step.total:
                bar.total = step.total
            bar.update(step.done - done)
            done = step.done
            bar.set_postfix_str(step.message[:60])
    except StopIteration as stop:
        summary = stop.value
    except KeyboardInterrupt:
        task.close()  # cancels queued tasks and stops the workers; stored results stay
        _say_interrupted(bar, progress.stored)
    except (BatchError, RadiomicsError, StoreError) as exc:
        bar.close()
        raise click.ClickException(str(exc)) from None
    if interrupted.is_set():
        # The Ctrl-C landed inside library code that swallowed the KeyboardInterrupt (e.g. during
        # cluster shutdown on a busy machine): the user still asked to stop, so say so and exit 130.
        _say_interrupted(bar, progress.stored)
    bar.close()

    if as_json:
        click.echo(
            json.dumps(
                {
                    "computed": summary.computed,
                    "skipped_current": summary.skipped_current,
                    "failed": [
                        {"segmentation_id": s, "name": summary.names.get(s, s), "preset": p, "reason": r}
                        for s, p, r in summary.failed
                    ],
                    "elapsed_s": round(summary.elapsed_s, 3),
                    "cluster": summary.cluster,
                    "timings": [t.__dict__ for t in summary.timings],
                    "reader": choice.to_dict(),
                },
                indent=2,
            )
        )
    else:
        _print_summary(summary)
    code = exit_codes.for_outcome(summary.computed > 0, bool(summary.failed))
    if code != exit_codes.OK:
        sys.exit(code)


def _choose_reader(store_path: Path, reader_name: str | None, say: bool):
    """The author of the batch's feature sets: --reader, else the profile, else the batch itself."""
    from palmares_desktop.cli.reader_option import choose_reader
    from palmares_desktop.core.store import Store
    from palmares_desktop.core.store.records import store_site

    with Store.open(store_path, create=False) as store:
        return choose_reader(
            store, reader_name, store_site(store), unnamed="palmares radiomics batch", say=say
        )


def _print_summary(summary) -> None:
    click.echo(
        f"Computed {summary.computed}, failed {len(summary.failed)}, already current "
        f"{summary.skipped_current}, in {summary.elapsed_s:.1f} s"
        f"{' on ' + summary.cluster if summary.cluster else ''}."
    )
    for seg_id, preset, reason in summary.failed:
        click.echo(f"  failed: {summary.names.get(seg_id, seg_id)} ({preset}): {reason}")


def _exit_130_after_ctrl_c() -> threading.Event:
    """Remember that Ctrl-C was pressed, raise KeyboardInterrupt once, and ignore further presses
    so that the clean-up (cancel, close the cluster) is not interrupted in turn."""
    interrupted = threading.Event()

    def on_ctrl_c(signum, frame) -> None:
        if not interrupted.is_set():
            interrupted.set()
            raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, on_ctrl_c)
    return interrupted


def _say_interrupted(bar, stored: int) -> None:
    bar.close()
    click.echo(
        f"Interrupted after {stored} feature set(s); they are stored. Run the same command again "
        "to compute the rest.",
        err=True,
    )
    sys.exit(exit_codes.INTERRUPTED)

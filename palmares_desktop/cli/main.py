"""The `palmares` command: thin wiring from arguments to one core call per command.

Each command lives in its own module under `palmares_desktop/cli/`, listed in `commands.py` and
imported only when it runs (start-up time matters: see benchmarks/bench_radiomics.py).
Errors a user can cause are raised as `click.ClickException` with a plain sentence; `cli()` turns
any other exception into a one-line message (the traceback goes to the log file only). Exit
statuses are named in `exit_codes.py`.
"""

from __future__ import annotations

import logging
import sys

import click

from palmares_desktop import __version__
from palmares_desktop.cli import exit_codes
from palmares_desktop.cli.commands import COMMANDS
from palmares_desktop.cli.lazy import LazyGroup
from palmares_desktop.core.errors import PalmaresError
from palmares_desktop.core.logs import setup_logging

log = logging.getLogger(__name__)


@click.group(
    cls=LazyGroup, lazy_subcommands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(__version__, prog_name="palmares")
def main() -> None:
    """PALMARES Desktop command line: demo data, DICOM scan/import, SUV, radiomics."""
    setup_logging()


def _register() -> None:
    """Import every subcommand now (tests use it to fail fast on a broken command module)."""
    for name in COMMANDS:
        main.get_command(None, name)


def cli() -> None:
    """Entry point: never lets a traceback reach the user."""
    try:
        main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(exit_codes.REFUSED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except PalmaresError as exc:  # every user-facing failure: its sentence, no traceback
        click.echo(f"Error: {exc.sentence}", err=True)
        sys.exit(exit_codes.REFUSED)
    except Exception as exc:  # noqa: BLE001 - last line of defence for the user
        log.exception("unexpected error")
        click.echo(f"Error: {exc}. Details are in the log file.", err=True)
        sys.exit(exit_codes.INTERNAL)

"""`--reader NAME` on every command that writes to a store, and the one line saying who was recorded.

The author of a write comes from `--reader`, else the remembered reader profile, else an unnamed
command-line reader (core.profile.choose_reader); never from $LOGNAME.
"""

from __future__ import annotations

from pathlib import Path

import click


def _named(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise click.BadParameter("give the reader's name, e.g. --reader 'Dr Rossi'.")
    return value.strip() if value is not None else None


reader_option = click.option(
    "--reader",
    "reader_name",
    default=None,
    metavar="NAME",
    callback=_named,
    help="Who makes this change, recorded as the author (default: the reader profile of this "
    "workstation; never the OS user name).",
)


def choose_reader(
    store,
    reader_name: str | None,
    site_code: str | None,
    role: str = "coordinator",
    unnamed: str | None = None,
    say: bool = True,
):
    """Select the author in `store` and say which on stderr (`say=False` when the command prints
    JSON, which carries it as "reader"); returns the core ReaderChoice."""
    from palmares_desktop.core.profile import ProfileError
    from palmares_desktop.core.profile import choose_reader as choose

    try:
        extra = {"unnamed": unnamed} if unnamed else {}
        choice = choose(store, reader_name, site_code, role, **extra)
    except ProfileError as exc:
        raise click.ClickException(str(exc)) from None
    if say:
        click.echo(choice.sentence(), err=True)
    return choice


def open_store_as_reader(
    store_path: Path | None, subject: str, reader_name: str | None, quiet: bool, role: str = "radiologist"
):
    """The store, with the author of the writes chosen (and named on stderr unless `quiet`)."""
    from palmares_desktop.core.paths import default_store_path
    from palmares_desktop.core.store import Store

    store = Store.open(store_path or default_store_path(), create=False)
    try:
        choose_reader(
            store,
            reader_name,
            subject.split("-")[0] if "-" in subject else None,
            role,
            say=not quiet,
        )
    except BaseException:
        store.close()
        raise
    return store

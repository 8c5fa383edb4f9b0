"""`palmares keys init|export-public|trust`: the exchange keys of a site or of the centre."""

from __future__ import annotations

from pathlib import Path

import click

from palmares_desktop.cli.reader_option import choose_reader, reader_option


@click.group("keys")
def keys() -> None:
    """Exchange keys: sign packages at a site, encrypt them to the coordinating centre."""


def _open(store_path: Path, create: bool = False):
    from palmares_desktop.core.store import Store

    return Store.open(store_path, create=create)


@keys.command("init")
@click.option("--store", "store_path", required=True, type=click.Path(path_type=Path))
@click.option("--centre", is_flag=True, help="The coordinating centre's store (created if needed).")
@reader_option
def init(store_path: Path, centre: bool, reader_name: str | None) -> None:
    """Make this store's key pair (Ed25519 to sign, X25519 to encrypt), kept beside keys.db."""
    from palmares_desktop.core.exchange.keyring import init_keys

    with _open(store_path, create=centre) as store:
        site = None if centre else store.site_code()
        choose_reader(store, reader_name, site)
        key = init_keys(store, centre)
    click.echo(f"Keys made for {key.owner}; fingerprint {key.fingerprint}.")
    click.echo("Send the public key (keys export-public) and confirm its fingerprint by another channel.")


@keys.command("export-public")
@click.option("--store", "store_path", required=True, type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path))
def export_public(store_path: Path, out: Path) -> None:
    """Write the public half of this store's keys to OUT (the private half never leaves)."""
    from palmares_desktop.core.exchange.keyring import own_public
    from palmares_desktop.core.store import Store

    with Store.open(store_path, create=False, read_only=True) as store:
        key = own_public(store)
    out.write_text(key.to_json(), encoding="utf-8")
    click.echo(f"Public key of {key.owner} written to {out}; fingerprint {key.fingerprint}.")


@keys.command("trust")
@click.argument("key_file", type=click.Path(path_type=Path))
@click.option("--store", "store_path", required=True, type=click.Path(path_type=Path))
@reader_option
def trust(key_file: Path, store_path: Path, reader_name: str | None) -> None:
    """Register the other side's public key (the centre trusts each site's, a site the centre's)."""
    from palmares_desktop.core.exchange.keyring import trust_file

    with _open(store_path) as store:
        choose_reader(store, reader_name, store.site_code())
        done = trust_file(store, key_file)
    verb = "now trusted" if done.new else "was already trusted"
    click.echo(f"The key of {done.key.owner} {verb}; fingerprint {done.key.fingerprint}.")

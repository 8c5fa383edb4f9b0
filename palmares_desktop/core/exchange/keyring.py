"""`keys init / export-public / trust`: who a store is in the exchange, and whom it trusts.

A site store's exchange identity is its own site code; the coordinating centre's store is marked
with the setting `exchange.role = centre` and is created by `keys init --centre` when needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from palmares_desktop.core.exchange import crypto
from palmares_desktop.core.exchange.crypto import CENTRE, ExchangeKeyError, PublicKey
from palmares_desktop.core.store import Store, check_site_code, exchange_keys

ROLE_SETTING = "exchange.role"


def is_centre(store: Store) -> bool:
    return store.setting(ROLE_SETTING) == CENTRE


def identity(store: Store) -> str:
    """'centre' for the coordinating centre's store, else the store's own site code."""
    if is_centre(store):
        return CENTRE
    site = store.site_code()
    if not site:
        raise ExchangeKeyError(
            f"The store {store.root} has no site yet (no subject was imported): a site's keys are "
            "made for its own site code."
        )
    return site


def init_keys(store: Store, centre: bool) -> PublicKey:
    """Make the store's key pair (and mark a centre store as such)."""
    if centre:
        if not is_centre(store) and store.site_code():
            raise ExchangeKeyError(
                f"The store {store.root} is the store of site {store.site_code()}: the centre needs "
                "its own store."
            )
        if not is_centre(store):
            store.set_setting(ROLE_SETTING, CENTRE)
    elif is_centre(store):
        raise ExchangeKeyError(f"The store {store.root} is the centre's store: use --centre.")
    owner = identity(store)
    crypto.create_keys(store.root)
    store.audit(
        "exchange keys made",
        {"owner": owner, "fingerprint": crypto.public_key(store.root, owner).fingerprint},
    )
    return crypto.public_key(store.root, owner)


def own_public(store: Store) -> PublicKey:
    return crypto.public_key(store.root, identity(store))


@dataclass
class Trusted:
    key: PublicKey
    new: bool


def trust_file(store: Store, path: Path) -> Trusted:
    """Register the other side's public key file: a site trusts the centre, the centre each site."""
    try:
        key = PublicKey.from_json(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ExchangeKeyError(f"Cannot read the key file {path}: {exc.strerror}.") from None
    centre = is_centre(store)
    if centre and key.owner == CENTRE:
        raise ExchangeKeyError("This is a centre's key: the centre trusts the keys of its sites.")
    if not centre and key.owner != CENTRE:
        raise ExchangeKeyError(f"This is site {key.owner}'s key: a site trusts only the centre's key.")
    if centre:
        check_site_code(key.owner)
    new = exchange_keys.trust(store.root, key.owner, key.sign, key.box, key.fingerprint)
    if new:
        store.audit("exchange key trusted", {"owner": key.owner, "fingerprint": key.fingerprint})
    return Trusted(key, new)


def trusted_key(root: Path, owner: str) -> PublicKey | None:
    found = exchange_keys.trusted(root, owner)
    return PublicKey(owner, *found) if found else None

"""Exchange keys (issue 8): made beside keys.db (0600), only the public half leaves, the other side's
key is registered with its fingerprint, and swapped or wrong-side keys are refused in words."""

from __future__ import annotations

import json
import stat
import subprocess
import sys

import pytest

from palmares_desktop.core.exchange import crypto, keyring
from palmares_desktop.core.exchange.crypto import ExchangeKeyError
from palmares_desktop.core.store import Store, StoreError

CLI = "from palmares_desktop.cli.main import cli; cli()"


def _palmares(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CLI, *args], capture_output=True, text=True, timeout=120)


def test_keys_init_export_and_trust_from_the_command_line(tmp_path):
    site = tmp_path / "site"
    with Store.open(site) as s:
        s.use_system_reader("test", site_code="IT03")
        s.ensure_subject("IT03-0001")
    central = tmp_path / "central"
    assert _palmares("keys", "init", "--store", str(site), "--reader", "Dr Rossi").returncode == 0
    done = _palmares("keys", "init", "--centre", "--store", str(central), "--reader", "Dr Bianchi")
    assert done.returncode == 0, done.stderr
    assert (central / "palmares.db").exists()
    for root in (site, central):
        for name in (crypto.SIGN_FILE, crypto.BOX_FILE):
            mode = stat.S_IMODE((root / name).stat().st_mode)
            assert mode == 0o600 and (root / name).stat().st_size == 32
    pub_site, pub_centre = tmp_path / "site.pub", tmp_path / "centre.pub"
    assert _palmares("keys", "export-public", "--store", str(site), "--out", str(pub_site)).returncode == 0
    assert (
        _palmares("keys", "export-public", "--store", str(central), "--out", str(pub_centre)).returncode == 0
    )
    public = json.loads(pub_site.read_text())
    assert public["owner"] == "IT03" and len(bytes.fromhex(public["sign"])) == 32
    # the private key bytes are in no exported file
    assert (site / crypto.SIGN_FILE).read_bytes().hex() not in pub_site.read_text()
    done = _palmares("keys", "trust", str(pub_centre), "--store", str(site))
    assert done.returncode == 0 and "fingerprint" in done.stdout
    fingerprint = crypto.PublicKey.from_json(pub_centre.read_text()).fingerprint
    assert fingerprint in done.stdout and len(fingerprint.replace(" ", "")) == 32
    done = _palmares("keys", "trust", str(pub_site), "--store", str(central))
    assert done.returncode == 0 and "IT03 now trusted" in done.stdout
    # the wrong side's key is refused in one sentence
    done = _palmares("keys", "trust", str(pub_site), "--store", str(site))
    assert done.returncode == 1 and "a site trusts only the centre's key" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_changed_key_for_a_trusted_site_is_refused_and_keys_are_never_replaced(tmp_path):
    central = Store.open(tmp_path / "central")
    central.use_system_reader("test")
    keyring.init_keys(central, centre=True)
    with pytest.raises(ExchangeKeyError, match="already has exchange keys"):
        keyring.init_keys(central, centre=True)
    files = []
    for n in range(2):
        other = tmp_path / f"site{n}"
        with Store.open(other) as s:
            s.use_system_reader("test", site_code="IT05")
            s.ensure_subject("IT05-0001")
            keyring.init_keys(s, centre=False)
            files.append(tmp_path / f"site{n}.pub")
            files[-1].write_text(keyring.own_public(s).to_json())
    assert keyring.trust_file(central, files[0]).new
    assert not keyring.trust_file(central, files[0]).new  # the same key again: nothing changes
    with pytest.raises(StoreError, match="already trusts another key for IT05"):
        keyring.trust_file(central, files[1])
    bad = tmp_path / "bad.pub"
    bad.write_text(
        '{"format": "palmares-public-key", "version": 1, "owner": "IT05", "sign": "00", "box": "11"}'
    )
    with pytest.raises(ExchangeKeyError, match="not a PALMARES public key"):
        keyring.trust_file(central, bad)
    central.close()

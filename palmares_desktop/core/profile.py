"""Remembered reader profiles: who is working at this workstation (Qt-free).

A profile is the person (name, role, site code) that every write to the store is recorded
against. Profiles live in `user_config_dir()/profile.json` so the workstation remembers the last
reader between sessions, across stores; the GUI registers the chosen profile in the open store
with `store.add_reader` + `store.use_reader` (see `use_profile`).

    {"current": 0, "profiles": [{"name": "...", "role": "radiologist", "site_code": "IT03"}]}
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from palmares_desktop.core.errors import PalmaresError
from palmares_desktop.core.paths import user_config_dir
from palmares_desktop.core.store import Reader, Store, StoreError, check_site_code

log = logging.getLogger(__name__)

#: Roles a human reader can take (the store also knows "system" for non-human authors).
HUMAN_ROLES = ("radiologist", "pathologist", "coordinator")
PROFILE_FILE = "profile.json"


class ProfileError(PalmaresError):
    """A reader profile the user typed is not valid (message is a plain sentence)."""


@dataclass(frozen=True)
class ReaderProfile:
    name: str
    role: str
    site_code: str

    def label(self) -> str:
        """How the profile appears in the title bar and in lists."""
        return f"{self.name} ({self.role}, {self.site_code})"


def make_profile(name: str, role: str, site_code: str) -> ReaderProfile:
    """Validate what the user typed and return a profile (site code is upper-cased)."""
    name = (name or "").strip()
    if not name:
        raise ProfileError("Please enter the reader's name.")
    if role not in HUMAN_ROLES:
        raise ProfileError(f"Role {role!r} is not one of {', '.join(HUMAN_ROLES)}.")
    site_code = (site_code or "").strip().upper()
    try:
        check_site_code(site_code)
    except StoreError as exc:
        raise ProfileError(str(exc)) from exc
    return ReaderProfile(name, role, site_code)


def profile_path() -> Path:
    return user_config_dir() / PROFILE_FILE


def _read() -> dict:
    path = profile_path()
    if not path.exists():
        return {"current": None, "profiles": []}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("profiles"), list):
            raise ValueError("unexpected layout")
        return data
    except (OSError, ValueError) as exc:
        # A damaged file must not stop the workstation from starting: the user picks a profile again.
        log.warning("ignoring unreadable reader profile file %s: %s", path, exc)
        return {"current": None, "profiles": []}


def list_profiles() -> list[ReaderProfile]:
    """Every remembered profile, in the order they were first saved (invalid entries skipped)."""
    out = []
    for entry in _read()["profiles"]:
        try:
            out.append(make_profile(entry.get("name", ""), entry.get("role", ""), entry.get("site_code", "")))
        except (ProfileError, AttributeError):
            log.warning("skipping invalid remembered profile %r", entry)
    return out


def load_profile() -> ReaderProfile | None:
    """The profile used last, or None on first start."""
    data = _read()
    index = data.get("current")
    profiles = list_profiles()
    if isinstance(index, int) and 0 <= index < len(profiles):
        return profiles[index]
    return None


def save_profile(profile: ReaderProfile, make_current: bool = True) -> Path:
    """Remember `profile` (once) and, by default, make it the current one. Returns the file path."""
    profiles = list_profiles()
    if profile not in profiles:
        profiles.append(profile)
    data = _read()
    current = profiles.index(profile) if make_current else data.get("current")
    path = profile_path()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        json.dumps({"current": current, "profiles": [asdict(p) for p in profiles]}, indent=2),
        encoding="utf-8",
    )
    tmp.replace(path)  # atomic: a crash never leaves half a file
    return path


def use_profile(store: Store, profile: ReaderProfile) -> Reader:
    """Register `profile` as a reader of `store` (idempotent) and make it the author of writes."""
    return store.use_reader(store.add_reader(profile.name, profile.role, profile.site_code))


#: The author of command-line writes when nobody is named: never the OS user's $LOGNAME, which any
#: shell can set to a colleague's name (the audit log would then lie about who made the change).
UNNAMED_CLI_READER = "palmares command line (no reader named)"


@dataclass(frozen=True)
class ReaderChoice:
    """The reader a command records as the author, and where that choice came from."""

    reader: Reader
    source: str  # "--reader", "reader profile" or "no reader named"

    def sentence(self) -> str:
        r = self.reader
        why = {
            "--reader": "given with --reader",
            "reader profile": "the reader profile of this workstation",
        }.get(self.source, "no --reader given and no reader profile saved")
        return f"Recorded as reader: {r.name} ({r.role}, {r.site_code}); {why}."

    def to_dict(self) -> dict:
        return {
            "name": self.reader.name,
            "role": self.reader.role,
            "site_code": self.reader.site_code,
            "source": self.source,
        }


def choose_reader(
    store: Store,
    name: str | None = None,
    site_code: str | None = None,
    role: str = "coordinator",
    unnamed: str = UNNAMED_CLI_READER,
) -> ReaderChoice:
    """The author of a command's writes: the reader named explicitly (`--reader`), else the
    remembered reader profile, else a system reader called `unnamed` (never $LOGNAME).

    A named reader is the profile of that name when there is one, else the store's reader of that
    name (at `site_code` when given), else a new reader with `role` at `site_code`.
    """
    if name is not None:
        name = name.strip()
        if not name:
            raise ProfileError("--reader needs the reader's name, e.g. --reader 'Dr Rossi'.")
        profile = next((p for p in list_profiles() if p.name == name), None)
        if profile is not None and (site_code is None or profile.site_code == site_code):
            return ReaderChoice(use_profile(store, profile), "--reader")
        known = [
            r
            for r in store.readers()
            if r.name == name and r.role != "system" and (site_code is None or r.site_code == site_code)
        ]
        if known:
            return ReaderChoice(store.use_reader(known[0]), "--reader")
        if role not in HUMAN_ROLES:
            raise ProfileError(f"Role {role!r} is not one of {', '.join(HUMAN_ROLES)}.")
        return ReaderChoice(store.use_reader(store.add_reader(name, role, site_code or "XX00")), "--reader")
    profile = load_profile()
    if profile is not None:
        return ReaderChoice(use_profile(store, profile), "reader profile")
    return ReaderChoice(store.use_system_reader(unnamed, site_code=site_code or "XX00"), "no reader named")


def use_profile_or_system_reader(store: Store, site_code: str | None = None) -> Reader:
    """The author of command-line writes without `--reader`: see `choose_reader`."""
    return choose_reader(store, None, site_code).reader

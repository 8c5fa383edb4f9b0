"""The list of `palmares` subcommands. Add a new command module here (one line)."""

from __future__ import annotations

import importlib

import click

# module name -> attribute holding the click command or group
_COMMANDS = [
]


def all_commands() -> list[click.Command]:
    return [getattr(importlib.import_module(mod), attr) for mod, attr in _COMMANDS]

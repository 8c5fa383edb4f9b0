"""The list of `palmares` subcommands. Add a new command module here (one line)."""

from __future__ import annotations

import importlib

import click

# module name -> attribute holding the click command or group
_COMMANDS = [
    ("palmares_desktop.cli.scan_cmd", "scan"),
    ("palmares_desktop.cli.suv_cmd", "suv"),
    ("palmares_desktop.cli.import_cmd", "import_"),
    ("palmares_desktop.cli.segmentation_cmd", "segmentation"),
    ("palmares_desktop.cli.radiomics_cmd", "radiomics"),
]


def all_commands() -> list[click.Command]:
    return [getattr(importlib.import_module(mod), attr) for mod, attr in _COMMANDS]

"""A click group whose subcommands are imported only when used, so start-up stays fast
(`palmares radiomics` must cost little more than a bare pyradiomics script)."""

from __future__ import annotations

import importlib

import click


class LazyGroup(click.Group):
    """`lazy_subcommands` maps a subcommand name to "package.module:attribute"."""

    def __init__(self, *args, lazy_subcommands: dict[str, str] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_subcommands = dict(lazy_subcommands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(self.lazy_subcommands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        target = self.lazy_subcommands.get(cmd_name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        command = getattr(importlib.import_module(module), attr)
        self.add_command(command, cmd_name)
        return command

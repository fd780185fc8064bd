"""The built-in commands (run, score, train, verify, export, push, plugins, config show, new-plugin), added
through the same `register_commands` hook as any plugin's; each module holds one command and what only it needs.
Model work is imported when a command runs, so listing the commands loads no model library."""

from __future__ import annotations

import click

from tuneshift import hookimpl


@hookimpl
def register_commands(cli: click.Group) -> None:
    from tuneshift._commands import config_show, export, listing, new_plugin, push, run, score, train, verify

    for module in (listing, config_show, run, train, verify, score, export, push, new_plugin):
        cli.add_command(module.command)

"""The built-in commands (run, score, train, verify, export, plugins, new-plugin), added through the same
`register_commands` hook as any plugin's; each module holds one command and what only it needs.
Model work is imported when a command runs, so listing the commands loads no model library."""

from __future__ import annotations

import click

from tuneshift import hookimpl


@hookimpl
def register_commands(cli: click.Group) -> None:
    from tuneshift._commands import export, listing, new_plugin, run, score, train, verify

    for module in (listing, run, train, verify, score, export, new_plugin):
        cli.add_command(module.command)

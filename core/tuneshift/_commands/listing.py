"""`tuneshift plugins`: every installed implementation, and the plugins that failed to load."""

from __future__ import annotations

import json

import click

from tuneshift._commands.state import State


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_obj
def command(state: State, as_json: bool) -> None:
    """List every installed implementation, and plugins that failed to load."""
    entries = state.registry.entries
    if as_json:
        click.echo(json.dumps([e.as_json() for e in entries], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "kind", "distribution", "version", "status")
    for e in entries:
        table.add_row(e.name, e.kind, e.distribution + (" (built-in)" if e.builtin else ""), e.version, e.status)
    Console().print(table)

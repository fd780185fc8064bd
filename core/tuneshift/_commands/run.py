"""`tuneshift run CONFIG.toml`: run (or resume) the pipeline."""

from __future__ import annotations

from pathlib import Path

import click

from tuneshift._commands.state import State, output_path


@click.command("run")
@click.argument("config_path", metavar="CONFIG.toml", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(), default=None,
              help="Run directory (default: runs/<config name>). Rerunning resumes.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key.")
@click.pass_obj
def command(state: State, config_path: Path, out_dir: str | None, overrides: tuple[str, ...]) -> None:
    """Run (or resume) the pipeline described by CONFIG.toml."""
    from tuneshift._pipeline import run_config
    from tuneshift._processes import refuse_multi_process

    refuse_multi_process("run")
    out_dir = output_path(out_dir, "--out") or Path("runs") / config_path.stem
    report = run_config(state, config_path, out_dir, overrides)
    click.echo(f"kept {report['dataset_size']} of {report['counts']['candidates']} candidates; "
               f"results in {out_dir}", err=True)

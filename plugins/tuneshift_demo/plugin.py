"""Adds `tuneshift demo`: the embedded default job (SmolLM2 teacher -> Gemma 3 target, offline on CPU).

A plugin like any other: it reaches the pipeline and the implementations only
through tuneshift.api and the CLI's state, so --plugin and --no-plugin choose
what its stages run with, as they do for `tuneshift run`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tuneshift.api import State, hookimpl, output_path, refuse_multi_process

from .generators import GENERATORS, parse


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(demo)


@click.command()
@click.option("--preset", type=click.Choice(["quick", "full"]), default="quick", show_default=True)
@click.option("--domain", type=click.Choice(["organisation", "support"]), default="organisation", show_default=True,
              help="The kind of knowledge: a fictional organisation's facts, or a support desk's routing skill.")
@click.option("--out", "out_dir", type=click.Path(), default=None,
              help="Output folder  [default: runs/demo, runs/demo-support for --domain support]")
@click.option("--seeds", "n_seeds", type=int, default=None, help="Number of random seeds.")
@click.option("--generators", "compared", default=None, metavar="NAMES",
              help="Also run the tuneshift arm with each of these generators (comma-separated, or all): "
                   f"{', '.join(GENERATORS)}.")
@click.option("--serial", is_flag=True,
              help="Run every stage in this one process (by default the first seed's zero_shot and ceiling "
                   "arms run in a second process while the teacher trains, the CPU threads split).")
@click.pass_obj
def demo(state: State, preset: str, domain: str, out_dir: str | None, n_seeds: int | None,
         compared: str | None, serial: bool) -> None:
    """The embedded demo: SmolLM2 teacher -> Gemma 3 target, with floor, ceiling and ablations."""
    from .run import run_demo

    refuse_multi_process("demo")
    names = parse(compared)  # an unknown name: one line, before any work
    out = output_path(out_dir or ("runs/demo" if domain == "organisation" else f"runs/demo-{domain}"), "--out")
    print_table(run_demo(state, preset, out, n_seeds, domain_name=domain, compared=names, serial=serial), preset, out)


def print_table(report: dict[str, Any], preset: str, out_dir: Path) -> None:
    """The arms' held-out accuracy, the teacher's checks and the verification, on stderr."""
    from rich.console import Console
    from rich.table import Table

    table = Table("arm", "accuracy", "std", "pairs", title=f"tuneshift demo ({preset}), held-out accuracy")
    for arm, r in report["arms"].items():
        pairs = r.get("dataset_size")  # a mean over seeds
        table.add_row(arm, f"{r['accuracy']:.3f}", f"{r['std']:.3f}", "" if pairs is None else f"{pairs:g}")
    console = Console(stderr=True)
    console.print(table)
    right = report["teacher"].get("general_right") or {}
    console.print(f"teacher accuracy {report['teacher']['accuracy']:.3f}, general questions right "
                  f"{right.get('teacher', '?')}/{report['teacher']['general_checked']} (base {right.get('base', '?')}); "
                  f"recovery {report['recovery']:.3f} (std {report['recovery_std']:.3f}); "
                  f"{report['wall_seconds']:.0f} s, peak RSS {report['peak_rss_mb']:.0f} MB")
    rho = (report.get("verification") or {}).get("spearman")
    if rho is not None:
        console.print(f"data-free verification: agreement ranks the arms with Spearman {rho:.2f} against the "
                      "true held-out accuracy")
    console.print(f"report: {out_dir / 'report.md'}")

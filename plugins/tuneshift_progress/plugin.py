"""Shows the run's progress on stderr with rich; block it with `--no-plugin progress`."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from tuneshift.api import hookimpl

_console = Console(stderr=True)
_bar: dict[str, object] = {}


def _label(stage: str, round_: int | None) -> str:
    if round_ is None:
        return stage
    return f"round {round_}" + ("" if stage == "round" else f" {stage}")


@hookimpl
def on_run_start(out_dir, config):
    _console.print(f"[bold]tuneshift[/] run in {out_dir}")


@hookimpl
def on_stage_start(stage, round, total):
    if stage == "round":  # a round is its stages, each with its own bar: a header, not a bar of unknown length
        _console.print(f"[bold]round {round}[/]")
        return
    if "progress" in _bar:  # one live bar at a time
        _bar.pop("progress").stop()
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=_console, transient=True)
    progress.start()
    _bar.update(progress=progress, task=progress.add_task(_label(stage, round), total=total))


@hookimpl
def on_progress(stage, advance):
    if "progress" in _bar:
        _bar["progress"].advance(_bar["task"], advance)


@hookimpl
def on_stage_end(stage, round, counts, seconds):
    if "progress" in _bar:
        _bar.pop("progress").stop()
    summary = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in sorted(counts.items()))
    _console.print(f"  {_label(stage, round)}: {summary or 'done'} ({seconds:.1f} s)")


@hookimpl
def on_run_end(out_dir, status, error):
    if "progress" in _bar:
        _bar.pop("progress").stop()
    _console.print(f"[bold]{status}[/]" + (f": {error}" if error else ""))

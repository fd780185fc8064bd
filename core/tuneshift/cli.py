"""The `tuneshift` command. Every error is one line `error: ...` and exit code 2 (usage) or 1 (run time)."""

from __future__ import annotations

import json
import signal
import sys
import threading
import traceback
import warnings
from pathlib import Path

import click

from . import __version__
from .errors import Interrupted, TuneshiftError, UsageError, interrupted_exit
from .plugins import Registry


class State:
    """What every command gets: the plugin registry and the implementations chosen with --plugin."""

    def __init__(self, registry: Registry, selected: list[str], debug: bool) -> None:
        self.registry, self.selected, self.debug = registry, selected, debug
        registry.validate_selected(selected)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tuneshift")
@click.option("--plugin", "selected", multiple=True, metavar="NAME",
              help="Use implementation NAME for its kind (repeatable).")
@click.option("--no-plugin", "blocked", multiple=True, metavar="NAME", help="Block plugin NAME (repeatable).")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.pass_context
def cli(ctx: click.Context, selected: tuple[str, ...], blocked: tuple[str, ...], debug: bool) -> None:
    """Move a fine-tuned model's specialised knowledge into another model (TuneShift-KD)."""
    ctx.meta["debug"] = debug
    if ctx.resilient_parsing or ctx.invoked_subcommand is None:
        return
    registry = ctx.obj if isinstance(ctx.obj, Registry) else Registry(blocked=blocked)
    ctx.obj = State(registry, list(selected), debug)


def output_path(value: str | None, flag: str) -> Path | None:
    """An output path as typed; an empty one is refused (it would mean the current directory)."""
    if value is not None and not value.strip():
        raise UsageError(f"{flag}: an empty path; give a directory")
    return Path(value) if value is not None else None


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_obj
def plugins(state: State, as_json: bool) -> None:
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


@cli.command()
@click.argument("config_path", metavar="CONFIG.toml", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(), default=None,
              help="Run directory (default: runs/<config name>). Rerunning resumes.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key.")
@click.pass_obj
def run(state: State, config_path: Path, out_dir: str | None, overrides: tuple[str, ...]) -> None:
    """Run (or resume) the pipeline described by CONFIG.toml."""
    from .pipeline import execute
    from .runner import Run
    from .train_command import refuse_multi_process

    refuse_multi_process("run")

    out_dir = output_path(out_dir, "--out") or Path("runs") / config_path.stem
    job = Run(config_path, out_dir, list(overrides), state.registry, state.selected).open()
    try:
        report = execute(job)
    finally:
        job.close()
    click.echo(f"kept {report['dataset_size']} of {report['counts']['candidates']} candidates; "
               f"results in {out_dir}", err=True)


@cli.command()
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(path_type=Path))
@click.option("--out", "adapter_dir", type=click.Path(), default=None,
              help="Adapter directory to write (default: RUN_DIR/adapter); never a directory tuneshift did not make.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key.")
@click.pass_obj
def train(state: State, run_dir: Path, adapter_dir: str | None, overrides: tuple[str, ...]) -> None:
    """Train the target on RUN_DIR's dataset.jsonl; under `accelerate launch`, data-parallel on every device."""
    from .train_command import is_main_process, train_run_dir

    adapter_dir = output_path(adapter_dir, "--out")
    metrics = train_run_dir(state.registry, state.selected, run_dir, adapter_dir, list(overrides))
    if is_main_process():
        click.echo(f"trained the target on {metrics['pairs']} pairs; adapter in {adapter_dir or run_dir / 'adapter'}",
                   err=True)


@cli.command()
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key (verify.size).")
@click.pass_obj
def verify(state: State, run_dir: Path, overrides: tuple[str, ...]) -> None:
    """Measure, without the private data, how much of the teacher RUN_DIR's trained target learnt."""
    from .train_command import refuse_multi_process
    from .verify_command import verify_run_dir

    refuse_multi_process("verify")
    overall = verify_run_dir(state.registry, state.selected, run_dir, list(overrides))["overall"]
    if not overall["n"]:
        click.echo(f"no held-out prompt could be drawn and answered; see {run_dir / 'verification.md'}", err=True)
        return
    click.echo(f"agreement with the teacher {overall['agreement']:.3f} (untrained {overall['agreement_before']:.3f}), "
               f"training lowered the NLL of the teacher's answer on {overall['beats_untrained']:.0%} of "
               f"{overall['n']} held-out prompts; per region in {run_dir / 'verification.md'}", err=True)


@cli.command()
@click.option("--base", required=True, help="Base model: a local directory or a .gguf file.")
@click.option("--adapter", default=None, help="PEFT adapter directory of the fine-tuned model.")
@click.option("--finetuned", default=None, help="A full fine-tuned model instead of an adapter.")
@click.option("--input", "input_path", required=True, type=click.Path(path_type=Path), help="JSONL of pairs.")
@click.option("--output", "output_path", required=True, type=click.Path(path_type=Path), help="JSONL to write.")
@click.option("--batch-size", default=16, show_default=True)
@click.pass_obj
def score(state: State, base: str, adapter: str | None, finetuned: str | None, input_path: Path,
          output_path: Path, batch_size: int) -> None:
    """Score (prompt, response) pairs under the fine-tuned model and its base."""
    from .scoring import score_file

    n = score_file(state.registry, state.selected, base, adapter, finetuned, input_path, output_path, batch_size)
    click.echo(f"scored {n} pairs into {output_path}", err=True)


@cli.command()
@click.option("--preset", type=click.Choice(["quick", "full"]), default="quick", show_default=True)
@click.option("--out", "out_dir", type=click.Path(), default="runs/demo", show_default=True)
@click.option("--seeds", "n_seeds", type=int, default=None, help="Number of random seeds.")
@click.pass_obj
def demo(state: State, preset: str, out_dir: str, n_seeds: int | None) -> None:
    """The embedded demo: SmolLM2 teacher -> Gemma 3 target, with floor, ceiling and ablations."""
    from .demo import run_demo
    from .train_command import refuse_multi_process

    refuse_multi_process("demo")

    run_demo(state, preset, output_path(out_dir, "--out"), n_seeds)


@cli.command("new-plugin")
@click.argument("name")
@click.option("--kind", type=click.Choice(["expander", "scorer", "all"]), default="all", show_default=True)
@click.option("--out", "out_parent", type=click.Path(path_type=Path), default=Path("."), show_default=True)
def new_plugin(name: str, kind: str, out_parent: Path) -> None:
    """Create a new plugin distribution from plugin_template/, with NAME filled in."""
    from .scaffold import render

    target = render(name, kind, out_parent)
    click.echo(f"created {target}; next: pip install -e {target} && tuneshift plugins")


def blocked_in(args: list[str]) -> tuple[str, ...]:
    """The --no-plugin names on a command line, found before click parses it."""
    out = []
    for i, arg in enumerate(args):
        if arg == "--no-plugin" and i + 1 < len(args):
            out.append(args[i + 1])
        elif arg.startswith("--no-plugin="):
            out.append(arg.split("=", 1)[1])
    return tuple(out)


INTERRUPTED = "error: interrupted; rerun the same command to resume"


def _terminated(signum: int, frame: object) -> None:
    raise Interrupted(signum)  # unwinds like Ctrl-C: run.json says interrupted, locks are released


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the CLI and turns errors into one line and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)
    debug = "--debug" in args
    warnings.formatwarning = lambda message, category, *_, **__: f"warning: {message}\n"
    if not debug:  # libraries' deprecation chatter is for developers
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
    try:
        registry = Registry(blocked=blocked_in(args))  # before parsing: plugins may add commands
        registry.add_commands(cli)
        cli.main(args=args, prog_name="tuneshift", standalone_mode=False, obj=registry)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort as exc:  # click turns a KeyboardInterrupt into Abort: say what really happened
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, KeyboardInterrupt):
            click.echo(INTERRUPTED, err=True)
            return interrupted_exit(cause)
        click.echo("error: aborted", err=True)
        return 1
    except TuneshiftError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        click.echo(INTERRUPTED, err=True)
        return interrupted_exit(exc)
    except Exception as exc:  # a bug or an unexpected library failure: one line unless --debug
        if debug:
            traceback.print_exc()
        click.echo(f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
                   "(rerun with --debug for the traceback)", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

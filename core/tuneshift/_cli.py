"""The `tuneshift` command group: global options, and every error as one line `error: ...` with an exit code
(2 usage, 1 run time, 130/143 interrupted).

Every subcommand, the built-in ones too, comes from a plugin's `register_commands`
hook; the plugins load on first need, so `tuneshift --version` loads none.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
import warnings
from typing import Any

import click

from tuneshift import __version__
from tuneshift._errors import Interrupted, TuneshiftError, interrupted_exit


class Commands(click.Group):
    """The subcommands, gathered from the plugins the first time a command name is looked up."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.registry: Any = None
        self.blocked: tuple[str, ...] = ()

    def _load(self) -> None:
        if self.registry is None:
            from tuneshift._registry import Registry

            self.registry = Registry(blocked=self.blocked)
            self.registry.add_commands(self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        self._load()
        return super().get_command(ctx, name)


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tuneshift")
@click.option("--plugin", "selected", multiple=True, metavar="NAME",
              help="Use implementation NAME for its kind (repeatable).")
@click.option("--no-plugin", "blocked", multiple=True, metavar="NAME", help="Block plugin NAME (repeatable).")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars and no warnings: the result line and errors only.")
@click.option("-v", "--verbose", is_flag=True, help="Also the libraries' own messages and deprecation warnings.")
@click.pass_context
def cli(ctx: click.Context, selected: tuple[str, ...], blocked: tuple[str, ...], debug: bool, quiet: bool,
        verbose: bool) -> None:
    """Move a fine-tuned model's specialised knowledge into another model (TuneShift-KD)."""
    ctx.meta["debug"] = debug
    if ctx.resilient_parsing or ctx.invoked_subcommand is None:
        return
    from tuneshift._commands.state import State

    ctx.obj = State(cli.registry, list(selected), debug)


def blocked_in(args: list[str]) -> tuple[str, ...]:
    """The --no-plugin names on a command line, found before click parses it (plugins may add commands)."""
    out = []
    for i, arg in enumerate(args):
        if arg == "--no-plugin" and i + 1 < len(args):
            out.append(args[i + 1])
        elif arg.startswith("--no-plugin="):
            out.append(arg.split("=", 1)[1])
    return tuple(out)


def global_flag(args: list[str], short: str, long: str) -> bool:
    """Whether a flag of the `tuneshift` group itself is given: before the command's name."""
    skip = False
    for arg in args:
        if skip:  # the NAME of --plugin NAME / --no-plugin NAME
            skip = False
        elif arg in (short, long):
            return True
        elif arg in ("--plugin", "--no-plugin"):
            skip = True
        elif not arg.startswith("-"):  # the command's name: what follows is the command's own
            return False
    return False


INTERRUPTED = "error: interrupted; rerun the same command to resume"


def _terminated(signum: int, frame: object) -> None:
    raise Interrupted(signum)  # unwinds like Ctrl-C: run.json says interrupted, locks are released


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the CLI and turns errors into one line and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)
    debug = "--debug" in args
    quiet, verbose = global_flag(args, "-q", "--quiet"), global_flag(args, "-v", "--verbose")
    warnings.formatwarning = lambda message, category, *_, **__: f"warning: {message}\n"
    if quiet:
        warnings.simplefilter("ignore")
    elif verbose:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "info")
    elif not debug:  # libraries' deprecation chatter is for developers
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
    # each call loads the plugins anew; --quiet is --no-plugin progress
    cli.registry, cli.blocked = None, blocked_in(args) + (("progress",) if quiet else ())
    cli.commands.clear()
    try:
        cli.main(args=args, prog_name="tuneshift", standalone_mode=False)
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

"""The whole plugin contract: what a plugin may add to tuneshift, and what it may watch.

A plugin is a module with functions marked `@tuneshift.hookimpl` whose names
match the specs below. It contributes implementations by calling `register`
with classes derived from `tuneshift.kinds` (one kind per hook), and may watch
a run through the observer hooks. Every hook here is documented in
docs/plugins.md and exercised in tests/ (tests/test_docs.py checks both).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pluggy

if TYPE_CHECKING:
    import click

    from tuneshift.kinds import Implementation

hookspec = pluggy.HookspecMarker("tuneshift")

Register = Callable[[type["Implementation"]], None]


# --- implementations, one hook per kind --------------------------------------


@hookspec
def register_expanders(register: Register) -> None:
    """Register `Expander` classes: they propose new prompts from what was kept so far."""


@hookspec
def register_answerers(register: Register) -> None:
    """Register `Answerer` classes: they answer prompts with a model (the teacher, the target)."""


@hookspec
def register_dedupers(register: Register) -> None:
    """Register `Deduper` classes: they mark proposed prompts that repeat earlier ones."""


@hookspec
def register_scorers(register: Register) -> None:
    """Register `Scorer` classes: they score (prompt, response) under fine-tuned and base."""


@hookspec
def register_selectors(register: Register) -> None:
    """Register `Selector` classes: they turn scores into keep or drop decisions."""


@hookspec
def register_trainers(register: Register) -> None:
    """Register `Trainer` classes: they train the target model on the kept pairs."""


@hookspec
def register_commands(cli: "click.Group") -> None:
    """Add subcommands to the `tuneshift` command line with `@cli.command()` (for example `serve`)."""


# --- observers: every registered plugin sees these events --------------------


@hookspec
def on_run_start(out_dir: Path, config: dict[str, Any]) -> None:
    """A run starts (or resumes) in `out_dir`; `config` is the resolved, redacted config."""


@hookspec
def on_stage_start(stage: str, round: int | None, total: int | None) -> None:
    """A stage starts; `total` is the number of items it will process, when known."""


@hookspec
def on_progress(stage: str, advance: int) -> None:
    """`advance` more items of the current stage are done."""


@hookspec
def on_metrics(stage: str, step: int, metrics: dict[str, float]) -> None:
    """A stage's numbers at one step (a trainer's optimiser step: `loss`, `learning_rate`, `tokens_per_second`,
    `epoch`): what an experiment tracker logs."""


@hookspec
def on_stage_end(stage: str, round: int | None, counts: dict[str, float], seconds: float) -> None:
    """A stage ended; `counts` says what it produced (kept, dropped; a round adds its diversity)."""


@hookspec
def on_run_end(out_dir: Path, status: str, error: str | None) -> None:
    """The run ended with `status` "ok", "failed" or "interrupted" (then `error` is the one-line reason)."""
